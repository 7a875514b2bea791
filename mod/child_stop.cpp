// Request timeouts and stopping with requests in flight (see child_stop.h).
#include <Python.h>

#include "child_stop.h"

#include <ap_mpm.h>
#include <http_log.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "app/interrupt.h"
#include "child_watchdog.h"
#include "config.h"
#include "error_log.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

const app::executor* g_executor = nullptr;  // set in child_init, before any request
server_rec* g_server = nullptr;
app::log_sink g_log;
int g_graceful_ms = 0;  // PyInterpGracefulTimeout (0: never interrupt at a graceful stop)

// The stop's plan, written once by child_stopping (exit_at last, with
// release) and read by the watchdog's tick: monotonic times, 0 until then.
std::atomic<bool> g_stopping{false};
std::atomic<int64_t> g_interrupt_at_ns{0};
std::atomic<int64_t> g_exit_at_ns{0};
std::atomic<int> g_exit_after_ms{0};
// The watchdog thread only: which steps it took.
bool g_interrupted = false;
bool g_exit_checked = false;

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
        // Out of memory: the exit still bounds the stop.
    }
}

// Ends the process if requests are still inside Python (stuck in C, where
// no exception reaches).  Requests only: what else runs in Python then
// (atexit handlers, the finalization) is bounded by the child's exit itself
// (runtime.cpp).
void exit_if_still_busy() noexcept {
    int left = g_executor->in_flight();
    if (left == 0) return;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, g_server,
                 "PYI0812: child still busy %d ms after it was told to stop (%d request(s) inside Python, "
                 "blocked in C); it exits now",
                 g_exit_after_ms.load(std::memory_order_relaxed), left);
    _exit(0);
}

}  // namespace

void child_stop_init(const app::executor& ex, server_rec* s) noexcept {
    g_executor = &ex;
    g_server = s;
    g_log = server_log(s);
    g_graceful_ms = graceful_timeout_ms(s);
}

void interrupt_timed_out(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void*) noexcept {
    // What runs in Python outside a request (an atexit handler,
    // atexit_bound.h) has no URL.
    app::interrupt_request(info, ts, info.url.empty() ? app::interrupt_reason::atexit : app::interrupt_reason::timeout,
                           g_log);
}

void child_stop_tick() noexcept {
    int64_t exit_at = g_exit_at_ns.load(std::memory_order_acquire);
    if (exit_at == 0 || g_exit_checked) return;
    int64_t now = app::monotonic_ns();
    // The exit first: a watchdog that waited for a GIL past both times
    // does not wait for another one before it.
    if (now >= exit_at) {
        g_exit_checked = true;
        exit_if_still_busy();
        return;
    }
    if (!g_interrupted && now >= g_interrupt_at_ns.load(std::memory_order_relaxed)) {
        g_interrupted = true;
        if (g_executor->inflight().size() > 0) interrupt_all();
    }
}

void child_stopping(apr_pool_t*, int graceful) noexcept {
    if (g_executor == nullptr) return;
    // A child of an MPM without threads (prefork) runs this hook between
    // requests, or from its SIGTERM handler on the very thread whose request
    // it cut short, just before exit(): nothing is left to interrupt, and
    // the watchdog, woken now to interrupt or list requests, would race the
    // process's exit.  With that request cut short (Python is not finalized
    // then) it is held as well, so that no tick of its own does either.
    // Between requests it runs on: it bounds the atexit handlers of the
    // finalization that follows.
    int threaded = AP_MPMQ_NOT_SUPPORTED;
    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS || threaded == AP_MPMQ_NOT_SUPPORTED) {
        if (g_executor->in_flight() > 0) child_watchdog_hold();
        return;
    }
    if (graceful && g_graceful_ms == 0) return;  // PyInterpGracefulTimeout Off: requests run to their end
    if (g_stopping.exchange(true)) return;
    int grace_ms = graceful ? g_graceful_ms : 0;
    int exit_ms = graceful ? g_graceful_ms + k_graceful_exit_extra_ms : k_stop_exit_ms;
    int64_t now = app::monotonic_ns();
    g_exit_after_ms.store(exit_ms, std::memory_order_relaxed);
    g_interrupt_at_ns.store(now + int64_t(grace_ms) * 1000000, std::memory_order_relaxed);
    g_exit_at_ns.store(now + int64_t(exit_ms) * 1000000, std::memory_order_release);
    // No watchdog (it could not start): at a stop, interrupt what this
    // thread can reach now.
    if (!child_watchdog_wake() && !graceful) interrupt_all();
}

bool child_is_stopping() noexcept {
    return g_stopping.load(std::memory_order_relaxed);
}

}  // namespace pyinterp::mod
