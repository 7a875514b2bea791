// Module definition slots that differ between CPython versions, for the
// multi-phase modules pyinterp defines.
//
// Internal to pyinterp (dispatch/ and mod/ share it); not installed.
#pragma once

#include <Python.h>

// 3.12 added Py_mod_multiple_interpreters (PEP 684).  A module that keeps
// all its Python state in module state and heap types declares support for
// interpreters with their own GIL with this slot; 3.11 has no such slot
// (every multi-phase module may load in any subinterpreter there), so it
// expands to nothing.  Use it inside a PyModuleDef_Slot array.
#if PY_VERSION_HEX >= 0x030C0000
#define PYINTERP_PER_INTERPRETER_GIL_SLOT {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#else
#define PYINTERP_PER_INTERPRETER_GIL_SLOT
#endif
