/*
 * Fair hand-over of the shared GIL between interpreters, for CPython 3.11
 * and 3.12.  Reads and writes CPython's internal GIL and eval-loop state, so
 * it is compiled against the internal headers of the Python the library links
 * with (like compat_gilstate.c).  See gil_handover.cpp for the thread that
 * calls pyinterp_compat_gil_tick() and cpython-facts §7 for the defect.
 *
 * The CPython behaviour worked around (Python/ceval_gil.h take_gil() on 3.11,
 * Python/ceval_gil.c on 3.12): a thread that has waited one switch interval
 * for the GIL asks the holder to drop it with SET_GIL_DROP_REQUEST(interp),
 * which sets gil_drop_request and eval_breaker in the *waiter's own*
 * interpreter (interp->ceval).  The holder's eval loop only reads its own
 * interpreter's eval_breaker, so a holder running pure Python in another
 * interpreter that shares the GIL never sees the request and keeps the GIL
 * until it blocks or returns.  3.13 sets the request in the holder's thread
 * state instead (_Py_set_eval_breaker_bit(gil->last_holder, ...)); nothing
 * is needed there.
 *
 * The tick relays those requests: when an interpreter other than the
 * holder's has gil_drop_request set (its waiter timed out), it sets
 * gil_drop_request and eval_breaker in the holder's interpreter exactly as
 * SET_GIL_DROP_REQUEST does.  The holder then drops the GIL at its next
 * eval-breaker check, and CPython's own FORCE_SWITCHING hand-over (drop_gil
 * waits on switch_cond until another thread has taken the GIL) gives it to
 * the waiter, which resets its own interpreter's request when it takes the
 * GIL.  The holder's interpreter's request is reset by drop_gil (when it
 * waits for the switch) or by the next take_gil of a thread of that
 * interpreter.
 *
 * Why this is safe:
 *  - Memory: interpreters and thread states are only looked at while holding
 *    the runtime's interpreter-list lock (HEAD_LOCK, _PyRuntime.interpreters
 *    .mutex), and only when found in its lists.  CPython unlinks a thread
 *    state or an interpreter under that lock before freeing it, so nothing
 *    found there is freed meanwhile.  The holder's thread state pointer is
 *    compared, never dereferenced, until it is found in an interpreter's
 *    thread list.  The lock is a leaf lock in CPython; nothing else is held
 *    while it is.
 *  - No stale request: a request the tick set is withdrawn at the next tick
 *    if the GIL changed hands without a switch (on 3.11 the holder can move to
 *    another interpreter with PyThreadState_Swap, keeping the GIL) or was
 *    released with nobody taking it.  If a switch happened, CPython consumes
 *    it as above.
 *  - No holder parked forever: a thread whose drop_gil found a drop request
 *    waits on switch_cond for another thread to take the GIL.  If a request
 *    was ever left where nobody waits (a holder that swapped into that
 *    interpreter on 3.11 before the tick withdrew it), nothing would wake it.
 *    So when the GIL has stayed free for a whole switch interval with no
 *    switch, the tick broadcasts switch_cond: drop_gil waits once, without a loop, and a
 *    wake-up there only ends the forced switch early (POSIX allows spurious
 *    wake-ups; CPython's code already tolerates them).
 *  - Requests and eval_breaker are written with the same relaxed atomic
 *    stores as CPython's SET_GIL_DROP_REQUEST; eval_breaker is never
 *    cleared here (recomputing it from another thread could lose a signal or
 *    a pending call; a spurious 1 only costs one pass through the pending
 *    checks).
 */
#define Py_BUILD_CORE 1
#include <Python.h>

#if PY_VERSION_HEX < 0x030D0000

#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#include <pthread.h>
#include <time.h>

#include "compat_gil.h"

static struct _gil_runtime_state *shared_gil(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* Shared-GIL interpreters point at the main interpreter's GIL
       (_PyEval_InitGIL with own_gil == 0); own-GIL ones at their own. */
    PyInterpreterState *main = _PyRuntime.interpreters.main;
    return main != NULL ? main->ceval.gil : NULL;
#else
    return &_PyRuntime.ceval.gil;
#endif
}

static int shares_gil(PyInterpreterState *interp, struct _gil_runtime_state *gil)
{
#if PY_VERSION_HEX >= 0x030C0000
    return interp->ceval.gil == gil;
#else
    (void)interp;
    (void)gil;
    return 1;
#endif
}

/* The thread state running with the GIL, or NULL.  3.11: the runtime's
   current thread state, which PyThreadState_Swap moves between interpreters
   while the GIL stays held.  3.12: the current thread state is a thread
   local, but PyThreadState_Swap drops and takes the GIL, so the GIL's last
   holder is the running one.  Compared with list entries, never
   dereferenced. */
static PyThreadState *running_tstate(struct _gil_runtime_state *gil)
{
#if PY_VERSION_HEX >= 0x030C0000
    return (PyThreadState *)_Py_atomic_load_relaxed(&gil->last_holder);
#else
    (void)gil;
    return (PyThreadState *)_Py_atomic_load_relaxed(&_PyRuntime.gilstate.tstate_current);
#endif
}

