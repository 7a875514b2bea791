// pyinterp-doctor: the helper behind `mod/pyinterp doctor app.wsgi`.
//
// Imports a WSGI script in a throwaway subinterpreter (shared GIL, as
// mod_pyinterp's application groups) and, on Python 3.12+, in an own-GIL
// one, with the same import hook mod_pyinterp installs (fallback_hook.h),
// and prints every extension module the script loaded with a verdict:
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

#include "fallback_hook.h"
#include "pyinterp/dispatch.hpp"
#include "pyinterp/module.h"

namespace {

struct extension {
    std::string name, path, error;
};

struct run_result {
    bool ran = false;                          // the interpreter was created and entered
    std::string script_error;                  // the script's exception, "" if it loaded
    std::vector<extension> loaded;             // in load order
    std::map<std::string, std::string> needs;  // module -> why it needs main
};

void log_to_stderr(int level, const char* message, void*) {
    if (level >= PYINTERP_LOG_WARN) std::fprintf(stderr, "pyinterp-doctor: %s\n", message);
}

std::string str_of(PyObject* o) {
    PyObject* s = o ? PyObject_Str(o) : nullptr;
    const char* c = s ? PyUnicode_AsUTF8(s) : nullptr;
    std::string out = c ? c : "?";
    Py_XDECREF(s);
    PyErr_Clear();
    return out;
}

// Executes the script as a module, the way mod_pyinterp loads it, and
// checks that `callable` exists.  GIL held.  Returns "" or the error.
std::string exec_script(const char* path, const char* callable) {
    PyObject* path_obj = PyUnicode_DecodeFSDefault(path);
    PyObject* io = path_obj ? PyFile_OpenCodeObject(path_obj) : nullptr;
    PyObject* source = io ? PyObject_CallMethod(io, "read", nullptr) : nullptr;
    if (io != nullptr) Py_XDECREF(PyObject_CallMethod(io, "close", nullptr));
    PyObject* code = source && PyBytes_Check(source)
                         ? Py_CompileStringObject(PyBytes_AS_STRING(source), path_obj, Py_file_input, nullptr, -1)
                         : nullptr;
    PyObject* module = code ? PyModule_New("_pyinterp_doctor_script") : nullptr;
    PyObject* dict = module ? PyModule_GetDict(module) : nullptr;
    PyObject* result = nullptr;
    if (dict != nullptr && PyDict_SetItemString(dict, "__file__", path_obj) == 0 &&
        PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) == 0)
        result = PyEval_EvalCode(code, dict, dict);
    std::string error;
    if (result == nullptr) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        error = type ? std::string(reinterpret_cast<PyTypeObject*>(type)->tp_name) + ": " + str_of(value)
                     : "cannot read or compile the script";
        if (type != nullptr) {
            // The traceback, for the user, on stderr.
            PyErr_Restore(type, value, tb);
            PyErr_Print();
        }
    } else if (!PyObject_HasAttrString(module, callable)) {
        error = std::string("the script defines no '") + callable + "' (the WSGI callable)";
    }
    Py_XDECREF(result);
    Py_XDECREF(module);
    Py_XDECREF(code);
    Py_XDECREF(source);
    Py_XDECREF(io);
    Py_XDECREF(path_obj);
    PyErr_Clear();
    return error;
}

// One run in a fresh interpreter.  No GIL held on entry and on return.
run_result run_in(const char* name, pyinterp_gil_mode gil, const char* script, const char* callable,
                  const char* python_path) {
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
    // mod_pyinterp puts PyInterpPythonPath in front of sys.path in every
    // interpreter; so does the doctor with --python-path.
    if (python_path != nullptr && *python_path) {
        PyObject* sys_path = PySys_GetObject("path");  // borrowed
        PyObject* parts = PyUnicode_FromString(python_path);
        PyObject* split = parts ? PyObject_CallMethod(parts, "split", "s", ":") : nullptr;
        for (Py_ssize_t i = split ? PyList_Size(split) - 1 : -1; sys_path && i >= 0; --i)
            PyList_Insert(sys_path, 0, PyList_GET_ITEM(split, i));
        Py_XDECREF(split);
        Py_XDECREF(parts);
        PyErr_Clear();
    }
    PyObject* hook = pyinterp::mod::fallback_hook_new();
    PyObject* r = hook ? PyObject_CallMethod(hook, "begin", "i", 0) : nullptr;
    if (r == nullptr) {
        PyErr_Print();
        out.script_error = "cannot install the import hook";
        Py_XDECREF(hook);
        return out;
    }
    Py_DECREF(r);
    out.script_error = exec_script(script, callable);
    PyObject* loaded = PyObject_CallMethod(hook, "loaded", nullptr);
    PyObject* findings = PyObject_CallMethod(hook, "end", nullptr);
    for (Py_ssize_t i = 0; loaded && i < PyList_Size(loaded); ++i) {
        PyObject* e = PyList_GET_ITEM(loaded, i);
        extension x;
        x.name = str_of(PyList_GetItem(e, 0));
        x.path = str_of(PyList_GetItem(e, 1));
        PyObject* err = PyList_GetItem(e, 2);
        if (err != nullptr && err != Py_None) x.error = str_of(err);
        out.loaded.push_back(x);
    }
    for (Py_ssize_t i = 0; findings && i < PyList_Size(findings); ++i) {
        PyObject* f = PyList_GET_ITEM(findings, i);
        std::string mod = str_of(PyTuple_GetItem(f, 0));
        if (!out.needs.count(mod)) out.needs[mod] = str_of(PyTuple_GetItem(f, 2));
    }
    Py_XDECREF(loaded);
    Py_XDECREF(findings);
    Py_DECREF(hook);
    PyErr_Clear();
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

}  // namespace

