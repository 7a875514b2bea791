// Entering and leaving interpreters: cached thread states, nesting,
// switching, balance, and many threads at once.
#include <thread>
#include <vector>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;

TEST(ThreadStateCache, ReusesStateOnSameThread) {
    view a = test::make_interp("reuse");
    test::on_new_thread([&] {
        PyThreadState* first = nullptr;
        int tstates_after_first = 0;
        for (int i = 0; i < 100; ++i) {
            scoped_enter in(a);
            ASSERT_TRUE(in);
            if (i == 0) {
                first = PyThreadState_Get();
                tstates_after_first = test::count_tstates();
            }
            EXPECT_EQ(PyThreadState_Get(), first);
            EXPECT_EQ(test::count_tstates(), tstates_after_first);
        }
        EXPECT_EQ(pyinterp_thread_is_attached(), 0);  // left detached
    });
}

TEST(ThreadStateCache, OneStatePerThreadAndInterpreter) {
    view a = test::make_interp("per_thread");
    int before;
    {
        scoped_enter in(a);
        before = test::count_tstates();
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 10; ++i) {
                scoped_enter in(a);
                EXPECT_TRUE(in);
            }
            // Kept until the thread exits.
            scoped_enter in(a);
            EXPECT_GE(test::count_tstates(), before + 1);
        });
    }
    for (auto& t : threads) t.join();
    scoped_enter in(a);
    EXPECT_EQ(test::count_tstates(), before);  // each exited thread deleted its own
}

TEST(Enter, NestedEntryIsBalancedAndCheap) {
    view a = test::make_interp("nested");
    test::on_new_thread([&] {
        pyinterp_token t1, t2, t3;
        ASSERT_EQ(pyinterp_enter(a.get(), &t1), PYINTERP_OK);
        PyThreadState* ts = PyThreadState_Get();
        ASSERT_EQ(pyinterp_enter(a.get(), &t2), PYINTERP_OK);
        ASSERT_EQ(pyinterp_enter(a.get(), &t3), PYINTERP_OK);
        EXPECT_EQ(PyThreadState_Get(), ts);
        EXPECT_EQ(pyinterp_leave(t2), PYINTERP_ERR_STATE);  // not the innermost
        EXPECT_EQ(pyinterp_leave(t3), PYINTERP_OK);
        EXPECT_EQ(PyThreadState_Get(), ts);
        EXPECT_EQ(pyinterp_leave(t2), PYINTERP_OK);
        EXPECT_EQ(pyinterp_thread_is_attached(), 1);
        EXPECT_EQ(PyThreadState_Get(), ts);
        EXPECT_EQ(pyinterp_leave(t1), PYINTERP_OK);
        EXPECT_EQ(pyinterp_thread_is_attached(), 0);
        EXPECT_EQ(pyinterp_leave(t1), PYINTERP_ERR_STATE);
    });
}

TEST(Enter, TokensOfOtherThreadsAreRejected) {
    view a = test::make_interp("tokens");
    pyinterp_token outer;
    ASSERT_EQ(pyinterp_enter(a.get(), &outer), PYINTERP_OK);
    PyThreadState* saved = PyEval_SaveThread();
    // Same depth on another thread, different thread: refused.
    test::on_new_thread([&] {
        pyinterp_token mine;
        ASSERT_EQ(pyinterp_enter(a.get(), &mine), PYINTERP_OK);
        EXPECT_EQ(pyinterp_leave(outer), PYINTERP_ERR_STATE);
        EXPECT_EQ(pyinterp_leave(mine), PYINTERP_OK);
    });
    PyEval_RestoreThread(saved);
    EXPECT_EQ(pyinterp_leave(outer), PYINTERP_OK);
}

TEST(Enter, InterleavedMainAndTwoSubinterpretersOnOneThread) {
    view a = test::make_interp("inter_a");
    view b = test::make_interp("inter_b");
    view m = view::main();
    test::on_new_thread([&] {
        for (int round = 0; round < 200; ++round) {
            const view* order[3] = {&m, &a, &b};
            // Rotate which interpreter is outermost.
            const view& x = *order[round % 3];
            const view& y = *order[(round + 1) % 3];
            const view& z = *order[(round + 2) % 3];
            scoped_enter ex(x);
            ASSERT_TRUE(ex);
            PyThreadState* xts = PyThreadState_Get();
            EXPECT_EQ(test::running_interp_id(), x.id());
            {
                scoped_enter ey(y);
                ASSERT_TRUE(ey);
                PyThreadState* yts = PyThreadState_Get();
                EXPECT_EQ(test::running_interp_id(), y.id());
                {
                    scoped_enter ez(z);
                    ASSERT_TRUE(ez);
                    EXPECT_EQ(test::running_interp_id(), z.id());
                    {
                        scoped_enter back(x);  // re-enter the outermost one
                        EXPECT_EQ(test::running_interp_id(), x.id());
                        EXPECT_EQ(PyThreadState_Get(), xts);
                    }
                    EXPECT_EQ(test::running_interp_id(), z.id());
                }
                EXPECT_EQ(PyThreadState_Get(), yts);
                EXPECT_EQ(test::running_interp_id(), y.id());
            }
            EXPECT_EQ(PyThreadState_Get(), xts);
        }
        EXPECT_EQ(pyinterp_thread_is_attached(), 0);
    });
}

