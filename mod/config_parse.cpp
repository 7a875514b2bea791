// The directive argument parsers (see config_parse.h).  No httpd, no APR, no
// Python: plain C++ over the C strings httpd's configuration reader gives.
#include "config_parse.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <strings.h>

namespace pyinterp::mod {
namespace {

// The C locale's classes, whatever the process's locale is.
bool is_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_control(char c) noexcept {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

std::string quoted(const char* s) {
    return std::string("'") + s + "'";
}

std::string parse_option(const std::string& key, const char* value, unsigned accepted, parsed_options* out) {
    bool target = (accepted & k_option_target) != 0;
    bool fallback = (accepted & k_option_fallback) != 0;
    bool timeout = (accepted & k_option_request_timeout) != 0;
    bool placement = (accepted & k_option_placement) != 0;
    if (target && key == "application-group") return parse_group(value, &out->group);
    if (target && key == "callable") {
        if (!is_identifier(value)) return "callable " + quoted(value) + " is not a Python identifier";
        out->callable = value;
        out->has_callable = true;
        return {};
    }
    if (placement && key == "gil") return parse_gil(value, &out->placement.gil);
    if (placement && key == "interpreters") return parse_interpreters(value, &out->placement.interpreters);
    if (fallback && key == "subinterpreter-fallback") return parse_fallback(value, &out->fallback);
    if (timeout && key == "request-timeout") return parse_timeout(value, &out->request_timeout_ms);
    std::string known;
    auto add = [&known](bool on, const char* names) {
        if (!on) return;
        if (!known.empty()) known += ", ";
        known += names;
    };
    add(target, "application-group, callable");
    add(placement, "gil, interpreters");
    add(fallback, "subinterpreter-fallback");
    add(timeout, "request-timeout");
    if (known.empty()) return "unexpected option " + quoted(key.c_str()) + " (this directive takes none)";
    return "unknown option " + quoted(key.c_str()) + " (known: " + known + ")";
}

}  // namespace

bool is_identifier(const char* s) noexcept {
    if (s == nullptr || !(is_alpha(*s) || *s == '_')) return false;
    for (++s; *s; ++s)
        if (!(is_alpha(*s) || is_digit(*s) || *s == '_')) return false;
    return true;
}

std::string parse_group(const char* arg, parsed_group* out) {
    if (arg == nullptr || *arg == '\0') return "empty application group (use %{GLOBAL} for the main interpreter)";
    if (std::strncmp(arg, "%{", 2) == 0) {
        if (std::strcmp(arg, "%{GLOBAL}") == 0) {
            *out = {group_kind::global, {}};
        } else if (std::strcmp(arg, "%{SERVER}") == 0) {
            *out = {group_kind::server, {}};
        } else if (std::strcmp(arg, "%{RESOURCE}") == 0) {
            *out = {group_kind::resource, {}};
        } else if (std::strncmp(arg, "%{ENV:", 6) == 0) {
            size_t n = std::strlen(arg);
            std::string var(arg + 6, n > 7 ? n - 7 : 0);
            if (arg[n - 1] != '}' || !is_identifier(var.c_str()))
                return "bad application group " + quoted(arg) + ": %{ENV:VAR} needs a variable name";
            *out = {group_kind::env, var};
        } else {
            return "unknown application group " + quoted(arg) +
                   " (expected %{GLOBAL}, %{SERVER}, %{RESOURCE}, %{ENV:VAR} or a name)";
        }
        return {};
    }
    if (std::strlen(arg) > k_max_group_name)
        return "application group name longer than " + std::to_string(k_max_group_name) + " bytes";
    for (const char* c = arg; *c; ++c)
        if (is_control(*c) || *c == ' ')
            return "application group name " + quoted(arg) + " contains a space or control character";
    *out = {group_kind::named, arg};
    return {};
}

std::string parse_fallback(const char* arg, app::fallback_policy* out) {
    if (strcasecmp(arg, "route") == 0)
        *out = app::fallback_policy::route;
    else if (strcasecmp(arg, "refuse") == 0)
        *out = app::fallback_policy::refuse;
    else if (strcasecmp(arg, "allow") == 0)
        *out = app::fallback_policy::allow;
    else
        return "unknown subinterpreter fallback " + quoted(arg) + " (expected route, refuse or allow)";
    return {};
}

std::string parse_gil(const char* arg, app::gil_mode* out) {
    if (strcasecmp(arg, "auto") == 0)
        *out = app::gil_mode::auto_;
    else if (strcasecmp(arg, "shared") == 0)
        *out = app::gil_mode::shared;
    else if (strcasecmp(arg, "own") == 0)
        *out = app::gil_mode::own;
    else
        return "unknown gil " + quoted(arg) + " (expected auto, own or shared)";
    return {};
}

std::string parse_interpreters(const char* arg, int* out) {
    bool digits = *arg != '\0' && std::strlen(arg) <= 4;
    for (const char* c = arg; digits && *c; ++c) digits = is_digit(*c);
    long n = digits ? std::strtol(arg, nullptr, 10) : 0;
    if (n < 1 || n > app::k_max_interpreters)
        return "interpreters " + quoted(arg) + " is not a number from 1 to " + std::to_string(app::k_max_interpreters);
    *out = static_cast<int>(n);
    return {};
}

std::string check_placement(const placement_options& o, bool global_group, bool own_gil_supported,
                            const char* python_version) {
    if (global_group && (o.gil != app::gil_mode::unset || o.interpreters != 0))
        return "%{GLOBAL} is always the main interpreter: gil= and interpreters= do not apply to it";
    if (o.gil == app::gil_mode::own && !own_gil_supported)
        return std::string("gil=own needs Python 3.12 or newer; this mod_pyinterp runs Python ") + python_version +
               " (use gil=auto, which means shared there)";
    if (o.interpreters > 1 && o.gil == app::gil_mode::shared)
        return "interpreters=" + std::to_string(o.interpreters) +
               " needs interpreters with their own GIL (gil=auto or gil=own), not gil=shared";
    if (o.interpreters > 1 && !own_gil_supported)
        return "interpreters=" + std::to_string(o.interpreters) +
               " needs interpreters with their own GIL: Python 3.12 or newer; this mod_pyinterp runs Python " +
               python_version;
    return {};
}

std::string parse_timeout(const char* arg, int* out_ms) {
    if (strcasecmp(arg, "off") == 0) {
        *out_ms = 0;
        return {};
    }
    // Digits with at most one '.', nothing else (no sign, exponent, "inf"
    // or "nan", which strtod would take).
    bool digits = false, dot = false, ok = *arg != '\0';
    for (const char* c = arg; ok && *c; ++c) {
        if (is_digit(*c))
            digits = true;
        else if (*c == '.' && !dot)
            dot = true;
        else
            ok = false;
    }
    std::string bad = "request timeout " + quoted(arg) + " is not a number of seconds (e.g. 30 or 2.5, 0 for off)";
    if (!ok || !digits || std::strlen(arg) > 32) return bad;
    double s = std::strtod(arg, nullptr);
    if (!std::isfinite(s) || s < 0) return bad;
    if (s > k_max_request_timeout_s) return "request timeout " + quoted(arg) + " is longer than a day (86400)";
    if (s == 0) {
        *out_ms = 0;
        return {};
    }
    double ms = std::ceil(s * 1000.0);
    *out_ms = ms < 1 ? 1 : static_cast<int>(ms);
    return {};
}

std::string parse_options(int argc, const char* const argv[], int first, unsigned accepted, parsed_options* out) {
    for (int i = first; i < argc; ++i) {
        const char* eq = std::strchr(argv[i], '=');
        if (eq == nullptr) return "unexpected argument " + quoted(argv[i]) + " (options are key=value)";
        std::string key(argv[i], size_t(eq - argv[i]));
        std::string err = parse_option(key, eq + 1, accepted, out);
        if (!err.empty()) return err;
    }
    return {};
}

}  // namespace pyinterp::mod
