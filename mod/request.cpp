// The protocol-independent request path (see request.h).
#include <Python.h>

#include "request.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>

#include <cstring>

#include "config.h"
#include "groups.h"
#include "protocol.h"
#include "runtime.h"
#include "wsgi_environ.h"
#include "wsgi_response.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// The request's target: the script httpd found, SCRIPT_NAME and PATH_INFO
// split at it, and the configured settings and group.
app::request_target resolve_target(request_rec* r) noexcept {
    app::request_target t;
    group_spec group = apply_settings(r, matched_alias(r), &t);
    t.script = r->filename;
    // SCRIPT_NAME is the URI without the path_info httpd split off the
    // script's path; PATH_INFO is that path_info.
    t.path_info = r->path_info ? r->path_info : "";
    t.script_name = apr_pstrndup(r->pool, r->uri, script_name_length(r->uri, t.path_info));
    t.group = group_for_request(r, group, t.script_name);
    t.url = r->unparsed_uri;
    // httpd's stat of the script for this request: script reloading
    // compares with it instead of calling stat() again.
    constexpr apr_int32_t k_needed = APR_FINFO_MTIME | APR_FINFO_SIZE;
    t.has_stamp = (r->finfo.valid & k_needed) == k_needed;
    t.stamp.mtime_us = static_cast<long long>(r->finfo.mtime);
    t.stamp.size = static_cast<long long>(r->finfo.size);
    return t;
}

// A request body declared (Content-Length) larger than LimitRequestBody is
// answered 413 before the application runs, as httpd's own handlers do; a
// chunked body is limited by httpd's input filter as it is read.  A
// malformed Content-Length is left to that filter too (it answers 400).
int refuse_declared_body(request_rec* r) noexcept {
    apr_off_t limit = ap_get_limit_req_body(r);
    const char* declared = apr_table_get(r->headers_in, "Content-Length");
    if (limit <= 0 || declared == nullptr || apr_table_get(r->headers_in, "Transfer-Encoding") != nullptr) return OK;
    apr_off_t length = 0;
    char* end = nullptr;
    if (apr_strtoff(&length, declared, &end, 10) != APR_SUCCESS || end == declared || *end != '\0' || length <= limit)
        return OK;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "PYI0404: request body of %" APR_OFF_T_FMT " bytes exceeds LimitRequestBody %" APR_OFF_T_FMT
                  "; answered 413 without running the application",
                  length, limit);
    return HTTP_REQUEST_ENTITY_TOO_LARGE;
}

}  // namespace

int http_status_of(const app::run_result& res) noexcept {
    switch (res.what) {
        case app::run_result::served:
        case app::run_result::load_failed: return res.status;
        case app::run_result::cannot_enter: return HTTP_SERVICE_UNAVAILABLE;
        case app::run_result::refused:
        case app::run_result::no_interpreter:
        case app::run_result::cannot_prepare: break;
    }
    return HTTP_INTERNAL_SERVER_ERROR;
}

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
            log_send_failure(r, rv, a.file);
            return false;
        }
    }
    if (a.discard_body) ap_discard_request_body(r);
    return true;
}

int serve_request(request_rec* r) noexcept {
    app::executor* ex = runtime_executor();
    if (ex == nullptr) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0601: Python is not running in this child (see its startup)");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (r->finfo.filetype != APR_REG) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0602: WSGI script not found or not a regular file: %s",
                      r->filename);
        return HTTP_NOT_FOUND;
    }
    if (int refused = refuse_declared_body(r); refused != OK) return refused;
    const app::request_target t = resolve_target(r);
    wsgi_call call;
    call.r = r;
    return http_status_of(ex->run(t, wsgi_protocol, &call));
}

}  // namespace pyinterp::mod
