// The error log as a log sink (see error_log.h).
#include "error_log.h"

#include <http_log.h>

#include <cstring>

#include "pyinterp/dispatch.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

void to_request(app::level lv, const char* message, void* r) noexcept {
    ap_log_rerror(APLOG_MARK, ap_level_of(lv), 0, static_cast<request_rec*>(r), "%s", message);
}

void to_server(app::level lv, const char* message, void* s) noexcept {
    ap_log_error(APLOG_MARK, ap_level_of(lv), 0, static_cast<server_rec*>(s), "%s", message);
}

}  // namespace

int ap_level_of(app::level lv) noexcept {
    switch (lv) {
        case app::level::debug: return APLOG_DEBUG;
        case app::level::info: return APLOG_INFO;
        case app::level::notice: return APLOG_NOTICE;
        case app::level::warn: return APLOG_WARNING;
        case app::level::error: return APLOG_ERR;
        case app::level::crit: return APLOG_CRIT;
    }
    return APLOG_ERR;
}

app::log_sink request_log(request_rec* r) noexcept {
    return {to_request, r};
}

app::log_sink server_log(server_rec* s) noexcept {
    return {to_server, s};
}

void log_python_exception(request_rec* r, server_rec* s, const char* what) noexcept {
    app::log_exception(r != nullptr ? request_log(r) : server_log(s), what);
}

void forward_dispatch_log(int level, const char* message, void* user) {
    auto* s = static_cast<server_rec*>(user);
    int ap_level = level >= PYINTERP_LOG_ERROR  ? APLOG_ERR
                   : level == PYINTERP_LOG_WARN ? APLOG_WARNING
                   : level == PYINTERP_LOG_INFO ? APLOG_INFO
                                                : APLOG_DEBUG;
    for (const char* p = message; *p;) {
        const char* nl = std::strchr(p, '\n');
        int len = nl ? int(nl - p) : int(std::strlen(p));
        ap_log_error(APLOG_MARK, ap_level, 0, s, "PYI0100: %.*s", len, p);
        p += len + (nl ? 1 : 0);
    }
}

}  // namespace pyinterp::mod
