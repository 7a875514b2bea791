// The executor (mod/app/executor.h) driven without httpd: a protocol made of
// plain functions records what the executor hands it.
#include "app/executor.h"

#include <string>

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
    const app::executor* ex = nullptr;
};

// Calls the application with an empty environ and keeps b"".join(result).
int test_serve(const app::application& a, const app::request_target&, void* request) noexcept {
    auto* s = static_cast<seen*>(request);
    ++s->served;
    s->group = a.group;
    s->interpreter = a.interpreter;
    s->interpreter_id = a.interpreter_id;
    s->in_flight_inside = s->ex->in_flight();
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
    pyinterp::view v = ex_->place("ending-group");
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

}  // namespace
