// The watchdog thread of an httpd child (app/inflight.h): one per child,
// doing everything that looks at requests from outside them.
//
// * Deadline actions, inside the request's interpreter: a slow request's
//   stack goes to the main server's error log (PyInterpSlowRequestTime,
//   PYI0801); a request past its PyInterpRequestTimeout, or an atexit
//   handler past its bound, is interrupted (child_stop.h).
// * Every tick, no GIL: the stop's steps that are due (child_stop.h), the
//   counters' sampling (app/metrics.h) and the status page's requests for
//   stacks (status_stacks.h).
//
// Started in child_init once the executor exists; stopped once, at child
// exit, after the applications' atexit handlers (whose bound it enforces)
// and before Python is finalized.
#pragma once

#include <httpd.h>

#include "app/executor.h"

namespace pyinterp::mod {

// Starts the child's watchdog over `ex`'s registry.  `counters` may be
// nullptr (counting is off).  Failures are logged.  No GIL.
void child_watchdog_start(const app::executor& ex, app::metrics::child_metrics* counters, server_rec* s) noexcept;

// Makes it tick now (app::watchdog::wake: no lock taken).  False when no
// watchdog runs.  Any thread.
bool child_watchdog_wake() noexcept;

// Makes it do nothing more (app::watchdog::hold): for a child about to
// exit() from its SIGTERM handler.  Async-signal-safe.
void child_watchdog_hold() noexcept;

// Stops it (bounded).  False when it did not stop in time (it waits for an
// interpreter's GIL): Python must not be finalized then.  No GIL.
bool child_watchdog_stop() noexcept;

}  // namespace pyinterp::mod
