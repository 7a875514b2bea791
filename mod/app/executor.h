// The executor: the one place where a request (or a PyInterpImportScript
// preload) meets Python.  Given a request_target, it
//
//   1. places it (placement.h): where its application runs now (an own-GIL
//      interpreter, a shared-GIL subinterpreter, main), and the interpreter
//      there: the group's, or the least busy member of its pool, created on
//      first use;
//   2. enters that interpreter on the calling thread through the dispatch
//      library (a cached thread state per thread and interpreter; a thread
//      never holds two GILs);
//   3. sets the interpreter up the first time (the import hook, then the
//      host's setup hook);
//   4. loads the application (app_cache.h), under the import hook;
//   5. hands the already-loaded application to the protocol (serve);
//   6. leaves the interpreter and lets the protocol finish without the GIL
//      (after_leave);
//
// and, when the application cannot run where it is, moves it one step down
// and goes round again: from an own-GIL interpreter to a shared-GIL one
// (gil=auto; an extension refused there failed its load, PYI0216), and from
// a subinterpreter to main (PyInterpSubinterpreterFallback route, PYI0210),
// ending the interpreter it left if no application is left in it.  At most
// three rounds; the move is remembered for the process.  No httpd here: the
// httpd module, `pyinterp doctor` and the unit tests drive the same
// executor.
//
// Where later work plugs in:
//   * per-interpreter counters (metrics.h): each interpreter gets a slot
//     the first time the executor enters it (slot_of); run_in() measures the wait to
//     enter (the scoped_enter) and the CPU time inside, count() adds a
//     request to its interpreter's slot before the end of the response;
//   * in-flight requests: every round registers its request in inflight()
//     while its thread is inside the interpreter (inflight.h), with the
//     target's deadlines; a watchdog thread reads their stacks (slow
//     requests, the status page) and runs the action of a passed deadline
//     inside the request's interpreter (request timeouts, a clean stop).
#pragma once

#include <Python.h>

#include <atomic>
#include <cstdint>

#include "inflight.h"
#include "interp_state.h"
#include "log.h"
#include "metrics.h"
#include "placement.h"
#include "pyinterp/dispatch.hpp"
#include "target.h"

namespace pyinterp::app {

// What the executor hands the protocol: an application that is loaded, and
// where it runs.
struct application {
    PyObject* callable = nullptr;       // the application object (borrowed)
    interp_state* state = nullptr;      // its interpreter's state
    const char* group = "";             // the group it runs in ("" once routed to main)
    const char* interpreter = "";       // the dispatch library's name of the interpreter
    int64_t interpreter_id = 0;         // CPython's interpreter id (0: main)
    placement where = placement::main;  // where that interpreter is (placement_name())
    int pool_member = 0;                // its position in the group's pool, 1-based (0: main)
    int pool_size = 0;                  // the pool's size (1: no pool; 0: main)
};

struct run_result;

// What the client got, for the counters (metrics.h).
struct response_outcome {
    int http_status = 0;     // the response's status; 0: none
    bool exception = false;  // the application raised (or could not be loaded)
};

// The protocol side of one run, as a function table (NGINX Unit hands its
// language modules a loaded application the same way); `request` is the
// protocol's own, passed back to every call.
struct protocol {
    const char* name;
    // Inside the application's interpreter, its GIL held: serve the request
    // with the loaded application.  Returns the status run() reports.
    int (*serve)(const application& app, const request_target& t, void* request) noexcept;
    // GIL held, with the load's exception set: report it (and clear it).
    // Returns the status run() reports.
    int (*load_failed)(const request_target& t, void* request) noexcept;
    // After the interpreter was left, no GIL: finish what serve() left for
    // then (the end of the response, say).  `status`: what serve returned.
    // May be nullptr.
    void (*after_leave)(int status, void* request) noexcept;
    // Where messages about this request go (PYI0211, PYI0603...).  Any GIL
    // state.  nullptr: the executor's own log.
    log_fn log;
    // What the client got, given what run() will return; called once per
    // run that reached an interpreter, before after_leave, no GIL held.
    // nullptr: the run is not a request and is not counted (a preload).
    response_outcome (*outcome)(const run_result& result, void* request) noexcept;
};

// Outcome of executor::run().
struct run_result {
    enum kind {
        served,          // serve() ran: `status` is what it returned
        load_failed,     // the application could not be loaded: `status` is what load_failed() returned
        refused,         // the fallback policy refused the application (logged)
        no_interpreter,  // the group's interpreter could not be created (logged)
        cannot_enter,    // the interpreter refused the entry: `status` is the dispatch status (logged)
        cannot_prepare,  // the interpreter could not be set up (logged)
    };
    kind what = served;
    int status = 0;
};

struct executor_options {
    log_sink log;  // process-wide messages: interpreters created, scripts loaded, routes
    // GIL held, inside an interpreter the executor enters for the first time
    // (the host's own setup: sys.stdout and sys.stderr, say).  False with an
    // exception set.  May be nullptr.
    bool (*setup_interpreter)(interp_state* st, void* user) noexcept = nullptr;
    void* setup_user = nullptr;
    // How long ending an interpreter left empty by a move waits for other
    // requests still inside it (it refuses new entries meanwhile).
    int abandon_end_timeout_ms = 2000;
    // This process's counters (metrics.h), or nullptr: nothing counted.
    metrics::child_metrics* metrics = nullptr;
    // Reading a thread's CPU clock is a system call (Linux has no vDSO path
    // for it): about a microsecond on a virtual machine, several percent
    // of a small request if done twice for each.  So the CPU time inside an
    // interpreter is read on one request in `cpu_sample_every` of each
    // thread, at random, and counted that many times: an estimate, right on
    // average.  1: every request.
    uint32_t cpu_sample_every = 8;
    // GIL held, in a subinterpreter, after every load of an application's
    // script there (successful or not, its exception still pending), with
    // the interpreter's placement: `pyinterp doctor` reads the import hook's
    // report of the load.  Must leave the pending exception as it is.  May
    // be nullptr.
    void (*observe_load)(interp_state* st, app::placement where, const pyinterp::view& v,
                         void* user) noexcept = nullptr;
    void* observe_user = nullptr;
};

class executor {
public:
    explicit executor(const executor_options& options) noexcept : opt_(options), interps_(options.log) {}
    executor(const executor&) = delete;
    executor& operator=(const executor&) = delete;

