// Python text streams that write to httpd's error log: `wsgi.errors` (per
// request, logged against the request) and `sys.stdout` / `sys.stderr` (per
// interpreter, logged against the main server).  Every function needs the
// GIL of the interpreter that owns the objects.
#pragma once

#include <Python.h>
#include <httpd.h>

namespace pyinterp::mod {

struct wsgi_state;

extern PyType_Spec log_type_spec;

// A new stream logging complete lines at `level` (APLOG_*), each prefixed
// with `tag` (a static string such as "PYI0300: "), against `r` if non-null
// else against `s`.  Returns a new reference or nullptr with an exception.
PyObject* log_stream_new(wsgi_state* st, request_rec* r, server_rec* s, int level, const char* tag) noexcept;

// Flushes a partial line and stops using the request: later output goes to
// the server's log (the application may keep wsgi.errors past the request).
void log_stream_detach(PyObject* stream) noexcept;

// sys.stdout and sys.stderr of the current interpreter to the error log of
// `s`.  False with an exception set.
bool log_streams_install(wsgi_state* st, server_rec* s) noexcept;

}  // namespace pyinterp::mod
