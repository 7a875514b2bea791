// Loading application scripts into an interpreter, and the per-interpreter
// cache of loaded scripts (a dict in the interpreter's interp_state, never a
// C static).  A script is executed as a fresh module named after its path
// (script.h); with reloading on, a script whose file changed (mtime or size)
// is executed again on the next request.
#pragma once

#include <Python.h>

#include "log.h"
#include "pyinterp/py/ref.h"
#include "target.h"

namespace pyinterp::app {

struct interp_state;

// The application object `t.callable` of the script `t.script`, loading the
// script first if needed (or, with t.script_reloading, if its file changed
// since: compared with t.stamp when the host has one, else with a stat).
// GIL held, inside the interpreter that owns `st`; the GIL is released while
// waiting for another thread that is loading a script.  Loads are logged at
// info level (PYI0201).  An empty ref with an exception set on failure (file
// missing, exception in the script, no such callable, not callable).
//
// In a subinterpreter the load runs under the fallback hook (fallback.h):
// with policy route or refuse, an extension module that needs the main
// interpreter fails the load with NeedsMainInterpreter pending (test with
// fallback_pending()); with allow, the script loads and a warning is
// logged once.  In an own-GIL interpreter, a load that failed after
// extension modules were refused there fails with NeedsSharedGil pending
// (fallback_shared_pending(), the load's exception as its __cause__); one
// that succeeded all the same is logged (PYI0218).
py::ref load_application(interp_state* st, const request_target& t, const log_sink& log) noexcept;

}  // namespace pyinterp::app
