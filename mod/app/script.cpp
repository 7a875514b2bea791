// Executing scripts (see script.h).  GIL held throughout.
#include "script.h"

#include <cstdio>

#include "pyinterp/py/exception.h"

namespace pyinterp::app {
namespace {

// The script's source as bytes (opened with PyFile_OpenCodeObject, so
// audit hooks see it), or an empty ref with an exception set.
py::ref read_source(PyObject* path) noexcept {
    py::ref file = py::ref::steal(PyFile_OpenCodeObject(path));
    if (!file) return {};
    py::ref source = py::ref::steal(PyObject_CallMethod(file.get(), "read", nullptr));
    py::ref closed = py::ref::steal(PyObject_CallMethod(file.get(), "close", nullptr));
    if (!closed) source.reset();
    if (source && !PyBytes_Check(source.get())) {
        PyErr_SetString(PyExc_TypeError, "reading the script did not return bytes");
        source.reset();
    }
    return source;
}

// sys.modules name of the script at `path` (a str), from its bytes in the
// file system encoding.
bool module_name_of(PyObject* path, script_module_name* out) noexcept {
    py::ref bytes = py::ref::steal(PyUnicode_EncodeFSDefault(path));
    if (!bytes) return false;
    *out = script_module_name(PyBytes_AS_STRING(bytes.get()), size_t(PyBytes_GET_SIZE(bytes.get())));
    return true;
}

}  // namespace

uint64_t stable_hash(const char* s, size_t n) noexcept {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 1099511628211ULL;
    return h;
}

script_module_name::script_module_name(const char* path, size_t n) noexcept {
    std::snprintf(text, sizeof text, "_pyinterp_script_%016llx", static_cast<unsigned long long>(stable_hash(path, n)));
}

py::ref exec_script(PyObject* path) noexcept {
    script_module_name name("", 0);
    if (!module_name_of(path, &name)) return {};
    py::ref source = read_source(path);
    if (!source) return {};
    py::ref code =
        py::ref::steal(Py_CompileStringObject(PyBytes_AS_STRING(source.get()), path, Py_file_input, nullptr, -1));
    if (!code) return {};
    py::ref module = py::ref::steal(PyModule_New(name.c_str()));
    PyObject* dict = module ? PyModule_GetDict(module.get()) : nullptr;  // borrowed
    bool ok = dict != nullptr && PyDict_SetItemString(dict, "__file__", path) == 0 &&
              PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) == 0 &&
              PyDict_SetItemString(PyImport_GetModuleDict(), name.c_str(), module.get()) == 0;
    py::ref result = py::ref::steal(ok ? PyEval_EvalCode(code.get(), dict, dict) : nullptr);
    if (!result) {
        // Forget the half-executed module, keeping the script's exception.
        if (module) forget_script(path, module.get());
        return {};
    }
    return module;
}

void forget_script(PyObject* path, PyObject* module) noexcept {
    py::saved_exception pending;
    script_module_name name("", 0);
    if (module_name_of(path, &name)) {
        PyObject* modules = PyImport_GetModuleDict();  // borrowed
        if (PyDict_GetItemString(modules, name.c_str()) == module) PyDict_DelItemString(modules, name.c_str());
    }
    PyErr_Clear();
}

}  // namespace pyinterp::app
