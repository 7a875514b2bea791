// Interrupting Python that runs too long (mod/app/interrupt.h) and bounded
// atexit handlers (mod/app/atexit_bound.h), through the executor, the
// in-flight registry and a watchdog, without httpd.
#include "app/interrupt.h"

#include <pythread.h>

#include <memory>
#include <string>

#include "app/atexit_bound.h"
#include "app/executor.h"
#include "app_support.h"

namespace {

// What the test protocol saw.
struct seen {
    int served = 0;
    std::string error, body;
    const app::executor* ex = nullptr;
    bool fire_late = false;  // mark this request's timeout fired and raise it after its Python is done
};

void mark_own_request_fired(const app::executor& ex) noexcept {
    unsigned long me = PyThread_get_thread_ident();
    for (const app::inflight_info& info : ex.inflight().list())
        if (info.thread_ident == me) ex.inflight().mark_fired(info.id, app::deadline_kind::timeout);
    PyThreadState_SetAsyncExc(me, app::request_timeout_type());
}

// Calls the application; keeps b"".join(result) or the exception's text.
int test_serve(const app::application& a, const app::request_target&, void* request) noexcept {
    auto* s = static_cast<seen*>(request);
    ++s->served;
    if (!apptest::call_application(a.callable, &s->body, &s->error)) return 504;
    if (s->fire_late) mark_own_request_fired(*s->ex);
    return 200;
}

int test_load_failed(const app::request_target&, void* request) noexcept {
    static_cast<seen*>(request)->error = apptest::take_error();
    return 500;
}

const app::protocol test_protocol = {"test", test_serve, test_load_failed, nullptr, nullptr, nullptr};

app::log_sink g_log;

void on_timeout(const app::inflight_info& info, PyThreadState* ts, app::deadline_kind, void*) noexcept {
    app::interrupt_request(info, ts, info.url.empty() ? app::interrupt_reason::atexit : app::interrupt_reason::timeout,
                           g_log);
}

// An executor and a watchdog acting on timeouts, as the httpd child has.
class Interrupt : public ::testing::Test {
protected:
    void SetUp() override {
        apptest::clear_log();
        g_log = apptest::log_sink();
        app::executor_options opt;
        opt.log = g_log;
        ex_ = std::make_unique<app::executor>(opt);
        s_.ex = ex_.get();
        app::watchdog_options w;
        w.tick_ms = 20;
        w.actions[unsigned(app::deadline_kind::timeout)] = {on_timeout, nullptr};
        w.log = g_log;
        dog_ = std::make_unique<app::watchdog>(ex_->inflight(), w);
        ASSERT_TRUE(dog_->start());
    }
    void TearDown() override { EXPECT_TRUE(dog_->stop(5000)); }

    app::run_result run(const std::string& script, const char* group, int timeout_ms) {
        app::request_target t;
        t.script = script.c_str();
        t.group = group;
        t.url = "/test";
        t.request_timeout_ms = timeout_ms;
        return ex_->run(t, test_protocol, &s_);
    }

    std::unique_ptr<app::executor> ex_;
    std::unique_ptr<app::watchdog> dog_;
    seen s_;
};

constexpr const char* k_spin =
    "def spin():\n"
    "    while True:\n"
    "        pass\n"
    "def application(environ, start_response):\n"
    "    try:\n"
    "        spin()\n"
    "    except Exception:\n"
    "        return [b'swallowed']\n";

constexpr const char* k_hello =
    "def application(environ, start_response):\n"
    "    return [b'hello'] + [b'' for _ in range(1000)]\n";

TEST_F(Interrupt, ASpinningRequestGetsRequestTimeoutAndTheThreadServesOn) {
    std::string spin = apptest::write_script("spin.wsgi", k_spin);
    std::string hello = apptest::write_script("hello.wsgi", k_hello);
    app::run_result r = run(spin, "interrupt-group", 200);
    EXPECT_EQ(r.status, 504);
    EXPECT_NE(s_.error.find("RequestTimeout"), std::string::npos) << s_.error;  // not swallowed by except Exception
    EXPECT_EQ(apptest::count("PYI0810: request timeout of request"), 1);
    EXPECT_EQ(apptest::count(": /test in application group 'interrupt-group'"), 1);
    EXPECT_GE(apptest::count(", in spin"), 1);
    // The same thread, the same interpreter: served normally.
    r = run(hello, "interrupt-group", 200);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(s_.body, "hello");
    EXPECT_EQ(pyinterp::view::find("interrupt-group").end(), PYINTERP_OK);
}

TEST_F(Interrupt, ALateInterruptDoesNotHitTheThreadsNextRequest) {
    std::string hello = apptest::write_script("hello.wsgi", k_hello);
    s_.fire_late = true;  // as if the watchdog acted just after the application returned
    EXPECT_EQ(run(hello, "late-group", 0).status, 200);
    s_.fire_late = false;
    app::run_result r = run(hello, "late-group", 0);
    EXPECT_EQ(r.status, 200) << s_.error;
    EXPECT_EQ(s_.body, "hello");
    EXPECT_EQ(pyinterp::view::find("late-group").end(), PYINTERP_OK);
}

TEST_F(Interrupt, RequestTimeoutIsABaseExceptionMadeOncePerInterpreter) {
    pyinterp::view v = pyinterp::view::create("timeout-type");
    {
        pyinterp::scoped_enter in(v);
        PyObject* type = app::request_timeout_type();
        ASSERT_NE(type, nullptr);
        EXPECT_EQ(type, app::request_timeout_type());
        EXPECT_EQ(PyObject_IsSubclass(type, PyExc_BaseException), 1);
        EXPECT_EQ(PyObject_IsSubclass(type, PyExc_Exception), 0);
    }
    EXPECT_EQ(v.end(), PYINTERP_OK);
}

constexpr const char* k_handlers =
    "import atexit\n"
    "ran = []\n"
    "def first(): ran.append('first')\n"
    "def taken_back(): ran.append('taken-back')\n"
    "def spinning():\n"
    "    while True:\n"
    "        pass\n"
    "atexit.register(first)\n"
    "atexit.register(taken_back)\n"
    "atexit.unregister(taken_back)\n"
    "atexit.register(spinning)\n";

TEST_F(Interrupt, AnAtexitHandlerPastItsBoundIsInterruptedAndTheOthersRun) {
    pyinterp::view v = pyinterp::view::create("atexit-bound");
    {
        pyinterp::scoped_enter in(v);
        ASSERT_TRUE(app::install_bounded_atexit(&ex_->inflight(), 200)) << apptest::take_error();
        PyObject* main = PyImport_AddModule("__main__");
        pyinterp::py::ref done = pyinterp::py::ref::steal(
            PyRun_String(k_handlers, Py_file_input, PyModule_GetDict(main), PyModule_GetDict(main)));
        ASSERT_TRUE(done) << apptest::take_error();
    }
    EXPECT_TRUE(app::run_atexit_handlers(v));
    {
        pyinterp::scoped_enter in(v);
        EXPECT_EQ(apptest::eval_str("ran"), "['first']");
        EXPECT_EQ(apptest::eval_str("__import__('atexit')._ncallbacks()"), "0");  // nothing left for the end
    }
    EXPECT_EQ(apptest::count("PYI0813: atexit handler spinning"), 1);
    EXPECT_EQ(v.end(), PYINTERP_OK);
}

}  // namespace
