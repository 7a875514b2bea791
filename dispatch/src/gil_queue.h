// First come, first served for threads entering through the library and
// waiting for the same GIL.
//
// The CPython behaviour worked around (Python/ceval_gil.c take_gil and
// drop_gil, 3.11 to 3.13): a thread releasing the GIL signals one waiter,
// but a thread arriving meanwhile takes the free GIL first (it checks
// `locked` under the GIL's mutex before the woken waiter does), and the
// waiter goes back to a timed wait of one switch interval.  Under a steady
// stream of requests to one GIL (httpd worker threads, each running ~1 ms
// of Python), new arrivals keep overtaking threads that have waited for
// several intervals: measured with 8 threads, p50 21 ms but p99 105-119 ms
// where first come, first served gave 59-78 ms at the same throughput.
//
// So at most one library thread at a time waits inside CPython's take_gil
// for a given GIL; the others wait here, in arrival order, and the one that
// got the GIL lets the next one go on to wait for it.  Alone (nobody else
// waiting for that GIL through the library), a thread goes straight on: two
// atomic operations.  Threads that take the GIL by other means (an
// application's own threads, code returning from Py_END_ALLOW_THREADS) are
// not ordered: they compete with the one library thread in take_gil.
#pragma once

#include <Python.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pyinterp::detail {

struct gil_queue {
    std::atomic<int> waiting{0};  // library threads between wanting the GIL and having it
    std::mutex mu;
    std::condition_variable cv;
    uint64_t next_ticket = 0;  // under mu
    uint64_t let_through = 0;  // under mu: tickets below this may go on

    // PyEval_AcquireThread(ts) in turn.  No GIL held on entry; `ts`'s
    // GIL held on return.
    void acquire(PyThreadState* ts) noexcept;

    // fork() child: the threads counted here do not exist in the child.
    void reset_after_fork() noexcept;
};

}  // namespace pyinterp::detail
