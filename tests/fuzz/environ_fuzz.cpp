// libFuzzer target: the WSGI environ built from arbitrary request lines and
// headers, through the code the server runs (mod/wsgi_environ_dict.cpp:
// environ_request_vars, environ_from_vars, script_name_length, and the
// interpreter's str cache).  httpd's own part, turning request headers
// into CGI variables (ap_add_common_vars), is not available outside httpd;
// this target does what it does for the headers: HTTP_<NAME> for names of
// letters, digits and '-', CONTENT_TYPE and CONTENT_LENGTH, others dropped.
//
// Input: a request head, "METHOD URI PROTOCOL\n" then "Name: value\n"
// lines (CR optional); the last byte picks where PATH_INFO starts in the
// path and whether Authorization is passed.  Checks: every variable is in
// the environ as latin-1 str, SCRIPT_NAME + PATH_INFO is the path, the
// wsgi.* keys are there, Authorization only when configured, and the
// interpreter's str cache stays bounded.
#include <Python.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "app/str_cache.h"
#include "app/target.h"
#include "wsgi_environ.h"
#include "wsgi_state.h"

using namespace pyinterp;

namespace {

apr_pool_t* g_root = nullptr;
mod::wsgi_state g_state;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "environ_fuzz: broken promise: %s\n", what);
        if (PyErr_Occurred()) PyErr_Print();
        std::abort();
    }
}

// httpd's header-to-variable rule (see the top of this file).
const char* cgi_name(apr_pool_t* p, const std::string& header) {
    if (strcasecmp(header.c_str(), "Content-Type") == 0) return "CONTENT_TYPE";
    if (strcasecmp(header.c_str(), "Content-Length") == 0) return "CONTENT_LENGTH";
    if (header.empty()) return nullptr;
    std::string out = "HTTP_";
    for (char c : header) {
        if (c == '-')
            out.push_back('_');
        else if (std::isalnum(static_cast<unsigned char>(c)))
            out.push_back(char(std::toupper(static_cast<unsigned char>(c))));
        else
            return nullptr;
    }
    if (out == "HTTP_AUTHORIZATION" || out == "HTTP_PROXY_AUTHORIZATION") return nullptr;  // httpd hides them
    return apr_pstrdup(p, out.c_str());
}

