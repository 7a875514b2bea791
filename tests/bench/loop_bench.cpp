// Callbacks per second delivered through the loop (loop.h) into 1, 2 and 4
// interpreters, against the raw cached-thread-state round trip.
//
// Every callback is a trivial Python function (`def f(): pass`) wrapped in a
// pyinterp_callback.  One foreign thread posts `k_calls` tasks with
// pyinterp_loop_call_soon, spread round-robin over the interpreters; a loop
// with one thread per interpreter delivers them.  The clock stops when the
// last task has been released, i.e. after it ran.  Baselines, on one foreign
// thread, calling the same function `k_calls` times:
//
//   raw cached tstate   PyEval_AcquireThread / call / PyEval_ReleaseThread on
//                       a thread state created once
//   callback_call       pyinterp_callback_call (enter, call, leave)
//
// On Python 3.12+ the loop runs are repeated with own-GIL interpreters.
// Prints a table; asserts nothing.  Options: --calls N (default 200000).
#include <Python.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pyinterp/dispatch.hpp"
#include "pyinterp/loop.h"

namespace {

using steady = std::chrono::steady_clock;

std::atomic<long> g_released{0};
void count_release(void*) { g_released.fetch_add(1, std::memory_order_relaxed); }

void log_to_stderr(int level, const char* message, void*) {
    if (level >= PYINTERP_LOG_WARN) std::fprintf(stderr, "pyinterp: %s\n", message);
}

struct target {
    pyinterp::view interp;
    pyinterp::callback fn;  // `f` in interp
};

// Creates an interpreter with `f` defined and wrapped.  No GIL held.
bool make_target(const std::string& name, pyinterp_gil_mode gil, target& out) {
    int rc = PYINTERP_OK;
    out.interp = pyinterp::view::create(name.c_str(), gil, &rc);
    if (!out.interp) {
        std::fprintf(stderr, "loop_bench: creating %s: %s\n", name.c_str(), pyinterp_strerror(rc));
        return false;
    }
    pyinterp::scoped_enter in(out.interp);
    if (!in) return false;
    PyObject* globals = PyDict_New();
    PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
    PyObject* r = PyRun_String("def f():\n    pass\n", Py_file_input, globals, globals);
    if (r == nullptr) PyErr_Print();
    Py_XDECREF(r);
    out.fn = pyinterp::callback::create(PyDict_GetItemString(globals, "f"), &rc);
    Py_DECREF(globals);
    return rc == PYINTERP_OK;
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

// Posts `calls` tasks round-robin over `targets` and waits until all ran.
// Returns callbacks per second, or -1.
double through_loop(std::vector<target*>& targets, long calls, double* post_ns) {
    pyinterp_loop_config cfg{};
    cfg.threads = static_cast<int>(targets.size());
    pyinterp_loop* loop = nullptr;
    if (pyinterp_loop_new(&cfg, &loop) != PYINTERP_OK) return -1;
    // Warm up: each loop thread creates its cached thread state.
    g_released = 0;
    for (target* t : targets) {
        pyinterp_loop_task task{};
        task.callback = t->fn.get();
        task.release = count_release;
        pyinterp_loop_call_soon(loop, &task, nullptr);
    }
    while (g_released.load() < long(targets.size())) std::this_thread::yield();
    g_released = 0;
    double result = -1;
    std::thread poster([&] {
        steady::time_point t0 = steady::now();
        long failed = 0;
        for (long i = 0; i < calls; ++i) {
            pyinterp_loop_task task{};
            task.callback = targets[size_t(i) % targets.size()]->fn.get();
            task.release = count_release;
            if (pyinterp_loop_call_soon(loop, &task, nullptr) != PYINTERP_OK) failed++;
        }
        *post_ns = seconds_since(t0) * 1e9 / double(calls);
        while (g_released.load(std::memory_order_relaxed) < calls - failed) std::this_thread::sleep_for(std::chrono::microseconds(50));
        double s = seconds_since(t0);
        if (failed == 0) result = double(calls) / s;
    });
    poster.join();
    pyinterp_loop_free(loop);
    return result;
}

double raw_round_trip(target& t, long calls) {
    double result = -1;
    std::thread th([&] {
        PyInterpreterState* interp = nullptr;
        PyObject* fn = nullptr;
        {
            pyinterp::scoped_enter in(t.interp);
            interp = PyInterpreterState_Get();
        }
        // Its own thread state and its own copy of `f`, as a hand-written
        // extension would have them.
        PyThreadState* ts = PyThreadState_New(interp);
        PyEval_AcquireThread(ts);
        PyObject* globals = PyDict_New();
        PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins());
        PyObject* r = PyRun_String("def f():\n    pass\n", Py_file_input, globals, globals);
        Py_XDECREF(r);
        fn = PyDict_GetItemString(globals, "f");
        Py_XINCREF(fn);
        Py_DECREF(globals);
        PyEval_ReleaseThread(ts);
        steady::time_point t0 = steady::now();
        for (long i = 0; i < calls; ++i) {
            PyEval_AcquireThread(ts);
            PyObject* res = PyObject_CallNoArgs(fn);
            Py_XDECREF(res);
            PyEval_ReleaseThread(ts);
        }
        result = double(calls) / seconds_since(t0);
        PyEval_AcquireThread(ts);
        Py_XDECREF(fn);
        PyThreadState_Clear(ts);
        PyThreadState_DeleteCurrent();
    });
    th.join();
    return result;
}

double callback_call_round_trip(target& t, long calls) {
    double result = -1;
    std::thread th([&] {
        t.fn.call();  // creates this thread's cached thread state
        steady::time_point t0 = steady::now();
        for (long i = 0; i < calls; ++i) t.fn.call();
        result = double(calls) / seconds_since(t0);
    });
    th.join();
    return result;
}

void print_row(const char* what, double per_s, double post_ns = -1) {
    if (per_s < 0) {
        std::printf("  %-44s %14s\n", what, "failed");
    } else if (post_ns >= 0) {
        std::printf("  %-44s %14.0f %10.0f %12.0f\n", what, per_s, 1e9 / per_s, post_ns);
    } else {
        std::printf("  %-44s %14.0f %10.0f\n", what, per_s, 1e9 / per_s);
    }
}

void loop_rows(const char* label, std::vector<target>& pool, long calls) {
    for (size_t n : {size_t(1), size_t(2), size_t(4)}) {
        if (n > pool.size()) break;
        std::vector<target*> targets;
        for (size_t i = 0; i < n; ++i) targets.push_back(&pool[i]);
        double post_ns = 0;
        double r = through_loop(targets, calls, &post_ns);
        std::string what = std::string("loop -> ") + std::to_string(n) + " " + label + " interp" + (n > 1 ? "s" : "") +
                           " (" + std::to_string(n) + " loop thread" + (n > 1 ? "s" : "") + ")";
        print_row(what.c_str(), r, post_ns);
    }
}

}  // namespace

