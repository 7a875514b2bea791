// PyInterpSubinterpreterFallback (see fallback.h).
#include "fallback.h"

#include <atomic>
#include <mutex>
#include <set>
#include <string>

#include "fallback_hook.h"
#include "interp_state.h"
#include "pyinterp/py/exception.h"

namespace pyinterp::app {
namespace {

constexpr const char* k_unknown_reason = "an extension module it imports needs the main interpreter";

// Process-wide routing state: strings only.
struct routes {
    std::mutex mu;
    std::atomic<bool> any{false};   // keys is not empty: the request path's lock-free check
    std::set<std::string> keys;     // script '\n' group
    std::set<std::string> scripts;  // distinct scripts routed to main
    std::set<std::string> warned;   // allow: script '\n' group already warned
};

routes& table() {
    static routes* r = new routes;  // never destroyed: used until the process exits
    return *r;
}

std::string key_of(const char* script, const char* group) {
    return std::string(script) + '\n' + group;
}

// "extension 'x' (path): reason" for the first finding, plus the names of
// the others.  GIL held.
std::string describe(PyObject* findings) {
    if (findings == nullptr || !PyList_Check(findings)) return k_unknown_reason;
    std::string text, others;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(findings); ++i) {
        const char *name = "?", *path = "?", *reason = "?";
        if (!PyArg_ParseTuple(PyList_GET_ITEM(findings, i), "sss", &name, &path, &reason)) {
            PyErr_Clear();
            continue;
        }
        if (text.empty())
            text = std::string("extension '") + name + "' (" + path + "): " + reason;
        else
            others += (others.empty() ? "" : ", ") + std::string(name);
    }
    if (text.empty()) return k_unknown_reason;
    return others.empty() ? text : text + "; also " + others;
}

// The findings of the pending NeedsMainInterpreter, described; clears it.
std::string take_reason() {
    py::ref exc = py::take_exception();
    py::ref args = py::ref::steal(exc ? PyObject_GetAttrString(exc.get(), "args") : nullptr);
    PyObject* findings = nullptr;  // borrowed from args
    if (args && PyTuple_Check(args.get()) && PyTuple_GET_SIZE(args.get()) > 0)
        findings = PyTuple_GET_ITEM(args.get(), 0);
    std::string why = describe(findings);
    PyErr_Clear();
    return why;
}

void log_refused(const request_target& t, const log_sink& request_log, const std::string& why) {
    std::string where = t.alias_url != nullptr
                            ? std::string("add application-group=%{GLOBAL} to its 'PyInterpScriptAlias ") +
                                  (*t.alias_url ? t.alias_url : "/") +
                                  "' (or set PyInterpApplicationGroup %{GLOBAL} for it)"
                            : std::string("set 'PyInterpApplicationGroup %{GLOBAL}' for it");
    const char* other = t.fallback_from_alias
                            ? "or change subinterpreter-fallback=refuse to route on that PyInterpScriptAlias"
                            : "or set 'PyInterpSubinterpreterFallback route'";
    log(request_log, level::error,
        "PYI0211: application '%s' refused in application group '%s' by %s: %s. It needs the main "
        "interpreter; to fix: %s, %s",
        t.script, shown_group(t.group),
        t.fallback_from_alias ? "subinterpreter-fallback=refuse" : "PyInterpSubinterpreterFallback refuse", why.c_str(),
        where.c_str(), other);
}

// Records the route; true the first time for (script, group).  *others
// names the other scripts routed to main when `script` is new there.
bool record_route(const char* script, const char* group, std::string* others) noexcept {
    try {
        routes& t = table();
        std::lock_guard<std::mutex> lk(t.mu);
        bool first = t.keys.insert(key_of(script, group)).second;
        t.any.store(true, std::memory_order_release);
        if (t.scripts.insert(script).second) {
            for (const std::string& other : t.scripts)
                if (other != script) *others += (others->empty() ? "'" : ", '") + other + "'";
        }
        return first;
    } catch (...) {
        // Out of memory: the route is not remembered; the next request
        // detects again and routes again.
        return true;
    }
}

}  // namespace

