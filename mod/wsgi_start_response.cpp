// start_response and write() (see wsgi_start_response.h).  All functions:
// GIL held.
#include "wsgi_start_response.h"

#include <apr_strings.h>

#include <cstring>

#include "wsgi_state.h"
#include "wsgi_request.h"
#include "wsgi_response.h"
#include "wsgi_validate.h"

namespace pyinterp::mod {
namespace {

struct start_response_object {
    PyObject_HEAD
    wsgi_request* q;  // nullptr once the request is over
};

wsgi_request* request_of(PyObject* self, const char* what) noexcept {
    wsgi_request* q = reinterpret_cast<start_response_object*>(self)->q;
    if (q == nullptr) PyErr_Format(PyExc_ValueError, "%s called after its request finished", what);
    return q;
}

// The i-th character of a str, for the checks of wsgi_validate.h.
struct chars_of {
    PyObject* str;
    char32_t operator()(size_t i) const noexcept { return PyUnicode_READ_CHAR(str, Py_ssize_t(i)); }
};

size_t length_of(PyObject* str) noexcept {
    return size_t(PyUnicode_GET_LENGTH(str));
}

bool check_status(PyObject* status) noexcept {
    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be str, not %.100s", Py_TYPE(status)->tp_name);
        return false;
    }
    wsgi_validate::status_check check = wsgi_validate::check_status(length_of(status), chars_of{status});
    if (check == wsgi_validate::status_check::malformed) {
        PyErr_Format(PyExc_ValueError,
                     "status %R is not of the form 'NNN Reason' (three digits, a space, a reason "
                     "phrase without control characters)",
                     status);
        return false;
    }
    if (check == wsgi_validate::status_check::informational) {
        PyErr_Format(PyExc_ValueError, "status %R: an informational (1xx) status cannot end a response", status);
        return false;
    }
    return true;
}

bool check_header(PyObject* item) noexcept {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_Format(PyExc_TypeError, "each header must be a (name, value) tuple, not %R", item);
        return false;
    }
    PyObject* name = PyTuple_GET_ITEM(item, 0);
    PyObject* value = PyTuple_GET_ITEM(item, 1);
    if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "header name and value must be str: %R", item);
        return false;
    }
    if (!wsgi_validate::valid_header_name(length_of(name), chars_of{name})) {
        PyErr_Format(PyExc_ValueError, "invalid header name %R (CR, LF, NUL, space or separator)", name);
        return false;
    }
    if (!wsgi_validate::valid_header_value(length_of(value), chars_of{value})) {
        PyErr_Format(PyExc_ValueError,
                     "value of header %R contains CR, LF, NUL, another control character or a "
                     "character outside latin-1",
                     name);
        return false;
    }
    const char* cname = PyUnicode_AsUTF8(name);  // ASCII: checked above
    if (cname == nullptr) return false;
    if (wsgi_validate::is_hop_by_hop(cname)) {
        PyErr_Format(PyExc_ValueError, "hop-by-hop header %R is not allowed from an application (PEP 3333)", name);
        return false;
    }
    if (strcasecmp(cname, "Content-Length") == 0 &&
        !wsgi_validate::valid_content_length(length_of(value), chars_of{value})) {
        PyErr_Format(PyExc_ValueError, "Content-Length %R is not a non-negative integer", value);
        return false;
    }
    return true;
}

// Validates and copies the header list.  New reference or nullptr.
PyObject* checked_headers(PyObject* headers) noexcept {
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s", Py_TYPE(headers)->tp_name);
        return nullptr;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); ++i)
        if (!check_header(PyList_GET_ITEM(headers, i))) return nullptr;
    return PyList_GetSlice(headers, 0, PyList_GET_SIZE(headers));
}

