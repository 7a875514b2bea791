// Interrupting requests (see interrupt.h).  All functions: GIL held.
#include "interrupt.h"

#include <pythread.h>

#include <vector>

#include "interp_state.h"
#include "pyinterp/py/exception.h"
#include "pystack.h"
#include "target.h"

namespace pyinterp::app {
namespace {

constexpr const char* k_type_name = "RequestTimeout";

}  // namespace

PyObject* request_timeout_type() noexcept {
    py::ref module = private_module();
    if (!module) return nullptr;
    py::ref type = py::ref::steal(PyObject_GetAttrString(module.get(), k_type_name));
    if (!type) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return nullptr;
        PyErr_Clear();
        // A BaseException, like KeyboardInterrupt: `except Exception:` in the
        // application does not swallow it.
        type = py::ref::steal(PyErr_NewExceptionWithDoc(
            "_pyinterp.RequestTimeout",
            "Raised in a request's thread when its PyInterpRequestTimeout passed or the server stops.",
            PyExc_BaseException, nullptr));
        if (!type || PyObject_SetAttrString(module.get(), k_type_name, type.get()) < 0) return nullptr;
    }
    return type.get();  // the module keeps it
}

bool is_request_timeout(PyObject* exc) noexcept {
    py::saved_exception pending;
    PyObject* type = request_timeout_type();
    bool is = type != nullptr && exc != nullptr && PyObject_TypeCheck(exc, reinterpret_cast<PyTypeObject*>(type));
    PyErr_Clear();
    return is;
}

void interrupt_request(const inflight_info& info, PyThreadState* ts, interrupt_reason why,
                       const log_sink& log) noexcept {
    double elapsed = double(monotonic_ns() - info.start_ns) / 1e9;
    const char* code = why == interrupt_reason::timeout    ? "PYI0810"
                       : why == interrupt_reason::stopping ? "PYI0811"
                                                           : "PYI0813";
    // A timeout is the application's failure; a stop is the operator's doing.
    level lv = why == interrupt_reason::timeout ? level::error : level::warn;
    std::vector<stack_frame> frames = python_stack(ts);
    if (why == interrupt_reason::atexit)
        app::log(log, lv,
                 "%s: %s #%llu in interpreter '%s' (id %lld) interrupted after %.1f s at exit; its Python stack (most "
                 "recent call last):",
                 code, info.script.c_str(), static_cast<unsigned long long>(info.id), info.interpreter.c_str(),
                 static_cast<long long>(info.interpreter_id), elapsed);
    else
        app::log(log, lv,
                 "%s: %s #%llu: %s in application group '%s' (interpreter '%s', id %lld) interrupted after %.1f s; "
                 "its Python stack (most recent call last):",
                 code, why == interrupt_reason::timeout ? "request timeout of request" : "server stopping, request",
                 static_cast<unsigned long long>(info.id), info.url.empty() ? info.script.c_str() : info.url.c_str(),
                 shown_group(info.group.c_str()), info.interpreter.c_str(), static_cast<long long>(info.interpreter_id),
                 elapsed);
    if (frames.empty())
        app::log(log, lv, "%s: #%llu   (no Python frame: blocked in C, interrupted when it returns)", code,
                 static_cast<unsigned long long>(info.id));
    for (const stack_frame& f : frames)
        app::log(log, lv, "%s: #%llu   File \"%s\", line %d, in %s", code, static_cast<unsigned long long>(info.id),
                 f.file.c_str(), f.line, f.function.c_str());
    PyObject* type = request_timeout_type();
    if (type == nullptr || PyThreadState_SetAsyncExc(info.thread_ident, type) != 1) {
        PyErr_Clear();
        app::log(log, level::error, "%s: #%llu could not be interrupted (its thread was not found)", code,
                 static_cast<unsigned long long>(info.id));
    }
}

void drop_late_interrupt() noexcept {
    PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), nullptr);
}

}  // namespace pyinterp::app
