// The WSGI environ from an httpd request (see wsgi_environ.h): httpd's CGI
// variables and the MPM's model; the dict itself is built without httpd
// (wsgi_environ_dict.cpp).  All functions: GIL held.
#include "wsgi_environ.h"

#include <httpd.h>
#include <ap_mpm.h>
#include <apr_tables.h>
#include <http_core.h>
#include <http_protocol.h>
#include <util_script.h>

#include <cstring>

#include "app/placement.h"
#include "wsgi_state.h"
#include "wsgi_request.h"

namespace pyinterp::mod {
namespace {

// True to the running MPM: threads per child and child processes.  Fixed
// for the life of a child, so asked once.
struct mpm_model {
    bool multithread = false;
    bool multiprocess = false;

    mpm_model() noexcept {
        int threaded = AP_MPMQ_NOT_SUPPORTED, max_threads = 1, forked = AP_MPMQ_NOT_SUPPORTED, max_daemons = 1;
        ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
        if (threaded != AP_MPMQ_NOT_SUPPORTED) ap_mpm_query(AP_MPMQ_MAX_THREADS, &max_threads);
        ap_mpm_query(AP_MPMQ_IS_FORKED, &forked);
        if (forked != AP_MPMQ_NOT_SUPPORTED) ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &max_daemons);
        multithread = threaded != AP_MPMQ_NOT_SUPPORTED && max_threads > 1;
        multiprocess = forked != AP_MPMQ_NOT_SUPPORTED && max_daemons > 1;
    }
};

}  // namespace

PyObject* environ_new(wsgi_request* q, const app::application& a, const app::request_target& t, PyObject* input,
                      PyObject* errors) noexcept {
    request_rec* r = q->r;
    // httpd's common CGI variables (HTTP_* for well-formed header names,
    // CONTENT_TYPE/LENGTH, SERVER_*, REMOTE_*, DOCUMENT_ROOT, SetEnv values).
    // ap_add_cgi_vars is not used: it runs a sub-request for PATH_TRANSLATED.
    ap_add_common_vars(r);
    request_line line{r->method, r->protocol, r->args, r->unparsed_uri, r->uri};
    environ_request_vars(r->subprocess_env, line, t, r->headers_in);
    static const mpm_model mpm;
    environ_values v;
    v.url_scheme = ap_http_scheme(r);
    v.input = input;
    v.errors = errors;
    v.multithread = mpm.multithread;
    v.multiprocess = mpm.multiprocess;
    v.group = a.group;
    v.interpreter = a.interpreter;
    v.interpreter_id = a.interpreter_id;
    v.placement = app::placement_name(a.where);
    v.callable = t.callable;
    v.script_reloading = t.script_reloading;
    return environ_from_vars(q->state, r->subprocess_env, v);
}

}  // namespace pyinterp::mod
