// Private declarations of the dispatch library: interpreter records, cached
// thread states and the process-wide runtime.  Not installed.
#pragma once

#include <Python.h>

#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "gil_queue.h"
#include "pyinterp/dispatch.h"

namespace pyinterp::detail {

struct interp_record;

// Log through the host's sink; printf-style.  Any thread, any GIL state.
void log(int level, const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
void vlog(int level, const char* fmt, va_list ap) noexcept;

// With the GIL held and an exception set: log it at `level` with its
// traceback, prefixed by `what`, and clear it.
void log_python_error(int level, const char* what) noexcept;

// GIL held, inside an interpreter the library just created: puts the
// configured python_path in front of its sys.path (failures are logged).
void apply_python_path() noexcept;

// One OS thread's cached thread state for one interpreter.
//
// Owned by the record's `holders` list (guarded by the record's mutex) and
// pointed to by the owning thread's cache.  `in_flight` is written only by the
// owning thread and read by an ending thread: it counts the thread's entries
// into the interpreter that are under way.
struct cached_tstate {
    interp_record* record = nullptr;   // holds a reference
    // nullptr once deleted.  Atomic because the owning thread compares it
    // (attached_tstate) while an ending thread may clear it.
    std::atomic<PyThreadState*> tstate{nullptr};
    std::atomic<unsigned> in_flight{0};
    bool owner_gone = false;           // the thread exited first (under mu)
    cached_tstate* next = nullptr;     // in record->holders (under mu)
    cached_tstate* prev = nullptr;
};

struct callback_node {
    callback_node* next = nullptr;
    callback_node* prev = nullptr;
};

enum class interp_state : int { live = 0, ending = 1, gone = 2 };

// Everything the library knows about one interpreter.  Reference-counted:
// the registry, every view, guard, callback and cached thread state holds one,
// so the record outlives the interpreter and answers "gone" afterwards.
struct interp_record {
    std::atomic<long> refs{1};
    std::string name;
    PyInterpreterState* interp = nullptr;  // invalid once state is gone
    int64_t id = -1;
    bool is_main = false;
    bool own_gil = false;
    // The entry queue of the interpreter's GIL: the runtime's shared_queue
    // for main and shared-GIL interpreters, own_queue for an own-GIL one.
    gil_queue* queue = nullptr;
    std::unique_ptr<gil_queue> own_queue;

    std::atomic<interp_state> state{interp_state::live};
    std::atomic<long> guards{0};

    std::mutex mu;                  // never taken while acquiring a GIL
    std::condition_variable cv;     // signalled when entries or guards drop
    cached_tstate* holders = nullptr;     // every thread's cached tstate
    callback_node callbacks;              // sentinel of a circular list
    bool ender_active = false;            // an end() is in progress (under mu)

    // A thread state no thread uses, created with the interpreter and deleted
    // when it ends, so that the interpreter's thread list is never empty:
    // CPython 3.11 aborts ("thread state already initialized") when a thread
    // state is created for an interpreter that has none left, because
    // new_threadstate() then reuses interp->_initial_thread without resetting
    // it (fixed in 3.12).  nullptr for main in extension mode.
    PyThreadState* keeper = nullptr;

    interp_record() { callbacks.next = callbacks.prev = &callbacks; }
    bool live() const noexcept { return state.load(std::memory_order_seq_cst) == interp_state::live; }
};

void record_ref(interp_record* r) noexcept;
void record_unref(interp_record* r) noexcept;

// Wake an ending thread waiting on `r` (called after an entry or guard ends
// while the record is not live).
void record_notify(interp_record* r) noexcept;

// ----- thread cache (thread_cache.cpp)

// The thread state attached to the calling thread, or nullptr.  On 3.12+
// CPython knows it; on 3.11 CPython only knows the GIL holder's, which is the
// calling thread's when it is one of the thread states known to belong to
// this thread: its PyGILState binding, its cached ones, or one the library
// switched away from (pointer comparison only).  No GIL needed.
PyThreadState* attached_tstate() noexcept;

// Enter `r` on the calling thread.  `guarded`: a guard keeps `r` live, skip
// the state check.
int enter(interp_record* r, bool guarded, pyinterp_token* token) noexcept;
int leave(pyinterp_token token) noexcept;

// The record of the innermost entry of the calling thread whose thread state
// is `ts`, or nullptr.
interp_record* record_for_current(PyThreadState* ts) noexcept;

// True if the calling thread has an entry into `r` on its stack.
bool thread_is_inside(const interp_record* r) noexcept;

// PyThreadState_New without making the new thread state this thread's
// PyGILState binding.  No GIL needed.
PyThreadState* thread_new_unbound_tstate(PyInterpreterState* interp) noexcept;

// Delete the calling thread's cached thread states (pyinterp_thread_release).
int thread_release() noexcept;

// Under r->mu, with r quiescent: take every thread's cached thread state of
// `r` out of its entry.  The calling thread's own is returned in `*mine`; the
// others are appended to `others` for deletion by the caller, with r's GIL.
void collect_holders(interp_record* r, std::vector<PyThreadState*>& others, PyThreadState** mine);

// Under r->mu: true while some thread has an entry into `r` under way.
bool holders_busy(const interp_record* r) noexcept;


// ----- runtime (runtime.cpp)

struct runtime {
    std::mutex mu;                       // registry and lifecycle
    std::mutex create_mu;                // serialises interpreter creation
    std::vector<interp_record*> records; // live and ending records (refs)
    interp_record* main = nullptr;       // the main interpreter (ref)
    bool host_mode = false;
    bool own_gil_preimported = false;
    std::atomic<bool> initialized{false};
    int default_end_timeout_ms = 5000;
    std::string python_path;             // pyinterp_config::python_path (host mode)
    gil_queue shared_queue;              // entries into main's GIL (main, shared-GIL interpreters)
};

runtime& rt() noexcept;

// Find the record for a live PyInterpreterState, with a new reference.
interp_record* find_record_by_interp(PyInterpreterState* interp) noexcept;

// For functions that require a GIL held: the record of the interpreter the
// calling thread is attached to, with a new reference (registry.cpp).
// PYINTERP_ERR_STATE if no thread state is attached, PYINTERP_ERR_NOT_FOUND
// for an interpreter this library did not create.
int current_record(interp_record** out) noexcept;

// The teardown protocol shared by pyinterp_interp_end and pyinterp_finalize:
// mark `r` ending, wait for entries and guards, delete every thread's cached
// thread state.  For a subinterpreter, also end it.  See registry.cpp.
int end_record(interp_record* r, int timeout_ms) noexcept;

// Callbacks (callback.cpp): release the Python references of every callback
// of `r`.  Called by end_record with `r`'s GIL held.
void release_callbacks(interp_record* r) noexcept;

// ----- event loop (loop.cpp)

// `r` has started ending (its state is no longer live): every loop drops the
// queued tasks of interpreters that are not live.  Returns at once; no GIL
// needed.
void loop_interp_ending(interp_record* r) noexcept;

// The runtime is finalizing: stop the default loop (joining its threads and
// dropping its queued tasks while their interpreters are still live) and
// keep it from starting again until loop_reopen_default().  Any GIL state.
void loop_shutdown_default() noexcept;
void loop_reopen_default() noexcept;

// True when the host installed a log sink (runtime.cpp): one set with
// pyinterp_set_log_callback(), not the extension module's fallback.
bool log_sink_installed() noexcept;

// The `pyinterp` extension module's sink when no host installed one (plain
// python: standard error).  Python exceptions of callbacks still go to
// sys.unraisablehook while only this one is installed.
void set_fallback_log_callback(pyinterp_log_fn fn, int min_level) noexcept;

// ----- debugging aid for joins that deadlock (delete_wait_watch.cpp)

// Reads whether Python runs in development mode (GIL held; at initialize).
void delete_wait_watch_configure() noexcept;

// Around a wait for `r`'s GIL in order to delete a cached thread state: in
// debug builds and in Python's development mode, a wait that lasts seconds
// is logged as the likely deadlocking join.  Any thread, no GIL.
class delete_wait_watch {
public:
    explicit delete_wait_watch(const interp_record* r) noexcept;
    ~delete_wait_watch();
    delete_wait_watch(const delete_wait_watch&) = delete;
    delete_wait_watch& operator=(const delete_wait_watch&) = delete;

private:
    const void* entry_ = nullptr;  // its registration, or nullptr
};

// ----- which copy of the library manages an interpreter (ownership.cpp)

enum class interp_owner { none, this_copy, other_copy };

// Mark the current interpreter as managed by this copy.  GIL held.  -1 if
// the mark could not be set (no exception left set).
int mark_current_interpreter() noexcept;

// Who marked the current interpreter.  GIL held.
interp_owner current_interpreter_owner() noexcept;

}  // namespace pyinterp::detail

// A pyinterp_view* is an interp_record* holding one reference.
namespace pyinterp::detail {
inline interp_record* as_record(const pyinterp_view* v) noexcept {
    return reinterpret_cast<interp_record*>(const_cast<pyinterp_view*>(v));
}
inline pyinterp_view* as_view(interp_record* r) noexcept { return reinterpret_cast<pyinterp_view*>(r); }
}  // namespace pyinterp::detail

struct pyinterp_guard {
    pyinterp::detail::interp_record* record;  // holds a reference and a guard count
};
