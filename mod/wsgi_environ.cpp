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
#include "py_compat.h"
#include "pymodule.h"
#include "str_cache.h"
#include "wsgi_request.h"

namespace pyinterp::mod {
namespace {

// The keys environ_new adds after httpd's variables.
constexpr int k_fixed_keys = 14;

// Sets env[key] = value, the key's str from the interpreter's cache.  Steals
// `value`; false with an exception set (also when value is nullptr).
bool set(str_cache* keys, PyObject* env, const char* key, size_t n, PyObject* value) noexcept {
    if (value == nullptr) return false;
    PyObject* k = keys->get(key, n);
    int rc = k != nullptr ? PyDict_SetItem(env, k, value) : -1;
    Py_XDECREF(k);
    Py_DECREF(value);
    return rc == 0;
}

template <size_t N>
bool set(str_cache* keys, PyObject* env, const char (&key)[N], PyObject* value) noexcept {
    return set(keys, env, key, N - 1, value);
}

// PEP 3333 "native strings": bytes from httpd decoded as latin-1.
PyObject* latin1(const char* value) noexcept {
    if (value == nullptr) value = "";
    return PyUnicode_DecodeLatin1(value, Py_ssize_t(std::strlen(value)), nullptr);
}

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

    const apr_array_header_t* arr = apr_table_elts(e);
    PyObject* env = compat::dict_presized(arr->nelts + k_fixed_keys);
    if (env == nullptr) return nullptr;
    str_cache* keys = q->state->environ_keys;
    const auto* elts = reinterpret_cast<const apr_table_entry_t*>(arr->elts);
    bool ok = true;
    for (int i = 0; ok && i < arr->nelts; ++i)
        if (elts[i].key != nullptr) ok = set(keys, env, elts[i].key, std::strlen(elts[i].key), latin1(elts[i].val));

    static const mpm_model mpm;
    auto boolean = [](bool b) { return Py_NewRef(b ? Py_True : Py_False); };
    ok = ok && set(keys, env, "wsgi.version", Py_NewRef(q->state->wsgi_version)) &&
         set(keys, env, "wsgi.url_scheme", latin1(ap_http_scheme(r))) &&
         set(keys, env, "wsgi.input", Py_NewRef(input)) && set(keys, env, "wsgi.errors", Py_NewRef(errors)) &&
         set(keys, env, "wsgi.multithread", boolean(mpm.multithread)) &&
         set(keys, env, "wsgi.multiprocess", boolean(mpm.multiprocess)) &&
         set(keys, env, "wsgi.run_once", boolean(false)) &&
         set(keys, env, "wsgi.input_terminated", boolean(true)) &&
         set(keys, env, "wsgi.file_wrapper", Py_NewRef(reinterpret_cast<PyObject*>(q->state->file_wrapper_type))) &&
         set(keys, env, "pyinterp.application_group", latin1(t.group)) &&
         set(keys, env, "pyinterp.interpreter", latin1(t.interpreter)) &&
         set(keys, env, "pyinterp.interpreter_id", PyLong_FromLongLong(t.interpreter_id)) &&
         set(keys, env, "pyinterp.callable_object", latin1(t.callable)) &&
         set(keys, env, "pyinterp.script_reloading", boolean(t.script_reloading));
    if (!ok) Py_CLEAR(env);
    return env;
}

}  // namespace pyinterp::mod
