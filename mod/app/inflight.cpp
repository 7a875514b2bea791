// The in-flight registry and the watchdog (see inflight.h).
#include "inflight.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "target.h"

namespace pyinterp::app {

int64_t monotonic_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ---------------------------------------------------------------- registry

void inflight_registry::add(inflight_request* r, const pyinterp::view& v) noexcept {
    // The GIL is held: the current thread state is this thread's.
    PyThreadState* ts = PyThreadState_Get();
    std::lock_guard<std::mutex> lk(mu_);
    if (r->id_ == 0) r->id_ = ++last_id_;
    r->view_ = v.get();
    r->tstate_ = ts;
    r->thread_ident_ = ts->thread_id;
    r->registered_ = true;
    r->next_ = nullptr;
    r->prev_ = tail_;
    if (tail_ != nullptr)
        tail_->next_ = r;
    else
        head_ = r;
    tail_ = r;
    ++size_;
}

void inflight_registry::remove(inflight_request* r) noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    if (!r->registered_) return;
    if (r->prev_ != nullptr)
        r->prev_->next_ = r->next_;
    else
        head_ = r->next_;
    if (r->next_ != nullptr)
        r->next_->prev_ = r->prev_;
    else
        tail_ = r->prev_;
    r->prev_ = r->next_ = nullptr;
    r->registered_ = false;
    r->view_ = nullptr;
    r->tstate_ = nullptr;
    --size_;
}

int inflight_registry::size() const noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    return size_;
}

inflight_request* inflight_registry::find_locked(uint64_t id) const noexcept {
    for (inflight_request* r = head_; r != nullptr; r = r->next_)
        if (r->id_ == id) return r;
    return nullptr;
}

void inflight_registry::copy_locked(const inflight_request& r, inflight_info* out) const {
    out->id = r.id_;
    out->group = r.group;
    out->url = r.url != nullptr ? r.url : "";
    out->script = r.script != nullptr ? r.script : "";
    // The round's view lives while the request is registered.
    out->view = pyinterp::view(pyinterp_view_copy(r.view_));
    out->interpreter = pyinterp_view_name(r.view_);
    out->interpreter_id = pyinterp_view_id(r.view_);
    out->thread_ident = r.thread_ident_;
    out->start_ns = r.start_ns;
    std::copy(std::begin(r.deadline_ns), std::end(r.deadline_ns), std::begin(out->deadline_ns));
    out->fired = r.fired_.load(std::memory_order_relaxed);
}

std::vector<inflight_info> inflight_registry::list() const {
    std::vector<inflight_info> out;
    std::lock_guard<std::mutex> lk(mu_);
    out.resize(size_t(size_));
    size_t i = 0;
    for (inflight_request* r = head_; r != nullptr; r = r->next_) copy_locked(*r, &out[i++]);
    return out;
}

std::vector<inflight_info> inflight_registry::due(deadline_kind kind, int64_t now_ns) const {
    std::vector<inflight_info> out;
    auto k = static_cast<unsigned>(kind);
    std::lock_guard<std::mutex> lk(mu_);
    for (inflight_request* r = head_; r != nullptr; r = r->next_) {
        int64_t when = r->deadline_ns[k];
        if (when == 0 || when > now_ns || (r->fired_.load(std::memory_order_relaxed) & deadline_bit(kind)) != 0)
            continue;
        out.emplace_back();
        copy_locked(*r, &out.back());
    }
    return out;
}

void inflight_registry::mark_fired(uint64_t id, deadline_kind kind) const noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    if (inflight_request* r = find_locked(id)) r->fired_.fetch_or(deadline_bit(kind), std::memory_order_acq_rel);
}

size_t inflight_registry::visit(const std::vector<inflight_info>& which, visit_fn fn, void* user) const noexcept {
    // One entry per interpreter: visit them grouped.
    std::vector<const inflight_info*> order;
    try {
        order.reserve(which.size());
        for (const inflight_info& i : which) order.push_back(&i);
    } catch (...) {
        return 0;
    }
    std::stable_sort(order.begin(), order.end(), [](const inflight_info* a, const inflight_info* b) {
        return a->interpreter_id < b->interpreter_id;
    });
    size_t visited = 0;
    for (size_t i = 0; i < order.size();) {
        size_t end = i;
        while (end < order.size() && order[end]->interpreter_id == order[i]->interpreter_id) ++end;
        pyinterp::scoped_enter in(order[i]->view);  // refused: the interpreter is ending; skip its requests
        for (; in && i < end; ++i) {
            const inflight_info& info = *order[i];
            PyThreadState* ts = nullptr;
            {
                std::lock_guard<std::mutex> lk(mu_);
                inflight_request* r = find_locked(info.id);
                if (r != nullptr && r->view_ != nullptr && pyinterp_view_id(r->view_) == info.interpreter_id)
                    ts = r->tstate_;
            }
            // Still registered in this interpreter, whose GIL we hold: its
            // thread cannot leave (nor free `ts`) until we release it.
            if (ts == nullptr) continue;
            fn(info, ts, user);
            ++visited;
        }
        i = end;
    }
    return visited;
}

