// Every PyInterp* directive.  Each handler checks its context first, then its
// arguments; every error names the directive, so a bad value or an unknown
// option fails `apachectl configtest` instead of a request later.  No Python
// here (no GIL involved).
#include "config.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <http_log.h>
#include <patchlevel.h>  // the Python version this module is built for (macros only)

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "pyinterp/dispatch.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// The C++ view of httpd's command function pointer (see http_config.h: C++
// compilers get the non-designated-initializer variant).
template <typename F>
cmd_func as_cmd(F f) noexcept {
    // Through void(*)(): the documented way to say "this cast is intended".
    return reinterpret_cast<cmd_func>(reinterpret_cast<void (*)()>(f));
}

template <typename T>
T* pool_new(apr_pool_t* p) noexcept {
    // Trivially destructible aggregates: the pool frees the memory.
    return new (apr_pcalloc(p, sizeof(T))) T{};
}

const char* fail(cmd_parms* cmd, const char* fmt, const char* a = "", const char* b = "") noexcept {
    return apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", apr_psprintf(cmd->pool, fmt, a, b), nullptr);
}

// Runs `parse` (a pure parser of config_parse.h returning its error, and
// copying what it parsed on success).  nullptr, or the error prefixed with
// the directive's name.
template <typename F>
const char* checked(cmd_parms* cmd, F parse) noexcept {
    try {
        std::string err = parse();
        return err.empty() ? nullptr : apr_pstrcat(cmd->pool, cmd->cmd->name, ": ", err.c_str(), nullptr);
    } catch (...) {
        return fail(cmd, "out of memory");
    }
}

group_spec pooled(cmd_parms* cmd, const parsed_group& g) noexcept {
    return {g.kind, g.value.empty() ? nullptr : apr_pstrdup(cmd->pool, g.value.c_str())};
}

// Parses an application group value.  Returns nullptr or an error message.
const char* parse_group(cmd_parms* cmd, const char* arg, group_spec* out) noexcept {
    return checked(cmd, [&] {
        parsed_group g;
        std::string err = mod::parse_group(arg, &g);
        if (err.empty()) *out = pooled(cmd, g);
        return err;
    });
}

#define PYINTERP_STR2(x) #x
#define PYINTERP_STR(x) PYINTERP_STR2(x)
constexpr const char* k_python_version = PYINTERP_STR(PY_MAJOR_VERSION) "." PYINTERP_STR(PY_MINOR_VERSION);

// The placement options of one directive, checked together (config_parse.h).
std::string checked_placement(const placement_options& o, const group_spec& group) {
    return check_placement(o, group.kind == group_kind::global, pyinterp_supports_own_gil() != 0, k_python_version);
}

// The trailing key=value options of the alias and import directives
// (config_parse.h), placement ones checked against the group: `accepted`
// names the options beyond application-group=, callable=, gil= and
// interpreters=, which both take.  Returns nullptr or an error message.
const char* parse_options(cmd_parms* cmd, int argc, char* const argv[], int first, unsigned accepted,
                          group_spec* group, const char** callable, placement_options* placement,
                          fallback_policy* fallback = nullptr, int* request_timeout_ms = nullptr) noexcept {
    return checked(cmd, [&] {
        parsed_options o;
        std::string err = mod::parse_options(argc, argv, first, accepted | k_option_target | k_option_placement, &o);
        if (!err.empty()) return err;
        if (o.group.kind != group_kind::unset) *group = pooled(cmd, o.group);
        if (o.has_callable) *callable = apr_pstrdup(cmd->pool, o.callable.c_str());
        if (fallback != nullptr && o.fallback != fallback_policy::unset) *fallback = o.fallback;
        if (request_timeout_ms != nullptr && o.request_timeout_ms >= 0) *request_timeout_ms = o.request_timeout_ms;
        *placement = o.placement;
        return checked_placement(o.placement, *group);
    });
}

server_config* server_conf_of(cmd_parms* cmd) noexcept {
    return static_cast<server_config*>(ap_get_module_config(cmd->server->module_config, &pyinterp_module));
}

