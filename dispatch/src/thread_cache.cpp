// Per-OS-thread cache of thread states and the enter/leave stack.
//
// Each thread keeps one cached_tstate per interpreter it has entered; the
// record's `holders` list owns it so that an ending thread can find and delete
// it (facts §3.5).  The entry stack remembers, per entry, what to restore on
// leave: the previously attached thread state and the PyGILState binding.
#include <pthread.h>

#include <algorithm>
#include <new>

#include "compat.h"
#include "fence.h"
#include "gil_handover.h"
#include "internal.h"

namespace pyinterp::detail {
namespace {

struct frame {
    interp_record* record;
    cached_tstate* entry;          // nullptr: nested in an attached tstate of `record`
    PyThreadState* prev;           // attached before this entry, or nullptr
    PyThreadState* saved_binding;  // PyGILState binding before this entry
};

struct thread_cache {
    std::vector<cached_tstate*> entries;
    cached_tstate* last = nullptr;
    std::vector<frame> stack;
    uintptr_t tag = 0;  // distinguishes tokens of different threads
};

thread_local thread_cache* tls_cache = nullptr;
pthread_key_t exit_key;
pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
std::atomic<uintptr_t> next_tag{1};

constexpr int k_depth_bits = 20;

void on_thread_exit(void* p) noexcept;

void make_exit_key() noexcept {
    if (pthread_key_create(&exit_key, on_thread_exit) != 0)
        log(PYINTERP_LOG_ERROR, "pyinterp: pthread_key_create failed; thread states of exiting threads will leak");
}

thread_cache* cache() noexcept {
    thread_cache* c = tls_cache;
    if (c != nullptr) return c;
    try {
        c = new thread_cache;
        c->stack.reserve(16);
        c->entries.reserve(4);
    } catch (...) {
        delete c;
        return nullptr;
    }
    c->tag = next_tag.fetch_add(1, std::memory_order_relaxed) & ((uintptr_t{1} << 24) - 1);
    pthread_once(&exit_key_once, make_exit_key);
    pthread_setspecific(exit_key, c);
    tls_cache = c;
    return c;
}

void unlink_holder(interp_record* r, cached_tstate* e) noexcept {
    if (e->prev != nullptr) e->prev->next = e->next;
    else if (r->holders == e) r->holders = e->next;
    if (e->next != nullptr) e->next->prev = e->prev;
    e->next = e->prev = nullptr;
}

void link_holder(interp_record* r, cached_tstate* e) noexcept {
    e->prev = nullptr;
    e->next = r->holders;
    if (r->holders != nullptr) r->holders->prev = e;
    r->holders = e;
}

void forget_entry(thread_cache* c, cached_tstate* e) noexcept {
    c->entries.erase(std::remove(c->entries.begin(), c->entries.end(), e), c->entries.end());
    if (c->last == e) c->last = nullptr;
}

// Drop entries whose interpreter has ended and whose thread state teardown
// already deleted.  Cold path: only when a new entry is created.
void prune(thread_cache* c) noexcept {
    for (size_t i = 0; i < c->entries.size();) {
        cached_tstate* e = c->entries[i];
        interp_record* r = e->record;
        bool drop = false;
        if (r->state.load() == interp_state::gone) {
            std::lock_guard<std::mutex> lk(r->mu);
            if (e->tstate == nullptr) {
                unlink_holder(r, e);
                drop = true;
            }
        }
        if (drop) {
            forget_entry(c, e);
            delete e;
            record_unref(r);
        } else {
            ++i;
        }
    }
}

// PyThreadState_New binds the new thread state for PyGILState when the
// thread has no binding yet (3.11 _PyGILState_NoteThreadState, 3.12+
// PyThreadState_New).  Undo that: a cached thread state must never be the
// binding of an idle thread (see gilstate_bind).
PyThreadState* new_unbound_tstate(PyInterpreterState* interp) noexcept {
    PyThreadState* before = gilstate_bound();
    PyThreadState* ts = PyThreadState_New(interp);
    if (ts != nullptr && gilstate_bound() != before) gilstate_bind(before);
    return ts;
}

// A new, empty entry in the thread's cache, or nullptr (out of memory).
cached_tstate* new_entry(thread_cache* c) noexcept {
    auto* e = new (std::nothrow) cached_tstate;
    if (e == nullptr) return nullptr;
    try {
        c->entries.push_back(e);
    } catch (...) {
        delete e;
        return nullptr;
    }
    return e;
}

int create_entry(thread_cache* c, interp_record* r, bool guarded, cached_tstate** out) noexcept {
    prune(c);
    cached_tstate* e = new_entry(c);
    if (e == nullptr) return PYINTERP_ERR_NOMEM;
    {
        std::lock_guard<std::mutex> lk(r->mu);
        if (r->state.load() == interp_state::gone || (!guarded && !r->live())) {
            c->entries.pop_back();
            delete e;
            return PYINTERP_ERR_GONE;
        }
        // No GIL needed for PyThreadState_New (it takes the runtime's own
        // lock); holding r->mu keeps an ending thread from missing it.
        e->tstate = new_unbound_tstate(r->interp);
        if (e->tstate == nullptr) {
            c->entries.pop_back();
            delete e;
            return PYINTERP_ERR_NOMEM;
        }
        e->record = r;
        record_ref(r);
        link_holder(r, e);
    }
    *out = e;
    return PYINTERP_OK;
}

cached_tstate* find_entry(thread_cache* c, const interp_record* r) noexcept {
    if (c->last != nullptr && c->last->record == r) return c->last;
    for (cached_tstate* e : c->entries) {
        if (e->record == r) {
            c->last = e;
            return e;
        }
    }
    return nullptr;
}

pyinterp_token make_token(const thread_cache* c) noexcept {
    return (c->tag << k_depth_bits) | c->stack.size();
}

// Delete the calling thread's cached thread state `e` on this thread, with
// its GIL (facts §3.6), or hand it to the thread ending its interpreter.
// Called with no thread state attached.  Frees `e` unless teardown owns it.
void dispose_own(cached_tstate* e) noexcept {
    interp_record* r = e->record;
    unsigned n = e->in_flight.load(std::memory_order_relaxed);
    e->in_flight.store(n + 1, std::memory_order_seq_cst);
    if (r->live()) {
        PyThreadState* ts = e->tstate;
        PyThreadState* saved = gilstate_bound();
        {
            delete_wait_watch watch(r);  // a join holding this GIL never ends
            PyEval_AcquireThread(ts);
        }
        PyThreadState_Clear(ts);
        // Restore the binding first so that deleting ts never clears it.
        gilstate_bind(saved == ts ? nullptr : saved);
        PyThreadState_DeleteCurrent();
        std::lock_guard<std::mutex> lk(r->mu);
        e->tstate = nullptr;
        unlink_holder(r, e);
        e->in_flight.store(n, std::memory_order_seq_cst);
        r->cv.notify_all();
    } else {
        e->in_flight.store(n, std::memory_order_seq_cst);
        std::lock_guard<std::mutex> lk(r->mu);
        r->cv.notify_all();
        if (e->tstate != nullptr) {
            // The interpreter is ending: its ending thread deletes the thread
            // state and frees the entry.
            e->owner_gone = true;
            return;
        }
        unlink_holder(r, e);
    }
    delete e;
    record_unref(r);
}

int release_all(thread_cache* c) noexcept {
    if (!c->stack.empty()) return PYINTERP_ERR_STATE;
    // Attached by other means: acquiring a cached thread state now would
    // deadlock or abort (facts §3.3), so detach around the disposal.
    PyThreadState* native = attached_tstate() != nullptr ? PyEval_SaveThread() : nullptr;
    std::vector<cached_tstate*> entries;
    entries.swap(c->entries);
    c->last = nullptr;
    for (cached_tstate* e : entries) dispose_own(e);
    if (native != nullptr) PyEval_RestoreThread(native);
    return PYINTERP_OK;
}

void on_thread_exit(void* p) noexcept {
    auto* c = static_cast<thread_cache*>(p);
    if (!c->stack.empty()) {
        log(PYINTERP_LOG_ERROR,
            "pyinterp: a thread exited inside %zu interpreter entries; its thread states are leaked",
            c->stack.size());
    } else {
        release_all(c);
    }
    tls_cache = nullptr;
    delete c;
}

}  // namespace

PyThreadState* attached_tstate() noexcept {
    PyThreadState* g = raw_current_tstate();
    if constexpr (!k_current_is_global) {
        return g;
    } else {
        if (g == nullptr) return nullptr;
        if (g == gilstate_bound()) return g;
        thread_cache* c = tls_cache;
        if (c == nullptr) return nullptr;
        for (const frame& f : c->stack) {
            if (f.prev == g || (f.entry != nullptr && f.entry->tstate.load(std::memory_order_relaxed) == g))
                return g;
        }
        for (const cached_tstate* e : c->entries) {
            if (e->tstate.load(std::memory_order_relaxed) == g) return g;
        }
        return nullptr;
    }
}

int enter(interp_record* r, bool guarded, pyinterp_token* token) noexcept {
    thread_cache* c = cache();
    if (c == nullptr) return PYINTERP_ERR_NOMEM;
    if (c->stack.size() == c->stack.capacity()) {
        try {
            c->stack.reserve(c->stack.size() * 2);
        } catch (...) {
            return PYINTERP_ERR_NOMEM;
        }
    }
    PyThreadState* cur = attached_tstate();
    if (cur != nullptr && cur->interp == r->interp) {
        // Already attached to this interpreter (through the library or
        // natively): count the entry as a guard, switch nothing.
        r->guards.fetch_add(1, std::memory_order_seq_cst);
        if (!guarded && !r->live()) {
            r->guards.fetch_sub(1, std::memory_order_seq_cst);
            record_notify(r);
            return PYINTERP_ERR_GONE;
        }
        c->stack.push_back(frame{r, nullptr, cur, nullptr});
        *token = make_token(c);
        return PYINTERP_OK;
    }

    cached_tstate* e = find_entry(c, r);
    if (e == nullptr) {
        int rc = create_entry(c, r, guarded, &e);
        if (rc != PYINTERP_OK) return rc;
        c->last = e;
    }
    // Announce the entry, then check the state: an ending thread sets the
    // state, then reads in_flight, with a fence on each side (fence.h), so
    // one of the two sees the other.
    unsigned n = e->in_flight.load(std::memory_order_relaxed);
    e->in_flight.store(n + 1, std::memory_order_relaxed);
    entry_fence();
    if (!guarded && r->state.load(std::memory_order_relaxed) != interp_state::live) {
        e->in_flight.store(n, std::memory_order_release);
        record_notify(r);
        return PYINTERP_ERR_GONE;
    }
    PyThreadState* ts = e->tstate.load(std::memory_order_relaxed);
    PyThreadState* saved = gilstate_bound();
    if (cur != nullptr) {
        switch_tstate(ts);
    } else {
        gil_handover_before_wait();
        r->queue->acquire(ts);
    }
    gilstate_bind_activated(ts, saved);
    c->stack.push_back(frame{r, e, cur, saved});
    *token = make_token(c);
    return PYINTERP_OK;
}

int leave(pyinterp_token token) noexcept {
    thread_cache* c = tls_cache;
    if (c == nullptr || c->stack.empty() || token != make_token(c)) return PYINTERP_ERR_STATE;
    frame f = c->stack.back();
    c->stack.pop_back();
    interp_record* r = f.record;
    if (f.entry == nullptr) {
        r->guards.fetch_sub(1, std::memory_order_seq_cst);
        if (!r->live()) record_notify(r);
        return PYINTERP_OK;
    }
    // While entered, the binding is the entry's thread state: set by enter,
    // unchanged by PyGILState_Ensure/Release pairs, restored by inner leaves.
    cached_tstate* e = f.entry;
    PyThreadState* ts = e->tstate.load(std::memory_order_relaxed);
    if (f.prev != nullptr) {
        switch_tstate(f.prev);
        gilstate_rebind(k_own_gil_supported ? f.prev : ts, f.saved_binding);
    } else {
        // Restore the binding while still holding this GIL, then release.
        gilstate_rebind(ts, f.saved_binding);
        PyEval_ReleaseThread(ts);
    }
    // No StoreLoad fence needed here: an ending thread that misses this
    // notification re-checks in_flight on its own (quiesce polls).
    e->in_flight.store(e->in_flight.load(std::memory_order_relaxed) - 1, std::memory_order_release);
    if (r->state.load(std::memory_order_relaxed) != interp_state::live) record_notify(r);
    return PYINTERP_OK;
}

interp_record* record_for_current(PyThreadState* ts) noexcept {
    thread_cache* c = tls_cache;
    if (c == nullptr || ts == nullptr) return nullptr;
    for (auto it = c->stack.rbegin(); it != c->stack.rend(); ++it) {
        if (it->entry != nullptr ? it->entry->tstate == ts : it->prev == ts) return it->record;
    }
    return nullptr;
}

bool thread_is_inside(const interp_record* r) noexcept {
    thread_cache* c = tls_cache;
    if (c == nullptr) return false;
    return std::any_of(c->stack.begin(), c->stack.end(), [r](const frame& f) { return f.record == r; });
}

PyThreadState* thread_new_unbound_tstate(PyInterpreterState* interp) noexcept {
    return new_unbound_tstate(interp);
}

int thread_release() noexcept {
    thread_cache* c = tls_cache;
    if (c == nullptr) return PYINTERP_OK;
    return release_all(c);
}

// Collect every thread's cached thread state of `r` for deletion, except
// the calling thread's, which is returned through `mine` (or nullptr).
// Entries of exited threads are freed.  Called under r->mu, with r quiescent.
void collect_holders(interp_record* r, std::vector<PyThreadState*>& others, PyThreadState** mine) {
    thread_cache* c = tls_cache;
    cached_tstate* own = c != nullptr ? find_entry(c, r) : nullptr;
    *mine = nullptr;
    for (cached_tstate* e = r->holders; e != nullptr;) {
        cached_tstate* next = e->next;
        if (e->tstate != nullptr) {
            if (e == own) *mine = e->tstate;
            else others.push_back(e->tstate);
            e->tstate = nullptr;
        }
        if (e->owner_gone) {
            unlink_holder(r, e);
            delete e;
            // The record reference of this entry is dropped by the caller
            // (not under r->mu).
            r->refs.fetch_sub(1, std::memory_order_acq_rel);
        }
        e = next;
    }
    if (own != nullptr) {
        forget_entry(c, own);
        unlink_holder(r, own);
        delete own;
        r->refs.fetch_sub(1, std::memory_order_acq_rel);
    }
}

bool holders_busy(const interp_record* r) noexcept {
    for (const cached_tstate* e = r->holders; e != nullptr; e = e->next) {
        if (e->in_flight.load(std::memory_order_seq_cst) != 0) return true;
    }
    return false;
}

}  // namespace pyinterp::detail
