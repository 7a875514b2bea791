// start_response(status, headers, exc_info=None) and the write() callable it
// returns.  The status and every header are validated before anything is
// recorded: a malformed status, a header name that is not a token, a value
// with CR, LF, NUL or another control character, a hop-by-hop header or a
// non-numeric Content-Length raises in the application, so a bad response is
// never put on the wire.  Every function: GIL held.
#pragma once

#include <Python.h>

namespace pyinterp::mod {

struct wsgi_state;
struct wsgi_request;

extern PyType_Spec start_response_type_spec;

// A new start_response callable for `q`.  New reference, or nullptr with an
// exception set.
PyObject* start_response_new(wsgi_state* st, wsgi_request* q) noexcept;

// Cuts the callable (and its write()) loose from the request.
void start_response_detach(PyObject* start_response) noexcept;

}  // namespace pyinterp::mod
