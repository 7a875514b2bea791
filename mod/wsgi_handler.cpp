// The WSGI protocol: call the application, send what it returns, call its
// close() on every path, and turn every failure into either a clean 500 (when
// nothing was sent yet) or a cut connection (when headers are out), with the
// traceback in the error log and never in the response.  All functions: GIL
// of the target interpreter held; it is released around network I/O only.
#include <Python.h>

#include <apr_strings.h>
#include <httpd.h>
#include <http_log.h>
#include <http_protocol.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/interrupt.h"
#include "child_stop.h"
#include "error_log.h"
#include "log_stream.h"
#include "protocol.h"
#include "py_compat.h"
#include "pyinterp/py/exception.h"
#include "wsgi_state.h"
#include "wsgi_environ.h"
#include "wsgi_file_wrapper.h"
#include "wsgi_input.h"
#include "wsgi_request.h"
#include "wsgi_response.h"
#include "wsgi_start_response.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// Sends a wsgi.file_wrapper over a real regular file as one file bucket.
// Returns false (no exception) when the object does not qualify, so the
// caller iterates it instead.
bool send_wrapped_file(wsgi_request* q, PyObject* filelike, send_status* out) noexcept {
    int fd = PyObject_AsFileDescriptor(filelike);
    if (fd < 0) {
        PyErr_Clear();
        return false;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    apr_off_t offset = -1;
    if (PyObject_HasAttrString(filelike, "tell")) {
        // The logical position of a buffered Python file, not the fd's.
        py::ref pos = py::ref::steal(PyObject_CallMethod(filelike, "tell", nullptr));
        offset = pos ? PyLong_AsLongLong(pos.get()) : -1;
        if (offset < 0) PyErr_Clear();
    }
    if (offset < 0) offset = lseek(fd, 0, SEEK_CUR);
    if (offset < 0) return false;
    apr_off_t length = sb.st_size > offset ? sb.st_size - offset : 0;
    *out = response_send_file(q, fd, offset, length);
    return true;
}

// Sends the body items of `result`.  Returns false with an exception set.
bool send_body(wsgi_request* q, PyObject* result) noexcept {
    if (PyObject* filelike = file_wrapper_filelike(q->state, result)) {
        send_status st;
        if (send_wrapped_file(q, filelike, &st)) return st != send_status::error;
    }
    // A list or tuple is complete already: hold its blocks back and pass them
    // with the end of the response; stream anything else block by block.
    bool complete = PyList_CheckExact(result) || PyTuple_CheckExact(result);
    py::ref it = py::ref::steal(PyObject_GetIter(result));
    if (!it) return false;
    while (py::ref item = py::ref::steal(PyIter_Next(it.get()))) {
        PyObject* b = item.get();
        if (!PyBytes_Check(b)) {
            PyErr_Format(PyExc_TypeError, "the application yielded %.100s; response body items must be bytes",
                         Py_TYPE(b)->tp_name);
            return false;
        }
        send_status st =
            complete ? response_hold(q, b) : response_write(q, PyBytes_AS_STRING(b), size_t(PyBytes_GET_SIZE(b)), true);
        if (st == send_status::error) return false;
        if (st == send_status::client_gone) return true;
    }
    return !PyErr_Occurred();
}

// Calls result.close() if it has one.  An exception from close() (or from
// looking it up) is logged and does not change the response: with *first
// empty the body was produced whole, and a clean-up error does not make a
// complete response a broken one (the response is finished as usual);
// otherwise *first is what gets reported.
void close_result(wsgi_request* q, PyObject* result, const py::ref& first) noexcept {
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) return;  // no close() to call
    PyObject* found_close = nullptr;
    int found = compat::optional_attr(result, q->state->str_close, &found_close);
    py::ref close = py::ref::steal(found_close);
    if (found == 0) return;
    if (found > 0 && py::ref::steal(PyObject_CallNoArgs(close.get()))) return;
    if (first)
        log_python_exception(q->r, nullptr, "PYI0703: the application's close() raised too");
    else
        log_python_exception(q->r, nullptr,
                             "PYI0706: the application's close() raised after the whole body was produced; "
                             "the response is completed");
}

// The request was interrupted (app/interrupt.h: its timeout passed or the
// child is stopping; the watchdog logged it with its stack): 504 (503 at a
// stop) when nothing was sent yet, else the connection is cut.
int report_interrupted(wsgi_request* q, const app::request_target& t) noexcept {
    bool stopping = child_is_stopping();
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, q->r, "PYI0707: '%s' interrupted (%s); %s", t.script,
                  stopping ? "server stopping" : "request timeout",
                  q->headers_sent ? "connection cut"
                  : stopping      ? "answered 503"
                                  : "answered 504");
    if (!q->headers_sent) return stopping ? HTTP_SERVICE_UNAVAILABLE : HTTP_GATEWAY_TIME_OUT;
    response_abort(q);
    return OK;
}

