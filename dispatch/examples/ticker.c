/*
 * ticker: an example C extension that owns native threads which call back
 * into the interpreter that started them.  docs/dispatch.md ("Recipe: a
 * module that owns a native thread") walks through it.
 *
 *     import ticker
 *     t = ticker.start(on_tick, 0.005)   # on_tick(n) every 5 ms, n = 1, 2, ...
 *     t.ticks                            # calls made so far
 *     t.running                          # False once stopped
 *     t.stop()                           # from any thread, on_tick included
 *     ticker.running()                   # tickers running in this interpreter
 *     ticker.threads()                   # ticker threads alive in the process
 *
 * Each ticker is a plain pthread that never was a Python thread.  It sleeps
 * for the interval, then calls `on_tick` inside the interpreter that called
 * start(), through pyinterp's callback API, which gives the thread a thread
 * state of its own for that interpreter, cached for every later tick.
 *
 * A ticker runs until stop() or until its interpreter ends, like a Python
 * thread: dropping the object returned by start() does not stop it.  When
 * the interpreter ends, its ticks are refused (PYINTERP_ERR_GONE) and the
 * thread ends by itself; the module's m_free, which runs inside
 * Py_EndInterpreter(), joins every ticker the interpreter still had.
 *
 * The rules it follows (docs/dispatch.md, "Things that deadlock"):
 * - never join a thread that entered an interpreter while holding a GIL:
 *   the thread deletes its cached thread state before it ends, and that
 *   takes the GIL (joins here release it with Py_BEGIN_ALLOW_THREADS);
 * - a thread cannot join itself: stop() called from inside on_tick detaches
 *   the thread, which ends once on_tick returns;
 * - the C state shared with the thread is reference-counted (the module's
 *   list, the Python object and the thread each hold a reference), so
 *   whichever lets go last frees it, on whatever thread that is.
 *
 * It links no pyinterp code: only pyinterp's headers and the `pyinterp`
 * module's C API capsule (pyinterp/module.h).  Multi-phase initialisation,
 * state in module state, safe in interpreters with their own GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "pyinterp/module.h"

/* Ticker threads that have not finished their thread function, in the whole
 * process (every interpreter): what ticker.threads() reports. */
static atomic_int g_threads_alive;

/* ------------------------------------------------------- shared state */

/* What the thread and Python share.  Reference-counted: the module's list
 * of running tickers, the Ticker object and the thread each hold one. */
typedef struct tick {
    atomic_int refs;
    const pyinterp_capi *api;
    pyinterp_callback *callback; /* on_tick and its interpreter */
    struct timespec interval;
    pthread_t thread;
    atomic_long ticks;

    pthread_mutex_t mu; /* guards the fields below; never held while calling Python */
    pthread_cond_t cv;  /* wakes the thread early: stop() */
    int stopping;
    int ended;        /* the thread left its loop */
    int joined;       /* joined or detached: nobody may join it again */
    int end_status;   /* why it ended: PYINTERP_OK (stopped), _GONE, ... */

    /* The module's list of running tickers; under the interpreter's GIL. */
    struct tick *next, *prev;
    int linked;
} tick;

static tick *tick_ref(tick *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

/* Any thread, any GIL state: callback_free() releases on_tick inside its
 * own interpreter (entering it if needed), or does nothing if that
 * interpreter's teardown already released it. */
static void tick_unref(tick *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1) {
        t->api->callback_free(t->callback);
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t);
    }
}

/* ----------------------------------------------------- the thread */

/* pyinterp_args_fn: inside on_tick's interpreter, GIL held. */
static PyObject *tick_args(void *user)
{
    return Py_BuildValue("(l)", *(const long *)user);
}

static void deadline_after(struct timespec *at, const struct timespec *interval)
{
    clock_gettime(CLOCK_MONOTONIC, at);
    at->tv_sec += interval->tv_sec;
    at->tv_nsec += interval->tv_nsec;
    if (at->tv_nsec >= 1000000000L) {
        at->tv_sec += 1;
        at->tv_nsec -= 1000000000L;
    }
}

