// Script loading and the application cache (see app_cache.h).  All
// functions: GIL held, inside the interpreter that owns `st`.
#include "app_cache.h"

#include <sys/stat.h>

#include <cstring>
#include <utility>

#include "fallback.h"
#include "interp_state.h"
#include "metrics.h"
#include "pyinterp/py/exception.h"
#include "script.h"

namespace pyinterp::app {
namespace {

bool stamp_of(const char* path, script_stamp* out) noexcept {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
        return false;
    }
    if (!S_ISREG(sb.st_mode)) {
        PyErr_Format(PyExc_OSError, "%s is not a regular file", path);
        return false;
    }
    out->mtime_us = static_cast<long long>(sb.st_mtim.tv_sec) * 1000000LL + sb.st_mtim.tv_nsec / 1000;
    out->size = static_cast<long long>(sb.st_size);
    return true;
}

// The cached module for `key` if its stamp matches (or matching is not
// asked for).  Borrowed reference, or nullptr (no exception) when absent.
PyObject* cached_module(interp_state* st, PyObject* key, const script_stamp* want) noexcept {
    PyObject* entry = PyDict_GetItemWithError(st->apps, key);  // borrowed
    if (entry == nullptr || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) return nullptr;
    if (want != nullptr) {
        long long mtime = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1));
        long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 2));
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return nullptr;
        }
        if (mtime != want->mtime_us || size != want->size) return nullptr;
    }
    return PyTuple_GET_ITEM(entry, 0);
}

// What running a script under the fallback hook gave.
struct hooked_run {
    py::ref module;    // the module, or empty with the script's exception set
    py::ref findings;  // the hook's findings; empty when the hook failed (its exception set)
    py::ref refused;   // extension modules refused with an own GIL (empty list elsewhere)
};

// Executes the script at `path` (a str) under the fallback hook.
hooked_run exec_under_hook(interp_state* st, PyObject* path, bool strict) noexcept {
    hooked_run out;
    if (!fallback_install(st) || !fallback_begin(st, strict)) return out;
    out.module = exec_script(path);
    out.findings = fallback_end(st);
    if (out.findings) {
        out.refused = fallback_refused(st);
        if (!out.refused) out.findings.reset();
    }
    return out;
}

// An application that loaded in an own-GIL interpreter although extension
// modules were refused there: it caught the ImportError (markupsafe falls
// back to pure Python, say) and runs without them.  GIL held.
void log_loaded_without(const request_target& t, PyObject* refused, const log_sink& log_to) noexcept {
    try {
        log(log_to, level::info,
            "PYI0218: application '%s' runs with its own GIL in application group '%s' without %s; it caught the "
            "ImportError (gil=shared would load it in a shared-GIL subinterpreter instead)",
            t.script, shown_group(t.group), fallback_describe(refused).c_str());
    } catch (...) {
        // Out of memory: no message.
    }
}

// Keeps the fresh module in the cache; logs the load.  False with an
// exception set.
bool remember(interp_state* st, PyObject* key, PyObject* module, const script_stamp& stamp, bool reload,
              const request_target& t, const log_sink& log_to) noexcept {
    py::ref entry = py::ref::steal(Py_BuildValue("(OLL)", module, stamp.mtime_us, stamp.size));
    if (!entry || PyDict_SetItem(st->apps, key, entry.get()) < 0) return false;
    metrics::count_load(st->metrics, reload);
    log(log_to, level::info, "PYI0201: %s script '%s' in application group '%s'", reload ? "reloaded" : "loaded",
        t.script, shown_group(t.group));
    return true;
}

// Before a changed script is executed again: the stale module leaves the
// cache and sys.modules, and a full collection frees it now.  A module is a
// web of reference cycles (its functions point at its globals), so without
// the collection it would wait for the oldest generation's next turn, which
// comes rarely in a long-lived interpreter; meanwhile the new version is
// allocated beside it and the process grows by a module per reload until
// then.  Freed first, the old version's memory is what the new one reuses.
// False with an exception set.
bool drop_stale(interp_state* st, PyObject* key) noexcept {
    if (PyObject* stale = cached_module(st, key, nullptr)) {
        forget_script(key, stale);
        if (PyDict_DelItem(st->apps, key) < 0) return false;
    }
    PyGC_Collect();
    return !PyErr_Occurred();
}

