// The fallback import hook (see fallback_hook.h).
#include "fallback_hook.h"

#include <string>

#include "elf_imports.h"

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

}  // namespace

py::ref fallback_hook_new() noexcept {
    py::ref code = py::ref::steal(Py_CompileString(k_fallback_hook_source, "fallback_hook.py", Py_file_input));
    py::ref hook = py::ref::steal(code ? PyModule_New("_pyinterp_fallback") : nullptr);
    PyObject* dict = hook ? PyModule_GetDict(hook.get()) : nullptr;  // borrowed
    py::ref elf = py::ref::steal(dict ? PyCFunction_New(&elf_imports_def, nullptr) : nullptr);
    if (!elf || PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0 ||
        PyDict_SetItemString(dict, "_elf_imports", elf.get()) < 0)
        return {};
    if (!py::ref::steal(PyEval_EvalCode(code.get(), dict, dict))) return {};
    return hook;
}

}  // namespace pyinterp::app
