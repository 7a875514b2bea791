// The WSGI environ's request variables and its dict (see wsgi_environ.h),
// without httpd: APR tables and Python only, so that the fuzz targets
// (tests/fuzz) build environs from arbitrary request lines and headers with
// the very code the server runs.  Functions that touch Python: GIL held.
#include "wsgi_environ.h"

#include <apr_tables.h>

#include <cstring>

#include "py_compat.h"
#include "wsgi_state.h"

namespace pyinterp::mod {
namespace {

// The keys environ_new adds after httpd's variables, in wsgi_state's
// environ_fixed.
enum fixed_key : int {
    k_version,
    k_url_scheme,
    k_input,
    k_errors,
    k_multithread,
    k_multiprocess,
    k_run_once,
    k_input_terminated,
    k_file_wrapper,
    k_application_group,
    k_interpreter,
    k_interpreter_id,
    k_placement,
    k_callable_object,
    k_script_reloading,
    k_fixed_count
};
constexpr const char* k_fixed_names[] = {
    "wsgi.version",
    "wsgi.url_scheme",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.multithread",
    "wsgi.multiprocess",
    "wsgi.run_once",
    "wsgi.input_terminated",
    "wsgi.file_wrapper",
    "pyinterp.application_group",
    "pyinterp.interpreter",
    "pyinterp.interpreter_id",
    "pyinterp.placement",
    "pyinterp.callable_object",
    "pyinterp.script_reloading",
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

}  // namespace

size_t script_name_length(const char* uri, const char* path_info) noexcept {
    size_t uri_len = std::strlen(uri), info_len = std::strlen(path_info);
    if (info_len <= uri_len && std::strcmp(uri + uri_len - info_len, path_info) == 0) return uri_len - info_len;
    return uri_len;
}

void environ_request_vars(apr_table_t* e, const request_line& line, const app::request_target& t,
                          const apr_table_t* headers_in) noexcept {
    apr_table_setn(e, "GATEWAY_INTERFACE", "CGI/1.1");
    apr_table_setn(e, "SERVER_PROTOCOL", line.protocol);
    apr_table_setn(e, "REQUEST_METHOD", line.method);
    apr_table_setn(e, "QUERY_STRING", line.args ? line.args : "");
    apr_table_setn(e, "REQUEST_URI", line.unparsed_uri ? line.unparsed_uri : line.uri);
    apr_table_setn(e, "SCRIPT_NAME", t.script_name);
    apr_table_setn(e, "PATH_INFO", t.path_info);
    apr_table_unset(e, "PATH_TRANSLATED");
    if (t.pass_authorization) {
        if (const char* auth = apr_table_get(headers_in, "Authorization"))
            apr_table_setn(e, "HTTP_AUTHORIZATION", auth);
    } else {
        apr_table_unset(e, "HTTP_AUTHORIZATION");
    }
}

bool environ_init_keys(wsgi_state* st) noexcept {
    for (int i = 0; i < k_fixed_count; ++i) {
        st->environ_fixed[i] = PyUnicode_InternFromString(k_fixed_names[i]);
        if (st->environ_fixed[i] == nullptr) return false;
    }
    return true;
}

PyObject* environ_from_vars(wsgi_state* st, const apr_table_t* vars, const environ_values& v) noexcept {
    const apr_array_header_t* arr = apr_table_elts(vars);
    PyObject* env = compat::dict_presized(arr->nelts + k_fixed_count);
    if (env == nullptr) return nullptr;
    app::str_cache* keys = st->environ_keys;
    const auto* elts = reinterpret_cast<const apr_table_entry_t*>(arr->elts);
    bool ok = true;
    for (int i = 0; ok && i < arr->nelts; ++i)
        if (elts[i].key != nullptr) ok = set(keys, env, elts[i].key, std::strlen(elts[i].key), latin1(elts[i].val));

    auto boolean = [](bool b) { return Py_NewRef(b ? Py_True : Py_False); };
    PyObject* const* k = st->environ_fixed;
    ok = ok && put(env, k[k_version], Py_NewRef(st->wsgi_version)) &&
         put(env, k[k_url_scheme], cached(keys, v.url_scheme)) && put(env, k[k_input], Py_NewRef(v.input)) &&
         put(env, k[k_errors], Py_NewRef(v.errors)) && put(env, k[k_multithread], boolean(v.multithread)) &&
         put(env, k[k_multiprocess], boolean(v.multiprocess)) && put(env, k[k_run_once], boolean(false)) &&
         put(env, k[k_input_terminated], boolean(true)) &&
         put(env, k[k_file_wrapper], Py_NewRef(reinterpret_cast<PyObject*>(st->file_wrapper_type))) &&
         put(env, k[k_application_group], cached(keys, v.group)) &&
         put(env, k[k_interpreter], cached(keys, v.interpreter)) &&
         put(env, k[k_interpreter_id], PyLong_FromLongLong(v.interpreter_id)) &&
         put(env, k[k_placement], cached(keys, v.placement)) &&
         put(env, k[k_callable_object], cached(keys, v.callable)) &&
         put(env, k[k_script_reloading], boolean(v.script_reloading));
    if (!ok) Py_CLEAR(env);
    return env;
}

}  // namespace pyinterp::mod
