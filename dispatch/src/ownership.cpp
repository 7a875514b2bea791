// Which copy of the library manages an interpreter.
//
// The library's state (interpreters, thread-state caches, the default loop)
// lives in whichever binary links it: the program that embeds Python, or
// the `pyinterp` extension module.  A process can end up with two copies:
// a host that links the library but did not register PyInit_pyinterp with
// PyImport_AppendInittab(), while the extension module is also on sys.path;
// or an extension module that links its own copy.  The second copy knows
// none of the first one's interpreters and would answer "not created
// through pyinterp" for each of them.  So every interpreter the library
// creates or attaches to carries a mark in its interpreter dict
// (PyInterpreterState_GetDict, a per-interpreter place for extension
// state) naming the copy that manages it, and a second copy refuses to
// start where it finds another copy's mark.
#include "internal.h"

namespace pyinterp::detail {
namespace {

constexpr const char* k_key = "pyinterp.runtime";
constexpr const char* k_capsule_name = "pyinterp.runtime";

}  // namespace

int mark_current_interpreter() noexcept {
    PyObject* dict = PyInterpreterState_GetDict(PyInterpreterState_Get());  // borrowed
    if (dict == nullptr) return -1;
    PyObject* mark = PyCapsule_New(&rt(), k_capsule_name, nullptr);
    int rc = mark != nullptr ? PyDict_SetItemString(dict, k_key, mark) : -1;
    Py_XDECREF(mark);
    if (rc < 0) PyErr_Clear();
    return rc;
}

interp_owner current_interpreter_owner() noexcept {
    PyObject* dict = PyInterpreterState_GetDict(PyInterpreterState_Get());  // borrowed
    PyObject* mark = dict != nullptr ? PyDict_GetItemString(dict, k_key) : nullptr;  // borrowed
    if (mark == nullptr) return interp_owner::none;
    void* runtime = PyCapsule_GetPointer(mark, k_capsule_name);
    if (runtime == nullptr) {
        PyErr_Clear();
        return interp_owner::none;
    }
    return runtime == &rt() ? interp_owner::this_copy : interp_owner::other_copy;
}

}  // namespace pyinterp::detail
