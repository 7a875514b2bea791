// pyinterp-doctor: the program behind `mod/pyinterp doctor app.wsgi`.
//
// Places a WSGI script the way the server does: it runs the script through
// the server's own executor (app/executor.h: the same placement, import
// hook, script loading and moves, own GIL -> shared GIL -> main) in an
// application group of its own, with a protocol that only records where the
// loaded application ended up, and prints
//
//     <module>: fine in a subinterpreter; fine with its own GIL [path]
//     <module>: fine in a subinterpreter; not with its own GIL (<why>) [path]
//     <module>: not with its own GIL (<why>); the application runs without it [path]
//     <module>: fine in a subinterpreter; own GIL not checked (<why>) [path]
//     <module>: needs the main interpreter (<why>) [path]
//     placement: own GIL | shared GIL | main interpreter (interpreter '<name>')
//     pool: <name> (id <id>), ...   (with --interpreters N: every member, each loaded)
//     why: <the server's log line for each move>
//     verdict: ...
//
// An extension module that must not be loaded with an own GIL (single-phase
// init: numpy 2.2 aborts the process there) is refused before it loads, as
// in the server, so the diagnosis survives it.  Exit status: 0 the
// application can run in a subinterpreter, 1 it needs the main interpreter,
// 2 the script could not be loaded or checked.
//
// The interpreters are never ended: the process exits with _exit() once the
// report is printed (an application's threads or extensions must not make
// a diagnosis hang or crash at teardown).
#include <Python.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "app/executor.h"
#include "app/fallback.h"
#include "app/interp_state.h"
#include "app/log.h"
#include "pyinterp/dispatch.hpp"
#include "pyinterp/module.h"
#include "pyinterp/py/exception.h"

