// The event loop: tasks posted from any thread run on loop threads inside
// the interpreter of their callback; timers, cancellation, descriptors,
// interpreter teardown and stopping the loop; the `pyinterp` Python module.
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "pyinterp/loop.h"
#include "pyinterp/module.h"
#include "support.h"

using pyinterp::callback;
using pyinterp::scoped_enter;
using pyinterp::view;
using namespace std::chrono_literals;

namespace {

// note(x): records (running interpreter, OS thread, x) on the C side.
struct note_entry {
    int64_t interp;
    pthread_t thread;
    long long value;
};
std::mutex notes_mu;
std::vector<note_entry> notes;

PyObject* py_note(PyObject*, PyObject* arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return nullptr;
    std::lock_guard<std::mutex> lk(notes_mu);
    notes.push_back({test::running_interp_id(), pthread_self(), v});
    Py_RETURN_NONE;
}
PyMethodDef note_def = {"note", py_note, METH_O, nullptr};

std::vector<note_entry> all_notes() {
    std::lock_guard<std::mutex> lk(notes_mu);
    return notes;
}
size_t note_count() {
    std::lock_guard<std::mutex> lk(notes_mu);
    return notes.size();
}

// block(): waits, with the GIL released, until the test opens the gate.
std::atomic<test::latch*> gate{nullptr};
PyObject* py_block(PyObject*, PyObject*) {
    test::latch* g = gate.load();
    Py_BEGIN_ALLOW_THREADS
    if (g != nullptr) g->wait();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}
PyMethodDef block_def = {"block", py_block, METH_NOARGS, nullptr};

template <class P>
bool wait_until(P pred, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// An interpreter with note() and block() installed.
view make_interp(const char* name) {
    view v = test::make_interp(name);
    scoped_enter in(v);
    test::install_builtin(&note_def);
    test::install_builtin(&block_def);
    return v;
}


// Arguments: (n,) with n carried in the user pointer.
PyObject* int_args(void* user) {
    return Py_BuildValue("(n)", static_cast<Py_ssize_t>(reinterpret_cast<intptr_t>(user)));
}
void* as_user(long long n) { return reinterpret_cast<void*>(static_cast<intptr_t>(n)); }

std::atomic<int> releases{0};
void count_release(void*) { releases++; }

pyinterp_loop_task task_for(const callback& cb, long long n) {
    pyinterp_loop_task t{};
    t.callback = cb.get();
    t.make_args = int_args;
    t.user = as_user(n);
    t.release = count_release;
    return t;
}

// A loop owned by the test.
struct loop_owner {
    pyinterp_loop* loop = nullptr;
    explicit loop_owner(int threads) {
        pyinterp_loop_config cfg{};
        cfg.threads = threads;
        EXPECT_EQ(pyinterp_loop_new(&cfg, &loop), PYINTERP_OK);
    }
    ~loop_owner() { pyinterp_loop_free(loop); }
};

struct handle_owner {
    pyinterp_loop_handle* h = nullptr;
    ~handle_owner() { pyinterp_loop_handle_free(h); }
    int state() const { return pyinterp_loop_handle_state(h); }
};

void reset() {
    std::lock_guard<std::mutex> lk(notes_mu);
    notes.clear();
    releases = 0;
}

const char* const k_note_src = "def cb(n):\n    note(n)\n";

}  // namespace

TEST(Loop, PostsFromForeignThreadsRunOnceEachInTheirInterpreters) {
    reset();
    constexpr int k_interps = 3, k_posters = 4, k_posts = 400;
    loop_owner lo(3);
    std::vector<view> views = {make_interp("lp_a"), make_interp("lp_b"), make_interp("lp_c")};
    std::vector<callback> cbs;
    for (auto& v : views) cbs.push_back(test::make_callback(v, k_note_src, "cb"));

    std::atomic<int> failures{0};
    std::vector<std::thread> posters;
    for (int p = 0; p < k_posters; ++p) {
        posters.emplace_back([&, p] {
            for (int i = 0; i < k_posts; ++i) {
                for (int k = 0; k < k_interps; ++k) {
                    pyinterp_loop_task t = task_for(cbs[k], (int64_t(p) * k_interps + k) * k_posts + i);
                    if (pyinterp_loop_call_soon(lo.loop, &t, nullptr) != PYINTERP_OK) failures++;
                }
            }
        });
    }
    for (auto& t : posters) t.join();
    EXPECT_EQ(failures.load(), 0);
    const size_t total = size_t(k_posters) * k_posts * k_interps;
    ASSERT_TRUE(wait_until([&] { return note_count() >= total; })) << note_count() << " of " << total;
    ASSERT_TRUE(wait_until([&] { return releases.load() == int(total); }));
    std::this_thread::sleep_for(20ms);  // anything extra would show up now

    std::vector<note_entry> got = all_notes();
    ASSERT_EQ(got.size(), total);
    std::vector<int> seen(total, 0);
    std::map<int64_t, std::set<pthread_t>> threads_of_interp;
    std::map<int64_t, long long> last_of_stream;  // (poster, interp) -> last i
    int wrong_interp = 0, out_of_order = 0;
    for (const note_entry& e : got) {
        ASSERT_GE(e.value, 0);
        ASSERT_LT(e.value, (long long)total);
        seen[size_t(e.value)]++;
        long long stream = e.value / k_posts, i = e.value % k_posts;
        int k = int(stream % k_interps);
        if (e.interp != views[k].id()) wrong_interp++;
        threads_of_interp[e.interp].insert(e.thread);
        auto it = last_of_stream.find(stream);
        if (it != last_of_stream.end() && it->second > i) out_of_order++;
        last_of_stream[stream] = i;
    }
    EXPECT_EQ(wrong_interp, 0);
    EXPECT_EQ(out_of_order, 0) << "one poster's tasks for one interpreter ran out of order";
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), (long)total) << "lost or duplicated tasks";
    std::set<pthread_t> loop_threads;
    for (auto& [interp, ts] : threads_of_interp) {
        EXPECT_EQ(ts.size(), 1u) << "interpreter " << interp << " ran on several loop threads";
        loop_threads.insert(ts.begin(), ts.end());
    }
    EXPECT_EQ(loop_threads.size(), 3u);
    EXPECT_EQ(loop_threads.count(pthread_self()), 0u);
}

