// The protocol behind the module's handler, as a small function table (the
// way NGINX Unit separates its language modules from the protocol): the
// generic request path (request.cpp) finds the script and its interpreter,
// enters it, and hands over to a protocol.  WSGI is the only one today.
#pragma once

#include <Python.h>
#include <httpd.h>

#include <cstdint>

#include "config.h"

namespace pyinterp::mod {

struct module_state;

// What the generic request path resolved for one request.
struct request_target {
    const char* script = nullptr;       // the script file (r->filename)
    const char* script_name = nullptr;  // URL prefix that selected it (SCRIPT_NAME)
    const char* path_info = nullptr;    // rest of the URL path (PATH_INFO)
    const char* group = nullptr;        // application group ("" is %{GLOBAL})
    const char* interpreter = nullptr;  // the interpreter's name in the dispatch library
    int64_t interpreter_id = 0;         // CPython's interpreter id (0: main)
    const char* callable = nullptr;     // name of the application object
    bool script_reloading = false;
    bool pass_authorization = false;
    fallback_policy fallback = k_default_fallback;  // PyInterpSubinterpreterFallback / alias option
    bool fallback_from_alias = false;               // set by subinterpreter-fallback= on the alias
    const char* alias_url = nullptr;                // the matched PyInterpScriptAlias URL, or nullptr
};

// What a protocol leaves for after the interpreter is left: no Python in
// it, so the httpd worker does it without the GIL, and does not take the
// GIL again once the response is out (under load, waiting for the GIL after
// the client has its response kept a worker busy for nothing).
struct after_leave {
    apr_bucket_brigade* bb = nullptr;  // the end of the response: passed, if set
    bool discard_body = false;         // drain the request body nobody read
};

// Does what `a` says.  No GIL.  Returns false if the client went away.
bool finish_after_leave(request_rec* r, const after_leave& a) noexcept;

struct protocol {
    const char* name;
    // Serves `r` with the application of `t`.  Called inside the target
    // interpreter with its GIL held; returns with it held.  Returns OK, or
    // an HTTP error status when nothing was sent to the client, or
    // k_route_to_main (fallback.h) when the application must be served
    // from the main interpreter instead.  With OK, `after` may hold the
    // rest of the response, for the caller to complete once it has left
    // the interpreter (finish_after_leave).
    int (*serve)(request_rec* r, const request_target& t, module_state* st, after_leave* after) noexcept;
};

extern const protocol wsgi_protocol;

}  // namespace pyinterp::mod
