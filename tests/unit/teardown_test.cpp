// Thread exit and interpreter teardown with other threads around.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "support.h"

using pyinterp::guard;
using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

int tstates_of(const view& v) {
    scoped_enter in(v);
    return in ? test::count_tstates() : -1;
}

}  // namespace

TEST(ThreadExit, DeletesCachedStatesOnItsOwnThread) {
    view a = test::make_interp("exit_a");
    view b = test::make_interp("exit_b");
    view m = view::main();
    int a0 = tstates_of(a), b0 = tstates_of(b), m0 = tstates_of(m);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (const view* v : {&m, &a, &b}) {
                scoped_enter in(*v);
                EXPECT_TRUE(in);
                EXPECT_TRUE(test::exec("x = sum(range(100))"));
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(tstates_of(a), a0);
    EXPECT_EQ(tstates_of(b), b0);
    EXPECT_EQ(tstates_of(m), m0);
    // With every other thread's state gone, ending is clean (CPython aborts
    // with "not the last thread" otherwise).
    EXPECT_EQ(a.end(), PYINTERP_OK);
    EXPECT_EQ(b.end(), PYINTERP_OK);
}

TEST(Teardown, DeletesIdleCachedStatesOfLiveThreads) {
    view a = test::make_interp("idle_owner");
    view b = test::make_interp("idle_other");
    test::latch ended, entered_once;
    std::thread owner([&] {
        {
            scoped_enter in(a);  // caches a thread state for `a`, then idles
            EXPECT_TRUE(in);
        }
        entered_once.release();
        ended.wait();
        // The owner's cached state was deleted by the ending thread.  Its
        // PyGILState binding must not point at it (CPython would crash on
        // the next PyGILState_Ensure, facts §3.6): Ensure lands in main.
        EXPECT_EQ(PyGILState_GetThisThreadState(), nullptr);
        PyGILState_STATE g = PyGILState_Ensure();
        EXPECT_EQ(test::running_interp_id(), 0);
        PyGILState_Release(g);
        pyinterp_token t;
        EXPECT_EQ(pyinterp_enter(a.get(), &t), PYINTERP_ERR_GONE);
        scoped_enter in_b(b);
        EXPECT_TRUE(in_b);
        EXPECT_EQ(test::running_interp_id(), b.id());
    });
    entered_once.wait();
    EXPECT_EQ(tstates_of(a), 3);  // the interpreter's keeper, this thread's, the owner's
    EXPECT_EQ(a.end(), PYINTERP_OK);
    ended.release();
    owner.join();
}

TEST(Teardown, CallsInFlightFinishAndLaterCallsAreRefused) {
    view a = test::make_interp("busy");
    PyObject* fn;
    {
        scoped_enter in(a);
        ASSERT_TRUE(test::exec("import time\ncalls = 0\ndef work():\n    global calls\n    calls += 1\n"
                               "    time.sleep(0.0005)\n    return probe()\n"));
        fn = test::main_global("work");
    }
    pyinterp_callback* cb = nullptr;
    {
        scoped_enter in(a);
        ASSERT_EQ(pyinterp_callback_new(fn, &cb), PYINTERP_OK);
    }
    std::atomic<long> ok{0}, gone{0}, other{0}, late_ok{0};
    std::atomic<bool> stop{false}, ended{false};
    std::vector<std::thread> threads;
    view b = test::make_interp("busy_after");
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            while (!stop.load()) {
                bool after_end = ended.load();
                int rc = pyinterp_callback_call(cb, nullptr, nullptr, nullptr);
                if (rc == PYINTERP_OK && after_end) late_ok++;
                if (rc == PYINTERP_OK) ok++;
                else if (rc == PYINTERP_ERR_GONE) gone++;
                else other++;
                if (rc == PYINTERP_ERR_GONE && gone.load() > 200) break;
            }
            // The thread goes on with other interpreters after its cached
            // state for `a` was deleted under it.
            scoped_enter in(b);
            EXPECT_TRUE(in);
            PyGILState_STATE g = PyGILState_Ensure();
            EXPECT_EQ(test::running_interp_id(), b.id());
            PyGILState_Release(g);
        });
    }
    while (ok.load() < 100) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    EXPECT_EQ(a.end(2000), PYINTERP_OK);
    ended = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(late_ok.load(), 0);  // no call that began after the end ran
    EXPECT_GT(gone.load(), 0);
    EXPECT_EQ(other.load(), 0);
    pyinterp_callback_free(cb);
}

