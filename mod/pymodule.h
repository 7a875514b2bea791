// The private `_pyinterp` module: one instance per interpreter, multi-phase
// init, registered with PyImport_AppendInittab before Python starts.  Its
// module state holds everything the module keeps per interpreter: the heap
// types of the Python-facing WSGI objects, the application cache and the lock
// that serialises script loading.  Nothing Python lives in a C static.
#pragma once

#include <Python.h>

#include "str_cache.h"

namespace pyinterp::mod {

struct module_state {
    PyTypeObject* input_type = nullptr;           // wsgi.input
    PyTypeObject* log_type = nullptr;             // wsgi.errors, sys.stdout, sys.stderr
    PyTypeObject* start_response_type = nullptr;  // start_response (with its write())
    PyTypeObject* file_wrapper_type = nullptr;    // wsgi.file_wrapper
    PyObject* apps = nullptr;       // dict: script path -> (module, mtime in ns)
    PyObject* load_lock = nullptr;  // _thread.RLock serialising script loads
    int ready = 0;                  // sys.stdout/stderr and sys.path set up
    PyObject* fallback_hook = nullptr;  // the fallback import hook's module (subinterpreters only)
    PyObject* needs_main = nullptr;     // its NeedsMainInterpreter exception class
    PyObject* wsgi_version = nullptr;   // (1, 0), shared by every environ
    PyObject* str_close = nullptr;      // "close", interned
    str_cache* environ_keys = nullptr;  // environ keys and name-like values (latin-1)
    // The keys environ_new adds after httpd's variables, made once
    // (wsgi_environ.cpp names them).
    static constexpr int k_fixed_environ_keys = 14;
    PyObject* environ_fixed[k_fixed_environ_keys] = {};
    str_cache* names = nullptr;         // script paths and callable names (file system encoding)
};

// The module's name in sys.modules.
inline constexpr const char* k_private_module = "_pyinterp";

// Init function for PyImport_AppendInittab.  Called by CPython's import
// machinery with the importing interpreter's GIL held.
extern "C" PyObject* pyinterp_private_module_init(void);

// Imports (or finds) the private module of the current interpreter.  GIL
// held.  Returns a new reference, or nullptr with an exception set.
PyObject* private_module() noexcept;

// The module state of a private module instance.  GIL held.
module_state* state_of(PyObject* module) noexcept;

// The module state reached from an instance of one of the module's types.
// GIL held.
module_state* state_of_type(PyTypeObject* type) noexcept;

}  // namespace pyinterp::mod
