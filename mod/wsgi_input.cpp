// wsgi.input (see wsgi_input.h).  All functions: GIL held, released only
// around ap_get_client_block.
#include "wsgi_input.h"

#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>

#include <algorithm>
#include <cstring>

#include "pyinterp/py/ref.h"
#include "wsgi_state.h"
#include "wsgi_request.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

constexpr size_t k_read_chunk = size_t{64} * 1024;
constexpr size_t k_line_chunk = size_t{8} * 1024;
constexpr size_t k_direct_max = size_t{1024} * 1024;

struct input_object {
    PyObject_HEAD wsgi_request* q;  // nullptr once the request is over
};

wsgi_request* request_of(PyObject* self) noexcept {
    wsgi_request* q = reinterpret_cast<input_object*>(self)->q;
    if (q == nullptr) PyErr_SetString(PyExc_ValueError, "wsgi.input used after its request finished");
    return q;
}

size_t available(const wsgi_request* q) noexcept {
    return q->input_buf.size() - q->input_pos;
}

// The read of the body failed.  Either the client went away, or httpd's
// input filters found the body malformed (a bad chunk size, a missing CRLF)
// or too large and answered the client themselves (ap_get_client_block
// passes an error bucket, which sends a 400 or 413 at once): then nothing
// more may be written to the response, and the log says so.  Sets the
// exception.
void read_failed(wsgi_request* q, int status_before) noexcept {
    request_rec* r = q->r;
    q->input_failed = true;
    if (!r->connection->aborted && r->status != status_before && r->status >= 400) {
        q->input_answered = r->status;
        q->client_gone = true;  // the response is httpd's now
        const char* what = r->status == HTTP_REQUEST_ENTITY_TOO_LARGE ? "too large" : "malformed";
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "PYI0403: the request body is %s (httpd answered %d) after %" APR_OFF_T_FMT " bytes", what,
                      r->status, q->input_total);
        PyErr_Format(PyExc_OSError, "the request body is %s (httpd answered HTTP %d)", what, r->status);
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "PYI0402: reading the request body failed after %" APR_OFF_T_FMT " bytes", q->input_total);
    PyErr_SetString(PyExc_OSError, "reading the request body failed (client gone or timed out)");
}

// Reads body bytes from the client into dst: up to `want`, or, with
// `until_full`, until `want` bytes or the end of the body.  Called with the
// GIL held; releases it around the reads.  Returns the number of bytes read
// (0 at the end of the body) or -1 with an exception set.
long client_read(wsgi_request* q, char* dst, size_t want, bool until_full) noexcept {
    if (q->input_failed) {
        PyErr_SetString(PyExc_OSError, "the request body could not be read");
        return -1;
    }
    if (q->input_eof) return 0;
    request_rec* r = q->r;
    if (!q->input_started) {
        q->input_started = true;
        int rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);
        if (rc != OK) {
            q->input_failed = true;
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, "PYI0401: request body refused (HTTP %d)", rc);
            PyErr_Format(PyExc_OSError, "the request body was refused (HTTP %d)", rc);
            return -1;
        }
        if (!ap_should_client_block(r)) {
            q->input_eof = true;
            return 0;
        }
    }
    size_t got = 0;
    long n = 0;
    int status_before = r->status;
    Py_BEGIN_ALLOW_THREADS do {
        n = ap_get_client_block(r, dst + got, want - got);
        if (n > 0) got += size_t(n);
    }
    while (until_full && n > 0 && got < want)
        ;
    Py_END_ALLOW_THREADS q->input_total += apr_off_t(got);
    if (n < 0) {
        read_failed(q, status_before);
        return -1;
    }
    if (n == 0) q->input_eof = true;
    return long(got);
}

// Reads up to `want` more bytes from the client into the buffer.  Returns
// the number read, 0 at the end of the body, -1 with an exception set.
long fill(wsgi_request* q, size_t want) noexcept {
    if (q->input_pos == q->input_buf.size()) {
        q->input_buf.clear();
        q->input_pos = 0;
    }
    want = std::clamp(want, k_line_chunk, k_read_chunk);
    size_t old = q->input_buf.size();
    try {
        q->input_buf.resize(old + want);
    } catch (...) {
        PyErr_NoMemory();
        return -1;
    }
    long n = client_read(q, &q->input_buf[old], want, false);
    q->input_buf.resize(old + size_t(n > 0 ? n : 0));
    return n;
}

// read(size) with nothing buffered: the body goes straight from httpd into
// the bytes object returned, with no intermediate buffer.  New reference or
// nullptr with an exception set.
PyObject* read_direct(wsgi_request* q, size_t size) noexcept {
    PyObject* out = PyBytes_FromStringAndSize(nullptr, Py_ssize_t(size));
    if (out == nullptr) return nullptr;
    long n = client_read(q, PyBytes_AS_STRING(out), size, true);
    if (n < 0) {
        Py_DECREF(out);
        return nullptr;
    }
    if (size_t(n) < size && _PyBytes_Resize(&out, Py_ssize_t(n)) < 0) return nullptr;
    return out;
}

