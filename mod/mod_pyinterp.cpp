// mod_pyinterp: WSGI applications in Python interpreters ("application
// groups") inside httpd.  This file holds only the module structure and the
// hooks; directives live in config.cpp, the request path in request.cpp,
// Python's lifetime in runtime.cpp, the WSGI protocol in wsgi_*.cpp and the
// status page in status*.cpp.
// Hooks are noexcept and run detached from Python (no GIL held).
#include <Python.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mpm_common.h>

#include <cstring>

#include "child_stop.h"
#include "config.h"
#include "metrics_shm.h"
#include "request.h"
#include "runtime.h"
#include "status.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

int hook_translate_name(request_rec* r) noexcept {
    return translate_script_alias(r);
}

int hook_handler(request_rec* r) noexcept {
    if (r->handler == nullptr) return DECLINED;
    if (std::strcmp(r->handler, k_handler_name) == 0) return serve_request(r);  // noexcept all the way down
    if (std::strcmp(r->handler, k_status_handler_name) == 0) return status_handler(r);
    return DECLINED;
}

// Another module embedding Python (runtime_other_embedder): mod_pyinterp
// stands aside rather than stop the server, and says so where the
// administrator looks: in `apachectl configtest` (test_config) and in the
// error log at every start (post_config).
void report_other_embedder(server_rec* s) noexcept {
    if (const char* other = runtime_other_embedder())
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                     "PYI0004: %s is loaded too: two modules cannot embed Python in one process, so "
                     "mod_pyinterp starts no Python and its applications answer 503; disable one of "
                     "them (Debian: a2dismod)",
                     other);
}

void hook_test_config(apr_pool_t*, server_rec* s) noexcept {
    report_other_embedder(s);
}

// post_config runs in the parent: it checks and reports, and makes the
// counters' shared memory; Python is started in each child.
int hook_post_config(apr_pool_t*, apr_pool_t*, apr_pool_t* ptemp, server_rec* s) noexcept {
    report_other_embedder(s);
    metrics_post_config(ptemp, s);
    for (server_rec* vs = s; vs != nullptr; vs = vs->next) {
        const apr_array_header_t* aliases = server_settings(vs).aliases;
        for (int i = 0; i < aliases->nelts; ++i) {
            const auto* alias = APR_ARRAY_IDX(aliases, i, const script_alias*);
            apr_finfo_t fi;
            if (apr_stat(&fi, alias->path, APR_FINFO_TYPE, ptemp) != APR_SUCCESS)
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs,
                             "PYI0003: PyInterpScriptAlias %s: '%s' does not exist (yet)",
                             *alias->url ? alias->url : "/", alias->path);
        }
    }
    return OK;
}

void hook_child_init(apr_pool_t* pchild, server_rec* s) noexcept {
    runtime_child_init(pchild, s);
}

void hook_child_stopping(apr_pool_t* pchild, int graceful) noexcept {
    child_stopping(pchild, graceful);
}

void register_hooks(apr_pool_t*) noexcept {
    static const char* const before_alias[] = {"mod_alias.c", "mod_userdir.c", nullptr};
    ap_hook_translate_name(hook_translate_name, nullptr, before_alias, APR_HOOK_MIDDLE);
    ap_hook_handler(hook_handler, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_post_config(hook_post_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_test_config(hook_test_config, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_child_init(hook_child_init, nullptr, nullptr, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(hook_child_stopping, nullptr, nullptr, APR_HOOK_MIDDLE);
}

}  // namespace
}  // namespace pyinterp::mod

// A global-namespace variable: its symbol is plain `pyinterp_module`, the
// name LoadModule looks up, and the only symbol the version script exports.
__attribute__((visibility("default"))) module AP_MODULE_DECLARE_DATA pyinterp_module = {
    STANDARD20_MODULE_STUFF,
    pyinterp::mod::create_dir_config,
    pyinterp::mod::merge_dir_config,
    pyinterp::mod::create_server_config,
    pyinterp::mod::merge_server_config,
    pyinterp::mod::commands,
    pyinterp::mod::register_hooks,
    AP_MODULE_FLAG_NONE,
};