bool fallback_install(interp_state* st) noexcept {
    if (st->fallback_hook != nullptr) return true;
    if (PyInterpreterState_Get() == PyInterpreterState_Main()) return true;  // nothing to detect there
    py::ref hook = fallback_hook_new();
    py::ref needs_main = py::ref::steal(hook ? PyObject_GetAttrString(hook.get(), "NeedsMainInterpreter") : nullptr);
    if (!needs_main) return false;
    st->needs_main = needs_main.release();
    st->fallback_hook = hook.release();
    return true;
}

bool fallback_begin(interp_state* st, bool strict) noexcept {
    if (st->fallback_hook == nullptr) return true;
    return bool(py::ref::steal(PyObject_CallMethod(st->fallback_hook, "begin", "i", strict ? 1 : 0)));
}

py::ref fallback_loaded(interp_state* st) noexcept {
    if (st->fallback_hook == nullptr) return py::ref::steal(PyList_New(0));
    return py::ref::steal(PyObject_CallMethod(st->fallback_hook, "loaded", nullptr));
}

py::ref fallback_end(interp_state* st) noexcept {
    if (st->fallback_hook == nullptr) return py::ref::steal(PyList_New(0));
    py::saved_exception pending;
    py::ref findings = py::ref::steal(PyObject_CallMethod(st->fallback_hook, "end", nullptr));
    if (findings && !PyList_Check(findings.get())) findings = py::ref::steal(PyList_New(0));
    if (!findings && pending) {
        PyErr_Clear();  // the pending exception is the one to report
        findings = py::ref::steal(PyList_New(0));
    }
    return findings;
}

void fallback_raise(interp_state* st, PyObject* findings) noexcept {
    if (st->needs_main == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "an extension module needs the main interpreter");
        return;
    }
    py::ref exc = py::ref::steal(PyObject_CallOneArg(st->needs_main, findings));
    if (exc) PyErr_SetObject(st->needs_main, exc.get());
}

bool fallback_pending(interp_state* st) noexcept {
    return st->needs_main != nullptr && PyErr_ExceptionMatches(st->needs_main);
}

bool fallback_after_load(const request_target& t, const log_sink& request_log, const log_sink& log_to) noexcept {
    std::string why, others;
    try {
        why = take_reason();
    } catch (...) {
        PyErr_Clear();
    }
    if (t.fallback == fallback_policy::refuse) {
        log_refused(t, request_log, why);
        return false;
    }
    if (record_route(t.script, t.group, &others))
        log(log_to, level::warn,
            "PYI0210: application '%s' moved from application group '%s' to the main interpreter "
            "(PyInterpSubinterpreterFallback route): %s",
            t.script, shown_group(t.group), why.c_str());
    if (!others.empty())
        log(log_to, level::warn,
            "PYI0213: application '%s' now shares this process's main interpreter with %s, also moved "
            "there: they lose isolation from each other (modules, globals, sys.path); see "
            "docs/simplified-gil.md for the remedies",
            t.script, others.c_str());
    return true;
}

void fallback_warn_allowed(const log_sink& log_to, const request_target& t, PyObject* findings) noexcept {
    try {
        routes& r = table();
        {
            std::lock_guard<std::mutex> lk(r.mu);
            if (!r.warned.insert(key_of(t.script, t.group)).second) return;
        }
        log(log_to, level::warn,
            "PYI0212: application '%s' loaded in subinterpreter group '%s' although %s needs the main "
            "interpreter (allowed by %s); callbacks from its threads may run in the wrong interpreter",
            t.script, shown_group(t.group), describe(findings).c_str(),
            t.fallback_from_alias ? "subinterpreter-fallback=allow" : "PyInterpSubinterpreterFallback allow");
    } catch (...) {
        // Out of memory: no warning.
    }
}

bool fallback_routed(const char* script, const char* group) noexcept {
    if (*group == '\0') return false;
    try {
        routes& t = table();
        // Usually nothing was ever routed: no lock, no key built.
        if (!t.any.load(std::memory_order_acquire)) return false;
        std::lock_guard<std::mutex> lk(t.mu);
        return t.keys.count(key_of(script, group)) != 0;
    } catch (...) {
        return false;
    }
}

}  // namespace pyinterp::app
