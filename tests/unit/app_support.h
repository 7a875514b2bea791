// Shared pieces of the application layer's unit tests (mod/app): one Python
// runtime per test binary with the private module registered as the httpd
// module registers it and the fixture extension modules on sys.path, the
// app layer's log captured, scripts written to a temporary directory.
#pragma once

#include <Python.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "app/log.h"
#include "pyinterp/dispatch.hpp"

namespace app = pyinterp::app;

namespace apptest {

// A sink that keeps every message; messages() and count() read them.  Any
// thread.
app::log_sink log_sink() noexcept;
std::vector<std::string> messages();
// Messages containing `needle`.
int count(const std::string& needle);
void clear_log();

// Writes `text` to a new file named `name` in a directory of its own and
// returns its path.
std::string write_script(const std::string& name, const std::string& text);

// The text of the pending exception (type: message), cleared.  GIL held.
std::string take_error();

// Calls the WSGI application `callable` with an empty environ (and None for
// start_response) and joins the bytes it returns into *body; false with the
// exception's text in *error.  GIL held.
bool call_application(PyObject* callable, std::string* body, std::string* error);

// Evaluates `expr` in the current interpreter's __main__ and returns str()
// of the result ("<error>" on failure).  GIL held.
std::string eval_str(const std::string& expr);

}  // namespace apptest
