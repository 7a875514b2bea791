// The protocol-independent request path: find the script, name its
// application group, enter that group's interpreter on this httpd worker
// thread through the dispatch library, and hand over to the protocol.
#pragma once

#include <httpd.h>

namespace pyinterp::mod {

struct protocol;

// translate_name: maps a URL under a PyInterpScriptAlias to its script
// (r->filename, with the rest of the path for httpd to split off as
// path_info) and the module's handler.  No GIL involved.
int translate_script_alias(request_rec* r) noexcept;

// The handler body.  Called detached from Python (no GIL), returns
// detached.  Returns OK or an HTTP error status.
int serve_request(request_rec* r, const protocol& proto) noexcept;

}  // namespace pyinterp::mod
