// The few CPython version differences mod/ depends on, each behind one
// function or macro with the behaviour it papers over.  Supported: 3.11 to
// 3.13.  GIL rules: as the wrapped CPython call (all need the GIL held).
#pragma once

#include <Python.h>

// 3.12 added Py_mod_multiple_interpreters (PEP 684).  The private module
// keeps all its Python state in module state and heap types, so it declares
// support for interpreters with their own GIL; 3.11 has no such slot (every
// multi-phase module may load in any subinterpreter there).
#if PY_VERSION_HEX >= 0x030C0000
#define PYINTERP_MOD_PER_INTERPRETER_GIL_SLOT \
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#else
#define PYINTERP_MOD_PER_INTERPRETER_GIL_SLOT
#endif

namespace pyinterp::mod::compat {

// Takes the raised exception out of the error indicator, normalised and
// with its traceback attached, or nullptr when none is set.  3.12 replaced
// PyErr_Fetch/PyErr_NormalizeException (deprecated there) by
// PyErr_GetRaisedException, which always holds a normalised instance.
inline PyObject* take_exception() noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == nullptr) return nullptr;
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != nullptr && tb != nullptr) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

// Puts an exception taken with take_exception() back (steals the reference).
inline void restore_exception(PyObject* exc) noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc == nullptr) return;
    PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(exc));
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

// A dict with room for `n` items without resizing.  _PyDict_NewPresized is
// CPython's own (exported, non-limited API, 3.11 to 3.13); an environ grows
// to ~40 items and would otherwise be resized four times per request.
inline PyObject* dict_presized(Py_ssize_t n) noexcept {
    return _PyDict_NewPresized(n);
}

// obj.name, without raising (and formatting) AttributeError when it is
// missing: 1 with *out set, 0 with *out nullptr when absent, -1 with an
// exception.  3.13 made this public as PyObject_GetOptionalAttr.
inline int optional_attr(PyObject* obj, PyObject* name, PyObject** out) noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, out);
#else
    return _PyObject_LookupAttr(obj, name, out);
#endif
}

}  // namespace pyinterp::mod::compat
