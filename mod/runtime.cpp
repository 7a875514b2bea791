// Python's lifetime in an httpd child (see runtime.h).
#include <Python.h>

#include "runtime.h"

#include <apr_strings.h>
#include <http_config.h>
#include <http_log.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "app/atexit_bound.h"
#include "app/placement.h"
#include "child_watchdog.h"
#include "config.h"
#include "error_log.h"
#include "groups.h"
#include "log_stream.h"
#include "metrics_shm.h"
#include "pyinterp/dispatch.hpp"
#include "pyinterp/module.h"
#include "wsgi_state.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// How long interpreters get to finish entries at child exit (the dispatch
// library's bounded wait), and how long finalization may take in all before
// the child exits without it.
constexpr int k_end_timeout_ms = 500;
constexpr auto k_finalize_budget = std::chrono::milliseconds(1200);
// How long one application's atexit handler may run Python (atexit_bound.h).
constexpr int k_atexit_bound_ms = 500;

// Process-wide C state only (no Python objects).
server_rec* g_server = nullptr;
std::atomic<app::executor*> g_executor{nullptr};

// Every interpreter the executor set up, in the order it did, for their
// atexit handlers at a normal stop.
std::mutex g_views_mu;
std::vector<pyinterp::view>* g_views = nullptr;

// The executor's per-interpreter setup: sys.stdout and sys.stderr to the
// main server's error log; atexit handlers bounded in time.  GIL held.
bool setup_interpreter(app::interp_state* st, void* server) noexcept {
    if (!log_streams_install(wsgi_state_of(st), static_cast<server_rec*>(server))) return false;
    app::executor* ex = g_executor.load();
    if (ex == nullptr || !app::install_bounded_atexit(&ex->inflight(), k_atexit_bound_ms)) return ex == nullptr;
    try {
        std::lock_guard<std::mutex> lk(g_views_mu);
        if (g_views == nullptr) g_views = new std::vector<pyinterp::view>;
        g_views->push_back(pyinterp::view::current());
    } catch (...) {
        // Out of memory: its handlers run when it ends, unbounded.
    }
    return true;
}

// At a normal stop, before any interpreter ends: every interpreter's atexit
// handlers, subinterpreters last set up first, the main interpreter last.
// No GIL held.
void run_all_atexit_handlers() noexcept {
    std::vector<pyinterp::view> views;
    {
        std::lock_guard<std::mutex> lk(g_views_mu);
        if (g_views != nullptr) views.swap(*g_views);
    }
    for (auto it = views.rbegin(); it != views.rend(); ++it)
        if (it->id() != 0) app::run_atexit_handlers(*it);
    for (const pyinterp::view& v : views)
        if (v.id() == 0) app::run_atexit_handlers(v);
}

// PyInterpImportScript through the executor: nothing to serve once the
// application is loaded; a failed load is logged against the server.
int preload_serve(const app::application&, const app::request_target&, void*) noexcept {
    return OK;
}

int preload_failed(const app::request_target& t, void*) noexcept {
    log_python_exception(
        nullptr, g_server,
        apr_psprintf(g_server->process->pconf, "PYI0104: PyInterpImportScript '%s' failed in application group '%s'",
                     t.script, app::shown_group(t.group)));
    return HTTP_INTERNAL_SERVER_ERROR;
}

void preload_log(app::level lv, const char* message, void*) noexcept {
    ap_log_error(APLOG_MARK, ap_level_of(lv), 0, g_server, "%s", message);
}

// No outcome: preloads are not requests, they are not counted.
const app::protocol preload_protocol = {"preload", preload_serve, preload_failed, nullptr, preload_log, nullptr};

// Loads one PyInterpImportScript into its group (or into the main
// interpreter when the fallback policy routes it there).
void preload(app::executor& ex, const import_script& imp, apr_pool_t* p) noexcept {
    app::request_target t;
    apply_import_settings(imp, &t);
    t.group = group_for_server(imp.server, imp.group, p);
    if (t.group == nullptr) return;
    // Every failure is logged on the way (PYI0104, PYI0121, PYI0603...).
    // A pool gets the application in every member.
    ex.run_everywhere(t, preload_protocol, nullptr);
}

// Python finalization with a time limit: if Python's own shutdown hangs
// (an application's non-daemon thread, say), the child exits without it.
// The limit is a thread of its own, for as long as finalization lasts: the
// child's watchdog, which enters interpreters, is stopped before they end.
int finalize_bounded() noexcept {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread limit;
    try {
        limit = std::thread([&] {
            std::unique_lock<std::mutex> lk(mu);
            if (!cv.wait_for(lk, k_finalize_budget, [&] { return done; })) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server,
                             "PYI0106: Python finalization did not finish within %d ms; child exits without it",
                             static_cast<int>(k_finalize_budget.count()));
                _exit(0);
            }
        });
    } catch (...) {
        // No limit: finalize unguarded (the dispatch library still bounds
        // its waits for in-flight entries).
    }
    // The applications' atexit handlers first, in their own interpreters,
    // each bounded, while the child's watchdog still runs to bound them;
    // then the watchdog stops (the one place it does), and only then
    // interpreters end.
    run_all_atexit_handlers();
    int rc = PYINTERP_ERR_STATE;
    if (child_watchdog_stop())
        rc = pyinterp_finalize();
    else
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, g_server,
                     "PYI0113: child exiting while its watchdog waits for an interpreter; "
                     "Python finalization skipped");
    {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
    }
    cv.notify_all();
    if (limit.joinable()) limit.join();
    return rc;
}

