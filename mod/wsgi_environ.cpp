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
#include "wsgi_state.h"
#include "wsgi_request.h"

namespace pyinterp::mod {
namespace {

// The keys environ_new adds after httpd's variables, in wsgi_state's
// environ_fixed.
enum fixed_key : int {
    k_version, k_url_scheme, k_input, k_errors, k_multithread, k_multiprocess, k_run_once, k_input_terminated,
    k_file_wrapper, k_application_group, k_interpreter, k_interpreter_id, k_callable_object, k_script_reloading,
    k_fixed_count
};
constexpr const char* k_fixed_names[] = {
    "wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess",
    "wsgi.run_once", "wsgi.input_terminated", "wsgi.file_wrapper", "pyinterp.application_group",
    "pyinterp.interpreter", "pyinterp.interpreter_id", "pyinterp.callable_object", "pyinterp.script_reloading",
};
static_assert(k_fixed_count == wsgi_state::k_fixed_environ_keys &&
              sizeof k_fixed_names / sizeof k_fixed_names[0] == k_fixed_count);

// Sets env[key] = value.  Steals `value`; false with an exception set (also
// when value is nullptr).
bool put(PyObject* env, PyObject* key, PyObject* value) noexcept {
    if (value == nullptr) return false;
    int rc = PyDict_SetItem(env, key, value);
    Py_DECREF(value);
    return rc == 0;
}

// The str of a name-like value (the group, the interpreter's name...), from
// the interpreter's cache.  New reference or nullptr with an exception.
PyObject* cached(app::str_cache* keys, const char* value) noexcept {
    if (value == nullptr) value = "";
    return keys->get(value, std::strlen(value));
}

// put() with the key's str from the interpreter's cache.
bool set(app::str_cache* keys, PyObject* env, const char* key, size_t n, PyObject* value) noexcept {
    PyObject* k = keys->get(key, n);
    if (k == nullptr) {
        Py_XDECREF(value);
        return false;
    }
    bool ok = put(env, k, value);
    Py_DECREF(k);
    return ok;
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

bool environ_init_keys(wsgi_state* st) noexcept {
    for (int i = 0; i < k_fixed_count; ++i) {
        st->environ_fixed[i] = PyUnicode_InternFromString(k_fixed_names[i]);
        if (st->environ_fixed[i] == nullptr) return false;
    }
    return true;
}

PyObject* environ_new(wsgi_request* q, const app::application& a, const app::request_target& t, PyObject* input,
                      PyObject* errors) noexcept {
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
    PyObject* env = compat::dict_presized(arr->nelts + k_fixed_count);
    if (env == nullptr) return nullptr;
    app::str_cache* keys = q->state->environ_keys;
    const auto* elts = reinterpret_cast<const apr_table_entry_t*>(arr->elts);
    bool ok = true;
    for (int i = 0; ok && i < arr->nelts; ++i)
        if (elts[i].key != nullptr) ok = set(keys, env, elts[i].key, std::strlen(elts[i].key), latin1(elts[i].val));

    static const mpm_model mpm;
    auto boolean = [](bool b) { return Py_NewRef(b ? Py_True : Py_False); };
    PyObject* const* k = q->state->environ_fixed;
    ok = ok && put(env, k[k_version], Py_NewRef(q->state->wsgi_version)) &&
         put(env, k[k_url_scheme], cached(keys, ap_http_scheme(r))) && put(env, k[k_input], Py_NewRef(input)) &&
         put(env, k[k_errors], Py_NewRef(errors)) && put(env, k[k_multithread], boolean(mpm.multithread)) &&
         put(env, k[k_multiprocess], boolean(mpm.multiprocess)) && put(env, k[k_run_once], boolean(false)) &&
         put(env, k[k_input_terminated], boolean(true)) &&
         put(env, k[k_file_wrapper], Py_NewRef(reinterpret_cast<PyObject*>(q->state->file_wrapper_type))) &&
         put(env, k[k_application_group], cached(keys, a.group)) &&
         put(env, k[k_interpreter], cached(keys, a.interpreter)) &&
         put(env, k[k_interpreter_id], PyLong_FromLongLong(a.interpreter_id)) &&
         put(env, k[k_callable_object], cached(keys, t.callable)) &&
         put(env, k[k_script_reloading], boolean(t.script_reloading));
    if (!ok) Py_CLEAR(env);
    return env;
}

}  // namespace pyinterp::mod
