// Python in an httpd child process: started in child_init (never in the
// parent, whose post_config only validates), preloaded scripts, the
// dispatch library's log forwarded to the error log, and a bounded
// finalization when the child exits.
#pragma once

#include <httpd.h>

#include "app/executor.h"

namespace pyinterp::mod {

// child_init: starts Python (host mode of the dispatch library) on the
// child's main thread, loads PyInterpImportScript scripts, and registers
// finalization as a cleanup of `pchild`.  Python must not be running yet.
void runtime_child_init(apr_pool_t* pchild, server_rec* s) noexcept;

// The file name of another loaded module that embeds CPython in httpd's
// children (mod_wsgi.c, mod_python.c), or nullptr.  With one loaded,
// mod_pyinterp starts no Python (runtime_child_init does nothing): two
// embedders in one process share one Python runtime, which neither is made
// for (with mod_wsgi 5 both serve, then every child aborts in Python as it
// exits).  No GIL involved.
const char* runtime_other_embedder() noexcept;

// The executor of this child, once Python started successfully in it;
// nullptr otherwise.  No GIL involved.
app::executor* runtime_executor() noexcept;

}  // namespace pyinterp::mod
