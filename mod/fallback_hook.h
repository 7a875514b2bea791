// The import hook behind PyInterpSubinterpreterFallback and `pyinterp
// doctor`: Python source run as a module in one interpreter, which wraps that
// interpreter's ExtensionFileLoader so that every extension module loaded
// while a script loads is judged (fallback.h lists the signals).  No httpd
// dependency.
//
// The hook module's Python API:
//   begin(strict)   start collecting on this thread; strict: the first
//                   finding raises NeedsMainInterpreter (a BaseException)
//   end() -> [(module, path, reason)]   stop; the findings
//   loaded() -> [[module, path, error]] every extension created since begin()
//   elf_verdict(name, path) -> reason or None
//   NeedsMainInterpreter                the exception class
#pragma once

#include <Python.h>

namespace pyinterp::mod {

// GIL held, inside the interpreter to hook.  Executes the hook (patching
// that interpreter's ExtensionFileLoader, once) and returns its module (a
// new reference), or nullptr with an exception set.
PyObject* fallback_hook_new() noexcept;

}  // namespace pyinterp::mod
