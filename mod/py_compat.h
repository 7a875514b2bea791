// The few CPython version differences the WSGI protocol depends on, each
// behind one function with the behaviour it papers over (exceptions:
// pyinterp/py/exception.h).  Supported: 3.11 to 3.13.  GIL rules: as the
// wrapped CPython call (all need the GIL held).
#pragma once

#include <Python.h>

namespace pyinterp::mod::compat {

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
