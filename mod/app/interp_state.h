// The private `_pyinterp` module: one instance per interpreter (multi-phase
// init, registered with PyImport_AppendInittab before Python starts).  Its
// module state, interp_state, is everything the application layer keeps per
// interpreter: the application cache, the lock that serialises script
// loading, the fallback hook.  The protocol keeps its own per-interpreter
// state (its Python types, say) behind `protocol`, made and freed through
// the protocol_state_ops its host registers.  Nothing Python lives in a C
// static.
#pragma once

#include <Python.h>

#include "pyinterp/py/ref.h"
#include "str_cache.h"

namespace pyinterp::app {

namespace metrics {
struct interp_slot;
}

struct interp_state {
    PyObject* apps = nullptr;           // dict: script path -> (module, mtime in µs, size)
    PyObject* load_lock = nullptr;      // _thread.RLock serialising script loads
    PyObject* fallback_hook = nullptr;  // the fallback import hook's module (subinterpreters only)
    PyObject* needs_main = nullptr;     // its NeedsMainInterpreter exception class
    PyObject* needs_shared = nullptr;   // its NeedsSharedGil exception class
    str_cache* names = nullptr;         // script paths and callable names (file system encoding)
    int ready = 0;                      // the executor's per-interpreter setup is done
    int own_gil = 0;                    // the interpreter has a GIL of its own (set with the hook)
    int late_refusals = 0;              // own-GIL refusals outside a load, counted by the hook
    void* protocol = nullptr;           // the protocol's per-interpreter state

    // Its counters (metrics.h; nullptr: not counted), and the child_metrics
    // that gave them.
    metrics::interp_slot* metrics = nullptr;
    const void* metrics_owner = nullptr;
};

// How a protocol keeps state per interpreter alongside interp_state.  Each
// is called with the interpreter's GIL held; all may be nullptr.
struct protocol_state_ops {
    // At module creation: make the state, store it in st->protocol.  0, or
    // -1 with an exception set.
    int (*init)(PyObject* module, interp_state* st) noexcept;
    // The module's traverse and clear, for the Python objects it holds.
    int (*traverse)(interp_state* st, visitproc visit, void* arg) noexcept;
    void (*clear)(interp_state* st) noexcept;
    // At module deallocation, after clear: free st->protocol.
    void (*free)(interp_state* st) noexcept;
};

// The module's name in sys.modules.
inline constexpr const char* k_private_module = "_pyinterp";

// Registers the module (PyImport_AppendInittab) with the protocol's state
// operations (nullptr: none, as in `pyinterp doctor`).  Before Python starts,
// once per process.  False if CPython refused.
bool register_private_module(const protocol_state_ops* ops) noexcept;

// The private module of the current interpreter, imported on first use.
// GIL held.  An empty ref with an exception set on failure.
py::ref private_module() noexcept;

// The state of a private module instance, and of the module that defined a
// heap type (a protocol's Python types).  GIL held.
interp_state* state_of(PyObject* module) noexcept;
interp_state* state_of_type(PyTypeObject* type) noexcept;

}  // namespace pyinterp::app
