// The fallback import hook as `pyinterp doctor` reads it: the report of
// each load the executor runs in a subinterpreter (executor_options::
// observe_load, fallback_report), without httpd.
#include <string>

#include "app/executor.h"
#include "app/fallback.h"
#include "app/interp_state.h"
#include "app_support.h"

namespace {

using pyinterp::py::ref;

// What the hook reported about the last load, and how the run ended.
struct observed {
    std::string loaded, findings, refused;  // repr of the report's lists
    std::string error;                      // the load's exception
    int loads = 0;
};

void observe(app::interp_state* st, app::placement, const pyinterp::view&, void* user) noexcept {
    auto* o = static_cast<observed*>(user);
    ref report = app::fallback_report(st);
    if (!report) return;
    auto repr = [&](const char* key) {
        ref s = ref::steal(PyObject_Repr(PyDict_GetItemString(report.get(), key)));
        return std::string(s ? PyUnicode_AsUTF8(s.get()) : "?");
    };
    o->loaded = repr("loaded");
    o->findings = repr("findings");
    o->refused = repr("refused");
    ++o->loads;
}

int serve_nothing(const app::application&, const app::request_target&, void*) noexcept {
    return 200;
}

int keep_error(const app::request_target&, void* request) noexcept {
    static_cast<observed*>(request)->error = apptest::take_error();
    return 500;
}

const app::protocol quiet = {"quiet", serve_nothing, keep_error, nullptr, nullptr, nullptr};

// Loads `script` in group `group` (shared GIL, policy allow: every finding
// is collected, none stops the load) and returns what the hook reported.
observed load(const char* group, const std::string& script, const char* callable = "application") {
    observed o;
    app::executor_options opt;
    opt.log = apptest::log_sink();
    opt.observe_load = observe;
    opt.observe_user = &o;
    app::executor ex(opt);
    app::request_target t;
    t.script = script.c_str();
    t.callable = callable;
    t.group = group;
    t.gil = app::gil_mode::shared;
    t.fallback = app::fallback_policy::allow;
    ex.run(t, quiet, &o);
    EXPECT_EQ(o.loads, 1);
    EXPECT_EQ(pyinterp::view::find(group).end(), PYINTERP_OK);
    return o;
}

TEST(Fallback, AnExtensionImportingPyGILStateEnsureNeedsMain) {
    observed r = load("probe-gilstate", apptest::write_script("app.wsgi", "import gilstate_ext\napplication = len\n"));
    EXPECT_EQ(r.error, "");
    EXPECT_NE(r.loaded.find("'gilstate_ext'"), std::string::npos) << r.loaded;
    EXPECT_NE(r.findings.find("'gilstate_ext'"), std::string::npos) << r.findings;
    EXPECT_NE(r.findings.find("PyGILState_Ensure"), std::string::npos) << r.findings;
    EXPECT_EQ(r.refused, "[]");
}

TEST(Fallback, CPythonsOwnExtensionsAreFine) {
    observed r = load("probe-sqlite", apptest::write_script("app.wsgi", "import sqlite3\napplication = len\n"));
    EXPECT_EQ(r.error, "");
    EXPECT_NE(r.loaded.find("'_sqlite3'"), std::string::npos) << r.loaded;
    EXPECT_EQ(r.findings, "[]");
}

TEST(Fallback, ASubInterpreterWarningIsAFinding) {
    observed r = load("probe-warning",
                      apptest::write_script("app.wsgi",
                                            "import warnings\n"
                                            "warnings.warn('demo was imported from a Python sub-interpreter but "
                                            "demo does not properly support sub-interpreters')\n"
                                            "application = len\n"));
    EXPECT_NE(r.findings.find("it warns that it does not support sub-interpreters"), std::string::npos) << r.findings;
}

TEST(Fallback, TheScriptsErrorsReachTheProtocol) {
    std::string script = apptest::write_script("app.wsgi", "application = len\n");
    EXPECT_EQ(load("probe-callable", script, "missing").error,
              "AttributeError: script '" + script + "' defines no 'missing' (the WSGI callable)");
    EXPECT_EQ(load("probe-raise", apptest::write_script("app.wsgi", "raise KeyError('k')\n")).error, "KeyError: 'k'");
}

}  // namespace
