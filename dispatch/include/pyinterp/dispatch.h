/*
 * pyinterp dispatch: CPython interpreters in a multi-threaded C program.
 *
 * This is the public C API for hosts (the httpd module, test programs) and
 * for authors of C extensions that call back into Python from threads that
 * are not Python threads (an event loop, a database driver's thread).
 *
 * Concepts
 * --------
 * interpreter  The main interpreter or a named subinterpreter created with
 *              pyinterp_interp_create().  Each has a name, a numeric id and
 *              a state: live, ending (new entries refused) or gone.
 *
 * view         A weak, reference-counted handle to one interpreter.  Capture
 *              it while that interpreter is current (pyinterp_view_current),
 *              copy it, pass it to any thread, free it on any thread.  It
 *              stays valid after the interpreter is gone: using it then
 *              yields PYINTERP_ERR_GONE, never a crash.
 *
 * guard        A strong hold on a live interpreter: while any guard exists,
 *              pyinterp_interp_end() cannot finish, and entering through the
 *              guard cannot be refused.
 *
 * entry        pyinterp_enter() attaches the calling OS thread to an
 *              interpreter and takes its GIL; pyinterp_leave() undoes exactly
 *              that.  Each OS thread keeps one cached thread state per
 *              interpreter, created on first entry and reused afterwards.
 *              Entries nest: entering the interpreter the thread is already
 *              attached to costs almost nothing; entering another one saves
 *              the current thread state and restores it on leave.
 *              While attached through the library, PyGILState_Ensure() on
 *              the thread (used by the stdlib sqlite3 callbacks, for one)
 *              runs in the entered interpreter, on Python 3.11 as on 3.12+.
 *
 * callback     A Python callable paired with the interpreter it was created
 *              in, callable from any thread.
 *
 * Threads and the GIL
 * -------------------
 * Every function says which GIL it expects.  "No GIL needed" functions may be
 * called whether or not the calling thread is attached to an interpreter.
 * The library never prints and never aborts; failures are reported as status
 * codes and, where useful, through the log callback.
 *
 * When a thread that entered interpreters exits, its cached thread states are
 * cleared and deleted on that thread, holding the right GIL.  A thread that
 * lives on but will not enter again may drop them earlier with
 * pyinterp_thread_release().
 */
#ifndef PYINTERP_DISPATCH_H
#define PYINTERP_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PYINTERP_API __attribute__((visibility("default")))
#else
#define PYINTERP_API
#endif

/* Forward declaration so this header does not require Python.h. */
#ifndef Py_OBJECT_H
struct _object;
#endif

/* ---------------------------------------------------------------- status */

/** Status codes: PYINTERP_OK is zero, every error is negative. */
typedef enum pyinterp_status {
    PYINTERP_OK = 0,
    /** An argument was NULL, empty or out of range. */
    PYINTERP_ERR_INVALID = -1,
    /** pyinterp_initialize() has not run, or the runtime was finalized. */
    PYINTERP_ERR_NOT_INITIALIZED = -2,
    /** The interpreter is ending or gone; nothing was run in it. */
    PYINTERP_ERR_GONE = -3,
    /** An interpreter with that name exists already; or (initialize)
        another copy of this library already runs in the process. */
    PYINTERP_ERR_EXISTS = -4,
    /** No interpreter with that name, or the current one is not managed. */
    PYINTERP_ERR_NOT_FOUND = -5,
    /** Not possible with this Python (own GIL before 3.12, for one). */
    PYINTERP_ERR_UNSUPPORTED = -6,
    /** Python raised an exception; it was reported with its traceback (log
        sink, or sys.unraisablehook) and cleared. */
    PYINTERP_ERR_PYTHON = -7,
    /** Out of memory. */
    PYINTERP_ERR_NOMEM = -8,
    /** The call is not allowed in the thread's current state: leaving out of
        order, ending the interpreter the thread is inside, calling a
        function that needs the GIL without holding it. */
    PYINTERP_ERR_STATE = -9,
    /** A bounded wait ran out; see the function for what remains. */
    PYINTERP_ERR_TIMEOUT = -10,
    /** CPython failed to create an interpreter; the reason was logged. */
    PYINTERP_ERR_CREATE = -11
} pyinterp_status;

/** A static, human-readable description of a status code (never NULL). */
PYINTERP_API const char *pyinterp_strerror(int status);

/* ------------------------------------------------------------------- log */

