// PyInterpSubinterpreterFallback: spotting, while an application loads in a
// subinterpreter, extension modules that only work in the main interpreter,
// and acting on the policy (route / refuse / allow).
//
// Detection is a per-interpreter import hook (Python source in fallback.cpp,
// installed in every subinterpreter before its first script load): it wraps
// ExtensionFileLoader's create_module/exec_module, so every extension module
// the script imports, directly or not, passes through it.  Signals, from the
// strongest: CPython's refusal ImportError ("does not support loading in
// subinterpreters"), Cython's "Interpreter change detected", PyO3's refusal,
// a "sub-interpreter" UserWarning (numpy >= 1.25), and a third-party
// extension whose ELF dynamic imports include PyGILState_Ensure (read from
// the .so before it is loaded; CPython's own lib-dynload modules are known
// to be fine: they use PyGILState only synchronously, and the dispatch
// library keeps the binding right on the threads it enters with).
//
// The routing table (script + group -> main interpreter) is process-wide C
// state (strings only, no Python objects).
#pragma once

#include <Python.h>
#include <httpd.h>

#include "config.h"

namespace pyinterp::mod {

struct module_state;
struct request_target;

// Returned by a protocol's serve() when the application must be loaded into
// the main interpreter instead (policy route; already logged and recorded).
// Not an HTTP status; the request path retries in main.
inline constexpr int k_route_to_main = -1000;

// GIL held, inside the interpreter that owns `st`.  Installs the hook in a
// subinterpreter (nothing in the main interpreter), once.  Returns false
// with an exception set on failure.
bool fallback_install(module_state* st) noexcept;

// GIL held, inside st's interpreter, on the thread that loads a script.
// Starts collecting findings for this thread's imports; with `strict`, the
// first finding aborts the load (NeedsMainInterpreter, a BaseException, so
// that `except Exception` in the application cannot swallow it).  No-op
// when no hook is installed (main interpreter).
bool fallback_begin(module_state* st, bool strict) noexcept;

// Stops collecting.  New reference to a list of (module, path, reason)
// tuples, possibly empty; nullptr with an exception set on failure.  An
// exception pending on entry is kept.
PyObject* fallback_end(module_state* st) noexcept;

// Sets NeedsMainInterpreter(findings) as the current exception.
void fallback_raise(module_state* st, PyObject* findings) noexcept;

// True if the current exception is NeedsMainInterpreter.
bool fallback_pending(module_state* st) noexcept;

// With NeedsMainInterpreter pending after a failed load (GIL held, in the
// subinterpreter): clears it, logs, and for `route` records the
// application in the routing table.  Returns k_route_to_main (route) or
// HTTP_INTERNAL_SERVER_ERROR (refuse).  `alias_url` is the matched
// PyInterpScriptAlias URL or nullptr.
int fallback_after_load(request_rec* r, server_rec* s, const char* script, const char* group,
                        fallback_policy policy, bool from_alias, const char* alias_url, module_state* st) noexcept;

// Policy allow: logs, once per script and group in this process, that the
// application was loaded in a subinterpreter despite `findings`.  GIL held.
void fallback_warn_allowed(server_rec* s, const char* script, const char* group, PyObject* findings,
                           bool from_alias) noexcept;

// True if (script, group) was routed to the main interpreter in this
// process.  No GIL involved.
bool fallback_routed(const char* script, const char* group) noexcept;

}  // namespace pyinterp::mod
