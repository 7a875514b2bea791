// The executor (mod/app/executor.h) driven without httpd: a protocol made of
// plain functions records what the executor hands it.
#include "app/executor.h"

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "app/interp_state.h"
#include "app_support.h"
#include "pyinterp/py/exception.h"

namespace {

// What the test protocol saw.
struct seen {
    int served = 0;
    int load_failures = 0;
    int after_leave = 0;
    bool attached_after_leave = true;
    std::string group, interpreter, error, body;
    int64_t interpreter_id = -1;
    int in_flight_inside = -1;
    app::placement where = app::placement::main;
    int pool_member = -1, pool_size = -1;
    const app::executor* ex = nullptr;
    // Set to hold serve() until released (the GIL of the application's
    // interpreter stays held meanwhile).
    struct gate* hold = nullptr;
};

// serve() announces it is inside, then waits for release().
struct gate {
    std::mutex mu;
    std::condition_variable cv;
    bool inside = false, released = false;
    void enter() {
        std::unique_lock<std::mutex> lk(mu);
        inside = true;
        cv.notify_all();
        cv.wait(lk, [this] { return released; });
    }
    void wait_inside() {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [this] { return inside; });
    }
    void release() {
        std::lock_guard<std::mutex> lk(mu);
        released = true;
        cv.notify_all();
    }
};

// Calls the application with an empty environ and keeps b"".join(result).
int test_serve(const app::application& a, const app::request_target&, void* request) noexcept {
    auto* s = static_cast<seen*>(request);
    ++s->served;
    s->group = a.group;
    s->interpreter = a.interpreter;
    s->interpreter_id = a.interpreter_id;
    s->in_flight_inside = s->ex->in_flight();
    s->where = a.where;
    s->pool_member = a.pool_member;
    s->pool_size = a.pool_size;
    if (s->hold != nullptr) s->hold->enter();
    if (!apptest::call_application(a.callable, &s->body, &s->error)) return 500;
    return 200;
}

int test_load_failed(const app::request_target&, void* request) noexcept {
    auto* s = static_cast<seen*>(request);
    ++s->load_failures;
    s->error = apptest::take_error();
    return 500;
}

void test_after_leave(int, void* request) noexcept {
    auto* s = static_cast<seen*>(request);
    ++s->after_leave;
    s->attached_after_leave = pyinterp_thread_is_attached() != 0;
}

const app::protocol test_protocol = {"test", test_serve, test_load_failed, test_after_leave, nullptr, nullptr};

int g_setups = 0;
bool count_setup(app::interp_state*, void*) noexcept {
    ++g_setups;
    return true;
}

class Executor : public ::testing::Test {
protected:
    void SetUp() override {
        apptest::clear_log();
        app::executor_options opt;
        opt.log = apptest::log_sink();
        opt.setup_interpreter = count_setup;
        ex_ = std::make_unique<app::executor>(opt);
        s_.ex = ex_.get();
    }

    app::run_result run(const std::string& script, const char* group,
                        app::fallback_policy policy = app::fallback_policy::route) {
        app::request_target t;
        t.script = script.c_str();
        t.group = group;
        t.fallback = policy;
        return ex_->run(t, test_protocol, &s_);
    }

    app::run_result run(const app::request_target& t, seen* s = nullptr) {
        if (s != nullptr) s->ex = ex_.get();
        return ex_->run(t, test_protocol, s != nullptr ? s : &s_);
    }

    std::unique_ptr<app::executor> ex_;
    seen s_;
};

constexpr const char* k_hello =
    "def application(environ, start_response):\n"
    "    import sys\n"
    "    return [b'hello from ', sys.implementation.name.encode()]\n";

// Imports an extension module whose ELF imports include PyGILState_Ensure
// (tests/unit/fixtures/gilstate_ext.c): it needs the main interpreter.
constexpr const char* k_needs_main =
    "import gilstate_ext\n"
    "def application(environ, start_response):\n"
    "    return [b'served']\n";

