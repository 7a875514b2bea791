// httpd's error log as the log sink of the application layer
// (app/log.h) and of the dispatch library: messages about a request go to
// the request's log context, the others to a server's.  Any thread, any GIL
// state (only httpd's logger is called).
#pragma once

#include <httpd.h>

#include "app/log.h"

namespace pyinterp::mod {

// The APLOG_* level of an application-layer level.
int ap_level_of(app::level lv) noexcept;

// Sinks logging against `r` (ap_log_rerror) or `s` (ap_log_error).
app::log_sink request_log(request_rec* r) noexcept;
app::log_sink server_log(server_rec* s) noexcept;

// With an exception set (GIL held): logs `what` and the traceback, one
// error-log line per traceback line, against `r` if non-null else `s`, and
// clears it.
void log_python_exception(request_rec* r, server_rec* s, const char* what) noexcept;

// The dispatch library's sink (pyinterp_set_log_callback): one "PYI0100: "
// line per line of `message`, against the server `user`.
void forward_dispatch_log(int level, const char* message, void* user);

}  // namespace pyinterp::mod