// Child exit (a cleanup of pchild, on the thread that ran child_init).
// Ends every interpreter with a bounded wait, unless a request is still
// inside Python (prefork's SIGTERM handler, say): then finalization is
// skipped rather than tearing an interpreter down under the request.
apr_status_t child_exit(void*) {
    app::executor* ex = g_executor.exchange(nullptr);
    if (ex == nullptr) return APR_SUCCESS;
    int active = ex->in_flight();
    if (active > 0) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, g_server,
                     "PYI0105: child exiting with %d request(s) inside Python; Python finalization skipped", active);
        return APR_SUCCESS;  // the executor stays: requests still use it
    }
    int rc = finalize_bounded();
    if (rc == PYINTERP_ERR_STATE) return APR_SUCCESS;  // PYI0113
    if (rc != PYINTERP_OK)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, g_server, "PYI0107: Python finalization skipped: %s",
                     pyinterp_strerror(rc));
    else
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, g_server, "PYI0108: Python finalized");
    return APR_SUCCESS;
}

// Registers the built-in modules every interpreter imports and starts
// Python.  False (logged) on failure.
bool start_python(server_rec* s) noexcept {
    if (!app::register_private_module(&wsgi_state_ops)) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0101: cannot register the private module; Python not started");
        return false;
    }
    // `import pyinterp` in every interpreter: the loop API for applications
    // and the C API capsule (pyinterp._C_API) through which extension
    // modules reach this process's dispatch library, which the module links
    // statically with hidden visibility (an extension linking its own copy
    // would not know these interpreters).
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0110: cannot register the pyinterp module; Python not started");
        return false;
    }
    const server_config& conf = server_settings(s);
    pyinterp_config cfg{};
    cfg.python_home = conf.python_home;
    cfg.python_path = conf.python_path;  // PyInterpPythonPath, in every interpreter
    cfg.default_end_timeout_ms = k_end_timeout_ms;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "PYI0102: Python failed to start: %s", pyinterp_strerror(rc));
        return false;
    }
    return true;
}

}  // namespace

const char* runtime_other_embedder() noexcept {
    for (const char* name : {"mod_wsgi.c", "mod_python.c"})
        if (ap_find_linked_module(name) != nullptr) return name;
    return nullptr;
}

void runtime_child_init(apr_pool_t* pchild, server_rec* s) noexcept {
    g_server = s;
    // Requests then answer 503 (PYI0601); post_config said why (PYI0004).
    if (runtime_other_embedder() != nullptr) return;
    pyinterp_set_log_callback(forward_dispatch_log,
                              APLOG_IS_LEVEL(s, APLOG_DEBUG) ? PYINTERP_LOG_DEBUG : PYINTERP_LOG_INFO, s);
    if (!start_python(s)) return;
    app::executor_options opt;
    opt.log = server_log(s);
    opt.setup_interpreter = setup_interpreter;
    opt.setup_user = s;
    // Claimed first: its release is a cleanup of pchild that runs after
    // child_exit's.
    opt.metrics = metrics_child_init(pchild, s);
    // Lives as long as the process: a request may still run at child exit.
    auto* ex = new (std::nothrow) app::executor(opt);
    if (ex == nullptr) return;
    g_executor.store(ex);
    apr_pool_cleanup_register(pchild, nullptr, child_exit, apr_pool_cleanup_null);
    child_watchdog_start(*ex, opt.metrics, s);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "PYI0109: Python %s started in child %ld", Py_GetVersion(),
                 static_cast<long>(getpid()));
    if (pyinterp_supports_own_gil() != 0 && !app::auto_means_own_gil())
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "PYI0111: Python %s: gil=auto gives application groups a shared GIL (before 3.12.4, ending an "
                     "own-GIL interpreter frees objects other interpreters still use, CPython gh-119213); gil=own "
                     "still gives them their own",
                     Py_GetVersion());
    for (server_rec* vs = s; vs != nullptr; vs = vs->next) {
        const apr_array_header_t* imports = server_settings(vs).imports;
        for (int i = 0; i < imports->nelts; ++i) preload(*ex, *APR_ARRAY_IDX(imports, i, const import_script*), pchild);
    }
}

app::executor* runtime_executor() noexcept {
    return g_executor.load(std::memory_order_acquire);
}

}  // namespace pyinterp::mod
