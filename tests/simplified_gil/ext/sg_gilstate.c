/*
 * sg_gilstate: a test extension that calls back into Python the old way,
 * from a pthread of its own through the simplified GIL API.
 *
 *     import sg_gilstate
 *     sg_gilstate.run(callback) -> (interpreter id seen by the thread, callback())
 *
 * run() starts a pthread, which calls PyGILState_Ensure(), records the id of
 * the interpreter it landed in, calls `callback` and keeps its result as a
 * string; run() waits for the thread with the GIL released.  A thread that
 * never had a thread state always lands in the main interpreter
 * (cpython-facts.md §1), so from a subinterpreter the callback runs in the
 * wrong one: the reason mod_pyinterp routes applications that import this
 * module to the main interpreter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <string.h>

typedef struct job {
    PyObject *callback;  /* borrowed: run() holds it for the thread's lifetime */
    long long interp_id;
    char result[256];
} job;

static void *thread_main(void *arg)
{
    job *j = (job *)arg;
    PyGILState_STATE g = PyGILState_Ensure();
    j->interp_id = (long long)PyInterpreterState_GetID(PyInterpreterState_Get());
    PyObject *r = PyObject_CallNoArgs(j->callback);
    PyObject *s = r ? PyObject_Str(r) : NULL;
    const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
    if (text == NULL) {
        PyErr_Clear();
        text = "<exception>";
    }
    strncpy(j->result, text, sizeof j->result - 1);
    Py_XDECREF(s);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return NULL;
}

static PyObject *py_run(PyObject *self, PyObject *callback)
{
    (void)self;
    if (!PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "run() needs a callable");
        return NULL;
    }
    job j;
    memset(&j, 0, sizeof j);
    j.callback = callback;
    j.interp_id = -1;
    pthread_t t;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = pthread_create(&t, NULL, thread_main, &j);
    if (rc == 0) pthread_join(t, NULL);
    Py_END_ALLOW_THREADS
    if (rc != 0) return PyErr_Format(PyExc_OSError, "pthread_create failed: %d", rc);
    return Py_BuildValue("(Ls)", j.interp_id, j.result);
}

static PyMethodDef methods[] = {
    {"run", py_run, METH_O, "run(callback) -> (interpreter id, str(callback())) from a new pthread"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
    {0, NULL},
};

static struct PyModuleDef def = {
    PyModuleDef_HEAD_INIT, "sg_gilstate", "PyGILState_Ensure from a thread of its own (test extension).",
    0, methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_sg_gilstate(void)
{
    return PyModuleDef_Init(&def);
}
