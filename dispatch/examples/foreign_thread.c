/*
 * Worked example: plain pthreads calling Python callbacks that live in two
 * different subinterpreters, then one interpreter ending under them.
 *
 * Only the public C API (pyinterp/dispatch.h) and Python.h are used.  The
 * program exits 0 when every count comes out as expected, so ctest runs it
 * as a test (example.foreign_thread).  See docs/dispatch.md for the tour.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdio.h>

#include "pyinterp/dispatch.h"

enum { N_THREADS = 2, N_CALLS = 500 };

/* The Python side: a module-level list and a function that appends to it. */
static const char k_setup[] =
    "events = []\n"
    "def on_event(n):\n"
    "    events.append(n)\n"
    "    return len(events)\n";

static pyinterp_callback *g_callbacks[2]; /* [0] in "alpha", [1] in "beta" */
static int g_failures;                    /* failed calls, all threads */
static pthread_mutex_t g_failures_mu = PTHREAD_MUTEX_INITIALIZER;

/* The library never prints: it hands each message to the host's sink.
   Called from any thread, possibly with a GIL held, so it must not call
   into Python or the library. */
static void log_to_stderr(int level, const char *message, void *user)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)user;
    /* Messages begin with their origin ("pyinterp: ..."): add the level. */
    fprintf(stderr, "[%s] %s\n", level >= 0 && level <= 3 ? names[level] : "?", message);
}

/* A pyinterp_args_fn: runs inside the target interpreter with its GIL held,
   so it may create Python objects.  Returns a new tuple reference. */
static PyObject *make_args(void *user)
{
    return Py_BuildValue("(i)", *(const int *)user);
}

/* Create interpreter `name`, run k_setup in its __main__ and wrap on_event
   in a callback.  Called detached (no GIL); pyinterp_enter attaches this
   thread to the new interpreter and pyinterp_leave detaches it again. */
static int make_callback(const char *name, pyinterp_view **view, pyinterp_callback **cb)
{
    pyinterp_token token;
    int rc = pyinterp_interp_create(name, NULL, view);
    if (rc == PYINTERP_OK) rc = pyinterp_enter(*view, &token);
    if (rc != PYINTERP_OK) return rc;
    /* From here to pyinterp_leave we hold `name`'s GIL: plain Python C API. */
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__")); /* borrowed */
    PyObject *res = PyRun_String(k_setup, Py_file_input, globals, globals);
    PyObject *fn = res ? PyDict_GetItemString(globals, "on_event") : NULL; /* borrowed */
    rc = fn ? pyinterp_callback_new(fn, cb) : PYINTERP_ERR_PYTHON; /* takes its own ref */
    if (res == NULL) PyErr_Print();
    Py_XDECREF(res);
    pyinterp_leave(token);
    return rc;
}

/* A foreign thread: Python never created it and it holds no thread state.
   pyinterp_callback_call enters the callback's interpreter through this
   thread's cached thread state (made on first use), calls, and leaves. */
static void *worker(void *arg)
{
    int bad = 0;
    (void)arg;
    for (int n = 0; n < N_CALLS; n++)
        for (int i = 0; i < 2; i++)
            if (pyinterp_callback_call(g_callbacks[i], make_args, NULL, &n) != PYINTERP_OK) bad++;
    pthread_mutex_lock(&g_failures_mu);
    g_failures += bad;
    pthread_mutex_unlock(&g_failures_mu);
    return NULL; /* on exit, the library deletes this thread's cached states */
}

/* len(events) in the view's interpreter, or -1. */
static long count_events(const pyinterp_view *view)
{
    pyinterp_token token;
    if (pyinterp_enter(view, &token) != PYINTERP_OK) return -1;
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__"));
    PyObject *n = PyRun_String("len(events)", Py_eval_input, globals, globals);
    long count = n ? PyLong_AsLong(n) : -1;
    if (n == NULL) PyErr_Print();
    Py_XDECREF(n);
    pyinterp_leave(token);
    return count;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and the log in order */
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_DEBUG, NULL);
    pyinterp_config config = {0};
    config.no_site = 1;
    /* Host mode: this starts Python and returns with no GIL held. */
    int rc = pyinterp_initialize(&config);
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_initialize: %s\n", pyinterp_strerror(rc));
        return 1;
    }

    const char *names[2] = {"alpha", "beta"};
    pyinterp_view *views[2] = {NULL, NULL};
    int ok = 1;
    for (int i = 0; i < 2 && ok; i++) {
        rc = make_callback(names[i], &views[i], &g_callbacks[i]);
        if (rc != PYINTERP_OK) {
            fprintf(stderr, "setting up %s: %s\n", names[i], pyinterp_strerror(rc));
            ok = 0;
        }
    }

    /* Two plain pthreads, each calling both interpreters' callbacks. */
    pthread_t threads[N_THREADS];
    int started = 0;
    for (; ok && started < N_THREADS; started++)
        if (pthread_create(&threads[started], NULL, worker, NULL) != 0) {
            ok = 0;
            break;
        }
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    if (g_failures != 0) {
        fprintf(stderr, "%d callback calls failed\n", g_failures);
        ok = 0;
    }

    /* Each interpreter has its own `events` list: N_THREADS * N_CALLS each. */
    for (int i = 0; i < 2 && ok; i++) {
        long count = count_events(views[i]);
        printf("%s: len(events) = %ld (expected %d)\n", names[i], count, N_THREADS * N_CALLS);
        if (count != N_THREADS * N_CALLS) ok = 0;
    }

    /* End "alpha".  Its views and callbacks stay valid; using them now
       reports PYINTERP_ERR_GONE instead of touching freed interpreter state. */
    if (ok) {
        int zero = 0;
        rc = pyinterp_interp_end(views[0], -1);
        printf("pyinterp_interp_end(alpha): %s\n", pyinterp_strerror(rc));
        if (rc != PYINTERP_OK) ok = 0;
        rc = pyinterp_callback_call(g_callbacks[0], make_args, NULL, &zero);
        printf("calling alpha's callback afterwards: %s\n", pyinterp_strerror(rc));
        if (rc != PYINTERP_ERR_GONE) ok = 0;
        rc = pyinterp_callback_call(g_callbacks[1], make_args, NULL, &zero);
        printf("calling beta's callback afterwards: %s\n", pyinterp_strerror(rc));
        if (rc != PYINTERP_OK || count_events(views[1]) != N_THREADS * N_CALLS + 1) ok = 0;
    }

    /* Free in any order, from any thread; alpha's callable was already
       released when alpha ended.  pyinterp_finalize ends "beta" too. */
    for (int i = 0; i < 2; i++) {
        pyinterp_callback_free(g_callbacks[i]);
        pyinterp_view_free(views[i]);
    }
    rc = pyinterp_finalize();
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_finalize: %s\n", pyinterp_strerror(rc));
        ok = 0;
    }
    printf("%s\n", ok ? "all counts as expected" : "FAILED");
    return ok ? 0 : 1;
}
