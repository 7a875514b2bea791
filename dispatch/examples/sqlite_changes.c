/*
 * sqlite_changes: an example C extension whose events happen on a thread of
 * its own and are delivered to Python code in the interpreter that asked
 * for them.  docs/dispatch.md walks through it.
 *
 *     import sqlite_changes
 *     db = sqlite_changes.connect("app.db")     # starts a writer thread
 *     db.on_change(callback)                    # callback(op, table, rowid)
 *     db.execute("INSERT INTO t VALUES (1)")    # queued for the writer thread
 *     db.flush()                                # wait for the queued writes
 *     db.close()                                # stop and join the writer
 *
 * Every write runs on the connection's writer thread, a plain pthread that
 * never holds a GIL.  SQLite's update hook fires there for each changed row,
 * the commit hook when the transaction commits, the rollback hook when it
 * does not.  Committed changes are handed to pyinterp's default loop, whose
 * thread calls `callback` inside the interpreter that registered it; the
 * writer thread only queues and never waits for Python.
 *
 * The module does not link the pyinterp library.  It uses the C API table
 * of the `pyinterp` module (pyinterp/module.h), so it shares the runtime
 * that created the interpreters: the httpd module's, a test host's, or that
 * of pyinterp's own extension module in a plain `python3`.
 *
 * Multi-phase initialisation, state in module state, safe in interpreters
 * with their own GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pyinterp/module.h"

/* ------------------------------------------------------------ listeners */

/* The Python callback of one connection, shared by the connection and by
 * every change queued on the loop for it.  Freed, from whichever thread
 * drops the last reference, with pyinterp's callback_free(), which releases
 * the Python callable inside its own interpreter. */
typedef struct listener {
    atomic_int refs;
    const pyinterp_capi *api;
    pyinterp_callback *callback;
} listener;

