// PyGILState_* follows the interpreter entered through the library, proven
// with the stdlib sqlite3 callbacks (every one enters with PyGILState_Ensure).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

// Defines sqlite_scenario(), which exercises create_function,
// create_aggregate, set_authorizer and set_progress_handler and returns
// "<callback kinds seen> <ids of the interpreters they ran in>".
const char* const k_sqlite_scenario = R"(
import sqlite3
def sqlite_scenario():
    seen = []
    def rec(kind):
        seen.append((kind, probe()))
    def f():
        rec('function'); return 1
    class Agg:
        def __init__(self):
            rec('aggregate_init'); self.n = 0
        def step(self, x):
            rec('step'); self.n += x
        def finalize(self):
            rec('finalize'); return self.n
    def auth(*args):
        rec('authorizer'); return sqlite3.SQLITE_OK
    def prog():
        rec('progress'); return 0
    con = sqlite3.connect(':memory:')
    con.create_function('f', 0, f)
    assert con.execute('select f()').fetchone() == (1,)
    con.execute('create table t(x)')
    con.executemany('insert into t values (?)', [(1,), (2,), (3,)])
    con.create_aggregate('agg', 1, Agg)
    assert con.execute('select agg(x) from t').fetchone() == (6,)
    con.set_authorizer(auth)
    con.execute('select x from t').fetchall()
    con.set_authorizer(None)
    con.set_progress_handler(prog, 1)
    con.execute('select count(*) from t').fetchone()
    con.set_progress_handler(None, 1)
    con.close()
    kinds = sorted(set(k for k, _ in seen))
    where = sorted(set(i for _, i in seen))
    return "%s %s" % (kinds, where)
)";

std::string expected(int64_t id) {
    return "['aggregate_init', 'authorizer', 'finalize', 'function', 'progress', 'step'] [" + std::to_string(id) +
           "]";
}

// Runs the scenario in the current interpreter.
std::string run_sqlite_scenario() {
    if (!test::exec(k_sqlite_scenario)) return "<error>";
    return test::eval_str("sqlite_scenario()");
}