int main(int argc, char** argv) {
    long calls = 200000;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--calls") == 0) calls = std::atol(argv[i + 1]);
    }
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, nullptr);
    pyinterp_config config{};
    config.no_site = 1;
    if (pyinterp_initialize(&config) != PYINTERP_OK) return 1;
    int status = 0;
    {
        std::vector<target> shared(4), own;
        for (int i = 0; i < 4; ++i)
            if (!make_target("bench_shared_" + std::to_string(i), PYINTERP_GIL_SHARED, shared[size_t(i)])) status = 1;
        if (status == 0 && pyinterp_supports_own_gil()) {
            own.resize(4);
            for (int i = 0; i < 4; ++i)
                if (!make_target("bench_own_" + std::to_string(i), PYINTERP_GIL_OWN, own[size_t(i)])) status = 1;
        }
        if (status == 0) {
            std::printf("pyinterp loop_bench: Python %s, %ld calls of a trivial function, %u CPUs\n", PY_VERSION, calls,
                        std::thread::hardware_concurrency());
            std::printf("  %-44s %14s %10s %12s\n", "", "calls/s", "ns/call", "post ns/call");
            print_row("raw cached tstate round trip (1 thread)", raw_round_trip(shared[0], calls));
            print_row("pyinterp_callback_call (1 thread)", callback_call_round_trip(shared[0], calls));
            loop_rows("shared-GIL", shared, calls);
            if (!own.empty()) loop_rows("own-GIL", own, calls);
        }
        for (target& t : shared) {
            t.fn = pyinterp::callback();
            if (t.interp) t.interp.end();
        }
        for (target& t : own) {
            t.fn = pyinterp::callback();
            if (t.interp) t.interp.end();
        }
    }
    if (pyinterp_finalize() != PYINTERP_OK) status = 1;
    return status;
}
