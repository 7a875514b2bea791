// Python's lifetime in an httpd child (see runtime.h).
#include <Python.h>

#include "runtime.h"

#include <apr_strings.h>
#include <http_log.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "app_cache.h"
#include "config.h"
#include "fallback.h"
#include "groups.h"
#include "log_stream.h"
#include "pymodule.h"
#include "pyinterp/dispatch.hpp"
#include "pyinterp/module.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// How long interpreters get to finish entries at child exit (the dispatch
// library's bounded wait), and how long finalization may take in all before
// the child exits without it.
constexpr int k_end_timeout_ms = 500;
constexpr auto k_finalize_budget = std::chrono::milliseconds(1500);

// Process-wide C state only (no Python objects).
server_rec* g_server = nullptr;
std::atomic<bool> g_ready{false};
std::atomic<int> g_active{0};

// The dispatch library's log sink.  Any thread, possibly with a GIL held:
// only httpd's logger is called.
void forward_log(int level, const char* message, void* user) {
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

// Loads one PyInterpImportScript into `group`.  Any GIL state (enters the
// group's interpreter through the dispatch library).  Returns true when the
// script must go to the main interpreter instead (PyInterpSubinterpreterFallback
// route; logged and recorded).
bool preload_into(const import_script& imp, const char* group, apr_pool_t* p) noexcept {
    const server_config& main_conf = server_settings(g_server);
    pyinterp::view v = interpreter_for(group, g_server);
    if (!v) return false;
    bool to_main = false, abandon = false;
    {
        pyinterp::scoped_enter in(v);
        if (!in) {
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, g_server, "PYI0103: cannot enter application group '%s': %s",
                         group, pyinterp_strerror(in.status()));
            return false;
        }
        PyObject* m = prepare_interpreter(g_server, main_conf.python_path);
        const char* callable = imp.callable ? imp.callable : k_default_callable;
        fallback_policy policy = server_fallback(imp.server);
        PyObject* app =
            m ? load_application(state_of(m), imp.path, nullptr, callable, false, g_server, group, policy, false) : nullptr;
        if (app == nullptr && m != nullptr && fallback_pending(state_of(m))) {
            to_main = fallback_after_load(nullptr, g_server, imp.path, group, policy, false, nullptr, state_of(m)) ==
                      k_route_to_main;
            abandon = to_main && PyDict_Size(state_of(m)->apps) == 0;
        } else if (app == nullptr) {
            log_python_exception(nullptr, g_server,
                                 apr_psprintf(p, "PYI0104: PyInterpImportScript '%s' failed in application group '%s'",
                                              imp.path, *group ? group : "%{GLOBAL}"));
        }
        Py_XDECREF(app);
        Py_XDECREF(m);
    }
    if (abandon) v.end(k_end_timeout_ms);
    return to_main;
}

// Loads one PyInterpImportScript into its group, or into the main
// interpreter when the fallback policy routes it there.
void preload(const import_script& imp, apr_pool_t* p) noexcept {
    const char* group = group_for_server(imp.server, imp.group, p);
    if (group == nullptr) return;
    if (fallback_routed(imp.path, group) || preload_into(imp, group, p)) preload_into(imp, "", p);
}

// Child exit (a cleanup of pchild, on the thread that ran child_init).
// Ends every interpreter with a bounded wait; if Python's own shutdown
// hangs (an application's non-daemon thread, say), a watchdog lets the
// child exit without it.
apr_status_t child_exit(void*) {
    if (!g_ready.exchange(false)) return APR_SUCCESS;
    int active = g_active.load();
    if (active > 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, g_server,
                     "PYI0105: child exiting with %d request(s) inside Python; Python finalization skipped", active);
        return APR_SUCCESS;
    }
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog;
    try {
        watchdog = std::thread([&] {
            std::unique_lock<std::mutex> lk(mu);
            if (!cv.wait_for(lk, k_finalize_budget, [&] { return done; })) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                             "PYI0106: Python finalization did not finish within %d ms; child exits without it",
                             static_cast<int>(k_finalize_budget.count()));
                _exit(0);
            }
        });
    } catch (...) {
        // No watchdog: finalize unguarded (the dispatch library still bounds
        // its waits for in-flight entries).
    }
    int rc = pyinterp_finalize();
    {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
    }
    cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
    if (rc != PYINTERP_OK)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server, "PYI0107: Python finalization skipped: %s",
                     pyinterp_strerror(rc));
    else
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, g_server, "PYI0108: Python finalized");
    return APR_SUCCESS;
}

}  // namespace

void runtime_child_init(apr_pool_t* pchild, server_rec* s) noexcept {
    g_server = s;
    const server_config& conf = server_settings(s);
    pyinterp_set_log_callback(forward_log, APLOG_IS_LEVEL(s, APLOG_DEBUG) ? PYINTERP_LOG_DEBUG : PYINTERP_LOG_INFO,
                              s);
    if (PyImport_AppendInittab(k_private_module, pyinterp_private_module_init) != 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0101: cannot register the private module; Python not started");
        return;
    }
    // `import pyinterp` in every interpreter: the loop API for applications
    // and the C API capsule (pyinterp._C_API) through which extension
    // modules reach this process's dispatch library, which the module links
    // statically with hidden visibility (an extension linking its own copy
    // would not know these interpreters).
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0110: cannot register the pyinterp module; Python not started");
        return;
    }
    pyinterp_config cfg{};
    cfg.python_home = conf.python_home;
    cfg.default_end_timeout_ms = k_end_timeout_ms;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0102: Python failed to start: %s", pyinterp_strerror(rc));
        return;
    }
    g_ready.store(true);
    apr_pool_cleanup_register(pchild, nullptr, child_exit, apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "PYI0109: Python %s started in child %ld", Py_GetVersion(),
                 static_cast<long>(getpid()));
    for (server_rec* vs = s; vs != nullptr; vs = vs->next) {
        const apr_array_header_t* imports = server_settings(vs).imports;
        for (int i = 0; i < imports->nelts; ++i) preload(*APR_ARRAY_IDX(imports, i, const import_script*), pchild);
    }
}

bool runtime_ready() noexcept {
    return g_ready.load();
}

server_rec* runtime_main_server() noexcept {
    return g_server;
}

active_request::active_request() noexcept {
    g_active.fetch_add(1);
}

active_request::~active_request() {
    g_active.fetch_sub(1);
}

}  // namespace pyinterp::mod
