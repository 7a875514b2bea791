// The WSGI environ of a request: the CGI variables (httpd's common variables
// plus the request line's), SCRIPT_NAME/PATH_INFO split at the script,
// HTTP_* headers, the wsgi.* keys and a few pyinterp.* keys.  GIL held.
#pragma once

#include <Python.h>
#include <apr_tables.h>

#include <cstdint>

#include "app/executor.h"

namespace pyinterp::mod {

struct wsgi_state;
struct wsgi_request;

// Makes the fixed environ keys of an interpreter (wsgi_state's
// environ_fixed).  False with an exception set.
bool environ_init_keys(wsgi_state* st) noexcept;

// The parts of the request line the environ's own variables come from.
struct request_line {
    const char* method;
    const char* protocol;
    const char* args;          // query string, or nullptr
    const char* unparsed_uri;  // as the client sent it, or nullptr
    const char* uri;           // the decoded path
};

// What the environ gets besides the CGI variables: wsgi.* and pyinterp.*.
struct environ_values {
    const char* url_scheme = "http";
    PyObject* input = nullptr;   // wsgi.input (borrowed)
    PyObject* errors = nullptr;  // wsgi.errors (borrowed)
    bool multithread = false;
    bool multiprocess = false;
    const char* group = "";
    const char* interpreter = "";
    int64_t interpreter_id = 0;
    const char* placement = "main";  // pyinterp.placement: "own", "shared" or "main"
    const char* callable = "";
    bool script_reloading = false;
};

// The length of SCRIPT_NAME in `uri`: the URI without the path_info httpd
// split off the script's path (all of it if path_info is not its tail).
// No GIL involved.
size_t script_name_length(const char* uri, const char* path_info) noexcept;

// Sets the environ's own request variables in `e` (GATEWAY_INTERFACE,
// SERVER_PROTOCOL, REQUEST_METHOD, QUERY_STRING, REQUEST_URI, SCRIPT_NAME,
// PATH_INFO; HTTP_AUTHORIZATION from `headers_in` per the target's policy;
// no PATH_TRANSLATED).  Values are not copied: they must outlive `e`.  No
// GIL involved.
void environ_request_vars(apr_table_t* e, const request_line& line, const app::request_target& t,
                          const apr_table_t* headers_in) noexcept;

// The environ dict: every variable of `vars` (keys and values decoded as
// latin-1) plus the wsgi.* and pyinterp.* keys of `v`.  New reference, or
// nullptr with an exception set.
PyObject* environ_from_vars(wsgi_state* st, const apr_table_t* vars, const environ_values& v) noexcept;

// A new environ dict for the application `a` of target `t`, or nullptr with
// an exception set.  Adds httpd's CGI variables to r->subprocess_env as a
// side effect (as mod_cgi does).
PyObject* environ_new(wsgi_request* q, const app::application& a, const app::request_target& t, PyObject* input,
                      PyObject* errors) noexcept;

}  // namespace pyinterp::mod
