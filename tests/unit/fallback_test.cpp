// The fallback import hook as `pyinterp doctor` uses it (probe_application,
// mod/app/app_cache.h): what it reports for extension modules, in a
// subinterpreter, without httpd.
#include <string>

#include "app/app_cache.h"
#include "app/interp_state.h"
#include "app_support.h"

namespace {

using pyinterp::py::ref;

// Probes `script` in a fresh subinterpreter named `name`.
struct probe_run {
    std::string error;
    std::string loaded;    // repr of the hook's loaded() list
    std::string findings;  // repr of its findings
};

probe_run probe(const char* name, const std::string& script, const char* callable = "application") {
    probe_run out;
    pyinterp::view v = pyinterp::view::create(name);
    EXPECT_TRUE(v);
    {
        pyinterp::scoped_enter in(v);
        EXPECT_TRUE(in);
        ref m = app::private_module();
        app::request_target t;
        t.script = script.c_str();
        t.callable = callable;
        app::probe_result pr;
        EXPECT_TRUE(m && app::probe_application(app::state_of(m.get()), t, &pr)) << apptest::take_error();
        if (pr.error) {
            ref s = ref::steal(PyObject_Str(pr.error.get()));
            out.error = std::string(Py_TYPE(pr.error.get())->tp_name) + ": " + PyUnicode_AsUTF8(s.get());
        }
        ref l = ref::steal(PyObject_Repr(pr.loaded.get()));
        ref f = ref::steal(PyObject_Repr(pr.findings.get()));
        out.loaded = PyUnicode_AsUTF8(l.get());
        out.findings = PyUnicode_AsUTF8(f.get());
        // Nothing of the probed script stays behind.
        EXPECT_EQ(apptest::eval_str("[m for m in __import__('sys').modules if m.startswith('_pyinterp_script_')]"),
                  "[]");
    }
    EXPECT_EQ(v.end(), PYINTERP_OK);
    return out;
}

TEST(Fallback, AnExtensionImportingPyGILStateEnsureNeedsMain) {
    probe_run r =
        probe("probe-gilstate", apptest::write_script("app.wsgi", "import gilstate_ext\napplication = len\n"));
    EXPECT_EQ(r.error, "");
    EXPECT_NE(r.loaded.find("'gilstate_ext'"), std::string::npos) << r.loaded;
    EXPECT_NE(r.findings.find("'gilstate_ext'"), std::string::npos) << r.findings;
    EXPECT_NE(r.findings.find("PyGILState_Ensure"), std::string::npos) << r.findings;
}

TEST(Fallback, CPythonsOwnExtensionsAreFine) {
    probe_run r = probe("probe-sqlite", apptest::write_script("app.wsgi", "import sqlite3\napplication = len\n"));
    EXPECT_EQ(r.error, "");
    EXPECT_NE(r.loaded.find("'_sqlite3'"), std::string::npos) << r.loaded;
    EXPECT_EQ(r.findings, "[]");
}

TEST(Fallback, ASubInterpreterWarningIsAFinding) {
    probe_run r = probe("probe-warning",
                        apptest::write_script("app.wsgi",
                                              "import warnings\n"
                                              "warnings.warn('demo was imported from a Python sub-interpreter but "
                                              "demo does not properly support sub-interpreters')\n"
                                              "application = len\n"));
    EXPECT_NE(r.findings.find("it warns that it does not support sub-interpreters"), std::string::npos) << r.findings;
}

TEST(Fallback, TheScriptsErrorsAreReportedNotRaised) {
    std::string script = apptest::write_script("app.wsgi", "application = len\n");
    EXPECT_EQ(probe("probe-callable", script, "missing").error,
              "AttributeError: script '" + script + "' defines no 'missing' (the WSGI callable)");
    EXPECT_EQ(probe("probe-raise", apptest::write_script("app.wsgi", "raise KeyError('k')\n")).error, "KeyError: 'k'");
}

}  // namespace