TEST(Loop, TimersFireInDeadlineOrderAndTiesInPostingOrder) {
    reset();
    loop_owner lo(1);
    view a = make_interp("lp_timers");
    callback cb = test::make_callback(a, k_note_src, "cb");
    // (delay ms, tag): expected order is by delay, then by posting order.
    const std::vector<std::pair<int, int>> plan = {{60, 6}, {15, 2}, {40, 5}, {15, 3}, {25, 4}, {0, 1}, {80, 7}};
    auto start = std::chrono::steady_clock::now();
    for (auto [ms, tag] : plan) {
        pyinterp_loop_task t = task_for(cb, tag);
        ASSERT_EQ(pyinterp_loop_call_later(lo.loop, uint64_t(ms) * 1000, &t, nullptr), PYINTERP_OK);
    }
    ASSERT_TRUE(wait_until([&] { return note_count() >= plan.size(); }));
    auto elapsed = std::chrono::steady_clock::now() - start;
    std::vector<long long> order;
    for (auto& e : all_notes()) order.push_back(e.value);
    EXPECT_EQ(order, (std::vector<long long>{1, 2, 3, 4, 5, 6, 7}));
    EXPECT_GE(elapsed, 80ms);
    EXPECT_TRUE(wait_until([&] { return releases.load() == int(plan.size()); }));
}

