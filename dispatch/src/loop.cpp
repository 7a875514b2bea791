// The event loop (loop.h): loop threads on libevent that run Python
// callables inside the interpreters they came from.
//
// Each loop thread owns an event_base and three kinds of pending tasks: a
// ready list (call_soon), a timer heap ordered by (deadline, sequence) behind
// a single libevent timer (libevent's own heap does not keep equal deadlines
// in order), and one libevent event per watched descriptor.  Those structures
// belong to the loop thread alone.  Other threads talk to it through a
// command queue under a mutex ("add this task", "cancel that one", "sweep",
// "stop") and wake it with event_active() on a user event, which libevent
// makes thread-safe once evthread_use_pthreads() ran.  At most one wake-up is
// outstanding per thread, so a burst of posts costs one wake-up.
//
// A task runs through pyinterp_callback_call(): the loop thread enters the
// callback's interpreter with its cached thread state, which is what makes
// teardown safe: an interpreter that is ending refuses the entry, and a task
// that is running is an in-flight entry pyinterp_interp_end() waits for.
#include <event2/event.h>
#include <event2/thread.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "compat.h"
#include "internal.h"
#include "pyinterp/loop.h"

namespace pyinterp::detail {
namespace {

using steady = std::chrono::steady_clock;

constexpr int k_max_threads = 64;
constexpr size_t k_not_in_heap = static_cast<size_t>(-1);
// A persistent task cancelled while it runs; reported as RUNNING.
constexpr int k_running_cancelled = 4;

enum class task_kind : unsigned char { soon, later, fd };
enum class life : int { stopped, running, stopping };

struct loop_impl;
struct loop_thread;

// One scheduled task; a pyinterp_loop_handle* is an item*.  Reference-counted:
// the loop holds one reference until it retires the item, each handle one.
struct item {
    std::atomic<int> refs{1};
    std::atomic<int> state{PYINTERP_LOOP_PENDING};
    pyinterp_loop_task task{};
    pyinterp_view* view = nullptr;  // the callback's interpreter (a reference)
    loop_thread* owner = nullptr;
    task_kind kind = task_kind::soon;
    short fd_events = 0;
    int fd = -1;
    steady::time_point deadline{};
    uint64_t seq = 0;
    // Owned by the loop thread, or by the stopping thread once it has joined.
    item* next = nullptr;  // in `ready` or `watching`
    item* prev = nullptr;
    size_t heap_index = k_not_in_heap;
    event* ev = nullptr;   // task_kind::fd
    bool queued = false;   // in one of the thread's structures
};

// Intrusive doubly linked list of items.
struct item_list {
    item* head = nullptr;
    item* tail = nullptr;
    void push_back(item* it) noexcept {
        it->next = nullptr;
        it->prev = tail;
        if (tail != nullptr) tail->next = it;
        else head = it;
        tail = it;
    }
    void remove(item* it) noexcept {
        if (it->prev != nullptr) it->prev->next = it->next;
        else head = it->next;
        if (it->next != nullptr) it->next->prev = it->prev;
        else tail = it->prev;
        it->next = it->prev = nullptr;
    }
};

// A command for a loop thread.  Holds one reference to `it`: for an add, the
// loop's own; for a cancel, an extra one.
struct command {
    bool cancel;
    item* it;
};

struct loop_thread {
    loop_impl* loop = nullptr;

    // Shared with other threads, under mu.  mu may be held while calling
    // event_active() (libevent's lock comes second), never the other way.
    std::mutex mu;
    std::vector<command> incoming;
    bool accepting = false;
    bool wake_pending = false;  // an event_active() is outstanding
    bool sweep = false;         // an interpreter started ending
    bool stop = false;
    std::atomic<bool> stopping{false};  // checked between tasks

    // Created by start(), freed by the stopping thread after the join.
    event_base* base = nullptr;
    event* wakeup = nullptr;
    event* timer = nullptr;
    std::thread th;

