// Error-log streams (see log_stream.h).  All functions: GIL held.
#include "log_stream.h"

#include <http_log.h>

#include <pthread.h>

#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "pyinterp/py/ref.h"
#include "wsgi_state.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// httpd cuts error-log lines at about 8 KiB; split long output earlier.
constexpr size_t k_max_line = 4000;

struct log_object {
    PyObject_HEAD request_rec* r;
    server_rec* s;
    int level;
    const char* tag;
    std::string* pending;  // bytes of an incomplete line
    pthread_t owner;       // the thread serving `r`: only it may log against `r` without the GIL
};

log_object* as_log(PyObject* o) noexcept {
    return reinterpret_cast<log_object*>(o);
}

void emit(request_rec* r, server_rec* s, int level, const char* tag, const char* data, size_t n) noexcept {
    while (n > 0 && (data[n - 1] == '\r')) --n;
    int len = static_cast<int>(n);
    if (r != nullptr)
        ap_log_rerror(APLOG_MARK, level, 0, r, "%s%.*s", tag, len, data);
    else
        ap_log_error(APLOG_MARK, level, 0, s, "%s%.*s", tag, len, data);
}

// The lines of `buf` to log now, as (offset, length): every complete line,
// long ones in pieces of k_max_line; with `all`, the rest too.  Sets *used
// to the bytes they cover.
std::vector<std::pair<size_t, size_t>> lines_of(const std::string& buf, bool all, size_t* used) {
    std::vector<std::pair<size_t, size_t>> out;
    size_t start = 0;
    for (;;) {
        size_t nl = buf.find('\n', start);
        if (nl == std::string::npos) {
            // A long line still being written (print() sends its "\n"
            // separately): log it in pieces of k_max_line, keeping at least
            // one byte back so the newline that ends it never logs an
            // empty line.
            while (buf.size() - start > k_max_line) {
                out.emplace_back(start, k_max_line);
                start += k_max_line;
            }
            if (all && buf.size() > start) {
                out.emplace_back(start, buf.size() - start);
                start = buf.size();
            }
            break;
        }
        while (nl - start > k_max_line) {
            out.emplace_back(start, k_max_line);
            start += k_max_line;
        }
        out.emplace_back(start, nl - start);
        start = nl + 1;
    }
    *used = start;
    return out;
}

// Logs the lines of the pending text (see lines_of).  The error log is
// written with the GIL released (a piped or slow log must not stop the
// interpreter), except for a request's wsgi.errors used from a thread other
// than the one serving the request, which may end the request meanwhile.
void drain(log_object* self, bool all) noexcept {
    std::string& buf = *self->pending;
    std::string text;
    std::vector<std::pair<size_t, size_t>> lines;
    try {
        size_t used = 0;
        lines = lines_of(buf, all, &used);
        if (lines.empty()) return;
        text.assign(buf, 0, used);  // other threads may write to the stream while the GIL is released
        buf.erase(0, used);
    } catch (...) {
        return;  // out of memory: the text stays pending
    }
    request_rec* r = self->r;
    server_rec* s = self->s;
    int level = self->level;
    const char* tag = self->tag;
    auto write_all = [&] {
        for (const auto& [off, len] : lines) emit(r, s, level, tag, text.data() + off, len);
    };
    if (r != nullptr && !pthread_equal(self->owner, pthread_self())) {
        write_all();
        return;
    }
    Py_BEGIN_ALLOW_THREADS write_all();
    Py_END_ALLOW_THREADS
}

PyObject* py_log_write(PyObject* self_o, PyObject* arg) {
    log_object* self = as_log(self_o);
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be str, not %.100s", Py_TYPE(arg)->tp_name);
        return nullptr;
    }
    py::ref bytes = py::ref::steal(PyUnicode_AsEncodedString(arg, "utf-8", "backslashreplace"));
    if (!bytes) return nullptr;
    try {
        self->pending->append(PyBytes_AS_STRING(bytes.get()), size_t(PyBytes_GET_SIZE(bytes.get())));
    } catch (...) {
        return PyErr_NoMemory();
    }
    drain(self, false);
    return PyLong_FromSsize_t(PyUnicode_GET_LENGTH(arg));
}

