// The WSGI environ of a request: the CGI variables (httpd's common variables
// plus the request line's), SCRIPT_NAME/PATH_INFO split at the script,
// HTTP_* headers, the wsgi.* keys and a few pyinterp.* keys.  GIL held.
#pragma once

#include <Python.h>

#include "app/executor.h"

namespace pyinterp::mod {

struct wsgi_state;
struct wsgi_request;

// Makes the fixed environ keys of an interpreter (wsgi_state's
// environ_fixed).  False with an exception set.
bool environ_init_keys(wsgi_state* st) noexcept;

// A new environ dict for the application `a` of target `t`, or nullptr with
// an exception set.  Adds httpd's CGI variables to r->subprocess_env as a
// side effect (as mod_cgi does).
PyObject* environ_new(wsgi_request* q, const app::application& a, const app::request_target& t, PyObject* input,
                      PyObject* errors) noexcept;

}  // namespace pyinterp::mod
