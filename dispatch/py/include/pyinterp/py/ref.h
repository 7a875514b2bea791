// pyinterp::py::ref: the owner of one strong reference to a Python object,
// move-only, in the manner of pybind11's py::object and nanobind's
// nb::object.  Replaces hand-balanced Py_DECREF blocks on every exit path.
//
// GIL: constructing from a raw pointer, moving and get() need nothing;
// copying a reference (borrow), reset() and the destructor of a non-empty
// ref need the GIL of the object's interpreter held.
//
// Internal to pyinterp (dispatch/ and mod/ share it); not installed.
#pragma once

#include <Python.h>

#include <utility>

namespace pyinterp::py {

class ref {
public:
    ref() noexcept = default;
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ref(ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    ref& operator=(ref&& o) noexcept {
        if (this != &o) reset(std::exchange(o.p_, nullptr));
        return *this;
    }
    ~ref() { Py_XDECREF(p_); }

    // Takes over a new reference (what most C API calls return); nullptr
    // gives an empty ref.
    static ref steal(PyObject* p) noexcept { return ref(p); }
    // Adds a reference to a borrowed pointer.
    static ref borrow(PyObject* p) noexcept { return ref(Py_XNewRef(p)); }

    PyObject* get() const noexcept { return p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    // Gives the reference up to the caller (a C API call that steals it).
    [[nodiscard]] PyObject* release() noexcept { return std::exchange(p_, nullptr); }
    // Drops the reference held, taking over `p` (a new reference) instead.
    void reset(PyObject* p = nullptr) noexcept {
        PyObject* old = std::exchange(p_, p);
        Py_XDECREF(old);  // after the swap: a destructor may look at this ref
    }

private:
    explicit ref(PyObject* p) noexcept : p_(p) {}
    PyObject* p_ = nullptr;
};

}  // namespace pyinterp::py