namespace {

namespace app = pyinterp::app;
namespace py = pyinterp::py;

// What one load in a subinterpreter showed, per extension module.
struct extension {
    std::string name, path;
    std::string error;       // the load's error, if any
    std::string needs_main;  // why it needs the main interpreter, if it does
    std::string refused;     // why it cannot load with an own GIL, if refused there
};

struct round_report {
    app::placement where = app::placement::own;
    std::vector<extension> loaded;                  // in load order
    std::map<std::string, std::string> needs_main;  // findings tied to no loaded module too
};

// Everything the run showed.
struct report {
    std::vector<round_report> rounds;
    std::vector<std::string> moves;  // the server's log lines about moves and refusals
    bool served = false;
    app::placement where = app::placement::main;
    std::string interpreter;
    std::vector<std::string> members;  // "<name> (id <id>)" of every interpreter that loaded it
    std::string script_error;  // the load's exception, when it failed
};

struct options {
    const char* python_path = nullptr;
    const char* callable = "application";
    const char* script = nullptr;
    app::gil_mode gil = app::k_default_gil;
    int interpreters = 1;
};

std::string str_of(PyObject* o) {
    py::ref s = py::ref::steal(o ? PyObject_Str(o) : nullptr);
    const char* c = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    std::string out = c ? c : "?";
    PyErr_Clear();
    return out;
}

// The PYI codes of the lines that say where an application goes and why.
bool is_placement_line(const char* message) {
    for (const char* code : {"PYI0210:", "PYI0211:", "PYI0212:", "PYI0213:", "PYI0216:", "PYI0217:", "PYI0218:"})
        if (std::strncmp(message, code, std::strlen(code)) == 0) return true;
    return false;
}

// The executor's log: lines about placement are kept for the report,
// errors go to stderr.  Any thread, maybe with a GIL held.
void keep_log(app::level lv, const char* message, void* user) noexcept {
    auto* r = static_cast<report*>(user);
    try {
        // Once each: every member of a pool logs its own load.
        if (is_placement_line(message)) {
            if (std::find(r->moves.begin(), r->moves.end(), message) == r->moves.end()) r->moves.emplace_back(message);
        }
        else if (lv >= app::level::error)
            std::fprintf(stderr, "pyinterp-doctor: %s\n", message);
    } catch (...) {
        // Out of memory: the line is lost.
    }
}

void log_to_stderr(int level, const char* message, void*) {
    if (level >= PYINTERP_LOG_WARN) std::fprintf(stderr, "pyinterp-doctor: %s\n", message);
}

// The (module, path, reason) tuples of `list` as module -> reason.  GIL held.
std::map<std::string, std::string> reasons(PyObject* list) {
    std::map<std::string, std::string> out;
    for (Py_ssize_t i = 0; list != nullptr && i < PyList_Size(list); ++i) {
        PyObject* f = PyList_GET_ITEM(list, i);
        std::string mod = str_of(PyTuple_GetItem(f, 0));
        if (!out.count(mod)) out[mod] = str_of(PyTuple_GetItem(f, 2));
    }
    PyErr_Clear();
    return out;
}

// executor_options::observe_load: the hook's report of the load that just
// ran in a subinterpreter.  GIL held, the load's exception pending.
void observe_load(app::interp_state* st, app::placement where, const pyinterp::view&, void* user) noexcept {
    auto* r = static_cast<report*>(user);
    py::saved_exception pending;
    py::ref rep = app::fallback_report(st);
    if (!rep) return;
    try {
        round_report rr;
        rr.where = where;
        rr.needs_main = reasons(PyDict_GetItemString(rep.get(), "findings"));
        std::map<std::string, std::string> refused = reasons(PyDict_GetItemString(rep.get(), "refused"));
        PyObject* loaded = PyDict_GetItemString(rep.get(), "loaded");  // borrowed
        for (Py_ssize_t i = 0; loaded != nullptr && i < PyList_Size(loaded); ++i) {
            PyObject* e = PyList_GET_ITEM(loaded, i);
            extension x;
            x.name = str_of(PyList_GetItem(e, 0));
            x.path = str_of(PyList_GetItem(e, 1));
            PyObject* err = PyList_GetItem(e, 2);
            if (err != nullptr && err != Py_None) x.error = str_of(err);
            if (rr.needs_main.count(x.name)) x.needs_main = rr.needs_main[x.name];
            if (refused.count(x.name)) x.refused = refused[x.name];
            rr.loaded.push_back(x);
        }
        PyErr_Clear();
        r->rounds.push_back(rr);
    } catch (...) {
        PyErr_Clear();
    }
}

int doctor_serve(const app::application& a, const app::request_target&, void* request) noexcept {
    auto* r = static_cast<report*>(request);
    if (!r->served) {  // the first member
        r->where = a.where;
        r->interpreter = a.interpreter;
    }
    r->served = true;
    try {
        r->members.push_back(std::string(a.interpreter) + " (id " + std::to_string(a.interpreter_id) + ")");
    } catch (...) {
        // Out of memory: the pool line is shorter.
    }
    return 0;
}

// The load's exception: its traceback to stderr for the user.  GIL held.
int doctor_load_failed(const app::request_target&, void* request) noexcept {
    auto* r = static_cast<report*>(request);
    py::ref exc = py::take_exception();
    if (exc) {
        std::fprintf(stderr, "%s\n", py::format_exception(exc.get()).c_str());
        r->script_error = std::string(Py_TYPE(exc.get())->tp_name) + ": " + str_of(exc.get());
    } else {
        r->script_error = "unknown error";
    }
    return 2;
}

const app::protocol doctor_protocol = {"doctor", doctor_serve, doctor_load_failed, nullptr, nullptr, nullptr};

const extension* find_in(const round_report* rr, const std::string& name) {
    if (rr == nullptr) return nullptr;
    for (const extension& x : rr->loaded)
        if (x.name == name) return &x;
    return nullptr;
}

const round_report* round_at(const report& r, app::placement where) {
    for (const round_report& rr : r.rounds)
        if (rr.where == where) return &rr;
    return nullptr;
}

// Why nothing was learned about an extension with an own GIL.
std::string own_gil_unchecked(const options& o) {
    if (pyinterp_supports_own_gil() == 0) return "needs Python 3.12+";
    if (o.gil == app::gil_mode::shared) return "gil=shared";
    if (!app::auto_means_own_gil()) return "gil=auto means a shared GIL before Python 3.12.4";
    return "the application had moved before loading it";
}

// One line per extension module seen in any round, then the findings tied
// to none of them (a package's sub-interpreter warning, say).
void print_extensions(const report& r, const options& o) {
    const round_report* own = round_at(r, app::placement::own);
    const round_report* shared = round_at(r, app::placement::shared);
    std::vector<std::string> seen;
    for (const round_report& rr : r.rounds) {
        for (const extension& x : rr.loaded) {
            bool listed = false;
            for (const std::string& s : seen) listed = listed || s == x.name;
            if (listed) continue;
            seen.push_back(x.name);
            const extension* in_own = find_in(own, x.name);
            const extension* in_shared = find_in(shared, x.name);
            std::string needs = (in_own && !in_own->needs_main.empty()) ? in_own->needs_main
                                : in_shared                             ? in_shared->needs_main
                                                                        : "";
            if (!needs.empty()) {
                std::printf("%s: needs the main interpreter (%s) [%s]\n", x.name.c_str(), needs.c_str(),
                            x.path.c_str());
            } else if (in_own && !in_own->refused.empty()) {
                std::string shared_verdict = !in_shared ? "the application runs without it"
                                             : in_shared->error.empty()
                                                 ? "fine in a subinterpreter"
                                                 : "in a shared-GIL subinterpreter: " + in_shared->error;
                std::printf("%s: not with its own GIL (%s); %s [%s]\n", x.name.c_str(), in_own->refused.c_str(),
                            shared_verdict.c_str(), x.path.c_str());
            } else if (in_own) {
                std::printf(
                    "%s: fine in a subinterpreter; %s [%s]\n", x.name.c_str(),
                    in_own->error.empty() ? "fine with its own GIL" : ("with its own GIL: " + in_own->error).c_str(),
                    x.path.c_str());
            } else {
                std::printf("%s: fine in a subinterpreter; own GIL not checked (%s) [%s]\n", x.name.c_str(),
                            own_gil_unchecked(o).c_str(), x.path.c_str());
            }
        }
    }
    for (const round_report& rr : r.rounds)
        for (const auto& [mod, why] : rr.needs_main) {
            bool listed = false;
            for (const std::string& s : seen) listed = listed || s == mod;
            if (!listed) std::printf("%s: needs the main interpreter (%s)\n", mod.c_str(), why.c_str());
        }
    if (seen.empty()) std::printf("no extension modules loaded\n");
}

// The placement and verdict lines; returns the exit status.
int print_verdict(const report& r) {
    for (const std::string& line : r.moves) std::printf("why: %s\n", line.c_str());
    if (!r.served) {
        std::printf("error: the script failed to load: %s\n",
                    r.script_error.empty() ? "(see the messages above)" : r.script_error.c_str());
        return 2;
    }
    static const char* const words[] = {"own GIL", "shared GIL", "main interpreter"};
    std::printf("placement: %s (interpreter '%s')\n", words[static_cast<int>(r.where)], r.interpreter.c_str());
    if (r.members.size() > 1) {
        std::printf("pool:");
        for (size_t i = 0; i < r.members.size(); ++i)
            std::printf("%s %s", i == 0 ? "" : ",", r.members[i].c_str());
        std::printf("\n");
    }
    if (r.where == app::placement::main) {
        std::printf(
            "verdict: needs the main interpreter: serve it with application-group=%%{GLOBAL} "
            "(PyInterpSubinterpreterFallback route does so automatically)\n");
        return 1;
    }
    std::printf("verdict: can run isolated in a subinterpreter (%s)\n",
                r.where == app::placement::own ? "with its own GIL" : "with a shared GIL");
    return 0;
}

int usage() {
    std::fprintf(stderr,
                 "usage: pyinterp-doctor [--python-path DIR[:DIR...]] [--callable NAME] [--gil auto|own|shared] "
                 "[--interpreters N] script.wsgi\n"
                 "Places the script as the server would (own GIL, shared GIL, main interpreter), prints each\n"
                 "extension module it loaded with a verdict, and the placement and why.  Exit status: 0 it can\n"
                 "run in a subinterpreter, 1 it needs the main interpreter, 2 errors.\n");
    return 2;
}

bool parse_gil_arg(const char* arg, app::gil_mode* out) {
    if (std::strcmp(arg, "auto") == 0)
        *out = app::gil_mode::auto_;
    else if (std::strcmp(arg, "own") == 0 && pyinterp_supports_own_gil() != 0)
        *out = app::gil_mode::own;
    else if (std::strcmp(arg, "shared") == 0)
        *out = app::gil_mode::shared;
    else
        return false;
    return true;
}

// False on a bad command line.
bool parse_args(int argc, char** argv, options* o) {
    for (int i = 1; i < argc; ++i) {
        bool has_value = i + 1 < argc;
        if (std::strcmp(argv[i], "--python-path") == 0 && has_value) {
            o->python_path = argv[++i];
        } else if (std::strcmp(argv[i], "--callable") == 0 && has_value) {
            o->callable = argv[++i];
        } else if (std::strcmp(argv[i], "--gil") == 0 && has_value) {
            if (!parse_gil_arg(argv[++i], &o->gil)) return false;
        } else if (std::strcmp(argv[i], "--interpreters") == 0 && has_value) {
            o->interpreters = std::atoi(argv[++i]);
            if (o->interpreters < 1 || o->interpreters > app::k_max_interpreters) return false;
        } else if (argv[i][0] == '-' || o->script != nullptr) {
            return false;  // an unknown option, or a second script
        } else {
            o->script = argv[i];
        }
    }
    return o->script != nullptr;
}

// Starts Python as the server does: the private module registered, `import
// pyinterp` available, --python-path in every interpreter.
bool start_python(const options& o) {
    pyinterp_set_log_callback(log_to_stderr, PYINTERP_LOG_WARN, nullptr);
    if (!app::register_private_module(nullptr)) return false;
    if (PyImport_AppendInittab("pyinterp", PyInit_pyinterp) != 0) return false;
    pyinterp_config cfg{};
    cfg.python_path = o.python_path;
    int rc = pyinterp_initialize(&cfg);
    if (rc != PYINTERP_OK) std::fprintf(stderr, "pyinterp-doctor: Python failed to start: %s\n", pyinterp_strerror(rc));
    return rc == PYINTERP_OK;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse_args(argc, argv, &o)) return usage();
    if (access(o.script, R_OK) != 0) {
        std::fprintf(stderr, "pyinterp-doctor: cannot read '%s'\n", o.script);
        return 2;
    }
    if (!start_python(o)) return 2;
    report r;
    app::executor_options eo;
    eo.log = {keep_log, &r};
    eo.observe_load = observe_load;
    eo.observe_user = &r;
    app::executor ex(eo);
    app::request_target t;
    t.script = o.script;
    t.callable = o.callable;
    t.group = "doctor";
    t.gil = o.gil;
    t.interpreters = o.interpreters;
    // Into every member of a pool, as PyInterpImportScript does.
    ex.run_everywhere(t, doctor_protocol, &r);
    std::printf("pyinterp doctor: %s (Python %d.%d)\n", o.script, PY_MAJOR_VERSION, PY_MINOR_VERSION);
    print_extensions(r, o);
    int status = print_verdict(r);
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(status);
}
