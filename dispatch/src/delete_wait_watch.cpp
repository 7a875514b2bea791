// A debugging aid for the one deadlock extension authors meet most: joining
// a thread that entered an interpreter while holding that interpreter's GIL.
// The joined thread deletes its cached thread states as it ends, each with
// its interpreter's GIL (facts §3.6), so it waits for the GIL the joiner
// holds while the joiner waits for it to end.
//
// CPython offers no timed acquire, and the joiner is in pthread_join, out of
// the library's sight, so the deadlock cannot be refused up front.  Instead,
// in debug builds (NDEBUG not defined) and when Python runs in development
// mode (-X dev, PYTHONDEVMODE=1), every wait for a GIL to delete a cached
// thread state is registered with a watchdog thread, which logs an error
// naming the likely cause once a wait passes k_report_after.  Elsewhere the
// watch costs one relaxed load.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <list>
#include <thread>

#include "internal.h"

namespace pyinterp::detail {
namespace {

constexpr auto k_report_after = std::chrono::seconds(2);

#ifdef NDEBUG
constexpr bool k_debug_build = false;
#else
constexpr bool k_debug_build = true;
#endif

std::atomic<bool> g_enabled{k_debug_build};

struct waiter {
    std::chrono::steady_clock::time_point since;
    std::string interp;
    long os_thread;
    bool reported = false;
};

struct watchdog {
    std::mutex mu;
    std::condition_variable cv;
    std::list<waiter> waiters;  // under mu
    bool started = false;       // under mu
};

// Never destroyed: threads may outlive main().  Replaced in a forked child,
// which has no watchdog thread and may have inherited the mutex locked.
std::atomic<watchdog*> g_dog{new watchdog};

watchdog& dog() noexcept {
    return *g_dog.load(std::memory_order_acquire);
}

void after_fork_in_child() noexcept {
    try {
        g_dog.store(new watchdog, std::memory_order_release);  // the old one leaks
    } catch (...) {
        g_enabled.store(false, std::memory_order_relaxed);
    }
}

void watch_loop() noexcept {
    watchdog& w = dog();
    std::unique_lock<std::mutex> lk(w.mu);
    for (;;) {
        if (w.waiters.empty()) {
            w.cv.wait(lk);
            continue;
        }
        auto now = std::chrono::steady_clock::now();
        auto next = now + k_report_after;
        for (waiter& x : w.waiters) {
            auto due = x.since + k_report_after;
            if (x.reported) continue;
            if (due <= now) {
                x.reported = true;
                log(PYINTERP_LOG_ERROR,
                    "pyinterp: thread %ld has waited %lld s for the GIL of interpreter '%s' to delete its "
                    "thread state (the thread is ending, or called pyinterp_thread_release); if the thread "
                    "holding that GIL is joining this one, the process is deadlocked: join threads that "
                    "entered an interpreter with the GIL released (Py_BEGIN_ALLOW_THREADS)",
                    x.os_thread,
                    static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(now - x.since).count()),
                    x.interp.c_str());
            } else if (due < next) {
                next = due;
            }
        }
        w.cv.wait_until(lk, next);
    }
}

}  // namespace

void delete_wait_watch_configure() noexcept {
    if (k_debug_build) return;
    PyObject* flags = PySys_GetObject("flags");  // borrowed
    PyObject* dev = flags != nullptr ? PyObject_GetAttrString(flags, "dev_mode") : nullptr;
    int on = dev != nullptr ? PyObject_IsTrue(dev) : 0;
    Py_XDECREF(dev);
    if (on < 0 || dev == nullptr) PyErr_Clear();
    g_enabled.store(on > 0, std::memory_order_relaxed);
}

delete_wait_watch::delete_wait_watch(const interp_record* r) noexcept {
    if (!g_enabled.load(std::memory_order_relaxed)) return;
    watchdog& w = dog();
    try {
        std::lock_guard<std::mutex> lk(w.mu);
        if (!w.started) {
            static const int at_fork = pthread_atfork(nullptr, nullptr, after_fork_in_child);
            (void)at_fork;
            std::thread(watch_loop).detach();
            w.started = true;
        }
        w.waiters.push_back(waiter{std::chrono::steady_clock::now(), r->name, syscall(SYS_gettid)});
        entry_ = &w.waiters.back();
        w.cv.notify_one();
    } catch (...) {
        // No watch (out of memory, no thread): the wait itself goes ahead.
    }
}

delete_wait_watch::~delete_wait_watch() {
    if (entry_ == nullptr) return;
    watchdog& w = dog();
    std::lock_guard<std::mutex> lk(w.mu);
    for (auto it = w.waiters.begin(); it != w.waiters.end(); ++it) {
        if (&*it == entry_) {
            w.waiters.erase(it);
            break;
        }
    }
}

}  // namespace pyinterp::detail