TEST(Loop, CancelledTasksNeverRunAndAreReleasedPromptly) {
    reset();
    loop_owner lo(1);
    view a = make_interp("lp_cancel");
    callback cb = test::make_callback(a, k_note_src, "cb");
    callback blocker = test::make_callback(a, "def blocker():\n    note(0)\n    block()\n", "blocker");
    test::latch g;
    gate = &g;

    // Hold the loop thread in `blocker` so the call_soon tasks stay queued.
    pyinterp_loop_task bt{};
    bt.callback = blocker.get();
    handle_owner hb;
    ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &bt, &hb.h), PYINTERP_OK);
    ASSERT_TRUE(wait_until([] { return note_count() == 1; }));
    EXPECT_EQ(hb.state(), PYINTERP_LOOP_RUNNING);
    EXPECT_EQ(pyinterp_loop_cancel(hb.h), PYINTERP_ERR_STATE);  // one-shot, running

    handle_owner soon[3], later[2];
    for (int i = 0; i < 3; ++i) {
        pyinterp_loop_task t = task_for(cb, 10 + i);
        ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &t, &soon[i].h), PYINTERP_OK);
    }
    for (int i = 0; i < 2; ++i) {
        pyinterp_loop_task t = task_for(cb, 20 + i);
        ASSERT_EQ(pyinterp_loop_call_later(lo.loop, 30'000'000, &t, &later[i].h), PYINTERP_OK);  // 30 s
    }
    EXPECT_EQ(pyinterp_loop_cancel(soon[1].h), PYINTERP_OK);
    EXPECT_EQ(pyinterp_loop_cancel(soon[1].h), PYINTERP_OK);  // harmless twice
    EXPECT_EQ(soon[1].state(), PYINTERP_LOOP_CANCELLED);
    g.release();
    ASSERT_TRUE(wait_until([] { return note_count() == 3; }));
    EXPECT_EQ(pyinterp_loop_cancel(later[0].h), PYINTERP_OK);
    // Released long before its deadline: 2 soon + 1 cancelled soon + blocker? no
    // (blocker has no release function) + 1 cancelled timer.
    EXPECT_TRUE(wait_until([] { return releases.load() == 4; }, 2s)) << releases.load();
    EXPECT_EQ(later[0].state(), PYINTERP_LOOP_CANCELLED);
    EXPECT_EQ(later[1].state(), PYINTERP_LOOP_PENDING);

    std::vector<long long> ran;
    for (auto& e : all_notes()) ran.push_back(e.value);
    EXPECT_EQ(ran, (std::vector<long long>{0, 10, 12}));
    EXPECT_EQ(soon[0].state(), PYINTERP_LOOP_DONE);
    EXPECT_EQ(pyinterp_loop_cancel(soon[0].h), PYINTERP_ERR_STATE);  // done
    EXPECT_EQ(hb.state(), PYINTERP_LOOP_DONE);
    EXPECT_EQ(pyinterp_loop_cancel(nullptr), PYINTERP_ERR_INVALID);
    gate = nullptr;
}

TEST(Loop, EndingAnInterpreterDropsItsPendingTasksAndWaitsForTheRunningOne) {
    reset();
    loop_owner lo(1);  // one thread: both interpreters share it
    view x = make_interp("lp_end_x");
    view y = make_interp("lp_end_y");
    callback cb = test::make_callback(x, k_note_src, "cb");
    callback running = test::make_callback(x, "def running():\n    note(1)\n    block()\n    note(2)\n", "running");
    callback ycb = test::make_callback(y, k_note_src, "cb");
    test::latch g;
    gate = &g;

    handle_owner hr, pending[4], timer;
    pyinterp_loop_task rt{};
    rt.callback = running.get();
    rt.release = count_release;
    ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &rt, &hr.h), PYINTERP_OK);
    ASSERT_TRUE(wait_until([] { return note_count() == 1; }));
    for (int i = 0; i < 4; ++i) {
        pyinterp_loop_task t = task_for(cb, 100 + i);
        ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &t, &pending[i].h), PYINTERP_OK);
    }
    pyinterp_loop_task tt = task_for(cb, 200);
    ASSERT_EQ(pyinterp_loop_call_later(lo.loop, 60'000'000, &tt, &timer.h), PYINTERP_OK);

    std::atomic<int> end_rc{-100};
    std::atomic<bool> ended{false};
    std::thread ender([&] {
        end_rc = x.end(10'000);
        ended = true;
    });
    ASSERT_TRUE(wait_until([&] { return !x.live(); }));
    pyinterp_loop_task late = task_for(cb, 300);
    EXPECT_EQ(pyinterp_loop_call_soon(lo.loop, &late, nullptr), PYINTERP_ERR_GONE);
    std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(ended.load()) << "pyinterp_interp_end did not wait for the running task";
    g.release();
    ender.join();
    EXPECT_EQ(end_rc.load(), PYINTERP_OK);

    // The running task finished; the pending ones and the timer were dropped
    // (released, never run), promptly.
    EXPECT_TRUE(wait_until([] { return releases.load() == 6; }, 2s)) << releases.load();
    std::vector<long long> ran;
    for (auto& e : all_notes()) ran.push_back(e.value);
    EXPECT_EQ(ran, (std::vector<long long>{1, 2}));
    EXPECT_EQ(hr.state(), PYINTERP_LOOP_DONE);
    for (auto& p : pending) EXPECT_EQ(p.state(), PYINTERP_LOOP_CANCELLED);
    EXPECT_EQ(timer.state(), PYINTERP_LOOP_CANCELLED);

    // The loop thread goes on serving the other interpreter.
    pyinterp_loop_task yt = task_for(ycb, 400);
    ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &yt, nullptr), PYINTERP_OK);
    ASSERT_TRUE(wait_until([] { return note_count() == 3; }));
    EXPECT_EQ(all_notes().back().interp, y.id());
    EXPECT_EQ(all_notes().back().value, 400);
    gate = nullptr;
}

