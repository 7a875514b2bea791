// Fair hand-over of a shared GIL between interpreters: a thread waiting to
// enter one interpreter while another interpreter's thread runs pure Python
// gets in within a few switch intervals, as between threads of one
// interpreter (cpython-facts §7).  Bounds are generous: each assertion is
// "while the spin was still running", not a speed target.
#include <chrono>
#include <thread>
#include <vector>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;
using clock_type = std::chrono::steady_clock;

namespace {

// A spin runs for `k_spin_s` seconds unless stopped; each test stops it as
// soon as it has what it needs, so without a fair hand-over a test fails after
// k_spin_s instead of hanging.
constexpr double k_spin_s = 15.0;

std::atomic<bool> spinning{false};
std::atomic<bool> stop{false};
std::atomic<long> hops{0};
const pyinterp_view* hop_target = nullptr;

PyObject* py_mark_spinning(PyObject*, PyObject*) {
    spinning.store(true);
    Py_RETURN_NONE;
}
PyObject* py_stop_requested(PyObject*, PyObject*) {
    return PyBool_FromLong(stop.load(std::memory_order_relaxed) ? 1 : 0);
}
// Enters hop_target and leaves again (a nested switch of interpreters on the
// spinning thread, with the shared GIL held throughout on 3.11).
PyObject* py_hop(PyObject*, PyObject*) {
    pyinterp_token t;
    if (pyinterp_enter(hop_target, &t) != PYINTERP_OK) {
        PyErr_SetString(PyExc_RuntimeError, "hop: enter failed");
        return nullptr;
    }
    PyObject* g = PyModule_GetDict(PyImport_AddModule("__main__"));  // borrowed, of hop_target
    PyObject* r = PyRun_String("sum(range(50))", Py_eval_input, g, g);
    Py_XDECREF(r);
    PyErr_Clear();
    pyinterp_leave(t);
    hops.fetch_add(1, std::memory_order_relaxed);
    Py_RETURN_NONE;
}
PyMethodDef mark_def = {"mark_spinning", py_mark_spinning, METH_NOARGS, nullptr};
PyMethodDef stop_def = {"stop_requested", py_stop_requested, METH_NOARGS, nullptr};
PyMethodDef hop_def = {"hop", py_hop, METH_NOARGS, nullptr};

// Pure Python that never releases the GIL by itself.  With `hop`, it also
// enters another interpreter every 1000 iterations.
const char* const k_spin_src =
    "import time\n"
    "def spin(seconds, with_hops=False):\n"
    "    end = time.monotonic() + seconds\n"
    "    n = 0\n"
    "    mark_spinning()\n"
    "    while time.monotonic() < end and not stop_requested():\n"
    "        n += 1\n"
    "        if with_hops and n % 1000 == 0:\n"
    "            hop()\n"
    "    return n\n";

// A thread spinning in `a` until stopped (or k_spin_s).
struct spinner {
    std::thread th;
    std::atomic<bool> finished{false};
    long iterations = 0;

