// pyinterp_set_pyerr: a status code as a Python exception, for C functions
// that Python calls (the `pyinterp` module's, and extensions').
#include "internal.h"

namespace pyinterp::detail {
namespace {

const char* status_name(int status) noexcept {
    switch (status) {
        case PYINTERP_OK: return "PYINTERP_OK";
        case PYINTERP_ERR_INVALID: return "PYINTERP_ERR_INVALID";
        case PYINTERP_ERR_NOT_INITIALIZED: return "PYINTERP_ERR_NOT_INITIALIZED";
        case PYINTERP_ERR_GONE: return "PYINTERP_ERR_GONE";
        case PYINTERP_ERR_EXISTS: return "PYINTERP_ERR_EXISTS";
        case PYINTERP_ERR_NOT_FOUND: return "PYINTERP_ERR_NOT_FOUND";
        case PYINTERP_ERR_UNSUPPORTED: return "PYINTERP_ERR_UNSUPPORTED";
        case PYINTERP_ERR_PYTHON: return "PYINTERP_ERR_PYTHON";
        case PYINTERP_ERR_NOMEM: return "PYINTERP_ERR_NOMEM";
        case PYINTERP_ERR_STATE: return "PYINTERP_ERR_STATE";
        case PYINTERP_ERR_TIMEOUT: return "PYINTERP_ERR_TIMEOUT";
        case PYINTERP_ERR_CREATE: return "PYINTERP_ERR_CREATE";
        default: return nullptr;
    }
}

}  // namespace
}  // namespace pyinterp::detail

using namespace pyinterp::detail;

extern "C" {

PyObject* pyinterp_set_pyerr(int status) {
    PyObject* type;
    switch (status) {
        case PYINTERP_OK:
            PyErr_SetString(PyExc_SystemError, "pyinterp_set_pyerr() called with PYINTERP_OK");
            return nullptr;
        case PYINTERP_ERR_NOMEM: return PyErr_NoMemory();
        case PYINTERP_ERR_PYTHON:
            if (PyErr_Occurred()) return nullptr;
            type = PyExc_RuntimeError;
            break;
        case PYINTERP_ERR_INVALID: type = PyExc_ValueError; break;
        case PYINTERP_ERR_TIMEOUT: type = PyExc_TimeoutError; break;
        case PYINTERP_ERR_UNSUPPORTED: type = PyExc_NotImplementedError; break;
        default: type = PyExc_RuntimeError; break;
    }
    if (const char* name = status_name(status))
        PyErr_Format(type, "pyinterp: %s (%s)", pyinterp_strerror(status), name);
    else
        PyErr_Format(type, "pyinterp: unknown status %d", status);
    return nullptr;
}

}  // extern "C"
