// The `pyinterp` Python module (pyinterp/module.h): call_soon, call_later
// and interpreter(), on the default loop, plus the C API capsule.
//
// Multi-phase initialisation; everything Python lives in module state or in
// handle objects, one set per interpreter.  Every py_* function runs with the
// calling interpreter's GIL held.
#include <cmath>
#include <cstdio>

#include "internal.h"
#include "pyinterp/module.h"

namespace pyinterp::detail {
namespace {

struct module_state {
    PyTypeObject* handle_type = nullptr;
};

module_state* state_of(PyObject* module) noexcept {
    return static_cast<module_state*>(PyModule_GetState(module));
}

// ------------------------------------------------------------ Handle

// What call_soon/call_later return.  The loop's task calls the handle's
// hidden `_run` (a builtin bound to the handle, owned by the task's
// pyinterp_callback), so the handle lives at least until the task is run or
// dropped, and the callback's release inside the interpreter frees it.
struct handle_object {
    PyObject_HEAD
    PyObject* fn;                  // cleared once run or cancelled
    PyObject* args;                // tuple, cleared with fn
    pyinterp_loop_handle* handle;  // a reference, or nullptr before scheduling
};

handle_object* as_handle(PyObject* o) noexcept { return reinterpret_cast<handle_object*>(o); }

// The task's callable: fn(*args), at most once.
PyObject* py_handle_run(PyObject* self, PyObject*) {
    handle_object* h = as_handle(self);
    PyObject* fn = h->fn;
    PyObject* args = h->args;
    h->fn = h->args = nullptr;  // break cycles through fn or args early
    if (fn == nullptr) {
        Py_XDECREF(args);
        Py_RETURN_NONE;
    }
    PyObject* result = PyObject_Call(fn, args, nullptr);
    Py_DECREF(fn);
    Py_DECREF(args);
    return result;
}

PyMethodDef handle_run_def = {"_run", py_handle_run, METH_NOARGS, nullptr};

PyObject* py_handle_cancel(PyObject* self, PyObject*) {
    handle_object* h = as_handle(self);
    if (h->handle == nullptr || pyinterp_loop_cancel(h->handle) != PYINTERP_OK) Py_RETURN_FALSE;
    Py_CLEAR(h->fn);
    Py_CLEAR(h->args);
    Py_RETURN_TRUE;
}

PyObject* py_handle_cancelled(PyObject* self, PyObject*) {
    handle_object* h = as_handle(self);
    return PyBool_FromLong(h->handle != nullptr && pyinterp_loop_handle_state(h->handle) == PYINTERP_LOOP_CANCELLED);
}

PyObject* py_handle_repr(PyObject* self) {
    handle_object* h = as_handle(self);
    static const char* const names[] = {"pending", "running", "done", "cancelled"};
    int s = h->handle != nullptr ? pyinterp_loop_handle_state(h->handle) : PYINTERP_LOOP_CANCELLED;
    return PyUnicode_FromFormat("<pyinterp.Handle %s>", s >= 0 && s <= 3 ? names[s] : "?");
}

int handle_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));  // heap type instances own a reference to it
    Py_VISIT(as_handle(self)->fn);
    Py_VISIT(as_handle(self)->args);
    return 0;
}

int handle_clear(PyObject* self) {
    Py_CLEAR(as_handle(self)->fn);
    Py_CLEAR(as_handle(self)->args);
    return 0;
}

void handle_dealloc(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    handle_clear(self);
    pyinterp_loop_handle_free(as_handle(self)->handle);  // any thread, no GIL needed
    tp->tp_free(self);
    Py_DECREF(tp);
}

