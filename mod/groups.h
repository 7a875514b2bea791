// Application groups: naming the group of a request, finding or lazily
// creating its interpreter through the dispatch library, and setting a new
// interpreter up (sys.stdout/sys.stderr to the error log, PyInterpPythonPath
// in sys.path) the first time it is entered.
#pragma once

#include <Python.h>
#include <httpd.h>

#include "config.h"
#include "pyinterp/dispatch.hpp"

namespace pyinterp::mod {

// The group name for a request: "" for %{GLOBAL}, "host[:port]" for
// %{SERVER}, "host[:port]|SCRIPT_NAME" for %{RESOURCE}, the variable's value
// for %{ENV:VAR} ("" when unset), or the literal name.  Allocated from the
// request pool.  No GIL involved.
const char* group_for_request(const request_rec* r, const group_spec& g, const char* script_name) noexcept;

// The same for a server (PyInterpImportScript): %{GLOBAL}, %{SERVER} or a
// name.  No GIL involved.
const char* group_for_server(const server_rec* s, const group_spec& g, apr_pool_t* p) noexcept;

// The interpreter of a group ("" is the main one), created on first use.
// Any GIL state (creation serialises in the dispatch library).  An empty
// view on failure, logged against `s`.
pyinterp::view interpreter_for(const char* group, server_rec* s) noexcept;

// Inside the group's interpreter, GIL held: the private module, set up on
// the first call in this interpreter.  New reference, or nullptr with an
// exception set.  `log_server` receives sys.stdout/sys.stderr.
PyObject* prepare_interpreter(server_rec* log_server, const char* python_path) noexcept;

}  // namespace pyinterp::mod
