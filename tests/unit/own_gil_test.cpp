// Interpreters with their own GIL (Python 3.12+).
#include <chrono>
#include <thread>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

// rendezvous(i): holding the calling interpreter's GIL, without running the
// eval loop (so that GIL is never handed over), announce arrival i and wait
// up to `timeout_ms` for the other of the two.  True only if both threads
// held a GIL at the same time.
std::atomic<int> arrived[2];
long rendezvous_timeout_ms = 10000;

PyObject* py_rendezvous(PyObject*, PyObject* arg) {
    long i = PyLong_AsLong(arg);
    if (i != 0 && i != 1) {
        PyErr_SetString(PyExc_ValueError, "rendezvous(0|1)");
        return nullptr;
    }
    arrived[i].store(1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(rendezvous_timeout_ms);
    while (arrived[1 - i].load() == 0) {
        if (std::chrono::steady_clock::now() > deadline) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}
PyMethodDef rendezvous_def = {"rendezvous", py_rendezvous, METH_O, nullptr};

// Two threads, each in its own interpreter, run Python that meets the other
// inside rendezvous(); returns how many of the two met.
int run_pair(const view& x, const view& y) {
    arrived[0] = arrived[1] = 0;
    for (const view* v : {&x, &y}) {
        scoped_enter in(*v);
        test::install_builtin(&rendezvous_def);
        EXPECT_TRUE(test::exec("def meet(i):\n    s = sum(k * k for k in range(10000))\n"
                               "    return rendezvous(i) and s > 0\n"));
    }
    std::atomic<int> met{0};
    auto body = [&](const view& v, int i) {
        scoped_enter in(v);
        if (test::eval_str("meet(" + std::to_string(i) + ")") == "True") met++;
    };
    std::thread t0(body, std::cref(x), 0), t1(body, std::cref(y), 1);
    t0.join();
    t1.join();
    return met.load();
}

bool own_gil_available() { return pyinterp_supports_own_gil() != 0; }

}  // namespace

TEST(OwnGil, TwoInterpretersRunPythonAtTheSameTime) {
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    view x = test::make_interp("own_x", PYINTERP_GIL_OWN);
    view y = test::make_interp("own_y", PYINTERP_GIL_OWN);
    ASSERT_TRUE(x.own_gil() && y.own_gil());
    rendezvous_timeout_ms = 10000;
    EXPECT_EQ(run_pair(x, y), 2);
}

TEST(OwnGil, SharedGilInterpretersCannotMeet) {
    // Control for the test above: with one GIL the first thread waits alone.
    view x = test::make_interp("shared_x");
    view y = test::make_interp("shared_y");
    rendezvous_timeout_ms = 300;
    EXPECT_LT(run_pair(x, y), 2);
}

TEST(OwnGil, SwitchingReleasesTheGilLeft) {
    // A thread inside X enters Y (own GIL each): X's GIL must be free
    // meanwhile, so another thread can run in X.
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    view x = test::make_interp("sw_x", PYINTERP_GIL_OWN);
    view y = test::make_interp("sw_y", PYINTERP_GIL_OWN);
    std::atomic<bool> other_ran{false};
    test::on_new_thread([&] {
        scoped_enter in_x(x);
        {
            scoped_enter in_y(y);
            EXPECT_EQ(test::running_interp_id(), y.id());
            std::thread other([&] {
                scoped_enter ox(x);
                other_ran = ox && test::running_interp_id() == x.id();
            });
            Py_BEGIN_ALLOW_THREADS  // only Y's GIL is released here
            other.join();
            Py_END_ALLOW_THREADS
        }
        EXPECT_EQ(test::running_interp_id(), x.id());
    });
    EXPECT_TRUE(other_ran.load());
}

TEST(OwnGil, ModulesThatNeedMainFirstImportInTwoInterpreters) {
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    view x = test::make_interp("dt_x", PYINTERP_GIL_OWN);
    view y = test::make_interp("dt_y", PYINTERP_GIL_OWN);
    // 3.12.1 cannot load _zoneinfo in an own-GIL interpreter at all (its
    // _datetime falls back to pure Python there); 3.13 can, once main
    // imported datetime first (facts §4).
    std::string imports = PY_VERSION_HEX >= 0x030D0000 ? "import datetime, zoneinfo, json\n" : "import datetime, json\n";
    for (const view* v : {&x, &y}) {
        scoped_enter in(*v);
        ASSERT_TRUE(test::exec(imports + "d = datetime.datetime(2024, 1, 2, 3, 4, 5).isoformat()\n"));
        EXPECT_EQ(test::eval_str("d"), "2024-01-02T03:04:05");
    }
}

TEST(OwnGil, SqliteCallbacksAndTeardownWithOtherThreads) {
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    view x = test::make_interp("own_sql", PYINTERP_GIL_OWN);
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&] {
            scoped_enter in(x);
            if (!in) return;
            test::exec("import sqlite3\ndef scenario():\n    ids = set()\n"
                       "    con = sqlite3.connect(':memory:')\n"
                       "    con.create_function('f', 0, lambda: ids.add(probe()) or 1)\n"
                       "    con.execute('select f()').fetchone()\n    con.close()\n    return ids\n");
            if (test::eval_str("scenario()") == "{" + std::to_string(x.id()) + "}") good++;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(good.load(), 3);
    EXPECT_EQ(x.end(), PYINTERP_OK);
}

TEST(OwnGil, MainImportsTheCrashProneModulesBeforeTheFirstOne) {
    // datetime, zoneinfo, decimal and asyncio crash the process when an
    // own-GIL interpreter initialises their extension modules first (facts
    // §4): the library imports them in main before it creates one.
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    const std::string check = "all(m in __import__('sys').modules for m in ('datetime', 'zoneinfo', 'decimal', 'asyncio'))";
    {
        scoped_enter in(view::main());
        EXPECT_EQ(test::eval_str("'asyncio' in __import__('sys').modules"), "False");
    }
    view x = test::make_interp("pre_x", PYINTERP_GIL_OWN);
    scoped_enter in(view::main());
    EXPECT_EQ(test::eval_str(check), "True");
}

TEST(OwnGil, DaemonThreadsRunButForkIsRefused) {
    if (!own_gil_available()) GTEST_SKIP() << "needs Python 3.12+";
    view x = test::make_interp("daemon_x", PYINTERP_GIL_OWN);
    {
        scoped_enter in(x);
        ASSERT_TRUE(test::exec("import os, threading\n"
                               "ran = []\n"
                               "t = threading.Thread(target=lambda: ran.append(1), daemon=True)\n"
                               "t.start(); t.join()\n"
                               "try:\n"
                               "    pid = os.fork()\n"
                               "    if pid == 0:\n"
                               "        os._exit(0)\n"
                               "    os.waitpid(pid, 0)\n"
                               "    fork = 'forked'\n"
                               "except RuntimeError:\n"
                               "    fork = 'refused'\n"));
        EXPECT_EQ(test::eval_str("ran"), "[1]");
        EXPECT_EQ(test::eval_str("fork"), "refused");
    }
    EXPECT_EQ(x.end(), PYINTERP_OK);
}