static void *tick_main(void *arg)
{
    tick *t = arg; /* the thread's reference */
    const pyinterp_capi *api = t->api;
    int rc = PYINTERP_OK;
    struct timespec at;
    deadline_after(&at, &t->interval);
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->stopping && pthread_cond_timedwait(&t->cv, &t->mu, &at) != ETIMEDOUT) {
        }
        if (t->stopping) break;
        deadline_after(&at, &t->interval);
        pthread_mutex_unlock(&t->mu);

        /* Enters the interpreter (taking its GIL), calls on_tick(n), leaves.
         * An exception on_tick raises is reported by pyinterp (log sink or
         * sys.unraisablehook); ticking goes on.  Counted before the call, so
         * that on_tick sees itself in `ticks`. */
        long n = atomic_fetch_add(&t->ticks, 1) + 1;
        rc = api->callback_call(t->callback, tick_args, NULL, &n);
        if (rc == PYINTERP_ERR_GONE) atomic_fetch_sub(&t->ticks, 1); /* nothing was called */

        pthread_mutex_lock(&t->mu);
        if (rc != PYINTERP_OK && rc != PYINTERP_ERR_PYTHON) break;
        rc = PYINTERP_OK;
    }
    t->ended = 1;
    t->end_status = rc;
    pthread_mutex_unlock(&t->mu);
    if (rc != PYINTERP_OK && rc != PYINTERP_ERR_GONE)
        api->log(PYINTERP_LOG_ERROR, "ticker: thread ended: %s", api->strerror(rc));

    tick_unref(t);
    /* Delete this thread's cached thread state now (the library would do it
     * at thread exit anyway).  It takes the interpreter's GIL while the
     * interpreter is live: whoever joins this thread must not hold it. */
    api->thread_release();
    atomic_fetch_sub(&g_threads_alive, 1);
    return NULL;
}

/* Ask the thread to stop and wait for it, unless called on the thread itself
 * (from inside on_tick): then detach it, and it ends when on_tick returns.
 * GIL held, released while joining. */
static void tick_stop(tick *t)
{
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_cond_signal(&t->cv);
    int join = 0, detach = 0;
    if (!t->joined) {
        t->joined = 1;
        if (pthread_equal(pthread_self(), t->thread)) detach = 1;
        else join = 1;
    }
    pthread_mutex_unlock(&t->mu);
    if (detach) pthread_detach(t->thread);
    if (join) {
        Py_BEGIN_ALLOW_THREADS
        pthread_join(t->thread, NULL);
        Py_END_ALLOW_THREADS
    }
}

/* ---------------------------------------------------- module state */

typedef struct {
    const pyinterp_capi *api;
    PyTypeObject *ticker_type;
    tick *running; /* list of running tickers, each holding a reference */
} module_state;

/* GIL held. */
static void unlink_tick(module_state *st, tick *t)
{
    if (!t->linked) return;
    if (t->prev != NULL) t->prev->next = t->next;
    else st->running = t->next;
    if (t->next != NULL) t->next->prev = t->prev;
    t->next = t->prev = NULL;
    t->linked = 0;
    tick_unref(t); /* the list's reference */
}

/* ------------------------------------------------------ Ticker type */

typedef struct {
    PyObject_HEAD
    tick *t; /* a reference */
} ticker_object;

static PyObject *py_ticker_stop(PyObject *op, PyObject *unused)
{
    ticker_object *self = (ticker_object *)op;
    (void)unused;
    tick_stop(self->t);
    unlink_tick(PyType_GetModuleState(Py_TYPE(op)), self->t);
    Py_RETURN_NONE;
}

static PyObject *py_ticker_ticks(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromLong(atomic_load(&((ticker_object *)op)->t->ticks));
}

static PyObject *py_ticker_running(PyObject *op, void *closure)
{
    tick *t = ((ticker_object *)op)->t;
    (void)closure;
    pthread_mutex_lock(&t->mu);
    int running = !t->stopping && !t->ended;
    pthread_mutex_unlock(&t->mu);
    return PyBool_FromLong(running);
}

