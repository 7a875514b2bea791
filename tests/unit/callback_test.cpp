// Callbacks: created in one interpreter, called and freed from any thread.
#include <mutex>
#include <thread>
#include <vector>

#include "support.h"

using pyinterp::callback;
using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

// note(x): records x on the C side, where any interpreter can report to it.
std::mutex notes_mu;
std::vector<long long> notes;

PyObject* py_note(PyObject*, PyObject* arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return nullptr;
    std::lock_guard<std::mutex> lk(notes_mu);
    notes.push_back(v);
    Py_RETURN_NONE;
}
PyMethodDef note_def = {"note", py_note, METH_O, nullptr};


// A callback on an object whose __del__ notes the interpreter it runs in;
// the callback holds the only reference.  Clears the notes.
callback make_noting_callback(const view& v) {
    {
        scoped_enter in(v);
        test::install_builtin(&note_def);
    }
    callback cb = test::make_callback(v, "class C:\n    def __call__(self):\n        return 1\n"
                                   "    def __del__(self):\n        note(probe())\n"
                                   "obj = C()\n", "obj");
    {
        scoped_enter in(v);
        EXPECT_TRUE(test::exec("del obj"));
    }
    std::lock_guard<std::mutex> lk(notes_mu);
    notes.clear();
    return cb;
}


struct call_ctx {
    int64_t expected_interp;
    long arg;
    long result = -1;
    bool args_in_right_interp = false;
};

PyObject* build_args(void* user) {
    auto* c = static_cast<call_ctx*>(user);
    c->args_in_right_interp = test::running_interp_id() == c->expected_interp;
    return Py_BuildValue("(l)", c->arg);
}

int take_result(PyObject* result, void* user) {
    auto* c = static_cast<call_ctx*>(user);
    c->result = PyLong_AsLong(result);
    return c->result == -1 && PyErr_Occurred() ? -1 : 0;
}

}  // namespace

TEST(Callback, RunsInItsInterpreterFromForeignThreads) {
    const char* src = "calls = 0\ndef cb(n):\n    global calls\n    calls += 1\n    return n * 2 + probe() * 1000\n";
    std::vector<view> views = {view::main(), test::make_interp("cb_a"), test::make_interp("cb_b")};
    std::vector<callback> cbs;
    for (auto& v : views) cbs.push_back(test::make_callback(v, src, "cb"));
    constexpr int k_threads = 3, k_calls = 500;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < k_calls; ++i) {
                size_t k = size_t(i + t) % views.size();
                call_ctx c{views[k].id(), i};
                int rc = cbs[k].call(build_args, take_result, &c);
                if (rc != PYINTERP_OK || !c.args_in_right_interp || c.result != i * 2 + views[k].id() * 1000)
                    bad++;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(bad.load(), 0);
    long total = 0;
    for (auto& v : views) {
        scoped_enter in(v);
        total += test::eval_long("calls");
    }
    EXPECT_EQ(total, k_threads * k_calls);
    EXPECT_EQ(cbs[1].interpreter().id(), views[1].id());
}

TEST(Callback, ExceptionIsLoggedWithTracebackAndReported) {
    view a = test::make_interp("cb_raise");
    callback cb = test::make_callback(a, "def inner(n):\n    raise ValueError('boom-%d' % n)\n"
                                   "def failing(n):\n    return inner(n)\n", "failing");
    test::log_capture::clear();
    test::on_new_thread([&] {
        call_ctx c{a.id(), 42};
        EXPECT_EQ(cb.call(build_args, nullptr, &c), PYINTERP_ERR_PYTHON);
    });
    EXPECT_TRUE(test::log_capture::contains("Traceback (most recent call last)", PYINTERP_LOG_ERROR));
    EXPECT_TRUE(test::log_capture::contains("ValueError: boom-42", PYINTERP_LOG_ERROR));
    EXPECT_TRUE(test::log_capture::contains("in inner", PYINTERP_LOG_ERROR));
    // The interpreter is fine afterwards and holds no pending exception.
    scoped_enter in(a);
    EXPECT_EQ(PyErr_Occurred(), nullptr);
    EXPECT_EQ(test::eval_long("1 + 1"), 2);
}