typedef enum pyinterp_log_level {
    PYINTERP_LOG_DEBUG = 0,
    PYINTERP_LOG_INFO = 1,
    PYINTERP_LOG_WARN = 2,
    PYINTERP_LOG_ERROR = 3
} pyinterp_log_level;

/**
 * Log sink installed by the host.  `message` is a NUL-terminated line without
 * a trailing newline (a Python traceback spans several lines); it is valid
 * only during the call.  Called from any thread, possibly with a GIL held:
 * the sink must not call into Python or into this library.
 */
typedef void (*pyinterp_log_fn)(int level, const char *message, void *user);

/**
 * Install the log sink (NULL discards every message, the default) and the
 * lowest level passed to it.  No GIL needed; call it before other threads use
 * the library.  For hosts: an extension module logs with pyinterp_log() and
 * leaves the sink to the program that embeds Python.
 *
 * Every message names its origin in its first words ("pyinterp: ..." for the
 * library's own, the extension's name for pyinterp_log() calls): a sink adds
 * the level and whatever its destination needs, not a second name.
 *
 * With no sink installed, the library's messages are discarded, except the
 * Python exceptions raised by callbacks (pyinterp_callback_call, loop
 * tasks): those go to sys.unraisablehook of the interpreter they were
 * raised in, as CPython does with exceptions it cannot raise to a caller
 * (the default hook prints "Exception ignored in pyinterp callback ..." and
 * the traceback to that interpreter's sys.stderr).
 */
PYINTERP_API void pyinterp_set_log_callback(pyinterp_log_fn fn, int min_level, void *user);

#if defined(__GNUC__)
#define PYINTERP_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define PYINTERP_PRINTF(fmt, args)
#endif

/**
 * Log a message through the sink the host installed, so that an extension's
 * messages go where the library's go (the httpd error log under
 * mod_pyinterp, standard error for the `pyinterp` extension module in a
 * plain python).  printf-style; begin the message with the name of what
 * logs it ("ticker: thread stopped: ...").  No length limit.
 *
 * Any thread, any GIL state, but never from inside a log sink.  Nothing
 * happens when no sink is installed or `level` is below the sink's minimum.
 */
PYINTERP_API void pyinterp_log(int level, const char *format, ...) PYINTERP_PRINTF(2, 3);

/* --------------------------------------------------------------- runtime */

/** Options for pyinterp_initialize(); zero-initialise, then set fields. */
typedef struct pyinterp_config {
    /** Python home (sys.prefix) for a host-initialised runtime, or NULL. */
    const char *python_home;
    /** Extra sys.path entries, separated by ':', or NULL: put in front of
        sys.path in the main interpreter and in every interpreter that
        pyinterp_interp_create() makes afterwards (host mode; an extension
        loaded into a running Python leaves sys.path alone). */
    const char *python_path;
    /** Non-zero: do not import `site` (faster start, no .pth files). */
    int no_site;
    /** Milliseconds pyinterp_finalize() and pyinterp_interp_end() callers
        that pass a negative timeout wait for in-flight entries; 0 means the
        default of 5000. */
    int default_end_timeout_ms;
} pyinterp_config;

/**
 * Start the library.
 *
 * If Python is not initialised, initialise it (host mode): the calling thread
 * keeps a main-interpreter thread state in its cache and returns detached (no
 * GIL held).  If Python is already initialised (extension mode: called from
 * an extension module's init), the calling thread must hold the GIL and still
 * holds it on return; the library registers itself to tear down its thread
 * states when Python finalizes.  Calling it again is a cheap no-op.
 *
 * A process has one copy of the library, whose state every interpreter
 * shares: extension modules reach it through the `pyinterp` module's C API
 * capsule (module.h), not by linking a copy of their own.  Every interpreter
 * the library creates or attaches to is marked as managed by this copy;
 * extension mode refuses to start in an interpreter marked by another copy,
 * and so does the `pyinterp` extension module (ImportError), which is what
 * happens when a host that links the library forgets to register
 * PyInit_pyinterp and `import pyinterp` finds the extension module instead.
 *
 * @param config  options, or NULL for defaults (ignored in extension mode)
 * @return PYINTERP_OK, PYINTERP_ERR_CREATE (Python failed to start; logged),
 *         PYINTERP_ERR_STATE (extension mode without the GIL),
 *         PYINTERP_ERR_EXISTS (extension mode: another copy of the library
 *         manages the current interpreter; logged).
 */
