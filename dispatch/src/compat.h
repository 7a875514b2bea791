// Version differences between CPython 3.11, 3.12 and 3.13, in one place.
// Each function names the CPython behaviour it works around.
#pragma once

#include <Python.h>
#include <pthread.h>

extern "C" {
// Defined in compat_gilstate.c, which needs CPython's internal headers:
// the address of the runtime's thread-specific key behind PyGILState_*.
Py_tss_t* pyinterp_compat_autotss_key(void);
#if PY_VERSION_HEX < 0x030C0000
const void* pyinterp_compat_current_tstate_addr(void);
#endif
}

namespace pyinterp::detail {

inline constexpr bool k_own_gil_supported = PY_VERSION_HEX >= 0x030C0000;

// CPython's "current thread state".  3.12+: the calling thread's (a C
// thread-local).  3.11: the thread state of whichever thread holds the GIL
// (_PyRuntime.gilstate.tstate_current is one global), so on 3.11 it says
// nothing about the calling thread unless compared with thread states known
// to belong to it: see attached_tstate().  No GIL needed.
inline constexpr bool k_current_is_global = PY_VERSION_HEX < 0x030C0000;

#if PY_VERSION_HEX < 0x030C0000
// _PyRuntime.gilstate.tstate_current, an atomic uintptr_t.
inline const uintptr_t* const g_current_tstate = static_cast<const uintptr_t*>(pyinterp_compat_current_tstate_addr());
#endif

inline PyThreadState* raw_current_tstate() noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    return PyThreadState_GetUnchecked();
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_UncheckedGet();
#else
    return reinterpret_cast<PyThreadState*>(__atomic_load_n(g_current_tstate, __ATOMIC_RELAXED));
#endif
}

// The runtime's PyGILState key, resolved once (see compat_gilstate.c).
inline Py_tss_t* const g_autotss_key = pyinterp_compat_autotss_key();

// The thread state PyGILState_Ensure() would use on this thread (its
// "binding"), or nullptr.  No GIL needed.
inline PyThreadState* gilstate_bound() noexcept {
    return static_cast<PyThreadState*>(pthread_getspecific(g_autotss_key->_key));
}

// Make `t` (may be nullptr) this thread's PyGILState binding, replacing
// `old`, which must be the current binding.  Called with the GIL of the
// attached thread state held.
//
// 3.11 binds the *first* thread state ever created on a thread and never
// changes it (Python/pystate.c: _PyGILState_NoteThreadState), so
// PyGILState_Ensure in a subinterpreter can land in main or deadlock
// (cpython-facts §1).  3.12+ rebinds on every activation
// (tstate_activate -> bind_gilstate_tstate).  The library applies the 3.12
// rule on 3.11 by writing the key itself, and on every version restores the
// binding a thread had before its outermost entry when it leaves, so that a
// cached thread state is never the binding of an idle thread: that is what
// makes deleting it from another thread during teardown safe (facts §3.6).
inline void gilstate_rebind(PyThreadState* old, PyThreadState* t) noexcept {
    if (old == t) return;
#if PY_VERSION_HEX >= 0x030C0000
    // Keep CPython's own flag in step with the key, as bind_gilstate_tstate()
    // and unbind_gilstate_tstate() do; deleting a thread state that still
    // carries the flag would clear the *deleting* thread's key.
    if (old != nullptr) old->_status.bound_gilstate = 0;
    pthread_setspecific(g_autotss_key->_key, t);
    if (t != nullptr) t->_status.bound_gilstate = 1;
#else
    pthread_setspecific(g_autotss_key->_key, t);
#endif
}

inline void gilstate_bind(PyThreadState* t) noexcept { gilstate_rebind(gilstate_bound(), t); }

// After `t` was activated on this thread (PyEval_AcquireThread,
// PyThreadState_Swap): 3.12+ bound it already; 3.11 needs it done.
inline void gilstate_bind_activated(PyThreadState* t, PyThreadState* bound_before) noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    (void)t;
    (void)bound_before;
#else
    gilstate_rebind(bound_before, t);
#endif
}

// Activate `next` on this thread, detaching `prev` (both non-null).
// 3.11: one shared GIL, PyThreadState_Swap only swaps the pointer.
// 3.12+: PyThreadState_Swap releases prev's GIL and takes next's, so with own
// GILs the thread never holds two (facts §3.2).
inline void switch_tstate(PyThreadState* next) noexcept {
    PyThreadState_Swap(next);
}

}  // namespace pyinterp::detail