// Reports the application's exception and decides the request's status.
int report(wsgi_request* q, py::ref exc, const app::request_target& t) noexcept {
    request_rec* r = q->r;
    if (q->client_gone) {
        // When httpd answered a bad request body itself, PYI0403 said so.
        if (q->input_answered == 0)
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "PYI0704: client went away during '%s'; the application's exception is dropped", t.script);
        return OK;
    }
    if (q->headers_sent) response_unsend(q);  // nothing on its way yet: a clean 500
    if (app::is_request_timeout(exc.get())) return report_interrupted(q, t);
    py::restore_exception(std::move(exc));
    log_python_exception(r, nullptr,
                         apr_psprintf(r->pool, "PYI0702: exception in the WSGI application of '%s'%s", t.script,
                                      q->headers_sent ? " after its headers were sent; connection cut" : ""));
    if (!q->headers_sent) return HTTP_INTERNAL_SERVER_ERROR;
    response_abort(q);
    return OK;
}

// What the application is called with, each pointing at the request.
struct call_objects {
    py::ref input, errors, start, environ;
};

// Makes them.  False with an exception set.
bool make_objects(wsgi_request* q, const app::application& a, const app::request_target& t, call_objects* o) noexcept {
    o->input = py::ref::steal(input_new(q->state, q));
    if (o->input)
        o->errors = py::ref::steal(log_stream_new(q->state, q->r, nullptr, APLOG_ERR, "PYI0300: wsgi.errors: "));
    if (o->errors) o->start = py::ref::steal(start_response_new(q->state, q));
    if (o->start) o->environ = py::ref::steal(environ_new(q, a, t, o->input.get(), o->errors.get()));
    return bool(o->environ);
}

// Calls the application and sends what it returns.  The exception to
// report, or an empty ref.
py::ref call_application(wsgi_request* q, PyObject* app, PyObject* environ, PyObject* start,
                         apr_bucket_brigade** deferred) noexcept {
    py::ref result = py::ref::steal(PyObject_CallFunctionObjArgs(app, environ, start, nullptr));
    if (!result) return py::take_exception();
    py::ref exc;
    if (!send_body(q, result.get())) exc = py::take_exception();
    close_result(q, result.get(), exc);
    result.reset();
    if (!exc && response_finish(q, deferred) == send_status::error) exc = py::take_exception();
    return exc;
}

// Everything the request made that points at `q`, before `q` goes away.
void release_request(wsgi_request* q, const call_objects& o) noexcept {
    input_detach(o.input.get());
    start_response_detach(o.start.get());
    log_stream_detach(o.errors.get());
    Py_CLEAR(q->status);
    Py_CLEAR(q->headers);
    if (q->bb != nullptr)
        apr_brigade_cleanup(q->bb);  // anything never passed (client gone) goes before what it points into
    response_release_held(q);
}

int serve(const app::application& a, const app::request_target& t, void* request) noexcept {
    auto* call = static_cast<wsgi_call*>(request);
    request_rec* r = call->r;
    wsgi_request q;
    q.r = r;
    q.state = wsgi_state_of(a.state);
    q.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    call_objects o;
    int rc = OK;
    if (!make_objects(&q, a, t, &o)) {
        log_python_exception(r, nullptr, "PYI0705: cannot build the WSGI environ");
        rc = HTTP_INTERNAL_SERVER_ERROR;
    } else if (py::ref exc = call_application(&q, a.callable, o.environ.get(), o.start.get(), &call->after.bb)) {
        call->exception = true;
        rc = report(&q, std::move(exc), t);
    }
    call->after.file = q.file;
    release_request(&q, o);
    // The body nobody read is drained after the interpreter is left, so the
    // connection can serve its next request.
    call->after.discard_body = rc == OK && !q.input_eof && !q.input_failed;
    return rc;
}

int load_failed(const app::request_target& t, void* request) noexcept {
    static_cast<wsgi_call*>(request)->exception = true;
    request_rec* r = static_cast<wsgi_call*>(request)->r;
    py::ref exc = py::take_exception();
    if (app::is_request_timeout(exc.get())) {  // the script's load ran past the request's timeout
        wsgi_request q;
        q.r = r;
        return report_interrupted(&q, t);
    }
    py::restore_exception(std::move(exc));
    log_python_exception(r, nullptr, apr_psprintf(r->pool, "PYI0701: cannot load WSGI script '%s'", t.script));
    return HTTP_INTERNAL_SERVER_ERROR;
}

void after_leave_done(int status, void* request) noexcept {
    auto* call = static_cast<wsgi_call*>(request);
    if (status == OK) finish_after_leave(call->r, call->after);
}

void log_for_request(app::level lv, const char* message, void* request) noexcept {
    ap_log_rerror(APLOG_MARK, ap_level_of(lv), 0, static_cast<wsgi_call*>(request)->r, "%s", message);
}

app::response_outcome outcome(const app::run_result& res, void* request) noexcept {
    auto* call = static_cast<wsgi_call*>(request);
    app::response_outcome o;
    o.exception = call->exception;
    // Served: the status the application answered (start_response set it),
    // unless serve() answered an error itself.
    o.http_status = res.what == app::run_result::served && res.status == OK ? call->r->status : http_status_of(res);
    return o;
}

}  // namespace

const app::protocol wsgi_protocol = {"wsgi", serve, load_failed, after_leave_done, log_for_request, outcome};

}  // namespace pyinterp::mod