namespace {

// A callable whose __call__ notes 1 and whose __del__ notes the interpreter
// it runs in (as 1000 + id); the returned callback holds its only reference.
callback make_tracked_callable(const view& v) {
    scoped_enter in(v);
    EXPECT_TRUE(test::exec("class Tracked:\n"
                           "    def __call__(self):\n        note(1)\n"
                           "    def __del__(self):\n        note(1000 + probe())\n"
                           "tracked = Tracked()\n"));
    int rc = -100;
    callback cb = callback::create(test::main_global("tracked"), &rc);
    EXPECT_EQ(rc, PYINTERP_OK);
    EXPECT_TRUE(test::exec("del tracked"));
    return cb;
}

}  // namespace

TEST(Loop, StoppingDropsQueuedWorkAndReleasesReferencesInTheirInterpreters) {
    reset();
    auto* lo = new loop_owner(2);
    std::vector<view> views = {make_interp("lp_stop_a"), make_interp("lp_stop_b")};
    test::latch g;
    gate = &g;
    std::vector<callback> blockers;
    for (auto& v : views) {
        blockers.push_back(test::make_callback(v, "def blocker():\n    note(0)\n    block()\n", "blocker"));
        pyinterp_loop_task t{};
        t.callback = blockers.back().get();
        ASSERT_EQ(pyinterp_loop_call_soon(lo->loop, &t, nullptr), PYINTERP_OK);
    }
    ASSERT_TRUE(wait_until([] { return note_count() == 2; }));
    // Queued behind the blockers, and timers: each task owns its callback.
    constexpr int k_each = 5;
    for (auto& v : views) {
        for (int i = 0; i < k_each; ++i) {
            callback cb = make_tracked_callable(v);
            pyinterp_loop_task t{};
            t.callback = cb.get();
            t.release = count_release;
            t.flags = PYINTERP_LOOP_FREE_CALLBACK;
            int rc = i % 2 == 0 ? pyinterp_loop_call_soon(lo->loop, &t, nullptr)
                                : pyinterp_loop_call_later(lo->loop, 1000, &t, nullptr);
            ASSERT_EQ(rc, PYINTERP_OK);
            (void)cb.release();
        }
    }
    std::atomic<bool> stopped{false};
    std::chrono::steady_clock::time_point released_at;
    std::thread stopper([&] {
        EXPECT_EQ(pyinterp_loop_stop(lo->loop), PYINTERP_OK);
        stopped = true;
    });
    // New work is refused at once; the stop waits for the running tasks.
    ASSERT_TRUE(wait_until([&] {
        callback cb = make_tracked_callable(views[0]);
        pyinterp_loop_task t{};
        t.callback = cb.get();
        return pyinterp_loop_call_soon(lo->loop, &t, nullptr) == PYINTERP_ERR_STATE;
    }));
    std::this_thread::sleep_for(30ms);
    EXPECT_FALSE(stopped.load());
    released_at = std::chrono::steady_clock::now();
    g.release();
    stopper.join();
    EXPECT_LT(std::chrono::steady_clock::now() - released_at, 1s) << "stop was not prompt";

    EXPECT_EQ(releases.load(), 2 * k_each);
    std::map<long long, int> by_value;
    for (auto& e : all_notes()) {
        by_value[e.value]++;
        if (e.value >= 1000) {
            EXPECT_EQ(e.value - 1000, e.interp) << "released in the wrong interpreter";
        }
    }
    EXPECT_EQ(by_value[0], 2);
    EXPECT_EQ(by_value[1], 0) << "a queued task ran after stop";
    // The probe callables of the refused posts above were released too.
    EXPECT_GE(by_value[1000 + views[0].id()], k_each);
    EXPECT_EQ(by_value[1000 + views[1].id()], k_each);
    // Stopping again is harmless; freeing works after a stop.
    EXPECT_EQ(pyinterp_loop_stop(lo->loop), PYINTERP_OK);
    delete lo;
    gate = nullptr;
}