    explicit spinner(const view& a, bool with_hops = false) {
        spinning.store(false);
        stop.store(false);
        {
            scoped_enter in(a);
            test::install_builtin(&mark_def);
            test::install_builtin(&stop_def);
            test::install_builtin(&hop_def);
            EXPECT_TRUE(test::exec(k_spin_src));
        }
        th = std::thread([this, &a, with_hops] {
            scoped_enter in(a);
            EXPECT_TRUE(in);
            iterations = test::eval_long(std::string("spin(") + std::to_string(k_spin_s) + ", " +
                                         (with_hops ? "True" : "False") + ")");
            finished.store(true);
        });
        while (!spinning.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    bool running() const { return !finished.load(); }
    void finish() {
        stop.store(true);
        if (th.joinable()) th.join();
    }
    ~spinner() { finish(); }
};

// One entry into `v` from a new thread: runs a little Python, and reports
// whether the spinner was still running when the entry got in, and how long
// it waited.
struct entry_result {
    bool got_in = false;
    bool during_spin = false;
    double wait_ms = 0;
};

entry_result enter_once(const view& v, const spinner& s) {
    entry_result r;
    auto t0 = clock_type::now();
    scoped_enter in(v);
    r.during_spin = s.running();
    r.wait_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    r.got_in = static_cast<bool>(in) && test::eval_long("sum(range(100))") == 4950;
    return r;
}

}  // namespace

TEST(GilHandover, EntryIntoAnotherInterpreterGetsInWhileOneSpins) {
    view a = test::make_interp("ho_spin_a");
    view b = test::make_interp("ho_wait_b");
    spinner s(a);
    entry_result r;
    std::thread w([&] { r = enter_once(b, s); });
    w.join();
    EXPECT_TRUE(r.got_in);
    EXPECT_TRUE(r.during_spin) << "the entry into b waited " << r.wait_ms << " ms, until the spin in a ended";
    s.finish();
    EXPECT_GT(s.iterations, 0);
}

TEST(GilHandover, RepeatedEntriesIntoTwoInterpretersAllGetInWhileOneSpins) {
    // Entries into another subinterpreter and into main, from two threads,
    // one after the other: every one of them gets in while the spin runs.
    view a = test::make_interp("ho_rep_a");
    view b = test::make_interp("ho_rep_b");
    view m = view::main();
    spinner s(a);
    constexpr int k_entries = 10;
    std::vector<entry_result> rb(k_entries), rm(k_entries);
    std::thread wb([&] {
        for (auto& r : rb) r = enter_once(b, s);
    });
    std::thread wm([&] {
        for (auto& r : rm) r = enter_once(m, s);
    });
    wb.join();
    wm.join();
    s.finish();
    int during = 0;
    for (const auto* rs : {&rb, &rm}) {
        for (const entry_result& r : *rs) {
            EXPECT_TRUE(r.got_in);
            if (r.during_spin) ++during;
        }
    }
    EXPECT_EQ(during, 2 * k_entries);
}

TEST(GilHandover, SpinnerKeepsItsShareWhileOthersEnter) {
    // The hand-over goes both ways: a thread busy in b for a while does not
    // starve the spinner in a either.
    view a = test::make_interp("ho_share_a");
    view b = test::make_interp("ho_share_b");
    {
        scoped_enter in(b);
        EXPECT_TRUE(
            test::exec("import time\n"
                       "def busy(seconds):\n"
                       "    end = time.monotonic() + seconds\n"
                       "    n = 0\n"
                       "    while time.monotonic() < end:\n"
                       "        n += 1\n"
                       "    return n\n"));
    }
    spinner s(a);
    long busy = 0;
    std::thread w([&] {
        scoped_enter in(b);
        EXPECT_TRUE(s.running());
        busy = test::eval_long("busy(1.0)");
    });
    w.join();
    EXPECT_TRUE(s.running()) << "b's second of work ended only after the spin in a";
    s.finish();
    EXPECT_GT(busy, 0);
    EXPECT_GT(s.iterations, 0);
}

TEST(GilHandover, HolderHoppingBetweenInterpretersStillHandsOver) {
    // The spinning thread keeps entering a third interpreter and coming back
    // (on 3.11 a pointer swap with the GIL held): the waiter still gets in,
    // and the hopping thread is not left waiting once the waiter is gone.
    view a = test::make_interp("ho_hop_a");
    view b = test::make_interp("ho_hop_b");
    view c = test::make_interp("ho_hop_c");
    hop_target = c.get();
    hops.store(0);
    spinner s(a, /*with_hops=*/true);
    std::vector<entry_result> rs(5);
    std::thread w([&] {
        for (auto& r : rs) r = enter_once(b, s);
    });
    w.join();
    // Alone again: the hopping thread keeps hopping (it is not parked in a
    // GIL hand-over that nobody takes).
    long before = hops.load();
    auto deadline = clock_type::now() + std::chrono::seconds(5);
    while (hops.load() < before + 100 && clock_type::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_GE(hops.load(), before + 100);
    s.finish();
    hop_target = nullptr;
    for (const entry_result& r : rs) {
        EXPECT_TRUE(r.got_in);
        EXPECT_TRUE(r.during_spin) << "waited " << r.wait_ms << " ms";
    }
}

TEST(GilHandover, NoDropRequestIsLeftBehind) {
    // After hand-overs, threads alone in either interpreter release and take
    // the GIL freely: a drop request left set on an interpreter would make its
    // next holder give the GIL away and wait for a taker that never comes.
    view a = test::make_interp("ho_left_a");
    view b = test::make_interp("ho_left_b");
    {
        spinner s(a);
        for (int i = 0; i < 3; ++i) {
            entry_result r;
            std::thread w([&] { r = enter_once(b, s); });
            w.join();
            EXPECT_TRUE(r.during_spin);
        }
    }
    for (const view* v : {&a, &b}) {
        auto t0 = clock_type::now();
        std::thread alone([&] {
            scoped_enter in(*v);
            EXPECT_TRUE(test::exec("import time\nfor _ in range(200):\n    time.sleep(0)\n"));
        });
        alone.join();
        double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        EXPECT_LT(ms, 5000.0) << "200 GIL releases took " << ms << " ms";
    }
}

#if PY_VERSION_HEX < 0x030D0000
extern "C" void test_set_gil_drop_request(PyInterpreterState* interp);
extern "C" int test_gil_drop_requested(PyInterpreterState* interp);
#endif

TEST(GilHandover, OwnGilInterpretersNeitherDisturbNorAreDisturbed) {
    // With own-GIL interpreters in the process (3.12+), the hand-over of the
    // shared GIL still works, and never reaches them: a thread spinning in
    // an own-GIL interpreter is never asked to drop its GIL (on 3.12 the
    // library's watcher relays requests only between interpreters sharing
    // the main GIL), and keeps running while the shared GIL changes hands.
    if (pyinterp_supports_own_gil() == 0) GTEST_SKIP() << "needs Python 3.12+";
    view a = test::make_interp("ho_own_a");
    view b = test::make_interp("ho_own_b");
    view c = test::make_interp("ho_own_c", PYINTERP_GIL_OWN);
    PyInterpreterState* c_interp;
    std::atomic<long> c_rounds{0};
    std::atomic<bool> c_stop{false};
    {
        scoped_enter in(c);
        c_interp = PyInterpreterState_Get();
    }
    std::thread c_spin([&] {
        scoped_enter in(c);
        while (!c_stop.load()) {
            PyObject* g = PyModule_GetDict(PyImport_AddModule("__main__"));  // borrowed
            Py_XDECREF(PyRun_String("sum(range(2000))", Py_eval_input, g, g));
            c_rounds.fetch_add(1);
        }
    });
    std::atomic<int> c_asked{0};
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
        while (sampling.load()) {
#if PY_VERSION_HEX < 0x030D0000
            if (test_gil_drop_requested(c_interp)) c_asked.fetch_add(1);
#else
            (void)c_interp;
#endif
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    {
        spinner s(a);
        for (int i = 0; i < 5; ++i) {
            entry_result r;
            std::thread w([&] { r = enter_once(b, s); });
            w.join();
            EXPECT_TRUE(r.got_in);
            EXPECT_TRUE(r.during_spin) << "the entry into b waited " << r.wait_ms << " ms, until the spin ended";
        }
        long before = c_rounds.load();
        auto deadline = clock_type::now() + std::chrono::seconds(5);
        while (c_rounds.load() < before + 50 && clock_type::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        EXPECT_GE(c_rounds.load(), before + 50) << "the own-GIL interpreter stalled while the shared GIL spun";
    }
    sampling.store(false);
    sampler.join();
    c_stop.store(true);
    c_spin.join();
    EXPECT_EQ(c_asked.load(), 0) << "the own-GIL interpreter was asked to drop its GIL";
    EXPECT_EQ(c.end(), PYINTERP_OK);
}

#if PY_VERSION_HEX < 0x030D0000

TEST(GilHandover, HolderSwappingIntoAStaleRequestIsNotParked) {
    // The worst a relayed request could leave behind: a drop request set in
    // an interpreter nobody waits for, found by a thread that switches into
    // it with the shared GIL held (3.11's PyThreadState_Swap keeps the GIL).
    // Its first GIL release then waits in CPython's drop_gil for a taker that
    // never comes, unless the library releases it.  (3.12's switch takes the
    // GIL anew, which resets the request: nothing to release there.)
    view a = test::make_interp("ho_stale_a");
    view b = test::make_interp("ho_stale_b");
    PyInterpreterState* a_interp;
    {
        scoped_enter in(a);
        a_interp = PyInterpreterState_Get();
    }
    auto t0 = clock_type::now();
    std::thread t([&] {
        scoped_enter in_b(b);
        test_set_gil_drop_request(a_interp);
        scoped_enter in_a(a);
        EXPECT_TRUE(test::exec("import time\nfor _ in range(20):\n    time.sleep(0)\n"));
    });
    t.join();
    double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    EXPECT_LT(ms, 10000.0);
}
#endif