// Takes `n` buffered bytes as a bytes object.
PyObject* take(wsgi_request* q, size_t n) noexcept {
    PyObject* out = PyBytes_FromStringAndSize(q->input_buf.data() + q->input_pos, Py_ssize_t(n));
    if (out != nullptr) q->input_pos += n;
    return out;
}

// Parses an optional size argument: None or a missing argument is -1.
bool parse_size(PyObject* const* args, Py_ssize_t nargs, const char* fn, Py_ssize_t* size) noexcept {
    *size = -1;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most 1 argument (%zd given)", fn, nargs);
        return false;
    }
    if (nargs == 0 || args[0] == Py_None) return true;
    *size = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    return !(*size == -1 && PyErr_Occurred());
}

PyObject* read_size(wsgi_request* q, Py_ssize_t size) noexcept {
    if (size < 0) {
        for (;;) {
            long n = fill(q, k_read_chunk);
            if (n < 0) return nullptr;
            if (n == 0) break;
        }
        return take(q, available(q));
    }
    // Direct only up to a bound: read(huge) on a small body must not
    // allocate `huge` bytes up front.
    if (available(q) == 0 && size > 0 && size_t(size) <= k_direct_max) return read_direct(q, size_t(size));
    while (available(q) < size_t(size)) {
        long n = fill(q, size_t(size) - available(q));
        if (n < 0) return nullptr;
        if (n == 0) break;
    }
    return take(q, std::min(available(q), size_t(size)));
}

PyObject* read_line(wsgi_request* q, Py_ssize_t size) noexcept {
    size_t scanned = 0;  // bytes after input_pos known to hold no newline
    for (;;) {
        const char* start = q->input_buf.data() + q->input_pos;
        size_t avail = available(q);
        size_t limit = size < 0 ? avail : std::min(avail, size_t(size));
        if (scanned < limit) {
            const void* nl = std::memchr(start + scanned, '\n', limit - scanned);
            if (nl != nullptr) return take(q, size_t(static_cast<const char*>(nl) - start) + 1);
            scanned = limit;
        }
        if (size >= 0 && avail >= size_t(size)) return take(q, size_t(size));
        long n = fill(q, k_line_chunk);
        if (n < 0) return nullptr;
        if (n == 0) return take(q, available(q));
    }
}

PyObject* py_input_read(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    wsgi_request* q = request_of(self);
    Py_ssize_t size;
    if (q == nullptr || !parse_size(args, nargs, "read", &size)) return nullptr;
    return read_size(q, size);
}

PyObject* py_input_readline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    wsgi_request* q = request_of(self);
    Py_ssize_t size;
    if (q == nullptr || !parse_size(args, nargs, "readline", &size)) return nullptr;
    return read_line(q, size);
}

PyObject* py_input_readlines(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    wsgi_request* q = request_of(self);
    Py_ssize_t hint;
    if (q == nullptr || !parse_size(args, nargs, "readlines", &hint)) return nullptr;
    py::ref lines = py::ref::steal(PyList_New(0));
    if (!lines) return nullptr;
    for (Py_ssize_t total = 0; hint <= 0 || total < hint;) {
        py::ref line = py::ref::steal(read_line(q, -1));
        if (!line) return nullptr;
        if (PyBytes_GET_SIZE(line.get()) == 0) break;
        if (PyList_Append(lines.get(), line.get()) < 0) return nullptr;
        total += PyBytes_GET_SIZE(line.get());
    }
    return lines.release();
}

PyObject* py_input_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* py_input_next(PyObject* self) {
    wsgi_request* q = request_of(self);
    if (q == nullptr) return nullptr;
    PyObject* line = read_line(q, -1);
    if (line != nullptr && PyBytes_GET_SIZE(line) == 0) Py_CLEAR(line);  // StopIteration
    return line;
}

PyObject* py_input_close(PyObject*, PyObject*) {
    Py_RETURN_NONE;
}

void py_input_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyMethodDef input_methods[] = {
    {"read", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_input_read)), METH_FASTCALL,
     "read([size]) -> bytes: up to size bytes, or the rest of the body."},
    {"readline", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_input_readline)), METH_FASTCALL,
     "readline([size]) -> bytes: one line, at most size bytes."},
    {"readlines", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_input_readlines)), METH_FASTCALL,
     "readlines([hint]) -> list of lines."},
    {"close", py_input_close, METH_NOARGS, "Does nothing (httpd owns the connection)."},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot input_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(py_input_dealloc)},
    {Py_tp_methods, input_methods},
    {Py_tp_iter, reinterpret_cast<void*>(py_input_iter)},
    {Py_tp_iternext, reinterpret_cast<void*>(py_input_next)},
    {Py_tp_doc, const_cast<char*>("wsgi.input: the request body.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec input_type_spec = {
    "_pyinterp.Input", sizeof(input_object), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, input_slots,
};

PyObject* input_new(wsgi_state* st, wsgi_request* q) noexcept {
    auto* self = PyObject_New(input_object, st->input_type);
    if (self != nullptr) self->q = q;
    return reinterpret_cast<PyObject*>(self);
}

void input_detach(PyObject* input) noexcept {
    if (input != nullptr) reinterpret_cast<input_object*>(input)->q = nullptr;
}

}  // namespace pyinterp::mod
