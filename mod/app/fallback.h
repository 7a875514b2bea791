// PyInterpSubinterpreterFallback and automatic placement: spotting, while an
// application loads in a subinterpreter, extension modules that only work in
// the main interpreter, and acting on the policy (route / refuse / allow);
// in an interpreter with its own GIL, refusing the extension modules that
// cannot load there (before loading single-phase ones) and telling the
// executor when that failed the load (NeedsSharedGil).
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
// Where an application moved is placement.h's (process-wide C state,
// strings only, no Python objects).
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
// subinterpreter (nothing in the main interpreter), once, and notes in
// st->own_gil whether the interpreter has its own GIL.  Returns false with
// an exception set on failure.
bool fallback_install(interp_state* st) noexcept;

// GIL held, inside st's interpreter, on the thread that loads a script.
// Starts collecting findings for this thread's imports; with `strict`, the
// first finding aborts the load (NeedsMainInterpreter, a BaseException, so
// that `except Exception` in the application cannot swallow it).  No-op
// when no hook is installed (main interpreter).
bool fallback_begin(interp_state* st, bool strict) noexcept;

// The hook's report of the current or last load on this thread: a dict
// with "loaded" (every extension module created, as [module, path, error
// or None]), "findings" (fallback_end) and "refused" (fallback_refused);
// nullptr in main.  GIL held; a pending exception is
// kept.
py::ref fallback_report(interp_state* st) noexcept;

// In an own-GIL interpreter: the extension modules refused there since
// fallback_begin on this thread (after fallback_end: during the last load),
// a list of (module, path, reason).  Empty elsewhere.  GIL held; a pending
// exception is kept; nullptr with an exception set on failure.
py::ref fallback_refused(interp_state* st) noexcept;

// Stops collecting.  A list of (module, path, reason) tuples, possibly
// empty; an empty ref with an exception set on failure.  An exception
// pending on entry is kept.
py::ref fallback_end(interp_state* st) noexcept;

// Sets NeedsMainInterpreter(findings) as the current exception.
void fallback_raise(interp_state* st, PyObject* findings) noexcept;

// True if the current exception is NeedsMainInterpreter.
bool fallback_pending(interp_state* st) noexcept;

// With the load's exception pending, after extension modules were refused in
// this own-GIL interpreter: replaces it with NeedsSharedGil(refused), the
// load's exception as its __cause__.  GIL held.
void fallback_raise_shared(interp_state* st, PyObject* refused) noexcept;

// True if the current exception is NeedsSharedGil.
bool fallback_shared_pending(interp_state* st) noexcept;

// The own-GIL refusals on this thread outside a load (imports while serving
// a request) since the last call, a list of (module, path, reason), and
// resets st->late_refusals.  GIL held; nullptr with an exception set on
// failure.
py::ref fallback_take_late(interp_state* st) noexcept;

// "extension 'x' (path): reason" for the first of a list of (module, path,
// reason), plus the names of the others.  GIL held.  May throw bad_alloc.
std::string fallback_describe(PyObject* findings);

// With NeedsMainInterpreter pending after a failed load (GIL held, in the
// subinterpreter): clears it and logs.  With policy route, records the
// move to main (placement.h) and returns true (load it into main); with
// refuse, logs which directive fixes it against `request_log` and returns
// false.
bool fallback_after_load(const request_target& t, const log_sink& request_log, const log_sink& log) noexcept;

// Policy allow: logs, once per script and group in this process, that the
// application was loaded in a subinterpreter despite `findings`.  GIL held.
void fallback_warn_allowed(const log_sink& log, const request_target& t, PyObject* findings) noexcept;

}  // namespace pyinterp::app
