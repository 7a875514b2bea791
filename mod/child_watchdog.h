// The watchdog thread of an httpd child (app/inflight.h), with httpd's
// actions: the slow-request log (PyInterpSlowRequestTime, PYI0801) goes to
// the main server's error log; every tick it samples the child's counters
// (app/metrics.h) and answers the status page's requests for stacks
// (status_stacks.h).  Started in child_init once the executor exists,
// stopped at child exit before Python is finalized.
#pragma once

#include <httpd.h>

#include "app/executor.h"

namespace pyinterp::mod {

// Starts the child's watchdog over `ex`'s registry.  Failures are logged.
// No GIL.
// `counters` may be nullptr (counting is off).
void child_watchdog_start(const app::executor& ex, app::metrics::child_metrics* counters, server_rec* s) noexcept;

// Stops it (bounded).  False when it did not stop in time (it waits for an
// interpreter's GIL): Python must not be finalized then.  No GIL.
bool child_watchdog_stop() noexcept;

}  // namespace pyinterp::mod
