// Shared helpers for the dispatch unit tests: one Python runtime per test
// binary (a GoogleTest environment), log capture, and small Python helpers.
#pragma once

#include <Python.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pyinterp/dispatch.h"
#include "pyinterp/dispatch.hpp"

namespace test {

// Messages the library logged, for assertions.
class log_capture {
public:
    static void install();
    static bool contains(const std::string& needle, int min_level = PYINTERP_LOG_DEBUG);
    static std::vector<std::pair<int, std::string>> messages();
    static void clear();
};

// The runtime's pyinterp_config::python_path in every test binary that uses
// this environment: two directories that do not exist.
inline constexpr const char* k_python_path = "/nonexistent/pyinterp-path-a:/nonexistent/pyinterp-path-b";

// Runs `code` in the current interpreter's __main__ (GIL held).  On a Python
// error, adds a test failure with the traceback and returns false.
bool exec(const std::string& code);

// Evaluates `expr` in __main__ (GIL held).  -1 and a test failure on error.
long eval_long(const std::string& expr);
std::string eval_str(const std::string& expr);

// The id of the interpreter whose thread state is running (GIL held).
int64_t running_interp_id();

// Installs `probe()` into the current interpreter's builtins: it returns the
// id of the interpreter whose thread state runs the call, which is what a
// callback must be checked against (a Python-level global would answer
// through the function's own module, whatever interpreter runs it).
void install_probe();

// Number of thread states of the interpreter the calling thread is attached
// to (GIL held).
int count_tstates();

// Creates a shared-GIL subinterpreter with the probe installed, or fails the
// test.
pyinterp::view make_interp(const char* name, pyinterp_gil_mode gil = PYINTERP_GIL_SHARED);

// A global of the current interpreter's __main__ (GIL held), borrowed.
PyObject* main_global(const char* name);

// Runs `src` in `v` and wraps its global `name` in a callback (no GIL held).
pyinterp::callback make_callback(const pyinterp::view& v, const std::string& src, const char* name);

// Installs a C function into the current interpreter's builtins (GIL held).
void install_builtin(PyMethodDef* def);

// Waits until `expr` is true in `v`'s __main__, entering `v` to look every
// few milliseconds (no GIL held between looks).  False if `timeout` ran out.
bool wait_in(const pyinterp::view& v, const std::string& expr,
             std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A one-shot gate threads wait on without holding any GIL.
struct latch {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    void release() {
        std::lock_guard<std::mutex> lk(mu);
        open = true;
        cv.notify_all();
    }
    void wait() {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return open; });
    }
};

// Runs `fn` on a new OS thread and joins it.
template <class F>
void on_new_thread(F&& fn);

}  // namespace test

#include <thread>

template <class F>
void test::on_new_thread(F&& fn) {
    std::thread t(std::forward<F>(fn));
    t.join();
}