PyMethodDef handle_methods[] = {
    {"cancel", py_handle_cancel, METH_NOARGS,
     "cancel() -> bool\n\nKeep the call from running.  True if it will not run, False if it ran or is running."},
    {"cancelled", py_handle_cancelled, METH_NOARGS,
     "cancelled() -> bool\n\nTrue if the call will never run: cancelled, its interpreter ending, or the loop stopped."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot handle_slots[] = {
    {Py_tp_doc, const_cast<char*>("A call scheduled with pyinterp.call_soon() or pyinterp.call_later().")},
    {Py_tp_dealloc, reinterpret_cast<void*>(handle_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(handle_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(handle_clear)},
    {Py_tp_repr, reinterpret_cast<void*>(py_handle_repr)},
    {Py_tp_methods, handle_methods},
    {0, nullptr},
};

PyType_Spec handle_spec = {
    "pyinterp.Handle",
    sizeof(handle_object),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    handle_slots,
};

// ------------------------------------------------------------ functions

PyObject* raise_status(int rc) {
    switch (rc) {
        case PYINTERP_ERR_NOT_FOUND:
            PyErr_SetString(PyExc_RuntimeError, "pyinterp: this interpreter was not created through pyinterp");
            return nullptr;
        case PYINTERP_ERR_GONE:
            PyErr_SetString(PyExc_RuntimeError, "pyinterp: this interpreter is ending");
            return nullptr;
        case PYINTERP_ERR_NOT_INITIALIZED:
        case PYINTERP_ERR_STATE:
            PyErr_Format(PyExc_RuntimeError, "pyinterp: the loop is not running (%s)", pyinterp_strerror(rc));
            return nullptr;
        default:
            return pyinterp_set_pyerr(rc);
    }
}

// Schedule fn(*args) on the default loop, after `delay_us` (negative: soon).
PyObject* schedule(PyObject* module, int64_t delay_us, PyObject* fn, PyObject* const* args, Py_ssize_t nargs) {
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "pyinterp: a callable is required, not %.100s", Py_TYPE(fn)->tp_name);
        return nullptr;
    }
    module_state* st = state_of(module);
    if (st == nullptr || st->handle_type == nullptr) {
        PyErr_SetString(PyExc_SystemError, "pyinterp: module state missing");
        return nullptr;
    }
    pyinterp_loop* loop = nullptr;
    int rc = pyinterp_loop_default(&loop);
    if (rc != PYINTERP_OK) return raise_status(rc);

    PyObject* tuple = PyTuple_New(nargs);
    if (tuple == nullptr) return nullptr;
    for (Py_ssize_t i = 0; i < nargs; ++i) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    auto* h = reinterpret_cast<handle_object*>(st->handle_type->tp_alloc(st->handle_type, 0));
    if (h == nullptr) {
        Py_DECREF(tuple);
        return nullptr;
    }
    h->fn = Py_NewRef(fn);
    h->args = tuple;
    PyObject* run = PyCFunction_NewEx(&handle_run_def, reinterpret_cast<PyObject*>(h), nullptr);
    pyinterp_callback* cb = nullptr;
    rc = run != nullptr ? pyinterp_callback_new(run, &cb) : PYINTERP_ERR_PYTHON;
    Py_XDECREF(run);
    if (rc == PYINTERP_OK) {
        pyinterp_loop_task task{};
        task.callback = cb;
        task.flags = PYINTERP_LOOP_FREE_CALLBACK;
        rc = delay_us < 0 ? pyinterp_loop_call_soon(loop, &task, &h->handle)
                          : pyinterp_loop_call_later(loop, static_cast<uint64_t>(delay_us), &task, &h->handle);
        if (rc != PYINTERP_OK) pyinterp_callback_free(cb);
    }
    if (rc != PYINTERP_OK) {
        Py_DECREF(h);
        return rc == PYINTERP_ERR_PYTHON ? nullptr : raise_status(rc);
    }
    return reinterpret_cast<PyObject*>(h);
}

PyObject* py_call_soon(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_soon() takes a callable and its arguments");
        return nullptr;
    }
    return schedule(module, -1, args[0], args + 1, nargs - 1);
}

PyObject* py_call_later(PyObject* module, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_later() takes a delay in seconds, a callable and its arguments");
        return nullptr;
    }
    double seconds = PyFloat_AsDouble(args[0]);
    if (seconds == -1.0 && PyErr_Occurred()) return nullptr;
    if (std::isnan(seconds)) {
        PyErr_SetString(PyExc_ValueError, "call_later(): the delay is NaN");
        return nullptr;
    }
    // Like asyncio: a negative delay means "now"; a huge one is clamped by the loop.
    double us = seconds > 0 ? std::ceil(seconds * 1e6) : 0.0;
    int64_t delay_us = us < 9.0e18 ? static_cast<int64_t>(us) : INT64_MAX;
    return schedule(module, delay_us, args[1], args + 2, nargs - 2);
}

