// Bounded atexit handlers (see atexit_bound.h).  Python-facing functions:
// GIL held.
#include "atexit_bound.h"

#include <string>

#include "interp_state.h"
#include "interrupt.h"
#include "pyinterp/py/exception.h"
#include "pyinterp/py/ref.h"

namespace pyinterp::app {
namespace {

// Process-wide C state, set once before any interpreter is set up.
inflight_registry* g_registry = nullptr;
int g_bound_ms = 0;

struct bounded_object {
    PyObject_HEAD PyObject* func;
};

bounded_object* as_bounded(PyObject* o) noexcept {
    return reinterpret_cast<bounded_object*>(o);
}

// The handler, registered as a request with a deadline while it runs.
PyObject* py_bounded_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    PyObject* func = as_bounded(self)->func;
    std::string what;
    try {
        py::ref name = py::ref::steal(PyObject_GetAttrString(func, "__qualname__"));
        const char* n = name ? PyUnicode_AsUTF8(name.get()) : nullptr;
        what = std::string("atexit handler ") + (n != nullptr ? n : "?");
    } catch (...) {
        return PyErr_NoMemory();
    }
    PyErr_Clear();
    pyinterp::view here = pyinterp::view::current();
    inflight_request job;
    job.script = what.c_str();
    job.start_ns = monotonic_ns();
    job.deadline_ns[unsigned(deadline_kind::timeout)] = job.start_ns + int64_t(g_bound_ms) * 1000000;
    if (here && g_registry != nullptr) g_registry->add(&job, here);
    PyObject* result = PyObject_Call(func, args, kwargs);
    if (here && g_registry != nullptr) {
        if (job.fired() != 0) drop_late_interrupt();
        g_registry->remove(&job);
    }
    return result;
}

// Equal to its handler, so that atexit.unregister(func) finds it.
PyObject* py_bounded_richcompare(PyObject* self, PyObject* other, int op) {
    if (op != Py_EQ && op != Py_NE) Py_RETURN_NOTIMPLEMENTED;
    PyObject* mine = as_bounded(self)->func;
    PyObject* theirs = Py_TYPE(other) == Py_TYPE(self) ? as_bounded(other)->func : other;
    return PyObject_RichCompare(mine, theirs, op);
}

int py_bounded_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_bounded(self)->func);
    return 0;
}

int py_bounded_clear(PyObject* self) {
    Py_CLEAR(as_bounded(self)->func);
    return 0;
}

void py_bounded_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    py_bounded_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyType_Slot bounded_slots[] = {
    {Py_tp_call, reinterpret_cast<void*>(py_bounded_call)},
    {Py_tp_richcompare, reinterpret_cast<void*>(py_bounded_richcompare)},
    {Py_tp_traverse, reinterpret_cast<void*>(py_bounded_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(py_bounded_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(py_bounded_dealloc)},
    {Py_tp_hash, reinterpret_cast<void*>(PyObject_HashNotImplemented)},
    {Py_tp_doc, const_cast<char*>("An atexit handler run with a time bound.")},
    {0, nullptr},
};

PyType_Spec bounded_spec = {
    "_pyinterp.BoundedAtexit",
    sizeof(bounded_object),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    bounded_slots,
};

// atexit.register(func, *args, **kwargs), with func wrapped.  `self` is a
// (type, original register) tuple.
PyObject* py_register(PyObject* self, PyObject* args, PyObject* kwargs) {
    if (PyTuple_GET_SIZE(args) < 1 || !PyCallable_Check(PyTuple_GET_ITEM(args, 0))) {
        PyErr_SetString(PyExc_TypeError, "the first argument must be callable");
        return nullptr;
    }
    auto* type = reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(self, 0));
    PyObject* original = PyTuple_GET_ITEM(self, 1);
    PyObject* func = PyTuple_GET_ITEM(args, 0);
    py::ref wrapped = py::ref::steal(reinterpret_cast<PyObject*>(PyObject_GC_New(bounded_object, type)));
    if (!wrapped) return nullptr;
    as_bounded(wrapped.get())->func = Py_NewRef(func);
    PyObject_GC_Track(wrapped.get());
    py::ref rest = py::ref::steal(PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args)));
    py::ref call_args =
        rest ? py::ref::steal(PySequence_Concat(py::ref::steal(PyTuple_Pack(1, wrapped.get())).get(), rest.get()))
             : py::ref();
    if (!call_args) return nullptr;
    py::ref done = py::ref::steal(PyObject_Call(original, call_args.get(), kwargs));
    if (!done) return nullptr;
    return Py_NewRef(func);  // as atexit.register does: usable as a decorator
}

PyMethodDef register_def = {"register", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_register)),
                            METH_VARARGS | METH_KEYWORDS,
                            "register(func, *args, **kwargs) -> func: run func at exit, bounded in time."};

}  // namespace

bool install_bounded_atexit(inflight_registry* reg, int bound_ms) noexcept {
    g_registry = reg;
    g_bound_ms = bound_ms;
    py::ref atexit = py::ref::steal(PyImport_ImportModule("atexit"));
    if (!atexit) return false;
    py::ref original = py::ref::steal(PyObject_GetAttrString(atexit.get(), "register"));
    py::ref type = py::ref::steal(PyType_FromSpec(&bounded_spec));
    if (!original || !type) return false;
    py::ref state = py::ref::steal(PyTuple_Pack(2, type.get(), original.get()));
    py::ref name = py::ref::steal(PyUnicode_FromString("atexit"));
    py::ref fn = state ? py::ref::steal(PyCFunction_NewEx(&register_def, state.get(), name.get())) : py::ref();
    return fn && PyObject_SetAttrString(atexit.get(), "register", fn.get()) == 0;
}

bool run_atexit_handlers(const pyinterp::view& v) noexcept {
    pyinterp::scoped_enter in(v);
    if (!in) return false;
    py::ref atexit = py::ref::steal(PyImport_ImportModule("atexit"));
    py::ref done = atexit ? py::ref::steal(PyObject_CallMethod(atexit.get(), "_run_exitfuncs", nullptr)) : py::ref();
    if (!done) PyErr_Clear();  // atexit reports each handler's exception itself
    return true;
}

}  // namespace pyinterp::app
