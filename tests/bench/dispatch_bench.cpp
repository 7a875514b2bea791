// Microbenchmarks for the dispatch library (Google Benchmark).
//
// The first group measures one round trip from a foreign OS thread: enter an
// interpreter, call a trivial Python function (`def f(): return None`, looked
// up once), leave, detached again.  It compares the library's cached thread
// states with the raw CPython ways of doing the same (cpython-facts §5):
//
//   BM_Library           pyinterp_enter / call / pyinterp_leave
//   BM_RawCachedTstate   PyEval_AcquireThread / call / PyEval_ReleaseThread on
//                        a thread state created once per thread
//   BM_GILStateEnsure    PyGILState_Ensure / call / PyGILState_Release on a
//                        thread with no thread state (one is created and
//                        destroyed every call), in the main interpreter
//   BM_NewTstatePerCall  PyThreadState_New ... PyThreadState_DeleteCurrent
//                        every call
//
// The second group (Python 3.12+) runs CPU-bound pure-Python work on one or two
// threads, each in an interpreter of its own, with own GILs
// (BM_OwnGilParallel) and with the shared GIL (BM_SharedGilParallel).
//
// Every benchmark thread starts and ends with no Python thread state: each
// benchmark deletes what it created on that thread after its loop, and every
// iteration leaves the thread detached (a thread holding a GIL at the loop's
// closing barrier would deadlock the others).  Ratios are computed elsewhere
// from the JSON output (--benchmark_format=json), so this program adds nothing
// to stdout; notes go to stderr.
#include <Python.h>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <thread>
#include <atomic>
#include <vector>
#include <mutex>
#include <condition_variable>

#include "pyinterp/dispatch.hpp"