PyObject* py_interpreter(PyObject*, PyObject*) {
    pyinterp_view* v = nullptr;
    int rc = pyinterp_view_current(&v);
    if (rc == PYINTERP_ERR_NOT_FOUND) {
        // An interpreter the library did not create: its id, nothing else.
        return Py_BuildValue("(OLO)", Py_None, static_cast<long long>(PyInterpreterState_GetID(PyInterpreterState_Get())),
                             Py_None);
    }
    if (rc != PYINTERP_OK) return raise_status(rc);
    PyObject* result = Py_BuildValue("(sLO)", pyinterp_view_name(v), static_cast<long long>(pyinterp_view_id(v)),
                                     pyinterp_view_own_gil(v) ? Py_True : Py_False);
    pyinterp_view_free(v);
    return result;
}

PyMethodDef module_methods[] = {
    {"call_soon", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_call_soon)), METH_FASTCALL,
     "call_soon(fn, *args) -> Handle\n\n"
     "Run fn(*args) soon on a pyinterp loop thread, in this interpreter.  Calls\n"
     "scheduled from one interpreter run one at a time, in the order scheduled.\n"
     "An exception it raises is logged with its traceback."},
    {"call_later", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_call_later)), METH_FASTCALL,
     "call_later(seconds, fn, *args) -> Handle\n\n"
     "Run fn(*args) after `seconds` on a pyinterp loop thread, in this interpreter.\n"
     "Calls with equal deadlines run in the order scheduled."},
    {"interpreter", py_interpreter, METH_NOARGS,
     "interpreter() -> (name, id, own_gil)\n\n"
     "The current interpreter's group name ('main' for the main interpreter), its\n"
     "id and whether it has a GIL of its own.  For an interpreter pyinterp did not\n"
     "create, name and own_gil are None."},
    {nullptr, nullptr, 0, nullptr},
};

// ------------------------------------------------------------ C API

const pyinterp_capi k_capi = {
    PYINTERP_CAPI_VERSION,
    sizeof(pyinterp_capi),
    pyinterp_strerror,
    pyinterp_view_current,
    pyinterp_view_copy,
    pyinterp_view_free,
    pyinterp_view_name,
    pyinterp_view_id,
    pyinterp_view_is_live,
    pyinterp_enter,
    pyinterp_leave,
    pyinterp_callback_new,
    pyinterp_callback_call,
    pyinterp_callback_view,
    pyinterp_callback_free,
    pyinterp_loop_default,
    pyinterp_loop_call_soon,
    pyinterp_loop_call_later,
    pyinterp_loop_watch_fd,
    pyinterp_loop_cancel,
    pyinterp_loop_handle_state,
    pyinterp_loop_handle_free,
    // version 2
    pyinterp_set_pyerr,
    pyinterp_log,
    pyinterp_supports_own_gil,
    pyinterp_interp_create,
    pyinterp_interp_find,
    pyinterp_interp_end,
    pyinterp_view_main,
    pyinterp_view_own_gil,
    pyinterp_guard_new,
    pyinterp_guard_free,
    pyinterp_enter_guarded,
    pyinterp_thread_release,
    pyinterp_thread_is_attached,
    pyinterp_loop_new,
    pyinterp_loop_stop,
    pyinterp_loop_free,
    pyinterp_loop_threads,
    pyinterp_view_thread_states,
};