TEST_F(Executor, ServesTheLoadedApplicationInItsGroupsInterpreter) {
    std::string script = apptest::write_script("hello.wsgi", k_hello);
    app::run_result r = run(script, "exec-group");
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(s_.body, "hello from cpython");
    EXPECT_EQ(s_.group, "exec-group");
    EXPECT_EQ(s_.interpreter, "exec-group");
    EXPECT_GT(s_.interpreter_id, 0);
    EXPECT_EQ(s_.in_flight_inside, 1);
    EXPECT_EQ(ex_->in_flight(), 0);
    EXPECT_EQ(s_.after_leave, 1);
    EXPECT_FALSE(s_.attached_after_leave);  // after_leave runs outside the interpreter
    EXPECT_EQ(apptest::count("PYI0120: created interpreter 'exec-group'"), 1);
    // The second run finds the interpreter and the application; the
    // interpreter is set up once.
    run(script, "exec-group");
    EXPECT_EQ(s_.served, 2);
    EXPECT_EQ(g_setups, 1);
    EXPECT_EQ(apptest::count("PYI0120"), 1);
    EXPECT_EQ(apptest::count("PYI0201"), 1);
    EXPECT_EQ(pyinterp::view::find("exec-group").end(), PYINTERP_OK);
}

TEST_F(Executor, TheGlobalGroupIsTheMainInterpreter) {
    app::run_result r = run(apptest::write_script("hello.wsgi", k_hello), "");
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(s_.interpreter, "main");
    EXPECT_EQ(s_.interpreter_id, 0);
}

TEST_F(Executor, RoutesToMainAndEndsTheInterpreterItLeft) {
    std::string script = apptest::write_script("needs_main.wsgi", k_needs_main);
    app::run_result r = run(script, "routed-group");
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(s_.body, "served");
    EXPECT_EQ(s_.group, "");  // it runs in %{GLOBAL}
    EXPECT_EQ(s_.interpreter_id, 0);
    EXPECT_EQ(apptest::count("PYI0210: application '" + script + "' moved from application group 'routed-group'"), 1);
    EXPECT_EQ(apptest::count("PyGILState_Ensure"), 1);
    EXPECT_EQ(apptest::count("PYI0214: ended interpreter 'routed-group'"), 1);
    int status = 0;
    pyinterp::view::find("routed-group", &status);
    EXPECT_EQ(status, PYINTERP_ERR_NOT_FOUND);
    // Routed once, it goes straight to main: no interpreter made, no new log.
    apptest::clear_log();
    r = run(script, "routed-group");
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(s_.interpreter_id, 0);
    EXPECT_EQ(apptest::messages().size(), 0u);
}

TEST_F(Executor, AnInterpreterWithAnotherApplicationIsNotEnded) {
    run(apptest::write_script("hello.wsgi", k_hello), "shared-group");
    run(apptest::write_script("needs_main.wsgi", k_needs_main), "shared-group");
    EXPECT_EQ(s_.served, 2);
    EXPECT_EQ(apptest::count("PYI0210"), 1);
    EXPECT_EQ(apptest::count("PYI0214"), 0);
    EXPECT_TRUE(pyinterp::view::find("shared-group"));
    EXPECT_EQ(pyinterp::view::find("shared-group").end(), PYINTERP_OK);
}

TEST_F(Executor, RefuseLogsTheDirectiveAndServesNothing) {
    std::string script = apptest::write_script("needs_main.wsgi", k_needs_main);
    app::run_result r = run(script, "refusing-group", app::fallback_policy::refuse);
    EXPECT_EQ(r.what, app::run_result::refused);
    EXPECT_EQ(s_.served, 0);
    EXPECT_EQ(s_.after_leave, 0);
    EXPECT_EQ(
        apptest::count("PYI0211: application '" + script +
                       "' refused in application group 'refusing-group' by PyInterpSubinterpreterFallback refuse"),
        1);
    EXPECT_EQ(apptest::count("set 'PyInterpApplicationGroup %{GLOBAL}' for it"), 1);
    EXPECT_EQ(pyinterp::view::find("refusing-group").end(), PYINTERP_OK);
}

TEST_F(Executor, AllowLoadsInTheSubinterpreterAndWarnsOnce) {
    std::string script = apptest::write_script("needs_main.wsgi", k_needs_main);
    run(script, "allowing-group", app::fallback_policy::allow);
    run(script, "allowing-group", app::fallback_policy::allow);
    EXPECT_EQ(s_.served, 2);
    EXPECT_EQ(s_.interpreter, "allowing-group");
    EXPECT_EQ(apptest::count("PYI0212: application '" + script + "' loaded in subinterpreter group 'allowing-group'"),
              1);
    EXPECT_EQ(pyinterp::view::find("allowing-group").end(), PYINTERP_OK);
}

TEST_F(Executor, ALoadFailureReachesTheProtocolWithItsException) {
    app::run_result r = run(apptest::write_script("broken.wsgi", "1/0\n"), "");
    EXPECT_EQ(r.what, app::run_result::load_failed);
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(s_.load_failures, 1);
    EXPECT_EQ(s_.error, "ZeroDivisionError: division by zero");
    EXPECT_EQ(s_.after_leave, 0);
    EXPECT_EQ(ex_->in_flight(), 0);
}

