// PyInterpSubinterpreterFallback (see fallback.h).
#include "fallback.h"

#include <mutex>
#include <set>
#include <string>

#include "fallback_hook.h"
#include "interp_state.h"
#include "placement.h"
#include "pyinterp/py/exception.h"

namespace pyinterp::app {
namespace {

constexpr const char* k_unknown_reason = "an extension module it imports needs the main interpreter";

// Policy allow: the (script '\n' group) already warned about.  Strings
// only; the moves themselves are placement.h's.
struct warned_set {
    std::mutex mu;
    std::set<std::string> keys;
};

warned_set& warned() {
    static warned_set* w = new warned_set;  // never destroyed: used until the process exits
    return *w;
}

}  // namespace

// "extension 'x' (path): reason" for the first finding, plus the names of
// the others.  GIL held.
std::string fallback_describe(PyObject* findings) {
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

namespace {

// The directive that puts `t` in the main interpreter from the start.
std::string pin_main(const request_target& t) {
    if (t.alias_url == nullptr) return "set 'PyInterpApplicationGroup %{GLOBAL}' for it";
    return std::string("add application-group=%{GLOBAL} to its 'PyInterpScriptAlias ") +
           (*t.alias_url ? t.alias_url : "/") + "' (or set PyInterpApplicationGroup %{GLOBAL} for it)";
}

// The findings of the pending NeedsMainInterpreter, described; clears it.
std::string take_reason() {
    py::ref exc = py::take_exception();
    py::ref args = py::ref::steal(exc ? PyObject_GetAttrString(exc.get(), "args") : nullptr);
    PyObject* findings = nullptr;  // borrowed from args
    if (args && PyTuple_Check(args.get()) && PyTuple_GET_SIZE(args.get()) > 0)
        findings = PyTuple_GET_ITEM(args.get(), 0);
    std::string why = fallback_describe(findings);
    PyErr_Clear();
    return why;
}

void log_refused(const request_target& t, const log_sink& request_log, const std::string& why) {
    std::string where = pin_main(t);
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

}  // namespace

bool fallback_install(interp_state* st) noexcept {
    if (st->fallback_hook != nullptr) return true;
    if (PyInterpreterState_Get() == PyInterpreterState_Main()) return true;  // nothing to detect there
    pyinterp::view here = pyinterp::view::current();
    bool own = here && here.own_gil();
    py::ref hook = fallback_hook_new(st, own);
    py::ref needs_main = py::ref::steal(hook ? PyObject_GetAttrString(hook.get(), "NeedsMainInterpreter") : nullptr);
    py::ref needs_shared = py::ref::steal(needs_main ? PyObject_GetAttrString(hook.get(), "NeedsSharedGil") : nullptr);
    if (!needs_shared) return false;
    st->needs_main = needs_main.release();
    st->needs_shared = needs_shared.release();
    st->fallback_hook = hook.release();
    st->own_gil = own ? 1 : 0;
    return true;
}

bool fallback_begin(interp_state* st, bool strict) noexcept {
    if (st->fallback_hook == nullptr) return true;
    return bool(py::ref::steal(PyObject_CallMethod(st->fallback_hook, "begin", "i", strict ? 1 : 0)));
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

py::ref fallback_report(interp_state* st) noexcept {
    if (st->fallback_hook == nullptr) return {};
    py::saved_exception pending;
    py::ref r = py::ref::steal(PyObject_CallMethod(st->fallback_hook, "report", nullptr));
    if (!r) PyErr_Clear();
    return r;
}

py::ref fallback_refused(interp_state* st) noexcept {
    if (st->fallback_hook == nullptr || st->own_gil == 0) return py::ref::steal(PyList_New(0));
    py::saved_exception pending;
    return py::ref::steal(PyObject_CallMethod(st->fallback_hook, "refused", nullptr));
}

void fallback_raise_shared(interp_state* st, PyObject* refused) noexcept {
    py::ref cause = py::take_exception();
    py::ref exc =
        py::ref::steal(st->needs_shared != nullptr ? PyObject_CallOneArg(st->needs_shared, refused) : nullptr);
    if (!exc) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "an extension module needs a shared GIL");
        return;
    }
    if (cause) PyException_SetCause(exc.get(), cause.release());
    PyErr_SetObject(st->needs_shared, exc.get());
}

bool fallback_shared_pending(interp_state* st) noexcept {
    return st->needs_shared != nullptr && PyErr_ExceptionMatches(st->needs_shared);
}

py::ref fallback_take_late(interp_state* st) noexcept {
    st->late_refusals = 0;
    if (st->fallback_hook == nullptr) return py::ref::steal(PyList_New(0));
    py::saved_exception pending;
    return py::ref::steal(PyObject_CallMethod(st->fallback_hook, "take_late", nullptr));
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
    if (record_move(t.script, t.group, placement::main, &others))
        log(log_to, level::warn,
            "PYI0210: application '%s' moved from application group '%s' to the main interpreter "
            "(PyInterpSubinterpreterFallback route): %s. To place it there from the start: %s",
            t.script, shown_group(t.group), why.c_str(), pin_main(t).c_str());
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
        warned_set& w = warned();
        {
            std::lock_guard<std::mutex> lk(w.mu);
            if (!w.keys.insert(std::string(t.script) + '\n' + t.group).second) return;
        }
        log(log_to, level::warn,
            "PYI0212: application '%s' loaded in subinterpreter group '%s' although %s needs the main "
            "interpreter (allowed by %s); callbacks from its threads may run in the wrong interpreter",
            t.script, shown_group(t.group), fallback_describe(findings).c_str(),
            t.fallback_from_alias ? "subinterpreter-fallback=allow" : "PyInterpSubinterpreterFallback allow");
    } catch (...) {
        // Out of memory: no warning.
    }
}

}  // namespace pyinterp::app
