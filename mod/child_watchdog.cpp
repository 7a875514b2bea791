// The watchdog thread of an httpd child (see child_watchdog.h).
#include <Python.h>

#include "child_watchdog.h"

#include <http_log.h>

#include <new>

#include "error_log.h"
#include "status_stacks.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// How often the watchdog looks at deadlines: slow-request times are
// seconds, so a tenth of one is precise enough and costs nothing.
constexpr int k_tick_ms = 100;
// How long child exit waits for it.
constexpr int k_stop_timeout_ms = 1000;

app::watchdog* g_watchdog = nullptr;  // the child's main thread only
app::log_sink g_log;

// What the tick works on (set before the thread starts).
struct tick_state {
    const app::inflight_registry* reg = nullptr;
    app::metrics::child_metrics* counters = nullptr;
};
tick_state g_tick;

// Every tick, on the watchdog thread, no GIL held.
void tick(void*) noexcept {
    if (g_tick.counters == nullptr) return;
    g_tick.counters->sample(app::metrics::wall_ms());
    if (app::metrics::child_region* r = g_tick.counters->region()) stacks_answer(r, *g_tick.reg);
}

// PyInterpSlowRequestTime: inside the request's interpreter, GIL held.
void log_slow(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void*) noexcept {
    app::log_slow_request(info, ts, g_log);
}

}  // namespace

void child_watchdog_start(const app::executor& ex, app::metrics::child_metrics* counters, server_rec* s) noexcept {
    g_log = server_log(s);
    g_tick.reg = &ex.inflight();
    g_tick.counters = counters;
    app::watchdog_options opt;
    opt.tick_ms = k_tick_ms;
    opt.on_tick = tick;
    opt.actions[unsigned(app::deadline_kind::slow)] = {log_slow, nullptr};
    opt.log = g_log;
    auto* dog = new (std::nothrow) app::watchdog(ex.inflight(), opt);
    if (dog == nullptr || !dog->start()) {
        delete dog;
        return;
    }
    g_watchdog = dog;
}

bool child_watchdog_stop() noexcept {
    app::watchdog* dog = g_watchdog;
    if (dog == nullptr) return true;
    g_watchdog = nullptr;
    if (!dog->stop(k_stop_timeout_ms)) return false;  // its shared state stays with the detached thread
    delete dog;
    return true;
}

}  // namespace pyinterp::mod
