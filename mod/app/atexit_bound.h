// atexit handlers that applications register, run in their own interpreter
// at a normal stop, each bounded in time.
//
// In every interpreter the executor sets up, atexit.register is replaced
// by one that registers the handler wrapped: when the wrapper runs, it puts
// the handler in the in-flight registry (inflight.h) with a deadline of
// `bound_ms`, like a request with a timeout, so the child's watchdog
// interrupts a handler still running Python after that long (interrupt.h;
// the next handler then runs).  atexit.unregister(func) still finds it (the
// wrapper compares equal to its handler).  At a normal stop the host runs
// every interpreter's handlers this way (run_atexit_handlers) while the
// interpreters are still live, before ending them; a handler blocked in C
// is not interrupted, and the host's overall bound on finalization applies.
// Handlers registered before the interpreter was set up (by modules it
// imported at its start) run unwrapped when it ends.
#pragma once

#include <Python.h>

#include "inflight.h"

namespace pyinterp::app {

// Replaces atexit.register in the current interpreter.  `reg` must outlive
// every interpreter (the executor's registry does).  GIL held.  False with
// an exception set.
bool install_bounded_atexit(inflight_registry* reg, int bound_ms) noexcept;

// Runs the atexit handlers of the interpreter `v` now (atexit's own order,
// last registered first; afterwards none is left for its end), entering it
// on the calling thread.  No GIL held.  False if it could not be entered.
bool run_atexit_handlers(const pyinterp::view& v) noexcept;

}  // namespace pyinterp::app
