// The private `_pyinterp` module (see interp_state.h).  Every function here
// runs with the GIL of the interpreter concerned held.
#include "interp_state.h"

#include <new>

#include "pyinterp/py/module_slots.h"

namespace pyinterp::app {
namespace {

// Set once before Python starts; C function pointers only.
const protocol_state_ops* g_protocol_ops = nullptr;

// Py_mod_exec: the per-interpreter containers, then the protocol's state.
int exec_module(PyObject* module) noexcept {
    interp_state* st = state_of(module);
    if (st == nullptr) return -1;
    st->apps = PyDict_New();
    if (st->apps == nullptr || PyModule_AddObjectRef(module, "applications", st->apps) < 0) return -1;
    st->names = new (std::nothrow) str_cache(str_cache::fs);
    if (st->names == nullptr) {
        PyErr_NoMemory();
        return -1;
    }
    py::ref thread = py::ref::steal(PyImport_ImportModule("_thread"));
    st->load_lock = thread ? PyObject_CallMethod(thread.get(), "RLock", nullptr) : nullptr;
    if (st->load_lock == nullptr) return -1;
    if (g_protocol_ops != nullptr && g_protocol_ops->init != nullptr) return g_protocol_ops->init(module, st);
    return 0;
}

int traverse_module(PyObject* module, visitproc visit, void* arg) {
    auto* st = static_cast<interp_state*>(PyModule_GetState(module));
    if (st == nullptr) return 0;
    Py_VISIT(st->apps);
    Py_VISIT(st->load_lock);
    Py_VISIT(st->fallback_hook);
    Py_VISIT(st->needs_main);
    Py_VISIT(st->needs_shared);
    if (g_protocol_ops != nullptr && g_protocol_ops->traverse != nullptr)
        return g_protocol_ops->traverse(st, visit, arg);
    return 0;
}

int clear_module(PyObject* module) {
    auto* st = static_cast<interp_state*>(PyModule_GetState(module));
    if (st == nullptr) return 0;
    Py_CLEAR(st->apps);
    Py_CLEAR(st->load_lock);
    Py_CLEAR(st->fallback_hook);
    Py_CLEAR(st->needs_main);
    Py_CLEAR(st->needs_shared);
    if (st->names != nullptr) st->names->clear();
    if (g_protocol_ops != nullptr && g_protocol_ops->clear != nullptr) g_protocol_ops->clear(st);
    return 0;
}

void free_module(void* module) {
    clear_module(static_cast<PyObject*>(module));
    auto* st = static_cast<interp_state*>(PyModule_GetState(static_cast<PyObject*>(module)));
    if (st == nullptr) return;
    if (g_protocol_ops != nullptr && g_protocol_ops->free != nullptr) g_protocol_ops->free(st);
    delete st->names;
    st->names = nullptr;
}

// All its Python state is in module state: fine with an own GIL.
// clang-format off
PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(exec_module)},
    PYINTERP_PER_INTERPRETER_GIL_SLOT
    {0, nullptr},
};
// clang-format on

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, k_private_module, "Private support module of pyinterp (one instance per interpreter).",
    sizeof(interp_state),  nullptr,          module_slots,
    traverse_module,       clear_module,     free_module};

PyObject* init_private_module() {
    return PyModuleDef_Init(&module_def);
}

}  // namespace

bool register_private_module(const protocol_state_ops* ops) noexcept {
    g_protocol_ops = ops;
    return PyImport_AppendInittab(k_private_module, init_private_module) == 0;
}

py::ref private_module() noexcept {
    py::ref name = py::ref::steal(PyUnicode_FromString(k_private_module));
    if (!name) return {};
    py::ref m = py::ref::steal(PyImport_GetModule(name.get()));  // fast path: already in sys.modules
    if (!m && !PyErr_Occurred()) m = py::ref::steal(PyImport_Import(name.get()));
    if (m && PyModule_GetDef(m.get()) != &module_def) {
        PyErr_SetString(PyExc_RuntimeError, "sys.modules['_pyinterp'] is not pyinterp's private module");
        return {};
    }
    return m;
}

interp_state* state_of(PyObject* module) noexcept {
    return static_cast<interp_state*>(PyModule_GetState(module));
}

interp_state* state_of_type(PyTypeObject* type) noexcept {
    return static_cast<interp_state*>(PyType_GetModuleState(type));
}

}  // namespace pyinterp::app
