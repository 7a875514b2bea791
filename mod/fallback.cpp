// PyInterpSubinterpreterFallback (see fallback.h).
#include "fallback.h"

#include <apr_strings.h>
#include <http_log.h>

#include <atomic>
#include <mutex>
#include <set>
#include <string>

#include "fallback_hook.h"
#include "py_compat.h"
#include "pymodule.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

// Process-wide routing state: strings only.
struct routes {
    std::mutex mu;
    std::atomic<bool> any{false};    // keys is not empty: the request path's lock-free check
    std::set<std::string> keys;      // script '\n' group
    std::set<std::string> scripts;   // distinct scripts routed to main
    std::set<std::string> warned;    // allow: script '\n' group already warned
};

routes& table() {
    static routes* r = new routes;  // never destroyed: used until the process exits
    return *r;
}

std::string key_of(const char* script, const char* group) {
    return std::string(script) + '\n' + group;
}

// "extension 'x' (path): reason" for the first finding, plus the names of
// the others.  Allocated from `p`; GIL held.
const char* describe(PyObject* findings, apr_pool_t* p) noexcept {
    if (findings == nullptr || !PyList_Check(findings) || PyList_GET_SIZE(findings) == 0)
        return "an extension module it imports needs the main interpreter";
    const char* text = nullptr;
    const char* others = nullptr;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(findings); ++i) {
        const char *name = "?", *path = "?", *reason = "?";
        if (!PyArg_ParseTuple(PyList_GET_ITEM(findings, i), "sss", &name, &path, &reason)) {
            PyErr_Clear();
            continue;
        }
        if (text == nullptr)
            text = apr_psprintf(p, "extension '%s' (%s): %s", name, path, reason);
        else
            others = others ? apr_pstrcat(p, others, ", ", name, nullptr) : apr_pstrdup(p, name);
    }
    if (text == nullptr) return "an extension module it imports needs the main interpreter";
    return others ? apr_pstrcat(p, text, "; also ", others, nullptr) : text;
}

// The findings of the pending NeedsMainInterpreter; clears it.  New
// reference (maybe nullptr).
PyObject* take_findings() noexcept {
    PyObject* exc = compat::take_exception();
    PyObject* findings = nullptr;
    if (exc != nullptr) {
        PyObject* args = PyObject_GetAttrString(exc, "args");
        if (args != nullptr && PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0)
            findings = Py_NewRef(PyTuple_GET_ITEM(args, 0));
        Py_XDECREF(args);
        Py_DECREF(exc);
    }
    PyErr_Clear();
    return findings;
}

}  // namespace

bool fallback_install(module_state* st) noexcept {
    if (st->fallback_hook != nullptr) return true;
    if (PyInterpreterState_Get() == PyInterpreterState_Main()) return true;  // nothing to detect there
    PyObject* hook = fallback_hook_new();
    PyObject* needs_main = hook ? PyObject_GetAttrString(hook, "NeedsMainInterpreter") : nullptr;
    if (needs_main == nullptr) {
        Py_XDECREF(hook);
        return false;
    }
    st->needs_main = needs_main;
    st->fallback_hook = hook;
    return true;
}

bool fallback_begin(module_state* st, bool strict) noexcept {
    if (st->fallback_hook == nullptr) return true;
    PyObject* r = PyObject_CallMethod(st->fallback_hook, "begin", "i", strict ? 1 : 0);
    Py_XDECREF(r);
    return r != nullptr;
}

PyObject* fallback_end(module_state* st) noexcept {
    if (st->fallback_hook == nullptr) return PyList_New(0);
    PyObject* exc = compat::take_exception();
    PyObject* findings = PyObject_CallMethod(st->fallback_hook, "end", nullptr);
    if (findings != nullptr && !PyList_Check(findings)) Py_SETREF(findings, PyList_New(0));
    if (exc != nullptr) {
        if (findings == nullptr) {
            PyErr_Clear();
            findings = PyList_New(0);
        }
        compat::restore_exception(exc);
    }
    return findings;
}

