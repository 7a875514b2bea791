// Logging of the application layer through a sink its host injects, the way
// the dispatch library logs (pyinterp_set_log_callback): the httpd module
// forwards messages to the error log (against the request, or the server),
// `pyinterp doctor` to stderr, the unit tests to a list.  Nothing here
// prints.  Messages carry their PYIxxxx code themselves.
#pragma once

namespace pyinterp::app {

enum class level { debug, info, notice, warn, error, crit };

// Called from any thread, possibly with a GIL held: the sink must not call
// into Python.  `message` is one line, valid during the call only.
using log_fn = void (*)(level lv, const char* message, void* user) noexcept;

struct log_sink {
    log_fn fn = nullptr;  // nullptr: messages are dropped
    void* user = nullptr;
};

// printf-style.  Any thread, any GIL state.
void log(const log_sink& sink, level lv, const char* fmt, ...) noexcept __attribute__((format(printf, 3, 4)));

// GIL held, with an exception set: logs `what` at error level, then the
// exception's traceback one message per line, each prefixed "PYI0310: ",
// and clears the exception.  Nothing when no exception is set.
void log_exception(const log_sink& sink, const char* what) noexcept;

}  // namespace pyinterp::app
