// The protocol-independent request path (see request.h).
#include <Python.h>

#include "request.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include <cstring>

#include "config.h"
#include "fallback.h"
#include "groups.h"
#include "log_stream.h"
#include "protocol.h"
#include "pymodule.h"
#include "runtime.h"
#include "pyinterp/dispatch.hpp"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// How long ending an abandoned interpreter waits for other requests still
// inside it (the dispatch library refuses new entries meanwhile).
constexpr int k_abandon_end_timeout_ms = 2000;

}  // namespace

int translate_script_alias(request_rec* r) noexcept {
    const char* rest = nullptr;
    const script_alias* alias = find_alias(r, &rest);
    if (alias == nullptr) return DECLINED;
    size_t n = std::strlen(alias->path);
    // A directory alias given with a trailing '/' must not produce "//".
    if (n > 0 && alias->path[n - 1] == '/' && rest[0] == '/') ++rest;
    r->filename = apr_pstrcat(r->pool, alias->path, rest, nullptr);
    r->handler = k_handler_name;
    set_matched_alias(r, alias);
    return OK;
}

bool finish_after_leave(request_rec* r, const after_leave& a) noexcept {
    if (a.bb != nullptr) {
        apr_status_t rv = ap_pass_brigade(r->output_filters, a.bb);
        apr_brigade_cleanup(a.bb);
        if (rv != APR_SUCCESS || r->connection->aborted) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          "PYI0501: client connection closed while the response was being sent");
            return false;
        }
    }
    if (a.discard_body) ap_discard_request_body(r);
    return true;
}

int serve_request(request_rec* r, const protocol& proto) noexcept {
    if (!runtime_ready()) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0601: Python is not running in this child (see its startup)");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (r->finfo.filetype != APR_REG) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0602: WSGI script not found or not a regular file: %s",
                      r->filename);
        return HTTP_NOT_FOUND;
    }
    const script_alias* alias = matched_alias(r);
    request_settings set = effective_settings(r, alias);

    // SCRIPT_NAME is the URI without the path_info httpd split off the
    // script's path; PATH_INFO is that path_info.
    request_target t;
    t.script = r->filename;
    t.path_info = r->path_info ? r->path_info : "";
    size_t uri_len = std::strlen(r->uri), info_len = std::strlen(t.path_info);
    if (info_len <= uri_len && std::strcmp(r->uri + uri_len - info_len, t.path_info) == 0)
        t.script_name = apr_pstrndup(r->pool, r->uri, uri_len - info_len);
    else
        t.script_name = r->uri;
    t.group = group_for_request(r, set.group, t.script_name);
    t.callable = set.callable;
    t.script_reloading = set.script_reloading;
    t.pass_authorization = set.pass_authorization;
    t.fallback = set.fallback;
    t.fallback_from_alias = set.fallback_from_alias;
    t.alias_url = alias != nullptr ? alias->url : nullptr;

    active_request counted;
    // An application once moved to the main interpreter (fallback.h) goes
    // straight there.  At most two rounds: its group, then main.
    bool routed = fallback_routed(t.script, t.group);
    for (int round = 0; round < 2; ++round) {
        if (routed) t.group = "";
        pyinterp::view v = interpreter_for(t.group, r->server);
        if (!v) return HTTP_INTERNAL_SERVER_ERROR;
        t.interpreter = apr_pstrdup(r->pool, v.name());
        t.interpreter_id = v.id();
        int rc;
        bool abandon = false;
        after_leave after;
        {
            pyinterp::scoped_enter in(v);
            if (!in) {
                // Lost a race with a request that moved this application to
                // main and ended the interpreter it had left.
                if (!routed && in.status() == PYINTERP_ERR_GONE && fallback_routed(t.script, t.group)) {
                    routed = true;
                    continue;
                }
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0603: cannot enter application group '%s': %s",
                              t.group, pyinterp_strerror(in.status()));
                return HTTP_SERVICE_UNAVAILABLE;
            }
            // From here to the end of the scope this thread holds the group's GIL.
            PyObject* m =
                prepare_interpreter(runtime_main_server(), server_settings(runtime_main_server()).python_path);
            if (m == nullptr) {
                log_python_exception(r, nullptr, "PYI0604: cannot prepare the interpreter");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            rc = proto.serve(r, t, state_of(m), &after);
            // The interpreter the application left behind is ended when no
            // other application lives in it, so routing does not leak it.
            abandon = rc == k_route_to_main && PyDict_Size(state_of(m)->apps) == 0;
            Py_DECREF(m);
        }
        if (rc != k_route_to_main) {
            if (rc == OK) finish_after_leave(r, after);
            return rc;
        }
        if (round > 0 || *t.group == '\0') break;  // already in main: cannot happen, but never loop
        if (abandon) {
            int end = v.end(k_abandon_end_timeout_ms);
            if (end == PYINTERP_OK)
                ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                              "PYI0214: ended interpreter '%s' of application group '%s': no application left in it",
                              t.interpreter, t.group);
            else if (end != PYINTERP_ERR_GONE)
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              "PYI0215: cannot end interpreter '%s' of application group '%s' yet: %s", t.interpreter,
                              t.group, pyinterp_strerror(end));
        }
        routed = true;
    }
    return HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace pyinterp::mod
