// Requests that run too long, and a child that stops with requests still
// running: the httpd side of app/interrupt.h.
//
// * Request timeouts: a watchdog thread (app/inflight.h) over the
//   executor's in-flight registry raises RequestTimeout in every request
//   whose PyInterpRequestTimeout passed, inside its own interpreter.
// * Stopping (httpd's child_stopping hook): at a stop, every request still
//   in Python is interrupted at once; at a graceful stop or restart, those
//   still in Python after a grace period are.  A child whose requests are
//   stuck in C (which no exception reaches) exits on its own shortly after,
//   before httpd escalates to SIGKILL (a finalization that hangs is bounded
//   by runtime.cpp).
#pragma once

#include <httpd.h>

#include "app/executor.h"

namespace pyinterp::mod {

// How long after the stop signal a child whose requests are still in Python
// (stuck in C) exits without waiting any longer: at a stop, and at a
// graceful stop or restart after its PyInterpGracefulTimeout (config.h),
// which is how long requests in Python may run on before being interrupted.
inline constexpr int k_stop_exit_ms = 1000;
inline constexpr int k_graceful_exit_extra_ms = 400;

// Starts the request-timeout watchdog over `ex`'s registry; `s` is the main
// server (its PyInterpGracefulTimeout).  No GIL.
void child_stop_start(const app::executor& ex, server_rec* s) noexcept;

// httpd's child_stopping hook.  No GIL.
void child_stopping(apr_pool_t* pchild, int graceful) noexcept;

// True once the child was told to stop (an interrupted request answers
// 503 then, not 504).  Any thread.
bool child_is_stopping() noexcept;

// Stops the watchdog (bounded).  False when it still waits for a GIL:
// Python must not be finalized then.  No GIL.
bool child_stop_watchdog_stop() noexcept;

}  // namespace pyinterp::mod
