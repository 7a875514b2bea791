// The GIL watcher: a library thread that relays GIL drop requests between
// interpreters sharing one GIL, so that a thread waiting to enter one
// interpreter while a thread of another runs pure Python gets the GIL within
// a few switch intervals (CPython 3.11 and 3.12; see compat_gil.c).
//
// Schedule: asleep until a thread about to wait for the held shared GIL
// wakes it (gil_handover_before_wait); meanwhile it looks every
// `k_idle_poll` while Python runs at all, every `k_still_poll` while nothing
// does, so that waiters that did not come through the library (threads an
// application started, PyGILState_Ensure callers) are seen too.  Awake, it
// looks at the GIL `k_ticks_per_interval` times per switch interval (a
// waiter's request appears one interval after it started waiting; looking
// once per interval would add up to another interval), and goes back to
// sleep after `k_quiet` without a waiter.  It never takes a GIL and never
// calls Python.
#include "gil_handover.h"

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <new>

#include "internal.h"

namespace pyinterp::detail {

#if PYINTERP_GIL_RELAY

std::atomic<const int*> g_gil_watch_asleep{nullptr};

namespace {

constexpr auto k_idle_poll = std::chrono::milliseconds(250);
constexpr auto k_still_poll = std::chrono::milliseconds(1000);
constexpr int k_ticks_per_interval = 4;
constexpr auto k_quiet = std::chrono::milliseconds(100);

struct watcher {
    const int* gil_locked = nullptr;  // see g_gil_watch_asleep
    std::mutex mu;
    std::condition_variable cv;
    pthread_t th{};
    bool enabled = false;  // a shared-GIL subinterpreter exists (under mu)
    bool running = false;  // `th` is this process's watcher (under mu)
    bool stop = false;     // (under mu)
    bool wake = false;     // (under mu)
    unsigned long relayed = 0;
};

watcher& the_watcher() noexcept {
    static watcher* w = new watcher;  // never destroyed: a host may exit without stopping it
    return *w;
}

void* watch_main(void* arg) {
    auto* w = static_cast<watcher*>(arg);
    pyinterp_gil_watch st{};
    bool asleep = true;
    bool used = true;
    auto last_waiter = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lk(w->mu);
    while (!w->stop) {
        if (asleep) {
            w->cv.wait_for(lk, used ? k_idle_poll : k_still_poll, [w] { return w->stop || w->wake; });
        } else {
            auto tick = std::chrono::microseconds(pyinterp_compat_gil_interval_us() / k_ticks_per_interval + 1);
            w->cv.wait_for(lk, tick, [w] { return w->stop; });
        }
        if (w->stop) break;
        bool woken = w->wake;
        w->wake = false;
        // Under `mu`: fork()'s prepare handler takes it, so a child is never
        // forked while this thread holds CPython's interpreter-list lock.
        int seen = pyinterp_compat_gil_tick(&st);
        bool busy = (seen & PYINTERP_GIL_WAITER) != 0;
        used = (seen & PYINTERP_GIL_USED) != 0;
        w->relayed = st.relayed;
        auto now = std::chrono::steady_clock::now();
        if (busy || woken) {
            last_waiter = now;
            if (asleep) {
                asleep = false;
                g_gil_watch_asleep.store(nullptr, std::memory_order_relaxed);
            }
        } else if (!asleep && now - last_waiter >= k_quiet) {
            asleep = true;
            g_gil_watch_asleep.store(w->gil_locked, std::memory_order_relaxed);
        }
    }
    return nullptr;
}

// Under w.mu.  Signals stay with the host's threads.
void start_locked(watcher& w) noexcept {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w.th, nullptr, watch_main, &w);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (rc != 0) {
        log(PYINTERP_LOG_WARN,
            "pyinterp: could not start the GIL watcher (error %d); a thread running Python in one interpreter "
            "can hold off the others sharing its GIL",
            rc);
        return;
    }
    w.running = true;
    log(PYINTERP_LOG_DEBUG, "pyinterp: GIL watcher started");
}

// fork(): the child has no watcher thread; the first waiter starts one.
void before_fork() {
    the_watcher().mu.lock();
}
void after_fork_parent() {
    the_watcher().mu.unlock();
}
void after_fork_child() {
    watcher& w = the_watcher();
    w.mu.unlock();
    new (&w.cv) std::condition_variable;  // the parent's waiter is not here
    w.running = false;
    w.stop = false;
    w.wake = false;
    g_gil_watch_asleep.store(w.enabled ? w.gil_locked : nullptr, std::memory_order_relaxed);
}
pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
void register_atfork() {
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

}  // namespace

void gil_handover_wake() noexcept {
    // One waker per sleep: the others see nullptr and go on to wait for the
    // GIL without touching the watcher's mutex.
    if (g_gil_watch_asleep.exchange(nullptr, std::memory_order_relaxed) == nullptr) return;
    watcher& w = the_watcher();
    std::lock_guard<std::mutex> lk(w.mu);
    if (!w.enabled) return;
    if (!w.running) start_locked(w);
    w.wake = true;
    w.cv.notify_one();
}

void gil_handover_enable() noexcept {
    pthread_once(&atfork_once, register_atfork);
    watcher& w = the_watcher();
    std::lock_guard<std::mutex> lk(w.mu);
    if (w.enabled) return;
    const int* locked = pyinterp_compat_gil_locked_addr();
    if (locked == nullptr) return;
    w.gil_locked = locked;
    w.enabled = true;
    if (!w.running) start_locked(w);
    g_gil_watch_asleep.store(locked, std::memory_order_relaxed);
}

void gil_handover_stop() noexcept {
    watcher& w = the_watcher();
    pthread_t th;
    {
        std::lock_guard<std::mutex> lk(w.mu);
        w.enabled = false;
        g_gil_watch_asleep.store(nullptr, std::memory_order_relaxed);
        if (!w.running) return;
        w.stop = true;
        w.cv.notify_all();
        th = w.th;
    }
    pthread_join(th, nullptr);
    std::lock_guard<std::mutex> lk(w.mu);
    w.running = false;
    w.stop = false;
    log(PYINTERP_LOG_DEBUG, "pyinterp: GIL watcher stopped (%lu drop requests relayed)", w.relayed);
}

#else  // 3.13+: CPython delivers the drop request to the holder itself.

void gil_handover_enable() noexcept {}
void gil_handover_stop() noexcept {}

#endif

}  // namespace pyinterp::detail
