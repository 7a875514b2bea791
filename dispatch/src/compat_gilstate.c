/*
 * The one place that reads CPython's internal runtime structure: the
 * thread-specific key behind PyGILState_GetThisThreadState().  CPython offers
 * no setter for it, and the library needs one (see gilstate_bind in compat.h).
 * The internal headers ship with python3.X-dev and with every CPython build;
 * this file is compiled against the same headers as the library links with,
 * so the structure offsets match.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <internal/pycore_runtime.h>

Py_tss_t *pyinterp_compat_autotss_key(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return &_PyRuntime.autoTSSkey;
#else
    return &_PyRuntime.gilstate.autoTSSkey;
#endif
}

#if PY_VERSION_HEX < 0x030C0000
const void *pyinterp_compat_current_tstate_addr(void)
{
    return &_PyRuntime.gilstate.tstate_current;
}
#endif