const char* cmd_script_alias(cmd_parms* cmd, void*, int argc, char* const argv[]) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT)) return err;
    if (argc < 2)
        return fail(cmd, "expects URL-path file-path [application-group=G] [callable=NAME] "
                         "[gil=auto|own|shared] [interpreters=N] [subinterpreter-fallback=route|refuse|allow] "
                         "[request-timeout=SECONDS]");
    if (argv[0][0] != '/') return fail(cmd, "URL-path '%s' must start with '/'", argv[0]);
    auto* alias = pool_new<script_alias>(cmd->pool);
    char* url = apr_pstrdup(cmd->pool, argv[0]);
    size_t n = std::strlen(url);
    while (n > 0 && url[n - 1] == '/') url[--n] = '\0';
    alias->url = url;
    alias->path = ap_server_root_relative(cmd->pool, argv[1]);
    if (alias->path == nullptr) return fail(cmd, "invalid file path '%s'", argv[1]);
    if (const char* err = parse_options(cmd, argc, argv, 2, k_option_fallback | k_option_request_timeout,
                                        &alias->group, &alias->callable, &alias->placement, &alias->fallback,
                                        &alias->request_timeout_ms))
        return err;
    server_config* sc = server_conf_of(cmd);
    for (int i = 0; i < sc->aliases->nelts; ++i) {
        const auto* other = APR_ARRAY_IDX(sc->aliases, i, const script_alias*);
        if (std::strcmp(other->url, alias->url) == 0)
            return fail(cmd, "URL-path '%s' is already mapped in this server", argv[0]);
    }
    APR_ARRAY_PUSH(sc->aliases, const script_alias*) = alias;
    return nullptr;
}

const char* cmd_import_script(cmd_parms* cmd, void*, int argc, char* const argv[]) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT)) return err;
    if (argc < 2)
        return fail(cmd, "expects file application-group=G [callable=NAME] [gil=auto|own|shared] [interpreters=N]");
    auto* imp = pool_new<import_script>(cmd->pool);
    imp->path = ap_server_root_relative(cmd->pool, argv[0]);
    if (imp->path == nullptr) return fail(cmd, "invalid file path '%s'", argv[0]);
    if (const char* err = parse_options(cmd, argc, argv, 1, 0, &imp->group, &imp->callable, &imp->placement))
        return err;
    if (imp->group.kind == group_kind::unset) return fail(cmd, "application-group=G is required");
    if (imp->group.kind == group_kind::resource || imp->group.kind == group_kind::env)
        return fail(cmd, "application-group must be %%{GLOBAL}, %%{SERVER} or a name: "
                         "%%{RESOURCE} and %%{ENV:...} depend on a request");
    apr_finfo_t fi;
    apr_status_t st = apr_stat(&fi, imp->path, APR_FINFO_TYPE, cmd->temp_pool);
    if (st != APR_SUCCESS) {
        char buf[128];
        return fail(cmd, "cannot stat '%s': %s", imp->path, apr_strerror(st, buf, sizeof buf));
    }
    if (fi.filetype != APR_REG) return fail(cmd, "'%s' is not a regular file", imp->path);
    imp->server = cmd->server;
    APR_ARRAY_PUSH(server_conf_of(cmd)->imports, const import_script*) = imp;
    return nullptr;
}

const char* cmd_python_path(cmd_parms* cmd, void*, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return err;
    if (*arg == '\0') return fail(cmd, "empty path");
    server_config* sc = server_conf_of(cmd);
    sc->python_path = sc->python_path ? apr_pstrcat(cmd->pool, sc->python_path, ":", arg, nullptr)
                                      : apr_pstrdup(cmd->pool, arg);
    return nullptr;
}

const char* cmd_python_home(cmd_parms* cmd, void*, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return err;
    server_config* sc = server_conf_of(cmd);
    if (sc->python_home != nullptr) return fail(cmd, "may be given only once");
    apr_finfo_t fi;
    if (arg[0] != '/' || apr_stat(&fi, arg, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS ||
        fi.filetype != APR_DIR)
        return fail(cmd, "'%s' is not an absolute path to an existing directory", arg);
    sc->python_home = apr_pstrdup(cmd->pool, arg);
    return nullptr;
}

const char* cmd_graceful_timeout(cmd_parms* cmd, void*, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return err;
    return checked(cmd, [&] { return parse_timeout(arg, &server_conf_of(cmd)->graceful_timeout_ms); });
}

const char* cmd_application_group(cmd_parms* cmd, void* dconf, int argc, char* const argv[]) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    if (argc < 1) return fail(cmd, "expects a group [gil=auto|own|shared] [interpreters=N]");
    auto* d = static_cast<dir_config*>(dconf);
    group_spec group;
    if (const char* err = parse_group(cmd, argv[0], &group)) return err;
    placement_options placement;
    if (const char* err = checked(cmd, [&] {
            parsed_options o;
            std::string e = mod::parse_options(argc, argv, 1, k_option_placement, &o);
            placement = o.placement;
            return e.empty() ? checked_placement(placement, group) : e;
        }))
        return err;
    d->group = group;
    d->placement = placement;
    return nullptr;
}