    // The loop thread's own.
    std::vector<command> batch;
    item_list ready;
    item_list watching;
    std::vector<item*> timers;  // binary min-heap on (deadline, seq)
};

// A pyinterp_loop* is a loop_impl*.  Reference-counted so that a handle can
// reach its loop's threads even after pyinterp_loop_free(): the creator holds
// one reference, every handle given out another.
struct loop_impl {
    std::atomic<long> refs{1};
    std::mutex life_mu;  // start and stop
    std::atomic<life> state{life::stopped};
    std::vector<std::unique_ptr<loop_thread>> threads;  // fixed at creation
    std::atomic<uint64_t> next_seq{0};
    bool is_default = false;
};

thread_local loop_thread* tls_loop_thread = nullptr;

// Every loop, so that interpreter teardown can tell them to sweep.
struct loop_registry {
    std::mutex mu;
    std::vector<loop_impl*> all;
};
loop_registry& loops() noexcept {
    static auto* r = new loop_registry;  // never destroyed: loop threads may outlive main()
    return *r;
}

struct default_loop {
    std::mutex mu;
    std::atomic<loop_impl*> loop{nullptr};  // never freed once created
    int threads = 1;
    bool closed = false;  // the runtime is finalizing
};
default_loop& dflt() noexcept {
    static auto* d = new default_loop;
    return *d;
}

loop_impl* as_impl(pyinterp_loop* l) noexcept { return reinterpret_cast<loop_impl*>(l); }
item* as_item(pyinterp_loop_handle* h) noexcept { return reinterpret_cast<item*>(h); }
const item* as_item(const pyinterp_loop_handle* h) noexcept { return reinterpret_cast<const item*>(h); }

void loop_unref(loop_impl* L) noexcept {
    if (L->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete L;
}

void item_unref(item* it) noexcept {
    if (it->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete it;
}

// ----------------------------------------------------------- libevent setup

void forward_libevent_log(int severity, const char* msg) {
    int level = severity >= EVENT_LOG_ERR ? PYINTERP_LOG_ERROR
              : severity == EVENT_LOG_WARN ? PYINTERP_LOG_WARN
              : PYINTERP_LOG_DEBUG;
    log(level, "pyinterp: libevent: %s", msg);
}

// Once per process, before the first event_base: route libevent's messages
// to the log sink (it would print them to stderr) and make event_active()
// and event_base_loopbreak() callable from other threads.
bool libevent_ready() noexcept {
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [] {
        event_set_log_callback(forward_libevent_log);
        ok = evthread_use_pthreads() == 0;
        if (!ok) log(PYINTERP_LOG_ERROR, "pyinterp: evthread_use_pthreads failed; the loop is unavailable");
    });
    return ok;
}

// ------------------------------------------------------------- timer heap

bool earlier(const item* a, const item* b) noexcept {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

void heap_set(std::vector<item*>& h, size_t i, item* it) noexcept {
    h[i] = it;
    it->heap_index = i;
}

void heap_sift_up(std::vector<item*>& h, size_t i) noexcept {
    item* it = h[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(it, h[parent])) break;
        heap_set(h, i, h[parent]);
        i = parent;
    }
    heap_set(h, i, it);
}

void heap_sift_down(std::vector<item*>& h, size_t i) noexcept {
    item* it = h[i];
    size_t n = h.size();
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && earlier(h[child + 1], h[child])) ++child;
        if (!earlier(h[child], it)) break;
        heap_set(h, i, h[child]);
        i = child;
    }
    heap_set(h, i, it);
}

bool heap_push(std::vector<item*>& h, item* it) noexcept {
    try {
        h.push_back(it);
    } catch (...) {
        return false;
    }
    heap_sift_up(h, h.size() - 1);
    return true;
}

void heap_remove(std::vector<item*>& h, item* it) noexcept {
    size_t i = it->heap_index;
    item* last = h.back();
    h.pop_back();
    it->heap_index = k_not_in_heap;
    if (last == it) return;
    heap_set(h, i, last);
    if (i > 0 && earlier(last, h[(i - 1) / 2])) heap_sift_up(h, i);
    else heap_sift_down(h, i);
}

// -------------------------------------------------- the loop thread's side

void on_fd_ready(evutil_socket_t, short, void* arg);

// Take `it` out of the thread's structures (it must be queued).
void unlink_item(loop_thread* t, item* it) noexcept {
    switch (it->kind) {
        case task_kind::soon: t->ready.remove(it); break;
        case task_kind::later: heap_remove(t->timers, it); break;
        case task_kind::fd:
            t->watching.remove(it);
            if (it->ev != nullptr) {
                event_free(it->ev);  // deletes it first if pending
                it->ev = nullptr;
            }
            break;
    }
    it->queued = false;
}

// The loop is done with `it` (not queued, state final): release the task and
// drop the loop's reference.  Any GIL state (see pyinterp_release_fn).
void retire(item* it) noexcept {
    pyinterp_loop_task task = it->task;
    it->task = pyinterp_loop_task{};
    if (task.release != nullptr) task.release(task.user);
    if ((task.flags & PYINTERP_LOOP_FREE_CALLBACK) != 0) pyinterp_callback_free(task.callback);
    pyinterp_view_free(it->view);
    it->view = nullptr;
    item_unref(it);
}

// Drop a task that will never run (again).
void drop(loop_thread* t, item* it) noexcept {
    if (it->queued) unlink_item(t, it);
    it->state.store(PYINTERP_LOOP_CANCELLED, std::memory_order_release);
    retire(it);
}

// Run `it` on its loop thread, detached before and after.
void run_item(loop_thread* t, item* it) noexcept {
    int expected = PYINTERP_LOOP_PENDING;
    if (!it->state.compare_exchange_strong(expected, PYINTERP_LOOP_RUNNING, std::memory_order_acq_rel)) {
        drop(t, it);  // cancelled
        return;
    }
    const pyinterp_loop_task& task = it->task;
    int rc = pyinterp_callback_call(task.callback, task.make_args, task.on_result, task.user);
    bool delivered = rc == PYINTERP_OK || rc == PYINTERP_ERR_PYTHON;
    if (delivered && it->kind == task_kind::fd && (it->fd_events & EV_PERSIST) != 0) {
        expected = PYINTERP_LOOP_RUNNING;
        if (it->state.compare_exchange_strong(expected, PYINTERP_LOOP_PENDING, std::memory_order_acq_rel))
            return;  // keeps watching
        drop(t, it);  // cancelled while it ran
        return;
    }
    if (!delivered) {
        // The interpreter ended between the post and the run: refused, not run.
        drop(t, it);
        return;
    }
    if (it->queued) unlink_item(t, it);
    it->state.store(PYINTERP_LOOP_DONE, std::memory_order_release);
    retire(it);
}

void arm_timer(loop_thread* t) noexcept {
    if (t->timers.empty()) {
        evtimer_del(t->timer);
        return;
    }
    auto wait = t->timers.front()->deadline - steady::now();
    long long us = std::chrono::duration_cast<std::chrono::microseconds>(wait).count();
    if (us < 0) us = 0;
    timeval tv;
    tv.tv_sec = static_cast<time_t>(us / 1000000);
    tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
    evtimer_add(t->timer, &tv);
}

// Put a new task in its structure, or drop it if it was cancelled or its
// interpreter started ending before it got here.
void adopt(loop_thread* t, item* it) noexcept {
    if (it->state.load(std::memory_order_acquire) != PYINTERP_LOOP_PENDING || !pyinterp_view_is_live(it->view)) {
        drop(t, it);
        return;
    }
    switch (it->kind) {
        case task_kind::soon:
            t->ready.push_back(it);
            break;
        case task_kind::later:
            if (!heap_push(t->timers, it)) {
                log(PYINTERP_LOG_ERROR, "pyinterp: out of memory adding a timer; the task is dropped");
                drop(t, it);
                return;
            }
            break;
        case task_kind::fd:
            it->ev = event_new(t->base, it->fd, it->fd_events, on_fd_ready, it);
            if (it->ev == nullptr || event_add(it->ev, nullptr) != 0) {
                log(PYINTERP_LOG_ERROR, "pyinterp: cannot watch descriptor %d; the task is dropped", it->fd);
                if (it->ev != nullptr) event_free(it->ev);
                it->ev = nullptr;
                drop(t, it);
                return;
            }
            t->watching.push_back(it);
            break;
    }
    it->queued = true;
}

// Drop every queued task whose interpreter is no longer live.
void sweep(loop_thread* t) noexcept {
    std::vector<item*> dead;
    try {
        for (item* it = t->ready.head; it != nullptr; it = it->next)
            if (!pyinterp_view_is_live(it->view)) dead.push_back(it);
        for (item* it = t->watching.head; it != nullptr; it = it->next)
            if (!pyinterp_view_is_live(it->view)) dead.push_back(it);
        for (item* it : t->timers)
            if (!pyinterp_view_is_live(it->view)) dead.push_back(it);
    } catch (...) {
        // Out of memory: what was not collected is dropped when it comes due
        // (its entry is refused).
    }
    for (item* it : dead) drop(t, it);
}

void run_ready(loop_thread* t) noexcept {
    // Tasks posted while these run arrive through `incoming` and run on the
    // next wake-up, after any timer or descriptor that became ready meanwhile.
    while (t->ready.head != nullptr && !t->stopping.load(std::memory_order_relaxed)) {
        item* it = t->ready.head;
        t->ready.remove(it);
        it->queued = false;
        run_item(t, it);
    }
}

void on_wakeup(evutil_socket_t, short, void* arg) {
    auto* t = static_cast<loop_thread*>(arg);
    bool do_sweep;
    {
        std::lock_guard<std::mutex> lk(t->mu);
        t->wake_pending = false;
        if (t->stop) {
            // Leave the queue to the stopping thread.
            event_base_loopbreak(t->base);
            return;
        }
        t->batch.swap(t->incoming);
        do_sweep = t->sweep;
        t->sweep = false;
    }
    for (const command& c : t->batch) {
        if (!c.cancel) {
            adopt(t, c.it);
        } else {
            if (c.it->queued) drop(t, c.it);
            item_unref(c.it);
        }
    }
    t->batch.clear();
    if (do_sweep) sweep(t);
    run_ready(t);
    arm_timer(t);
}

void on_timer(evutil_socket_t, short, void* arg) {
    auto* t = static_cast<loop_thread*>(arg);
    steady::time_point now = steady::now();
    while (!t->timers.empty() && t->timers.front()->deadline <= now && !t->stopping.load(std::memory_order_relaxed)) {
        item* it = t->timers.front();
        heap_remove(t->timers, it);
        it->queued = false;
        run_item(t, it);
    }
    arm_timer(t);
}

void on_fd_ready(evutil_socket_t, short, void* arg) {
    auto* it = static_cast<item*>(arg);
    loop_thread* t = it->owner;
    if (t->stopping.load(std::memory_order_relaxed)) return;  // dropped by the stopping thread
    run_item(t, it);
}

void thread_main(loop_thread* t) noexcept {
    tls_loop_thread = t;
    event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    // Delete this thread's cached thread states now, each on this thread with
    // its GIL, rather than from the thread-exit hook.
    pyinterp_thread_release();
    tls_loop_thread = nullptr;
}

// ------------------------------------------------------- the other threads

// Queue a command and make sure the thread wakes up.  Under t->mu.
void wake_locked(loop_thread* t) noexcept {
    if (!t->wake_pending) {
        t->wake_pending = true;
        event_active(t->wakeup, 0, 0);
    }
}

void free_base(loop_thread* t) noexcept {
    if (t->wakeup != nullptr) event_free(t->wakeup);
    if (t->timer != nullptr) event_free(t->timer);
    if (t->base != nullptr) event_base_free(t->base);
    t->wakeup = t->timer = nullptr;
    t->base = nullptr;
}

// After the join: drop everything the thread had or was sent.
void drain(loop_thread* t) noexcept {
    std::vector<command> cmds;
    {
        std::lock_guard<std::mutex> lk(t->mu);
        cmds.swap(t->incoming);
    }
    for (const command& c : t->batch) cmds.push_back(c);  // empty unless a wake-up was cut short
    t->batch.clear();
    for (const command& c : cmds) {
        if (c.cancel) {
            if (c.it->queued) drop(t, c.it);
            item_unref(c.it);
        } else {
            drop(t, c.it);
        }
    }
    while (t->ready.head != nullptr) drop(t, t->ready.head);
    while (t->watching.head != nullptr) drop(t, t->watching.head);
    while (!t->timers.empty()) drop(t, t->timers.back());
    free_base(t);
}

// Stop: join the threads, then drop what is left.  Under L->life_mu.
void stop_locked(loop_impl* L) noexcept {
    if (L->state.load() != life::running) return;
    L->state.store(life::stopping);
    for (auto& t : L->threads) {
        t->stopping.store(true);
        std::lock_guard<std::mutex> lk(t->mu);
        t->accepting = false;
        t->stop = true;
        if (t->base != nullptr) {
            t->wake_pending = true;
            event_active(t->wakeup, 0, 0);
        }
    }
    // A task that is running may need the GIL this thread holds.
    PyThreadState* attached = attached_tstate();
    if (attached != nullptr) PyEval_SaveThread();
    for (auto& t : L->threads) {
        if (t->th.joinable()) t->th.join();
    }
    if (attached != nullptr) PyEval_RestoreThread(attached);
    // Release the tasks attached again: their callbacks' references are then
    // dropped inside their interpreters without a new thread state for ours.
    for (auto& t : L->threads) drain(t.get());
    L->state.store(life::stopped);
}

// Start the threads of a stopped loop.  Under L->life_mu.
int start_locked(loop_impl* L) noexcept {
    if (!libevent_ready()) return PYINTERP_ERR_CREATE;
    for (auto& t : L->threads) {
        event_config* cfg = event_config_new();
        if (cfg != nullptr) {
            // Timers on CLOCK_MONOTONIC rather than its coarse variant, which
            // can fire a few milliseconds before the steady_clock deadline.
            event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
            t->base = event_base_new_with_config(cfg);
            event_config_free(cfg);
        }
        if (t->base != nullptr) {
            t->wakeup = event_new(t->base, -1, 0, on_wakeup, t.get());
            t->timer = evtimer_new(t->base, on_timer, t.get());
        }
        if (t->base == nullptr || t->wakeup == nullptr || t->timer == nullptr) {
            log(PYINTERP_LOG_ERROR, "pyinterp: libevent could not create an event base for a loop thread");
            for (auto& u : L->threads) free_base(u.get());
            return PYINTERP_ERR_CREATE;
        }
    }
    for (auto& t : L->threads) {
        std::lock_guard<std::mutex> lk(t->mu);
        t->accepting = true;
        t->stop = false;
        t->sweep = false;
        t->wake_pending = false;
        t->stopping.store(false);
    }
    L->state.store(life::running);
    for (auto& t : L->threads) {
        try {
            t->th = std::thread(thread_main, t.get());
        } catch (...) {
            log(PYINTERP_LOG_ERROR, "pyinterp: could not start a loop thread");
            stop_locked(L);
            return PYINTERP_ERR_CREATE;
        }
    }
    return PYINTERP_OK;
}

int new_loop(int threads, bool is_default, loop_impl** out) noexcept {
    if (threads == 0) threads = 1;
    if (threads < 1 || threads > k_max_threads) return PYINTERP_ERR_INVALID;
    loop_impl* L = nullptr;
    try {
        L = new loop_impl;
        L->is_default = is_default;
        for (int i = 0; i < threads; ++i) {
            L->threads.push_back(std::make_unique<loop_thread>());
            L->threads.back()->loop = L;
            L->threads.back()->incoming.reserve(64);
            L->threads.back()->batch.reserve(64);
        }
        std::lock_guard<std::mutex> lk(loops().mu);
        loops().all.push_back(L);
    } catch (...) {
        delete L;
        return PYINTERP_ERR_NOMEM;
    }
    int rc;
    {
        std::lock_guard<std::mutex> lk(L->life_mu);
        rc = start_locked(L);
    }
    if (rc != PYINTERP_OK) {
        {
            std::lock_guard<std::mutex> lk(loops().mu);
            auto& all = loops().all;
            for (auto i = all.begin(); i != all.end(); ++i) {
                if (*i == L) {
                    all.erase(i);
                    break;
                }
            }
        }
        loop_unref(L);
        return rc;
    }
    *out = L;
    return PYINTERP_OK;
}

int stop_loop(loop_impl* L) noexcept {
    if (tls_loop_thread != nullptr && tls_loop_thread->loop == L) return PYINTERP_ERR_STATE;
    std::lock_guard<std::mutex> lk(L->life_mu);
    stop_locked(L);
    return PYINTERP_OK;
}

int schedule(pyinterp_loop* loop, const pyinterp_loop_task* task, task_kind kind, uint64_t delay_us, int fd,
             int events, pyinterp_loop_handle** handle) noexcept {
    if (handle != nullptr) *handle = nullptr;
    if (loop == nullptr || task == nullptr || task->callback == nullptr) return PYINTERP_ERR_INVALID;
    loop_impl* L = as_impl(loop);
    auto* it = new (std::nothrow) item;
    if (it == nullptr) return PYINTERP_ERR_NOMEM;
    it->task = *task;
    it->kind = kind;
    it->fd = fd;
    it->fd_events = static_cast<short>(events);
    it->view = pyinterp_callback_view(task->callback);
    if (!pyinterp_view_is_live(it->view)) {
        pyinterp_view_free(it->view);
        delete it;
        return PYINTERP_ERR_GONE;
    }
    if (kind == task_kind::later) {
        // Clamp to about 100 years so the time_point cannot overflow.
        constexpr uint64_t k_max_us = uint64_t{100} * 365 * 24 * 3600 * 1000000;
        it->deadline = steady::now() + std::chrono::microseconds(delay_us < k_max_us ? delay_us : k_max_us);
        it->seq = L->next_seq.fetch_add(1, std::memory_order_relaxed);
    }
    // All tasks of one interpreter go to one thread: they run in order and
    // never concurrently with each other.
    uint64_t id = static_cast<uint64_t>(pyinterp_view_id(it->view));
    loop_thread* t = L->threads[id % L->threads.size()].get();
    it->owner = t;
    if (handle != nullptr) it->refs.store(2, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lk(t->mu);
        int rc = PYINTERP_OK;
        if (!t->accepting) {
            rc = PYINTERP_ERR_STATE;
        } else {
            try {
                t->incoming.push_back(command{false, it});
            } catch (...) {
                rc = PYINTERP_ERR_NOMEM;
            }
        }
        if (rc != PYINTERP_OK) {
            pyinterp_view_free(it->view);
            delete it;
            return rc;
        }
        wake_locked(t);
    }
    if (handle != nullptr) {
        L->refs.fetch_add(1, std::memory_order_relaxed);
        *handle = reinterpret_cast<pyinterp_loop_handle*>(it);
    }
    return PYINTERP_OK;
}

}  // namespace