int main(int argc, char** argv) {
    const char* python_path = nullptr;
    const char* callable = "application";
    const char* script = nullptr;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--python-path") == 0 && i + 1 < argc) python_path = argv[++i];
        else if (std::strcmp(argv[i], "--callable") == 0 && i + 1 < argc) callable = argv[++i];
        else if (argv[i][0] == '-') return usage();
        else if (script == nullptr) script = argv[i];
        else return usage();
    }
    if (script == nullptr) return usage();
    if (access(script, R_OK) != 0) {
        std::fprintf(stderr, "pyinterp-doctor: cannot read '%s'\n", script);
        return 2;
    }
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, nullptr);
    // `import pyinterp` (and its C API capsule) as inside httpd.
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) return 2;
    pyinterp_config cfg{};
    cfg.python_path = python_path;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) {
        std::fprintf(stderr, "pyinterp-doctor: Python failed to start: %s\n", pyinterp_strerror(rc));
        return 2;
    }

    run_result shared = run_in("doctor-subinterpreter", PYINTERP_GIL_SHARED, script, callable, python_path);
    bool own_checked = pyinterp_supports_own_gil() != 0;
    run_result own;
    // Only worth it (and only safe) when the script loads in a shared-GIL
    // subinterpreter without needing main.
    if (own_checked && shared.ran && shared.needs.empty() && shared.script_error.empty())
        own = run_in("doctor-own-gil", PYINTERP_GIL_OWN, script, callable, python_path);
    else
        own_checked = false;

    std::printf("pyinterp doctor: %s (Python %d.%d)\n", script, PY_MAJOR_VERSION, PY_MINOR_VERSION);
    if (shared.loaded.empty()) std::printf("no extension modules loaded\n");
    for (const extension& x : shared.loaded) {
        auto need = shared.needs.find(x.name);
        if (need != shared.needs.end()) {
            std::printf("%s: needs the main interpreter (%s) [%s]\n", x.name.c_str(), need->second.c_str(),
                        x.path.c_str());
            continue;
        }
        std::string own_verdict = "own GIL not checked (needs Python 3.12+)";
        if (own_checked) {
            own_verdict = "fine with its own GIL";
            for (const extension& y : own.loaded)
                if (y.name == x.name && !y.error.empty()) own_verdict = "not with its own GIL (" + y.error + ")";
            auto n = own.needs.find(x.name);
            if (n != own.needs.end()) own_verdict = "not with its own GIL (" + n->second + ")";
        }
        std::printf("%s: fine in a subinterpreter; %s [%s]\n", x.name.c_str(), own_verdict.c_str(), x.path.c_str());
    }
    // Findings not tied to an extension module loaded here (a package's
    // sub-interpreter warning, say).
    for (const auto& [mod, why] : shared.needs) {
        bool listed = false;
        for (const extension& x : shared.loaded) listed = listed || x.name == mod;
        if (!listed) std::printf("%s: needs the main interpreter (%s)\n", mod.c_str(), why.c_str());
    }
    int status;
    if (!shared.ran) {
        status = 2;
    } else if (!shared.needs.empty()) {
        std::printf("verdict: needs the main interpreter: serve it with application-group=%%{GLOBAL} "
                    "(PyInterpSubinterpreterFallback route does so automatically)\n");
        status = 1;
    } else if (!shared.script_error.empty()) {
        std::printf("error: the script failed to load: %s\n", shared.script_error.c_str());
        status = 2;
    } else {
        std::printf("verdict: can run isolated in a subinterpreter%s\n",
                    !own_checked             ? ""
                    : own.script_error.empty() ? " (also with its own GIL)"
                                               : " (not with its own GIL)");
        status = 0;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(status);
}