static listener *listener_ref(listener *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

/* Any thread, any GIL state. */
static void listener_unref(listener *l)
{
    if (l != NULL && atomic_fetch_sub(&l->refs, 1) == 1) {
        l->api->callback_free(l->callback);
        free(l);
    }
}

/* ------------------------------------------------------------- changes */

/* One changed row.  Collected on the writer thread; after the commit, it is
 * the `user` of a loop task and is freed by the task's release function. */
typedef struct change {
    struct change *next;
    listener *listener; /* a reference, set when handed to the loop */
    int op;             /* SQLITE_INSERT, SQLITE_UPDATE or SQLITE_DELETE */
    sqlite3_int64 rowid;
    char table[];
} change;

static void free_changes(change *c)
{
    while (c != NULL) {
        change *next = c->next;
        free(c);
        c = next;
    }
}

/* pyinterp_args_fn: runs on a loop thread inside the listener's interpreter,
 * with its GIL held. */
static PyObject *change_args(void *user)
{
    const change *c = user;
    const char *op = c->op == SQLITE_INSERT ? "INSERT" : c->op == SQLITE_UPDATE ? "UPDATE" : "DELETE";
    return Py_BuildValue("(ssL)", op, c->table, (long long)c->rowid);
}

/* pyinterp_release_fn: called once when the loop is done with the task
 * (delivered, or dropped because the interpreter ended). Any GIL state. */
static void change_release(void *user)
{
    change *c = user;
    listener_unref(c->listener);
    free(c);
}

/* ---------------------------------------------------------- connections */

typedef struct job {
    struct job *next;
    char sql[];
} job;

typedef struct {
    PyObject_HEAD
    const pyinterp_capi *api;
    char *path;
    pthread_t writer;
    int started;

    /* Shared with the writer thread, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;  /* queued SQL */
    int busy;          /* the writer is running a job */
    int closing;
    int failures;      /* since the last flush() */
    char *first_error;
    listener *listener;
    unsigned long dropped; /* changes the loop refused (interpreter ending) */

    /* The writer thread's own. */
    change *pending;   /* rows changed by the open transaction (newest first) */
    change *committed; /* committed, not yet handed to the loop (newest first) */
} connection;

/* SQLite hooks: on the writer thread, inside sqlite3_exec(). */

static void on_update(void *arg, int op, const char *db_name, const char *table, sqlite3_int64 rowid)
{
    connection *self = arg;
    size_t n = strlen(table) + 1;
    change *c = malloc(sizeof *c + n);
    (void)db_name;
    if (c == NULL) return; /* out of memory: this change goes unreported */
    c->listener = NULL;
    c->op = op;
    c->rowid = rowid;
    memcpy(c->table, table, n);
    /* Newest first; deliver() reverses. */
    c->next = self->pending;
    self->pending = c;
}

static int on_commit(void *arg)
{
    connection *self = arg;
    /* Both lists are newest first: put the transaction's changes in front. */
    if (self->pending != NULL) {
        change *last = self->pending;
        while (last->next != NULL) last = last->next;
        last->next = self->committed;
        self->committed = self->pending;
        self->pending = NULL;
    }
    return 0; /* let the commit go ahead */
}

static void on_rollback(void *arg)
{
    connection *self = arg;
    free_changes(self->pending);
    free_changes(self->committed); /* a commit that failed after its hook */
    self->pending = self->committed = NULL;
}

/* After a job, outside any transaction: hand the committed changes, in
 * order, to the loop.  Never waits for a GIL. */
static void deliver(connection *self)
{
    change *c = self->committed, *ordered = NULL;
    self->committed = NULL;
    while (c != NULL) { /* back into commit order */
        change *next = c->next;
        c->next = ordered;
        ordered = c;
        c = next;
    }
    pthread_mutex_lock(&self->mu);
    listener *l = self->listener != NULL ? listener_ref(self->listener) : NULL;
    pthread_mutex_unlock(&self->mu);
    pyinterp_loop *loop = NULL;
    if (l == NULL || self->api->loop_default(&loop) != PYINTERP_OK) {
        free_changes(ordered); /* nobody listening, or the runtime is finalizing */
        listener_unref(l);
        return;
    }
    while (ordered != NULL) {
        change *next = ordered->next;
        ordered->next = NULL;
        ordered->listener = listener_ref(l);
        pyinterp_loop_task task = {0};
        task.callback = l->callback;
        task.make_args = change_args;
        task.release = change_release;
        task.user = ordered;
        /* The listener's interpreter picks the loop thread, so its changes
         * are delivered one at a time, in this order. */
        if (self->api->loop_call_soon(loop, &task, NULL) != PYINTERP_OK) {
            change_release(ordered); /* not taken: the interpreter is ending */
            pthread_mutex_lock(&self->mu);
            self->dropped++;
            pthread_mutex_unlock(&self->mu);
        }
        ordered = next;
    }
    listener_unref(l);
}

static void record_failure(connection *self, const char *message)
{
    /* under mu */
    if (self->failures++ == 0) {
        free(self->first_error);
        self->first_error = strdup(message != NULL ? message : "unknown SQLite error");
    }
}

static void *writer_main(void *arg)
{
    connection *self = arg;
    sqlite3 *db = NULL;
    /* The connection belongs to this thread alone. */
    int rc = sqlite3_open_v2(self->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_update_hook(db, on_update, self);
        sqlite3_commit_hook(db, on_commit, self);
        sqlite3_rollback_hook(db, on_rollback, self);
    }
    for (;;) {
        pthread_mutex_lock(&self->mu);
        while (self->head == NULL && !self->closing) pthread_cond_wait(&self->cv, &self->mu);
        job *j = self->head;
        if (j == NULL) { /* closing, nothing left */
            pthread_mutex_unlock(&self->mu);
            break;
        }
        self->head = j->next;
        if (self->head == NULL) self->tail = NULL;
        self->busy = 1;
        pthread_mutex_unlock(&self->mu);

        char *err = NULL;
        int jrc = rc == SQLITE_OK ? sqlite3_exec(db, j->sql, NULL, NULL, &err) : rc;
        if (rc == SQLITE_OK && sqlite3_get_autocommit(db)) deliver(self);

        pthread_mutex_lock(&self->mu);
        if (jrc != SQLITE_OK) record_failure(self, err != NULL ? err : sqlite3_errstr(jrc));
        self->busy = 0;
        pthread_cond_broadcast(&self->cv);
        pthread_mutex_unlock(&self->mu);
        sqlite3_free(err);
        free(j);
    }
    /* An open transaction is rolled back by closing, without the hook. */
    sqlite3_close(db);
    free_changes(self->pending);
    free_changes(self->committed);
    self->pending = self->committed = NULL;
    return NULL;
}

/* ------------------------------------------------------- module state */

typedef struct {
    const pyinterp_capi *api;
    PyTypeObject *connection_type;
    PyObject *error;
} module_state;

static module_state *state_of_type(PyTypeObject *type)
{
    return PyType_GetModuleState(type);
}

/* ------------------------------------------------------ Python methods */

/* Stop and join the writer thread.  GIL held; released while joining. */
static void connection_stop(connection *self)
{
    if (!self->started) return;
    pthread_mutex_lock(&self->mu);
    self->closing = 1;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(self->writer, NULL);
    Py_END_ALLOW_THREADS
    self->started = 0;
}

static PyObject *py_connection_on_change(PyObject *op, PyObject *callable)
{
    connection *self = (connection *)op;
    listener *l = NULL;
    if (callable != Py_None) {
        l = malloc(sizeof *l);
        if (l == NULL) return PyErr_NoMemory();
        atomic_init(&l->refs, 1);
        l->api = self->api;
        /* Pairs the callable with the interpreter running this method. */
        int rc = self->api->callback_new(callable, &l->callback);
        if (rc != PYINTERP_OK) {
            free(l);
            if (rc == PYINTERP_ERR_INVALID) PyErr_SetString(PyExc_TypeError, "on_change() needs a callable or None");
            else PyErr_Format(PyExc_RuntimeError, "on_change(): %s", self->api->strerror(rc));
            return NULL;
        }
    }
    pthread_mutex_lock(&self->mu);
    listener *old = self->listener;
    self->listener = l;
    pthread_mutex_unlock(&self->mu);
    listener_unref(old); /* changes already queued keep their own reference */
    Py_RETURN_NONE;
}

static PyObject *py_connection_execute(PyObject *op, PyObject *arg)
{
    connection *self = (connection *)op;
    Py_ssize_t n;
    const char *sql = PyUnicode_AsUTF8AndSize(arg, &n);
    if (sql == NULL) return NULL;
    job *j = malloc(sizeof *j + (size_t)n + 1);
    if (j == NULL) return PyErr_NoMemory();
    j->next = NULL;
    memcpy(j->sql, sql, (size_t)n + 1);
    pthread_mutex_lock(&self->mu);
    int closed = self->closing || !self->started;
    if (!closed) {
        if (self->tail != NULL) self->tail->next = j;
        else self->head = j;
        self->tail = j;
        pthread_cond_broadcast(&self->cv);
    }
    pthread_mutex_unlock(&self->mu);
    if (closed) {
        free(j);
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_connection_flush(PyObject *op, PyObject *unused)
{
    connection *self = (connection *)op;
    (void)unused;
    int failures;
    char *first_error;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    while ((self->head != NULL || self->busy) && self->started) pthread_cond_wait(&self->cv, &self->mu);
    failures = self->failures;
    first_error = self->first_error;
    self->failures = 0;
    self->first_error = NULL;
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    if (failures > 0) {
        PyErr_Format(state_of_type(Py_TYPE(op))->error, "%d write(s) failed; the first: %s", failures,
                     first_error != NULL ? first_error : "?");
        free(first_error);
        return NULL;
    }
    free(first_error);
    Py_RETURN_NONE;
}

static PyObject *py_connection_close(PyObject *op, PyObject *unused)
{
    connection *self = (connection *)op;
    (void)unused;
    connection_stop(self);
    pthread_mutex_lock(&self->mu);
    listener *l = self->listener;
    self->listener = NULL;
    pthread_mutex_unlock(&self->mu);
    listener_unref(l);
    Py_RETURN_NONE;
}

static PyObject *py_connection_dropped(PyObject *op, void *closure)
{
    connection *self = (connection *)op;
    (void)closure;
    pthread_mutex_lock(&self->mu);
    unsigned long n = self->dropped;
    pthread_mutex_unlock(&self->mu);
    return PyLong_FromUnsignedLong(n);
}

static void connection_dealloc(PyObject *op)
{
    connection *self = (connection *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject *r = py_connection_close(op, NULL);
    Py_XDECREF(r);
    job *j = self->head;
    while (j != NULL) {
        job *next = j->next;
        free(j);
        j = next;
    }
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    free(self->first_error);
    free(self->path);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef connection_methods[] = {
    {"on_change", py_connection_on_change, METH_O,
     "on_change(callback) -> None\n\nCall callback(op, table, rowid) for every committed change, in this\n"
     "interpreter, on a pyinterp loop thread.  None unregisters."},
    {"execute", py_connection_execute, METH_O,
     "execute(sql) -> None\n\nQueue SQL (one or more statements) for the writer thread."},
    {"flush", py_connection_flush, METH_NOARGS,
     "flush() -> None\n\nWait until every queued write ran; raise Error if any failed since the last flush."},
    {"close", py_connection_close, METH_NOARGS, "close() -> None\n\nFinish the queued writes and stop the writer thread."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef connection_getset[] = {
    {"dropped", py_connection_dropped, NULL, "Changes not delivered because the interpreter was ending.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot connection_slots[] = {
    {Py_tp_doc, "A SQLite connection whose writes run on a background thread."},
    {Py_tp_dealloc, connection_dealloc},
    {Py_tp_methods, connection_methods},
    {Py_tp_getset, connection_getset},
    {0, NULL},
};

static PyType_Spec connection_spec = {
    "sqlite_changes.Connection",
    sizeof(connection),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    connection_slots,
};

static PyObject *py_connect(PyObject *module, PyObject *arg)
{
    module_state *st = PyModule_GetState(module);
    const char *path = PyUnicode_AsUTF8(arg);
    if (path == NULL) return NULL;
    connection *self = (connection *)st->connection_type->tp_alloc(st->connection_type, 0);
    if (self == NULL) return NULL;
    self->api = st->api;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->path = strdup(path);
    if (self->path == NULL || pthread_create(&self->writer, NULL, writer_main, self) != 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_RuntimeError, "could not start the writer thread");
        return NULL;
    }
    self->started = 1;
    return (PyObject *)self;
}

/* ------------------------------------------------------------ module */

static int exec_module(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    /* Imports `pyinterp` in this interpreter, which also starts the runtime
     * in a plain python3 (extension mode). */
    st->api = pyinterp_capi_import();
    if (st->api == NULL) return -1;
    st->connection_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &connection_spec, NULL);
    if (st->connection_type == NULL) return -1;
    if (PyModule_AddObjectRef(module, "Connection", (PyObject *)st->connection_type) < 0) return -1;
    st->error = PyErr_NewException("sqlite_changes.Error", NULL, NULL);
    if (st->error == NULL) return -1;
    return PyModule_AddObjectRef(module, "Error", st->error);
}

static int module_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = PyModule_GetState(module);
    Py_VISIT(st->connection_type);
    Py_VISIT(st->error);
    return 0;
}

static int module_clear(PyObject *module)
{
    module_state *st = PyModule_GetState(module);
    Py_CLEAR(st->connection_type);
    Py_CLEAR(st->error);
    return 0;
}

static void module_free(void *module)
{
    module_clear(module);
}

static PyMethodDef module_methods[] = {
    {"connect", py_connect, METH_O, "connect(path) -> Connection\n\nOpen `path` on a new writer thread."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, exec_module},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "sqlite_changes",
    "SQLite writes on a background thread, committed changes reported to Python (a pyinterp example).",
    sizeof(module_state),
    module_methods,
    module_slots,
    module_traverse,
    module_clear,
    module_free,
};

PyMODINIT_FUNC PyInit_sqlite_changes(void)
{
    return PyModuleDef_Init(&module_def);
}