const char* cmd_callable_object(cmd_parms* cmd, void* dconf, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    if (!is_identifier(arg)) return fail(cmd, "'%s' is not a Python identifier", arg);
    static_cast<dir_config*>(dconf)->callable = apr_pstrdup(cmd->pool, arg);
    return nullptr;
}

const char* cmd_subinterpreter_fallback(cmd_parms* cmd, void* dconf, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    return checked(cmd, [&] { return parse_fallback(arg, &static_cast<dir_config*>(dconf)->fallback); });
}

const char* cmd_request_timeout(cmd_parms* cmd, void* dconf, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    return checked(cmd, [&] { return parse_timeout(arg, &static_cast<dir_config*>(dconf)->request_timeout_ms); });
}

const char* cmd_script_reloading(cmd_parms* cmd, void* dconf, int on) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    static_cast<dir_config*>(dconf)->script_reloading = on ? 1 : 0;
    return nullptr;
}

const char* cmd_pass_authorization(cmd_parms* cmd, void* dconf, int on) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    static_cast<dir_config*>(dconf)->pass_authorization = on ? 1 : 0;
    return nullptr;
}

const char* cmd_metrics_slots(cmd_parms* cmd, void*, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, GLOBAL_ONLY)) return err;
    char* end = nullptr;
    long n = std::strtol(arg, &end, 10);
    if (end == arg || *end != '\0' || n < 1 || n > 4096)
        return fail(cmd, "'%s' is not a number of interpreters between 1 and 4096", arg);
    server_conf_of(cmd)->metrics_slots = int(n);
    return nullptr;
}

// A number of seconds (a decimal fraction allowed) as milliseconds, or 0
// for "Off" and "0".  Returns nullptr or an error message.
const char* parse_seconds(cmd_parms* cmd, const char* arg, int* ms) noexcept {
    if (ap_cstr_casecmp(arg, "Off") == 0) {
        *ms = 0;
        return nullptr;
    }
    char* end = nullptr;
    double s = std::strtod(arg, &end);
    if (end == arg || *end != '\0' || !(s >= 0) || s > 86400)
        return fail(cmd, "'%s' is not a number of seconds between 0 and 86400 (or Off)", arg);
    *ms = int(std::lround(s * 1000));
    if (s > 0 && *ms == 0) *ms = 1;
    return nullptr;
}

const char* cmd_slow_request_time(cmd_parms* cmd, void* dconf, const char* arg) noexcept {
    if (const char* err = ap_check_cmd_context(cmd, NOT_IN_LIMIT)) return err;
    return parse_seconds(cmd, arg, &static_cast<dir_config*>(dconf)->slow_request_ms);
}

// The one merge rule for every setting: the more specific level wins when set.
template <typename T>
T pick(T base, T add, T unset) noexcept {
    return add != unset ? add : base;
}
group_spec pick(group_spec base, group_spec add) noexcept {
    return add.kind != group_kind::unset ? add : base;
}

}  // namespace

