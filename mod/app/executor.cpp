// The executor (see executor.h).
#include "executor.h"

#include <time.h>

#include <cstring>
#include <string>

#include "app_cache.h"
#include "fallback.h"
#include "interrupt.h"
#include "pyinterp/py/exception.h"
#include "pyinterp/py/ref.h"

namespace pyinterp::app {
namespace {

// Registers a round's request in the registry for the scope's lifetime:
// made right after entering the interpreter and gone before leaving it, the
// GIL held both times (inflight.h).
class registered {
public:
    registered(inflight_registry& reg, inflight_request* job, const pyinterp::view& v) noexcept : reg_(reg), job_(job) {
        reg_.add(job_, v);
    }
    ~registered() { reg_.remove(job_); }
    registered(const registered&) = delete;
    registered& operator=(const registered&) = delete;

private:
    inflight_registry& reg_;
    inflight_request* job_;
};

// At the end of a round, still registered and holding the GIL: an
// interruption (interrupt.h) raised after the request's Python code was
// done is dropped, so that it does not hit this thread's next request.
class late_interrupt_dropped {
public:
    explicit late_interrupt_dropped(const inflight_request& job) noexcept : job_(job) {}
    ~late_interrupt_dropped() {
        if (job_.fired() != 0) drop_late_interrupt();
    }
    late_interrupt_dropped(const late_interrupt_dropped&) = delete;
    late_interrupt_dropped& operator=(const late_interrupt_dropped&) = delete;

private:
    const inflight_request& job_;
};

// Counts a round in its interpreter's slot as in flight (metrics.h).
class counted_in {
public:
    explicit counted_in(metrics::interp_slot* s) noexcept : s_(s) {
        if (s_ != nullptr) s_->in_flight.fetch_add(1, std::memory_order_relaxed);
    }
    ~counted_in() {
        if (s_ != nullptr) s_->in_flight.fetch_sub(1, std::memory_order_relaxed);
    }
    counted_in(const counted_in&) = delete;
    counted_in& operator=(const counted_in&) = delete;

private:
    metrics::interp_slot* s_;
};

// CPU time of the calling thread (user and system), nanoseconds.
int64_t thread_cpu_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// One chance in `every` (see executor_options::cpu_sample_every), picked
// at random per thread (xorshift), so that no pattern of requests (two
// groups alternating on one connection, say) is always or never measured.
bool measure_cpu_now(uint32_t every) noexcept {
    if (every <= 1) return true;
    thread_local uint32_t x = 0;
    if (x == 0) x = (uint32_t(reinterpret_cast<uintptr_t>(&x) >> 4) ^ uint32_t(monotonic_ns())) | 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x % every == 0;
}

// Where an interpreter runs, and why, for the counters: own-GIL
// interpreters and pool members (gil=, interpreters=), shared-GIL
// subinterpreters (gil=shared, or applications moved there), and main
// (%{GLOBAL}, applications moved there).
metrics::placement_info placement_of(const interp_lease& lease) noexcept {
    metrics::placement_info p;
    if (lease.view().id() == 0) {
        p.where = metrics::placement::main;
        p.why = "the main interpreter: %{GLOBAL}, and applications PyInterpSubinterpreterFallback moved here";
    } else if (lease.view().own_gil()) {
        p.where = metrics::placement::own_gil;
        p.why = lease.members() > 1 ? "a member of its application group's pool of own-GIL interpreters "
                                      "(interpreters=N)"
                                    : "a subinterpreter with a GIL of its own (gil=auto or gil=own)";
    } else {
        p.where = metrics::placement::shared_gil;
        p.why =
            "a subinterpreter sharing the main interpreter's GIL (gil=shared, Python 3.11 or before 3.12.4, or "
            "an extension refused an own GIL)";
    }
    p.pool_member = lease.member() > 0 ? lease.member() - 1 : 0;
    p.pool_size = lease.members() > 1 ? lease.members() : 1;
    return p;
}

// Counts a run as in flight for its lifetime.
class counted {
public:
    explicit counted(std::atomic<int>& n) noexcept : n_(n) { n_.fetch_add(1, std::memory_order_relaxed); }
    ~counted() { n_.fetch_sub(1, std::memory_order_relaxed); }
    counted(const counted&) = delete;
    counted& operator=(const counted&) = delete;

private:
    std::atomic<int>& n_;
};

// The directive that pins `t` in a shared-GIL subinterpreter.
std::string pin_shared(const request_target& t) {
    if (t.alias_url != nullptr)
        return std::string("gil=shared on its 'PyInterpScriptAlias ") + (*t.alias_url ? t.alias_url : "/") +
               "' (or 'PyInterpApplicationGroup " + shown_group(t.group) + " gil=shared')";
    return std::string("'PyInterpApplicationGroup ") + shown_group(t.group) + " gil=shared'";
}

// The refusals carried by a NeedsSharedGil, described.  GIL held.
std::string refusals_of(PyObject* exc) {
    py::ref args = py::ref::steal(exc ? PyObject_GetAttrString(exc, "args") : nullptr);
    PyObject* refused = args && PyTuple_Check(args.get()) && PyTuple_GET_SIZE(args.get()) > 0
                            ? PyTuple_GET_ITEM(args.get(), 0)
                            : nullptr;  // borrowed from args
    PyErr_Clear();
    return fallback_describe(refused);
}

}  // namespace

// What one round in one interpreter came to.
struct executor::round {
    run_result result;
    bool moved = false;                // the application moves on to `move`
    placement move = placement::main;  // where (a step below the round's)
    bool abandon = false;              // and no application is left in the interpreter it leaves

