// Response writing (see wsgi_response.h).  All functions: GIL held,
// released around ap_pass_brigade.
#include "wsgi_response.h"

#include <httpd.h>
#include <apr_buckets.h>
#include <apr_file_io.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_filter.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "wsgi_request.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// A str validated by start_response (code points < 256) as a pool string.
const char* latin1(PyObject* str, apr_pool_t* p) noexcept {
    PyObject* b = PyUnicode_AsLatin1String(str);
    if (b == nullptr) return nullptr;
    const char* out = apr_pstrmemdup(p, PyBytes_AS_STRING(b), size_t(PyBytes_GET_SIZE(b)));
    Py_DECREF(b);
    return out;
}

// Moves the status and headers start_response recorded into the request.
// Returns false with an exception set.
bool apply_headers(wsgi_request* q) noexcept {
    request_rec* r = q->r;
    if (q->status == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "start_response() was not called before the response body or the end of the application");
        return false;
    }
    const char* status = latin1(q->status, r->pool);
    if (status == nullptr) return false;
    r->status = int(apr_atoi64(status));
    r->status_line = status;
    Py_ssize_t n = PyList_GET_SIZE(q->headers);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyList_GET_ITEM(q->headers, i);
        const char* name = latin1(PyTuple_GET_ITEM(item, 0), r->pool);
        const char* value = name ? latin1(PyTuple_GET_ITEM(item, 1), r->pool) : nullptr;
        if (value == nullptr) return false;
        if (strcasecmp(name, "Content-Type") == 0) {
            ap_set_content_type(r, value);
        } else if (strcasecmp(name, "Content-Length") == 0) {
            apr_table_set(r->headers_out, "Content-Length", value);
            q->content_length = apr_atoi64(value);
        } else {
            apr_table_add(r->headers_out, name, value);
        }
    }
    q->headers_sent = true;
    return true;
}

// Passes the brigade with the GIL released.
send_status pass(wsgi_request* q) noexcept {
    request_rec* r = q->r;
    apr_status_t rv;
    Py_BEGIN_ALLOW_THREADS
    q->passed = true;
    rv = ap_pass_brigade(r->output_filters, q->bb);
    apr_brigade_cleanup(q->bb);
    Py_END_ALLOW_THREADS
    q->held_bytes = 0;
    response_release_held(q);
    if (rv != APR_SUCCESS || r->connection->aborted) {
        if (!q->client_gone) log_send_failure(r, rv, q->file);
        q->client_gone = true;
        return send_status::client_gone;
    }
    return send_status::ok;
}

// How many of `n` more bytes the declared Content-Length allows.
apr_off_t allowed(wsgi_request* q, apr_off_t n) noexcept {
    if (q->content_length < 0 || q->body_sent + n <= q->content_length) return n;
    if (!q->truncated)
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, q->r,
                      "PYI0502: response body longer than its Content-Length (%" APR_OFF_T_FMT
                      " bytes); truncated",
                      q->content_length);
    q->truncated = true;
    return q->content_length - q->body_sent;
}

apr_status_t close_fd(void* fd) {
    close(static_cast<int>(reinterpret_cast<intptr_t>(fd)));
    return APR_SUCCESS;
}

}  // namespace

send_status response_write(wsgi_request* q, const char* data, size_t n, bool flush) noexcept {
    if (q->client_gone) return send_status::client_gone;
    if (q->bb == nullptr) {  // response_finish handed the end of the response over
        PyErr_SetString(PyExc_RuntimeError, "the response is complete; nothing more can be written");
        return send_status::error;
    }
    if (n == 0) return send_status::ok;
    if (!q->headers_sent && !apply_headers(q)) return send_status::error;
    apr_off_t len = allowed(q, apr_off_t(n));
    if (len <= 0) return send_status::ok;
    apr_bucket_alloc_t* ba = q->r->connection->bucket_alloc;
    // Transient: `data` stays valid until the pass returns (the caller holds
    // the bytes object); a filter that keeps it copies it.
    APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_transient_create(data, apr_size_t(len), ba));
    if (flush) APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_flush_create(ba));
    q->body_sent += len;
    return pass(q);
}

send_status response_hold(wsgi_request* q, PyObject* bytes) noexcept {
    constexpr apr_off_t k_hold_max = apr_off_t{256} * 1024;
    constexpr apr_off_t k_copy_below = apr_off_t{8} * 1024;
    if (q->client_gone) return send_status::client_gone;
    size_t n = size_t(PyBytes_GET_SIZE(bytes));
    if (n == 0) return send_status::ok;
    if (!q->headers_sent && !apply_headers(q)) return send_status::error;
    apr_off_t len = allowed(q, apr_off_t(n));
    if (len <= 0) return send_status::ok;
    apr_bucket_alloc_t* ba = q->r->connection->bucket_alloc;
    if (len < k_copy_below) {
        // Cheaper to copy than to keep a reference: many small blocks do
        // not use up the held slots.
        APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_heap_create(PyBytes_AS_STRING(bytes), apr_size_t(len), nullptr, ba));
    } else {
        if (q->n_held == wsgi_request::k_max_held && pass(q) != send_status::ok) return send_status::client_gone;
        q->held[q->n_held++] = Py_NewRef(bytes);
        APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_transient_create(PyBytes_AS_STRING(bytes), apr_size_t(len), ba));
    }
    q->body_sent += len;
    q->held_bytes += len;
    return q->held_bytes >= k_hold_max ? pass(q) : send_status::ok;
}

