// PyInterpSubinterpreterFallback: spotting, while an application loads in a
// subinterpreter, extension modules that only work in the main interpreter,
// and acting on the policy (route / refuse / allow).
//
// Detection is a per-interpreter import hook (fallback_hook.py, embedded at
// build time and run by fallback_hook.cpp), installed in every
// subinterpreter before its first script load: it wraps ExtensionFileLoader's
// create_module/exec_module, so every extension module the script imports,
// directly or not, passes through it.  Signals, from the strongest: CPython's
// refusal ImportError ("does not support loading in subinterpreters"),
// Cython's "Interpreter change detected", PyO3's refusal, a
// "sub-interpreter" UserWarning (numpy >= 1.25), and a third-party extension
// whose ELF dynamic imports include PyGILState_Ensure (read from the .so
// before it is loaded; CPython's own lib-dynload modules are known to be
// fine: they use PyGILState only synchronously, and the dispatch library
// keeps the binding right on the threads it enters with).
//
// The routing table (script + group -> main interpreter) is process-wide C
// state (strings only, no Python objects).
#pragma once

#include <Python.h>

#include <string>
#include <vector>

#include "log.h"
#include "pyinterp/py/ref.h"
#include "target.h"

namespace pyinterp::app {

struct interp_state;

// GIL held, inside the interpreter that owns `st`.  Installs the hook in a
// subinterpreter (nothing in the main interpreter), once.  Returns false
// with an exception set on failure.
bool fallback_install(interp_state* st) noexcept;

// GIL held, inside st's interpreter, on the thread that loads a script.
// Starts collecting findings for this thread's imports; with `strict`, the
// first finding aborts the load (NeedsMainInterpreter, a BaseException, so
// that `except Exception` in the application cannot swallow it).  No-op
// when no hook is installed (main interpreter).
bool fallback_begin(interp_state* st, bool strict) noexcept;

// Every extension module created since fallback_begin on this thread, as
// the hook's list of [module, path, error or None].  An empty list without
// a hook.  GIL held; nullptr with an exception set on failure.
py::ref fallback_loaded(interp_state* st) noexcept;

// Stops collecting.  A list of (module, path, reason) tuples, possibly
// empty; an empty ref with an exception set on failure.  An exception
// pending on entry is kept.
py::ref fallback_end(interp_state* st) noexcept;

// Sets NeedsMainInterpreter(findings) as the current exception.
void fallback_raise(interp_state* st, PyObject* findings) noexcept;

// True if the current exception is NeedsMainInterpreter.
bool fallback_pending(interp_state* st) noexcept;

// With NeedsMainInterpreter pending after a failed load (GIL held, in the
// subinterpreter): clears it and logs.  With policy route, records the
// application in the routing table and returns true (load it into main);
// with refuse, logs which directive fixes it against `request_log` and
// returns false.
bool fallback_after_load(const request_target& t, const log_sink& request_log, const log_sink& log) noexcept;

// Policy allow: logs, once per script and group in this process, that the
// application was loaded in a subinterpreter despite `findings`.  GIL held.
void fallback_warn_allowed(const log_sink& log, const request_target& t, PyObject* findings) noexcept;

// True if (script, group) was routed to the main interpreter in this
// process.  No GIL involved.
bool fallback_routed(const char* script, const char* group) noexcept;

}  // namespace pyinterp::app
