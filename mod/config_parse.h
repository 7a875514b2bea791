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

// gil= and interpreters= as given on one directive.
struct placement_options {
    app::gil_mode gil = app::gil_mode::unset;
    int interpreters = 0;  // 0: not given
};

// A Python identifier in ASCII: a letter or '_', then letters, digits, '_'.
bool is_identifier(const char* s) noexcept;

// %{GLOBAL}, %{SERVER}, %{RESOURCE}, %{ENV:VAR} or a literal name.
std::string parse_group(const char* arg, parsed_group* out);

// route, refuse or allow (any case).
std::string parse_fallback(const char* arg, app::fallback_policy* out);

// auto, own or shared (any case).  Whether this Python can give an
// interpreter its own GIL is check_placement's question.
std::string parse_gil(const char* arg, app::gil_mode* out);

// A whole number of interpreters, 1 to app::k_max_interpreters.
std::string parse_interpreters(const char* arg, int* out);

// The placement options of one directive checked together: gil=own and
// interpreters=N (N > 1) need an own-GIL capable Python (3.12+), which
// `own_gil_supported` says (the error names `python_version`, "3.11",
// otherwise); interpreters=N (N > 1) needs an own GIL (not gil=shared); and
// neither applies to %{GLOBAL} (`global_group`), the main interpreter.
std::string check_placement(const placement_options& o, bool global_group, bool own_gil_supported,
                            const char* python_version);

// Seconds (a decimal number, "30" or "2.5") as whole milliseconds, at least
// one; "0" or "off" (any case) turn the timeout off (*out_ms = 0).
std::string parse_timeout(const char* arg, int* out_ms);

// The trailing key=value options of PyInterpScriptAlias,
// PyInterpImportScript and PyInterpApplicationGroup.
struct parsed_options {
    parsed_group group;         // application-group= (kind unset if absent)
    bool has_callable = false;  // callable=
    std::string callable;
    app::fallback_policy fallback = app::fallback_policy::unset;  // subinterpreter-fallback=
    int request_timeout_ms = -1;                                  // request-timeout= (-1 if absent, 0 for off)
    placement_options placement;                                  // gil=, interpreters= (unset if absent)
};

// Which options a directive takes.
enum option_flags : unsigned {
    k_option_fallback = 1U << 0,         // subinterpreter-fallback=
    k_option_request_timeout = 1U << 1,  // request-timeout=
    k_option_placement = 1U << 2,        // gil=, interpreters=
    k_option_target = 1U << 3,           // application-group=, callable=
};

// Parses argv[first..argc) as key=value options; `accepted` is a set of
// option_flags.  A later option repeats over an earlier one.
std::string parse_options(int argc, const char* const argv[], int first, unsigned accepted, parsed_options* out);

}  // namespace pyinterp::mod