// Loads the script unless another thread did meanwhile.  Called with the
// load lock held (the hook is installed once, before the first script
// runs).  The module, or an empty ref with an exception set.
py::ref load_locked(interp_state* st, const request_target& t, PyObject* key, const log_sink& log_to) noexcept {
    script_stamp stamp;
    if (!stamp_of(t.script, &stamp)) return {};
    bool had = cached_module(st, key, nullptr) != nullptr;
    if (PyObject* m = cached_module(st, key, t.script_reloading ? &stamp : nullptr)) return py::ref::borrow(m);
    if (PyErr_Occurred()) return {};
    if (had && !drop_stale(st, key)) return {};
    hooked_run run = exec_under_hook(st, key, t.fallback != fallback_policy::allow);
    py::ref module = std::move(run.module);
    py::ref findings = std::move(run.findings);
    if (!findings) return {};
    if (PyList_GET_SIZE(findings.get()) > 0) {
        if (t.fallback != fallback_policy::allow) {
            // Whatever the script did with the hook's exception (even
            // swallowed it), it does not stay in this interpreter.
            if (module) forget_script(key, module.get());
            PyErr_Clear();
            fallback_raise(st, findings.get());
            return {};
        }
        fallback_warn_allowed(log_to, t, findings.get());
    }
    if (PyList_GET_SIZE(run.refused.get()) > 0) {
        if (!module) {
            fallback_raise_shared(st, run.refused.get());
            return {};
        }
        log_loaded_without(t, run.refused.get(), log_to);
    }
    if (module && !remember(st, key, module.get(), stamp, had, t, log_to)) return {};
    return module;
}

// The module of `key`, from the cache or loaded under the load lock.
py::ref module_for(interp_state* st, const request_target& t, PyObject* key, const log_sink& log_to) noexcept {
    script_stamp stamp = t.stamp;
    bool fresh = !t.script_reloading || t.has_stamp || stamp_of(t.script, &stamp);
    if (fresh) {
        if (PyObject* m = cached_module(st, key, t.script_reloading ? &stamp : nullptr)) return py::ref::borrow(m);
    }
    if (PyErr_Occurred()) return {};
    // Acquiring the RLock releases the GIL while another thread loads.
    if (!py::ref::steal(PyObject_CallMethod(st->load_lock, "acquire", nullptr))) return {};
    py::ref module = load_locked(st, t, key, log_to);
    py::saved_exception pending;
    py::ref::steal(PyObject_CallMethod(st->load_lock, "release", nullptr));
    PyErr_Clear();
    return module;
}

// module.<callable>, checked to be callable.
py::ref callable_of(interp_state* st, PyObject* module, const request_target& t) noexcept {
    py::ref name = py::ref::steal(st->names->get(t.callable, std::strlen(t.callable)));
    py::ref app = py::ref::steal(name ? PyObject_GetAttr(module, name.get()) : nullptr);
    if (!app && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_AttributeError, "script '%s' defines no '%s' (the WSGI callable)", t.script, t.callable);
    } else if (app && !PyCallable_Check(app.get())) {
        PyErr_Format(PyExc_TypeError, "'%s' in script '%s' is not callable", t.callable, t.script);
        app.reset();
    }
    return app;
}

}  // namespace

py::ref load_application(interp_state* st, const request_target& t, const log_sink& log_to) noexcept {
    py::ref key = py::ref::steal(st->names->get(t.script, std::strlen(t.script)));
    if (!key) return {};
    py::ref module = module_for(st, t, key.get(), log_to);
    if (!module) return {};
    return callable_of(st, module.get(), t);
}

}  // namespace pyinterp::app
