// Requests that run too long, and a child that stops with requests still
// running: the httpd side of app/interrupt.h, carried out by the child's
// watchdog thread (child_watchdog.h), which has no other thread beside it.
//
// * Request timeouts: the watchdog's action for a passed timeout deadline
//   raises RequestTimeout in the request (or bounded atexit handler),
//   inside its own interpreter.
// * Stopping (httpd's child_stopping hook): at a stop, every request still
//   in Python is interrupted at once; at a graceful stop or restart, those
//   still in Python after a grace period are.  A child whose requests are
//   stuck in C (which no exception reaches) exits on its own shortly after,
//   before httpd escalates to SIGKILL (a finalization that hangs is bounded
//   by runtime.cpp).  The hook only writes down when each step is due and
//   wakes the watchdog, whose tick takes the steps.
#pragma once

#include <Python.h>

#include <httpd.h>

#include "app/executor.h"

namespace pyinterp::mod {

// How long after the stop signal a child whose requests are still in Python
// (stuck in C) exits without waiting any longer: at a stop, and at a
// graceful stop or restart after its PyInterpGracefulTimeout (config.h),
// which is how long requests in Python may run on before being interrupted.
inline constexpr int k_stop_exit_ms = 1000;
inline constexpr int k_graceful_exit_extra_ms = 400;

// Before the watchdog starts, in child_init: the executor whose requests
// are watched and the main server (its PyInterpGracefulTimeout).  No GIL.
void child_stop_init(const app::executor& ex, server_rec* s) noexcept;

// The watchdog's action for deadline_kind::timeout: logs the request with
// its stack and interrupts it (PYI0810; an atexit handler past its bound,
// PYI0813).  Inside the request's interpreter, GIL held.
void interrupt_timed_out(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind kind,
                         void* user) noexcept;

// The stop's steps that are due, on the watchdog thread at every tick, no
// GIL held: the exit of a child still busy (PYI0812), interrupting every
// request in Python (PYI0811; it takes each interpreter's GIL in turn).
void child_stop_tick() noexcept;

// httpd's child_stopping hook.  No GIL.  In a child without threads
// (prefork), which runs it from its SIGTERM handler just before exit(), it
// interrupts nothing and does not wake the watchdog (it holds it when a
// request was cut short).
void child_stopping(apr_pool_t* pchild, int graceful) noexcept;

// True once the child was told to stop (an interrupted request answers
// 503 then, not 504).  Any thread.
bool child_is_stopping() noexcept;

}  // namespace pyinterp::mod