static void ticker_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    tick_unref(((ticker_object *)op)->t); /* does not stop the thread */
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef ticker_methods[] = {
    {"stop", py_ticker_stop, METH_NOARGS,
     "stop()\n\nStop the ticker and wait for its thread; from inside on_tick, stop it without waiting."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ticker_getset[] = {
    {"ticks", py_ticker_ticks, NULL, "Calls of on_tick made so far.", NULL},
    {"running", py_ticker_running, NULL, "False once stopped, or once its interpreter is ending.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot ticker_slots[] = {
    {Py_tp_doc, "A running ticker (ticker.start())."},
    {Py_tp_dealloc, ticker_dealloc},
    {Py_tp_methods, ticker_methods},
    {Py_tp_getset, ticker_getset},
    {0, NULL},
};

static PyType_Spec ticker_spec = {
    "ticker.Ticker",
    sizeof(ticker_object),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    ticker_slots,
};

/* ------------------------------------------------- module functions */

static PyObject *py_start(PyObject *module, PyObject *args)
{
    module_state *st = PyModule_GetState(module);
    PyObject *fn;
    double seconds;
    if (!PyArg_ParseTuple(args, "Od:start", &fn, &seconds)) return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "start(): on_tick must be callable");
        return NULL;
    }
    if (!(seconds >= 0.0001 && seconds <= 3600.0)) {
        PyErr_SetString(PyExc_ValueError, "start(): the interval must be between 0.0001 and 3600 seconds");
        return NULL;
    }
    tick *t = calloc(1, sizeof *t);
    if (t == NULL) return PyErr_NoMemory();
    atomic_init(&t->refs, 1); /* the Ticker object's */
    atomic_init(&t->ticks, 0);
    t->api = st->api;
    t->interval.tv_sec = (time_t)seconds;
    t->interval.tv_nsec = (long)((seconds - (double)t->interval.tv_sec) * 1e9);
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);

    /* Pairs on_tick with the interpreter running this function. */
    int rc = st->api->callback_new(fn, &t->callback);
    if (rc != PYINTERP_OK) {
        tick_unref(t);
        return st->api->set_pyerr(rc);
    }
    ticker_object *obj = PyObject_New(ticker_object, st->ticker_type);
    if (obj == NULL) {
        tick_unref(t);
        return NULL;
    }
    obj->t = t;
    atomic_fetch_add(&g_threads_alive, 1);
    tick_ref(t); /* the thread's */
    int err = pthread_create(&t->thread, NULL, tick_main, t);
    if (err != 0) {
        atomic_fetch_sub(&g_threads_alive, 1);
        t->joined = 1;
        tick_unref(t); /* the thread's */
        Py_DECREF(obj);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    tick_ref(t); /* the list's */
    t->linked = 1;
    t->next = st->running;
    if (st->running != NULL) st->running->prev = t;
    st->running = t;
    return (PyObject *)obj;
}

static PyObject *py_running(PyObject *module, PyObject *unused)
{
    module_state *st = PyModule_GetState(module);
    long n = 0;
    (void)unused;
    for (tick *t = st->running; t != NULL; t = t->next) {
        pthread_mutex_lock(&t->mu);
        n += !t->stopping && !t->ended;
        pthread_mutex_unlock(&t->mu);
    }
    return PyLong_FromLong(n);
}

static PyObject *py_threads(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLong(atomic_load(&g_threads_alive));
}

static PyMethodDef module_methods[] = {
    {"start", py_start, METH_VARARGS,
     "start(on_tick, interval) -> Ticker\n\n"
     "Call on_tick(n) every `interval` seconds on a new native thread, inside this interpreter,\n"
     "until stop() or until the interpreter ends."},
    {"running", py_running, METH_NOARGS, "running() -> int\n\nTickers running in this interpreter."},
    {"threads", py_threads, METH_NOARGS, "threads() -> int\n\nTicker threads alive in the process."},
    {NULL, NULL, 0, NULL},
};

/* ----------------------------------------------------------- module */

static int exec_module(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    st->api = pyinterp_capi_import(); /* imports `pyinterp` in this interpreter */
    if (st->api == NULL) return -1;   /* ImportError or RuntimeError set */
    st->ticker_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &ticker_spec, NULL);
    if (st->ticker_type == NULL) return -1;
    return PyModule_AddObjectRef(module, "Ticker", (PyObject *)st->ticker_type);
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(module);
    Py_VISIT(st->ticker_type);
    return 0;
}

static int module_clear(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    Py_CLEAR(st->ticker_type);
    return 0;
}

/* When the module goes away: at the latest inside Py_EndInterpreter() (or
 * Python's finalization), with this interpreter's GIL held.  By then
 * pyinterp refuses every tick for an ending interpreter, so each thread is
 * leaving its loop by itself; stop and join what is left, with the GIL
 * released as always. */
static void module_free(void *op)
{
    PyObject *module = op;
    module_state *st = PyModule_GetState(module);
    if (st == NULL) return;
    while (st->running != NULL) {
        tick *t = st->running;
        tick_stop(t);
        unlink_tick(st, t);
    }
    module_clear(module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, exec_module},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "ticker",
    "Native threads that call back into the interpreter that started them (a pyinterp example).",
    sizeof(module_state),
    module_methods,
    module_slots,
    module_traverse,
    module_clear,
    module_free,
};

PyMODINIT_FUNC PyInit_ticker(void)
{
    return PyModuleDef_Init(&module_def);
}