    // For the counters: the interpreter's slot, the wait to enter it and
    // the CPU time inside it.
    metrics::interp_slot* slot = nullptr;
    int64_t gil_wait_ns = 0;
    int64_t cpu_ns = 0;
};

pyinterp::view executor::place(const request_target& t) noexcept {
    int status = PYINTERP_OK;
    placement where = current_placement(t);
    request_target here = t;
    if (where == placement::main) here.group = "";
    interp_lease lease = interps_.acquire(here, where, 0, &status);
    return lease ? lease.view() : pyinterp::view();
}

bool executor::prepare(interp_state* st) noexcept {
    if (st->ready) return true;
    // No Python code runs between the check above and the flag below (only
    // C calls that do not release the GIL, unless the host's setup or the
    // hook's module does), so two threads do not both set an interpreter up.
    // The import hook first: with an own GIL it must see every extension
    // module before it loads, the ones the host's setup imports too.
    if (!fallback_install(st)) return false;
    if (opt_.setup_interpreter != nullptr && !opt_.setup_interpreter(st, opt_.setup_user)) return false;
    st->ready = 1;
    return true;
}

// The interpreter's counters: a slot of this executor's child_metrics,
// given the first time the executor enters it (the interpreter may have
// been set up without counters, or by another executor).  GIL held.
metrics::interp_slot* executor::slot_of(interp_state* st, const interp_lease& lease, const char* group) noexcept {
    if (st->metrics_owner != opt_.metrics) {
        st->metrics =
            opt_.metrics != nullptr ? opt_.metrics->slot_for(lease.view(), group, placement_of(lease)) : nullptr;
        st->metrics_owner = opt_.metrics;
    }
    return st->metrics;
}

// With NeedsSharedGil pending after a failed load in an own-GIL interpreter.
// gil=auto: records the move to a shared-GIL subinterpreter, logs it and
// returns true; gil=own: logs why the application cannot run, leaves the
// load's own exception pending and returns false.
bool executor::move_to_shared(interp_state* st, const request_target& t, const log_sink& to, round* out) noexcept {
    py::ref exc = py::take_exception();
    std::string why;
    try {
        why = refusals_of(exc.get());
        if (t.gil == gil_mode::own) {
            app::log(to, level::error,
                     "PYI0217: application '%s' cannot run with its own GIL in application group '%s' (gil=own): %s. "
                     "To fix: gil=auto (moves it to a shared-GIL subinterpreter) or %s",
                     t.script, shown_group(t.group), why.c_str(), pin_shared(t).c_str());
            py::ref cause = py::ref::steal(exc ? PyException_GetCause(exc.get()) : nullptr);
            if (cause)
                PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(cause.get())), cause.get());
            else
                PyErr_SetString(PyExc_ImportError, why.c_str());
            return false;
        }
        if (record_move(t.script, t.group, placement::shared, nullptr))
            app::log(opt_.log, level::warn,
                     "PYI0216: application '%s' moved from an own-GIL interpreter to a shared-GIL subinterpreter of "
                     "application group '%s' (gil=auto): %s. To place it there from the start: %s",
                     t.script, shown_group(t.group), why.c_str(), pin_shared(t).c_str());
    } catch (...) {
        PyErr_Clear();
        if (t.gil == gil_mode::own) {
            PyErr_NoMemory();
            return false;
        }
        record_move(t.script, t.group, placement::shared, nullptr);
    }
    out->moved = true;
    out->move = placement::shared;
    out->abandon = PyDict_Size(st->apps) == 0;
    out->result = {run_result::refused, 0};
    return true;
}

