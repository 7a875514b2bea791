/*
 * Test-only access to CPython's internal GIL state (3.11 and 3.12), to put
 * an interpreter in the state a stale drop request would leave it in.
 */
#define Py_BUILD_CORE 1
#include <Python.h>

#if PY_VERSION_HEX < 0x030D0000
#include <internal/pycore_interp.h>

/* SET_GIL_DROP_REQUEST(interp): what a waiter in `interp` does after one
   switch interval (3.11 Python/ceval.c, 3.12 Python/ceval_gil.c). */
void test_set_gil_drop_request(PyInterpreterState *interp)
{
    _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 1);
    _Py_atomic_store_relaxed(&interp->ceval.eval_breaker, 1);
}
#endif

#if PY_VERSION_HEX < 0x030D0000
/* The interpreter's gil_drop_request flag: set when a waiter (or the
   library's GIL watcher) asks its GIL holder to let go. */
int test_gil_drop_requested(PyInterpreterState *interp)
{
    return _Py_atomic_load_relaxed(&interp->ceval.gil_drop_request) != 0;
}
#endif
