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
#include "log_stream.h"
#include "protocol.h"
#include "pymodule.h"
#include "runtime.h"
#include "pyinterp/dispatch.hpp"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {

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

    pyinterp::view v = interpreter_for(t.group, r->server);
    if (!v) return HTTP_INTERNAL_SERVER_ERROR;
    t.interpreter = apr_pstrdup(r->pool, v.name());
    t.interpreter_id = v.id();

    active_request counted;
    pyinterp::scoped_enter in(v);
    if (!in) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0603: cannot enter application group '%s': %s", t.group,
                      pyinterp_strerror(in.status()));
        return HTTP_SERVICE_UNAVAILABLE;
    }
    // From here to the end of the scope this thread holds the group's GIL.
    PyObject* m = prepare_interpreter(runtime_main_server(), server_settings(runtime_main_server()).python_path);
    if (m == nullptr) {
        log_python_exception(r, nullptr, "PYI0604: cannot prepare the interpreter");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    int rc = proto.serve(r, t, state_of(m));
    Py_DECREF(m);
    return rc;
}

}  // namespace pyinterp::mod
