// sys.path (see pyinterp/py/sys_path.h).  GIL held.
#include "pyinterp/py/sys_path.h"

#include <Python.h>

#include <cstring>

#include "pyinterp/py/ref.h"

namespace pyinterp::py {

bool prepend_sys_path(const char* dirs) noexcept {
    if (dirs == nullptr || *dirs == '\0') return true;
    PyObject* path = PySys_GetObject("path");  // borrowed
    if (path == nullptr || !PyList_Check(path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return false;
    }
    Py_ssize_t at = 0;
    for (const char* p = dirs; *p;) {
        const char* end = std::strchr(p, ':');
        size_t n = end != nullptr ? size_t(end - p) : std::strlen(p);
        if (n > 0) {
            ref item = ref::steal(PyUnicode_DecodeFSDefaultAndSize(p, Py_ssize_t(n)));
            if (!item || PyList_Insert(path, at++, item.get()) < 0) return false;
        }
        p += n + (end != nullptr ? 1 : 0);
    }
    return true;
}

}  // namespace pyinterp::py