PyObject* py_log_writelines(PyObject* self, PyObject* lines) {
    py::ref it = py::ref::steal(PyObject_GetIter(lines));
    if (!it) return nullptr;
    while (py::ref line = py::ref::steal(PyIter_Next(it.get()))) {
        if (!py::ref::steal(py_log_write(self, line.get()))) return nullptr;
    }
    if (PyErr_Occurred()) return nullptr;
    Py_RETURN_NONE;
}

PyObject* py_log_flush(PyObject* self, PyObject*) {
    drain(as_log(self), true);
    Py_RETURN_NONE;
}

PyObject* py_log_false(PyObject*, PyObject*) {
    Py_RETURN_FALSE;
}

PyObject* py_log_true(PyObject*, PyObject*) {
    Py_RETURN_TRUE;
}

PyObject* py_log_fileno(PyObject*, PyObject*) {
    PyErr_SetString(PyExc_OSError, "the error log stream has no file descriptor");
    return nullptr;
}

PyObject* py_log_get_encoding(PyObject*, void*) {
    return PyUnicode_FromString("utf-8");
}

PyObject* py_log_get_errors(PyObject*, void*) {
    return PyUnicode_FromString("backslashreplace");
}

PyObject* py_log_get_closed(PyObject*, void*) {
    Py_RETURN_FALSE;
}

void py_log_dealloc(PyObject* self_o) {
    log_object* self = as_log(self_o);
    PyTypeObject* type = Py_TYPE(self_o);
    if (self->pending != nullptr) {
        drain(self, true);
        delete self->pending;
    }
    type->tp_free(self_o);
    Py_DECREF(type);
}

PyMethodDef log_methods[] = {
    {"write", py_log_write, METH_O, "Write text to the error log (complete lines are logged)."},
    {"writelines", py_log_writelines, METH_O, "Write each string of an iterable."},
    {"flush", py_log_flush, METH_NOARGS, "Log any incomplete line."},
    {"close", py_log_flush, METH_NOARGS, "Flush; the stream stays usable."},
    {"isatty", py_log_false, METH_NOARGS, nullptr},
    {"readable", py_log_false, METH_NOARGS, nullptr},
    {"seekable", py_log_false, METH_NOARGS, nullptr},
    {"writable", py_log_true, METH_NOARGS, nullptr},
    {"fileno", py_log_fileno, METH_NOARGS, nullptr},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef log_getset[] = {
    {"encoding", py_log_get_encoding, nullptr, nullptr, nullptr},
    {"errors", py_log_get_errors, nullptr, nullptr, nullptr},
    {"closed", py_log_get_closed, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot log_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(py_log_dealloc)},
    {Py_tp_methods, log_methods},
    {Py_tp_getset, log_getset},
    {Py_tp_doc, const_cast<char*>("A text stream writing to httpd's error log.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec log_type_spec = {
    "_pyinterp.Log", sizeof(log_object), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, log_slots,
};

PyObject* log_stream_new(wsgi_state* st, request_rec* r, server_rec* s, int level, const char* tag) noexcept {
    auto* self = PyObject_New(log_object, st->log_type);
    if (self == nullptr) return nullptr;
    self->r = r;
    self->s = s;
    self->level = level;
    self->tag = tag;
    self->owner = pthread_self();
    self->pending = new (std::nothrow) std::string;
    if (self->pending == nullptr) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return reinterpret_cast<PyObject*>(self);
}

void log_stream_detach(PyObject* stream) noexcept {
    if (stream == nullptr) return;
    log_object* self = as_log(stream);
    drain(self, true);
    if (self->r != nullptr) self->s = self->r->server;
    self->r = nullptr;
}

bool log_streams_install(wsgi_state* st, server_rec* s) noexcept {
    py::ref out = py::ref::steal(log_stream_new(st, nullptr, s, APLOG_NOTICE, "PYI0302: stdout: "));
    py::ref err = py::ref::steal(out ? log_stream_new(st, nullptr, s, APLOG_ERR, "PYI0301: stderr: ") : nullptr);
    return err && PySys_SetObject("stdout", out.get()) == 0 && PySys_SetObject("stderr", err.get()) == 0;
}

}  // namespace pyinterp::mod
