// Putting directories in front of sys.path.  GIL held, inside the
// interpreter concerned.
//
// Internal to pyinterp (dispatch/ and mod/ share it); not installed.
#pragma once

namespace pyinterp::py {

// Inserts the ':'-separated directories of `dirs` (file system encoding) at
// the front of sys.path, in their order; empty parts are skipped.  nullptr
// or "" does nothing.  Returns false with an exception set on failure.
bool prepend_sys_path(const char* dirs) noexcept;

}  // namespace pyinterp::py