static int has_thread(PyInterpreterState *interp, PyThreadState *t)
{
    for (PyThreadState *p = interp->threads.head; p != NULL; p = p->next) {
        if (p == t) return 1;
    }
    return 0;
}

static int drop_requested(PyInterpreterState *interp)
{
    return _Py_atomic_load_relaxed(&interp->ceval.gil_drop_request) != 0;
}

/* SET_GIL_DROP_REQUEST (3.11 Python/ceval.c, 3.12 Python/ceval_gil.c). */
static void request_drop(PyInterpreterState *interp)
{
    _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 1);
    _Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
}

/* Half of RESET_GIL_DROP_REQUEST: see the note on eval_breaker above. */
static void withdraw_drop(PyInterpreterState *interp)
{
    _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 0);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static unsigned long switch_number(struct _gil_runtime_state *gil)
{
    return __atomic_load_n(&gil->switch_number, __ATOMIC_RELAXED);
}

const int *pyinterp_compat_gil_locked_addr(void)
{
    struct _gil_runtime_state *gil = shared_gil();
    /* _Py_atomic_int wraps a C11 atomic_int (pycore_atomic.h). */
    return gil != NULL ? (const int *)&gil->locked._value : NULL;
}

unsigned long pyinterp_compat_gil_interval_us(void)
{
    struct _gil_runtime_state *gil = shared_gil();
    unsigned long us = gil != NULL ? __atomic_load_n(&gil->interval, __ATOMIC_RELAXED) : 0;
    return us >= 1 ? us : 1;
}

int pyinterp_compat_gil_tick(struct pyinterp_gil_watch *w)
{
    struct _gil_runtime_state *gil = shared_gil();
    PyThread_type_lock head_lock = _PyRuntime.interpreters.mutex;
    if (gil == NULL || head_lock == NULL) return 0;
    int locked = _Py_atomic_load_relaxed(&gil->locked);
    if (locked < 0) return 0; /* not created yet, or destroyed */
    unsigned long sw = switch_number(gil);
    PyThreadState *running = locked ? running_tstate(gil) : NULL;

    int used = locked || sw != w->last_switch;
    /* Free for a whole switch interval with no switch: nobody is handing the
       GIL over, so no thread has a reason to wait on switch_cond. */
    int rescue = 0;
    if (!locked) {
        long long now = now_us();
        if (!w->was_free || sw != w->last_switch) w->free_since_us = now;
        rescue = now - w->free_since_us >= (long long)pyinterp_compat_gil_interval_us();
    }
    w->was_free = !locked;
    w->last_switch = sw;

    int busy = 0;
    PyThread_acquire_lock(head_lock, WAIT_LOCK);
    PyInterpreterState *holder = NULL;
    int flagged_listed = 0;
    for (PyInterpreterState *i = _PyRuntime.interpreters.head; i != NULL; i = i->next) {
        if (!shares_gil(i, gil)) continue;
        if (i == (PyInterpreterState *)w->flagged) flagged_listed = 1;
        if (running != NULL && holder == NULL && has_thread(i, running)) holder = i;
    }
    if (w->flagged != NULL) {
        PyInterpreterState *f = (PyInterpreterState *)w->flagged;
        if (!flagged_listed) {
            w->flagged = NULL; /* ended; the pointer may even be reused */
        } else if (sw != w->flagged_switch) {
            w->flagged = NULL; /* served: CPython resets it (see above) */
        } else if (!locked || holder != f) {
            withdraw_drop(f); /* the holder left f without a switch */
            w->flagged = NULL;
        } else {
            /* Still pending (the holder is in C code, say).  Re-assert the
               breaker: CPython's COMPUTE_EVAL_BREAKER, run by another thread
               for another reason, may have cleared it. */
            _Py_atomic_store_relaxed(&f->ceval.eval_breaker, 1);
            busy = 1;
        }
    }
    if (holder != NULL) {
        int waiting_elsewhere = 0;
        for (PyInterpreterState *i = _PyRuntime.interpreters.head; i != NULL; i = i->next) {
            if (i != holder && shares_gil(i, gil) && drop_requested(i)) {
                waiting_elsewhere = 1;
                break;
            }
        }
        if (waiting_elsewhere) {
            busy = 1;
            if (!drop_requested(holder)) {
                request_drop(holder);
                w->flagged = holder;
                w->flagged_switch = sw;
                w->relayed++;
            }
        }
    }
    PyThread_release_lock(head_lock);

#ifdef FORCE_SWITCHING
    if (rescue) {
        pthread_mutex_lock(&gil->switch_mutex);
        pthread_cond_broadcast(&gil->switch_cond);
        pthread_mutex_unlock(&gil->switch_mutex);
    }
#else
    (void)rescue;
#endif
    return (busy ? PYINTERP_GIL_WAITER : 0) | (used ? PYINTERP_GIL_USED : 0);
}

#endif /* PY_VERSION_HEX < 0x030D0000 */
