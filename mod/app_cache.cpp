// Script loading and the application cache (see app_cache.h).  All
// functions: GIL held, inside the interpreter that owns `st`.
#include "app_cache.h"

#include <http_log.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "fallback.h"
#include "py_compat.h"
#include "pymodule.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// What identifies one version of a script file.
struct file_stamp {
    long long mtime_us = 0;  // microseconds, as httpd's apr_finfo_t has it
    long long size = 0;
};

bool stamp_of(const char* path, file_stamp* out) noexcept {
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
PyObject* cached_module(module_state* st, PyObject* key, const file_stamp* want) noexcept {
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

// sys.modules name for a script: stable per path (FNV-1a), so a reload
// replaces the previous version.
void module_name_for(const char* path, char* out, size_t n) noexcept {
    unsigned long long h = 1469598103934665603ULL;
    for (const unsigned char* p = reinterpret_cast<const unsigned char*>(path); *p; ++p) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    std::snprintf(out, n, "_pyinterp_script_%016llx", h);
}

// Executes the script as a new module.  New reference or nullptr.
PyObject* exec_script(const char* path, PyObject* path_obj) noexcept {
    char name[64];
    module_name_for(path, name, sizeof name);
    PyObject* file = PyFile_OpenCodeObject(path_obj);
    PyObject* source = file ? PyObject_CallMethod(file, "read", nullptr) : nullptr;
    if (file != nullptr) {
        PyObject* closed = PyObject_CallMethod(file, "close", nullptr);
        if (closed == nullptr && source != nullptr) Py_CLEAR(source);
        Py_XDECREF(closed);
        Py_DECREF(file);
    }
    if (source == nullptr) return nullptr;
    if (!PyBytes_Check(source)) {
        Py_DECREF(source);
        PyErr_SetString(PyExc_TypeError, "reading the script did not return bytes");
        return nullptr;
    }
    PyObject* code = Py_CompileStringObject(PyBytes_AS_STRING(source), path_obj, Py_file_input, nullptr, -1);
    Py_DECREF(source);
    if (code == nullptr) return nullptr;
    PyObject* module = PyModule_New(name);
    PyObject* dict = module ? PyModule_GetDict(module) : nullptr;  // borrowed
    PyObject* modules = PyImport_GetModuleDict();                   // borrowed
    bool ok = dict != nullptr && PyDict_SetItemString(dict, "__file__", path_obj) == 0 &&
              PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) == 0 &&
              PyDict_SetItemString(modules, name, module) == 0;
    PyObject* result = ok ? PyEval_EvalCode(code, dict, dict) : nullptr;
    Py_DECREF(code);
    if (result == nullptr) {
        if (module != nullptr) {
            // Forget the half-executed module, keeping the script's exception.
            PyObject* exc = compat::take_exception();
            if (PyDict_GetItemString(modules, name) == module) PyDict_DelItemString(modules, name);
            PyErr_Clear();
            compat::restore_exception(exc);
        }
        Py_XDECREF(module);
        return nullptr;
    }
    Py_DECREF(result);
    return module;
}

// Loads the script unless another thread did meanwhile.  Called with the
// load lock held.  New reference to the module, or nullptr.
PyObject* load_locked(module_state* st, const char* path, PyObject* key, bool reload_if_changed,
                      server_rec* s, const char* group, fallback_policy policy, bool policy_from_alias) noexcept {
    file_stamp stamp;
    if (!stamp_of(path, &stamp)) return nullptr;
    bool had = cached_module(st, key, nullptr) != nullptr;
    if (PyObject* m = cached_module(st, key, reload_if_changed ? &stamp : nullptr)) return Py_NewRef(m);
    if (PyErr_Occurred()) return nullptr;
    // The load lock serialises loads in this interpreter: the hook is
    // installed once, before the first script runs.
    if (!fallback_install(st) || !fallback_begin(st, policy != fallback_policy::allow)) return nullptr;
    PyObject* module = exec_script(path, key);
    PyObject* findings = fallback_end(st);
    if (findings == nullptr) {
        Py_XDECREF(module);
        return nullptr;
    }
    if (PyList_GET_SIZE(findings) > 0) {
        if (policy != fallback_policy::allow) {
            // Whatever the script did with the hook's exception (even
            // swallowed it), it does not stay in this interpreter.
            if (module != nullptr) {
                char name[64];
                module_name_for(path, name, sizeof name);
                PyObject* modules = PyImport_GetModuleDict();  // borrowed
                if (PyDict_GetItemString(modules, name) == module) PyDict_DelItemString(modules, name);
                Py_CLEAR(module);
            }
            PyErr_Clear();
            fallback_raise(st, findings);
            Py_DECREF(findings);
            return nullptr;
        }
        fallback_warn_allowed(s, path, group, findings, policy_from_alias);
    }
    Py_DECREF(findings);
    if (module == nullptr) return nullptr;
    PyObject* entry = Py_BuildValue("(OLL)", module, stamp.mtime_us, stamp.size);
    if (entry == nullptr || PyDict_SetItem(st->apps, key, entry) < 0) Py_CLEAR(module);
    Py_XDECREF(entry);
    if (module != nullptr)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "PYI0201: %s script '%s' in application group '%s'",
                     had ? "reloaded" : "loaded", path, *group ? group : "%{GLOBAL}");
    return module;
}

}  // namespace

PyObject* load_application(module_state* st, const char* path, const apr_finfo_t* finfo, const char* callable,
                           bool reload_if_changed, server_rec* s, const char* group, fallback_policy policy,
                           bool policy_from_alias) noexcept {
    PyObject* key = st->names->get(path, std::strlen(path));
    if (key == nullptr) return nullptr;
    PyObject* module = nullptr;
    file_stamp stamp;
    bool fresh = true;
    constexpr apr_int32_t k_needed = APR_FINFO_MTIME | APR_FINFO_SIZE;
    if (reload_if_changed && finfo != nullptr && (finfo->valid & k_needed) == k_needed) {
        stamp.mtime_us = static_cast<long long>(finfo->mtime);  // httpd's stat of this request
        stamp.size = static_cast<long long>(finfo->size);
    } else if (reload_if_changed) {
        fresh = stamp_of(path, &stamp);
    }
    if (fresh) module = Py_XNewRef(cached_module(st, key, reload_if_changed ? &stamp : nullptr));
    if (module == nullptr && !PyErr_Occurred()) {
        // Acquiring the RLock releases the GIL while another thread loads.
        PyObject* got = PyObject_CallMethod(st->load_lock, "acquire", nullptr);
        if (got != nullptr) {
            Py_DECREF(got);
            module = load_locked(st, path, key, reload_if_changed, s, group, policy, policy_from_alias);
            PyObject* exc = compat::take_exception();
            PyObject* released = PyObject_CallMethod(st->load_lock, "release", nullptr);
            Py_XDECREF(released);
            if (exc != nullptr) {
                PyErr_Clear();
                compat::restore_exception(exc);
            }
        }
    }
    Py_DECREF(key);
    if (module == nullptr) return nullptr;
    PyObject* name = st->names->get(callable, std::strlen(callable));
    PyObject* app = name != nullptr ? PyObject_GetAttr(module, name) : nullptr;
    Py_XDECREF(name);
    if (app == nullptr && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_AttributeError, "script '%s' defines no '%s' (the WSGI callable)", path, callable);
    } else if (app != nullptr && !PyCallable_Check(app)) {
        PyErr_Format(PyExc_TypeError, "'%s' in script '%s' is not callable", callable, path);
        Py_CLEAR(app);
    }
    Py_DECREF(module);
    return app;
}

}  // namespace pyinterp::mod