// environ[key] as the bytes it was decoded from (latin-1), or false.
bool environ_bytes(PyObject* env, const char* key, std::string* out) {
    PyObject* k = PyUnicode_DecodeLatin1(key, Py_ssize_t(std::strlen(key)), nullptr);
    check(k != nullptr, "key decodes");
    PyObject* v = PyDict_GetItemWithError(env, k);
    Py_DECREF(k);
    if (v == nullptr) return false;
    check(PyUnicode_Check(v), "CGI values are str");
    PyObject* b = PyUnicode_AsLatin1String(v);
    check(b != nullptr, "CGI values are latin-1");
    out->assign(PyBytes_AS_STRING(b), size_t(PyBytes_GET_SIZE(b)));
    Py_DECREF(b);
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    setenv("PYTHONMALLOC", "malloc", 1);  // every Python allocation visible to ASan
    Py_InitializeEx(0);
    apr_initialize();
    apr_pool_create(&g_root, nullptr);
    g_state.environ_keys = new app::str_cache(app::str_cache::latin1);
    g_state.wsgi_version = Py_BuildValue("(ii)", 1, 0);
    g_state.file_wrapper_type = &PyBaseObject_Type;  // any type stands in for it here
    check(g_state.wsgi_version != nullptr && mod::environ_init_keys(&g_state), "state");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    uint8_t knobs = data[size - 1];
    std::string head(reinterpret_cast<const char*>(data), size - 1);
    apr_pool_t* p = nullptr;
    apr_pool_create(&p, g_root);
    apr_table_t* headers_in = apr_table_make(p, 8);
    apr_table_t* vars = apr_table_make(p, 32);

    // The request line.
    size_t eol = head.find('\n');
    std::string line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t sp1 = line.find(' '), sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    const char* method = apr_pstrdup(p, line.substr(0, sp1).c_str());
    std::string target =
        sp1 == std::string::npos ? "/" : line.substr(sp1 + 1, sp2 == std::string::npos ? sp2 : sp2 - sp1 - 1);
    const char* protocol = apr_pstrdup(p, sp2 == std::string::npos ? "HTTP/1.0" : line.substr(sp2 + 1).c_str());
    size_t q = target.find('?');
    const char* uri = apr_pstrdup(p, target.substr(0, q).c_str());
    const char* args = q == std::string::npos ? nullptr : apr_pstrdup(p, target.substr(q + 1).c_str());

    // The headers.
    for (size_t pos = eol; pos != std::string::npos && pos < head.size();) {
        size_t next = head.find('\n', pos + 1);
        std::string h = head.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
        pos = next;
        if (!h.empty() && h.back() == '\r') h.pop_back();
        size_t colon = h.find(':');
        if (colon == std::string::npos) continue;
        std::string name = h.substr(0, colon), value = h.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
        const char* v = apr_pstrdup(p, value.c_str());
        apr_table_add(headers_in, apr_pstrdup(p, name.c_str()), v);
        if (const char* var = cgi_name(p, name)) apr_table_setn(vars, var, v);
    }

    // The script's URL and PATH_INFO, split where the last byte says.
    size_t uri_len = std::strlen(uri);
    size_t cut = uri_len == 0 ? 0 : (knobs >> 1) % (uri_len + 1);
    app::request_target t;
    t.path_info = uri + cut;
    t.script_name = apr_pstrndup(p, uri, mod::script_name_length(uri, t.path_info));
    t.pass_authorization = (knobs & 1) != 0;
    t.callable = "application";

    mod::request_line rl{method, protocol, args, nullptr, uri};
    mod::environ_request_vars(vars, rl, t, headers_in);
    mod::environ_values ev;
    PyObject* input = Py_None;
    ev.input = input;
    ev.errors = input;
    ev.group = method;  // a name-like value from the client, through the cache
    ev.interpreter = "fuzz";
    PyObject* env = mod::environ_from_vars(&g_state, vars, ev);
    check(env != nullptr, "an environ is built from any request");

    const apr_array_header_t* arr = apr_table_elts(vars);
    const auto* elts = reinterpret_cast<const apr_table_entry_t*>(arr->elts);
    for (int i = 0; i < arr->nelts; ++i) {
        std::string got;
        check(environ_bytes(env, elts[i].key, &got), "every variable is in the environ");
        check(got == elts[i].val, "with its value, byte for byte");
    }
    std::string sn, pi, auth;
    check(environ_bytes(env, "SCRIPT_NAME", &sn) && environ_bytes(env, "PATH_INFO", &pi), "SCRIPT_NAME, PATH_INFO");
    check(sn + pi == std::string(uri), "SCRIPT_NAME + PATH_INFO is the path");
    check(environ_bytes(env, "REQUEST_METHOD", &auth) && auth == method, "REQUEST_METHOD");
    bool has_auth = environ_bytes(env, "HTTP_AUTHORIZATION", &auth);
    check(!has_auth || (t.pass_authorization && apr_table_get(headers_in, "Authorization") != nullptr),
          "Authorization only when passed");
    for (const char* k : {"wsgi.version", "wsgi.input", "wsgi.errors", "wsgi.url_scheme", "pyinterp.application_group"})
        check(PyDict_GetItemString(env, k) != nullptr, "the wsgi.* and pyinterp.* keys");
    check(g_state.environ_keys->size() <= app::str_cache::k_max_entries, "the str cache is bounded");
    Py_DECREF(env);
    apr_pool_destroy(p);
    return 0;
}
