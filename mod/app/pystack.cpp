// The Python stack of a thread (see pystack.h).
#include "pystack.h"

#include <algorithm>

#include "pyinterp/py/ref.h"

namespace pyinterp::app {
namespace {

// str -> UTF-8; "?" for anything else (the error is dropped).
std::string text_of(PyObject* s) {
    const char* u = s != nullptr && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : nullptr;
    if (u == nullptr) {
        PyErr_Clear();
        return "?";
    }
    return u;
}

stack_frame frame_of(PyFrameObject* f) {
    stack_frame out;
    py::ref code = py::ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetCode(f)));
    auto* co = reinterpret_cast<PyCodeObject*>(code.get());
    out.file = text_of(co->co_filename);
    out.function = text_of(co->co_qualname);
    out.line = PyFrame_GetLineNumber(f);
    return out;
}

}  // namespace

std::vector<stack_frame> python_stack(PyThreadState* ts, size_t max_frames) noexcept {
    std::vector<stack_frame> frames;
    try {
        // PyThreadState_GetFrame skips frames still being set up and makes
        // frame objects as sys._current_frames() does for other threads.
        py::ref f = py::ref::steal(reinterpret_cast<PyObject*>(PyThreadState_GetFrame(ts)));
        while (f && frames.size() < max_frames) {
            auto* frame = reinterpret_cast<PyFrameObject*>(f.get());
            frames.push_back(frame_of(frame));
            f = py::ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(frame)));
        }
    } catch (...) {
        // Out of memory: the frames read so far.
    }
    PyErr_Clear();
    std::reverse(frames.begin(), frames.end());
    return frames;
}

std::string format_stack(const std::vector<stack_frame>& frames) {
    std::string out;
    for (const stack_frame& f : frames) {
        if (!out.empty()) out += '\n';
        out += "  File \"" + f.file + "\", line " + std::to_string(f.line) + ", in " + f.function;
    }
    return out;
}

}  // namespace pyinterp::app
