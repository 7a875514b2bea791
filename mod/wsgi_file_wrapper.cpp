// wsgi.file_wrapper (see wsgi_file_wrapper.h).  All functions: GIL held.
#include "wsgi_file_wrapper.h"

#include "wsgi_state.h"

namespace pyinterp::mod {
namespace {

struct file_wrapper_object {
    PyObject_HEAD
    PyObject* filelike;
    Py_ssize_t blksize;
};

file_wrapper_object* as_wrapper(PyObject* o) noexcept {
    return reinterpret_cast<file_wrapper_object*>(o);
}

PyObject* py_file_wrapper_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
    static const char* kwlist[] = {"filelike", "blksize", nullptr};
    PyObject* filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|n:FileWrapper", const_cast<char**>(kwlist), &filelike,
                                     &blksize))
        return nullptr;
    if (blksize <= 0) {
        PyErr_SetString(PyExc_ValueError, "blksize must be positive");
        return nullptr;
    }
    auto* self = as_wrapper(type->tp_alloc(type, 0));
    if (self == nullptr) return nullptr;
    Py_INCREF(filelike);
    self->filelike = filelike;
    self->blksize = blksize;
    return reinterpret_cast<PyObject*>(self);
}

int py_file_wrapper_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(as_wrapper(self)->filelike);
    return 0;
}

int py_file_wrapper_clear(PyObject* self) {
    Py_CLEAR(as_wrapper(self)->filelike);
    return 0;
}

void py_file_wrapper_dealloc(PyObject* self) {
    PyTypeObject* type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    py_file_wrapper_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

PyObject* py_file_wrapper_iter(PyObject* self) {
    Py_INCREF(self);
    return self;
}

PyObject* py_file_wrapper_next(PyObject* self_o) {
    file_wrapper_object* self = as_wrapper(self_o);
    if (self->filelike == nullptr) return nullptr;
    PyObject* data = PyObject_CallMethod(self->filelike, "read", "n", self->blksize);
    if (data == nullptr) return nullptr;
    if (data == Py_None || PyObject_Length(data) == 0) {
        Py_DECREF(data);
        PyErr_Clear();
        return nullptr;  // StopIteration
    }
    return data;
}

PyObject* py_file_wrapper_close(PyObject* self, PyObject*) {
    PyObject* filelike = as_wrapper(self)->filelike;
    if (filelike != nullptr && PyObject_HasAttrString(filelike, "close"))
        return PyObject_CallMethod(filelike, "close", nullptr);
    Py_RETURN_NONE;
}

PyObject* py_file_wrapper_get_filelike(PyObject* self, void*) {
    PyObject* f = as_wrapper(self)->filelike;
    return Py_NewRef(f != nullptr ? f : Py_None);
}

PyObject* py_file_wrapper_get_blksize(PyObject* self, void*) {
    return PyLong_FromSsize_t(as_wrapper(self)->blksize);
}

PyMethodDef file_wrapper_methods[] = {
    {"close", py_file_wrapper_close, METH_NOARGS, "Close the wrapped file-like object."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef file_wrapper_getset[] = {
    {"filelike", py_file_wrapper_get_filelike, nullptr, nullptr, nullptr},
    {"blksize", py_file_wrapper_get_blksize, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot file_wrapper_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(py_file_wrapper_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(py_file_wrapper_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(py_file_wrapper_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(py_file_wrapper_clear)},
    {Py_tp_iter, reinterpret_cast<void*>(py_file_wrapper_iter)},
    {Py_tp_iternext, reinterpret_cast<void*>(py_file_wrapper_next)},
    {Py_tp_methods, file_wrapper_methods},
    {Py_tp_getset, file_wrapper_getset},
    {Py_tp_doc, const_cast<char*>("wsgi.file_wrapper: FileWrapper(filelike, blksize=8192)")},
    {0, nullptr},
};

}  // namespace

PyType_Spec file_wrapper_type_spec = {
    "_pyinterp.FileWrapper",
    sizeof(file_wrapper_object),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    file_wrapper_slots,
};

PyObject* file_wrapper_filelike(const wsgi_state* st, PyObject* obj) noexcept {
    if (Py_TYPE(obj) != st->file_wrapper_type) return nullptr;
    return as_wrapper(obj)->filelike;
}

}  // namespace pyinterp::mod