TEST(Callback, WithoutAHostSinkExceptionsGoToTheInterpretersUnraisablehook) {
    view a = test::make_interp("cb_unraisable");
    view b = test::make_interp("cb_unraisable_other");
    const char* record =
        "import sys\n"
        "seen = []\n"
        "sys.unraisablehook = lambda u: seen.append((u.exc_type.__name__, str(u.exc_value), u.err_msg,\n"
        "                                            u.object, u.exc_traceback is not None))\n";
    for (const view* v : {&a, &b}) {
        scoped_enter in(*v);
        ASSERT_TRUE(test::exec(record));
    }
    callback cb = test::make_callback(a, "def failing(n):\n    raise ValueError('unraisable-%d' % n)\n", "failing");
    pyinterp_set_log_callback(nullptr, PYINTERP_LOG_DEBUG, nullptr);  // no host sink
    int rc = -100;
    test::on_new_thread([&] {
        call_ctx c{a.id(), 7};
        rc = cb.call(build_args, nullptr, &c);
    });
    test::log_capture::install();
    EXPECT_EQ(rc, PYINTERP_ERR_PYTHON);
    {
        scoped_enter in(a);
        ASSERT_TRUE(in);
        EXPECT_EQ(PyErr_Occurred(), nullptr);
        EXPECT_EQ(test::eval_long("len(seen)"), 1);
        EXPECT_EQ(test::eval_str("seen[0][0], seen[0][1], seen[0][4]"), "('ValueError', 'unraisable-7', True)");
        // CPython's wording: "Exception ignored in ..." naming the callable
        // (3.11, 3.12: as the hook's object; 3.13: in the message).
        EXPECT_EQ(test::eval_str("seen[0][2].startswith('Exception ignored in pyinterp callback')"), "True");
        EXPECT_EQ(test::eval_str("'failing' in seen[0][2] + repr(seen[0][3])"), "True");
    }
    {
        scoped_enter in(b);
        EXPECT_EQ(test::eval_long("len(seen)"), 0);
    }
    // With a host sink again, the sink gets it and the hook does not.
    test::log_capture::clear();
    test::on_new_thread([&] {
        call_ctx c{a.id(), 8};
        EXPECT_EQ(cb.call(build_args, nullptr, &c), PYINTERP_ERR_PYTHON);
    });
    EXPECT_TRUE(test::log_capture::contains("ValueError: unraisable-8", PYINTERP_LOG_ERROR));
    scoped_enter in(a);
    EXPECT_EQ(test::eval_long("len(seen)"), 1);
}

TEST(Callback, BadArgumentsAndResultsAreReported) {
    view a = test::make_interp("cb_args");
    callback cb = test::make_callback(a, "def f(*a):\n    return len(a)\n", "f");
    EXPECT_EQ(cb.call(), PYINTERP_OK);  // no make_args: no arguments
    auto raising = [](void*) -> PyObject* {
        PyErr_SetString(PyExc_RuntimeError, "args-failed");
        return nullptr;
    };
    auto not_tuple = [](void*) -> PyObject* { return PyLong_FromLong(1); };
    auto bad_result = [](PyObject*, void*) -> int {
        PyErr_SetString(PyExc_KeyError, "result-rejected");
        return -1;
    };
    test::log_capture::clear();
    EXPECT_EQ(cb.call(raising), PYINTERP_ERR_PYTHON);
    EXPECT_TRUE(test::log_capture::contains("RuntimeError: args-failed"));
    EXPECT_EQ(cb.call(not_tuple), PYINTERP_ERR_PYTHON);
    EXPECT_TRUE(test::log_capture::contains("make_args must return a tuple"));
    EXPECT_EQ(cb.call(nullptr, bad_result), PYINTERP_ERR_PYTHON);
    EXPECT_TRUE(test::log_capture::contains("result-rejected"));
}

TEST(Callback, CreationNeedsAnAttachedThreadAndACallable) {
    pyinterp_callback* cb = nullptr;
    EXPECT_EQ(pyinterp_callback_new(Py_None, &cb), PYINTERP_ERR_STATE);
    view a = test::make_interp("cb_new");
    scoped_enter in(a);
    EXPECT_EQ(pyinterp_callback_new(Py_None, &cb), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_callback_new(nullptr, &cb), PYINTERP_ERR_INVALID);
    EXPECT_EQ(cb, nullptr);
    EXPECT_EQ(pyinterp_callback_call(nullptr, nullptr, nullptr, nullptr), PYINTERP_ERR_INVALID);
}

TEST(Callback, FreeFromAnotherThreadReleasesTheReferenceInItsInterpreter) {
    view a = test::make_interp("cb_free");
    callback cb = make_noting_callback(a);
    test::on_new_thread([&] { cb = callback(); });  // frees it on a foreign thread
    std::lock_guard<std::mutex> lk(notes_mu);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0], a.id());
}

TEST(Callback, TeardownReleasesReferencesAndLaterCallsAreRefused) {
    view a = test::make_interp("cb_end");
    callback cb = make_noting_callback(a);
    ASSERT_EQ(a.end(), PYINTERP_OK);
    {
        std::lock_guard<std::mutex> lk(notes_mu);
        ASSERT_EQ(notes.size(), 1u);  // released during teardown, inside `a`
        EXPECT_EQ(notes[0], a.id());
    }
    EXPECT_EQ(cb.call(), PYINTERP_ERR_GONE);
    test::on_new_thread([&] { cb = callback(); });  // nothing left to release
}
