// The Python stack of a thread, read from inside its interpreter: what the
// slow-request log and the status page's `?stacks` show.  Another thread's
// frames are stable while the reader holds their interpreter's GIL (CPython
// changes a thread's frame stack only with the GIL held), so the watchdog
// reads them after entering that interpreter (inflight.h).
#pragma once

#include <Python.h>

#include <string>
#include <vector>

namespace pyinterp::app {

// One frame: where it runs.
struct stack_frame {
    std::string file;      // code.co_filename
    int line = 0;          // the line running now
    std::string function;  // code.co_qualname
};

// The frames of `ts`, outermost first (a traceback's order: the most recent
// call last), at most `max_frames` of them (the innermost ones are kept).
// GIL of ts's interpreter held; `ts` must stay alive for the call (any
// thread's, attached to that interpreter or waiting for its GIL).  Reads no
// file, imports nothing, leaves no exception set.
std::vector<stack_frame> python_stack(PyThreadState* ts, size_t max_frames = 64) noexcept;

// `File "x", line N, in f` per frame, as the traceback module prints them
// (without the source lines), one per line, no final newline.  No GIL.
std::string format_stack(const std::vector<stack_frame>& frames);

}  // namespace pyinterp::app
