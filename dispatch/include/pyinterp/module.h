/*
 * The `pyinterp` Python module, seen from C.
 *
 * Python code sees
 *
 *     pyinterp.call_soon(fn, *args)            -> Handle
 *     pyinterp.call_later(seconds, fn, *args)  -> Handle
 *     Handle.cancel() -> bool, Handle.cancelled() -> bool
 *     pyinterp.interpreter() -> (name, id, own_gil)
 *
 * where fn(*args) runs on a thread of the default loop (loop.h) inside the
 * interpreter that scheduled it.  The module uses multi-phase initialisation
 * with per-interpreter state, and declares support for interpreters with
 * their own GIL (3.12+).
 *
 * C code uses this header for two things:
 *
 * 1. Hosts that embed Python register the module before starting Python, so
 *    that every interpreter can import it without installing anything:
 *
 *        PyImport_AppendInittab("pyinterp", PyInit_pyinterp);
 *        pyinterp_initialize(&config);
 *
 *    The same code is also built as an ordinary extension module
 *    (pyinterp.cpython-3XX-*.so) that a plain `python3` imports; it then
 *    starts the library in extension mode from the module's exec slot and,
 *    if no log sink is installed, logs warnings and errors (tracebacks of
 *    failing callbacks among them) to standard error.
 *
 * 2. C extension modules reach the library through the module's C API
 *    capsule, `pyinterp._C_API`, instead of linking their own copy of it:
 *    interpreters, thread-state caches and the default loop exist once per
 *    process, in whichever binary registered or built the `pyinterp` module
 *    (the httpd module, a test host, or pyinterp's own extension module).
 *    An extension that linked a second copy would not know the interpreters
 *    the first one created.
 *
 *        const pyinterp_capi *api = pyinterp_capi_import();  // GIL held
 *        if (api == NULL) return -1;                          // ImportError set
 *        api->callback_new(fn, &cb);
 *
 *    The table is static and lives as long as the process: import it once
 *    per interpreter (a module's exec slot is the place) and keep the
 *    pointer, e.g. in module state.  Every entry behaves exactly like the
 *    function of the same name in dispatch.h and loop.h.
 *
 *    An extension that links only these headers (CMake: pyinterp::headers)
 *    and uses the table works in every process that provides the `pyinterp`
 *    module: mod_pyinterp, a host registering PyInit_pyinterp, or a plain
 *    python3 with pyinterp's extension module installed.
 */
#ifndef PYINTERP_MODULE_H
#define PYINTERP_MODULE_H

#include <Python.h>
#include <stddef.h>

#include "pyinterp/dispatch.h"
#include "pyinterp/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Init function of the `pyinterp` module, for PyImport_AppendInittab().
 * Called by CPython's import machinery with the GIL held.
 */
PyMODINIT_FUNC PyInit_pyinterp(void);

/** Name of the capsule, for PyCapsule_Import(). */
#define PYINTERP_CAPI_NAME "pyinterp._C_API"

/** Version of the table; grows when entries are appended. */
#define PYINTERP_CAPI_VERSION 2

/**
 * The oldest table version this extension accepts, for
 * pyinterp_capi_import().  By default the version of this header, so that
 * every entry below is present.  An extension that must also load under an
 * older library defines it lower before including this header and checks
 * PYINTERP_CAPI_HAS() before using a newer entry.
 */
#ifndef PYINTERP_CAPI_MIN_VERSION
#define PYINTERP_CAPI_MIN_VERSION PYINTERP_CAPI_VERSION
#endif

/**
 * The C API table behind the capsule.  Entries are only ever appended, and
 * each behaves exactly like the function of the same name in dispatch.h
 * and loop.h (api->enter is pyinterp_enter, and so on), with the same GIL
 * rules and status codes.
 *
 * Not in the table, because they belong to the program that embeds Python:
 * pyinterp_initialize, pyinterp_finalize, pyinterp_set_log_callback,
 * pyinterp_loop_set_default_threads.
 */
