/*
 * sg_dispatch: the same test extension as sg_gilstate, done right with the
 * dispatch API.
 *
 *     import sg_dispatch
 *     sg_dispatch.run(callback) -> (interpreter id the callback ran in, callback())
 *
 * run() pairs `callback` with the calling interpreter (callback_new, GIL
 * held), starts a pthread that calls it through callback_call (which enters
 * that interpreter on the foreign thread), and waits with the GIL released.
 *
 * The module links no copy of the dispatch library: inside httpd the
 * library lives in mod_pyinterp.so, statically and with hidden visibility.
 * It takes the function table from the `pyinterp` module's C API capsule
 * (pyinterp/module.h), which mod_pyinterp registers in every interpreter.
 * It never calls PyGILState_*, so its ELF imports do not include
 * PyGILState_Ensure and mod_pyinterp lets it stay in a subinterpreter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <string.h>

#include "pyinterp/module.h"

typedef struct module_state {
    const pyinterp_capi *api;
} module_state;

typedef struct job {
    const pyinterp_capi *api;
    pyinterp_callback *callback;
    int status;
    long long interp_id;
    char result[256];
} job;

/* Inside the callback's interpreter, its GIL held. */
static int on_result(PyObject *result, void *user)
{
    job *j = (job *)user;
    j->interp_id = (long long)PyInterpreterState_GetID(PyInterpreterState_Get());
    PyObject *s = PyObject_Str(result);
    const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
    if (text == NULL) {
        Py_XDECREF(s);
        return -1;
    }
    strncpy(j->result, text, sizeof j->result - 1);
    Py_DECREF(s);
    return 0;
}

/* A plain pthread, no GIL, no thread state of its own. */
static void *thread_main(void *arg)
{
    job *j = (job *)arg;
    j->status = j->api->callback_call(j->callback, NULL, on_result, j);
    return NULL;
}

static PyObject *py_run(PyObject *module, PyObject *callback)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    job j;
    memset(&j, 0, sizeof j);
    j.api = st->api;
    j.interp_id = -1;
    int rc = st->api->callback_new(callback, &j.callback);
    if (rc != PYINTERP_OK) return PyErr_Format(PyExc_RuntimeError, "callback_new: %s", st->api->strerror(rc));
    pthread_t t;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_create(&t, NULL, thread_main, &j);
    if (rc == 0) pthread_join(t, NULL);
    Py_END_ALLOW_THREADS
    st->api->callback_free(j.callback);
    if (rc != 0) return PyErr_Format(PyExc_OSError, "pthread_create failed: %d", rc);
    if (j.status != PYINTERP_OK)
        return PyErr_Format(PyExc_RuntimeError, "callback_call: %s", st->api->strerror(j.status));
    return Py_BuildValue("(Ls)", j.interp_id, j.result);
}

static int exec_module(PyObject *module)
{
    module_state *st = (module_state *)PyModule_GetState(module);
    st->api = pyinterp_capi_import();
    return st->api != NULL ? 0 : -1;
}

static PyMethodDef methods[] = {
    {"run", py_run, METH_O, "run(callback) -> (interpreter id, str(callback())) from a new pthread"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, (void *)exec_module},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, "sg_dispatch", "Callbacks from a thread of its own through pyinterp (test extension).",
    sizeof(module_state), methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_sg_dispatch(void)
{
    return PyModuleDef_Init(&def);
}
