// What the WSGI protocol keeps per interpreter, next to the application
// layer's interp_state (app/interp_state.h, whose `protocol` points here):
// the heap types of the Python-facing WSGI objects and the strings and keys
// every environ uses.  Made when the private module is created in an
// interpreter, freed with it; nothing Python lives in a C static.
#pragma once

#include <Python.h>

#include "app/interp_state.h"
#include "app/str_cache.h"

namespace pyinterp::mod {

struct wsgi_state {
    PyTypeObject* input_type = nullptr;           // wsgi.input
    PyTypeObject* log_type = nullptr;             // wsgi.errors, sys.stdout, sys.stderr
    PyTypeObject* start_response_type = nullptr;  // start_response (with its write())
    PyTypeObject* file_wrapper_type = nullptr;    // wsgi.file_wrapper
    PyObject* wsgi_version = nullptr;             // (1, 0), shared by every environ
    PyObject* str_close = nullptr;                // "close", interned
    app::str_cache* environ_keys = nullptr;       // environ keys and name-like values (latin-1)
    // The keys environ_new adds after httpd's variables, made once
    // (wsgi_environ.cpp names them).
    static constexpr int k_fixed_environ_keys = 15;
    PyObject* environ_fixed[k_fixed_environ_keys] = {};
};

// The operations that make, traverse, clear and free a wsgi_state with the
// private module of each interpreter (register them with
// app::register_private_module before Python starts).
extern const app::protocol_state_ops wsgi_state_ops;

// The WSGI state of an interpreter.  GIL held.
inline wsgi_state* wsgi_state_of(app::interp_state* st) noexcept {
    return static_cast<wsgi_state*>(st->protocol);
}

}  // namespace pyinterp::mod
