// The requests running in Python now (the in-flight registry), and the
// watchdog thread that looks at them from inside their interpreters.
//
// The executor registers a request once its thread is inside the request's
// interpreter, holding that interpreter's GIL, and takes it out again before
// leaving, the GIL still held.  So a thread that holds an interpreter's GIL
// and finds a request of that interpreter registered knows that the
// request's thread is inside it and cannot leave before that GIL is
// released: its thread state and its frames stay valid meanwhile.  Whoever
// looks at a request from another thread relies on that: it enters the
// request's interpreter through the dispatch library (a cached thread state
// of its own, as an extension's thread would), checks that the request is
// still registered (visit()), and only then reads its stack or acts on it.
//
// Users: the slow-request log (PyInterpSlowRequestTime), request timeouts
// and bounded atexit handlers (interrupt.h, atexit_bound.h), a clean stop,
// and the status page's stacks on demand.  A request carries one deadline
// per kind, and when one passes the watchdog calls the action the host
// installed for that kind, inside the request's interpreter with its GIL
// held; raising an exception in the request's thread there is
// PyThreadState_SetAsyncExc(info.thread_ident, exc), and the request's
// thread sees afterwards which deadlines fired.  A host runs one watchdog
// with every action it needs, and its periodic work in on_tick.
//
// Lock order: a GIL, then the registry's mutex.  The mutex is never held
// while a GIL is awaited, so the status page (which takes only the mutex)
// never waits for an interpreter's GIL.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "log.h"
#include "pyinterp/dispatch.hpp"
#include "pystack.h"

namespace pyinterp::app {

// What a deadline is for.  A new kind is one more value here and one more
// action in watchdog_options.
enum class deadline_kind : unsigned {
    slow = 0,     // PyInterpSlowRequestTime: log the request's stack
    timeout = 1,  // PyInterpRequestTimeout, and the bound of an atexit handler: interrupt it
};
inline constexpr unsigned k_deadline_kinds = 2;

inline constexpr unsigned deadline_bit(deadline_kind k) noexcept {
    return 1u << static_cast<unsigned>(k);
}

// CLOCK_MONOTONIC in nanoseconds: the time base of start times and
// deadlines.  Any thread.
int64_t monotonic_ns() noexcept;

// One request in Python, owned by the thread serving it (on its stack in
// executor::run).  The owner fills the public fields before the first add()
// and does not change them while the request is registered; the strings are
// borrowed and must outlive the request.
class inflight_request {
public:
    const char* group = "";        // the application group ("" is %{GLOBAL})
    const char* url = nullptr;     // what the client asked for, or nullptr (a preload)
    const char* script = nullptr;  // the script file
    int64_t start_ns = 0;          // monotonic_ns() when it began
    // Absolute monotonic times; 0: no such deadline.
    int64_t deadline_ns[k_deadline_kinds] = {};

    inflight_request() noexcept = default;
    inflight_request(const inflight_request&) = delete;
    inflight_request& operator=(const inflight_request&) = delete;

    // The deadlines whose action ran (deadline_bit()).  Any thread; final
    // once the request is no longer registered.
    unsigned fired() const noexcept { return fired_.load(std::memory_order_acquire); }
    // A number naming the request in messages (0 before the first add()).
    uint64_t id() const noexcept { return id_; }

private:
    friend class inflight_registry;
    // Written under the registry's mutex by add() and remove().
    uint64_t id_ = 0;
    const pyinterp_view* view_ = nullptr;  // borrowed from the executor's round
    PyThreadState* tstate_ = nullptr;      // the serving thread's, in view_'s interpreter
    unsigned long thread_ident_ = 0;
    bool registered_ = false;
    std::atomic<unsigned> fired_{0};
    inflight_request* prev_ = nullptr;
    inflight_request* next_ = nullptr;
};

// A copy of what the registry knows of one request: valid on any thread, at
// any time (the request may have ended since).
struct inflight_info {
    uint64_t id = 0;
    std::string group, url, script;
    pyinterp::view view;          // the interpreter it runs in
    std::string interpreter;      // its name in the dispatch library
    int64_t interpreter_id = -1;  // CPython's id (0: main)
    unsigned long thread_ident = 0;
    int64_t start_ns = 0;
    int64_t deadline_ns[k_deadline_kinds] = {};
    unsigned fired = 0;
};

class inflight_registry {
public:
    inflight_registry() noexcept = default;
    inflight_registry(const inflight_registry&) = delete;
    inflight_registry& operator=(const inflight_registry&) = delete;

    // On the thread serving `r`, right after it entered `v`'s interpreter:
    // GIL held.  `v` must stay alive until remove().  A request moving to
    // another interpreter (routed to main) is removed and added again; it
    // keeps its id.
    void add(inflight_request* r, const pyinterp::view& v) noexcept;
    // Before that thread leaves the interpreter: GIL still held.
    void remove(inflight_request* r) noexcept;

