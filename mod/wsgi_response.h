// Writing a WSGI response through httpd's output filters: headers from the
// status and list start_response recorded, body blocks as buckets (file
// buckets for wsgi.file_wrapper), the declared Content-Length enforced, and
// a broken response cut off rather than corrupted.  Every function: GIL
// held, released around ap_pass_brigade.
#pragma once

#include <Python.h>
#include <apr.h>
#include <apr_buckets.h>
#include <httpd.h>

namespace pyinterp::mod {

struct wsgi_request;
struct sent_file;

// Outcome of a write.
enum class send_status {
    ok,
    client_gone,  // the client went away: stop producing, nothing to report
    error,        // a Python exception is set (no start_response, say)
};

// Sends `n` bytes of body (headers first if not yet sent).  Empty blocks
// send nothing, not even the headers (PEP 3333).  A block that would exceed
// the declared Content-Length is truncated.  `flush`: push the block to the
// client now rather than letting httpd buffer it.
send_status response_write(wsgi_request* q, const char* data, size_t n, bool flush) noexcept;

// Like response_write, for a body whose blocks all exist already (a list or
// tuple): the block, a bytes object, is held back, and reaches the network
// with the next write, at response_finish, or once k_hold_max bytes or
// wsgi_request::k_max_held blocks are held.  Saves a GIL hand-over per block
// (the GIL is released around every pass) and lets httpd send headers and
// body in one write.  A block of 8 KiB or more is not copied: it is
// referenced until the pass returns, and httpd copies only what it has to
// keep beyond that (a transient bucket); a smaller one is copied.
send_status response_hold(wsgi_request* q, PyObject* bytes) noexcept;

// Drops the references to held blocks (GIL held); their buckets must be
// passed or cleaned up already.  Called by every pass and at the end of the
// request.
void response_release_held(wsgi_request* q) noexcept;

// Sends `length` bytes of the regular file `fd` from `offset` as a file
// bucket (httpd may use sendfile or mmap).  When it opens the response (no
// body sent yet) and the application declared no Content-Length, the
// response gets Content-Length: `length`.  The descriptor is duplicated,
// the caller keeps `fd`.  Returns error with an OSError set if it could not
// be duplicated.
send_status response_send_file(wsgi_request* q, int fd, apr_off_t offset, apr_off_t length) noexcept;

// Ends the response: headers if none were sent yet (an empty body), then
// end-of-stream.  A body shorter than its Content-Length marks the
// connection to be closed after this response.  error: start_response was
// never called (exception set; nothing was sent).
//
// With `deferred` non-null and no block held by reference, the end of the
// response is not passed here: *deferred receives the brigade to pass once
// the interpreter is left (protocol.h, after_leave).  Otherwise it is passed
// now and *deferred is left nullptr.
send_status response_finish(wsgi_request* q, apr_bucket_brigade** deferred = nullptr) noexcept;

// Logs a pass of the response that failed with `rv`: a warning naming the
// file when `file` (a wsgi.file_wrapper file) is now shorter than what was
// to be sent from it (it was truncated while httpd sent it), else the
// client went away (info).  Any GIL state.
void log_send_failure(request_rec* r, apr_status_t rv, const sent_file& file) noexcept;

// If nothing of the response reached httpd's output filters yet (its blocks
// are only held), drops it so the request can still fail cleanly with a 500.
bool response_unsend(wsgi_request* q) noexcept;

// Cuts a response whose headers are out: marks the connection to close and
// ends the stream with an error, so a chunked body gets no final chunk and
// a client never takes a partial body for a complete one.
void response_abort(wsgi_request* q) noexcept;

}  // namespace pyinterp::mod