namespace {

// One interpreter used by the parallel benchmarks and the work function
// defined in it.
struct parallel_slot {
    pyinterp::view interp;
    PyObject* work = nullptr;  // belongs to `interp`; a new reference
};

// Everything the benchmarks share, set up once in main() before they run.
//
// Each PyObject* belongs to the interpreter named next to it and is only
// touched with that interpreter entered.  The struct lives on main()'s stack
// and reaches the benchmarks through the registered lambdas, so no Python
// object sits in a static (style.md: per-interpreter state never in globals).
struct bench_fixture {
    pyinterp::view sub;                      // shared-GIL subinterpreter
    PyInterpreterState* sub_state = nullptr; // its PyInterpreterState, for the raw benchmarks
    PyObject* sub_noop = nullptr;            // `f` defined in `sub`
    pyinterp::view main;                     // the main interpreter
    PyObject* main_noop = nullptr;           // `f` defined in main
    parallel_slot own[2];                    // own-GIL interpreters A and B (3.12+)
    parallel_slot shared[2];                 // shared-GIL interpreters A and B (3.12+)
};

constexpr const char* k_noop_source = "def f():\n    return None\n";
constexpr const char* k_work_source =
    "def work():\n"
    "    return sum(i * i for i in range(20000))\n";

// Forward the library's warnings and errors (Python tracebacks included) to
// stderr; the library itself never prints.  Any thread, any GIL state.
void log_to_stderr(int level, const char* message, void*) {
    static const char* const names[] = {"debug", "info", "warn", "error"};
    std::fprintf(stderr, "pyinterp %s: %s\n", level >= 0 && level <= 3 ? names[level] : "?", message);
}

// Run `source` in a fresh namespace of the current interpreter and return a
// new reference to the global `name` it defines, or nullptr (the exception is
// printed).  GIL of the target interpreter held.
PyObject* define_function(const char* source, const char* name) {
    PyObject* globals = PyDict_New();
    if (globals == nullptr || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0) {
        PyErr_Print();
        Py_XDECREF(globals);
        return nullptr;
    }
    PyObject* result = PyRun_String(source, Py_file_input, globals, globals);
    PyObject* fn = nullptr;
    if (result != nullptr) {
        fn = PyDict_GetItemString(globals, name);  // borrowed
        Py_XINCREF(fn);
        if (fn == nullptr) std::fprintf(stderr, "dispatch_bench: the code did not define %s\n", name);
    } else {
        PyErr_Print();
    }
    Py_XDECREF(result);
    Py_DECREF(globals);  // the function keeps its globals alive
    return fn;
}

// Enter `v` and define `name` from `source` in it.  No GIL needed.
PyObject* define_in(const pyinterp::view& v, const char* source, const char* name) {
    pyinterp::scoped_enter in(v);
    if (!in) {
        std::fprintf(stderr, "dispatch_bench: entering '%s' failed: %s\n", v.name(), pyinterp_strerror(in.status()));
        return nullptr;
    }
    return define_function(source, name);
}

// Call `fn` with no arguments and drop the result; false (exception printed)
// if it raised.  GIL of fn's interpreter held.
bool call_and_drop(PyObject* fn) {
    PyObject* r = PyObject_CallNoArgs(fn);
    if (r == nullptr) {
        PyErr_Print();
        return false;
    }
    Py_DECREF(r);
    return true;
}

// One library round trip: enter, call, leave.  No GIL held on entry or exit.
// Returns nullptr or a static error message.
const char* library_round_trip(const pyinterp_view* v, PyObject* fn) {
    pyinterp_token token;
    if (pyinterp_enter(v, &token) != PYINTERP_OK) return "pyinterp_enter failed";
    bool ok = call_and_drop(fn);
    if (pyinterp_leave(token) != PYINTERP_OK) return "pyinterp_leave failed";
    return ok ? nullptr : "the Python call raised";
}

// ------------------------------------------------------------- benchmarks

// (1) Through the library.  The first entry on a thread creates its cached
// thread state: done once before the timed loop, then dropped after it.
void bm_library(benchmark::State& state, const bench_fixture& fx) {
    const pyinterp_view* v = fx.sub.get();
    if (const char* err = library_round_trip(v, fx.sub_noop)) state.SkipWithError(err);
    for (auto _ : state) {
        if (const char* err = library_round_trip(v, fx.sub_noop)) {
            state.SkipWithError(err);
            break;
        }
    }
    pyinterp_thread_release();
}

// (2) Raw CPython with a thread state created once per benchmark thread.
// Deleted on its own thread after the loop (facts §3.6).
void bm_raw_cached_tstate(benchmark::State& state, const bench_fixture& fx) {
    PyThreadState* ts = PyThreadState_New(fx.sub_state);
    if (ts == nullptr) state.SkipWithError("PyThreadState_New failed");
    for (auto _ : state) {
        PyEval_AcquireThread(ts);
        bool ok = call_and_drop(fx.sub_noop);
        PyEval_ReleaseThread(ts);
        if (!ok) {
            state.SkipWithError("the Python call raised");
            break;
        }
    }
    if (ts != nullptr) {
        PyEval_AcquireThread(ts);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
    }
}

// (3) PyGILState_Ensure on a thread with no thread state: CPython creates a
// main-interpreter thread state and destroys it on every call.  Skipped if
// the thread has a PyGILState binding (Ensure would then reuse it and
// measure something else).
void bm_gilstate_ensure(benchmark::State& state, const bench_fixture& fx) {
    if (PyGILState_GetThisThreadState() != nullptr)
        state.SkipWithError("the thread already has a PyGILState binding");
    for (auto _ : state) {
        PyGILState_STATE g = PyGILState_Ensure();
        bool ok = call_and_drop(fx.main_noop);
        PyGILState_Release(g);
        if (!ok) {
            state.SkipWithError("the Python call raised");
            break;
        }
    }
}

// (4) A new thread state for every call.
void bm_new_tstate_per_call(benchmark::State& state, const bench_fixture& fx) {
    for (auto _ : state) {
        PyThreadState* ts = PyThreadState_New(fx.sub_state);
        if (ts == nullptr) {
            state.SkipWithError("PyThreadState_New failed");
            break;
        }
        PyEval_AcquireThread(ts);
        bool ok = call_and_drop(fx.sub_noop);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
        if (!ok) {
            state.SkipWithError("the Python call raised");
            break;
        }
    }
}

// (5) CPU-bound work on `workers` threads, worker i in interpreter slots[i].
//
// One benchmark iteration hands a batch of calls to every worker and waits
// for the slowest, so the time is the group's wall time.  (Google Benchmark's
// own ->Threads(2) averages each thread's time; with one GIL, scheduling is
// unfair, one thread finishes early, and that average flatters the shared
// GIL by up to a third.)
void bm_parallel(benchmark::State& state, const parallel_slot (&slots)[2]) {
    constexpr int k_batch = 4;
    const int workers = static_cast<int>(state.range(0));
    std::mutex mu;
    std::condition_variable cv;
    long generation = 0;  // bumped to start a batch
    int running = 0;      // workers still in the current batch
    bool quit = false;
    std::atomic<const char*> error{nullptr};
    std::vector<std::thread> threads;
    for (int i = 0; i < workers; ++i) {
        threads.emplace_back([&, i] {
            const parallel_slot& slot = slots[i];
            long seen = 0;
            for (;;) {
                {
                    std::unique_lock<std::mutex> lk(mu);
                    cv.wait(lk, [&] { return quit || generation != seen; });
                    if (quit) break;
                    seen = generation;
                }
                for (int k = 0; k < k_batch; ++k) {
                    if (const char* err = library_round_trip(slot.interp.get(), slot.work)) error = err;
                }
                std::lock_guard<std::mutex> lk(mu);
                if (--running == 0) cv.notify_all();
            }
            pyinterp_thread_release();
        });
    }
    auto run_batch = [&] {
        std::unique_lock<std::mutex> lk(mu);
        running = workers;
        ++generation;
        cv.notify_all();
        cv.wait(lk, [&] { return running == 0; });
    };
    run_batch();  // warm-up: every worker creates its cached thread state
    for (auto _ : state) run_batch();
    {
        std::lock_guard<std::mutex> lk(mu);
        quit = true;
        cv.notify_all();
    }
    for (auto& t : threads) t.join();
    if (const char* err = error.load()) state.SkipWithError(err);
    state.SetItemsProcessed(state.iterations() * workers * k_batch);
}

// ------------------------------------------------------------ set-up, main

// Create the interpreters and define the functions.  No GIL held.
bool set_up(bench_fixture& fx) {
    int rc = PYINTERP_OK;
    fx.main = pyinterp::view::main(&rc);
    if (!fx.main) {
        std::fprintf(stderr, "dispatch_bench: no main view: %s\n", pyinterp_strerror(rc));
        return false;
    }
    fx.sub = pyinterp::view::create("bench_sub", PYINTERP_GIL_SHARED, &rc);
    if (!fx.sub) {
        std::fprintf(stderr, "dispatch_bench: creating bench_sub failed: %s\n", pyinterp_strerror(rc));
        return false;
    }
    {
        pyinterp::scoped_enter in(fx.sub);
        if (!in) return false;
        fx.sub_state = PyInterpreterState_Get();
        fx.sub_noop = define_function(k_noop_source, "f");
    }
    fx.main_noop = define_in(fx.main, k_noop_source, "f");
    if (fx.sub_noop == nullptr || fx.main_noop == nullptr) return false;

    if (!pyinterp_supports_own_gil()) return true;
    static const char* const own_names[2] = {"bench_own_a", "bench_own_b"};
    static const char* const shared_names[2] = {"bench_shared_a", "bench_shared_b"};
    for (int i = 0; i < 2; ++i) {
        fx.own[i].interp = pyinterp::view::create(own_names[i], PYINTERP_GIL_OWN, &rc);
        if (!fx.own[i].interp) {
            std::fprintf(stderr, "dispatch_bench: creating %s failed: %s\n", own_names[i], pyinterp_strerror(rc));
            return false;
        }
        fx.shared[i].interp = pyinterp::view::create(shared_names[i], PYINTERP_GIL_SHARED, &rc);
        if (!fx.shared[i].interp) {
            std::fprintf(stderr, "dispatch_bench: creating %s failed: %s\n", shared_names[i], pyinterp_strerror(rc));
            return false;
        }
        fx.own[i].work = define_in(fx.own[i].interp, k_work_source, "work");
        fx.shared[i].work = define_in(fx.shared[i].interp, k_work_source, "work");
        if (fx.own[i].work == nullptr || fx.shared[i].work == nullptr) return false;
    }
    return true;
}

// Drop `*obj` inside its interpreter `v`.  No GIL held.
void release_in(const pyinterp::view& v, PyObject** obj) {
    if (*obj == nullptr || !v) return;
    pyinterp::scoped_enter in(v);
    if (in) Py_CLEAR(*obj);
}

// Release the function objects, end the subinterpreters and drop the views.
// No GIL held.
void tear_down(bench_fixture& fx) {
    release_in(fx.sub, &fx.sub_noop);
    release_in(fx.main, &fx.main_noop);
    for (parallel_slot* group : {fx.own, fx.shared}) {
        for (int i = 0; i < 2; ++i) {
            release_in(group[i].interp, &group[i].work);
            if (group[i].interp) {
                if (int rc = group[i].interp.end(); rc != PYINTERP_OK)
                    std::fprintf(stderr, "dispatch_bench: ending %s: %s\n", group[i].interp.name(), pyinterp_strerror(rc));
            }
            group[i].interp = pyinterp::view();
        }
    }
    if (fx.sub) {
        if (int rc = fx.sub.end(); rc != PYINTERP_OK)
            std::fprintf(stderr, "dispatch_bench: ending bench_sub: %s\n", pyinterp_strerror(rc));
    }
    fx.sub = pyinterp::view();
    fx.main = pyinterp::view();
}

void register_benchmarks(const bench_fixture& fx) {
    const bench_fixture* f = &fx;
    benchmark::RegisterBenchmark("BM_Library", [f](benchmark::State& s) { bm_library(s, *f); })
        ->Threads(1)->Threads(4)->UseRealTime();
    benchmark::RegisterBenchmark("BM_RawCachedTstate", [f](benchmark::State& s) { bm_raw_cached_tstate(s, *f); })
        ->Threads(1)->Threads(4)->UseRealTime();
    benchmark::RegisterBenchmark("BM_GILStateEnsure", [f](benchmark::State& s) { bm_gilstate_ensure(s, *f); })
        ->Threads(1)->Threads(4)->UseRealTime();
    benchmark::RegisterBenchmark("BM_NewTstatePerCall", [f](benchmark::State& s) { bm_new_tstate_per_call(s, *f); })
        ->Threads(1)->Threads(4)->UseRealTime();
    if (!pyinterp_supports_own_gil()) {
        std::fprintf(stderr,
                     "dispatch_bench: note: Python %s has no per-interpreter GIL; "
                     "BM_OwnGilParallel and BM_SharedGilParallel are not registered\n",
                     PY_VERSION);
        return;
    }
    benchmark::RegisterBenchmark("BM_OwnGilParallel", [f](benchmark::State& s) { bm_parallel(s, f->own); })
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
    benchmark::RegisterBenchmark("BM_SharedGilParallel", [f](benchmark::State& s) { bm_parallel(s, f->shared); })
        ->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, nullptr);
    pyinterp_config config{};
    config.no_site = 1;
    int rc = pyinterp_initialize(&config);
    if (rc != PYINTERP_OK) {
        std::fprintf(stderr, "dispatch_bench: pyinterp_initialize: %s\n", pyinterp_strerror(rc));
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    int status = 0;
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        status = 1;
    } else {
        bench_fixture fx;
        if (set_up(fx)) {
            register_benchmarks(fx);
            // Google Benchmark runs a benchmark's thread 0 on the thread that
            // calls RunSpecifiedBenchmarks.  The main thread caches thread
            // states (pyinterp_initialize, the set-up above), so run from a
            // fresh thread: every benchmark thread is then a foreign pthread
            // that never had a Python thread state.
            std::thread runner([] { benchmark::RunSpecifiedBenchmarks(); });
            runner.join();
        } else {
            status = 1;
        }
        tear_down(fx);
    }
    benchmark::Shutdown();
    rc = pyinterp_finalize();
    if (rc != PYINTERP_OK) {
        std::fprintf(stderr, "dispatch_bench: pyinterp_finalize: %s\n", pyinterp_strerror(rc));
        status = 1;
    }
    return status;
}