void fallback_raise(module_state* st, PyObject* findings) noexcept {
    if (st->needs_main == nullptr) {
        PyErr_SetString(PyExc_RuntimeError, "an extension module needs the main interpreter");
        return;
    }
    PyObject* exc = PyObject_CallOneArg(st->needs_main, findings);
    if (exc == nullptr) return;
    PyErr_SetObject(st->needs_main, exc);
    Py_DECREF(exc);
}

bool fallback_pending(module_state* st) noexcept {
    return st->needs_main != nullptr && PyErr_ExceptionMatches(st->needs_main);
}

int fallback_after_load(request_rec* r, server_rec* s, const char* script, const char* group,
                        fallback_policy policy, bool from_alias, const char* alias_url, module_state*) noexcept {
    apr_pool_t* p = r ? r->pool : s->process->pconf;
    PyObject* findings = take_findings();
    const char* why = describe(findings, p);
    Py_XDECREF(findings);
    const char* shown_group = *group ? group : "%{GLOBAL}";
    if (policy == fallback_policy::refuse) {
        const char* where = alias_url ? apr_psprintf(p, "add application-group=%%{GLOBAL} to its 'PyInterpScriptAlias %s'"
                                                        " (or set PyInterpApplicationGroup %%{GLOBAL} for it)",
                                                     *alias_url ? alias_url : "/")
                                      : "set 'PyInterpApplicationGroup %{GLOBAL}' for it";
        const char* other = from_alias ? "or change subinterpreter-fallback=refuse to route on that PyInterpScriptAlias"
                                       : "or set 'PyInterpSubinterpreterFallback route'";
        const char* line = apr_psprintf(
            p, "PYI0211: application '%s' refused in application group '%s' by %s: %s. It needs the main "
               "interpreter; to fix: %s, %s",
            script, shown_group, from_alias ? "subinterpreter-fallback=refuse" : "PyInterpSubinterpreterFallback refuse",
            why, where, other);
        if (r != nullptr) ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "%s", line);
        else ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "%s", line);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    std::string others;
    bool first_route = false;
    try {
        routes& t = table();
        std::lock_guard<std::mutex> lk(t.mu);
        first_route = t.keys.insert(key_of(script, group)).second;
        t.any.store(true, std::memory_order_release);
        if (t.scripts.insert(script).second) {
            for (const std::string& other : t.scripts)
                if (other != script) others += (others.empty() ? "'" : ", '") + other + "'";
        }
    } catch (...) {
        // Out of memory: the route is not remembered; the next request
        // detects again and routes again.
    }
    if (first_route || r == nullptr)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r ? r->server : s,
                     "PYI0210: application '%s' moved from application group '%s' to the main interpreter "
                     "(PyInterpSubinterpreterFallback route): %s",
                     script, shown_group, why);
    if (!others.empty())
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, r ? r->server : s,
                     "PYI0213: application '%s' now shares this process's main interpreter with %s, also moved "
                     "there: they lose isolation from each other (modules, globals, sys.path); see "
                     "docs/simplified-gil.md for the remedies",
                     script, others.c_str());
    return k_route_to_main;
}

void fallback_warn_allowed(server_rec* s, const char* script, const char* group, PyObject* findings,
                           bool from_alias) noexcept {
    try {
        routes& t = table();
        std::lock_guard<std::mutex> lk(t.mu);
        if (!t.warned.insert(key_of(script, group)).second) return;
    } catch (...) {
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                 "PYI0212: application '%s' loaded in subinterpreter group '%s' although %s needs the main "
                 "interpreter (allowed by %s); callbacks from its threads may run in the wrong interpreter",
                 script, *group ? group : "%{GLOBAL}", describe(findings, s->process->pconf),
                 from_alias ? "subinterpreter-fallback=allow" : "PyInterpSubinterpreterFallback allow");
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

}  // namespace pyinterp::mod
