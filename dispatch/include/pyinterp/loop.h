/*
 * pyinterp loop: callbacks from C threads into the right interpreter.
 *
 * An event loop built on libevent.  It owns one or more loop threads (plain
 * C threads that were never Python threads) and runs Python callables on
 * them, each inside the interpreter the callable belongs to, through the
 * loop thread's cached thread state for that interpreter (dispatch.h).  Any
 * thread may schedule work on it: a C library's worker thread, a Python
 * thread of any interpreter, another loop thread.
 *
 * Concepts
 * --------
 * loop     A set of loop threads, each running its own libevent event_base.
 *          Created with pyinterp_loop_new(), or the process-wide default
 *          loop from pyinterp_loop_default() (started on first use, stopped
 *          when the runtime finalizes).
 *
 * task     What to run: a pyinterp_callback (a Python callable paired with
 *          its interpreter), an optional argument builder and result
 *          handler, and a `release` function that the loop calls exactly
 *          once when it is finished with the task.
 *
 * handle   A scheduled task: it can be cancelled and asked for its state.
 *          Reference-counted between the loop and the caller; free the
 *          caller's reference with pyinterp_loop_handle_free().
 *
 * Scheduling
 * ----------
 * pyinterp_loop_call_soon()   run as soon as possible
 * pyinterp_loop_call_later()  run after a delay
 * pyinterp_loop_watch_fd()    run when a file descriptor becomes readable or
 *                             writable, once or every time (PERSIST)
 *
 * Every task of one interpreter is run by the same loop thread (chosen from
 * the interpreter's id), so the tasks of one interpreter never run
 * concurrently with each other, and tasks scheduled with call_soon run in the
 * order they were scheduled.  Timers run in the order of their deadlines;
 * equal deadlines run in the order scheduled.  Tasks of different
 * interpreters may run in parallel on different loop threads (really in
 * parallel when the interpreters have their own GILs).
 *
 * Interpreter teardown
 * --------------------
 * A task is never run once its interpreter is ending or gone.  When an
 * interpreter starts ending (pyinterp_interp_end, or the runtime
 * finalizing), its pending tasks are dropped (their state becomes
 * PYINTERP_LOOP_CANCELLED and `release` is called), and a task of that
 * interpreter that is running at that moment is an in-flight entry that
 * pyinterp_interp_end() waits for.
 *
 * Exceptions
 * ----------
 * A Python exception raised by a task (or by its argument builder or result
 * handler) is reported like any pyinterp_callback_call() exception (the log
 * sink at ERROR level, or sys.unraisablehook without one; dispatch.h) and
 * cleared; the loop goes on with the next task.
 *
 * Threads and the GIL
 * -------------------
 * Every function here may be called from any thread in any GIL state unless
 * its comment says otherwise; none of them takes a GIL except where stated,
 * and the scheduling functions never wait for Python.  The library never
 * prints and never aborts; libevent's own messages are forwarded to the log
 * callback.
 */
#ifndef PYINTERP_LOOP_H
#define PYINTERP_LOOP_H

#include <stdint.h>

#include "pyinterp/dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pyinterp_loop pyinterp_loop;
typedef struct pyinterp_loop_handle pyinterp_loop_handle;

/* ------------------------------------------------------------------ tasks */

/**
 * Called exactly once when the loop is finished with a task: after it ran
 * (for the last time, for a persistent one), or when it was dropped
 * (cancelled, its interpreter ending, the loop stopping).  Called on a loop
 * thread, or on the thread that stops the loop, in any GIL state: it must
 * not assume a GIL is held or not held.  It may call pyinterp_callback_free()
 * (which works in any GIL state) but must not otherwise touch Python
 * objects, which is why a task's Python objects belong in its callback.
 */
typedef void (*pyinterp_release_fn)(void *user);

/** Task flags. */
enum {
    /** The loop owns `callback` and frees it (pyinterp_callback_free) right
        after calling `release`. Without it the caller keeps ownership and
        must keep the callback alive until `release` is called. */
    PYINTERP_LOOP_FREE_CALLBACK = 1
};

/**
 * What to run.  The loop copies the struct; zero-initialise it, then set
 * fields.  On a loop thread, inside the callback's interpreter with its GIL
 * held, the loop does what pyinterp_callback_call(callback, make_args,
 * on_result, user) does: build the arguments, call, hand over the result.
 */