PYINTERP_API int pyinterp_initialize(const pyinterp_config *config);

/**
 * Host mode only: end every subinterpreter, delete every cached thread state
 * and finalize Python.  Call it with no GIL held, from the thread that called
 * pyinterp_initialize(), after other threads stopped entering.  Afterwards
 * every entry returns PYINTERP_ERR_NOT_INITIALIZED or PYINTERP_ERR_GONE.
 *
 * @return PYINTERP_OK, PYINTERP_ERR_STATE (extension mode, or called while
 *         attached), PYINTERP_ERR_TIMEOUT (an interpreter still had entries
 *         after the wait; Python was not finalized, call again).
 */
PYINTERP_API int pyinterp_finalize(void);

/** Non-zero when the Python this library was built against is 3.12+ and so
    supports interpreters with their own GIL. No GIL needed. */
PYINTERP_API int pyinterp_supports_own_gil(void);

/**
 * Raise the Python exception that matches `status`, for C functions called
 * from Python:
 *
 *     if (rc != PYINTERP_OK) return pyinterp_set_pyerr(rc);
 *
 * PYINTERP_ERR_NOMEM raises MemoryError, _INVALID ValueError, _TIMEOUT
 * TimeoutError, _UNSUPPORTED NotImplementedError; every other error raises
 * RuntimeError("pyinterp: <pyinterp_strerror(status)> (<status name>)").
 * PYINTERP_ERR_PYTHON keeps an exception that is already set (the
 * callback functions log and clear theirs, so usually there is none and
 * RuntimeError is raised).  PYINTERP_OK is a caller bug: SystemError.
 *
 * GIL held, in the interpreter the exception is for.
 * @return NULL, always.
 */
PYINTERP_API struct _object *pyinterp_set_pyerr(int status);

/* ---------------------------------------------------------- interpreters */

typedef struct pyinterp_view pyinterp_view;
typedef struct pyinterp_guard pyinterp_guard;

typedef enum pyinterp_gil_mode {
    /** Share the main interpreter's GIL (the only choice before 3.12). */
    PYINTERP_GIL_SHARED = 0,
    /** Python 3.12+: a GIL of its own, for true parallelism. Extensions that
        do not support it raise ImportError inside that interpreter.  Threads
        and daemon threads are allowed as in shared-GIL interpreters; os.fork()
        raises there (subprocess works).  Before the first one is created,
        datetime, zoneinfo, decimal and asyncio are imported in the main
        interpreter: their extension modules crash the process when an
        own-GIL interpreter initialises them first. */
    PYINTERP_GIL_OWN = 1
} pyinterp_gil_mode;

/** Options for pyinterp_interp_create(); zero-initialise, then set fields. */
typedef struct pyinterp_interp_config {
    /** PYINTERP_GIL_SHARED or PYINTERP_GIL_OWN. */
    int gil;
} pyinterp_interp_config;

/**
 * Create a named subinterpreter.
 *
 * Creation is serialised process-wide.  For an own-GIL interpreter, modules
 * known to crash such interpreters unless first imported in the main one are
 * imported in main beforehand.  Any GIL state: the calling thread's current
 * attachment (if any) is the same on return.
 *
 * @param name    unique, non-empty, at most 255 bytes; "main" is reserved
 * @param config  options, or NULL for a shared-GIL interpreter
 * @param out     receives a new view of the interpreter (free it), or NULL
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID, PYINTERP_ERR_EXISTS,
 *         PYINTERP_ERR_UNSUPPORTED (own GIL on 3.11), PYINTERP_ERR_CREATE,
 *         PYINTERP_ERR_NOT_INITIALIZED, PYINTERP_ERR_NOMEM.
 */
PYINTERP_API int pyinterp_interp_create(const char *name, const pyinterp_interp_config *config,
                                        pyinterp_view **out);

/**
 * Look a live interpreter up by name ("main" names the main interpreter).
 * No GIL needed.
 * @return PYINTERP_OK with a new view in *out, PYINTERP_ERR_NOT_FOUND, ...
 */
PYINTERP_API int pyinterp_interp_find(const char *name, pyinterp_view **out);