// exc_info must be what sys.exc_info() returns inside an except block:
// (exception class, its instance, traceback or None).  False with a
// TypeError set otherwise, whether or not the headers went out.
bool check_exc_info(PyObject* exc_info) noexcept {
    bool ok = PyTuple_Check(exc_info) && PyTuple_GET_SIZE(exc_info) == 3;
    if (ok) {
        PyObject* type = PyTuple_GET_ITEM(exc_info, 0);
        PyObject* value = PyTuple_GET_ITEM(exc_info, 1);
        PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
        ok = PyExceptionClass_Check(type) && PyObject_TypeCheck(value, reinterpret_cast<PyTypeObject*>(type)) &&
             (tb == Py_None || PyTraceBack_Check(tb));
    }
    if (!ok)
        PyErr_Format(PyExc_TypeError,
                     "exc_info must be None or a (type, value, traceback) tuple as sys.exc_info() returns "
                     "in an except block, not %R",
                     exc_info);
    return ok;
}

// Re-raises exc_info = (type, value, traceback), checked by check_exc_info.
PyObject* reraise(PyObject* exc_info) noexcept {
    PyObject* type = PyTuple_GET_ITEM(exc_info, 0);
    PyObject* value = PyTuple_GET_ITEM(exc_info, 1);
    PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
    if (tb == Py_None) tb = nullptr;
    Py_INCREF(type);
    Py_INCREF(value);
    Py_XINCREF(tb);
    PyErr_Restore(type, value, tb);
    return nullptr;
}

PyObject* py_start_response_call(PyObject* self, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"status", "headers", "exc_info", nullptr};
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kwlist), &status,
                                     &headers, &exc_info))
        return nullptr;
    wsgi_request* q = request_of(self, "start_response()");
    if (q == nullptr) return nullptr;
    if (exc_info != Py_None) {
        if (!check_exc_info(exc_info)) return nullptr;
        if (q->headers_sent) return reraise(exc_info);
    } else if (q->status != nullptr) {
        PyErr_SetString(PyExc_AssertionError,
                        "start_response() called a second time without exc_info (headers already set)");
        return nullptr;
    }
    if (!check_status(status)) return nullptr;
    PyObject* copy = checked_headers(headers);
    if (copy == nullptr) return nullptr;
    Py_INCREF(status);
    Py_XSETREF(q->status, status);
    Py_XSETREF(q->headers, copy);
    return PyObject_GetAttrString(self, "write");
}

PyObject* py_write(PyObject* self, PyObject* data) {
    wsgi_request* q = request_of(self, "write()");
    if (q == nullptr) return nullptr;
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be bytes, not %.100s", Py_TYPE(data)->tp_name);
        return nullptr;
    }
    if (q->status == nullptr) {
        PyErr_SetString(PyExc_AssertionError, "write() called before start_response()");
        return nullptr;
    }
    switch (response_write(q, PyBytes_AS_STRING(data), size_t(PyBytes_GET_SIZE(data)), true)) {
        case send_status::ok: Py_RETURN_NONE;
        case send_status::client_gone:
            PyErr_SetString(PyExc_OSError, "the client closed the connection");
            return nullptr;
        case send_status::error: break;
    }
    return nullptr;
}

void py_start_response_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyMethodDef start_response_methods[] = {
    {"write", py_write, METH_O, "write(data): send bytes of the body now (PEP 3333 write callable)."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot start_response_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(py_start_response_dealloc)},
    {Py_tp_call, reinterpret_cast<void*>(py_start_response_call)},
    {Py_tp_methods, start_response_methods},
    {Py_tp_doc, const_cast<char*>("start_response(status, headers, exc_info=None) -> write")},
    {0, nullptr},
};

}  // namespace

PyType_Spec start_response_type_spec = {
    "_pyinterp.StartResponse",
    sizeof(start_response_object),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    start_response_slots,
};

PyObject* start_response_new(wsgi_state* st, wsgi_request* q) noexcept {
    auto* self = PyObject_New(start_response_object, st->start_response_type);
    if (self != nullptr) self->q = q;
    return reinterpret_cast<PyObject*>(self);
}

void start_response_detach(PyObject* start_response) noexcept {
    if (start_response != nullptr) reinterpret_cast<start_response_object*>(start_response)->q = nullptr;
}

}  // namespace pyinterp::mod
