// Interrupting a request that runs too long: its request timeout passed
// (PyInterpRequestTimeout), or the child is stopping.  The watchdog
// (inflight.h) calls interrupt_request() inside the request's interpreter,
// its GIL held, while the request's thread is still in there; it logs one
// entry (group, URL, elapsed time, the Python stack at that moment) and
// raises pyinterp's RequestTimeout in the request's thread with
// PyThreadState_SetAsyncExc.
//
// What it can and cannot interrupt: the exception is raised the next time
// the request's thread runs Python bytecode.  A thread running Python (a
// loop, however tight) sees it within a switch interval of the watchdog
// taking the GIL; a thread blocked in C (time.sleep, a socket or database
// call, a C extension computing without returning) sees it only when that
// call returns.  RequestTimeout derives from BaseException, so an
// application's `except Exception:` does not swallow it; `finally:` blocks
// and close() still run.
#pragma once

#include <Python.h>

#include "inflight.h"
#include "log.h"

namespace pyinterp::app {

// The RequestTimeout class of the current interpreter, made on first use
// and kept in the private module (_pyinterp.RequestTimeout).  Borrowed
// reference, or nullptr with an exception set.  GIL held.
PyObject* request_timeout_type() noexcept;

// True if `exc` (an exception instance) is a RequestTimeout of the current
// interpreter.  GIL held; leaves no exception set.
bool is_request_timeout(PyObject* exc) noexcept;

// Why a request is interrupted, for its log entry.
enum class interrupt_reason {
    timeout,   // its PyInterpRequestTimeout passed (PYI0810, error)
    stopping,  // the child is stopping (PYI0811, warn)
    atexit,    // an atexit handler ran past its bound (PYI0813, warn; atexit_bound.h)
};

// Logs the request (PYI0810 at error level for a timeout, PYI0811 at warn
// at a stop, one line per stack frame) and raises RequestTimeout in its thread.
// Inside the request's interpreter, its GIL held, `ts` the request thread's
// thread state there (a watchdog action).
void interrupt_request(const inflight_info& info, PyThreadState* ts, interrupt_reason why,
                       const log_sink& log) noexcept;

// On the request's own thread, inside its interpreter, GIL held, when it is
// done with Python: drops an interruption raised too late to be seen (the
// request finished its Python code just as its deadline passed), so it does
// not hit the thread's next request.
void drop_late_interrupt() noexcept;

}  // namespace pyinterp::app