TEST(Loop, AnExceptionIsLoggedWithItsTracebackAndTheLoopGoesOn) {
    reset();
    loop_owner lo(1);
    view a = make_interp("lp_raise");
    callback bad = test::make_callback(a, "def inner():\n    raise KeyError('loop-boom')\ndef bad():\n    inner()\n", "bad");
    callback good = test::make_callback(a, k_note_src, "cb");
    test::log_capture::clear();
    pyinterp_loop_task t{};
    t.callback = bad.get();
    handle_owner hb;
    ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &t, &hb.h), PYINTERP_OK);
    pyinterp_loop_task t2 = task_for(good, 5);
    ASSERT_EQ(pyinterp_loop_call_soon(lo.loop, &t2, nullptr), PYINTERP_OK);
    ASSERT_TRUE(wait_until([] { return note_count() == 1; }));
    EXPECT_EQ(hb.state(), PYINTERP_LOOP_DONE);
    EXPECT_TRUE(test::log_capture::contains("Traceback (most recent call last)", PYINTERP_LOG_ERROR));
    EXPECT_TRUE(test::log_capture::contains("KeyError: 'loop-boom'", PYINTERP_LOG_ERROR));
    EXPECT_TRUE(test::log_capture::contains("in inner", PYINTERP_LOG_ERROR));
}

TEST(Loop, DescriptorReadinessRunsTheTaskOnceOrUntilCancelled) {
    reset();
    loop_owner lo(1);
    view a = make_interp("lp_fd");
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    callback reader = test::make_callback(a, "import os\ndef reader(fd):\n    note(len(os.read(fd, 100)))\n", "reader");

    // One-shot.
    handle_owner once;
    pyinterp_loop_task t = task_for(reader, fds[0]);
    ASSERT_EQ(pyinterp_loop_watch_fd(lo.loop, fds[0], PYINTERP_LOOP_READ, &t, &once.h), PYINTERP_OK);
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(note_count(), 0u);
    ASSERT_EQ(write(fds[1], "abc", 3), 3);
    ASSERT_TRUE(wait_until([] { return note_count() == 1; }));
    EXPECT_TRUE(wait_until([&] { return once.state() == PYINTERP_LOOP_DONE; }));

    // Persistent, until cancelled.
    handle_owner many;
    ASSERT_EQ(pyinterp_loop_watch_fd(lo.loop, fds[0], PYINTERP_LOOP_READ | PYINTERP_LOOP_PERSIST, &t, &many.h),
              PYINTERP_OK);
    ASSERT_EQ(write(fds[1], "de", 2), 2);
    ASSERT_TRUE(wait_until([] { return note_count() == 2; }));
    ASSERT_EQ(write(fds[1], "f", 1), 1);
    ASSERT_TRUE(wait_until([] { return note_count() == 3; }));
    EXPECT_EQ(many.state(), PYINTERP_LOOP_PENDING);
    EXPECT_EQ(pyinterp_loop_cancel(many.h), PYINTERP_OK);
    EXPECT_TRUE(wait_until([] { return releases.load() == 2; }));
    ASSERT_EQ(write(fds[1], "g", 1), 1);
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(note_count(), 3u);
    std::vector<long long> lens;
    for (auto& e : all_notes()) lens.push_back(e.value);
    EXPECT_EQ(lens, (std::vector<long long>{3, 2, 1}));
    EXPECT_EQ(pyinterp_loop_watch_fd(lo.loop, -1, PYINTERP_LOOP_READ, &t, nullptr), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_loop_watch_fd(lo.loop, fds[0], PYINTERP_LOOP_PERSIST, &t, nullptr), PYINTERP_ERR_INVALID);
    close(fds[0]);
    close(fds[1]);
}