// ---------------------------------------------------------------- stacks

namespace {

void capture_stack(const inflight_info& info, PyThreadState* ts, void* user) noexcept {
    auto* out = static_cast<std::vector<inflight_stack>*>(user);
    for (inflight_stack& s : *out) {
        if (s.info.id != info.id) continue;
        s.frames = python_stack(ts);
        s.captured = true;
        return;
    }
}

}  // namespace

std::vector<inflight_stack> collect_stacks(const inflight_registry& reg) {
    std::vector<inflight_info> now = reg.list();
    std::vector<inflight_stack> out(now.size());
    for (size_t i = 0; i < now.size(); ++i) out[i].info = now[i];
    reg.visit(now, capture_stack, &out);
    return out;
}

void log_slow_request(const inflight_info& info, PyThreadState* ts, const log_sink& log) noexcept {
    double elapsed = double(monotonic_ns() - info.start_ns) / 1e9;
    std::vector<stack_frame> frames = python_stack(ts);
    app::log(log, level::warn,
             "PYI0801: slow request #%llu: %s in application group '%s' (interpreter '%s', id %lld) has run for "
             "%.1f s; its Python stack (most recent call last):",
             static_cast<unsigned long long>(info.id), info.url.empty() ? info.script.c_str() : info.url.c_str(),
             shown_group(info.group.c_str()), info.interpreter.c_str(), static_cast<long long>(info.interpreter_id),
             elapsed);
    if (frames.empty())
        app::log(log, level::warn, "PYI0801: #%llu   (no Python frame)", static_cast<unsigned long long>(info.id));
    for (const stack_frame& f : frames)
        app::log(log, level::warn, "PYI0801: #%llu   File \"%s\", line %d, in %s",
                 static_cast<unsigned long long>(info.id), f.file.c_str(), f.line, f.function.c_str());
}

// ---------------------------------------------------------------- watchdog

// The state the watchdog thread shares with its owner; the thread keeps it
// alive when it is left detached.
struct watchdog::shared {
    const inflight_registry& reg;
    watchdog_options opt;
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    bool done = false;
    std::atomic<bool> started{false};  // for wake(), which must not look at `thread`
    std::atomic<bool> woken{false};    // wake(): tick now
    std::atomic<bool> held{false};     // hold(): do nothing more
    std::thread thread;
    // Under mu: the interpreters a visitor thread is in, or waiting for the
    // GIL of, now; how many visitor threads are alive.
    std::vector<int64_t> visiting;
    int visitors = 0;

    shared(const inflight_registry& r, const watchdog_options& o) : reg(r), opt(o) {}
};

namespace {

struct deadline_visit {
    const inflight_registry* reg;
    deadline_kind kind;
    deadline_action action;
};

void run_action(const inflight_info& info, PyThreadState* ts, void* user) noexcept {
    auto* v = static_cast<deadline_visit*>(user);
    v->reg->mark_fired(info.id, v->kind);
    v->action.fn(info, ts, v->kind, v->action.user);
}

// The due requests of one interpreter, acted on by a visitor thread.
struct interpreter_visit {
    std::vector<inflight_info> due;
    deadline_visit v;
};

}  // namespace