TEST(Teardown, BoundedWaitTimesOutThenEndsOnRetry) {
    view a = test::make_interp("slow");
    test::latch inside, finish;
    std::thread t([&] {
        scoped_enter in(a);
        ASSERT_TRUE(in);
        Py_BEGIN_ALLOW_THREADS  // still inside the entry, GIL released
        inside.release();
        finish.wait();
        Py_END_ALLOW_THREADS
    });
    inside.wait();
    test::log_capture::clear();
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(a.end(100), PYINTERP_ERR_TIMEOUT);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
    EXPECT_TRUE(test::log_capture::contains("'slow' still has entries", PYINTERP_LOG_WARN));
    EXPECT_FALSE(a.live());
    test::on_new_thread([&] {  // refused while ending
        pyinterp_token tok;
        EXPECT_EQ(pyinterp_enter(a.get(), &tok), PYINTERP_ERR_GONE);
    });
    finish.release();
    t.join();
    EXPECT_EQ(a.end(1000), PYINTERP_OK);
    EXPECT_EQ(a.end(1000), PYINTERP_ERR_GONE);
}

TEST(Teardown, GuardHoldsTeardownOff) {
    view a = test::make_interp("guarded");
    auto g = std::make_unique<guard>(a);
    ASSERT_TRUE(*g);
    EXPECT_EQ(a.end(50), PYINTERP_ERR_TIMEOUT);
    // While ending, plain entries are refused but the guard's holder gets in.
    test::on_new_thread([&] {
        pyinterp_token t;
        EXPECT_EQ(pyinterp_enter(a.get(), &t), PYINTERP_ERR_GONE);
        scoped_enter in(*g);
        ASSERT_TRUE(in);
        EXPECT_EQ(test::running_interp_id(), a.id());
    });
    guard second(a);
    EXPECT_FALSE(second);
    EXPECT_EQ(second.status(), PYINTERP_ERR_GONE);
    g.reset();
    EXPECT_EQ(a.end(1000), PYINTERP_OK);
}

TEST(Teardown, EndingTheInterpreterYouAreInIsRefused) {
    view a = test::make_interp("self_end");
    scoped_enter in(a);
    EXPECT_EQ(a.end(), PYINTERP_ERR_STATE);
    EXPECT_TRUE(a.live());
    EXPECT_EQ(test::running_interp_id(), a.id());
}

TEST(Teardown, EndWhileAttachedElsewhereKeepsTheCallerAttached) {
    view a = test::make_interp("end_a");
    view b = test::make_interp("end_b");
    test::on_new_thread([&] {
        { scoped_enter warm(a); }
        scoped_enter in(b);
        PyThreadState* ts = PyThreadState_Get();
        EXPECT_EQ(a.end(), PYINTERP_OK);
        EXPECT_EQ(PyThreadState_Get(), ts);
        EXPECT_EQ(test::running_interp_id(), b.id());
        EXPECT_TRUE(test::exec("y = 1 + 1"));
    });
}

TEST(Teardown, ThreadExitingWhileItsInterpreterEnds) {
    // Threads exit (disposing of their cached states) while another thread
    // ends the same interpreter: each state is deleted exactly once.
    for (int round = 0; round < 5; ++round) {
        view a = test::make_interp(("race" + std::to_string(round)).c_str());
        std::vector<std::thread> threads;
        test::latch go;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                { scoped_enter in(a); }
                go.wait();
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        go.release();
        EXPECT_EQ(a.end(2000), PYINTERP_OK);
        for (auto& t : threads) t.join();
    }
}