TEST(Loop, RefusesBadArgumentsAndTasksOfEndedInterpreters) {
    loop_owner lo(1);
    pyinterp_loop_task empty{};
    EXPECT_EQ(pyinterp_loop_call_soon(nullptr, &empty, nullptr), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_loop_call_soon(lo.loop, nullptr, nullptr), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_loop_call_soon(lo.loop, &empty, nullptr), PYINTERP_ERR_INVALID);
    pyinterp_loop_config cfg{};
    cfg.threads = 65;
    pyinterp_loop* l = nullptr;
    EXPECT_EQ(pyinterp_loop_new(&cfg, &l), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_loop_threads(lo.loop), 1);
    view a = make_interp("lp_gone");
    callback cb = test::make_callback(a, k_note_src, "cb");
    ASSERT_EQ(a.end(), PYINTERP_OK);
    pyinterp_loop_task t = task_for(cb, 1);
    EXPECT_EQ(pyinterp_loop_call_soon(lo.loop, &t, nullptr), PYINTERP_ERR_GONE);
    EXPECT_EQ(pyinterp_loop_call_later(lo.loop, 10, &t, nullptr), PYINTERP_ERR_GONE);
}

// ------------------------------------------------------ the Python module

namespace {

const char* const k_module_src =
    "import pyinterp\n"
    "info = pyinterp.interpreter()\n"
    "calls = []\n"
    "def rec(tag, *rest):\n"
    "    calls.append((tag, rest, pyinterp.interpreter()[1], probe()))\n"
    "pyinterp.call_later(0.06, rec, 'later2')\n"
    "pyinterp.call_soon(rec, 'soon', 1, 2)\n"
    "pyinterp.call_later(0.02, rec, 'later1')\n"
    "h = pyinterp.call_later(0.04, rec, 'cancelled')\n"
    "cancel_result = h.cancel()\n";

}  // namespace

TEST(PyinterpModule, CallSoonAndCallLaterRunInTheSchedulingSubinterpreter) {
    std::vector<view> views = {make_interp("mod_a"), make_interp("mod_b")};
    for (auto& v : views) {
        scoped_enter in(v);
        ASSERT_TRUE(test::exec(k_module_src));
        EXPECT_EQ(test::eval_str("info"), "('" + std::string(v.name()) + "', " + std::to_string(v.id()) + ", False)");
        EXPECT_EQ(test::eval_long("cancel_result"), 1);
        EXPECT_EQ(test::eval_long("h.cancelled()"), 1);
    }
    for (auto& v : views) {
        ASSERT_TRUE(test::wait_in(v, "len(calls) >= 3"));
        std::this_thread::sleep_for(60ms);  // the cancelled one would have run by now
        scoped_enter in(v);
        std::string id = std::to_string(v.id());
        EXPECT_EQ(test::eval_str("calls"), "[('soon', (1, 2), " + id + ", " + id + "), ('later1', (), " + id + ", " + id +
                                               "), ('later2', (), " + id + ", " + id + ")]");
        EXPECT_EQ(test::eval_str("repr(h)"), "<pyinterp.Handle cancelled>");
    }
}

