// What start_response accepts as a status line and as response headers,
// as pure functions over code points: no Python, no httpd.  The WSGI
// protocol (wsgi_start_response.cpp) runs them over a str's characters
// (PyUnicode_READ_CHAR), the fuzz targets (tests/fuzz) over arbitrary
// input.  Together they guarantee that nothing an application passes can
// split a response or smuggle a header: no CR, LF, NUL or other control
// character, nothing outside latin-1, token characters in names.
// `at(i)` returns the i-th code point (char32_t) of a string of length n.
#pragma once

#include <cstddef>
#include <cstring>
#include <strings.h>

namespace pyinterp::mod::wsgi_validate {

// RFC 9110 token characters (header names).
constexpr bool is_tchar(char32_t c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '!' || c == '#' ||
           c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '-' || c == '.' || c == '^' ||
           c == '_' || c == '`' || c == '|' || c == '~';
}

// Control characters other than horizontal tab, DEL, and anything outside
// latin-1: none of them may reach the wire.
constexpr bool is_bad_value_char(char32_t c) noexcept {
    return (c < 0x20 && c != '\t') || c == 0x7f || c > 0xff;
}

enum class status_check { ok, malformed, informational };

// "NNN reason": three digits, a space, a reason phrase of at least one
// character free of bad characters; informational (1xx) cannot end a
// response.
template <typename At>
status_check check_status(size_t n, At at) noexcept {
    bool ok = n >= 5 && at(3) == ' ';
    for (size_t i = 0; ok && i < 3; ++i) ok = at(i) >= '0' && at(i) <= '9';
    for (size_t i = 4; ok && i < n; ++i) ok = !is_bad_value_char(at(i));
    if (!ok) return status_check::malformed;
    return at(0) < '2' ? status_check::informational : status_check::ok;
}

// A non-empty run of token characters.
template <typename At>
bool valid_header_name(size_t n, At at) noexcept {
    bool ok = n > 0;
    for (size_t i = 0; ok && i < n; ++i) ok = is_tchar(at(i));
    return ok;
}

// No bad character anywhere in the value.
template <typename At>
bool valid_header_value(size_t n, At at) noexcept {
    for (size_t i = 0; i < n; ++i)
        if (is_bad_value_char(at(i))) return false;
    return true;
}

// Content-Length: 1 to 18 digits (fits an apr_off_t).
template <typename At>
bool valid_content_length(size_t n, At at) noexcept {
    bool ok = n > 0 && n <= 18;
    for (size_t i = 0; ok && i < n; ++i) ok = at(i) >= '0' && at(i) <= '9';
    return ok;
}

// Hop-by-hop headers, which PEP 3333 forbids an application to set; `name`
// is a valid header name, in ASCII.
inline bool is_hop_by_hop(const char* name) noexcept {
    static const char* const k_hop_by_hop[] = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                                               "te",         "trailer",    "trailers",           "transfer-encoding",
                                               "upgrade"};
    for (const char* hop : k_hop_by_hop)
        if (strcasecmp(name, hop) == 0) return true;
    return false;
}

}  // namespace pyinterp::mod::wsgi_validate