// Runs `fn` on a new thread; if it does not finish within `seconds`, the test
// fails and the process exits (a deadlocked thread cannot be joined).
void run_with_deadline(std::function<void()> fn, int seconds) {
    struct shared {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
    };
    auto s = std::make_shared<shared>();
    std::thread t([s, fn] {
        fn();
        std::lock_guard<std::mutex> lk(s->mu);
        s->done = true;
        s->cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(s->mu);
    if (!s->cv.wait_for(lk, std::chrono::seconds(seconds), [&] { return s->done; })) {
        ADD_FAILURE() << "deadlock: the thread did not finish within " << seconds << " s";
        std::fflush(stdout);
        std::fflush(stderr);
        _exit(1);
    }
    lk.unlock();
    t.join();
}

}  // namespace

TEST(GILState, BindingFollowsEntryAndIsRestoredOnLeave) {
    view a = test::make_interp("bind_a");
    view b = test::make_interp("bind_b");
    test::on_new_thread([&] {
        EXPECT_EQ(PyGILState_GetThisThreadState(), nullptr);
        {
            scoped_enter in_a(a);
            PyThreadState* ats = PyThreadState_Get();
            EXPECT_EQ(PyGILState_GetThisThreadState(), ats);
            {
                scoped_enter in_b(b);
                EXPECT_EQ(PyGILState_GetThisThreadState(), PyThreadState_Get());
            }
            EXPECT_EQ(PyGILState_GetThisThreadState(), ats);
            // A C extension's synchronous PyGILState_Ensure runs right here.
            PyGILState_STATE g = PyGILState_Ensure();
            EXPECT_EQ(test::running_interp_id(), a.id());
            EXPECT_EQ(PyThreadState_Get(), ats);
            PyGILState_Release(g);
        }
        // Idle again: no binding, so a bare PyGILState_Ensure lands in main,
        // as CPython documents.
        EXPECT_EQ(PyGILState_GetThisThreadState(), nullptr);
        PyGILState_STATE g = PyGILState_Ensure();
        EXPECT_EQ(test::running_interp_id(), 0);
        PyGILState_Release(g);
    });
}

TEST(GILState, SqliteCallbacksRunInEnteredInterpreterAfterMainAndOthers) {
    view a = test::make_interp("sql_a");
    view b = test::make_interp("sql_b");
    view m = view::main();
    run_with_deadline(
        [&] {
            // The worker's first thread state ever is a native main one, bound
            // for PyGILState: the case where CPython 3.11 runs subinterpreter
            // callbacks in main or deadlocks.
            PyThreadState* native_main = PyThreadState_New(PyInterpreterState_Main());
            PyEval_AcquireThread(native_main);
            PyEval_ReleaseThread(native_main);
            for (const view* first : {&m, &b}) {
                scoped_enter in(*first);
                EXPECT_EQ(run_sqlite_scenario(), expected(first->id()));
            }
            for (int round = 0; round < 3; ++round) {
                scoped_enter in(a);
                EXPECT_EQ(run_sqlite_scenario(), expected(a.id()));
            }
            PyEval_AcquireThread(native_main);
            PyThreadState_Clear(native_main);
            PyThreadState_DeleteCurrent();
        },
        60);
}

TEST(GILState, SqliteCallbacksFromSeveralWorkersAndInterpreters) {
    std::vector<view> views = {view::main(), test::make_interp("sqlw_a"), test::make_interp("sqlw_b")};
    std::vector<std::thread> workers;
    std::atomic<int> failures{0};
    for (int w = 0; w < 3; ++w) {
        workers.emplace_back([&, w] {
            for (int i = 0; i < 6; ++i) {
                const view& v = views[(size_t(w) + size_t(i)) % views.size()];
                scoped_enter in(v);
                std::string got = run_sqlite_scenario();
                if (got != expected(v.id())) {
                    ADD_FAILURE() << "worker " << w << " in " << v.name() << ": " << got;
                    failures++;
                }
            }
        });
    }
    for (auto& t : workers) t.join();
    EXPECT_EQ(failures.load(), 0);
}

TEST(GILState, ReplacingSqliteFunctionDoesNotDeadlock) {
    // SQLite calls the old function's destructor synchronously, with the GIL
    // held; it enters with PyGILState_Ensure.  CPython 3.11 deadlocks here
    // on a thread whose first thread state belongs to main.
    view a = test::make_interp("replace");
    run_with_deadline(
        [&] {
            PyThreadState* native_main = PyThreadState_New(PyInterpreterState_Main());
            {
                scoped_enter in(a);
                ASSERT_TRUE(test::exec("import sqlite3\ncon = sqlite3.connect(':memory:')\n"
                                       "def g1(): return 1\ndef g2(): return 2\n"
                                       "con.create_function('f', 0, g1)\ncon.create_function('f', 0, g2)\n"
                                       "result = con.execute('select f()').fetchone()[0]\n"));
                EXPECT_EQ(test::eval_long("result"), 2);
            }
            PyEval_AcquireThread(native_main);
            PyThreadState_Clear(native_main);
            PyThreadState_DeleteCurrent();
        },
        30);
}

TEST(GILState, WithoutTheLibraryPython311RunsCallbacksInMain) {
    // Control experiment: the same scenario on raw CPython, with a thread
    // state per interpreter created once and entered with
    // PyEval_AcquireThread.  3.11 runs the callbacks in main (the thread's
    // first thread state); 3.12+ gets it right.  This is what the library's
    // binding repair is for.
    view a = test::make_interp("raw");
    PyInterpreterState* interp;
    {
        scoped_enter in(a);
        interp = PyInterpreterState_Get();
    }
    std::string where;
    run_with_deadline(
        [&] {
            PyThreadState* tmain = PyThreadState_New(PyInterpreterState_Main());
            PyThreadState* ta = PyThreadState_New(interp);
            PyEval_AcquireThread(ta);
            where = run_sqlite_scenario();
            PyThreadState_Clear(ta);
            PyThreadState_DeleteCurrent();
            PyEval_AcquireThread(tmain);
            PyThreadState_Clear(tmain);
            PyThreadState_DeleteCurrent();
        },
        60);
    if (PY_VERSION_HEX < 0x030C0000) EXPECT_EQ(where, expected(0));
    else EXPECT_EQ(where, expected(a.id()));
}