TEST(Enter, FromANativelyAttachedThread) {
    // A thread attached through a thread state the library did not create
    // (a Python thread, or a PyGILState_Ensure caller) enters a
    // subinterpreter and comes back to exactly its own thread state.
    view a = test::make_interp("from_native");
    view m = view::main();
    test::on_new_thread([&] {
        PyThreadState* native = PyThreadState_New(PyInterpreterState_Main());
        PyEval_AcquireThread(native);
        EXPECT_EQ(pyinterp_thread_is_attached(), 1);
        {
            scoped_enter in(a);
            ASSERT_TRUE(in);
            EXPECT_EQ(test::running_interp_id(), a.id());
            EXPECT_NE(PyThreadState_Get(), native);
        }
        EXPECT_EQ(PyThreadState_Get(), native);
        {
            // Entering main while natively attached to main uses the native
            // thread state: one thread, one thread state per interpreter.
            scoped_enter again(m);
            ASSERT_TRUE(again);
            EXPECT_EQ(PyThreadState_Get(), native);
        }
        EXPECT_EQ(PyThreadState_Get(), native);
        PyThreadState_Clear(native);
        PyThreadState_DeleteCurrent();
        EXPECT_EQ(pyinterp_thread_is_attached(), 0);
    });
}

TEST(Enter, FromAThreadSwappedToAForeignThreadState) {
    // Swapped in with PyThreadState_Swap, not the thread's PyGILState one:
    // CPython 3.11 cannot tell the library which thread holds it (its
    // "current thread state" is one global), so this needs 3.12+.
    if (PY_VERSION_HEX < 0x030C0000) GTEST_SKIP() << "3.11 cannot identify this thread state's owner";
    view a = test::make_interp("from_swapped");
    test::on_new_thread([&] {
        view m = view::main();
        scoped_enter in_main(m);
        PyThreadState* native = PyThreadState_New(PyInterpreterState_Get());
        PyThreadState* lib = PyThreadState_Swap(native);
        {
            scoped_enter in(a);
            ASSERT_TRUE(in);
            EXPECT_EQ(test::running_interp_id(), a.id());
        }
        EXPECT_EQ(PyThreadState_Get(), native);
        PyThreadState_Swap(lib);
        PyThreadState_Clear(native);
        PyThreadState_Delete(native);
    });
}

namespace {
struct stress_result {
    std::atomic<long> calls{0};
    std::atomic<long> wrong{0};
};
}  // namespace

TEST(Enter, ManyThreadsManyInterpretersThousandsOfRoundTrips) {
    constexpr int k_interps = 3, k_threads = 4, k_rounds = 3000;
    std::vector<view> views;
    std::vector<PyObject*> fns;
    views.push_back(view::main());
    for (int i = 0; i < k_interps; ++i) views.push_back(test::make_interp(("stress" + std::to_string(i)).c_str()));
    for (auto& v : views) {
        scoped_enter in(v);
        ASSERT_TRUE(test::exec("calls = 0\ndef f(expected):\n    global calls\n    calls += 1\n"
                               "    return probe() == expected\n"));
        fns.push_back(test::main_global("f"));
        Py_INCREF(fns.back());
    }
    stress_result res;
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < k_rounds; ++i) {
                size_t k = (size_t(i) + size_t(t)) % views.size();
                scoped_enter in(views[k]);
                if (!in) {
                    res.wrong++;
                    continue;
                }
                PyObject* ok = PyObject_CallFunction(fns[k], "L", static_cast<long long>(views[k].id()));
                if (ok != Py_True) res.wrong++;
                if (ok == nullptr) PyErr_Print();
                Py_XDECREF(ok);
                res.calls++;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(res.wrong.load(), 0);
    EXPECT_EQ(res.calls.load(), long(k_threads) * k_rounds);
    long total = 0;
    for (size_t k = 0; k < views.size(); ++k) {
        scoped_enter in(views[k]);
        total += test::eval_long("calls");
        Py_DECREF(fns[k]);
    }
    EXPECT_EQ(total, long(k_threads) * k_rounds);
}

TEST(Enter, ReleaseDropsCachedStatesEarly) {
    view a = test::make_interp("release");
    int before;
    {
        scoped_enter in(a);
        before = test::count_tstates();
    }
    test::on_new_thread([&] {
        {
            scoped_enter in(a);
            EXPECT_EQ(test::count_tstates(), before + 1);
            EXPECT_EQ(pyinterp_thread_release(), PYINTERP_ERR_STATE);  // inside an entry
        }
        EXPECT_EQ(pyinterp_thread_release(), PYINTERP_OK);
        {
            view m = view::main();
            scoped_enter in(m);
            // Still usable afterwards: a new cached state is made.
            scoped_enter in_a(a);
            EXPECT_EQ(test::count_tstates(), before + 1);
        }
        EXPECT_EQ(pyinterp_thread_release(), PYINTERP_OK);
        scoped_enter in(a);
        EXPECT_EQ(test::count_tstates(), before + 1);
    });
    scoped_enter in(a);
    EXPECT_EQ(test::count_tstates(), before);
}