// Called by end_record() once `r` is ending: every loop thread drops the
// queued tasks of interpreters that are no longer live.  No GIL needed.
void loop_interp_ending(interp_record*) noexcept {
    loop_registry& reg = loops();
    std::lock_guard<std::mutex> lk(reg.mu);
    for (loop_impl* L : reg.all) {
        for (auto& t : L->threads) {
            std::lock_guard<std::mutex> tl(t->mu);
            if (!t->accepting) continue;
            t->sweep = true;
            wake_locked(t.get());
        }
    }
}

// Called when the runtime finalizes, before any interpreter ends: stop the
// default loop (dropping its queued tasks inside their live interpreters)
// and refuse to start it again until loop_reopen_default().
void loop_shutdown_default() noexcept {
    default_loop& d = dflt();
    loop_impl* L;
    {
        std::lock_guard<std::mutex> lk(d.mu);
        d.closed = true;
        L = d.loop.load();
    }
    // Not under d.mu: a task running on the loop may ask for the default loop.
    if (L != nullptr) stop_loop(L);
}

void loop_reopen_default() noexcept {
    default_loop& d = dflt();
    std::lock_guard<std::mutex> lk(d.mu);
    d.closed = false;
}

}  // namespace pyinterp::detail

using namespace pyinterp::detail;

