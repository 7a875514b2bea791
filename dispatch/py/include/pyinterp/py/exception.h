// Taking, restoring and formatting the raised Python exception, the same way
// on every supported CPython (3.11 to 3.13).  Every function: GIL held.
//
// Internal to pyinterp (dispatch/ and mod/ share it); not installed.
#pragma once

#include <Python.h>

#include <string>

#include "pyinterp/py/ref.h"

namespace pyinterp::py {

// Takes the raised exception out of the error indicator, normalised and
// with its traceback attached; an empty ref when none is set.  3.12 replaced
// PyErr_Fetch/PyErr_NormalizeException (deprecated there) by
// PyErr_GetRaisedException, which always holds a normalised instance; 3.11
// gets the same result from the old calls.
ref take_exception() noexcept;

// Makes `exc` (from take_exception) the raised exception again; an empty
// ref clears the error indicator, as PyErr_SetRaisedException(NULL) does.
void restore_exception(ref exc) noexcept;

// Keeps the exception raised when it was made (if any) out of the way for
// its lifetime and raises it again at the end, replacing whatever is raised
// then.  For code that must run Python while an exception is pending.
class saved_exception {
public:
    saved_exception() noexcept : exc_(take_exception()) {}
    saved_exception(const saved_exception&) = delete;
    saved_exception& operator=(const saved_exception&) = delete;
    ~saved_exception() {
        if (exc_) restore_exception(std::move(exc_));
    }
    explicit operator bool() const noexcept { return bool(exc_); }

private:
    ref exc_;
};

// `exc` with its traceback as the traceback module prints it, without the
// final newline; str(exc) when the traceback module cannot be used
// (interpreter shutting down, say).  Never raises: leaves no exception set.
std::string format_exception(PyObject* exc) noexcept;

// Hands the raised exception to sys.unraisablehook of the current
// interpreter, as CPython does with exceptions it cannot raise to a caller
// (a __del__, an atexit callback): the hook's err_msg reads
// "Exception ignored in <where>", and `obj` (may be NULL) is named as its
// object (3.11, 3.12) or in the message (3.13).  Clears the exception.
void write_unraisable(const char* where, PyObject* obj) noexcept;

}  // namespace pyinterp::py
