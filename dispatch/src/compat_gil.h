/*
 * Relaying GIL drop requests between interpreters that share a GIL
 * (compat_gil.c; CPython 3.11 and 3.12 only).  C and C++.
 */
#pragma once

#include <Python.h>

/* 3.13 sets a waiter's drop request in the holder's thread state, whatever
   its interpreter (Python/ceval_gil.c take_gil); 3.11 and 3.12 set it in the
   waiter's interpreter, where another interpreter's holder never looks. */
#define PYINTERP_GIL_RELAY (PY_VERSION_HEX < 0x030D0000)

#ifdef __cplusplus
extern "C" {
#endif

#if PYINTERP_GIL_RELAY

/* What one tick leaves for the next.  Zero-initialise; one watcher only. */
struct pyinterp_gil_watch {
    void *flagged;                /* interpreter whose request the tick set */
    unsigned long flagged_switch; /* the GIL's switch number at that time */
    unsigned long last_switch;    /* switch number at the previous tick */
    int was_free;                 /* GIL free at the previous tick */
    long long free_since_us;      /* since when, without a switch (CLOCK_MONOTONIC) */
    unsigned long relayed;        /* requests relayed so far */
};

/* The shared GIL's `locked` flag (1 held, 0 free, -1 not created), for a
   relaxed read without any lock; NULL before Python is initialised. */
const int *pyinterp_compat_gil_locked_addr(void);

/* The switch interval (sys.setswitchinterval) in microseconds, at least 1. */
unsigned long pyinterp_compat_gil_interval_us(void);

/* pyinterp_compat_gil_tick() saw a waiter or a relayed request still pending. */
#define PYINTERP_GIL_WAITER 1
/* The GIL was held, or changed hands, since the previous tick. */
#define PYINTERP_GIL_USED 2

/* Look at the shared GIL once: relay a waiter's drop request to the
   interpreter whose thread holds the GIL, withdraw a relayed request that
   went stale, and release a thread parked in a hand-over nobody takes (see
   compat_gil.c).  Any thread, no GIL, while Python is initialised and not
   finalizing.  Returns PYINTERP_GIL_* bits. */
int pyinterp_compat_gil_tick(struct pyinterp_gil_watch *w);

#endif

#ifdef __cplusplus
}
#endif