extern "C" {

int pyinterp_loop_new(const pyinterp_loop_config* config, pyinterp_loop** out) {
    if (out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    loop_impl* L = nullptr;
    int rc = new_loop(config != nullptr ? config->threads : 1, false, &L);
    if (rc == PYINTERP_OK) *out = reinterpret_cast<pyinterp_loop*>(L);
    return rc;
}

int pyinterp_loop_stop(pyinterp_loop* loop) {
    if (loop == nullptr) return PYINTERP_ERR_INVALID;
    return stop_loop(as_impl(loop));
}

void pyinterp_loop_free(pyinterp_loop* loop) {
    if (loop == nullptr) return;
    loop_impl* L = as_impl(loop);
    if (L->is_default) {
        log(PYINTERP_LOG_WARN, "pyinterp: pyinterp_loop_free() on the default loop is ignored");
        return;
    }
    if (stop_loop(L) != PYINTERP_OK) {
        log(PYINTERP_LOG_ERROR, "pyinterp: pyinterp_loop_free() called on one of the loop's own threads; ignored");
        return;
    }
    {
        loop_registry& reg = loops();
        std::lock_guard<std::mutex> lk(reg.mu);
        for (auto i = reg.all.begin(); i != reg.all.end(); ++i) {
            if (*i == L) {
                reg.all.erase(i);
                break;
            }
        }
    }
    loop_unref(L);
}

int pyinterp_loop_default(pyinterp_loop** out) {
    if (out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    if (!rt().initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    default_loop& d = dflt();
    loop_impl* L = d.loop.load(std::memory_order_acquire);
    if (L != nullptr && L->state.load() == life::running) {
        *out = reinterpret_cast<pyinterp_loop*>(L);
        return PYINTERP_OK;
    }
    std::lock_guard<std::mutex> lk(d.mu);
    if (d.closed) return PYINTERP_ERR_NOT_INITIALIZED;
    L = d.loop.load();
    int rc = PYINTERP_OK;
    if (L == nullptr) {
        rc = new_loop(d.threads, true, &L);
        if (rc == PYINTERP_OK) d.loop.store(L, std::memory_order_release);
    } else if (L->state.load() == life::stopping) {
        // Being stopped by pyinterp_loop_stop(); only non-loop threads get
        // here (a loop thread sees `stopping` and never takes life_mu).
        rc = PYINTERP_ERR_STATE;
    } else if (L->state.load() == life::stopped) {
        std::lock_guard<std::mutex> life_lk(L->life_mu);
        if (L->state.load() == life::stopped) rc = start_locked(L);
    }
    if (rc == PYINTERP_OK) *out = reinterpret_cast<pyinterp_loop*>(L);
    return rc;
}

int pyinterp_loop_set_default_threads(int threads) {
    if (threads < 1 || threads > k_max_threads) return PYINTERP_ERR_INVALID;
    default_loop& d = dflt();
    std::lock_guard<std::mutex> lk(d.mu);
    loop_impl* L = d.loop.load();
    if (L != nullptr) {
        if (L->state.load() != life::stopped) return PYINTERP_ERR_STATE;
        // Threads are fixed per loop object: a stopped default loop with
        // another size is replaced (never freed: its pointer may be held).
        if (static_cast<int>(L->threads.size()) != threads) d.loop.store(nullptr);
    }
    d.threads = threads;
    return PYINTERP_OK;
}

int pyinterp_loop_threads(const pyinterp_loop* loop) {
    return loop != nullptr ? static_cast<int>(reinterpret_cast<const loop_impl*>(loop)->threads.size()) : 0;
}

int pyinterp_loop_call_soon(pyinterp_loop* loop, const pyinterp_loop_task* task, pyinterp_loop_handle** handle) {
    return schedule(loop, task, task_kind::soon, 0, -1, 0, handle);
}

int pyinterp_loop_call_later(pyinterp_loop* loop, uint64_t delay_us, const pyinterp_loop_task* task,
                             pyinterp_loop_handle** handle) {
    return schedule(loop, task, task_kind::later, delay_us, -1, 0, handle);
}

int pyinterp_loop_watch_fd(pyinterp_loop* loop, int fd, int events, const pyinterp_loop_task* task,
                           pyinterp_loop_handle** handle) {
    if (handle != nullptr) *handle = nullptr;
    constexpr int k_known = PYINTERP_LOOP_READ | PYINTERP_LOOP_WRITE | PYINTERP_LOOP_PERSIST;
    if (fd < 0 || (events & ~k_known) != 0 || (events & (PYINTERP_LOOP_READ | PYINTERP_LOOP_WRITE)) == 0)
        return PYINTERP_ERR_INVALID;
    static_assert(PYINTERP_LOOP_READ == EV_READ && PYINTERP_LOOP_WRITE == EV_WRITE &&
                  PYINTERP_LOOP_PERSIST == EV_PERSIST, "loop.h event flags are libevent's");
    return schedule(loop, task, task_kind::fd, 0, fd, events, handle);
}

int pyinterp_loop_cancel(pyinterp_loop_handle* handle) {
    if (handle == nullptr) return PYINTERP_ERR_INVALID;
    item* it = as_item(handle);
    int s = it->state.load(std::memory_order_acquire);
    for (;;) {
        int next;
        if (s == PYINTERP_LOOP_PENDING) next = PYINTERP_LOOP_CANCELLED;
        else if (s == PYINTERP_LOOP_RUNNING && it->kind == task_kind::fd && (it->fd_events & EV_PERSIST) != 0)
            next = k_running_cancelled;
        else if (s == PYINTERP_LOOP_CANCELLED || s == k_running_cancelled) return PYINTERP_OK;
        else return PYINTERP_ERR_STATE;
        if (it->state.compare_exchange_weak(s, next, std::memory_order_acq_rel)) break;
    }
    // Ask the loop thread to take it out and release it now rather than when
    // it comes due.  A stopped loop has released it already.
    loop_thread* t = it->owner;
    std::lock_guard<std::mutex> lk(t->mu);
    if (t->accepting) {
        try {
            t->incoming.push_back(command{true, it});
            it->refs.fetch_add(1, std::memory_order_relaxed);
            wake_locked(t);
        } catch (...) {
            // Out of memory: it is released when it comes due.
        }
    }
    return PYINTERP_OK;
}

int pyinterp_loop_handle_state(const pyinterp_loop_handle* handle) {
    if (handle == nullptr) return PYINTERP_ERR_INVALID;
    int s = as_item(handle)->state.load(std::memory_order_acquire);
    return s == k_running_cancelled ? PYINTERP_LOOP_RUNNING : s;
}

void pyinterp_loop_handle_free(pyinterp_loop_handle* handle) {
    if (handle == nullptr) return;
    item* it = as_item(handle);
    loop_impl* L = it->owner->loop;
    item_unref(it);
    loop_unref(L);
}

}  // extern "C"
