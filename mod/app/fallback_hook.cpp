// The fallback import hook (see fallback_hook.h).
#include "fallback_hook.h"

#include <string>

#include "elf_imports.h"
#include "interp_state.h"

namespace pyinterp::app {
namespace {

// fallback_hook.py as a string (generated from it at build time by
// embed_python.cmake): k_fallback_hook_source.
#include "fallback_hook_source.inc"

// `_pyinterp.elf_imports(path, symbol)`: True, False, or None (unreadable).
PyObject* py_elf_imports(PyObject*, PyObject* args) {
    PyObject* path_obj = nullptr;
    const char* symbol = nullptr;
    if (!PyArg_ParseTuple(args, "O&s:elf_imports", PyUnicode_FSConverter, &path_obj, &symbol)) return nullptr;
    elf_answer a = elf_answer::unreadable;
    std::string path(PyBytes_AS_STRING(path_obj), size_t(PyBytes_GET_SIZE(path_obj)));
    Py_DECREF(path_obj);
    try {
        std::string sym(symbol);
        // Reading a cold .so from disk: let other threads run meanwhile.
        Py_BEGIN_ALLOW_THREADS a = elf_imports_symbol(path, sym);
        Py_END_ALLOW_THREADS
    } catch (...) {
        return PyErr_NoMemory();
    }
    if (a == elf_answer::unreadable) Py_RETURN_NONE;
    return PyBool_FromLong(a == elf_answer::imports);
}

PyMethodDef elf_imports_def = {
    "elf_imports", py_elf_imports, METH_VARARGS,
    "elf_imports(path, symbol) -> True/False/None: does the shared object import the symbol?"};

// `_elf_init_kind(path)`: "multi-phase", "single-phase", "both", "neither"
// or "unreadable" (elf_imports.h: module_init).
PyObject* py_elf_init_kind(PyObject*, PyObject* arg) {
    PyObject* path_obj = nullptr;
    if (!PyUnicode_FSConverter(arg, &path_obj)) return nullptr;
    module_init kind = module_init::unreadable;
    try {
        std::string path(PyBytes_AS_STRING(path_obj), size_t(PyBytes_GET_SIZE(path_obj)));
        Py_DECREF(path_obj);
        Py_BEGIN_ALLOW_THREADS kind = elf_module_init(path);
        Py_END_ALLOW_THREADS
    } catch (...) {
        return PyErr_NoMemory();
    }
    return PyUnicode_FromString(module_init_name(kind));
}

PyMethodDef elf_init_kind_def = {"elf_init_kind", py_elf_init_kind, METH_O,
                                 "elf_init_kind(path) -> how the extension module initialises itself"};

// `_late_refusal()`: counts an own-GIL refusal made outside a script load
// in the interpreter's state (its `self` is a capsule of the interp_state),
// so that the executor notices it after the request without calling Python.
PyObject* py_late_refusal(PyObject* self, PyObject*) {
    auto* st = static_cast<interp_state*>(PyCapsule_GetPointer(self, "pyinterp.interp_state"));
    if (st == nullptr) return nullptr;
    ++st->late_refusals;
    Py_RETURN_NONE;
}

PyMethodDef late_refusal_def = {"late_refusal", py_late_refusal, METH_NOARGS, "counts a refusal outside a load"};

// dict[name] = value, stealing value; false with an exception set.
bool put(PyObject* dict, const char* name, PyObject* value) noexcept {
    if (value == nullptr) return false;
    int rc = PyDict_SetItemString(dict, name, value);
    Py_DECREF(value);
    return rc == 0;
}

}  // namespace

py::ref fallback_hook_new(interp_state* st, bool own_gil) noexcept {
    py::ref code = py::ref::steal(Py_CompileString(k_fallback_hook_source, "fallback_hook.py", Py_file_input));
    py::ref hook = py::ref::steal(code ? PyModule_New("_pyinterp_fallback") : nullptr);
    PyObject* dict = hook ? PyModule_GetDict(hook.get()) : nullptr;  // borrowed
    if (dict == nullptr || PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0) return {};
    py::ref capsule = py::ref::steal(PyCapsule_New(st, "pyinterp.interp_state", nullptr));
    if (!capsule || !put(dict, "_elf_imports", PyCFunction_New(&elf_imports_def, nullptr)) ||
        !put(dict, "_elf_init_kind", PyCFunction_New(&elf_init_kind_def, nullptr)) ||
        !put(dict, "_own_gil", PyBool_FromLong(own_gil ? 1 : 0)) ||
        !put(dict, "_late_refusal", PyCFunction_New(&late_refusal_def, capsule.get())))
        return {};
    if (!py::ref::steal(PyEval_EvalCode(code.get(), dict, dict))) return {};
    return hook;
}

}  // namespace pyinterp::app
