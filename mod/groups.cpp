// Application groups (see groups.h).
#include "groups.h"

#include <apr_strings.h>

namespace pyinterp::mod {
namespace {

const char* server_name(const server_rec* s, apr_pool_t* p) noexcept {
    const char* host = s->server_hostname ? s->server_hostname : "localhost";
    if (s->port == 0 || s->port == 80 || s->port == 443) return host;
    return apr_psprintf(p, "%s:%u", host, unsigned(s->port));
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

}  // namespace pyinterp::mod
