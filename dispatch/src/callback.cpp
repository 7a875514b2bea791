// Callbacks: a Python callable paired with its interpreter, callable and
// freeable from any thread.
#include <new>
#include <vector>

#include "compat.h"
#include "internal.h"
#include "pyinterp/py/exception.h"

namespace pyinterp::detail {
namespace {

// The node comes first so a list node converts back to its callback.
struct callback_impl {
    callback_node node;
    interp_record* record = nullptr;  // holds a reference
    PyObject* callable = nullptr;     // released in its interpreter
    bool linked = false;              // in record->callbacks (under mu)
    bool orphan = false;              // freed by its owner during teardown
};

callback_impl* impl(pyinterp_callback* cb) noexcept { return reinterpret_cast<callback_impl*>(cb); }
const callback_impl* impl(const pyinterp_callback* cb) noexcept {
    return reinterpret_cast<const callback_impl*>(cb);
}

void unlink(callback_impl* cb) noexcept {
    cb->node.prev->next = cb->node.next;
    cb->node.next->prev = cb->node.prev;
    cb->node.next = cb->node.prev = nullptr;
    cb->linked = false;
}

}  // namespace

void release_callbacks(interp_record* r) noexcept {
    // Take the list under the mutex, drop the references outside it: a
    // destructor run by Py_DECREF may call back into the library.
    std::vector<PyObject*> refs;
    std::vector<callback_impl*> orphans;
    {
        std::lock_guard<std::mutex> lk(r->mu);
        while (r->callbacks.next != &r->callbacks) {
            auto* cb = reinterpret_cast<callback_impl*>(r->callbacks.next);
            unlink(cb);
            try {
                if (cb->callable != nullptr) refs.push_back(cb->callable);
                if (cb->orphan) orphans.push_back(cb);
            } catch (...) {
                // Out of memory: leak this reference rather than fail teardown.
            }
            cb->callable = nullptr;
        }
    }
    for (PyObject* o : refs) Py_DECREF(o);
    for (callback_impl* cb : orphans) {
        delete cb;
        record_unref(r);
    }
}

}  // namespace pyinterp::detail

using namespace pyinterp::detail;
namespace py = pyinterp::py;

extern "C" {

int pyinterp_callback_new(PyObject* callable, pyinterp_callback** out) {
    if (out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    if (!rt().initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    interp_record* r;
    int rc = current_record(&r);
    if (rc != PYINTERP_OK) return rc;
    if (callable == nullptr || !PyCallable_Check(callable)) {
        record_unref(r);
        return PYINTERP_ERR_INVALID;
    }
    auto* cb = new (std::nothrow) callback_impl;
    if (cb == nullptr) {
        record_unref(r);
        return PYINTERP_ERR_NOMEM;
    }
    cb->record = r;
    {
        std::lock_guard<std::mutex> lk(r->mu);
        if (!r->live()) {
            delete cb;
            record_unref(r);
            return PYINTERP_ERR_GONE;
        }
        Py_INCREF(callable);
        cb->callable = callable;
        cb->node.next = r->callbacks.next;
        cb->node.prev = &r->callbacks;
        r->callbacks.next->prev = &cb->node;
        r->callbacks.next = &cb->node;
        cb->linked = true;
    }
    *out = reinterpret_cast<pyinterp_callback*>(cb);
    return PYINTERP_OK;
}

int pyinterp_callback_call(pyinterp_callback* callback, pyinterp_args_fn make_args,
                           pyinterp_result_fn on_result, void* user) {
    if (callback == nullptr) return PYINTERP_ERR_INVALID;
    callback_impl* cb = impl(callback);
    pyinterp_token token;
    int rc = enter(cb->record, false, &token);
    if (rc != PYINTERP_OK) return rc;
    {
        // Entered a thread state that was already attached: keep its pending
        // exception, if any, out of this call.
        py::saved_exception pending;
        py::ref args = py::ref::steal(make_args != nullptr ? make_args(user) : PyTuple_New(0));
        py::ref result;
        if (args && !PyTuple_Check(args.get())) {
            PyErr_SetString(PyExc_TypeError, "pyinterp: make_args must return a tuple");
        } else if (args) {
            result = py::ref::steal(PyObject_Call(cb->callable, args.get(), nullptr));
        }
        if (result && on_result != nullptr && on_result(result.get(), user) < 0) result.reset();
        if (!result) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_SystemError, "pyinterp: callback failed without an exception");
            // Where the host logs, or where Python reports what it cannot raise.
            if (log_sink_installed()) log_python_error(PYINTERP_LOG_ERROR, "pyinterp: exception in callback");
            else py::write_unraisable("pyinterp callback", cb->callable);
            rc = PYINTERP_ERR_PYTHON;
        }
    }
    leave(token);
    return rc;
}

pyinterp_view* pyinterp_callback_view(const pyinterp_callback* callback) {
    if (callback == nullptr) return nullptr;
    interp_record* r = impl(callback)->record;
    record_ref(r);
    return as_view(r);
}

void pyinterp_callback_free(pyinterp_callback* callback) {
    if (callback == nullptr) return;
    callback_impl* cb = impl(callback);
    interp_record* r = cb->record;
    pyinterp_token token;
    if (rt().initialized.load() && enter(r, false, &token) == PYINTERP_OK) {
        PyObject* callable;
        {
            std::lock_guard<std::mutex> lk(r->mu);
            if (cb->linked) unlink(cb);
            callable = cb->callable;
            cb->callable = nullptr;
        }
        Py_XDECREF(callable);
        leave(token);
    } else {
        std::lock_guard<std::mutex> lk(r->mu);
        if (cb->linked) {
            // Ending: its ending thread releases the reference and frees it.
            cb->orphan = true;
            return;
        }
        // Gone: the reference was released during teardown.
    }
    delete cb;
    record_unref(r);
}

}  // extern "C"
