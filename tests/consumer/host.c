/*
 * A program that embeds Python with pyinterp's static library, built from
 * the installed tree (pyinterp::dispatch, or pkg-config pyinterp-dispatch).
 *
 *     host EXTENSION_DIR
 *
 * Registers the `pyinterp` module, starts Python, creates a subinterpreter,
 * imports there the `ticker` extension (built against the installed headers
 * only: it reaches this program's library through the capsule), lets it tick
 * five times, stops it, ends the interpreter and finalizes.  Exits 0 when
 * everything behaved.
 */
#include <Python.h>

#include <stdio.h>
#include <time.h>

#include "pyinterp/dispatch.h"
#include "pyinterp/module.h"

static void log_to_stderr(int level, const char *message, void *user)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    (void)user;
    fprintf(stderr, "[%s] %s\n", level >= 0 && level <= 3 ? names[level] : "?", message);
}

/* In `view`'s interpreter (entering and leaving it), set __main__.`name` to
 * `value` (a file system path) if not NULL, then run `code`; 0 on success. */
static int run_in(const pyinterp_view *view, const char *code, const char *name, const char *value)
{
    pyinterp_token token;
    int rc = pyinterp_enter(view, &token);
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "entering '%s': %s\n", pyinterp_view_name(view), pyinterp_strerror(rc));
        return -1;
    }
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__")); /* borrowed */
    PyObject *r = NULL;
    PyObject *v = value != NULL ? PyUnicode_DecodeFSDefault(value) : NULL;
    if (value == NULL || (v != NULL && PyDict_SetItemString(globals, name, v) == 0))
        r = PyRun_String(code, Py_file_input, globals, globals);
    if (r == NULL) PyErr_Print();
    Py_XDECREF(v);
    Py_XDECREF(r);
    pyinterp_leave(token);
    return r != NULL ? 0 : -1;
}

/* 1 if `expr` is true in `view`'s __main__, 0 if false, -1 on error. */
static int is_true_in(const pyinterp_view *view, const char *expr)
{
    pyinterp_token token;
    if (pyinterp_enter(view, &token) != PYINTERP_OK) return -1;
    PyObject *globals = PyModule_GetDict(PyImport_AddModule("__main__")); /* borrowed */
    PyObject *r = PyRun_String(expr, Py_eval_input, globals, globals);
    int truth = r != NULL ? PyObject_IsTrue(r) : -1;
    if (truth < 0) PyErr_Print();
    Py_XDECREF(r);
    pyinterp_leave(token);
    return truth;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s EXTENSION_DIR\n", argv[0]);
        return 2;
    }
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, NULL);
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) return 2;
    pyinterp_config cfg = {0};
    cfg.no_site = 1;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_initialize: %s\n", pyinterp_strerror(rc));
        return 1;
    }
    pyinterp_view *view = NULL;
    rc = pyinterp_interp_create("consumer", NULL, &view);
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_interp_create: %s\n", pyinterp_strerror(rc));
        return 1;
    }
    int ok = run_in(view,
                    "import sys, threading\n"
                    "sys.path.insert(0, ext_dir)\n"
                    "import pyinterp, ticker\n"
                    "assert pyinterp.interpreter()[0] == 'consumer', pyinterp.interpreter()\n"
                    "me = threading.get_ident()\n"
                    "ticks = []\n"
                    "def on_tick(n):\n"
                    "    ticks.append((n, pyinterp.interpreter()[0], threading.get_ident()))\n"
                    "t = ticker.start(on_tick, 0.002)\n",
                    "ext_dir", argv[1]) == 0;

    /* Five ticks, delivered on the ticker's thread inside 'consumer'. */
    int enough = 0;
    for (int i = 0; ok && !enough && i < 30000; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
        enough = is_true_in(view, "len(ticks) >= 5");
        if (enough < 0) ok = 0;
    }
    ok = ok && enough == 1 &&
         run_in(view,
                "t.stop()\n"
                "assert not t.running and t.ticks == len(ticks) >= 5, (t.ticks, len(ticks))\n"
                "assert [n for n, _, _ in ticks] == list(range(1, len(ticks) + 1)), ticks\n"
                "assert {where for _, where, _ in ticks} == {'consumer'}, ticks\n"
                "assert me not in {thread for _, _, thread in ticks}, ticks\n"
                "print('host: %d ticks in %s, none lost' % (len(ticks), pyinterp.interpreter()[0]))\n",
                NULL, NULL) == 0;
    rc = pyinterp_interp_end(view, -1);
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_interp_end: %s\n", pyinterp_strerror(rc));
        ok = 0;
    }
    pyinterp_view_free(view);
    rc = pyinterp_finalize();
    if (rc != PYINTERP_OK) {
        fprintf(stderr, "pyinterp_finalize: %s\n", pyinterp_strerror(rc));
        ok = 0;
    }
    fflush(stdout);
    return ok ? 0 : 1;
}
