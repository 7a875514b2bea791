// Exception helpers (see pyinterp/py/exception.h).  GIL held throughout.
#include "pyinterp/py/exception.h"

#include <cstdio>

namespace pyinterp::py {

ref take_exception() noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    return ref::steal(PyErr_GetRaisedException());
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == nullptr) return ref();
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != nullptr && tb != nullptr) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return ref::steal(value);
#endif
}

void restore_exception(ref exc) noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc.release());
#else
    if (!exc) {
        PyErr_Clear();
        return;
    }
    PyObject* value = exc.release();
    PyObject* type = Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(value)));
    PyErr_Restore(type, value, PyException_GetTraceback(value));
#endif
}

std::string format_exception(PyObject* exc) noexcept {
    std::string text;
    try {
        ref lines;
        if (ref tb = ref::steal(PyImport_ImportModule("traceback")))
            lines = ref::steal(PyObject_CallMethod(tb.get(), "format_exception", "O", exc));
        ref empty = ref::steal(lines ? PyUnicode_FromString("") : nullptr);
        ref joined = ref::steal(empty ? PyUnicode_Join(empty.get(), lines.get()) : nullptr);
        if (!joined) {
            PyErr_Clear();
            joined = ref::steal(PyObject_Str(exc));
        }
        const char* utf8 = joined ? PyUnicode_AsUTF8(joined.get()) : nullptr;
        text = utf8 != nullptr ? utf8 : "(the exception could not be formatted)";
    } catch (...) {
        text.clear();  // out of memory: say nothing rather than fail
    }
    PyErr_Clear();
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
}

void write_unraisable(const char* where, PyObject* obj) noexcept {
#if PY_VERSION_HEX >= 0x030D0000
    // 3.13 made PyErr_FormatUnraisable public and removed the call below.
    if (obj != nullptr) PyErr_FormatUnraisable("Exception ignored in %s %R", where, obj);
    else PyErr_FormatUnraisable("Exception ignored in %s", where);
#else
    // 3.11 and 3.12 export _PyErr_WriteUnraisableMsg, which puts
    // "Exception ignored " in front of its message.
    char in[256];
    std::snprintf(in, sizeof in, "in %s", where);
    _PyErr_WriteUnraisableMsg(in, obj);
#endif
}

}  // namespace pyinterp::py
