// The request path in httpd: map the URL to its script (translate_name),
// resolve the request into one app::request_target (script, callable, group,
// policies) and hand it, with the protocol, to the executor, which enters
// the group's interpreter on this worker thread, loads the application and
// serves it (app/executor.h).
#pragma once

#include <httpd.h>

namespace pyinterp::mod {

// translate_name: maps a URL under a PyInterpScriptAlias to its script
// (r->filename, with the rest of the path for httpd to split off as
// path_info) and the module's handler.  No GIL involved.
int translate_script_alias(request_rec* r) noexcept;

// The handler body.  Called detached from Python (no GIL), returns
// detached.  Returns OK or an HTTP error status.
int serve_request(request_rec* r) noexcept;

}  // namespace pyinterp::mod