const command_rec commands[] = {
    AP_INIT_TAKE_ARGV("PyInterpScriptAlias", as_cmd(cmd_script_alias), nullptr, RSRC_CONF,
                      "URL-path file-path [application-group=G] [callable=NAME] [gil=auto|own|shared] "
                      "[interpreters=N] [subinterpreter-fallback=route|refuse|allow] [request-timeout=SECONDS]: "
                      "serve a WSGI script"),
    AP_INIT_TAKE_ARGV("PyInterpApplicationGroup", as_cmd(cmd_application_group), nullptr, RSRC_CONF | ACCESS_CONF,
                      "%{GLOBAL}, %{SERVER}, %{RESOURCE} (default), %{ENV:VAR} or a name: the interpreter to use; "
                      "[gil=auto|own|shared] [interpreters=N]: with its own GIL, on a pool of N"),
    AP_INIT_TAKE1("PyInterpCallableObject", as_cmd(cmd_callable_object), nullptr, RSRC_CONF | ACCESS_CONF,
                  "name of the WSGI callable in the script (default: application)"),
    AP_INIT_TAKE_ARGV("PyInterpImportScript", as_cmd(cmd_import_script), nullptr, RSRC_CONF,
                      "file application-group=G [callable=NAME] [gil=auto|own|shared] [interpreters=N]: load a "
                      "script when a child starts (into every interpreter of a pool)"),
    AP_INIT_TAKE1("PyInterpPythonPath", as_cmd(cmd_python_path), nullptr, RSRC_CONF,
                  "':'-separated directories added in front of sys.path in every interpreter"),
    AP_INIT_TAKE1("PyInterpPythonHome", as_cmd(cmd_python_home), nullptr, RSRC_CONF,
                  "Python home directory (sys.prefix) of the embedded interpreter"),
    AP_INIT_TAKE1("PyInterpSubinterpreterFallback", as_cmd(cmd_subinterpreter_fallback), nullptr,
                  RSRC_CONF | ACCESS_CONF,
                  "route (default), refuse or allow: an application in a subinterpreter that imports an "
                  "extension needing the main interpreter"),
    AP_INIT_FLAG("PyInterpScriptReloading", as_cmd(cmd_script_reloading), nullptr, RSRC_CONF | ACCESS_CONF,
                 "On (default): reload a script whose file changed"),
    AP_INIT_FLAG("PyInterpPassAuthorization", as_cmd(cmd_pass_authorization), nullptr, RSRC_CONF | ACCESS_CONF,
                 "On: pass the Authorization header to the application as HTTP_AUTHORIZATION"),
    AP_INIT_TAKE1("PyInterpRequestTimeout", as_cmd(cmd_request_timeout), nullptr, RSRC_CONF | ACCESS_CONF,
                  "SECONDS (0 or Off: none, the default): interrupt an application that runs longer, "
                  "answering 504"),
    AP_INIT_TAKE1("PyInterpGracefulTimeout", as_cmd(cmd_graceful_timeout), nullptr, RSRC_CONF,
                  "SECONDS (default 1.5; Off: wait for them): at a graceful stop or restart, interrupt "
                  "requests still running Python after that long"),
    AP_INIT_TAKE1("PyInterpSlowRequestTime", as_cmd(cmd_slow_request_time), nullptr, RSRC_CONF | ACCESS_CONF,
                  "SECONDS or Off (default): log the Python stack of a request still running after that long"),
    AP_INIT_TAKE1("PyInterpMetricsSlots", as_cmd(cmd_metrics_slots), nullptr, RSRC_CONF,
                  "N: interpreters per child process whose counters the status page shows (default 32)"),
    {nullptr, {nullptr}, nullptr, 0, RAW_ARGS, nullptr},
};

void* create_dir_config(apr_pool_t* p, char*) noexcept {
    return pool_new<dir_config>(p);
}

void* merge_dir_config(apr_pool_t* p, void* base_v, void* add_v) noexcept {
    const auto* base = static_cast<const dir_config*>(base_v);
    const auto* add = static_cast<const dir_config*>(add_v);
    auto* out = pool_new<dir_config>(p);
    out->group = pick(base->group, add->group);
    // The options of PyInterpApplicationGroup go with it.
    out->placement = add->group.kind != group_kind::unset ? add->placement : base->placement;
    out->callable = pick<const char*>(base->callable, add->callable, nullptr);
    out->script_reloading = pick(base->script_reloading, add->script_reloading, -1);
    out->pass_authorization = pick(base->pass_authorization, add->pass_authorization, -1);
    out->fallback = pick(base->fallback, add->fallback, fallback_policy::unset);
    out->request_timeout_ms = pick(base->request_timeout_ms, add->request_timeout_ms, -1);
    out->slow_request_ms = pick(base->slow_request_ms, add->slow_request_ms, -1);
    return out;
}

void* create_server_config(apr_pool_t* p, server_rec*) noexcept {
    auto* sc = pool_new<server_config>(p);
    // Arrays of pointers: the element size is a pointer's.
    sc->aliases = apr_array_make(p, 4, sizeof(const script_alias*));   // NOLINT(bugprone-sizeof-expression)
    sc->imports = apr_array_make(p, 2, sizeof(const import_script*));  // NOLINT(bugprone-sizeof-expression)
    return sc;
}

void* merge_server_config(apr_pool_t* p, void* base_v, void* add_v) noexcept {
    const auto* base = static_cast<const server_config*>(base_v);
    const auto* add = static_cast<const server_config*>(add_v);
    auto* out = pool_new<server_config>(p);
    // A virtual host's own aliases first, then the main server's.
    out->aliases = apr_array_append(p, add->aliases, base->aliases);
    // Imports are not inherited: child_init walks every server's own list.
    out->imports = add->imports;
    out->python_path = pick<const char*>(base->python_path, add->python_path, nullptr);
    out->python_home = pick<const char*>(base->python_home, add->python_home, nullptr);
    out->graceful_timeout_ms = pick(base->graceful_timeout_ms, add->graceful_timeout_ms, -1);
    out->metrics_slots = pick(base->metrics_slots, add->metrics_slots, 0);
    return out;
}

