// Application groups: the name of the group of a request (or of a
// PyInterpImportScript) from its configuration.  Finding or creating the
// group's interpreter is the executor's (app/executor.h).  No GIL involved.
#pragma once

#include <httpd.h>

#include "config.h"

namespace pyinterp::mod {

// The group name for a request: "" for %{GLOBAL}, "host[:port]" for
// %{SERVER}, "host[:port]|SCRIPT_NAME" for %{RESOURCE}, the variable's value
// for %{ENV:VAR} ("" when unset), or the literal name.  Allocated from the
// request pool.  No GIL involved.
const char* group_for_request(const request_rec* r, const group_spec& g, const char* script_name) noexcept;

// The same for a server (PyInterpImportScript): %{GLOBAL}, %{SERVER} or a
// name.  No GIL involved.
const char* group_for_server(const server_rec* s, const group_spec& g, apr_pool_t* p) noexcept;

}  // namespace pyinterp::mod
