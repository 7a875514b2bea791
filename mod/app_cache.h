// Loading application scripts into an interpreter, and the per-interpreter
// cache of loaded scripts (a dict in the private module's state, never a C
// static).  A script is executed as a fresh module named after its path, the
// way the reference server does; with reloading on, a script whose file
// changed (mtime or size) is executed again on the next request.
#pragma once

#include <Python.h>
#include <httpd.h>

#include "config.h"

namespace pyinterp::mod {

struct module_state;

// Returns a new reference to `callable` from the script at `path`, loading
// it first if needed (or, with `reload_if_changed`, if its file changed).
// GIL held, inside the target interpreter; the GIL is released while
// waiting for another thread that is loading a script.  Loads are logged at
// info level against `s` naming `group`.  nullptr with an exception set on
// failure (file missing, exception in the script, no such callable).
//
// In a subinterpreter the load runs under the fallback hook (fallback.h):
// with `policy` route or refuse, an extension module that needs the main
// interpreter fails the load with NeedsMainInterpreter pending (test with
// fallback_pending()); with allow, the script loads and a warning is
// logged once (`policy_from_alias` names the option in it).
//
// `finfo`, when not nullptr, is what httpd found when it stat'ed `path` for
// this request (r->finfo, with at least its modification time and size):
// script reloading compares with it instead of asking the kernel again.
PyObject* load_application(module_state* st, const char* path, const apr_finfo_t* finfo, const char* callable,
                           bool reload_if_changed, server_rec* s, const char* group, fallback_policy policy,
                           bool policy_from_alias) noexcept;

}  // namespace pyinterp::mod
