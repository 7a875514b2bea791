// Fair entry into a GIL (see gil_queue.h).
#include "gil_queue.h"

#include <new>

namespace pyinterp::detail {

void gil_queue::acquire(PyThreadState* ts) noexcept {
    if (waiting.fetch_add(1, std::memory_order_acq_rel) != 0) {
        // Others are waiting for this GIL: queue behind them.  Each thread
        // that gets the GIL with someone behind it lets exactly one more
        // through, so tickets go on in order, one at a time.
        std::unique_lock<std::mutex> lk(mu);
        uint64_t mine = next_ticket++;
        cv.wait(lk, [&] { return let_through > mine; });
    }
    PyEval_AcquireThread(ts);
    if (waiting.fetch_sub(1, std::memory_order_acq_rel) > 1) {
        std::lock_guard<std::mutex> lk(mu);
        ++let_through;
        cv.notify_all();
    }
}

void gil_queue::reset_after_fork() noexcept {
    waiting.store(0, std::memory_order_relaxed);
    // Another thread may have held them when the process forked.
    new (&mu) std::mutex;
    new (&cv) std::condition_variable;
    next_ticket = let_through = 0;
}

}  // namespace pyinterp::detail