typedef struct pyinterp_loop_task {
    /** The Python callable and its interpreter.  Required. */
    pyinterp_callback *callback;
    /** Builds the argument tuple inside the interpreter; NULL: no arguments. */
    pyinterp_args_fn make_args;
    /** Receives the result inside the interpreter; may be NULL. */
    pyinterp_result_fn on_result;
    /** See pyinterp_release_fn; may be NULL. */
    pyinterp_release_fn release;
    /** Passed to make_args, on_result and release. */
    void *user;
    /** PYINTERP_LOOP_FREE_CALLBACK or 0. */
    int flags;
} pyinterp_loop_task;

/* ------------------------------------------------------------------ loops */

/** Options for pyinterp_loop_new(); zero-initialise, then set fields. */
typedef struct pyinterp_loop_config {
    /** Number of loop threads, 1 to 64; 0 means 1. */
    int threads;
} pyinterp_loop_config;

/**
 * Create a loop and start its threads.  The loop does not need the Python
 * runtime to exist yet, but it runs nothing before pyinterp_initialize().
 *
 * @param config  options, or NULL for one loop thread
 * @param out     receives the loop; free it with pyinterp_loop_free()
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID (bad thread count, NULL out),
 *         PYINTERP_ERR_NOMEM, PYINTERP_ERR_CREATE (libevent or the OS could
 *         not create a base or a thread; logged).
 */
PYINTERP_API int pyinterp_loop_new(const pyinterp_loop_config *config, pyinterp_loop **out);

/**
 * Stop the loop promptly and join its threads.
 *
 * New scheduling is refused at once (PYINTERP_ERR_STATE).  A task that is
 * running on a loop thread finishes first (the calling thread is detached
 * while it waits, so the task can take the GIL the caller held); no further
 * task starts.  Every task still queued, timed or watching a descriptor is
 * then dropped: its state becomes PYINTERP_LOOP_CANCELLED and `release` is
 * called on the calling thread, so a task's callback (and its Python
 * references) is freed inside its own interpreter.  Stopping a stopped loop
 * does nothing.
 *
 * Any GIL state; the calling thread's attachment on return is what it was.
 * Not from one of the loop's own threads (a task cannot join the thread it
 * runs on).
 *
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID (NULL), PYINTERP_ERR_STATE
 *         (called on one of the loop's threads; nothing changed).
 */
PYINTERP_API int pyinterp_loop_stop(pyinterp_loop *loop);

/**
 * Stop the loop (pyinterp_loop_stop) and free it.  Handles stay valid until
 * freed.  NULL, and the default loop (which the runtime owns), do nothing.
 * Not from one of the loop's own threads (logged, nothing done).
 *
 * Free the loops you created before pyinterp_finalize(): a loop left running
 * is safe (its tasks are refused once the interpreters are gone) but keeps
 * its threads, and its queued tasks are only released when it is freed.
 */
PYINTERP_API void pyinterp_loop_free(pyinterp_loop *loop);

/**
 * The process-wide default loop, started on first use with the number of
 * threads set by pyinterp_loop_set_default_threads() (1 unless set).  It is
 * stopped by pyinterp_finalize() (host mode) or from Python's exit hooks
 * (extension mode), before any interpreter ends, and started again on first
 * use after a later pyinterp_initialize().  The loop object itself is never
 * freed, so a pointer to it stays safe to pass to the scheduling functions
 * (they answer PYINTERP_ERR_STATE while it is stopped).
 *
 * This is the loop the `pyinterp` Python module schedules on.
 *
 * @return PYINTERP_OK, PYINTERP_ERR_NOT_INITIALIZED (runtime not
 *         initialised, or finalizing), PYINTERP_ERR_STATE (being stopped),
 *         PYINTERP_ERR_NOMEM, PYINTERP_ERR_CREATE.
 */
PYINTERP_API int pyinterp_loop_default(pyinterp_loop **out);

/**
 * Number of threads of the default loop when it next starts (1 to 64).
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID (out of range),
 *         PYINTERP_ERR_STATE (the default loop is running; nothing changed).
 */
PYINTERP_API int pyinterp_loop_set_default_threads(int threads);

