// wsgi.file_wrapper: FileWrapper(filelike, blksize=8192).  Iterating it
// reads blocks; the response writer recognises it and, when the file-like
// object has a real file descriptor of a regular file, sends the rest of the
// file as one file bucket instead (sendfile/mmap as httpd is configured).
// Every function: GIL held.
#pragma once

#include <Python.h>

namespace pyinterp::mod {

struct wsgi_state;

extern PyType_Spec file_wrapper_type_spec;

// If `obj` is a FileWrapper of this interpreter's module, returns its
// file-like object (borrowed); otherwise nullptr.  No exception either way.
PyObject* file_wrapper_filelike(const wsgi_state* st, PyObject* obj) noexcept;

}  // namespace pyinterp::mod
