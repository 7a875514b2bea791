// The private `_pyinterp` module (see pymodule.h).  Every function here runs
// with the GIL of the interpreter concerned held.
#include "pymodule.h"

#include <new>

#include "log_stream.h"
#include "py_compat.h"
#include "wsgi_environ.h"
#include "wsgi_file_wrapper.h"
#include "wsgi_input.h"
#include "wsgi_start_response.h"

namespace pyinterp::mod {
namespace {

PyTypeObject* make_type(PyObject* module, PyType_Spec* spec) noexcept {
    return reinterpret_cast<PyTypeObject*>(PyType_FromModuleAndSpec(module, spec, nullptr));
}

// Py_mod_exec: create the heap types and the per-interpreter containers.
int exec_module(PyObject* module) noexcept {
    module_state* st = state_of(module);
    if (st == nullptr) return -1;
    st->input_type = make_type(module, &input_type_spec);
    st->log_type = st->input_type ? make_type(module, &log_type_spec) : nullptr;
    st->start_response_type = st->log_type ? make_type(module, &start_response_type_spec) : nullptr;
    st->file_wrapper_type = st->start_response_type ? make_type(module, &file_wrapper_type_spec) : nullptr;
    if (st->file_wrapper_type == nullptr) return -1;
    if (PyModule_AddObjectRef(module, "FileWrapper", reinterpret_cast<PyObject*>(st->file_wrapper_type)) < 0)
        return -1;
    st->apps = PyDict_New();
    if (st->apps == nullptr || PyModule_AddObjectRef(module, "applications", st->apps) < 0) return -1;
    st->wsgi_version = Py_BuildValue("(ii)", 1, 0);
    st->str_close = PyUnicode_InternFromString("close");
    st->environ_keys = new (std::nothrow) str_cache(str_cache::latin1);
    st->names = new (std::nothrow) str_cache(str_cache::fs);
    if (st->wsgi_version == nullptr || st->str_close == nullptr) return -1;
    if (st->environ_keys == nullptr || st->names == nullptr) {
        PyErr_NoMemory();
        return -1;
    }
    if (!environ_init_keys(st)) return -1;
    PyObject* thread = PyImport_ImportModule("_thread");
    st->load_lock = thread ? PyObject_CallMethod(thread, "RLock", nullptr) : nullptr;
    Py_XDECREF(thread);
    return st->load_lock != nullptr ? 0 : -1;
}

int traverse_module(PyObject* module, visitproc visit, void* arg) {
    module_state* st = static_cast<module_state*>(PyModule_GetState(module));
    if (st == nullptr) return 0;
    Py_VISIT(st->input_type);
    Py_VISIT(st->log_type);
    Py_VISIT(st->start_response_type);
    Py_VISIT(st->file_wrapper_type);
    Py_VISIT(st->apps);
    Py_VISIT(st->load_lock);
    Py_VISIT(st->fallback_hook);
    Py_VISIT(st->needs_main);
    Py_VISIT(st->wsgi_version);
    Py_VISIT(st->str_close);
    for (PyObject* key : st->environ_fixed) Py_VISIT(key);
    return 0;
}

int clear_module(PyObject* module) {
    module_state* st = static_cast<module_state*>(PyModule_GetState(module));
    if (st == nullptr) return 0;
    Py_CLEAR(st->input_type);
    Py_CLEAR(st->log_type);
    Py_CLEAR(st->start_response_type);
    Py_CLEAR(st->file_wrapper_type);
    Py_CLEAR(st->apps);
    Py_CLEAR(st->load_lock);
    Py_CLEAR(st->fallback_hook);
    Py_CLEAR(st->needs_main);
    Py_CLEAR(st->wsgi_version);
    Py_CLEAR(st->str_close);
    for (PyObject*& key : st->environ_fixed) Py_CLEAR(key);
    if (st->environ_keys != nullptr) st->environ_keys->clear();
    if (st->names != nullptr) st->names->clear();
    return 0;
}

void free_module(void* module) {
    clear_module(static_cast<PyObject*>(module));
    module_state* st = static_cast<module_state*>(PyModule_GetState(static_cast<PyObject*>(module)));
    if (st != nullptr) {
        delete st->environ_keys;
        delete st->names;
        st->environ_keys = nullptr;
        st->names = nullptr;
    }
}

PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(exec_module)},
    PYINTERP_MOD_PER_INTERPRETER_GIL_SLOT
    {0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    k_private_module,
    "Private support module of mod_pyinterp (one instance per interpreter).",
    sizeof(module_state),
    nullptr,
    module_slots,
    traverse_module,
    clear_module,
    free_module,
};

}  // namespace

extern "C" PyObject* pyinterp_private_module_init(void) {
    return PyModuleDef_Init(&module_def);
}

PyObject* private_module() noexcept {
    PyObject* name = PyUnicode_FromString(k_private_module);
    if (name == nullptr) return nullptr;
    PyObject* m = PyImport_GetModule(name);  // fast path: already in sys.modules
    if (m == nullptr && !PyErr_Occurred()) m = PyImport_Import(name);
    Py_DECREF(name);
    if (m != nullptr && PyModule_GetDef(m) != &module_def) {
        Py_DECREF(m);
        PyErr_SetString(PyExc_RuntimeError, "sys.modules['_pyinterp'] is not mod_pyinterp's module");
        return nullptr;
    }
    return m;
}

module_state* state_of(PyObject* module) noexcept {
    return static_cast<module_state*>(PyModule_GetState(module));
}

module_state* state_of_type(PyTypeObject* type) noexcept {
    return static_cast<module_state*>(PyType_GetModuleState(type));
}

}  // namespace pyinterp::mod
