// The watchdog thread of an httpd child (see child_watchdog.h).
#include <Python.h>

#include "child_watchdog.h"

#include <http_log.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "child_stop.h"
#include "error_log.h"
#include "status_stacks.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// How often the watchdog looks at deadlines: slow-request times and
// timeouts are seconds, so a tenth of one is precise enough and costs
// nothing.
constexpr int k_tick_ms = 100;
// How long child exit waits for it.
constexpr int k_stop_timeout_ms = 1000;

std::atomic<app::watchdog*> g_watchdog{nullptr};  // started and stopped by the child's main thread
app::log_sink g_log;

// What the tick works on (set before the thread starts).
struct tick_state {
    const app::inflight_registry* reg = nullptr;
    app::metrics::child_metrics* counters = nullptr;
};
tick_state g_tick;

// Every tick, on the watchdog thread, no GIL held.
void tick(void*) noexcept {
    // The stop first: nothing else on this thread delays a stuck child's exit.
    child_stop_tick();
    if (g_tick.counters == nullptr) return;
    app::metrics::child_region* r = g_tick.counters->region();
    // Given back at child exit (a child exiting with requests still in
    // Python keeps its watchdog until the end): no longer written to.
    if (r == nullptr || r->pid.load(std::memory_order_relaxed) != getpid()) return;
    g_tick.counters->sample(app::metrics::wall_ms());
    stacks_answer(r, *g_tick.reg);
}

// PyInterpSlowRequestTime: inside the request's interpreter, GIL held.
void log_slow(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void*) noexcept {
    app::log_slow_request(info, ts, g_log);
}

}  // namespace

void child_watchdog_start(const app::executor& ex, app::metrics::child_metrics* counters, server_rec* s) noexcept {
    g_log = server_log(s);
    child_stop_init(ex, s);
    g_tick.reg = &ex.inflight();
    g_tick.counters = counters;
    app::watchdog_options opt;
    opt.tick_ms = k_tick_ms;
    opt.on_tick = tick;
    opt.actions[unsigned(app::deadline_kind::slow)] = {log_slow, nullptr};
    opt.actions[unsigned(app::deadline_kind::timeout)] = {interrupt_timed_out, nullptr};
    opt.log = g_log;
    auto* dog = new (std::nothrow) app::watchdog(ex.inflight(), opt);
    if (dog == nullptr || !dog->start()) {
        delete dog;
        return;
    }
    g_watchdog.store(dog, std::memory_order_release);
}

bool child_watchdog_wake() noexcept {
    app::watchdog* dog = g_watchdog.load(std::memory_order_acquire);
    return dog != nullptr && dog->wake();
}

static_assert(std::atomic<app::watchdog*>::is_always_lock_free, "child_watchdog_hold() must be async-signal-safe");

void child_watchdog_hold() noexcept {
    if (app::watchdog* dog = g_watchdog.load(std::memory_order_acquire)) dog->hold();
}

bool child_watchdog_stop() noexcept {
    app::watchdog* dog = g_watchdog.exchange(nullptr, std::memory_order_acq_rel);
    if (dog == nullptr) return true;
    if (!dog->stop(k_stop_timeout_ms)) return false;  // its shared state stays with the detached thread
    delete dog;
    return true;
}

}  // namespace pyinterp::mod