/** The number of threads of a loop, or 0 for NULL. */
PYINTERP_API int pyinterp_loop_threads(const pyinterp_loop *loop);

/* ------------------------------------------------------------- scheduling */

/**
 * Run `task` as soon as possible on the loop thread of its interpreter.
 *
 * On success the loop owns the task (see pyinterp_loop_task, `release`); on
 * failure nothing was taken: `release` is not called and the callback is
 * not freed, whatever the flags.
 *
 * @param handle  receives a new handle to the scheduled task (free it with
 *                pyinterp_loop_handle_free), or NULL if not wanted
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID (NULL loop, task or callback),
 *         PYINTERP_ERR_GONE (the callback's interpreter is ending or gone),
 *         PYINTERP_ERR_STATE (the loop is stopped or stopping),
 *         PYINTERP_ERR_NOMEM.
 */
PYINTERP_API int pyinterp_loop_call_soon(pyinterp_loop *loop, const pyinterp_loop_task *task,
                                         pyinterp_loop_handle **handle);

/**
 * Run `task` once, `delay_us` microseconds from now (measured from this
 * call, on the monotonic clock).  Ownership, `handle` and return codes as
 * for pyinterp_loop_call_soon().
 */
PYINTERP_API int pyinterp_loop_call_later(pyinterp_loop *loop, uint64_t delay_us,
                                          const pyinterp_loop_task *task, pyinterp_loop_handle **handle);

/** Events for pyinterp_loop_watch_fd(). */
enum {
    /** Run when the descriptor is readable. */
    PYINTERP_LOOP_READ = 0x02,
    /** Run when the descriptor is writable. */
    PYINTERP_LOOP_WRITE = 0x04,
    /** Keep watching after each run, until cancelled. */
    PYINTERP_LOOP_PERSIST = 0x10
};

/**
 * Run `task` when `fd` becomes ready for one of `events` (READ and/or WRITE,
 * optionally PERSIST).  Without PERSIST the task runs once; with it, it runs
 * every time the descriptor is ready until it is cancelled, its interpreter
 * ends or the loop stops.  The task is not told which event fired: watch
 * READ and WRITE with separate tasks to tell them apart.  The loop never
 * closes `fd`; keep it open until `release` has been called.
 * Ownership, `handle` and return codes as for pyinterp_loop_call_soon(),
 * plus PYINTERP_ERR_INVALID for a negative fd or no READ/WRITE in `events`.
 */
PYINTERP_API int pyinterp_loop_watch_fd(pyinterp_loop *loop, int fd, int events, const pyinterp_loop_task *task,
                                        pyinterp_loop_handle **handle);

/* ---------------------------------------------------------------- handles */

/** States of a scheduled task. */
typedef enum pyinterp_loop_state {
    /** Waiting to run (or, persistent, waiting to run again). */
    PYINTERP_LOOP_PENDING = 0,
    /** Running on a loop thread now. */
    PYINTERP_LOOP_RUNNING = 1,
    /** Ran (for the last time); it may have raised, which was logged. */
    PYINTERP_LOOP_DONE = 2,
    /** Will never run (again): cancelled, interpreter ending or gone, or the
        loop stopped. */
    PYINTERP_LOOP_CANCELLED = 3
} pyinterp_loop_state;

/**
 * Cancel a scheduled task: it will not start (again).  A one-shot task that
 * is already running or has run cannot be cancelled.  A persistent task that
 * is running finishes that run and does not start again.  The task's
 * `release` is called soon after, on its loop thread.  Cancelling twice is
 * harmless.
 *
 * @return PYINTERP_OK (the task will not start again), PYINTERP_ERR_STATE
 *         (a one-shot task that is running or done), PYINTERP_ERR_INVALID.
 */
PYINTERP_API int pyinterp_loop_cancel(pyinterp_loop_handle *handle);

/** The task's state (pyinterp_loop_state), or PYINTERP_ERR_INVALID for NULL.
    A hint: it may change right after. */
PYINTERP_API int pyinterp_loop_handle_state(const pyinterp_loop_handle *handle);

/** Drop the caller's reference to a handle.  Does not cancel the task.
    NULL does nothing. */
PYINTERP_API void pyinterp_loop_handle_free(pyinterp_loop_handle *handle);

#ifdef __cplusplus
}
#endif

#endif /* PYINTERP_LOOP_H */
