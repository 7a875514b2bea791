// Executing a script file as a module: the one way the server (app_cache)
// and `pyinterp doctor` run a WSGI script.  The module is named after the
// script's path (a stable hash), so a reload replaces the previous version
// in sys.modules, the way the reference server does.
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>

#include "pyinterp/py/ref.h"

namespace pyinterp::app {

// 64-bit FNV-1a of `n` bytes: stable across processes and runs (Python's
// str hash is not), for names derived from paths and group names.
uint64_t stable_hash(const char* s, size_t n) noexcept;

// The sys.modules name of the script whose path is the `n` bytes at `path`:
// "_pyinterp_script_<hash>".
struct script_module_name {
    script_module_name(const char* path, size_t n) noexcept;
    const char* c_str() const noexcept { return text; }
    char text[40];
};

// Reads, compiles and executes the script at `path` (a str, the file's
// path) as a new module registered in sys.modules under its
// script_module_name, with __file__ set.  GIL held.  The module (a new
// reference), or an empty ref with the script's exception set; a failed
// script leaves nothing in sys.modules.
py::ref exec_script(PyObject* path) noexcept;

// Removes the script's module from sys.modules if it is still `module`
// there.  GIL held; keeps a pending exception.
void forget_script(PyObject* path, PyObject* module) noexcept;

}  // namespace pyinterp::app
