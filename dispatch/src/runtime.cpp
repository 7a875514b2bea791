// The process-wide runtime: status strings, the log sink, record reference
// counting, and starting and finalizing Python.
#include <pthread.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "compat.h"
#include "fence.h"
#include "gil_handover.h"
#include "internal.h"
#include "pyinterp/py/exception.h"
#include "pyinterp/py/sys_path.h"

namespace pyinterp::detail {
namespace {

struct log_sink {
    std::atomic<pyinterp_log_fn> fn{nullptr};
    std::atomic<void*> user{nullptr};
    std::atomic<int> min_level{PYINTERP_LOG_INFO};
    // Installed by the `pyinterp` extension module for want of a host's
    // (set_fallback_log_callback): not a host sink.
    std::atomic<bool> fallback{false};
};

log_sink& sink() noexcept {
    static log_sink s;
    return s;
}

}  // namespace

bool log_sink_installed() noexcept {
    return sink().fn.load(std::memory_order_acquire) != nullptr && !sink().fallback.load(std::memory_order_relaxed);
}

void set_fallback_log_callback(pyinterp_log_fn fn, int min_level) noexcept {
    log_sink& s = sink();
    s.fallback.store(true, std::memory_order_relaxed);
    s.user.store(nullptr, std::memory_order_relaxed);
    s.min_level.store(min_level, std::memory_order_relaxed);
    s.fn.store(fn, std::memory_order_release);
}

runtime& rt() noexcept {
    static runtime* r = new runtime;  // never destroyed: threads may outlive main()
    return *r;
}

void vlog(int level, const char* fmt, va_list ap) noexcept {
    log_sink& s = sink();
    pyinterp_log_fn fn = s.fn.load(std::memory_order_acquire);
    if (fn == nullptr || level < s.min_level.load(std::memory_order_relaxed)) return;
    char buf[1024];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    // Longer than the buffer: format once more into one that fits (a message
    // is never cut unless memory runs out).
    char* big = n >= int(sizeof buf) ? static_cast<char*>(std::malloc(size_t(n) + 1)) : nullptr;
    if (big != nullptr) vsnprintf(big, size_t(n) + 1, fmt, again);
    va_end(again);
    fn(level, big != nullptr ? big : buf, s.user.load(std::memory_order_relaxed));
    std::free(big);
}

void log(int level, const char* fmt, ...) noexcept {
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void log_python_error(int level, const char* what) noexcept {
    py::ref exc = py::take_exception();
    if (!exc) return;
    std::string text = py::format_exception(exc.get());
    log_sink& ls = sink();
    if (pyinterp_log_fn fn = ls.fn.load(std::memory_order_acquire); fn && level >= ls.min_level.load()) {
        std::string line = std::string(what) + ": " + text;
        fn(level, line.c_str(), ls.user.load(std::memory_order_relaxed));
    }
}

void apply_python_path() noexcept {
    if (!py::prepend_sys_path(rt().python_path.c_str()))
        log_python_error(PYINTERP_LOG_WARN, "pyinterp: python_path");
}

void record_ref(interp_record* r) noexcept {
    r->refs.fetch_add(1, std::memory_order_relaxed);
}

void record_unref(interp_record* r) noexcept {
    if (r != nullptr && r->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
}

void record_notify(interp_record* r) noexcept {
    std::lock_guard<std::mutex> lk(r->mu);
    r->cv.notify_all();
}

interp_record* find_record_by_interp(PyInterpreterState* interp) noexcept {
    runtime& R = rt();
    std::lock_guard<std::mutex> lk(R.mu);
    for (interp_record* r : R.records) {
        if (r->interp == interp && r->state.load() != interp_state::gone) {
            record_ref(r);
            return r;
        }
    }
    return nullptr;
}

namespace {

interp_record* make_main_record() {
    auto* r = new interp_record;
    r->name = "main";
    r->interp = PyInterpreterState_Main();
    r->id = 0;
    r->is_main = true;
    r->queue = &rt().shared_queue;
    return r;
}

// fork(): the child has only the forking thread; the entry queues must not
// count threads that exist in the parent only.  The registry's mutex is
// held across fork() so that the child finds the records consistent.
void before_fork() {
    rt().mu.lock();
}
void after_fork_parent() {
    rt().mu.unlock();
}
void after_fork_child() {
    runtime& R = rt();
    R.shared_queue.reset_after_fork();
    for (interp_record* r : R.records)
        if (r->own_queue) r->own_queue->reset_after_fork();
    R.mu.unlock();
}
pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
void register_atfork() {
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

// Host mode: initialise CPython.  Returns with the GIL held by the new main
// thread state, or an error.
int start_python(const pyinterp_config* cfg) noexcept {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // the host owns signals
    config.parse_argv = 0;
    config.site_import = cfg != nullptr && cfg->no_site ? 0 : 1;
    PyStatus st = PyStatus_Ok();
    if (cfg != nullptr && cfg->python_home != nullptr && *cfg->python_home != '\0')
        st = PyConfig_SetBytesString(&config, &config.home, cfg->python_home);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        log(PYINTERP_LOG_ERROR, "pyinterp: Python failed to initialise: %s%s%s",
            st.func ? st.func : "", st.func ? ": " : "", st.err_msg ? st.err_msg : "unknown error");
        return PYINTERP_ERR_CREATE;
    }
    try {
        rt().python_path = cfg != nullptr && cfg->python_path != nullptr ? cfg->python_path : "";
    } catch (...) {
        return PYINTERP_ERR_NOMEM;
    }
    apply_python_path();
    return PYINTERP_OK;
}

// End every subinterpreter; PYINTERP_ERR_TIMEOUT if one still had entries.
int end_subinterpreters(int timeout_ms) noexcept {
    runtime& R = rt();
    std::vector<interp_record*> subs;
    {
        std::lock_guard<std::mutex> lk(R.mu);
        for (interp_record* r : R.records) {
            if (!r->is_main) {
                record_ref(r);
                subs.push_back(r);
            }
        }
    }
    int rc = PYINTERP_OK;
    for (interp_record* r : subs) {
        if (end_record(r, timeout_ms) == PYINTERP_ERR_TIMEOUT) rc = PYINTERP_ERR_TIMEOUT;
        record_unref(r);
    }
    return rc;
}

// Extension mode: Python finalizes without us.  Run the teardown protocol
// for every record first, from Python's own atexit hook of the main
// interpreter, while thread states can still be deleted properly.
PyObject* py_on_python_exit(PyObject*, PyObject*) {
    runtime& R = rt();
    // The default loop first: its threads enter interpreters, and its queued
    // tasks release their references inside interpreters that still exist.
    loop_shutdown_default();
    end_subinterpreters(R.default_end_timeout_ms);
    if (R.main != nullptr) end_record(R.main, R.default_end_timeout_ms);
    R.initialized.store(false);
    Py_RETURN_NONE;
}

PyMethodDef on_exit_def = {"_pyinterp_on_exit", py_on_python_exit, METH_NOARGS, nullptr};

// Backstop for Python finalizing before the atexit hook ran (or when it could
// not be registered): from here on, nothing may touch thread states.
void on_python_finalized() {
    runtime& R = rt();
    loop_shutdown_default();  // a no-op when the atexit hook stopped it already
    gil_handover_stop();
    std::lock_guard<std::mutex> lk(R.mu);
    for (interp_record* r : R.records) r->state.store(interp_state::gone);
    R.initialized.store(false);
}

void register_exit_hooks() noexcept {
    Py_AtExit(on_python_finalized);
    PyObject* fn = PyCFunction_New(&on_exit_def, nullptr);
    PyObject* atexit = fn ? PyImport_ImportModule("atexit") : nullptr;
    PyObject* res = atexit ? PyObject_CallMethod(atexit, "register", "O", fn) : nullptr;
    if (res == nullptr) log_python_error(PYINTERP_LOG_WARN, "pyinterp: atexit registration failed");
    Py_XDECREF(res);
    Py_XDECREF(atexit);
    Py_XDECREF(fn);
}

}  // namespace
}  // namespace pyinterp::detail

using namespace pyinterp::detail;

extern "C" {

const char* pyinterp_strerror(int status) {
    switch (status) {
        case PYINTERP_OK: return "success";
        case PYINTERP_ERR_INVALID: return "invalid argument";
        case PYINTERP_ERR_NOT_INITIALIZED: return "pyinterp runtime not initialised";
        case PYINTERP_ERR_GONE: return "interpreter is ending or has ended";
        case PYINTERP_ERR_EXISTS: return "already exists (an interpreter with that name, or another copy of the library)";
        case PYINTERP_ERR_NOT_FOUND: return "interpreter not found";
        case PYINTERP_ERR_UNSUPPORTED: return "not supported by this Python version";
        case PYINTERP_ERR_PYTHON: return "Python raised an exception (reported with its traceback)";
        case PYINTERP_ERR_NOMEM: return "out of memory";
        case PYINTERP_ERR_STATE: return "not allowed in the calling thread's current state";
        case PYINTERP_ERR_TIMEOUT: return "timed out waiting for the interpreter's entries to finish";
        case PYINTERP_ERR_CREATE: return "Python failed to create the interpreter (logged)";
        default: return "unknown pyinterp status";
    }
}

void pyinterp_set_log_callback(pyinterp_log_fn fn, int min_level, void* user) {
    log_sink& s = sink();
    s.fallback.store(false, std::memory_order_relaxed);
    s.user.store(user, std::memory_order_relaxed);
    s.min_level.store(min_level, std::memory_order_relaxed);
    s.fn.store(fn, std::memory_order_release);
}

void pyinterp_log(int level, const char* format, ...) {
    if (format == nullptr) return;
    va_list ap;
    va_start(ap, format);
    vlog(level, format, ap);
    va_end(ap);
}

int pyinterp_supports_own_gil(void) {
    return k_own_gil_supported ? 1 : 0;
}

int pyinterp_initialize(const pyinterp_config* config) {
    runtime& R = rt();
    std::lock_guard<std::mutex> create(R.create_mu);
    if (R.initialized.load()) return PYINTERP_OK;
    if (config != nullptr && config->default_end_timeout_ms > 0)
        R.default_end_timeout_ms = config->default_end_timeout_ms;
    fence_init();
    pthread_once(&atfork_once, register_atfork);
    bool host = !Py_IsInitialized();
    if (host) {
        int rc = start_python(config);
        if (rc != PYINTERP_OK) return rc;
    } else if (attached_tstate() == nullptr) {
        return PYINTERP_ERR_STATE;
    } else if (current_interpreter_owner() == interp_owner::other_copy) {
        log(PYINTERP_LOG_ERROR,
            "pyinterp: another copy of the pyinterp library already manages this process's interpreters; "
            "use that one (the `pyinterp` module's C API capsule, pyinterp/module.h) instead of linking a second");
        return PYINTERP_ERR_EXISTS;
    }
    mark_current_interpreter();
    delete_wait_watch_configure();
    interp_record* main;
    try {
        main = make_main_record();
    } catch (...) {
        return PYINTERP_ERR_NOMEM;
    }
    {
        std::lock_guard<std::mutex> lk(R.mu);
        R.records.push_back(main);
        record_ref(main);
        R.main = main;
        R.host_mode = host;
    }
    R.initialized.store(true);
    loop_reopen_default();
    if (host) {
        // Keep the initial thread state as main's keeper (see interp_record),
        // unbound for PyGILState like every idle thread state of the library,
        // and return detached.
        PyThreadState* ts = raw_current_tstate();  // the GIL holder: this thread
        main->keeper = ts;
        gilstate_bind(nullptr);
        PyEval_ReleaseThread(ts);
    } else {
        register_exit_hooks();
    }
    return PYINTERP_OK;
}

int pyinterp_finalize(void) {
    runtime& R = rt();
    if (!R.initialized.load()) return PYINTERP_ERR_NOT_INITIALIZED;
    if (!R.host_mode || attached_tstate() != nullptr) return PYINTERP_ERR_STATE;
    // Stop the default loop before any interpreter ends (see py_on_python_exit).
    loop_shutdown_default();
    int rc = end_subinterpreters(R.default_end_timeout_ms);
    if (rc != PYINTERP_OK) return rc;
    rc = end_record(R.main, R.default_end_timeout_ms);
    if (rc != PYINTERP_OK) return rc;
    {
        std::lock_guard<std::mutex> lk(R.mu);
        for (interp_record* r : R.records) record_unref(r);
        R.records.clear();
        record_unref(R.main);
        R.main = nullptr;
    }
    R.initialized.store(false);
    return PYINTERP_OK;
}

}  // extern "C"