/**
 * End a subinterpreter.
 *
 * New entries are refused at once (PYINTERP_ERR_GONE).  Entries in flight on
 * other threads and held guards are waited for, up to `timeout_ms`
 * (negative: the configured default); if the wait runs out, a warning is
 * logged, the interpreter stays in the ending state (still refusing entries)
 * and PYINTERP_ERR_TIMEOUT is returned: call again later to finish.  Then
 * every cached thread state of the interpreter, on every thread, is deleted,
 * the Python references held by its callbacks are released, and
 * Py_EndInterpreter runs.  Views stay valid and report PYINTERP_ERR_GONE.
 *
 * Any GIL state except being inside the interpreter being ended (on this
 * thread's entry stack): the calling thread is detached during the wait and
 * re-attached as it was on return.
 *
 * Guards are not tied to a thread: a guard held by the calling thread itself
 * makes the wait run out (PYINTERP_ERR_TIMEOUT) like any other.
 *
 * @return PYINTERP_OK, PYINTERP_ERR_GONE (ending elsewhere, or already
 *         ended), PYINTERP_ERR_INVALID (the main interpreter),
 *         PYINTERP_ERR_STATE (called from inside it), PYINTERP_ERR_TIMEOUT.
 */
PYINTERP_API int pyinterp_interp_end(const pyinterp_view *view, int timeout_ms);

/* ----------------------------------------------------------------- views */

/**
 * A view of the interpreter the calling thread is attached to.
 * GIL held (any interpreter).
 * @return PYINTERP_OK, PYINTERP_ERR_STATE (no thread state attached),
 *         PYINTERP_ERR_NOT_FOUND (an interpreter this library did not create).
 */
PYINTERP_API int pyinterp_view_current(pyinterp_view **out);

/** A view of the main interpreter. No GIL needed. */
PYINTERP_API int pyinterp_view_main(pyinterp_view **out);

/** Another reference to the same interpreter (NULL for NULL). No GIL needed. */
PYINTERP_API pyinterp_view *pyinterp_view_copy(const pyinterp_view *view);

/** Drop a view. NULL does nothing. Any thread, no GIL needed. */
PYINTERP_API void pyinterp_view_free(pyinterp_view *view);

/** The interpreter's name ("main" for the main interpreter); valid as long
    as the view. No GIL needed. */
PYINTERP_API const char *pyinterp_view_name(const pyinterp_view *view);

/** CPython's interpreter id (0 for main), or -1 for NULL. No GIL needed. */
PYINTERP_API int64_t pyinterp_view_id(const pyinterp_view *view);

/** Non-zero if the interpreter has a GIL of its own. No GIL needed. */
PYINTERP_API int pyinterp_view_own_gil(const pyinterp_view *view);

/** Non-zero while the interpreter is live (neither ending nor gone). A hint:
    it may end right after. No GIL needed. */
PYINTERP_API int pyinterp_view_is_live(const pyinterp_view *view);

/** How many thread states the library keeps cached for the interpreter: one
    per OS thread that entered it and has not released them (thread exit,
    pyinterp_thread_release()) or seen the interpreter end.  0 for NULL or an
    interpreter that ended.  A snapshot: other threads may change it at once.
    No GIL needed (takes the interpreter's own mutex, never held while a GIL
    is awaited). */
PYINTERP_API int pyinterp_view_thread_states(const pyinterp_view *view);

/* ---------------------------------------------------------------- guards */

/**
 * Hold the interpreter off teardown until pyinterp_guard_free().  Any thread,
 * no GIL needed.  Keep guards short-lived: pyinterp_interp_end() waits for
 * them.
 * @return PYINTERP_OK, PYINTERP_ERR_GONE (ending or gone), PYINTERP_ERR_INVALID.
 */
PYINTERP_API int pyinterp_guard_new(const pyinterp_view *view, pyinterp_guard **out);

/** Release a guard. NULL does nothing. Any thread, no GIL needed. */
PYINTERP_API void pyinterp_guard_free(pyinterp_guard *guard);

/* --------------------------------------------------------- enter / leave */

/** Identifies one entry; pass it back to pyinterp_leave(). */
typedef uintptr_t pyinterp_token;

/**
 * Attach the calling thread to the view's interpreter, holding its GIL, using
 * the thread's cached thread state for it (created on first use).
 *
 * Any GIL state.  If the thread is attached to the same interpreter already,
 * nothing changes but a counter.  If it is attached to another one, that
 * thread state is detached (its GIL released when the GILs differ) and is
 * restored by the matching pyinterp_leave().
 *
 * @param token  receives the entry's token
 * @return PYINTERP_OK, PYINTERP_ERR_GONE (ending or gone: the thread's state
 *         is unchanged), PYINTERP_ERR_NOT_INITIALIZED, PYINTERP_ERR_NOMEM.
 */