void response_release_held(wsgi_request* q) noexcept {
    while (q->n_held > 0) {
        --q->n_held;  // not inside Py_CLEAR, which evaluates its argument more than once
        Py_CLEAR(q->held[q->n_held]);
    }
}

send_status response_send_file(wsgi_request* q, int fd, apr_off_t offset, apr_off_t length) noexcept {
    if (q->client_gone) return send_status::client_gone;
    if (length <= 0) return send_status::ok;
    if (!q->headers_sent) {
        if (!apply_headers(q)) return send_status::error;
        // The whole body is this file: without a Content-Length from the
        // application, the file's says how long it is (as the reference
        // server does), instead of a close-delimited or chunked body.
        if (q->content_length < 0) {
            ap_set_content_length(q->r, length);
            q->content_length = length;
        }
    }
    length = allowed(q, length);
    if (length <= 0) return send_status::ok;
    request_rec* r = q->r;
    int copy = dup(fd);
    if (copy < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return send_status::error;
    }
    // The duplicate belongs to the request pool, which httpd destroys only
    // after every bucket before the request's end-of-request bucket has
    // been written.  apr_os_file_put marks the apr_file_t no-cleanup, so a
    // set-aside copy never closes it early.
    apr_pool_cleanup_register(r->pool, reinterpret_cast<void*>(intptr_t(copy)), close_fd,
                              apr_pool_cleanup_null);
    apr_file_t* file = nullptr;
    apr_os_file_t os_fd = copy;
    apr_os_file_put(&file, &os_fd, APR_FOPEN_READ | APR_FOPEN_SENDFILE_ENABLED, r->pool);
    apr_bucket* last = apr_brigade_insert_file(q->bb, file, offset, length, r->pool);
    // Read, never mapped: a file truncated while mapped kills whatever
    // touches the lost pages (SIGBUS in a filter that reads the bucket); a
    // read() comes up short, and the send fails cleanly.
    for (apr_bucket* b = APR_BRIGADE_FIRST(q->bb); b != APR_BRIGADE_SENTINEL(q->bb); b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_FILE(b)) apr_bucket_file_enable_mmap(b, 0);
        if (b == last) break;
    }
    q->file = {copy, offset + length};
    q->body_sent += length;
    return pass(q);
}

send_status response_finish(wsgi_request* q, apr_bucket_brigade** deferred) noexcept {
    if (deferred != nullptr) *deferred = nullptr;
    if (q->client_gone) return send_status::client_gone;
    if (!q->headers_sent && !apply_headers(q)) return send_status::error;
    request_rec* r = q->r;
    if (q->content_length >= 0 && q->body_sent < q->content_length && !r->header_only) {
        // Held blocks go out on their own first: passed together with the
        // end of stream, httpd would replace the declared Content-Length.
        if (!APR_BRIGADE_EMPTY(q->bb) && pass(q) != send_status::ok) return send_status::client_gone;
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "PYI0503: response body shorter than its Content-Length (%" APR_OFF_T_FMT " of %" APR_OFF_T_FMT
                      " bytes); closing the connection",
                      q->body_sent, q->content_length);
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    // A file in the response is flushed out before the request ends, so
    // that a send that fails because the file changed is seen (and logged,
    // naming it) here rather than silently in the MPM's write completion.
    if (q->file.fd >= 0) APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_flush_create(r->connection->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_eos_create(r->connection->bucket_alloc));
    if (deferred != nullptr && q->n_held == 0) {
        // Nothing in it points into a Python object: the caller passes it
        // after leaving the interpreter.  Nothing more is written to it.
        q->passed = true;
        *deferred = q->bb;
        q->bb = nullptr;
        return send_status::ok;
    }
    return pass(q);
}

void log_send_failure(request_rec* r, apr_status_t rv, const sent_file& file) noexcept {
    struct stat sb;
    if (file.fd >= 0 && fstat(file.fd, &sb) == 0 && sb.st_size < file.end) {
        char link[64], name[1024];
        std::snprintf(link, sizeof link, "/proc/self/fd/%d", file.fd);
        ssize_t n = readlink(link, name, sizeof name - 1);
        name[n > 0 ? n : 0] = '\0';
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "PYI0504: sending file '%s' (wsgi.file_wrapper) failed: it is %" APR_OFF_T_FMT
                      " bytes now, %" APR_OFF_T_FMT " were to be sent (truncated while being sent); connection closed",
                      n > 0 ? name : "?", static_cast<apr_off_t>(sb.st_size), file.end);
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, "PYI0501: client connection closed while the response was being sent");
}

bool response_unsend(wsgi_request* q) noexcept {
    if (q->passed) return false;
    apr_brigade_cleanup(q->bb);
    q->held_bytes = 0;
    response_release_held(q);
    q->headers_sent = false;
    q->body_sent = 0;
    return true;
}

void response_abort(wsgi_request* q) noexcept {
    request_rec* r = q->r;
    r->connection->keepalive = AP_CONN_CLOSE;
    r->no_cache = 1;
    if (q->client_gone) return;
    apr_bucket_alloc_t* ba = r->connection->bucket_alloc;
    // HTTP_BAD_GATEWAY is what httpd's chunk filter recognises as "the
    // producer broke": it then withholds the terminating chunk.
    APR_BRIGADE_INSERT_TAIL(q->bb, ap_bucket_error_create(HTTP_BAD_GATEWAY, nullptr, r->pool, ba));
    APR_BRIGADE_INSERT_TAIL(q->bb, apr_bucket_eos_create(ba));
    pass(q);
    q->client_gone = true;
}

}  // namespace pyinterp::mod
