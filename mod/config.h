// Every PyInterp* directive: the configuration structures, their creation
// and merging, the command table and typed getters.  Nothing here touches
// Python; everything runs at configuration time or reads finished
// configuration, so no GIL is involved anywhere in config.{h,cpp}.
#pragma once

#include <httpd.h>
#include <http_config.h>

#include "app/target.h"
#include "config_parse.h"

namespace pyinterp::mod {

// PyInterpSubinterpreterFallback (app/target.h).
using app::fallback_policy;

struct group_spec {
    group_kind kind = group_kind::unset;
    const char* value = nullptr;  // the variable (env) or the name (named)
};

// One PyInterpScriptAlias.
struct script_alias {
    const char* url = nullptr;       // URL prefix without trailing '/' ("" for "/")
    const char* path = nullptr;      // absolute script file or directory of scripts
    group_spec group;                // unset: the directory configuration decides
    const char* callable = nullptr;  // nullptr: the directory configuration decides
    fallback_policy fallback = fallback_policy::unset;  // subinterpreter-fallback=
    int request_timeout_ms = -1;                        // request-timeout= (-1: unset, 0: off)
    placement_options placement;  // gil=, interpreters= (unset: the directory configuration decides)
};

// One PyInterpImportScript: loaded into its group at child start.
struct import_script {
    const char* path = nullptr;      // absolute script file
    group_spec group;                // global or named (checked at parse time)
    const char* callable = nullptr;  // nullptr: the server's default
    placement_options placement;     // gil=, interpreters=
    server_rec* server = nullptr;    // where it was configured
};

// Per-server (virtual host) settings.
struct server_config {
    apr_array_header_t* aliases = nullptr;  // of script_alias
    apr_array_header_t* imports = nullptr;  // of import_script (main server)
    const char* python_path = nullptr;      // main server only, ':'-separated
    const char* python_home = nullptr;      // main server only
    int graceful_timeout_ms = -1;           // PyInterpGracefulTimeout, main server only (-1: unset, 0: off)
    int metrics_slots = 0;                  // PyInterpMetricsSlots (main server only; 0: the default)
};

// Per-directory settings (also valid at server level).  Unset values are
// nullptr / -1 and resolve through the documented defaults below.
struct dir_config {
    group_spec group;
    placement_options placement;  // from PyInterpApplicationGroup's gil= and interpreters=
    const char* callable = nullptr;
    int script_reloading = -1;
    int pass_authorization = -1;
    fallback_policy fallback = fallback_policy::unset;
    int request_timeout_ms = -1;  // PyInterpRequestTimeout (0: off)
    int slow_request_ms = -1;     // PyInterpSlowRequestTime (0: off)
};

// Defaults applied where nothing is configured (the others: app/target.h).
inline constexpr bool k_default_pass_authorization = false;
inline constexpr int k_default_request_timeout_ms = 0;     // no timeout
inline constexpr int k_default_graceful_timeout_ms = 1500;  // requests in Python at a graceful stop, interrupted after

// The handler name PyInterpScriptAlias sets; usable with SetHandler/AddHandler.
inline constexpr const char* k_handler_name = "pyinterp-script";

// httpd callbacks for the module struct.
void* create_dir_config(apr_pool_t* p, char* dir) noexcept;
void* merge_dir_config(apr_pool_t* p, void* base, void* add) noexcept;
void* create_server_config(apr_pool_t* p, server_rec* s) noexcept;
void* merge_server_config(apr_pool_t* p, void* base, void* add) noexcept;
extern const command_rec commands[];

// Typed getters.
const server_config& server_settings(const server_rec* s) noexcept;
// PyInterpGracefulTimeout in milliseconds, its default applied (0: never).
int graceful_timeout_ms(const server_rec* main_server) noexcept;
const dir_config& dir_settings(const request_rec* r) noexcept;

// The settings of one request, written into its target: the matched
// alias's options win over the directory configuration, which wins over the
// defaults.  Sets callable, script_reloading, pass_authorization, fallback,
// fallback_from_alias, request_timeout_ms, slow_request_ms, alias_url, gil
// and interpreters;
// returns how its group is chosen (never unset), for group_for_request.
group_spec apply_settings(const request_rec* r, const script_alias* alias, app::request_target* t) noexcept;

// The target of a PyInterpImportScript, but for its group's name.
void apply_import_settings(const import_script& imp, app::request_target* t) noexcept;

// The alias that translate_name matched for this request, or nullptr.
const script_alias* matched_alias(const request_rec* r) noexcept;
void set_matched_alias(request_rec* r, const script_alias* alias) noexcept;

// Match r->uri against the server's aliases (first configured wins, like
// mod_alias).  Returns the alias and sets *rest to the part of the URI after
// the alias's URL prefix (empty or starting with '/').
const script_alias* find_alias(const request_rec* r, const char** rest) noexcept;

}  // namespace pyinterp::mod