// An interpreter still ending (a guard held it off teardown) is neither
// found nor made again: the request fails, the log says why.
TEST_F(Executor, AGroupWhoseInterpreterIsEndingIsNotServed) {
    std::string script = apptest::write_script("hello.wsgi", k_hello);
    app::request_target t;
    t.script = script.c_str();
    t.group = "ending-group";
    pyinterp::view v = ex_->place(t);
    ASSERT_TRUE(v);
    {
        pyinterp::guard g(v);
        EXPECT_EQ(v.end(50), PYINTERP_ERR_TIMEOUT);
        app::run_result r = run(script, "ending-group");
        EXPECT_EQ(r.what, app::run_result::no_interpreter);
        EXPECT_EQ(s_.served, 0);
    }
    EXPECT_EQ(apptest::count("PYI0121: cannot create the interpreter of application group 'ending-group'"), 1);
    EXPECT_EQ(v.end(), PYINTERP_OK);
}

// ---------------------------------------------------------------- placement

// Where applications land by what their extension modules support
// (tests/unit/fixtures: single_phase_ext, multi_phase_ext, per_gil_ext,
// load_once_ext).
class Placement : public Executor {
protected:
    static app::request_target target(const std::string& script, const char* group,
                                      app::gil_mode gil = app::gil_mode::auto_, int interpreters = 1) {
        app::request_target t;
        t.script = script.c_str();
        t.group = group;
        t.gil = gil;
        t.interpreters = interpreters;
        return t;
    }
    void SetUp() override {
        Executor::SetUp();
        if (pyinterp_supports_own_gil() == 0) GTEST_SKIP() << "own GIL: Python 3.12+";
    }
    // gil=auto starts with an own GIL (3.13, 3.12.4+).
    static bool auto_is_own() { return app::auto_means_own_gil(); }
    // The interpreter a single-phase init function runs in for an import
    // in interpreter `id`: that one on 3.12, main on 3.13.
    static int64_t init_interp(int64_t id) { return PY_VERSION_HEX >= 0x030D0000 ? 0 : id; }
};

constexpr const char* k_single =
    "import single_phase_ext\n"
    "def application(environ, start_response):\n"
    "    return [('inits=%r' % single_phase_ext.inits()).encode()]\n";

TEST_F(Placement, ASinglePhaseExtensionMovesItToASharedGilInterpreterWithoutRunningItsInit) {
    if (!auto_is_own()) GTEST_SKIP() << "gil=auto means shared with this Python";
    std::string script = apptest::write_script("single.wsgi", k_single);
    app::run_result r = run(target(script, "sp-group"));
    EXPECT_EQ(r.what, app::run_result::served);
    // Its init function ran once, for the shared-GIL interpreter, never for
    // the own-GIL one: the hook refused it there before CPython loaded it
    // (the reason in PYI0216 below is the hook's).  3.12 runs an init in
    // the importing interpreter (without the hook: [own id, shared id]);
    // 3.13 runs every one switched to main (id 0, once either way).
    EXPECT_EQ(s_.body, "inits=[" + std::to_string(init_interp(s_.interpreter_id)) + "]");
    EXPECT_EQ(s_.where, app::placement::shared);
    EXPECT_EQ(s_.interpreter, "sp-group (shared GIL)");
    EXPECT_EQ(s_.group, "sp-group");
    EXPECT_EQ(apptest::count("PYI0120: created interpreter 'sp-group' ("), 1);
    EXPECT_EQ(apptest::count("own GIL) for application group 'sp-group'"), 1);
    EXPECT_EQ(apptest::count("PYI0216: application '" + script +
                             "' moved from an own-GIL interpreter to a shared-GIL subinterpreter of application group "
                             "'sp-group' (gil=auto): extension 'single_phase_ext'"),
              1);
    EXPECT_EQ(apptest::count("single-phase init"), 1);
    EXPECT_EQ(apptest::count("PYI0214: ended interpreter 'sp-group'"), 1);
    // Moved once, it goes straight there.
    apptest::clear_log();
    run(target(script, "sp-group"));
    EXPECT_EQ(s_.where, app::placement::shared);
    EXPECT_EQ(s_.served, 2);
    EXPECT_EQ(apptest::messages().size(), 0u);
    EXPECT_EQ(pyinterp::view::find("sp-group (shared GIL)").end(), PYINTERP_OK);
}

