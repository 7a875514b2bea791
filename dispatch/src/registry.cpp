// Interpreter registry: creating, finding and ending interpreters; views and
// guards.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "compat.h"
#include "fence.h"
#include "gil_handover.h"
#include "internal.h"

namespace pyinterp::detail {
namespace {

constexpr size_t k_max_name = 255;

// Modules to import in the main interpreter before the first own-GIL
// interpreter exists.  Their extension modules abort the process when an
// own-GIL interpreter loads them first (_datetime, _zoneinfo with two own-GIL
// interpreters on 3.13; _asyncio, _decimal too on 3.12: facts §4), and in
// an own-GIL interpreter with these four imported in main first, the common
// web stack (json, sqlite3, ssl, hashlib, ctypes, Flask, Django) imports
// fine (facts §8).  Once per process, about 50 ms and 12 MiB (asyncio is
// most of it) with Debian 13's Python 3.13.
void preimport_for_own_gil() noexcept {
    static const char* const mods[] = {"datetime", "zoneinfo", "decimal", "asyncio"};
    for (const char* m : mods) {
        PyObject* mod = PyImport_ImportModule(m);
        if (mod == nullptr) log_python_error(PYINTERP_LOG_DEBUG, "pyinterp: pre-import for own-GIL interpreters");
        Py_XDECREF(mod);
    }
}

// Create the interpreter with the calling thread attached to main through
// `main_ts`.  On success the new interpreter's first thread state is attached
// (its GIL held) and returned; on failure main_ts is attached again.
PyThreadState* new_interpreter(bool own_gil) noexcept {
#if PY_VERSION_HEX >= 0x030C0000
    PyInterpreterConfig cfg;
    std::memset(&cfg, 0, sizeof cfg);
    if (own_gil) {
        cfg.use_main_obmalloc = 0;
        cfg.allow_fork = 0;
        cfg.allow_exec = 0;
        cfg.allow_threads = 1;
        // Daemon threads as in shared-GIL interpreters: web applications
        // start them (error reporters, pool janitors).  Fork stays refused:
        // a forked child of an own-GIL subinterpreter aborts (3.13), and
        // subprocess does not need it.
        cfg.allow_daemon_threads = 1;
        cfg.check_multi_interp_extensions = 1;
        cfg.gil = PyInterpreterConfig_OWN_GIL;
    } else {
        // What Py_NewInterpreter() does: the legacy, shared-GIL settings.
        cfg.use_main_obmalloc = 1;
        cfg.allow_fork = 1;
        cfg.allow_exec = 1;
        cfg.allow_threads = 1;
        cfg.allow_daemon_threads = 1;
        cfg.check_multi_interp_extensions = 0;
        cfg.gil = PyInterpreterConfig_SHARED_GIL;
    }
    PyThreadState* ts = nullptr;
    PyStatus st = Py_NewInterpreterFromConfig(&ts, &cfg);
    if (PyStatus_Exception(st)) {
        log(PYINTERP_LOG_ERROR, "pyinterp: creating an interpreter failed: %s", st.err_msg ? st.err_msg : "?");
        return nullptr;
    }
    return ts;
#else
    (void)own_gil;
    PyThreadState* ts = Py_NewInterpreter();
    if (ts == nullptr) log(PYINTERP_LOG_ERROR, "pyinterp: creating an interpreter failed (Py_NewInterpreter)");
    return ts;
#endif
}

bool name_taken(runtime& R, const char* name) {
    for (interp_record* r : R.records) {
        if (r->name == name && r->state.load() != interp_state::gone) return true;
    }
    return false;
}

void unregister(interp_record* r) noexcept {
    runtime& R = rt();
    std::lock_guard<std::mutex> lk(R.mu);
    for (auto it = R.records.begin(); it != R.records.end(); ++it) {
        if (*it == r) {
            R.records.erase(it);
            record_unref(r);
            return;
        }
    }
}

// Phase 1 of teardown, with no GIL held: refuse new entries and wait for
// the ones under way.  Returns PYINTERP_OK with r quiescent and marked
// ending, or an error.
int quiesce(interp_record* r, int timeout_ms) noexcept {
    std::unique_lock<std::mutex> lk(r->mu);
    if (r->state.load() == interp_state::gone) return PYINTERP_ERR_GONE;
    if (r->ender_active) return PYINTERP_ERR_GONE;
    r->ender_active = true;
    r->state.store(interp_state::ending, std::memory_order_seq_cst);
    heavy_fence();  // pairs with entry_fence() in enter()
    auto busy = [r] { return holders_busy(r) || r->guards.load(std::memory_order_seq_cst) != 0; };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (busy()) {
        // Leaving threads notify without a full fence, so a notification can
        // be missed: wake up every millisecond to look again.
        auto wake = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
        r->cv.wait_until(lk, wake);
        if (std::chrono::steady_clock::now() >= deadline && busy()) {
            r->ender_active = false;
            log(PYINTERP_LOG_WARN,
                "pyinterp: interpreter '%s' still has entries or guards after %d ms; "
                "it refuses new entries and ends on a later attempt",
                r->name.c_str(), timeout_ms);
            return PYINTERP_ERR_TIMEOUT;
        }
    }
    return PYINTERP_OK;
}

// Delete other threads' cached thread states (r's GIL held, r quiescent).
// Safe from this thread because the library never leaves a cached thread
// state as an idle thread's PyGILState binding (see gilstate_bind).
void delete_tstates(const std::vector<PyThreadState*>& others) noexcept {
    for (PyThreadState* ts : others) {
        PyThreadState_Clear(ts);
        PyThreadState_Delete(ts);
    }
}

void mark_gone(interp_record* r) noexcept {
    std::lock_guard<std::mutex> lk(r->mu);
    r->state.store(interp_state::gone, std::memory_order_seq_cst);
    r->ender_active = false;
    r->cv.notify_all();
}

// Collect the thread states to delete, with r quiescent.  A thread state for
// this thread is always returned in *mine: the keeper if `use_keeper` (main
// in host mode, ended on the thread that initialised Python), else this
// thread's cached one, else a new one.
int take_tstates(interp_record* r, std::vector<PyThreadState*>& others, PyThreadState** mine,
                 bool use_keeper) noexcept {
    try {
        std::lock_guard<std::mutex> lk(r->mu);
        collect_holders(r, others, mine);
        if (use_keeper && r->keeper != nullptr) {
            if (*mine != nullptr) others.push_back(*mine);
            *mine = r->keeper;
            r->keeper = nullptr;
        }
        // Created while the keeper still holds the interpreter's thread list
        // open (see interp_record::keeper).
        if (*mine == nullptr) *mine = thread_new_unbound_tstate(r->interp);
        if (*mine == nullptr) return PYINTERP_ERR_NOMEM;
        if (r->keeper != nullptr) others.push_back(r->keeper);
        r->keeper = nullptr;
    } catch (...) {
        return PYINTERP_ERR_NOMEM;
    }
    return PYINTERP_OK;
}

int end_main(interp_record* r, int timeout_ms) noexcept {
    runtime& R = rt();
    PyThreadState* native = attached_tstate();  // extension mode: the finalizing thread
    if (native != nullptr) PyEval_SaveThread();
    int rc = quiesce(r, timeout_ms);
    if (rc != PYINTERP_OK) {
        if (native != nullptr) PyEval_RestoreThread(native);
        return rc;
    }
    std::vector<PyThreadState*> others;
    PyThreadState* mine = nullptr;
    if (native != nullptr) {
        {
            std::lock_guard<std::mutex> lk(r->mu);
            collect_holders(r, others, &mine);
        }
        PyEval_RestoreThread(native);
        if (mine != nullptr) others.push_back(mine);
        delete_tstates(others);
        release_callbacks(r);
        mark_gone(r);
        return PYINTERP_OK;
    }
    // Finalize on the keeper only where CPython needs it: 3.13's
    // Py_FinalizeEx switches back to the initial thread state.  Before 3.13,
    // finalize on this thread's own cached state when it has one: threading
    // ties _main_thread to the thread state that imported it and asserts, at
    // shutdown on that OS thread, that the state still exists (3.11/3.12
    // Lib/threading.py _shutdown).
    rc = take_tstates(r, others, &mine, R.host_mode && PY_VERSION_HEX >= 0x030D0000);
    if (rc != PYINTERP_OK) return rc;
    // Subinterpreters are gone and Python is about to finalize: the GIL
    // watcher must not look at interpreters any more.
    gil_handover_stop();
    PyEval_AcquireThread(mine);
    gilstate_bind(mine);
    delete_tstates(others);
    release_callbacks(r);
    if (R.host_mode) {
        if (Py_FinalizeEx() < 0) log(PYINTERP_LOG_WARN, "pyinterp: errors while finalizing Python");
    } else {
        PyThreadState_Clear(mine);
        PyThreadState_DeleteCurrent();
    }
    mark_gone(r);
    return PYINTERP_OK;
}

// Creates the interpreter of `rec` (creation lock held, any GIL state):
// enters main, makes the interpreter, puts the configured python_path in its
// sys.path, keeps its first thread state as the keeper, and returns to the
// caller's previous attachment.
int start_interpreter(interp_record* rec, bool own) noexcept {
    runtime& R = rt();
    pyinterp_token main_token;
    int rc = enter(R.main, false, &main_token);
    if (rc != PYINTERP_OK) return rc;
    PyThreadState* main_ts = attached_tstate();
    if (own && !R.own_gil_preimported) {
        preimport_for_own_gil();
        R.own_gil_preimported = true;
    }
    PyThreadState* ts = new_interpreter(own);
    if (ts == nullptr) {
        if (attached_tstate() != main_ts) PyThreadState_Swap(main_ts);
        leave(main_token);
        return PYINTERP_ERR_CREATE;
    }
    mark_current_interpreter();  // ts is current
    apply_python_path();
    rec->interp = ts->interp;
    rec->id = PyInterpreterState_GetID(ts->interp);
    rec->own_gil = own;
    rec->queue = own ? rec->own_queue.get() : &R.shared_queue;
    // The interpreter's first thread state stays idle as its keeper; threads,
    // this one included, enter through cached thread states of their own.
    rec->keeper = ts;
    switch_tstate(main_ts);
    gilstate_bind(main_ts);
    leave(main_token);
    return PYINTERP_OK;
}

}  // namespace

int current_record(interp_record** out) noexcept {
    *out = nullptr;
    PyThreadState* ts = attached_tstate();
    if constexpr (k_current_is_global) {
        // 3.11: attached_tstate() recognises only the thread states the
        // library knows to be this thread's, because CPython's current
        // thread state is the GIL holder's, not the caller's (compat.h).
        // The callers of this function require the GIL, so a current thread
        // state created on this thread is the caller's: one made by other
        // code, for an interpreter this library may not know (created with
        // Py_NewInterpreter, say).
        if (ts == nullptr) {
            PyThreadState* g = raw_current_tstate();
            if (g != nullptr && g->thread_id == PyThread_get_thread_ident()) ts = g;
        }
    }
    if (ts == nullptr) return PYINTERP_ERR_STATE;
    interp_record* r = record_for_current(ts);
    if (r != nullptr) record_ref(r);
    else r = find_record_by_interp(ts->interp);
    if (r == nullptr) return PYINTERP_ERR_NOT_FOUND;
    *out = r;
    return PYINTERP_OK;
}

int end_record(interp_record* r, int timeout_ms) noexcept {
    if (thread_is_inside(r)) return PYINTERP_ERR_STATE;
    if (r->is_main) return end_main(r, timeout_ms);

    // Detach the caller, whatever it is attached to: in-flight entries may
    // need the (shared) GIL to finish.
    PyThreadState* attached = attached_tstate();
    if (attached != nullptr) PyEval_SaveThread();
    int rc = quiesce(r, timeout_ms);
    // Ending now (even if the wait ran out): loops drop its queued tasks.
    if (rc != PYINTERP_ERR_GONE) loop_interp_ending(r);
    std::vector<PyThreadState*> others;
    PyThreadState* mine = nullptr;
    if (rc == PYINTERP_OK) rc = take_tstates(r, others, &mine, false);
    if (rc != PYINTERP_OK) {
        if (rc != PYINTERP_ERR_TIMEOUT && rc != PYINTERP_ERR_GONE) {
            std::lock_guard<std::mutex> lk(r->mu);
            r->ender_active = false;  // let a later call try again
        }
        if (attached != nullptr) PyEval_RestoreThread(attached);
        return rc;
    }

    // Portable order (facts §3.5): attached to main, swap to the
    // interpreter, end it, swap back.  3.11 returns from Py_EndInterpreter
    // with the shared GIL held and no thread state; 3.12+ releases the
    // ended interpreter's GIL.  A caller attached to main (Python's own
    // atexit, in extension mode) is re-attached and used as it is.
    interp_record* m = rt().main;
    bool caller_in_main = attached != nullptr && attached->interp == m->interp;
    pyinterp_token main_token = 0;
    if (caller_in_main) {
        PyEval_RestoreThread(attached);
    } else {
        rc = enter(m, true, &main_token);  // main outlives every subinterpreter
        if (rc != PYINTERP_OK) {
            // Leave the interpreter ending; its thread states stay collected
            // in `others` and leak rather than risk a crash.
            log(PYINTERP_LOG_ERROR, "pyinterp: cannot enter main to end '%s': %s", r->name.c_str(),
                pyinterp_strerror(rc));
            if (attached != nullptr) PyEval_RestoreThread(attached);
            return rc;
        }
    }
    PyThreadState* main_ts = attached_tstate();
    switch_tstate(mine);
    gilstate_bind(mine);
    delete_tstates(others);
    release_callbacks(r);
    Py_EndInterpreter(mine);
    PyThreadState_Swap(main_ts);
    gilstate_bind(main_ts);
    if (!caller_in_main) {
        leave(main_token);
        if (attached != nullptr) PyEval_RestoreThread(attached);
    }
    mark_gone(r);
    unregister(r);
    return PYINTERP_OK;
}

}  // namespace pyinterp::detail