// ------------------------------------------------------------ module

// Extension mode without a host: nobody else will show the library's
// warnings and errors (a failing callback's traceback goes to
// sys.unraisablehook instead).  Any thread, possibly with a GIL held: plain
// stdio only.
void log_to_stderr(int level, const char* message, void*) {
    static const char* const names[] = {"debug", "info", "warning", "error"};
    // The message names its origin ("pyinterp: ..."); add the level only.
    std::fprintf(stderr, "[%s] %s\n", level >= 0 && level <= 3 ? names[level] : "?", message);
}

int exec_module(PyObject* module) {
    if (current_interpreter_owner() == interp_owner::other_copy) {
        // This binary is a second copy of the library (see ownership.cpp).
        PyObject* file = PyModule_GetFilenameObject(module);
        if (file == nullptr) PyErr_Clear();
        PyErr_Format(PyExc_ImportError,
                     "pyinterp: this interpreter is managed by another copy of the pyinterp library (linked into "
                     "the program that embeds Python, or into another extension module); the `pyinterp` module "
                     "at %R is a second copy that knows none of its interpreters. A program that links the "
                     "library registers its own module before starting Python: "
                     "PyImport_AppendInittab(\"pyinterp\", PyInit_pyinterp)",
                     file != nullptr ? file : Py_None);
        Py_XDECREF(file);
        return -1;
    }
    // Host mode (or an earlier import) started the runtime already; checked
    // first so that an import during interpreter creation never waits on
    // pyinterp_initialize()'s lock.
    if (!rt().initialized.load()) {
        int rc = pyinterp_initialize(nullptr);  // extension mode: the GIL is held
        if (rc != PYINTERP_OK) {
            PyErr_Format(PyExc_ImportError, "pyinterp: the runtime failed to start: %s", pyinterp_strerror(rc));
            return -1;
        }
        if (!rt().host_mode && !log_sink_installed()) set_fallback_log_callback(log_to_stderr, PYINTERP_LOG_WARN);
    }
    module_state* st = state_of(module);
    st->handle_type = reinterpret_cast<PyTypeObject*>(PyType_FromModuleAndSpec(module, &handle_spec, nullptr));
    if (st->handle_type == nullptr) return -1;
    if (PyModule_AddObjectRef(module, "Handle", reinterpret_cast<PyObject*>(st->handle_type)) < 0) return -1;
    PyObject* capsule = PyCapsule_New(const_cast<pyinterp_capi*>(&k_capi), PYINTERP_CAPI_NAME, nullptr);
    if (capsule == nullptr) return -1;
    int rc = PyModule_AddObjectRef(module, "_C_API", capsule);
    Py_DECREF(capsule);
    return rc;
}

int module_traverse(PyObject* module, visitproc visit, void* arg) {
    module_state* st = state_of(module);
    if (st != nullptr) Py_VISIT(st->handle_type);
    return 0;
}

int module_clear(PyObject* module) {
    module_state* st = state_of(module);
    if (st != nullptr) Py_CLEAR(st->handle_type);
    return 0;
}

void module_free(void* module) {
    module_clear(static_cast<PyObject*>(module));
}

PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, reinterpret_cast<void*>(exec_module)},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, nullptr},
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pyinterp",
    "Callbacks on pyinterp's loop threads, run in the interpreter that scheduled them.",
    sizeof(module_state),
    module_methods,
    module_slots,
    module_traverse,
    module_clear,
    module_free,
};

}  // namespace
}  // namespace pyinterp::detail

PyMODINIT_FUNC PyInit_pyinterp(void) {
    return PyModuleDef_Init(&pyinterp::detail::module_def);
}