PYINTERP_API int pyinterp_enter(const pyinterp_view *view, pyinterp_token *token);

/** pyinterp_enter() that cannot be refused for teardown: the guard keeps the
    interpreter live. */
PYINTERP_API int pyinterp_enter_guarded(const pyinterp_guard *guard, pyinterp_token *token);

/**
 * Undo the entry `token` names, which must be the thread's innermost one:
 * restores the thread state (and GIL) the thread had before it.
 * @return PYINTERP_OK, PYINTERP_ERR_STATE (not the innermost entry of this
 *         thread; nothing changed).
 */
PYINTERP_API int pyinterp_leave(pyinterp_token token);

/**
 * Delete the calling thread's cached thread states now (each on this thread,
 * with its GIL) instead of at thread exit.  The thread must not be inside an
 * entry.  Safe to call when it has none.
 * @return PYINTERP_OK, PYINTERP_ERR_STATE (inside an entry).
 */
PYINTERP_API int pyinterp_thread_release(void);

/**
 * Non-zero if the calling thread has a thread state attached (holds a GIL).
 * Unlike PyGILState_Check(), which answers 1 unconditionally once a
 * subinterpreter exists, this is exact on 3.12+; on 3.11 it recognises the
 * thread states the library gave the thread and its PyGILState one, which is
 * every thread state a thread normally uses.  No GIL needed.
 */
PYINTERP_API int pyinterp_thread_is_attached(void);

/* ------------------------------------------------------------- callbacks */

typedef struct pyinterp_callback pyinterp_callback;

/**
 * Builds the argument tuple inside the target interpreter, with its GIL
 * held.  Return a new reference to a tuple, or NULL with an exception set.
 */
typedef struct _object *(*pyinterp_args_fn)(void *user);

/**
 * Receives the call's result (a borrowed reference) inside the target
 * interpreter, with its GIL held.  Return 0, or -1 with an exception set.
 */
typedef int (*pyinterp_result_fn)(struct _object *result, void *user);

/**
 * Pair `callable` with the interpreter the calling thread is attached to.
 * GIL held.  Takes a new reference to `callable`.
 * @return PYINTERP_OK, PYINTERP_ERR_INVALID (not callable), PYINTERP_ERR_STATE
 *         (no thread state attached), PYINTERP_ERR_NOT_FOUND (unmanaged
 *         interpreter), PYINTERP_ERR_NOMEM.
 */
PYINTERP_API int pyinterp_callback_new(struct _object *callable, pyinterp_callback **out);

/**
 * Call the callback in its interpreter, from any thread, in any GIL state.
 *
 * Enters the interpreter, builds the arguments with `make_args` (NULL: no
 * arguments), calls, hands the result to `on_result` (may be NULL), leaves.
 * A Python exception (from any of the three) is logged at ERROR level with
 * its traceback, or, with no log sink installed, handed to the
 * interpreter's sys.unraisablehook; either way it is cleared.
 *
 * @return PYINTERP_OK, PYINTERP_ERR_PYTHON, PYINTERP_ERR_GONE (interpreter
 *         ending or gone; nothing was called), PYINTERP_ERR_INVALID.
 */
PYINTERP_API int pyinterp_callback_call(pyinterp_callback *callback, pyinterp_args_fn make_args,
                                        pyinterp_result_fn on_result, void *user);

/** A new view of the callback's interpreter (free it). No GIL needed. */
PYINTERP_API pyinterp_view *pyinterp_callback_view(const pyinterp_callback *callback);

/**
 * Free a callback from any thread, in any GIL state.  NULL does nothing.
 *
 * While the interpreter is live, the reference to the callable is released
 * inside it (entering it if needed).  While it is ending (an end is under
 * way: waiting for entries, or already inside Py_EndInterpreter, where a
 * module's m_free runs), nothing is entered and no GIL is taken: the
 * reference is released by the ending thread, with the interpreter's GIL,
 * during teardown, or was already.  Once it has ended, the reference was
 * released during its teardown.  So a callback may be freed from a module's
 * m_free, from a thread that the end is waiting for, or long after.
 */
PYINTERP_API void pyinterp_callback_free(pyinterp_callback *callback);

#ifdef __cplusplus
}
#endif

#endif /* PYINTERP_DISPATCH_H */
