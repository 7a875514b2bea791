// What one request (or one PyInterpImportScript) resolves to, before any
// Python runs: which script, which callable, in which application group,
// under which policies.  The host fills one request_target per request
// (mod/config.cpp: resolve_target) and passes it by const reference to the
// executor, which passes it on to the protocol.  A new per-request setting
// is one field here, filled in one place.  No Python, no GIL.
#pragma once

namespace pyinterp::app {

// PyInterpSubinterpreterFallback: what happens when an application loading
// in a subinterpreter imports an extension module that cannot work there.
enum class fallback_policy {
    unset = 0,  // not configured at this level: inherit
    route,      // load it into the main interpreter instead (the default)
    refuse,     // fail the request and log which directive fixes it
    allow,      // load it anyway, warn once
};

// gil= on PyInterpScriptAlias, PyInterpApplicationGroup and
// PyInterpImportScript: which kind of subinterpreter an application group
// gets (placement.h).
enum class gil_mode {
    unset = 0,  // not configured at this level: inherit
    auto_,      // its own GIL where the application can run in one, else shared (the default)
    own,        // its own GIL, or the application fails to load (Python 3.12+)
    shared,     // the GIL it shares with the main interpreter
};

inline constexpr const char* k_default_callable = "application";
inline constexpr bool k_default_script_reloading = true;
inline constexpr fallback_policy k_default_fallback = fallback_policy::route;
inline constexpr gil_mode k_default_gil = gil_mode::auto_;
// interpreters=: own-GIL interpreters one application group runs in.
inline constexpr int k_default_interpreters = 1;
inline constexpr int k_max_interpreters = 64;

// One version of a script file, as the host found it (httpd's stat of the
// request), so that script reloading need not stat it again.
struct script_stamp {
    long long mtime_us = 0;  // modification time, microseconds
    long long size = 0;
};

struct request_target {
    // What to run.
    const char* script = nullptr;               // absolute path of the script file
    const char* callable = k_default_callable;  // name of the application object in it
    // Where: the application group; "" is %{GLOBAL}, the main interpreter.
    const char* group = "";
    gil_mode gil = k_default_gil;               // never unset here
    int interpreters = k_default_interpreters;  // own-GIL pool size (1: one interpreter)

    // Policies.
    bool script_reloading = k_default_script_reloading;  // reload the script when its file changed
    bool has_stamp = false;                              // `stamp` holds the host's stat of `script`
    script_stamp stamp;
    fallback_policy fallback = k_default_fallback;  // never unset here
    bool fallback_from_alias = false;               // set by subinterpreter-fallback= on the alias
    const char* alias_url = nullptr;                // the matched PyInterpScriptAlias URL, for messages
    int request_timeout_ms = 0;                     // PyInterpRequestTimeout: interrupt the application after it (0: never)
    int slow_request_ms = 0;                        // PyInterpSlowRequestTime (0: off): log the stack after that long

    // What the client asked for (the request line's URL), for messages and
    // the in-flight registry; nullptr for a preload.
    const char* url = nullptr;

    // For the protocol; the executor does not look at them.
    const char* script_name = nullptr;  // URL prefix that selected the script (SCRIPT_NAME)
    const char* path_info = nullptr;    // rest of the URL path (PATH_INFO)
    bool pass_authorization = false;    // PyInterpPassAuthorization
};

// "%{GLOBAL}" for the main interpreter's group, else the group's name.
inline const char* shown_group(const char* group) noexcept {
    return *group != '\0' ? group : "%{GLOBAL}";
}

}  // namespace pyinterp::app
