// An asymmetric memory fence for the entry/teardown handshake.
//
// An entering thread announces itself (cached_tstate::in_flight) and then
// reads the interpreter's state; an ending thread sets the state and then
// reads every in_flight flag.  Each side needs a StoreLoad fence between its
// store and its load, or both could miss the other.  Entries are the hot
// path and teardown is rare, so the cost is moved to the ending side: where
// Linux's membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) is available, entries
// use a compiler-only fence and the ending thread makes every running thread
// of the process execute a full barrier (the scheme of liburcu and folly's
// asymmetric fences).  Otherwise both sides use a full fence.
#pragma once

#include <atomic>

namespace pyinterp::detail {

extern std::atomic<bool> g_light_entry_fence;

// Called once by pyinterp_initialize, before any entry.
void fence_init() noexcept;

// The entering side's fence.
inline void entry_fence() noexcept {
    if (g_light_entry_fence.load(std::memory_order_relaxed)) std::atomic_signal_fence(std::memory_order_seq_cst);
    else std::atomic_thread_fence(std::memory_order_seq_cst);
}

// The ending side's fence.
void heavy_fence() noexcept;

}  // namespace pyinterp::detail