// One look at the deadlines.  Each interpreter's due requests go to a thread
// of its own, which enters that interpreter, runs the actions and ends: the
// watchdog thread itself waits for no GIL.  With own GILs, a request that
// keeps its interpreter's GIL in C (where no exception reaches it) would
// otherwise hold up the deadlines of every other interpreter until it
// returns.  An interpreter whose visitor is still waiting for its GIL gets
// no second one; its requests stay due until that one is done.  No GIL held.
void watchdog::check_deadlines(const std::shared_ptr<shared>& s) {
    const inflight_registry& reg = s->reg;
    if (reg.size() == 0) return;
    int64_t now = monotonic_ns();
    std::vector<std::shared_ptr<interpreter_visit>> work;
    for (unsigned k = 0; k < k_deadline_kinds; ++k) {
        if (s->opt.actions[k].fn == nullptr) continue;
        auto kind = static_cast<deadline_kind>(k);
        for (inflight_info& info : reg.due(kind, now)) {
            auto it = std::find_if(work.begin(), work.end(), [&](const std::shared_ptr<interpreter_visit>& w) {
                return w->v.kind == kind && w->due.front().interpreter_id == info.interpreter_id;
            });
            if (it == work.end()) {
                work.push_back(std::make_shared<interpreter_visit>(
                    interpreter_visit{{}, deadline_visit{&reg, kind, s->opt.actions[k]}}));
                it = work.end() - 1;
            }
            (*it)->due.push_back(std::move(info));
        }
    }
    for (const std::shared_ptr<interpreter_visit>& w : work) {
        int64_t id = w->due.front().interpreter_id;
        {
            std::lock_guard<std::mutex> lk(s->mu);
            if (std::find(s->visiting.begin(), s->visiting.end(), id) != s->visiting.end()) continue;
            s->visiting.push_back(id);
            ++s->visitors;
        }
        // A visitor counts as alive until it has also deleted the thread
        // states it cached (on its own thread, with their GILs): stop()
        // waits for that, and Python is finalized only after stop().
        auto visit = [s, w, id](bool own_thread) noexcept {
            s->reg.visit(w->due, run_action, &w->v);
            if (own_thread) pyinterp_thread_release();
            std::lock_guard<std::mutex> lk(s->mu);
            s->visiting.erase(std::find(s->visiting.begin(), s->visiting.end(), id));
            --s->visitors;
            s->cv.notify_all();
        };
        try {
            std::thread([visit]() noexcept { visit(true); }).detach();
        } catch (...) {
            visit(false);  // no thread: from here
        }
    }
}

void watchdog::thread_main(const std::shared_ptr<shared>& s) noexcept {
    auto tick = std::chrono::milliseconds(s->opt.tick_ms > 0 ? s->opt.tick_ms : 100);
    for (;;) {
        {
            std::unique_lock<std::mutex> lk(s->mu);
            s->cv.wait_for(lk, tick, [&] { return s->stop || s->woken.load(std::memory_order_acquire); });
            if (s->stop) break;
            s->woken.store(false, std::memory_order_relaxed);
        }
        if (s->held.load(std::memory_order_acquire)) continue;
        if (s->opt.on_tick != nullptr) s->opt.on_tick(s->opt.tick_user);
        try {
            check_deadlines(s);
        } catch (...) {
            // Out of memory: try again next tick.
        }
    }
    // The thread states this thread cached, deleted here, each with its
    // own GIL (the dispatch library would do it at thread exit as well).
    pyinterp_thread_release();
    std::lock_guard<std::mutex> lk(s->mu);
    s->done = true;
    s->cv.notify_all();
}

watchdog::watchdog(const inflight_registry& reg, const watchdog_options& opt) noexcept {
    try {
        s_ = std::make_shared<shared>(reg, opt);
    } catch (...) {
        s_ = nullptr;
    }
}

watchdog::~watchdog() {
    stop(1000);
}

bool watchdog::start() noexcept {
    if (s_ == nullptr) return false;  // out of memory at construction
    if (s_->thread.joinable()) return true;
    try {
        std::shared_ptr<shared> s = s_;
        s_->thread = std::thread([s] { thread_main(s); });
        s_->started.store(true, std::memory_order_release);
    } catch (...) {
        app::log(s_->opt.log, level::error,
                 "PYI0803: cannot start the watchdog thread: slow requests are not logged, request timeouts "
                 "not enforced, and the status page shows no stacks");
        return false;
    }
    return true;
}

bool watchdog::wake() noexcept {
    if (s_ == nullptr || !s_->started.load(std::memory_order_acquire)) return false;
    s_->woken.store(true, std::memory_order_release);
    s_->cv.notify_all();
    return true;
}

static_assert(std::atomic<bool>::is_always_lock_free, "watchdog::hold() must be async-signal-safe");

void watchdog::hold() noexcept {
    if (s_ != nullptr) s_->held.store(true, std::memory_order_release);
}

bool watchdog::stop(int timeout_ms) noexcept {
    if (s_ == nullptr || !s_->thread.joinable()) return true;
    std::unique_lock<std::mutex> lk(s_->mu);
    s_->stop = true;
    s_->cv.notify_all();
    bool done =
        s_->cv.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return s_->done && s_->visitors == 0; });
    lk.unlock();
    if (done) {
        s_->thread.join();
        return true;
    }
    app::log(s_->opt.log, level::warn,
             "PYI0804: the watchdog thread did not stop within %d ms (it waits for an interpreter's GIL)", timeout_ms);
    s_->thread.detach();
    return false;
}

}  // namespace pyinterp::app
