// pyinterp-doctor: the program behind `mod/pyinterp doctor app.wsgi`.
//
// Loads a WSGI script in a throwaway subinterpreter (shared GIL, as
// mod_pyinterp's application groups) and, on Python 3.12+, in an own-GIL
// one, through the application layer the server uses (the same private
// module, import hook, script execution and callable check: app_cache.h's
// probe_application), and prints every extension module the script loaded
// with a verdict:
//
//     <module>: needs the main interpreter (<why>)
//     <module>: fine in a subinterpreter; fine with its own GIL
//     <module>: fine in a subinterpreter; not with its own GIL (<why>)
//     <module>: fine in a subinterpreter; own GIL not checked (Python 3.12+)
//
// Exit status: 0 the application can run in a subinterpreter, 1 it needs
// the main interpreter, 2 the script could not be loaded or checked.
//
// The interpreters are never ended: the process exits with _exit() once the
// report is printed (an application's threads or extensions must not make
// a diagnosis hang or crash at teardown).
#include <Python.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "app/app_cache.h"
#include "app/interp_state.h"
#include "app/log.h"
#include "pyinterp/dispatch.hpp"
#include "pyinterp/module.h"
#include "pyinterp/py/exception.h"

namespace {

namespace app = pyinterp::app;
namespace py = pyinterp::py;

struct extension {
    std::string name, path, error;
};

struct run_result {
    bool ran = false;                          // the interpreter was created and entered
    std::string script_error;                  // the script's exception, "" if it loaded
    std::vector<extension> loaded;             // in load order
    std::map<std::string, std::string> needs;  // module -> why it needs main
};

struct options {
    const char* python_path = nullptr;
    const char* callable = "application";
    const char* script = nullptr;
};

void log_to_stderr(int level, const char* message, void*) {
    if (level >= PYINTERP_LOG_WARN) std::fprintf(stderr, "pyinterp-doctor: %s\n", message);
}

std::string str_of(PyObject* o) {
    py::ref s = py::ref::steal(o ? PyObject_Str(o) : nullptr);
    const char* c = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    std::string out = c ? c : "?";
    PyErr_Clear();
    return out;
}

// "Type: message" of the load's exception; its traceback goes to stderr
// for the user.
std::string describe_error(PyObject* exc) {
    std::fprintf(stderr, "%s\n", py::format_exception(exc).c_str());
    return std::string(Py_TYPE(exc)->tp_name) + ": " + str_of(exc);
}

// What the probe saw, as a run_result.  GIL held.
void collect(const app::probe_result& pr, run_result* out) {
    if (pr.error) out->script_error = describe_error(pr.error.get());
    for (Py_ssize_t i = 0; i < PyList_Size(pr.loaded.get()); ++i) {
        PyObject* e = PyList_GET_ITEM(pr.loaded.get(), i);
        extension x;
        x.name = str_of(PyList_GetItem(e, 0));
        x.path = str_of(PyList_GetItem(e, 1));
        PyObject* err = PyList_GetItem(e, 2);
        if (err != nullptr && err != Py_None) x.error = str_of(err);
        out->loaded.push_back(x);
    }
    for (Py_ssize_t i = 0; i < PyList_Size(pr.findings.get()); ++i) {
        PyObject* f = PyList_GET_ITEM(pr.findings.get(), i);
        std::string mod = str_of(PyTuple_GetItem(f, 0));
        if (!out->needs.count(mod)) out->needs[mod] = str_of(PyTuple_GetItem(f, 2));
    }
    PyErr_Clear();
}

// One run in a fresh interpreter (PyInterpPythonPath-like --python-path is
// in its sys.path: the dispatch library puts it in every interpreter).  No
// GIL held on entry and on return.
run_result run_in(const char* name, pyinterp_gil_mode gil, const options& o) {
    run_result out;
    int status = PYINTERP_OK;
    pyinterp::view v = pyinterp::view::create(name, gil, &status);
    if (!v) {
        std::fprintf(stderr, "pyinterp-doctor: cannot create interpreter '%s': %s\n", name, pyinterp_strerror(status));
        return out;
    }
    pyinterp::scoped_enter in(v);
    if (!in) return out;
    out.ran = true;
    app::request_target t;
    t.script = o.script;
    t.callable = o.callable;
    t.group = name;
    py::ref module = app::private_module();
    app::probe_result pr;
    if (!module || !app::probe_application(app::state_of(module.get()), t, &pr)) {
        if (py::ref exc = py::take_exception()) std::fprintf(stderr, "%s\n", py::format_exception(exc.get()).c_str());
        out.script_error = "cannot install the import hook";
        return out;
    }
    collect(pr, &out);
    return out;
}

int usage() {
    std::fprintf(stderr,
                 "usage: pyinterp-doctor [--python-path DIR[:DIR...]] [--callable NAME] script.wsgi\n"
                 "Imports the script in a throwaway subinterpreter (and an own-GIL one on Python 3.12+)\n"
                 "and prints each extension module it loaded with a verdict.  Exit status: 0 it can run\n"
                 "in a subinterpreter, 1 it needs the main interpreter, 2 errors.\n");
    return 2;
}

// False on a bad command line.
bool parse_args(int argc, char** argv, options* o) {
    for (int i = 1; i < argc; ++i) {
        bool has_value = i + 1 < argc;
        if (std::strcmp(argv[i], "--python-path") == 0 && has_value) {
            o->python_path = argv[++i];
        } else if (std::strcmp(argv[i], "--callable") == 0 && has_value) {
            o->callable = argv[++i];
        } else if (argv[i][0] == '-' || o->script != nullptr) {
            return false;  // an unknown option, or a second script
        } else {
            o->script = argv[i];
        }
    }
    return o->script != nullptr;
}

// The own-GIL verdict on one extension that is fine in a subinterpreter.
std::string own_gil_verdict(const extension& x, bool own_checked, const run_result& own) {
    if (!own_checked) return "own GIL not checked (needs Python 3.12+)";
    std::string verdict = "fine with its own GIL";
    for (const extension& y : own.loaded)
        if (y.name == x.name && !y.error.empty()) verdict = "not with its own GIL (" + y.error + ")";
    auto n = own.needs.find(x.name);
    if (n != own.needs.end()) verdict = "not with its own GIL (" + n->second + ")";
    return verdict;
}

// One line per extension module, then the findings tied to none of them
// (a package's sub-interpreter warning, say).
void print_extensions(const run_result& shared, bool own_checked, const run_result& own) {
    if (shared.loaded.empty()) std::printf("no extension modules loaded\n");
    for (const extension& x : shared.loaded) {
        auto need = shared.needs.find(x.name);
        if (need != shared.needs.end())
            std::printf("%s: needs the main interpreter (%s) [%s]\n", x.name.c_str(), need->second.c_str(),
                        x.path.c_str());
        else
            std::printf("%s: fine in a subinterpreter; %s [%s]\n", x.name.c_str(),
                        own_gil_verdict(x, own_checked, own).c_str(), x.path.c_str());
    }
    for (const auto& [mod, why] : shared.needs) {
        bool listed = false;
        for (const extension& x : shared.loaded) listed = listed || x.name == mod;
        if (!listed) std::printf("%s: needs the main interpreter (%s)\n", mod.c_str(), why.c_str());
    }
}

// The verdict line; returns the exit status.
int print_verdict(const run_result& shared, bool own_checked, const run_result& own) {
    if (!shared.ran) return 2;
    if (!shared.needs.empty()) {
        std::printf(
            "verdict: needs the main interpreter: serve it with application-group=%%{GLOBAL} "
            "(PyInterpSubinterpreterFallback route does so automatically)\n");
        return 1;
    }
    if (!shared.script_error.empty()) {
        std::printf("error: the script failed to load: %s\n", shared.script_error.c_str());
        return 2;
    }
    std::printf("verdict: can run isolated in a subinterpreter%s\n", !own_checked ? ""
                                                                     : own.script_error.empty()
                                                                         ? " (also with its own GIL)"
                                                                         : " (not with its own GIL)");
    return 0;
}

// Starts Python as the server does: the private module registered, `import
// pyinterp` available, --python-path in every interpreter.
bool start_python(const options& o) {
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, nullptr);
    if (!app::register_private_module(nullptr)) return false;
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) return false;
    pyinterp_config cfg{};
    cfg.python_path = o.python_path;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) std::fprintf(stderr, "pyinterp-doctor: Python failed to start: %s\n", pyinterp_strerror(rc));
    return rc == PYINTERP_OK;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse_args(argc, argv, &o)) return usage();
    if (access(o.script, R_OK) != 0) {
        std::fprintf(stderr, "pyinterp-doctor: cannot read '%s'\n", o.script);
        return 2;
    }
    if (!start_python(o)) return 2;
    run_result shared = run_in("doctor-subinterpreter", PYINTERP_GIL_SHARED, o);
    // Own GIL: only worth it (and only safe) when the script loads in a
    // shared-GIL subinterpreter without needing main.
    bool own_checked =
        pyinterp_supports_own_gil() != 0 && shared.ran && shared.needs.empty() && shared.script_error.empty();
    run_result own;
    if (own_checked) own = run_in("doctor-own-gil", PYINTERP_GIL_OWN, o);
    std::printf("pyinterp doctor: %s (Python %d.%d)\n", o.script, PY_MAJOR_VERSION, PY_MINOR_VERSION);
    print_extensions(shared, own_checked, own);
    int status = print_verdict(shared, own_checked, own);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(status);
}