// After a request in an own-GIL interpreter that imported extension modules
// refused there (the request got the ImportError): with gil=auto the
// application's later requests go to a shared-GIL subinterpreter.  GIL held.
void executor::late_refusals(interp_state* st, const request_target& t, const interp_lease& lease,
                             const log_sink& to) noexcept {
    py::ref late = fallback_take_late(st);
    if (!late || PyList_GET_SIZE(late.get()) == 0) {
        PyErr_Clear();
        return;
    }
    try {
        std::string why = fallback_describe(late.get());
        bool moving = t.gil != gil_mode::own;
        if (moving && !record_move(t.script, t.group, placement::shared, nullptr)) return;
        app::log(to, moving ? level::warn : level::error,
                 "PYI0219: application '%s' imported %s while serving a request in own-GIL interpreter '%s' of "
                 "application group '%s'; the import raised ImportError there. %s",
                 t.script, why.c_str(), lease.view().name(), shown_group(t.group),
                 moving ? ("Its later requests go to a shared-GIL subinterpreter (gil=auto); to place it there "
                           "from the start: " +
                           pin_shared(t))
                              .c_str()
                        : ("gil=own keeps it there; gil=auto or " + pin_shared(t) + " moves it").c_str());
    } catch (...) {
        // Out of memory: no message, no move.
    }
}

// One round: enter the lease's interpreter, load, serve.  False when the
// entry was refused (out->result says why); the GIL is held only inside.
bool executor::run_in(const interp_lease& lease, const request_target& t, const protocol& p, void* request,
                      inflight_request* job, round* out) noexcept {
    log_sink to{p.log != nullptr ? p.log : opt_.log.fn, p.log != nullptr ? request : opt_.log.user};
    const pyinterp::view& v = lease.view();
    int64_t before = monotonic_ns();
    pyinterp::scoped_enter in(v);
    if (!in) {
        out->result = {run_result::cannot_enter, in.status()};
        return false;
    }
    // From here to the end of the scope this thread holds the interpreter's GIL.
    out->gil_wait_ns = monotonic_ns() - before;
    registered inside(inflight_, job, v);
    late_interrupt_dropped late(*job);
    py::ref module = private_module();
    interp_state* st = module ? state_of(module.get()) : nullptr;
    if (st == nullptr || !prepare(st)) {
        log_exception(to, "PYI0604: cannot prepare the interpreter");
        out->result = {run_result::cannot_prepare, 0};
        return true;
    }
    out->slot = slot_of(st, lease, t.group);
    counted_in busy(out->slot);
    uint32_t every = opt_.cpu_sample_every;
    bool measure = out->slot != nullptr && measure_cpu_now(every);
    int64_t cpu = measure ? thread_cpu_ns() : 0;
    load_and_serve(st, lease, t, p, request, to, out);
    if (measure) out->cpu_ns = (thread_cpu_ns() - cpu) * (every > 1 ? every : 1);
    return true;
}

// Inside the interpreter: load the application, then serve it, or move it.
void executor::load_and_serve(interp_state* st, const interp_lease& lease, const request_target& t, const protocol& p,
                              void* request, const log_sink& to, round* out) noexcept {
    const pyinterp::view& v = lease.view();
    py::ref callable = load_application(st, t, opt_.log);
    if (opt_.observe_load != nullptr && lease.where() != placement::main)
        opt_.observe_load(st, lease.where(), v, opt_.observe_user);
    if (!callable && fallback_pending(st)) {
        out->moved = fallback_after_load(t, to, opt_.log);
        out->move = placement::main;
        if (out->moved && st->metrics != nullptr) st->metrics->routed_away.fetch_add(1, std::memory_order_relaxed);
        // The interpreter the application leaves is ended when no other
        // application lives in it, so a move does not leak it.
        out->abandon = out->moved && PyDict_Size(st->apps) == 0;
        out->result = {run_result::refused, 0};
        return;
    }
    if (!callable && fallback_shared_pending(st) && move_to_shared(st, t, to, out)) return;
    if (!callable) {
        out->result = {run_result::load_failed, p.load_failed(t, request)};
        return;
    }
    application app{callable.get(), st, t.group, v.name(), v.id(), lease.where(), lease.member(), lease.members()};
    out->result = {run_result::served, p.serve(app, t, request)};
    if (st->late_refusals != 0) late_refusals(st, t, lease, to);
}

void executor::end_abandoned(const pyinterp::view& v, const request_target& t, const log_sink& to) noexcept {
    int64_t id = v.id();
    int end = v.end(opt_.abandon_end_timeout_ms);
    if (end == PYINTERP_OK && opt_.metrics != nullptr) opt_.metrics->interpreter_ended(id);
    if (end == PYINTERP_OK)
        app::log(to, level::info,
                 "PYI0214: ended interpreter '%s' of application group '%s': no application left in it", v.name(),
                 t.group);
    else if (end != PYINTERP_ERR_GONE)
        app::log(to, level::warn, "PYI0215: cannot end interpreter '%s' of application group '%s' yet: %s", v.name(),
                 t.group, pyinterp_strerror(end));
}