TEST(PyinterpModule, InterpreterReportsMainAndErrorsAreRaised) {
    view m = view::main();
    scoped_enter in(m);
    ASSERT_TRUE(test::exec("import pyinterp\n"));
    EXPECT_EQ(test::eval_str("pyinterp.interpreter()"), "('main', 0, False)");
    EXPECT_TRUE(test::exec("try:\n    pyinterp.call_soon(1)\nexcept TypeError:\n    ok = 1\n"));
    EXPECT_EQ(test::eval_long("ok"), 1);
    EXPECT_TRUE(test::exec("try:\n    pyinterp.call_later(float('nan'), print)\nexcept ValueError:\n    ok2 = 1\n"));
    EXPECT_EQ(test::eval_long("ok2"), 1);
    EXPECT_TRUE(test::exec("try:\n    pyinterp.Handle()\nexcept TypeError:\n    ok3 = 1\n"));
    EXPECT_EQ(test::eval_long("ok3"), 1);
    pyinterp_loop* loop = nullptr;
    ASSERT_EQ(pyinterp_loop_default(&loop), PYINTERP_OK);
    EXPECT_EQ(pyinterp_loop_threads(loop), 1);
    EXPECT_EQ(pyinterp_loop_set_default_threads(2), PYINTERP_ERR_STATE);
    pyinterp_loop_free(loop);  // the runtime's: ignored
}

TEST(PyinterpModule, EndingTheInterpreterDropsItsPendingCalls) {
    view a = make_interp("mod_end");
    {
        scoped_enter in(a);
        ASSERT_TRUE(test::exec("import pyinterp\n"
                               "class Probe:\n"
                               "    def __call__(self):\n        note(1)\n"
                               "    def __del__(self):\n        note(1000 + probe())\n"
                               "pyinterp.call_later(30, Probe())\n"));
    }
    reset();
    ASSERT_EQ(a.end(), PYINTERP_OK);
    // The pending call's references (callable, handle) were released inside
    // the interpreter while it ended.
    std::vector<note_entry> got = all_notes();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].value, 1000 + a.id());
}

TEST(PyinterpModule, OwnGilInterpretersImportItAndReceiveTheirCalls) {
    if (!pyinterp_supports_own_gil()) GTEST_SKIP() << "no per-interpreter GIL before Python 3.12";
    reset();
    loop_owner lo(2);
    std::vector<view> views;
    for (const char* name : {"own_loop_a", "own_loop_b"}) {
        int rc = -100;
        views.push_back(view::create(name, PYINTERP_GIL_OWN, &rc));
        ASSERT_EQ(rc, PYINTERP_OK);
        scoped_enter in(views.back());
        test::install_probe();
        test::install_builtin(&note_def);
        // Py_mod_multiple_interpreters: the module loads in an own-GIL interpreter.
        ASSERT_TRUE(test::exec(std::string(k_module_src) + "def cb(n):\n    note(n)\n"));
        EXPECT_EQ(test::eval_str("info"), "('" + std::string(name) + "', " + std::to_string(views.back().id()) + ", True)");
    }
    std::vector<callback> cbs;
    for (auto& v : views) {
        scoped_enter in(v);
        int rc = -100;
        cbs.push_back(callback::create(test::main_global("cb"), &rc));
        ASSERT_EQ(rc, PYINTERP_OK);
    }
    constexpr int k_each = 300;
    std::thread poster([&] {
        for (int i = 0; i < k_each; ++i) {
            for (size_t k = 0; k < cbs.size(); ++k) {
                pyinterp_loop_task t = task_for(cbs[k], int64_t(k) * k_each + i);
                EXPECT_EQ(pyinterp_loop_call_soon(lo.loop, &t, nullptr), PYINTERP_OK);
            }
        }
    });
    poster.join();
    ASSERT_TRUE(wait_until([] { return note_count() >= 2 * k_each; }));
    int wrong = 0;
    for (auto& e : all_notes()) {
        if (e.interp != views[size_t(e.value / k_each)].id()) wrong++;
    }
    EXPECT_EQ(wrong, 0);
    for (auto& v : views) ASSERT_TRUE(test::wait_in(v, "len(calls) >= 3"));
    cbs.clear();
    for (auto& v : views) EXPECT_EQ(v.end(), PYINTERP_OK);
}