    // How many requests are registered.  No GIL.
    int size() const noexcept;

    // Copies of every registered request, oldest first.  No GIL needed.
    std::vector<inflight_info> list() const;

    // The registered requests with a deadline of `kind` that passed at
    // `now_ns` and was not acted on yet.  No GIL needed.
    std::vector<inflight_info> due(deadline_kind kind, int64_t now_ns) const;

    // Calls `fn` for each request of `which` that is still registered in the
    // same interpreter, inside that interpreter with its GIL held, `ts` being
    // the request thread's thread state there.  Interpreters are entered
    // through the dispatch library on the calling thread, one after the
    // other, each once.  The caller holds no GIL; it waits for each GIL in
    // turn.  Returns how many requests `fn` was called for.
    using visit_fn = void (*)(const inflight_info& info, PyThreadState* ts, void* user) noexcept;
    size_t visit(const std::vector<inflight_info>& which, visit_fn fn, void* user) const noexcept;

    // From inside visit()'s `fn`: records that the action of `kind` ran for
    // request `id` (its owner reads it with fired()).
    void mark_fired(uint64_t id, deadline_kind kind) const noexcept;

private:
    inflight_request* find_locked(uint64_t id) const noexcept;
    void copy_locked(const inflight_request& r, inflight_info* out) const;

    mutable std::mutex mu_;  // never held while waiting for a GIL
    inflight_request* head_ = nullptr;
    inflight_request* tail_ = nullptr;
    int size_ = 0;
    uint64_t last_id_ = 0;
};

// A request with its Python stack, as collect_stacks() found it.
struct inflight_stack {
    inflight_info info;
    bool captured = false;  // false: it left Python before its interpreter could be entered
    std::vector<stack_frame> frames;
};

// Every request in flight, each with its stack read inside its own
// interpreter.  The caller holds no GIL; it takes each interpreter's GIL in
// turn (the status page asks the watchdog thread for this, never doing it
// on a worker).
std::vector<inflight_stack> collect_stacks(const inflight_registry& reg);

// The slow-request log entry: PYI0801 with the group, the URL, the
// interpreter, how long it has run and its Python stack, one message per
// line.  Inside the request's interpreter, GIL held (a deadline action).
void log_slow_request(const inflight_info& info, PyThreadState* ts, const log_sink& log) noexcept;

// What the watchdog does when a deadline passes: called on the watchdog
// thread inside the request's interpreter, its GIL held, while the request
// is still inside it.  The deadline is marked fired before the call.
struct deadline_action {
    void (*fn)(const inflight_info& info, PyThreadState* ts, deadline_kind kind, void* user) noexcept = nullptr;
    void* user = nullptr;
};

struct watchdog_options {
    int tick_ms = 100;                          // how often it looks at the deadlines (and calls on_tick)
    deadline_action actions[k_deadline_kinds];  // a kind without an action is not watched
    // Called on every tick, on the watchdog thread, no GIL held (the host's
    // periodic work: sampling counters, answering a request for stacks).
    void (*on_tick)(void* user) noexcept = nullptr;
    void* tick_user = nullptr;
    log_sink log;
};

// A thread that wakes every tick_ms, calls on_tick, and runs the action of
// every deadline that passed, from a short-lived thread per interpreter (so
// that an interpreter whose GIL is held does not delay the others' actions).
// The registry must outlive these threads.
class watchdog {
public:
    watchdog(const inflight_registry& reg, const watchdog_options& opt) noexcept;
    ~watchdog();
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

    // Starts the thread.  False (logged, PYI0803) if it cannot be started.
    bool start() noexcept;

    // Makes the thread tick now instead of at the end of its current wait
    // (the host has work for on_tick).  Any thread; takes no lock (not
    // async-signal-safe all the same: notifying a condition variable is
    // not).  A wake-up that comes just before the thread starts waiting is
    // noticed at the end of that wait, one tick later.  False if the thread
    // was never started.
    bool wake() noexcept;

    // From now on the thread does nothing at its ticks (no on_tick, no
    // deadline action); what it is doing now it finishes, and so do the
    // threads running deadline actions it started.  stop() still
    // ends it.  Async-signal-safe (one lock-free atomic store): for a
    // process about to exit() from a signal handler, whose static objects
    // the thread must not be using meanwhile.
    void hold() noexcept;

    // Asks the thread to stop and waits up to `timeout_ms` for it and for
    // the threads running deadline actions.  True when they ended (their
    // cached thread states released, each on its own thread).
    // False when it is still busy (waiting for a GIL, say): it is left
    // detached, stops on its own later, and Python must not be finalized
    // under it.  No GIL held.
    bool stop(int timeout_ms) noexcept;

private:
    struct shared;
    static void thread_main(const std::shared_ptr<shared>& s) noexcept;
    static void check_deadlines(const std::shared_ptr<shared>& s);
    std::shared_ptr<shared> s_;
};

}  // namespace pyinterp::app
