// Request timeouts and stopping with requests in flight (see child_stop.h).
#include <Python.h>

#include "child_stop.h"

#include <ap_mpm.h>
#include <http_log.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <new>
#include <thread>
#include <vector>

#include "app/interrupt.h"
#include "config.h"
#include "error_log.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// Timeouts are seconds: a tenth of one is precise enough.
constexpr int k_tick_ms = 100;
constexpr int k_watchdog_stop_ms = 1000;

const app::executor* g_executor = nullptr;  // set in child_init, before any request
server_rec* g_server = nullptr;
app::log_sink g_log;
app::watchdog* g_watchdog = nullptr;  // the child's main thread only
std::atomic<bool> g_stopping{false};
int g_graceful_ms = 0;  // PyInterpGracefulTimeout (0: never interrupt at a graceful stop)

// The watchdog's timeout action: inside the request's interpreter, GIL held.
// What runs in Python outside a request (an atexit handler, atexit_bound.h)
// has no URL.
void on_timeout(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void*) noexcept {
    app::interrupt_request(info, ts, info.url.empty() ? app::interrupt_reason::atexit : app::interrupt_reason::timeout,
                           g_log);
}

// Inside the request's interpreter, GIL held (visit()).
void on_stop(const app::inflight_info& info, PyThreadState* ts, void*) noexcept {
    g_executor->inflight().mark_fired(info.id, app::deadline_kind::timeout);
    app::interrupt_request(info, ts, app::interrupt_reason::stopping, g_log);
}

// Interrupts every request in Python now.  No GIL; takes each
// interpreter's GIL in turn.
void interrupt_all() noexcept {
    try {
        const app::inflight_registry& reg = g_executor->inflight();
        std::vector<app::inflight_info> requests = reg.list();
        // Requests only (they have a URL); atexit handlers have their own bound.
        requests.erase(
            std::remove_if(requests.begin(), requests.end(), [](const app::inflight_info& i) { return i.url.empty(); }),
            requests.end());
        reg.visit(requests, on_stop, nullptr);
    } catch (...) {
        // Out of memory: the exit below still bounds the stop.
    }
}

// The stop's own thread: after `grace_ms` interrupts what is still in
// Python, and after `exit_ms` ends the process if requests are still inside
// Python then (stuck in C, where no exception reaches).
void stopper(int grace_ms, int exit_ms) noexcept {
    auto began = std::chrono::steady_clock::now();
    if (grace_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(grace_ms));
    if (g_executor->inflight().size() > 0) interrupt_all();
    std::this_thread::sleep_until(began + std::chrono::milliseconds(exit_ms));
    // Requests only: what else runs in Python then (atexit handlers, the
    // finalization) is bounded by the child's exit itself (runtime.cpp).
    int left = g_executor->in_flight();
    if (left == 0) return;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, g_server,
                 "PYI0812: child still busy %d ms after it was told to stop (%d request(s) inside Python, "
                 "blocked in C); it exits now",
                 exit_ms, left);
    _exit(0);
}

}  // namespace

void child_stop_start(const app::executor& ex, server_rec* s) noexcept {
    g_executor = &ex;
    g_server = s;
    g_log = server_log(s);
    g_graceful_ms = graceful_timeout_ms(s);
    app::watchdog_options opt;
    opt.tick_ms = k_tick_ms;
    opt.actions[unsigned(app::deadline_kind::timeout)] = {on_timeout, nullptr};
    opt.log = g_log;
    auto* dog = new (std::nothrow) app::watchdog(ex.inflight(), opt);
    if (dog == nullptr || !dog->start()) {
        delete dog;
        return;
    }
    g_watchdog = dog;
}

void child_stopping(apr_pool_t*, int graceful) noexcept {
    if (g_executor == nullptr) return;
    // A child of an MPM without threads (prefork) runs this hook between
    // requests, or from its SIGTERM handler on the very thread whose request
    // it cut short, just before exit(): nothing is left to interrupt, and a
    // thread started now would race the process's exit.
    int threaded = AP_MPMQ_NOT_SUPPORTED;
    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS || threaded == AP_MPMQ_NOT_SUPPORTED) return;
    if (graceful && g_graceful_ms == 0) return;  // PyInterpGracefulTimeout Off: requests run to their end
    if (g_stopping.exchange(true)) return;
    int grace = graceful ? g_graceful_ms : 0;
    int exit_after = graceful ? g_graceful_ms + k_graceful_exit_extra_ms : k_stop_exit_ms;
    try {
        std::thread(stopper, grace, exit_after).detach();
    } catch (...) {
        if (!graceful) interrupt_all();
    }
}

bool child_is_stopping() noexcept {
    return g_stopping.load(std::memory_order_relaxed);
}

bool child_stop_watchdog_stop() noexcept {
    app::watchdog* dog = g_watchdog;
    if (dog == nullptr) return true;
    g_watchdog = nullptr;
    if (!dog->stop(k_watchdog_stop_ms)) return false;  // its shared state stays with the detached thread
    delete dog;
    return true;
}

}  // namespace pyinterp::mod
