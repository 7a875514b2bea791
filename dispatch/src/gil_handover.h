// Fair hand-over of the shared GIL between interpreters (CPython 3.11 and
// 3.12; nothing to do on 3.13+).  A library thread, the GIL watcher, relays
// a waiter's GIL drop request to the interpreter whose thread holds the GIL
// (compat_gil.c says why and how).  It sleeps while nobody waits; a thread
// about to wait for a held shared GIL wakes it.
#pragma once

#include <atomic>

#include "compat_gil.h"

namespace pyinterp::detail {

// The watcher is needed from the first shared-GIL subinterpreter on: start
// it (once; restarted in a forked child by the first waiter).  Any thread,
// any GIL state.
void gil_handover_enable() noexcept;

// Stop and join the watcher before Python finalizes.  Idempotent; any thread
// but the watcher, no GIL needed.
void gil_handover_stop() noexcept;

#if PYINTERP_GIL_RELAY
// While the watcher sleeps: the shared GIL's `locked` flag (static storage
// in CPython's runtime state, valid for the process's life).  Otherwise
// nullptr.  Read on every entry (hidden: no GOT indirection).
extern std::atomic<const int*> g_gil_watch_asleep __attribute__((visibility("hidden")));

void gil_handover_wake() noexcept;
#endif

// Called by a thread about to take a GIL it may have to wait for: if the
// shared GIL is held and the watcher sleeps, wake it.  Cost when the watcher
// is awake or the GIL free: one or two loads.  (An own-GIL interpreter's
// entry on 3.12 may wake it needlessly: it then finds no waiter and sleeps.)
inline void gil_handover_before_wait() noexcept {
#if PYINTERP_GIL_RELAY
    const int* locked = g_gil_watch_asleep.load(std::memory_order_relaxed);
    if (locked != nullptr && __atomic_load_n(locked, __ATOMIC_RELAXED) > 0) gil_handover_wake();
#endif
}

}  // namespace pyinterp::detail