const server_config& server_settings(const server_rec* s) noexcept {
    return *static_cast<const server_config*>(ap_get_module_config(s->module_config, &pyinterp_module));
}

int graceful_timeout_ms(const server_rec* main_server) noexcept {
    int ms = server_settings(main_server).graceful_timeout_ms;
    return ms < 0 ? k_default_graceful_timeout_ms : ms;
}

const dir_config& dir_settings(const request_rec* r) noexcept {
    return *static_cast<const dir_config*>(ap_get_module_config(r->per_dir_config, &pyinterp_module));
}

namespace {

// gil= and interpreters=: the alias's (or import's) options over the
// directory's PyInterpApplicationGroup ones over the defaults.
void apply_placement(const placement_options* own, const placement_options& dir, app::request_target* t) noexcept {
    app::gil_mode gil = own != nullptr && own->gil != app::gil_mode::unset ? own->gil : dir.gil;
    t->gil = gil != app::gil_mode::unset ? gil : app::k_default_gil;
    int n = own != nullptr && own->interpreters != 0 ? own->interpreters : dir.interpreters;
    t->interpreters = n != 0 ? n : app::k_default_interpreters;
}

}  // namespace

group_spec apply_settings(const request_rec* r, const script_alias* alias, app::request_target* t) noexcept {
    const dir_config& d = dir_settings(r);
    group_spec group = alias != nullptr ? pick(d.group, alias->group) : d.group;
    if (group.kind == group_kind::unset) group.kind = group_kind::resource;
    t->callable = alias != nullptr && alias->callable != nullptr ? alias->callable
                  : d.callable != nullptr                        ? d.callable
                                                                 : app::k_default_callable;
    t->script_reloading = d.script_reloading < 0 ? app::k_default_script_reloading : d.script_reloading != 0;
    t->pass_authorization = d.pass_authorization < 0 ? k_default_pass_authorization : d.pass_authorization != 0;
    t->fallback_from_alias = alias != nullptr && alias->fallback != fallback_policy::unset;
    t->fallback = t->fallback_from_alias                 ? alias->fallback
                  : d.fallback != fallback_policy::unset ? d.fallback
                                                         : app::k_default_fallback;
    t->alias_url = alias != nullptr ? alias->url : nullptr;
    t->request_timeout_ms = alias != nullptr && alias->request_timeout_ms >= 0 ? alias->request_timeout_ms
                            : d.request_timeout_ms >= 0                    ? d.request_timeout_ms
                                                                           : k_default_request_timeout_ms;
    t->slow_request_ms = d.slow_request_ms > 0 ? d.slow_request_ms : 0;
    apply_placement(alias != nullptr ? &alias->placement : nullptr, d.placement, t);
    return group;
}

void apply_import_settings(const import_script& imp, app::request_target* t) noexcept {
    const auto* d =
        static_cast<const dir_config*>(ap_get_module_config(imp.server->lookup_defaults, &pyinterp_module));
    t->script = imp.path;
    t->callable = imp.callable != nullptr ? imp.callable : app::k_default_callable;
    // Loaded once, at child start: nothing to compare a stamp with yet.
    t->script_reloading = false;
    t->fallback = d != nullptr && d->fallback != fallback_policy::unset ? d->fallback : app::k_default_fallback;
    apply_placement(&imp.placement, placement_options{}, t);
}

const script_alias* matched_alias(const request_rec* r) noexcept {
    return static_cast<const script_alias*>(ap_get_module_config(r->request_config, &pyinterp_module));
}

void set_matched_alias(request_rec* r, const script_alias* alias) noexcept {
    ap_set_module_config(r->request_config, &pyinterp_module, const_cast<script_alias*>(alias));
}

const script_alias* find_alias(const request_rec* r, const char** rest) noexcept {
    if (r->uri == nullptr || r->uri[0] != '/') return nullptr;
    const apr_array_header_t* aliases = server_settings(r->server).aliases;
    for (int i = 0; i < aliases->nelts; ++i) {
        const auto* alias = APR_ARRAY_IDX(aliases, i, const script_alias*);
        size_t n = std::strlen(alias->url);
        if (std::strncmp(r->uri, alias->url, n) == 0 && (r->uri[n] == '\0' || r->uri[n] == '/')) {
            *rest = r->uri + n;
            return alias;
        }
    }
    return nullptr;
}

}  // namespace pyinterp::mod
