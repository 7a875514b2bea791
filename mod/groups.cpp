// Application groups (see groups.h).
#include "groups.h"

#include <apr_strings.h>
#include <http_log.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "log_stream.h"
#include "pymodule.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// The dispatch library limits names to 255 bytes and reserves "main".
constexpr size_t k_max_interp_name = 255;

const char* server_name(const server_rec* s, apr_pool_t* p) noexcept {
    const char* host = s->server_hostname ? s->server_hostname : "localhost";
    if (s->port == 0 || s->port == 80 || s->port == 443) return host;
    return apr_psprintf(p, "%s:%u", host, unsigned(s->port));
}

// The dispatch library's name for a group's interpreter.
std::string interpreter_name(const char* group) {
    std::string name = std::strcmp(group, "main") == 0 ? std::string("group:main") : std::string(group);
    if (name.size() > k_max_interp_name) {
        unsigned long long h = 1469598103934665603ULL;
        for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
        char tail[24];
        std::snprintf(tail, sizeof tail, "#%016llx", h);
        name = name.substr(0, 200) + tail;
    }
    return name;
}

// Inserts the ':'-separated directories at the front of sys.path, in order.
bool add_python_path(const char* python_path) noexcept {
    if (python_path == nullptr || *python_path == '\0') return true;
    PyObject* path = PySys_GetObject("path");  // borrowed
    if (path == nullptr || !PyList_Check(path)) return true;
    Py_ssize_t at = 0;
    for (const char* p = python_path; *p;) {
        const char* end = std::strchr(p, ':');
        size_t n = end ? size_t(end - p) : std::strlen(p);
        if (n > 0) {
            PyObject* item = PyUnicode_DecodeFSDefaultAndSize(p, Py_ssize_t(n));
            if (item == nullptr || PyList_Insert(path, at++, item) < 0) {
                Py_XDECREF(item);
                return false;
            }
            Py_DECREF(item);
        }
        p += n + (end ? 1 : 0);
    }
    return true;
}

}  // namespace

const char* group_for_request(const request_rec* r, const group_spec& g, const char* script_name) noexcept {
    switch (g.kind) {
        case group_kind::global: return "";
        case group_kind::server: return server_name(r->server, r->pool);
        case group_kind::named: return g.value;
        case group_kind::env: {
            const char* v = apr_table_get(r->subprocess_env, g.value);
            if (v == nullptr) v = apr_table_get(r->notes, g.value);
            return v != nullptr ? v : "";
        }
        case group_kind::unset:
        case group_kind::resource: break;
    }
    return apr_pstrcat(r->pool, server_name(r->server, r->pool), "|", script_name, nullptr);
}

const char* group_for_server(const server_rec* s, const group_spec& g, apr_pool_t* p) noexcept {
    switch (g.kind) {
        case group_kind::global: return "";
        case group_kind::server: return server_name(s, p);
        case group_kind::named: return g.value;
        default: return nullptr;  // rejected at configuration time
    }
}

pyinterp::view interpreter_for(const char* group, server_rec* s) noexcept {
    if (*group == '\0') return pyinterp::view::main();
    int status = PYINTERP_OK;
    // Most groups are their interpreter's name: found without building it.
    if (std::strcmp(group, "main") != 0 && std::strlen(group) <= k_max_interp_name) {
        if (pyinterp::view v = pyinterp::view::find(group, &status)) return v;
    }
    std::string name;
    try {
        name = interpreter_name(group);
    } catch (...) {
        return pyinterp::view();
    }
    pyinterp::view v = pyinterp::view::find(name.c_str(), &status);
    if (v) return v;
    v = pyinterp::view::create(name.c_str(), PYINTERP_GIL_SHARED, &status);
    if (status == PYINTERP_ERR_EXISTS) v = pyinterp::view::find(name.c_str(), &status);  // lost a race
    if (v) {
        if (status == PYINTERP_OK)
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                         "PYI0120: created interpreter '%s' (id %" APR_INT64_T_FMT ") for application group '%s'", v.name(),
                         static_cast<apr_int64_t>(v.id()), group);
        return v;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "PYI0121: cannot create the interpreter of application group '%s': %s",
                 group, pyinterp_strerror(status));
    return v;
}

PyObject* prepare_interpreter(server_rec* log_server, const char* python_path) noexcept {
    PyObject* m = private_module();
    if (m == nullptr) return nullptr;
    module_state* st = state_of(m);
    if (st->ready) return m;
    // No Python code runs between the check above and the flag below (only
    // C calls that do not release the GIL), so two threads cannot both do it.
    PyObject* out = log_stream_new(st, nullptr, log_server, APLOG_NOTICE, "PYI0302: stdout: ");
    PyObject* err = out ? log_stream_new(st, nullptr, log_server, APLOG_ERR, "PYI0301: stderr: ") : nullptr;
    bool ok = err != nullptr && PySys_SetObject("stdout", out) == 0 && PySys_SetObject("stderr", err) == 0 &&
              add_python_path(python_path);
    Py_XDECREF(out);
    Py_XDECREF(err);
    if (!ok) {
        Py_DECREF(m);
        return nullptr;
    }
    st->ready = 1;
    return m;
}

}  // namespace pyinterp::mod
