// The WSGI protocol as the executor (app/executor.h) reaches it: a function
// table whose `request` is a wsgi_call.  The request path (request.cpp)
// resolves a request into an app::request_target and hands both to the
// executor, which enters the interpreter, loads the application and calls
// wsgi_protocol.serve (wsgi_handler.cpp) with it.
#pragma once

#include <httpd.h>

#include "app/executor.h"
#include "wsgi_request.h"

namespace pyinterp::mod {

// What the protocol leaves for after the interpreter is left: no Python in
// it, so the httpd worker does it without the GIL, and does not take the
// GIL again once the response is out (under load, waiting for the GIL after
// the client has its response kept a worker busy for nothing).
struct after_leave {
    apr_bucket_brigade* bb = nullptr;  // the end of the response: passed, if set
    bool discard_body = false;         // drain the request body nobody read
    sent_file file;                    // a file in the response (wsgi.file_wrapper), or none
};

// One request on its way through the executor.
struct wsgi_call {
    request_rec* r = nullptr;
    after_leave after;
    bool exception = false;  // the application raised, or its script did not load
};

// serve: OK, or an HTTP error status when nothing was sent to the client.
// load_failed: logs, HTTP_INTERNAL_SERVER_ERROR.  after_leave: with OK,
// completes the response (finish_after_leave).  log: against the request.
// outcome: the status the client gets (the application's when it answered).
extern const app::protocol wsgi_protocol;

// Does what `a` says.  No GIL.  Returns false if the client went away.
bool finish_after_leave(request_rec* r, const after_leave& a) noexcept;

// What the handler returns to httpd for a run of the executor: the
// protocol's status when it served (or reported a failed load), else 503
// when the interpreter refused the entry and 500 otherwise.
int http_status_of(const app::run_result& res) noexcept;

}  // namespace pyinterp::mod
