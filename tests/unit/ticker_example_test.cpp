// The ticker example extension (dispatch/examples/ticker.c): native threads
// owned by a module call back into the interpreter that started them; one
// stops itself from inside its callback; ending an interpreter while its
// tickers run (and foreign threads keep calling into it) joins them from the
// module's m_free inside Py_EndInterpreter; the other interpreter goes on.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;
using namespace std::chrono_literals;

namespace {

long eval_in(const view& v, const std::string& expr) {
    scoped_enter in(v);
    EXPECT_TRUE(in);
    return in ? test::eval_long(expr) : -1;
}

const char k_import[] =
    "import sys, threading\n"
    "if '" PYINTERP_PYTHON_MODULE_DIR "' not in sys.path: sys.path.insert(0, '" PYINTERP_PYTHON_MODULE_DIR "')\n"
    "import ticker\n";

// Three tickers: `t` records every tick, `s` stops itself from inside its
// callback at its fifth tick, and an anonymous one burns some CPU on every
// tick (its object is dropped at once: it keeps running).
const char k_start[] =
    "ticks = []\n"
    "starter = threading.get_ident()\n"
    "def on_tick(n):\n"
    "    ticks.append((n, probe(), threading.get_ident() != starter))\n"
    "t = ticker.start(on_tick, 0.002)\n"
    "own = []\n"
    "def self_stop(n):\n"
    "    own.append(n)\n"
    "    if n == 5:\n"
    "        s.stop()\n"
    "s = ticker.start(self_stop, 0.001)\n"
    "def busy(n):\n"
    "    x = 0\n"
    "    for i in range(20000):\n"
    "        x += i\n"
    "ticker.start(busy, 0.001)\n"
    "def hit():\n"
    "    return 1\n";

void check_ticks(const view& v) {
    scoped_enter in(v);
    ASSERT_TRUE(in);
    std::string id = std::to_string(v.id());
    // Every tick in this interpreter, on the ticker's thread, numbered 1..n.
    EXPECT_EQ(test::eval_str("[n for n, _, _ in ticks] == list(range(1, len(ticks) + 1))"), "True");
    EXPECT_EQ(test::eval_str("{where for _, where, _ in ticks}"), "{" + id + "}");
    EXPECT_EQ(test::eval_str("all(off for _, _, off in ticks)"), "True");
    // Stopped from inside its own callback: exactly five ticks.
    EXPECT_EQ(test::eval_str("own"), "[1, 2, 3, 4, 5]");
    EXPECT_EQ(test::eval_str("s.running, s.ticks, t.running"), "(False, 5, True)");
    EXPECT_EQ(test::eval_long("ticker.running()"), 2);
}

void run_scenario(pyinterp_gil_mode gil) {
    view m = view::main();
    {
        scoped_enter in(m);
        ASSERT_TRUE(in);
        ASSERT_TRUE(test::exec(k_import));
    }
    long before = eval_in(m, "ticker.threads()");
    std::vector<view> views = {test::make_interp("tick_a", gil), test::make_interp("tick_b", gil)};
    ASSERT_TRUE(views[0] && views[1]);
    for (const view& v : views) {
        scoped_enter in(v);
        ASSERT_TRUE(in);
        ASSERT_TRUE(test::exec(k_import));
        ASSERT_TRUE(test::exec(k_start));
    }
    for (const view& v : views) {
        ASSERT_TRUE(test::wait_in(v, "len(ticks) >= 20 and len(own) >= 5")) << v.name();
        check_ticks(v);
    }
    // The self-stopped tickers' threads end on their own (detached).
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (eval_in(m, "ticker.threads()") != before + 4 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(2ms);
    EXPECT_EQ(eval_in(m, "ticker.threads()"), before + 4);

    // Load on A from foreign threads while it ends.
    pyinterp::callback hit = test::make_callback(views[0], "", "hit");
    ASSERT_TRUE(hit);
    std::atomic<long> ok{0}, gone{0}, other{0};
    std::vector<std::thread> load;
    for (int i = 0; i < 2; ++i) {
        load.emplace_back([&] {
            for (;;) {
                int rc = hit.call();
                if (rc == PYINTERP_OK) ok++;
                else if (rc == PYINTERP_ERR_GONE) break;
                else other++;
            }
            gone++;
        });
    }
    while (ok.load() < 100) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(views[0].end(20000), PYINTERP_OK);
    for (auto& t : load) t.join();
    EXPECT_EQ(gone.load(), 2);
    EXPECT_EQ(other.load(), 0);
    // m_free joined A's two running tickers inside Py_EndInterpreter.
    EXPECT_EQ(eval_in(m, "ticker.threads()"), before + 2);

    // B goes on ticking.
    long seen = eval_in(views[1], "len(ticks)");
    ASSERT_TRUE(test::wait_in(views[1], "len(ticks) >= " + std::to_string(seen + 10)));
    check_ticks(views[1]);
    {
        // stop() from Python on another thread: waits for the ticker's thread.
        scoped_enter in(views[1]);
        ASSERT_TRUE(in);
        ASSERT_TRUE(test::exec("t.stop()\nstopped_at = t.ticks\n"));
        EXPECT_EQ(test::eval_str("t.running, ticker.running()"), "(False, 1)");
    }
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(eval_in(views[1], "t.ticks == stopped_at == len(ticks)"), 1);
    EXPECT_EQ(eval_in(m, "ticker.threads()"), before + 1);
    // Ending B with its busy ticker still running.
    EXPECT_EQ(views[1].end(20000), PYINTERP_OK);
    EXPECT_EQ(eval_in(m, "ticker.threads()"), before);
}

}  // namespace

TEST(TickerExample, SharedGilTicksArriveInTheirInterpreterAndEndingOneUnderLoadJoinsItsThreads) {
    run_scenario(PYINTERP_GIL_SHARED);
}

TEST(TickerExample, OwnGilTicksArriveInTheirInterpreterAndEndingOneUnderLoadJoinsItsThreads) {
    if (!pyinterp_supports_own_gil()) GTEST_SKIP() << "interpreters with their own GIL need Python 3.12+";
    run_scenario(PYINTERP_GIL_OWN);
}
