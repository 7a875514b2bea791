// The WSGI environ (see wsgi_environ.h).  All functions: GIL held.
#include "wsgi_environ.h"

#include <httpd.h>
#include <ap_mpm.h>
#include <apr_tables.h>
#include <http_core.h>
#include <http_protocol.h>
#include <util_script.h>

#include <cstring>

#include "protocol.h"
#include "pymodule.h"
#include "wsgi_request.h"

namespace pyinterp::mod {
namespace {

// PEP 3333 "native strings": bytes from httpd decoded as latin-1.
bool set_str(PyObject* env, const char* key, const char* value) noexcept {
    PyObject* v = PyUnicode_DecodeLatin1(value ? value : "", Py_ssize_t(value ? std::strlen(value) : 0), nullptr);
    if (v == nullptr) return false;
    int rc = PyDict_SetItemString(env, key, v);
    Py_DECREF(v);
    return rc == 0;
}

bool set_obj(PyObject* env, const char* key, PyObject* value) noexcept {
    if (value == nullptr) return false;
    int rc = PyDict_SetItemString(env, key, value);
    Py_DECREF(value);
    return rc == 0;
}

bool set_bool(PyObject* env, const char* key, bool value) noexcept {
    return PyDict_SetItemString(env, key, value ? Py_True : Py_False) == 0;
}

// True to the running MPM: threads per child and child processes.
void mpm_model(bool* multithread, bool* multiprocess) noexcept {
    int threaded = AP_MPMQ_NOT_SUPPORTED, max_threads = 1, forked = AP_MPMQ_NOT_SUPPORTED, max_daemons = 1;
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    if (threaded != AP_MPMQ_NOT_SUPPORTED) ap_mpm_query(AP_MPMQ_MAX_THREADS, &max_threads);
    ap_mpm_query(AP_MPMQ_IS_FORKED, &forked);
    if (forked != AP_MPMQ_NOT_SUPPORTED) ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &max_daemons);
    *multithread = threaded != AP_MPMQ_NOT_SUPPORTED && max_threads > 1;
    *multiprocess = forked != AP_MPMQ_NOT_SUPPORTED && max_daemons > 1;
}

}  // namespace

PyObject* environ_new(wsgi_request* q, const request_target& t, PyObject* input, PyObject* errors) noexcept {
    request_rec* r = q->r;
    // httpd's common CGI variables (HTTP_* for well-formed header names,
    // CONTENT_TYPE/LENGTH, SERVER_*, REMOTE_*, DOCUMENT_ROOT, SetEnv values).
    // ap_add_cgi_vars is not used: it runs a sub-request for PATH_TRANSLATED.
    ap_add_common_vars(r);
    apr_table_t* e = r->subprocess_env;
    apr_table_setn(e, "GATEWAY_INTERFACE", "CGI/1.1");
    apr_table_setn(e, "SERVER_PROTOCOL", r->protocol);
    apr_table_setn(e, "REQUEST_METHOD", r->method);
    apr_table_setn(e, "QUERY_STRING", r->args ? r->args : "");
    apr_table_setn(e, "REQUEST_URI", r->unparsed_uri ? r->unparsed_uri : r->uri);
    apr_table_setn(e, "SCRIPT_NAME", t.script_name);
    apr_table_setn(e, "PATH_INFO", t.path_info);
    apr_table_unset(e, "PATH_TRANSLATED");
    if (t.pass_authorization) {
        if (const char* auth = apr_table_get(r->headers_in, "Authorization"))
            apr_table_setn(e, "HTTP_AUTHORIZATION", auth);
    } else {
        apr_table_unset(e, "HTTP_AUTHORIZATION");
    }

    PyObject* env = PyDict_New();
    if (env == nullptr) return nullptr;
    const apr_array_header_t* arr = apr_table_elts(e);
    const auto* elts = reinterpret_cast<const apr_table_entry_t*>(arr->elts);
    bool ok = true;
    for (int i = 0; ok && i < arr->nelts; ++i)
        if (elts[i].key != nullptr) ok = set_str(env, elts[i].key, elts[i].val);

    bool multithread = false, multiprocess = false;
    mpm_model(&multithread, &multiprocess);
    ok = ok && set_obj(env, "wsgi.version", Py_BuildValue("(ii)", 1, 0)) &&
         set_str(env, "wsgi.url_scheme", ap_http_scheme(r)) && PyDict_SetItemString(env, "wsgi.input", input) == 0 &&
         PyDict_SetItemString(env, "wsgi.errors", errors) == 0 && set_bool(env, "wsgi.multithread", multithread) &&
         set_bool(env, "wsgi.multiprocess", multiprocess) && set_bool(env, "wsgi.run_once", false) &&
         set_bool(env, "wsgi.input_terminated", true) &&
         PyDict_SetItemString(env, "wsgi.file_wrapper", reinterpret_cast<PyObject*>(q->state->file_wrapper_type)) ==
             0 &&
         set_obj(env, "pyinterp.application_group", PyUnicode_DecodeLatin1(t.group, Py_ssize_t(std::strlen(t.group)), nullptr)) &&
         set_obj(env, "pyinterp.interpreter", PyUnicode_DecodeLatin1(t.interpreter, Py_ssize_t(std::strlen(t.interpreter)), nullptr)) &&
         set_obj(env, "pyinterp.interpreter_id", PyLong_FromLongLong(t.interpreter_id)) &&
         set_str(env, "pyinterp.callable_object", t.callable) &&
         set_bool(env, "pyinterp.script_reloading", t.script_reloading);
    if (!ok) Py_CLEAR(env);
    return env;
}

}  // namespace pyinterp::mod
