// The in-flight registry and the watchdog (mod/app/inflight.h), driven
// through the executor as the httpd module drives it, and directly for the
// deadline actions the server does not install yet.
#include "app/inflight.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/executor.h"
#include "app_support.h"
#include "pyinterp/py/ref.h"

namespace {

using namespace std::chrono_literals;

// Polls `done` every 5 ms for up to `limit`.
template <typename F>
bool wait_until(F done, std::chrono::milliseconds limit = 10s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// A protocol that calls the application with an empty environ.
int call_serve(const app::application& a, const app::request_target&, void*) noexcept {
    pyinterp::py::ref env = pyinterp::py::ref::steal(PyDict_New());
    pyinterp::py::ref result =
        pyinterp::py::ref::steal(PyObject_CallFunctionObjArgs(a.callable, env.get(), Py_None, nullptr));
    if (!result) {
        PyErr_Print();
        return 500;
    }
    return 200;
}

int call_load_failed(const app::request_target&, void*) noexcept {
    PyErr_Print();
    return 500;
}

const app::protocol call_protocol = {"test", call_serve, call_load_failed, nullptr, nullptr, nullptr};

// A script whose application waits in a function called `function` until
// the file `<its directory>/go` exists.
struct waiting_app {
    std::string script, flag;

    explicit waiting_app(const std::string& function) {
        script = apptest::write_script("wait.wsgi",
                                       "import os, time\n"
                                       "FLAG = os.path.join(os.path.dirname(__file__), 'go')\n"
                                       "def " +
                                           function +
                                           "():\n"
                                           "    while not os.access(FLAG, os.F_OK): time.sleep(0.005)\n"
                                           "def application(environ, start_response):\n"
                                           "    " +
                                           function +
                                           "()\n"
                                           "    return [b'done']\n");
        flag = script.substr(0, script.rfind('/')) + "/go";
    }
    void release() const { std::ofstream(flag) << "go"; }
};

// One request to a waiting_app, served by the executor on a thread of its
// own.  Released and joined at the end of the scope at the latest.
struct request_thread {
    const waiting_app& app;
    app::request_target t;
    std::atomic<int> status{-1};
    std::atomic<unsigned long> ident{0};
    std::thread thread;

    request_thread(app::executor& ex, const waiting_app& a, const char* group, const char* url, int slow_ms = 0)
        : app(a) {
        t.script = a.script.c_str();
        t.group = group;
        t.url = url;
        t.slow_request_ms = slow_ms;
        thread = std::thread([this, &ex] {
            ident = static_cast<unsigned long>(pthread_self());
            app::run_result r = ex.run(t, call_protocol, nullptr);
            status = r.what == app::run_result::served ? r.status : -2;
        });
    }
    void join() {
        if (thread.joinable()) thread.join();
    }
    ~request_thread() {
        app.release();
        join();
    }
};

// Every request's stack, once each is waiting in its application's
// function (`prefix`...) rather than still being loaded.
std::vector<app::inflight_stack> stacks_waiting_in(const app::inflight_registry& reg, size_t n,
                                                   const std::string& prefix) {
    std::vector<app::inflight_stack> stacks;
    wait_until([&] {
        stacks = app::collect_stacks(reg);
        if (stacks.size() != n) return false;
        for (const app::inflight_stack& s : stacks)
            if (s.frames.empty() || s.frames.back().function.rfind(prefix, 0) != 0) return false;
        return true;
    });
    return stacks;
}

class Inflight : public ::testing::Test {
protected:
    void SetUp() override {
        apptest::clear_log();
        app::executor_options opt;
        opt.log = apptest::log_sink();
        ex_ = std::make_unique<app::executor>(opt);
    }
    void end(const char* group) { EXPECT_EQ(pyinterp::view::find(group).end(), PYINTERP_OK); }

    std::unique_ptr<app::executor> ex_;
};

TEST_F(Inflight, ListsARequestWhileItRunsInItsInterpreter) {
    waiting_app a("waits_here");
    request_thread req(*ex_, a, "inflight-list", "/list?x=1");
    ASSERT_TRUE(wait_until([&] { return ex_->inflight().size() == 1; }));
    std::vector<app::inflight_info> now = ex_->inflight().list();
    ASSERT_EQ(now.size(), 1u);
    const app::inflight_info& i = now[0];
    EXPECT_GT(i.id, 0u);
    EXPECT_EQ(i.group, "inflight-list");
    EXPECT_EQ(i.url, "/list?x=1");
    EXPECT_EQ(i.script, a.script);
    EXPECT_EQ(i.interpreter, "inflight-list");
    EXPECT_EQ(i.interpreter_id, pyinterp::view::find("inflight-list").id());
    EXPECT_EQ(i.thread_ident, req.ident.load());
    EXPECT_LE(i.start_ns, app::monotonic_ns());
    EXPECT_EQ(i.fired, 0u);
    a.release();
    req.join();
    EXPECT_EQ(req.status, 200);
    EXPECT_EQ(ex_->inflight().size(), 0);
    EXPECT_TRUE(ex_->inflight().list().empty());
    end("inflight-list");
}

// Each stack is read inside the request's own interpreter: two requests in
// two groups, each waiting in a function of its own name.
TEST_F(Inflight, CollectsEachStackInsideItsOwnInterpreter) {
    waiting_app a("waits_in_alpha"), b("waits_in_beta");
    request_thread ra(*ex_, a, "stacks-alpha", "/alpha");
    request_thread rb(*ex_, b, "stacks-beta", "/beta");
    std::vector<app::inflight_stack> stacks = stacks_waiting_in(ex_->inflight(), 2, "waits_in_");
    ASSERT_EQ(stacks.size(), 2u);
    for (const app::inflight_stack& s : stacks) {
        ASSERT_TRUE(s.captured) << s.info.group;
        ASSERT_GE(s.frames.size(), 2u);
        const app::stack_frame& inner = s.frames.back();
        const app::stack_frame& outer = s.frames[s.frames.size() - 2];
        EXPECT_EQ(outer.function, "application");
        if (s.info.group == "stacks-alpha") {
            EXPECT_EQ(inner.function, "waits_in_alpha");
            EXPECT_EQ(inner.file, a.script);
        } else {
            EXPECT_EQ(s.info.group, "stacks-beta");
            EXPECT_EQ(inner.function, "waits_in_beta");
            EXPECT_EQ(inner.file, b.script);
        }
        EXPECT_EQ(inner.line, 4);  // the waiting loop
    }
    std::string text = app::format_stack(stacks[0].frames);
    EXPECT_NE(text.find("  File \"" + stacks[0].frames.back().file + "\", line 4, in waits_in_"), std::string::npos)
        << text;
    a.release();
    b.release();
    ra.join();
    rb.join();
    end("stacks-alpha");
    end("stacks-beta");
}

// What visit() hands its function: the current interpreter is the
// request's, and `ts` is the request thread's thread state in it.
struct seen_inside {
    int64_t current_interpreter = -2;
    bool ts_in_current = false;
    unsigned long ts_thread = 0;
};

void note_inside(const app::inflight_info&, PyThreadState* ts, void* user) noexcept {
    auto* s = static_cast<seen_inside*>(user);
    s->current_interpreter = PyInterpreterState_GetID(PyThreadState_Get()->interp);
    s->ts_in_current = ts->interp == PyThreadState_Get()->interp;
    s->ts_thread = ts->thread_id;
}

TEST_F(Inflight, VisitRunsInsideTheRequestsInterpreterAndSkipsRequestsThatLeft) {
    waiting_app a("waits_here");
    request_thread req(*ex_, a, "inflight-visit", "/visit");
    ASSERT_TRUE(wait_until([&] { return ex_->inflight().size() == 1; }));
    std::vector<app::inflight_info> now = ex_->inflight().list();
    seen_inside seen;
    EXPECT_EQ(ex_->inflight().visit(now, note_inside, &seen), 1u);
    EXPECT_EQ(seen.current_interpreter, now[0].interpreter_id);
    EXPECT_TRUE(seen.ts_in_current);
    EXPECT_EQ(seen.ts_thread, req.ident.load());
    EXPECT_FALSE(pyinterp_thread_is_attached());  // visit left the interpreter
    a.release();
    req.join();
    // The copy outlives the request: visiting it now does nothing.
    seen_inside after;
    EXPECT_EQ(ex_->inflight().visit(now, note_inside, &after), 0u);
    EXPECT_EQ(after.current_interpreter, -2);
    end("inflight-visit");
}

// The registry answers without the GIL while a request's thread holds its
// interpreter's GIL (here: sleeping in C with it held).
TEST_F(Inflight, ListingNeverWaitsForAGil) {
    app::request_target t;
    t.script = "busy.wsgi";
    t.group = "inflight-busy";
    pyinterp::view v = ex_->place(t);
    ASSERT_TRUE(v);
    std::atomic<bool> holding{false}, released{false};
    std::thread holder([&] {
        pyinterp::scoped_enter in(v);
        app::inflight_request job;
        job.group = "inflight-busy";
        job.url = "/busy";
        job.start_ns = app::monotonic_ns();
        const_cast<app::inflight_registry&>(ex_->inflight()).add(&job, v);
        holding = true;
        std::this_thread::sleep_for(1500ms);  // the GIL stays held
        released = true;
        const_cast<app::inflight_registry&>(ex_->inflight()).remove(&job);
    });
    ASSERT_TRUE(wait_until([&] { return holding.load(); }));
    std::vector<app::inflight_info> now = ex_->inflight().list();
    bool answered_while_held = !released.load();
    holder.join();
    ASSERT_EQ(now.size(), 1u);
    EXPECT_EQ(now[0].url, "/busy");
    EXPECT_TRUE(answered_while_held);
    end("inflight-busy");
}

// The watchdog's slow action: once per request, inside its interpreter, and
// the request's end is logged with its total time.
struct slow_seen {
    std::mutex mu;
    std::vector<std::string> functions;
    std::vector<int64_t> interpreters;
    std::vector<std::string> groups;
};

void record_slow(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind kind, void* user) noexcept {
    auto* s = static_cast<slow_seen*>(user);
    EXPECT_EQ(kind, app::deadline_kind::slow);
    std::vector<app::stack_frame> frames = app::python_stack(ts);
    std::lock_guard<std::mutex> lk(s->mu);
    s->functions.push_back(frames.empty() ? "" : frames.back().function);
    s->interpreters.push_back(PyInterpreterState_GetID(PyThreadState_Get()->interp));
    s->groups.push_back(info.group);
}

TEST_F(Inflight, TheWatchdogActsOnceOnASlowRequestInsideItsInterpreter) {
    slow_seen seen;
    app::watchdog_options opt;
    opt.tick_ms = 20;
    opt.actions[unsigned(app::deadline_kind::slow)] = {record_slow, &seen};
    opt.log = apptest::log_sink();
    app::watchdog dog(ex_->inflight(), opt);
    ASSERT_TRUE(dog.start());
    waiting_app a("sleeps_slowly");
    waiting_app fast("returns_at_once");
    fast.release();
    request_thread quick(*ex_, fast, "slow-group", "/quick", 10000);
    quick.join();
    request_thread req(*ex_, a, "slow-group", "/slow", 100);
    ASSERT_TRUE(wait_until([&] {
        std::lock_guard<std::mutex> lk(seen.mu);
        return !seen.functions.empty();
    }));
    std::this_thread::sleep_for(200ms);  // ten more ticks: still once
    a.release();
    req.join();
    ASSERT_TRUE(dog.stop(5000));
    std::lock_guard<std::mutex> lk(seen.mu);
    ASSERT_EQ(seen.functions.size(), 1u);
    EXPECT_EQ(seen.functions[0], "sleeps_slowly");
    EXPECT_EQ(seen.interpreters[0], pyinterp::view::find("slow-group").id());
    EXPECT_EQ(seen.groups[0], "slow-group");
    EXPECT_EQ(apptest::count("PYI0802: slow request #"), 1);
    EXPECT_EQ(apptest::count("/slow in application group 'slow-group' ended after"), 1);
    EXPECT_EQ(apptest::count("/quick"), 0);
    end("slow-group");
}

TEST_F(Inflight, TheSlowRequestLogNamesTheGroupTheUrlAndTheStack) {
    app::watchdog_options opt;
    opt.tick_ms = 20;
    static app::log_sink sink = apptest::log_sink();
    opt.actions[unsigned(app::deadline_kind::slow)] = {
        [](const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void* user) noexcept {
            app::log_slow_request(info, ts, *static_cast<app::log_sink*>(user));
        },
        &sink};
    app::watchdog dog(ex_->inflight(), opt);
    ASSERT_TRUE(dog.start());
    // The interpreter made and set up first, so that the deadline passes
    // while the request waits in its function, not while it loads.
    waiting_app warm("warm_up");
    warm.release();
    request_thread(*ex_, warm, "slow-log", "/warm").join();
    waiting_app a("sleeps_in_here");
    request_thread req(*ex_, a, "slow-log", "/slow/log?q=1", 300);
    ASSERT_TRUE(wait_until([&] { return apptest::count("PYI0801") >= 3; }))
        << testing::PrintToString(apptest::messages());
    a.release();
    req.join();
    EXPECT_TRUE(dog.stop(5000));
    EXPECT_EQ(apptest::count("PYI0801: slow request #"), 1);
    EXPECT_EQ(apptest::count("/slow/log?q=1 in application group 'slow-log' (interpreter 'slow-log', id "), 1);
    EXPECT_EQ(apptest::count("\", line 4, in sleeps_in_here"), 1);
    EXPECT_EQ(apptest::count("\", line 6, in application"), 1);
    EXPECT_EQ(apptest::count("PYI0802"), 1);
    end("slow-log");
}

// What request timeouts will do with a deadline: raise an exception in the
// request's thread, inside its interpreter.  Driven without the executor.
void raise_timeout(const app::inflight_info& info, PyThreadState*, app::deadline_kind kind, void*) noexcept {
    EXPECT_EQ(kind, app::deadline_kind::timeout);
    EXPECT_EQ(PyThreadState_SetAsyncExc(info.thread_ident, PyExc_TimeoutError), 1);
}

TEST_F(Inflight, ADeadlineActionCanInterruptTheRequestInItsThread) {
    app::inflight_registry reg;
    app::watchdog_options opt;
    opt.tick_ms = 20;
    opt.actions[unsigned(app::deadline_kind::timeout)] = {raise_timeout, nullptr};
    app::watchdog dog(reg, opt);
    ASSERT_TRUE(dog.start());
    pyinterp::view v = pyinterp::view::create("deadline-group");
    ASSERT_TRUE(v);
    std::string outcome;
    unsigned fired = 0;
    std::thread worker([&] {
        pyinterp::scoped_enter in(v);
        app::inflight_request job;
        job.start_ns = app::monotonic_ns();
        job.deadline_ns[unsigned(app::deadline_kind::timeout)] = job.start_ns + 100 * 1000000;
        reg.add(&job, v);
        // Pure Python that never ends by itself.
        pyinterp::py::ref globals = pyinterp::py::ref::steal(PyDict_New());
        pyinterp::py::ref r = pyinterp::py::ref::steal(
            PyRun_String("while True:\n    pass\n", Py_file_input, globals.get(), globals.get()));
        outcome = r ? "returned" : apptest::take_error();
        reg.remove(&job);
        fired = job.fired();
    });
    worker.join();
    EXPECT_TRUE(dog.stop(5000));
    EXPECT_EQ(outcome, "TimeoutError: ");
    EXPECT_EQ(fired, app::deadline_bit(app::deadline_kind::timeout));
    EXPECT_EQ(v.end(), PYINTERP_OK);
}

TEST_F(Inflight, StopEndsTheWatchdogPromptly) {
    app::watchdog_options opt;
    opt.tick_ms = 10000;  // asleep for its whole tick
    std::atomic<int> ticks{0};
    opt.on_tick = [](void* user) noexcept { ++*static_cast<std::atomic<int>*>(user); };
    opt.tick_user = &ticks;
    app::watchdog dog(ex_->inflight(), opt);
    ASSERT_TRUE(dog.start());
    auto began = std::chrono::steady_clock::now();
    EXPECT_TRUE(dog.stop(5000));
    EXPECT_LT(std::chrono::steady_clock::now() - began, 4s);
    EXPECT_EQ(ticks.load(), 0);
    EXPECT_TRUE(dog.stop(5000));  // again: nothing to do
}

TEST_F(Inflight, OnTickRunsEveryTickWithoutAGil) {
    app::watchdog_options opt;
    opt.tick_ms = 10;
    struct tick_seen {
        std::atomic<int> ticks{0};
        std::atomic<bool> attached{false};
    } seen;
    opt.on_tick = [](void* user) noexcept {
        auto* s = static_cast<tick_seen*>(user);
        if (pyinterp_thread_is_attached()) s->attached = true;
        ++s->ticks;
    };
    opt.tick_user = &seen;
    app::watchdog dog(ex_->inflight(), opt);
    ASSERT_TRUE(dog.start());
    EXPECT_TRUE(wait_until([&] { return seen.ticks.load() >= 3; }));
    EXPECT_TRUE(dog.stop(5000));
    EXPECT_FALSE(seen.attached.load());
}

TEST_F(Inflight, WakeTicksAtOnce) {
    app::watchdog_options opt;
    opt.tick_ms = 60000;  // without wake(), no tick during the test
    std::atomic<int> ticks{0};
    opt.on_tick = [](void* user) noexcept { ++*static_cast<std::atomic<int>*>(user); };
    opt.tick_user = &ticks;
    app::watchdog dog(ex_->inflight(), opt);
    EXPECT_FALSE(dog.wake());  // not started
    ASSERT_TRUE(dog.start());
    EXPECT_TRUE(dog.wake());
    EXPECT_TRUE(wait_until([&] { return ticks.load() >= 1; }));
    EXPECT_TRUE(dog.wake());
    EXPECT_TRUE(wait_until([&] { return ticks.load() >= 2; }));
    EXPECT_TRUE(dog.stop(5000));
}

// A request past its slow-request time while the watchdog is held: neither
// the action nor on_tick runs; stop() still ends the thread.
TEST_F(Inflight, AHeldWatchdogDoesNothingMore) {
    app::watchdog_options opt;
    opt.tick_ms = 10;
    struct seen_t {
        std::atomic<int> ticks{0};
        std::atomic<int> actions{0};
    } seen;
    opt.on_tick = [](void* user) noexcept { ++static_cast<seen_t*>(user)->ticks; };
    opt.tick_user = &seen;
    opt.actions[unsigned(app::deadline_kind::slow)] = {
        [](const app::inflight_info&, PyThreadState*, app::deadline_kind, void* user) noexcept {
            ++static_cast<seen_t*>(user)->actions;
        },
        &seen};
    app::watchdog dog(ex_->inflight(), opt);
    ASSERT_TRUE(dog.start());
    ASSERT_TRUE(wait_until([&] { return seen.ticks.load() >= 2; }));
    dog.hold();
    int ticks_then = seen.ticks.load();
    waiting_app a("held_here");
    request_thread req(*ex_, a, "held-group", "/held", 20);
    ASSERT_TRUE(wait_until([&] { return ex_->inflight().size() == 1; }));
    std::this_thread::sleep_for(300ms);  // many ticks, the deadline long past
    EXPECT_EQ(seen.actions.load(), 0);
    EXPECT_LE(seen.ticks.load(), ticks_then + 1);  // one may have been under way
    a.release();
    req.join();
    EXPECT_EQ(req.status.load(), 200);
    EXPECT_TRUE(dog.stop(5000));
    end("held-group");
}

}  // namespace
