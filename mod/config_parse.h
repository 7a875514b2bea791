// The argument parsers of the PyInterp* directives, as pure functions: no
// httpd, no APR, no Python.  config.cpp calls them from its directive
// handlers and copies what they parsed into its pools; the fuzz targets
// (tests/fuzz) call them with arbitrary input.  Each returns an empty string
// on success, else the error message, which the caller prefixes with the
// directive's name.
#pragma once

#include <string>

#include "app/target.h"

namespace pyinterp::mod {

// How an application group (a Python interpreter) is chosen for a request.
enum class group_kind {
    unset = 0,  // not configured at this level: inherit
    global,     // %{GLOBAL}: the main interpreter
    server,     // %{SERVER}: one per virtual host
    resource,   // %{RESOURCE}: one per virtual host and script (the default)
    env,        // %{ENV:VAR}: named by a request environment variable
    named,      // a literal group name
};

struct parsed_group {
    group_kind kind = group_kind::unset;
    std::string value;  // the variable (env) or the name (named)
};

// Longest literal group name accepted (the dispatch library's interpreter
// names are at most 255 bytes).
inline constexpr size_t k_max_group_name = 200;

// Longest request timeout accepted, in seconds (a day).
inline constexpr double k_max_request_timeout_s = 86400.0;

// A Python identifier in ASCII: a letter or '_', then letters, digits, '_'.
bool is_identifier(const char* s) noexcept;

// %{GLOBAL}, %{SERVER}, %{RESOURCE}, %{ENV:VAR} or a literal name.
std::string parse_group(const char* arg, parsed_group* out);

// route, refuse or allow (any case).
std::string parse_fallback(const char* arg, app::fallback_policy* out);

// Seconds (a decimal number, "30" or "2.5") as whole milliseconds, at least
// one; "0" or "off" (any case) turn the timeout off (*out_ms = 0).
std::string parse_timeout(const char* arg, int* out_ms);

// The trailing key=value options of PyInterpScriptAlias and
// PyInterpImportScript.
struct parsed_options {
    parsed_group group;         // application-group= (kind unset if absent)
    bool has_callable = false;  // callable=
    std::string callable;
    app::fallback_policy fallback = app::fallback_policy::unset;  // subinterpreter-fallback=
    int request_timeout_ms = -1;                                  // request-timeout= (-1 if absent, 0 for off)
};

// Which options besides application-group= and callable= a directive takes.
enum option_flags : unsigned {
    k_option_fallback = 1U << 0,         // subinterpreter-fallback=
    k_option_request_timeout = 1U << 1,  // request-timeout=
};

// Parses argv[first..argc) as key=value options; `accepted` is a set of
// option_flags.  A later option repeats over an earlier one.
std::string parse_options(int argc, const char* const argv[], int first, unsigned accepted, parsed_options* out);

}  // namespace pyinterp::mod