using namespace pyinterp::detail;

extern "C" {

int pyinterp_interp_create(const char* name, const pyinterp_interp_config* config, pyinterp_view** out) {
    if (out != nullptr) *out = nullptr;
    if (name == nullptr || *name == '\0' || std::strlen(name) > k_max_name || std::strcmp(name, "main") == 0)
        return PYINTERP_ERR_INVALID;
    bool own = config != nullptr && config->gil == PYINTERP_GIL_OWN;
    if (config != nullptr && config->gil != PYINTERP_GIL_SHARED && config->gil != PYINTERP_GIL_OWN)
        return PYINTERP_ERR_INVALID;
    if (own && !k_own_gil_supported) return PYINTERP_ERR_UNSUPPORTED;
    runtime& R = rt();
    if (!R.initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;

    std::lock_guard<std::mutex> create(R.create_mu);
    {
        std::lock_guard<std::mutex> lk(R.mu);
        if (name_taken(R, name)) return PYINTERP_ERR_EXISTS;
    }
    interp_record* rec = nullptr;
    try {
        rec = new interp_record;
        rec->name = name;
        if (own) rec->own_queue = std::make_unique<gil_queue>();
    } catch (...) {
        record_unref(rec);
        return PYINTERP_ERR_NOMEM;
    }
    int rc = start_interpreter(rec, own);
    if (rc != PYINTERP_OK) {
        record_unref(rec);
        return rc;
    }
    try {
        std::lock_guard<std::mutex> lk(R.mu);
        R.records.push_back(rec);
    } catch (...) {
        pyinterp_interp_end(as_view(rec), -1);
        record_unref(rec);
        return PYINTERP_ERR_NOMEM;
    }
    if (out != nullptr) {
        record_ref(rec);
        *out = as_view(rec);
    }
    if (!own) gil_handover_enable();
    log(PYINTERP_LOG_DEBUG, "pyinterp: created interpreter '%s' (id %lld, %s GIL)", name,
        static_cast<long long>(rec->id), own ? "own" : "shared");
    return PYINTERP_OK;
}

int pyinterp_interp_find(const char* name, pyinterp_view** out) {
    if (out == nullptr || name == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    runtime& R = rt();
    if (!R.initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    std::lock_guard<std::mutex> lk(R.mu);
    for (interp_record* r : R.records) {
        if (r->name == name && r->live()) {
            record_ref(r);
            *out = as_view(r);
            return PYINTERP_OK;
        }
    }
    return PYINTERP_ERR_NOT_FOUND;
}

int pyinterp_interp_end(const pyinterp_view* view, int timeout_ms) {
    if (view == nullptr) return PYINTERP_ERR_INVALID;
    interp_record* r = as_record(view);
    if (r->is_main) return PYINTERP_ERR_INVALID;
    if (!rt().initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    if (timeout_ms < 0) timeout_ms = rt().default_end_timeout_ms;
    return end_record(r, timeout_ms);
}

int pyinterp_view_current(pyinterp_view** out) {
    if (out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    if (!rt().initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    interp_record* r;
    int rc = current_record(&r);
    if (rc == PYINTERP_OK) *out = as_view(r);
    return rc;
}

int pyinterp_view_main(pyinterp_view** out) {
    if (out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    runtime& R = rt();
    std::lock_guard<std::mutex> lk(R.mu);
    if (R.main == nullptr) return PYINTERP_ERR_NOT_INITIALIZED;
    record_ref(R.main);
    *out = as_view(R.main);
    return PYINTERP_OK;
}

pyinterp_view* pyinterp_view_copy(const pyinterp_view* view) {
    if (view == nullptr) return nullptr;
    record_ref(as_record(view));
    return const_cast<pyinterp_view*>(view);
}

void pyinterp_view_free(pyinterp_view* view) {
    record_unref(as_record(view));
}

const char* pyinterp_view_name(const pyinterp_view* view) {
    return view != nullptr ? as_record(view)->name.c_str() : nullptr;
}

int64_t pyinterp_view_id(const pyinterp_view* view) {
    return view != nullptr ? as_record(view)->id : -1;
}

int pyinterp_view_own_gil(const pyinterp_view* view) {
    return view != nullptr && as_record(view)->own_gil ? 1 : 0;
}

int pyinterp_view_is_live(const pyinterp_view* view) {
    return view != nullptr && as_record(view)->live() ? 1 : 0;
}

int pyinterp_view_thread_states(const pyinterp_view* view) {
    if (view == nullptr) return 0;
    interp_record* r = as_record(view);
    std::lock_guard<std::mutex> lk(r->mu);
    int n = 0;
    for (const cached_tstate* e = r->holders; e != nullptr; e = e->next)
        if (e->tstate.load(std::memory_order_relaxed) != nullptr) ++n;
    return n;
}

int pyinterp_guard_new(const pyinterp_view* view, pyinterp_guard** out) {
    if (view == nullptr || out == nullptr) return PYINTERP_ERR_INVALID;
    *out = nullptr;
    interp_record* r = as_record(view);
    auto* g = new (std::nothrow) pyinterp_guard{r};
    if (g == nullptr) return PYINTERP_ERR_NOMEM;
    r->guards.fetch_add(1, std::memory_order_seq_cst);
    if (!r->live()) {
        r->guards.fetch_sub(1, std::memory_order_seq_cst);
        record_notify(r);
        delete g;
        return PYINTERP_ERR_GONE;
    }
    record_ref(r);
    *out = g;
    return PYINTERP_OK;
}

void pyinterp_guard_free(pyinterp_guard* guard) {
    if (guard == nullptr) return;
    interp_record* r = guard->record;
    r->guards.fetch_sub(1, std::memory_order_seq_cst);
    if (!r->live()) record_notify(r);
    delete guard;
    record_unref(r);
}

int pyinterp_enter(const pyinterp_view* view, pyinterp_token* token) {
    if (view == nullptr || token == nullptr) return PYINTERP_ERR_INVALID;
    if (!rt().initialized.load(std::memory_order_relaxed)) return PYINTERP_ERR_NOT_INITIALIZED;
    return enter(as_record(view), false, token);
}

int pyinterp_enter_guarded(const pyinterp_guard* guard, pyinterp_token* token) {
    if (guard == nullptr || token == nullptr) return PYINTERP_ERR_INVALID;
    if (!rt().initialized.load(std::memory_order_relaxed)) return PYINTERP_ERR_NOT_INITIALIZED;
    return enter(guard->record, true, token);
}

int pyinterp_leave(pyinterp_token token) {
    return leave(token);
}

int pyinterp_thread_release(void) {
    return thread_release();
}

int pyinterp_thread_is_attached(void) {
    return attached_tstate() != nullptr ? 1 : 0;
}

}  // extern "C"