TEST_F(Placement, AMultiPhaseExtensionWithoutPerInterpreterGilSupportMovesItToo) {
    if (!auto_is_own()) GTEST_SKIP() << "gil=auto means shared with this Python";
    std::string script = apptest::write_script("multi.wsgi",
                                               "import multi_phase_ext\n"
                                               "def application(environ, start_response):\n"
                                               "    return [b'execs=%d' % multi_phase_ext.execs()]\n");
    run(target(script, "mp-group"));
    EXPECT_EQ(s_.where, app::placement::shared);
    EXPECT_EQ(s_.body, "execs=1");  // CPython refused it before its exec slot ran
    EXPECT_EQ(apptest::count("CPython refuses it in an interpreter with its own GIL"), 1);
}

TEST_F(Placement, GilAutoMeansAnOwnGilFrom3124) {
    // 3.12 before 3.12.4 frees objects other interpreters still use when an
    // own-GIL interpreter ends (gh-119213): gil=auto means shared there.
    std::string script = apptest::write_script("hello.wsgi", k_hello);
    run(target(script, "auto-group"));
    EXPECT_EQ(s_.where, Py_Version >= 0x030C04F0 ? app::placement::own : app::placement::shared);
    EXPECT_EQ(s_.interpreter, "auto-group");
    EXPECT_EQ(pyinterp::view::find("auto-group").own_gil(), s_.where == app::placement::own);
}

TEST_F(Placement, AnExtensionWithPerInterpreterGilSupportStaysWithItsOwnGil) {
    std::string script = apptest::write_script("pergil.wsgi",
                                               "import per_gil_ext\n"
                                               "def application(environ, start_response):\n"
                                               "    return [b'%d' % per_gil_ext.interpreter()]\n");
    run(target(script, "pg-group", app::gil_mode::own));
    EXPECT_EQ(s_.where, app::placement::own);
    EXPECT_EQ(s_.interpreter, "pg-group");
    EXPECT_EQ(s_.body, std::to_string(s_.interpreter_id));
    EXPECT_EQ(s_.pool_member, 1);
    EXPECT_EQ(s_.pool_size, 1);
    EXPECT_TRUE(pyinterp::view::find("pg-group").own_gil());
}

TEST_F(Placement, AnApplicationThatCatchesTheRefusalKeepsItsOwnGil) {
    std::string script = apptest::write_script("caught.wsgi",
                                               "try:\n"
                                               "    import single_phase_ext\n"
                                               "except ImportError:\n"
                                               "    single_phase_ext = None\n"
                                               "def application(environ, start_response):\n"
                                               "    return [b'without' if single_phase_ext is None else b'with']\n");
    run(target(script, "caught-group", app::gil_mode::own));
    EXPECT_EQ(s_.where, app::placement::own);
    EXPECT_EQ(s_.body, "without");
    EXPECT_EQ(apptest::count("PYI0218: application '" + script +
                             "' runs with its own GIL in application group 'caught-group' without extension "
                             "'single_phase_ext'"),
              1);
    EXPECT_EQ(apptest::count("PYI0216"), 0);
}

TEST_F(Placement, GilOwnRefusesToMoveAndSaysWhy) {
    std::string script = apptest::write_script("single.wsgi", k_single);
    app::run_result r = run(target(script, "pinned-own", app::gil_mode::own));
    EXPECT_EQ(r.what, app::run_result::load_failed);
    EXPECT_EQ(s_.served, 0);
    EXPECT_EQ(s_.load_failures, 1);
    EXPECT_NE(s_.error.find("ImportError: module single_phase_ext does not support loading in subinterpreters"),
              std::string::npos)
        << s_.error;
    EXPECT_EQ(apptest::count("PYI0217: application '" + script +
                             "' cannot run with its own GIL in application group 'pinned-own' (gil=own)"),
              1);
    EXPECT_EQ(apptest::count("'PyInterpApplicationGroup pinned-own gil=shared'"), 1);
    EXPECT_EQ(apptest::count("PYI0216"), 0);
}

TEST_F(Placement, GilSharedStartsThere) {
    std::string script = apptest::write_script("single.wsgi", k_single);
    run(target(script, "pinned-shared", app::gil_mode::shared));
    EXPECT_EQ(s_.where, app::placement::shared);
    EXPECT_EQ(s_.interpreter, "pinned-shared");
    EXPECT_EQ(s_.body, "inits=[" + std::to_string(init_interp(s_.interpreter_id)) + "]");
    EXPECT_EQ(apptest::count("shared GIL) for application group 'pinned-shared'"), 1);
    EXPECT_EQ(apptest::count("PYI0216"), 0);
}