typedef struct pyinterp_capi {
    /** PYINTERP_CAPI_VERSION of the library that filled it. */
    int version;
    /** sizeof(pyinterp_capi) of the library that filled it. */
    size_t size;

    /* ---- version 1 */

    const char *(*strerror)(int status);

    /* views and entries (dispatch.h) */
    int (*view_current)(pyinterp_view **out);
    pyinterp_view *(*view_copy)(const pyinterp_view *view);
    void (*view_free)(pyinterp_view *view);
    const char *(*view_name)(const pyinterp_view *view);
    int64_t (*view_id)(const pyinterp_view *view);
    int (*view_is_live)(const pyinterp_view *view);
    int (*enter)(const pyinterp_view *view, pyinterp_token *token);
    int (*leave)(pyinterp_token token);

    /* callbacks (dispatch.h) */
    int (*callback_new)(PyObject *callable, pyinterp_callback **out);
    int (*callback_call)(pyinterp_callback *callback, pyinterp_args_fn make_args,
                         pyinterp_result_fn on_result, void *user);
    pyinterp_view *(*callback_view)(const pyinterp_callback *callback);
    void (*callback_free)(pyinterp_callback *callback);

    /* the loop (loop.h) */
    int (*loop_default)(pyinterp_loop **out);
    int (*loop_call_soon)(pyinterp_loop *loop, const pyinterp_loop_task *task,
                          pyinterp_loop_handle **handle);
    int (*loop_call_later)(pyinterp_loop *loop, uint64_t delay_us, const pyinterp_loop_task *task,
                           pyinterp_loop_handle **handle);
    int (*loop_watch_fd)(pyinterp_loop *loop, int fd, int events, const pyinterp_loop_task *task,
                         pyinterp_loop_handle **handle);
    int (*loop_cancel)(pyinterp_loop_handle *handle);
    int (*loop_handle_state)(const pyinterp_loop_handle *handle);
    void (*loop_handle_free)(pyinterp_loop_handle *handle);

    /* ---- version 2 */

    /* status, logging (dispatch.h) */
    PyObject *(*set_pyerr)(int status);
    void (*log)(int level, const char *format, ...) PYINTERP_PRINTF(2, 3);
    int (*supports_own_gil)(void);

    /* interpreters and views (dispatch.h) */
    int (*interp_create)(const char *name, const pyinterp_interp_config *config, pyinterp_view **out);
    int (*interp_find)(const char *name, pyinterp_view **out);
    int (*interp_end)(const pyinterp_view *view, int timeout_ms);
    int (*view_main)(pyinterp_view **out);
    int (*view_own_gil)(const pyinterp_view *view);

    /* guards, entries, threads (dispatch.h) */
    int (*guard_new)(const pyinterp_view *view, pyinterp_guard **out);
    void (*guard_free)(pyinterp_guard *guard);
    int (*enter_guarded)(const pyinterp_guard *guard, pyinterp_token *token);
    int (*thread_release)(void);
    int (*thread_is_attached)(void);

    /* loops of the extension's own (loop.h) */
    int (*loop_new)(const pyinterp_loop_config *config, pyinterp_loop **out);
    int (*loop_stop)(pyinterp_loop *loop);
    void (*loop_free)(pyinterp_loop *loop);
    int (*loop_threads)(const pyinterp_loop *loop);

    /* cached thread states of an interpreter (dispatch.h) */
    int (*view_thread_states)(const pyinterp_view *view);
} pyinterp_capi;

/**
 * Non-zero if the table `api` has the entry `member`: for extensions that
 * set PYINTERP_CAPI_MIN_VERSION below PYINTERP_CAPI_VERSION.
 */
#define PYINTERP_CAPI_HAS(api, member) \
    ((api)->size >= offsetof(pyinterp_capi, member) + sizeof((api)->member))

/**
 * Import the `pyinterp` module (if needed) and return its C API table, or
 * NULL with an exception set: ImportError (no `pyinterp` module, or one
 * that refused to load), or RuntimeError for a table older than
 * PYINTERP_CAPI_MIN_VERSION.  GIL held, in the interpreter that will use it.
 */
static inline const pyinterp_capi *pyinterp_capi_import(void)
{
    const pyinterp_capi *api = (const pyinterp_capi *)PyCapsule_Import(PYINTERP_CAPI_NAME, 0);
    if (api != NULL && api->version < PYINTERP_CAPI_MIN_VERSION) {
        PyErr_Format(PyExc_RuntimeError,
                     "pyinterp._C_API is version %d; this module was built for version %d or newer "
                     "(pyinterp/module.h of a newer pyinterp)",
                     api->version, PYINTERP_CAPI_MIN_VERSION);
        return NULL;
    }
    return api;
}

#ifdef __cplusplus
}
#endif

#endif /* PYINTERP_MODULE_H */
