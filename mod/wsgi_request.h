// The state of one WSGI request, shared by the protocol files: environ,
// wsgi.input, start_response and response writing.  It lives on the stack
// of the handler thread for the duration of the request; the Python objects
// that point at it (wsgi.input, start_response) are detached before it goes
// away, so an application that keeps them gets an exception, not a crash.
// All members are used with the interpreter's GIL held.
#pragma once

#include <Python.h>
#include <httpd.h>

#include <string>

namespace pyinterp::mod {

struct wsgi_state;

// A file handed to httpd as a file bucket (wsgi.file_wrapper), remembered
// so that a send that fails because the file changed under httpd is logged
// naming it.
struct sent_file {
    int fd = -1;          // httpd's duplicate, open until the request pool goes
    apr_off_t end = 0;    // offset of the last byte to send, plus one
};

struct wsgi_request {
    request_rec* r = nullptr;
    wsgi_state* state = nullptr;
    apr_bucket_brigade* bb = nullptr;  // output brigade, reused for every pass

    // Response: set by start_response, sent with the first body bytes.
    PyObject* status = nullptr;   // str "NNN reason" (owned)
    PyObject* headers = nullptr;  // list of (str, str) (owned copy)
    bool headers_sent = false;    // passed to the output filters
    apr_off_t content_length = -1;  // declared by the application, or -1
    apr_off_t body_sent = 0;        // bytes handed to httpd
    bool truncated = false;         // body longer than Content-Length was cut
    bool client_gone = false;       // a pass failed or the connection aborted
    bool passed = false;            // anything was passed to the output filters
    // Body blocks in `bb` as transient buckets, not yet passed: the bytes
    // objects they point into, owned until the pass returns.
    static constexpr int k_max_held = 8;
    PyObject* held[k_max_held] = {};
    int n_held = 0;
    apr_off_t held_bytes = 0;  // body bytes in `bb` not yet passed
    sent_file file;            // the last wsgi.file_wrapper file sent as a file

    // Request body.
    bool input_started = false;  // ap_setup_client_block done
    bool input_eof = false;
    bool input_failed = false;
    int input_answered = 0;      // httpd answered the client itself (400, 413) on a bad body
    std::string input_buf;       // read from the client, not yet consumed
    size_t input_pos = 0;        // consumed prefix of input_buf
    apr_off_t input_total = 0;   // bytes read from the client
};

}  // namespace pyinterp::mod