// The request as the in-flight registry sees it, with its deadlines.
void executor::describe(const request_target& t, inflight_request* job) noexcept {
    job->group = t.group;
    job->url = t.url;
    job->script = t.script;
    job->start_ns = monotonic_ns();
    if (t.slow_request_ms > 0)
        job->deadline_ns[unsigned(deadline_kind::slow)] = job->start_ns + int64_t(t.slow_request_ms) * 1000000;
    if (t.request_timeout_ms > 0)
        job->deadline_ns[unsigned(deadline_kind::timeout)] = job->start_ns + int64_t(t.request_timeout_ms) * 1000000;
}

// A request whose stack the slow-request log showed: its end, with its
// total time.
void executor::log_slow_end(const inflight_request& job, const log_sink& to) noexcept {
    if ((job.fired() & deadline_bit(deadline_kind::slow)) == 0) return;
    app::log(to, level::warn, "PYI0802: slow request #%llu: %s in application group '%s' ended after %.1f s",
             static_cast<unsigned long long>(job.id()), job.url != nullptr ? job.url : job.script,
             shown_group(job.group), double(monotonic_ns() - job.start_ns) / 1e9);
}

run_result executor::run(const request_target& t, const protocol& p, void* request) noexcept {
    return run_member(t, p, request, 0);
}

run_result executor::run_everywhere(const request_target& t, const protocol& p, void* request) noexcept {
    run_result r = run_member(t, p, request, 1);
    for (int m = 2; r.what == run_result::served; ++m) {
        // The application may have moved out of its pool meanwhile.
        placement where = current_placement(t);
        if (m > interpreter_table::pool_size(t, where)) break;
        r = run_member(t, p, request, m);
    }
    return r;
}

run_result executor::run_member(const request_target& t, const protocol& p, void* request, int member) noexcept {
    counted busy(in_flight_);
    log_sink to{p.log != nullptr ? p.log : opt_.log.fn, p.log != nullptr ? request : opt_.log.user};
    inflight_request job;
    describe(t, &job);
    run_result out = run_rounds(t, p, request, member, &job, to);
    log_slow_end(job, to);
    return out;
}

run_result executor::run_rounds(const request_target& t, const protocol& p, void* request, int member,
                                inflight_request* job, const log_sink& to) noexcept {
    // An application once moved (placement.h) goes straight where it moved.
    // At most three rounds: own GIL, shared GIL, main.
    placement where = current_placement(t);
    int64_t gil_wait = 0, cpu = 0;
    for (int attempt = 0; attempt < 3; ++attempt) {
        request_target here = t;
        if (where == placement::main) here.group = "";
        int status = PYINTERP_OK;
        interp_lease lease = interps_.acquire(here, where, member, &status);
        if (!lease) return refused(p, {run_result::no_interpreter, 0});
        round r;
        bool entered = run_in(lease, here, p, request, job, &r);
        gil_wait += r.gil_wait_ns;
        cpu += r.cpu_ns;
        if (!entered) {
            // Lost a race with a request that moved this application and
            // ended the interpreter it had left.
            placement now = current_placement(t);
            if (r.result.status == PYINTERP_ERR_GONE && now > where) {
                where = now;
                continue;
            }
            app::log(to, level::error, "PYI0603: cannot enter application group '%s': %s", here.group,
                     pyinterp_strerror(r.result.status));
            return refused(p, r.result);
        }
        if (!r.moved) {
            // Counted before the end of the response goes out: a client
            // that has its response finds its request counted.
            count(p, request, r, job->start_ns, gil_wait, cpu);
            if (r.result.what == run_result::served && p.after_leave != nullptr)
                p.after_leave(r.result.status, request);
            return r.result;
        }
        if (r.abandon) end_abandoned(lease.view(), here, to);
        if (r.move <= where) break;  // cannot happen, but never loop
        where = r.move;
        member = 0;
    }
    return {run_result::refused, 0};
}

// A request served (or failed) in an interpreter, in that interpreter's
// counters.  Runs that are not requests (preloads) have no outcome.
void executor::count(const protocol& p, void* request, const round& r, int64_t start_ns, int64_t gil_wait_ns,
                     int64_t cpu_ns) noexcept {
    if (p.outcome == nullptr || opt_.metrics == nullptr) return;
    if (r.slot == nullptr) {
        opt_.metrics->count_untracked();
        return;
    }
    response_outcome o = p.outcome(r.result, request);
    metrics::request_sample sample;
    sample.http_status = o.http_status;
    sample.exception = o.exception;
    sample.latency_ns = monotonic_ns() - start_ns;
    sample.gil_wait_ns = gil_wait_ns;
    sample.cpu_ns = cpu_ns;
    metrics::record_request(r.slot, sample);
}

// A request that found no interpreter to enter.
run_result executor::refused(const protocol& p, const run_result& result) noexcept {
    if (p.outcome != nullptr && opt_.metrics != nullptr) opt_.metrics->count_refused();
    return result;
}

}  // namespace pyinterp::app
