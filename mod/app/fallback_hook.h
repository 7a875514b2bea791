// The import hook behind PyInterpSubinterpreterFallback and `pyinterp
// doctor`: fallback_hook.py (its API is in that file's docstring), embedded
// at build time and executed as a module in one interpreter, where it wraps
// that interpreter's ExtensionFileLoader so that every extension module
// loaded while a script loads is judged (fallback.h lists the signals).
#pragma once

#include <Python.h>

#include "pyinterp/py/ref.h"

namespace pyinterp::app {

struct interp_state;

// GIL held, inside the interpreter to hook, whose state is `st` (it counts
// own-GIL refusals outside a load there) and which has a GIL of its own
// when `own_gil`.  Executes the hook (patching that interpreter's
// ExtensionFileLoader, once) and returns its module, or an empty ref with
// an exception set.
py::ref fallback_hook_new(interp_state* st, bool own_gil) noexcept;

}  // namespace pyinterp::app
