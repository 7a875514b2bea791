// Python in an httpd child process: started in child_init (never in the
// parent, whose post_config only validates), preloaded scripts, the
// dispatch library's log forwarded to the error log, and a bounded
// finalization when the child exits.
#pragma once

#include <httpd.h>

namespace pyinterp::mod {

// child_init: starts Python (host mode of the dispatch library) on the
// child's main thread, loads PyInterpImportScript scripts, and registers
// finalization as a cleanup of `pchild`.  Python must not be running yet.
void runtime_child_init(apr_pool_t* pchild, server_rec* s) noexcept;

// True once Python started successfully in this child.  No GIL involved.
bool runtime_ready() noexcept;

// The main server, for logging that belongs to no request.
server_rec* runtime_main_server() noexcept;

// Counts requests inside Python, so that a child exiting in the middle of
// one (prefork's SIGTERM handler, say) skips finalization instead of tearing
// the interpreter down under the request.  No GIL involved.
class active_request {
public:
    active_request() noexcept;
    ~active_request();
    active_request(const active_request&) = delete;
    active_request& operator=(const active_request&) = delete;
};

}  // namespace pyinterp::mod
