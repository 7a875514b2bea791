// Thin C++ RAII layer over the C API in dispatch.h.  Header-only; throws
// nothing.  Objects that can fail carry a status: test them with
// `explicit operator bool` and skip Python work when they are false.
#pragma once

#include <utility>

#include "pyinterp/dispatch.h"

namespace pyinterp {

// A copyable weak handle to an interpreter (see pyinterp_view).
class view {
public:
    view() noexcept = default;
    // Takes ownership of one reference.
    explicit view(pyinterp_view* v) noexcept : v_(v) {}
    view(const view& o) noexcept : v_(pyinterp_view_copy(o.v_)) {}
    view(view&& o) noexcept : v_(std::exchange(o.v_, nullptr)) {}
    view& operator=(view o) noexcept {
        std::swap(v_, o.v_);
        return *this;
    }
    ~view() { pyinterp_view_free(v_); }

    // The interpreter the calling thread is attached to (GIL held).
    static view current(int* status = nullptr) noexcept { return make(pyinterp_view_current, status); }
    static view main(int* status = nullptr) noexcept { return make(pyinterp_view_main, status); }
    static view find(const char* name, int* status = nullptr) noexcept {
        pyinterp_view* v = nullptr;
        int rc = pyinterp_interp_find(name, &v);
        if (status) *status = rc;
        return view(v);
    }
    static view create(const char* name, pyinterp_gil_mode gil = PYINTERP_GIL_SHARED, int* status = nullptr) noexcept {
        pyinterp_interp_config cfg{};
        cfg.gil = gil;
        pyinterp_view* v = nullptr;
        int rc = pyinterp_interp_create(name, &cfg, &v);
        if (status) *status = rc;
        return view(v);
    }

    explicit operator bool() const noexcept { return v_ != nullptr; }
    const pyinterp_view* get() const noexcept { return v_; }
    const char* name() const noexcept { return pyinterp_view_name(v_); }
    int64_t id() const noexcept { return pyinterp_view_id(v_); }
    bool own_gil() const noexcept { return pyinterp_view_own_gil(v_) != 0; }
    bool live() const noexcept { return pyinterp_view_is_live(v_) != 0; }
    int thread_states() const noexcept { return pyinterp_view_thread_states(v_); }
    // End the interpreter (see pyinterp_interp_end).
    int end(int timeout_ms = -1) const noexcept { return pyinterp_interp_end(v_, timeout_ms); }

private:
    static view make(int (*fn)(pyinterp_view**), int* status) noexcept {
        pyinterp_view* v = nullptr;
        int rc = fn(&v);
        if (status) *status = rc;
        return view(v);
    }
    pyinterp_view* v_ = nullptr;
};

// Holds an interpreter off teardown for its lifetime (see pyinterp_guard).
class guard {
public:
    explicit guard(const view& v) noexcept : status_(pyinterp_guard_new(v.get(), &g_)) {}
    guard(const guard&) = delete;
    guard& operator=(const guard&) = delete;
    ~guard() { pyinterp_guard_free(g_); }
    explicit operator bool() const noexcept { return g_ != nullptr; }
    int status() const noexcept { return status_; }
    const pyinterp_guard* get() const noexcept { return g_; }

private:
    pyinterp_guard* g_ = nullptr;
    int status_;
};

// Attaches the calling thread to an interpreter for the scope's duration
// (like pybind11's gil_scoped_acquire, but into a chosen interpreter).
class scoped_enter {
public:
    explicit scoped_enter(const view& v) noexcept : status_(pyinterp_enter(v.get(), &token_)) {}
    explicit scoped_enter(const guard& g) noexcept : status_(pyinterp_enter_guarded(g.get(), &token_)) {}
    scoped_enter(const scoped_enter&) = delete;
    scoped_enter& operator=(const scoped_enter&) = delete;
    ~scoped_enter() {
        if (status_ == PYINTERP_OK) pyinterp_leave(token_);
    }
    explicit operator bool() const noexcept { return status_ == PYINTERP_OK; }
    int status() const noexcept { return status_; }

private:
    pyinterp_token token_ = 0;
    int status_;
};

// Owns a pyinterp_callback.
class callback {
public:
    callback() noexcept = default;
    explicit callback(pyinterp_callback* cb) noexcept : cb_(cb) {}
    callback(callback&& o) noexcept : cb_(std::exchange(o.cb_, nullptr)) {}
    callback& operator=(callback&& o) noexcept {
        std::swap(cb_, o.cb_);
        return *this;
    }
    ~callback() { pyinterp_callback_free(cb_); }

    // Pair `callable` with the current interpreter (GIL held).
    static callback create(struct _object* callable, int* status = nullptr) noexcept {
        pyinterp_callback* cb = nullptr;
        int rc = pyinterp_callback_new(callable, &cb);
        if (status) *status = rc;
        return callback(cb);
    }
    explicit operator bool() const noexcept { return cb_ != nullptr; }
    int call(pyinterp_args_fn make_args = nullptr, pyinterp_result_fn on_result = nullptr,
             void* user = nullptr) noexcept {
        return pyinterp_callback_call(cb_, make_args, on_result, user);
    }
    view interpreter() const noexcept { return view(pyinterp_callback_view(cb_)); }
    pyinterp_callback* get() const noexcept { return cb_; }
    // Give up ownership (to a loop task with PYINTERP_LOOP_FREE_CALLBACK, say).
    pyinterp_callback* release() noexcept { return std::exchange(cb_, nullptr); }

private:
    pyinterp_callback* cb_ = nullptr;
};

}  // namespace pyinterp
