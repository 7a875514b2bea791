// wsgi.input: the request body as a Python file-like object (read, read(n),
// readline, readline(n), readlines, iteration), read lazily from httpd's input
// filters, so `Expect: 100-continue` is answered only when the application
// reads.  Chunked bodies are de-chunked by httpd.  Every function: GIL held;
// the GIL is released around each network read.
#pragma once

#include <Python.h>

namespace pyinterp::mod {

struct wsgi_state;
struct wsgi_request;

extern PyType_Spec input_type_spec;

// A new wsgi.input reading the body of `q`'s request.  New reference, or
// nullptr with an exception set.
PyObject* input_new(wsgi_state* st, wsgi_request* q) noexcept;

// Cuts the object loose from its request: later calls raise ValueError.
void input_detach(PyObject* input) noexcept;

}  // namespace pyinterp::mod