TEST_F(Placement, AnExtensionThatRefusesASecondInterpreterEndsInMain) {
    // Main loads it first; the group's application is refused with an own
    // GIL (no per-interpreter GIL support), then by the extension itself in
    // a shared-GIL subinterpreter, and lands in main.
    if (!auto_is_own()) GTEST_SKIP() << "gil=auto means shared with this Python";
    std::string script = apptest::write_script("once.wsgi",
                                               "import load_once_ext\n"
                                               "def application(environ, start_response):\n"
                                               "    return [b'owner=%d' % load_once_ext.owner()]\n");
    run(target(script, ""));
    EXPECT_EQ(s_.body, "owner=0");
    app::run_result r = run(target(script, "once-group"));
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(s_.where, app::placement::main);
    EXPECT_EQ(s_.interpreter_id, 0);
    EXPECT_EQ(apptest::count("PYI0216: application '" + script + "'"), 1);
    EXPECT_EQ(apptest::count("PYI0210: application '" + script +
                             "' moved from application group 'once-group' to the main interpreter"),
              1);
    EXPECT_EQ(apptest::count("one interpreter per process"), 1);
}

TEST_F(Placement, AnImportRefusedWhileServingMovesTheApplicationsNextRequests) {
    if (!auto_is_own()) GTEST_SKIP() << "gil=auto means shared with this Python";
    std::string script = apptest::write_script("late.wsgi",
                                               "def application(environ, start_response):\n"
                                               "    try:\n"
                                               "        import single_phase_ext\n"
                                               "        return [b'imported']\n"
                                               "    except ImportError:\n"
                                               "        return [b'refused']\n");
    run(target(script, "late-group"));
    EXPECT_EQ(s_.body, "refused");
    EXPECT_EQ(s_.where, app::placement::own);
    EXPECT_EQ(apptest::count("PYI0219: application '" + script + "' imported extension 'single_phase_ext'"), 1);
    run(target(script, "late-group"));
    EXPECT_EQ(s_.body, "imported");
    EXPECT_EQ(s_.where, app::placement::shared);
}

TEST_F(Placement, APoolGrowsWhenItsMembersAreBusyAndServesTheLeastBusy) {
    std::string script = apptest::write_script("hello.wsgi", k_hello);
    app::request_target t = target(script, "pool", app::gil_mode::own, 2);
    gate held;
    seen first;
    first.hold = &held;
    std::thread a([&] { run(t, &first); });
    held.wait_inside();
    // Member 1 is busy (its request waits inside, holding its GIL): the
    // next request gets a second interpreter, with a GIL of its own.
    seen second;
    EXPECT_EQ(run(t, &second).what, app::run_result::served);
    held.release();
    a.join();
    EXPECT_EQ(first.interpreter, "pool#1");
    EXPECT_EQ(first.pool_member, 1);
    EXPECT_EQ(first.pool_size, 2);
    EXPECT_EQ(second.interpreter, "pool#2");
    EXPECT_EQ(second.pool_member, 2);
    EXPECT_NE(first.interpreter_id, second.interpreter_id);
    EXPECT_EQ(second.body, "hello from cpython");
    EXPECT_EQ(apptest::count("own GIL, pool member 2 of 2) for application group 'pool'"), 1);
    // Nothing busy: the lowest member, and the pool does not grow beyond 2.
    seen third;
    run(t, &third);
    EXPECT_EQ(third.interpreter, "pool#1");
    EXPECT_EQ(apptest::count("PYI0120"), 2);
    EXPECT_EQ(apptest::count("PYI0201"), 2);  // loaded once per member
}

TEST_F(Placement, APreloadLoadsTheApplicationIntoEveryMember) {
    std::string script = apptest::write_script("hello.wsgi", k_hello);
    app::run_result r = ex_->run_everywhere(target(script, "preloaded", app::gil_mode::own, 3), test_protocol, &s_);
    EXPECT_EQ(r.what, app::run_result::served);
    EXPECT_EQ(s_.served, 3);
    EXPECT_EQ(apptest::count("PYI0120"), 3);
    EXPECT_EQ(apptest::count("PYI0201: loaded script"), 3);
    for (const char* name : {"preloaded#1", "preloaded#2", "preloaded#3"}) EXPECT_TRUE(pyinterp::view::find(name));
}

}  // namespace