    // Runs the protocol for `t` (see the top of this file).  Called with no
    // GIL held, returns with none.  The Python runtime (dispatch library)
    // must be initialised.
    run_result run(const request_target& t, const protocol& p, void* request) noexcept;

    // run() once for every member of t's pool (PyInterpImportScript: the
    // application is loaded into each), or once without a pool.  The result
    // of the first run that did not serve, else of the last.  No GIL held.
    run_result run_everywhere(const request_target& t, const protocol& p, void* request) noexcept;

    // The interpreter that serves `t` now (its current placement; the least
    // busy member of a pool), created on first use.  No GIL held.  An empty
    // view on failure (logged).
    pyinterp::view place(const request_target& t) noexcept;

    // Runs inside Python now (between entering and leaving).  No GIL.
    int in_flight() const noexcept { return in_flight_.load(std::memory_order_relaxed); }

    // The requests inside an interpreter now, for a watchdog (inflight.h).
    const inflight_registry& inflight() const noexcept { return inflight_; }
    // The same, for what runs in Python outside requests and is watched like
    // them (bounded atexit handlers, atexit_bound.h).
    inflight_registry& inflight() noexcept { return inflight_; }

    const log_sink& log() const noexcept { return opt_.log; }

private:
    struct round;
    run_result run_member(const request_target& t, const protocol& p, void* request, int member) noexcept;
    run_result run_rounds(const request_target& t, const protocol& p, void* request, int member, inflight_request* job,
                          const log_sink& to) noexcept;
    bool run_in(const interp_lease& lease, const request_target& t, const protocol& p, void* request,
                inflight_request* job, round* out) noexcept;
    static void describe(const request_target& t, inflight_request* job) noexcept;
    static void log_slow_end(const inflight_request& job, const log_sink& to) noexcept;
    void load_and_serve(interp_state* st, const interp_lease& lease, const request_target& t, const protocol& p,
                        void* request, const log_sink& to, round* out) noexcept;
    void count(const protocol& p, void* request, const round& r, int64_t start_ns, int64_t gil_wait_ns,
               int64_t cpu_ns) noexcept;
    run_result refused(const protocol& p, const run_result& result) noexcept;
    bool prepare(interp_state* st) noexcept;
    metrics::interp_slot* slot_of(interp_state* st, const interp_lease& lease, const char* group) noexcept;
    bool move_to_shared(interp_state* st, const request_target& t, const log_sink& to, round* out) noexcept;
    void late_refusals(interp_state* st, const request_target& t, const interp_lease& lease,
                       const log_sink& to) noexcept;
    void end_abandoned(const pyinterp::view& v, const request_target& t, const log_sink& to) noexcept;

    executor_options opt_;
    std::atomic<int> in_flight_{0};
    inflight_registry inflight_;
    interpreter_table interps_;
};

}  // namespace pyinterp::app
