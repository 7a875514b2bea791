// Interpreter registry, views, status strings and the log sink.
#include <set>
#include <string>
#include <thread>

#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;

TEST(Registry, CreateFindAndEnd) {
    view a = test::make_interp("alpha");
    ASSERT_TRUE(a);
    EXPECT_STREQ(a.name(), "alpha");
    EXPECT_GT(a.id(), 0);
    EXPECT_TRUE(a.live());
    EXPECT_FALSE(a.own_gil());

    int rc = -100;
    view found = view::find("alpha", &rc);
    ASSERT_EQ(rc, PYINTERP_OK);
    EXPECT_EQ(found.id(), a.id());

    {
        scoped_enter in(a);
        ASSERT_TRUE(in);
        EXPECT_EQ(test::running_interp_id(), a.id());
        EXPECT_EQ(test::eval_str("sys.interp_name"), "alpha");
    }
    EXPECT_EQ(a.end(), PYINTERP_OK);
    EXPECT_FALSE(a.live());
    EXPECT_FALSE(found.live());
    view::find("alpha", &rc);
    EXPECT_EQ(rc, PYINTERP_ERR_NOT_FOUND);
}

// pyinterp_config::python_path reaches the main interpreter and every
// interpreter created afterwards, in its order, in front of sys.path.
TEST(Registry, PythonPathIsInFrontOfSysPathInEveryInterpreter) {
    const std::string want = "['/nonexistent/pyinterp-path-a', '/nonexistent/pyinterp-path-b']";
    {
        scoped_enter in(view::main());
        ASSERT_TRUE(in);
        ASSERT_TRUE(test::exec("import sys"));
        EXPECT_EQ(test::eval_str("repr(sys.path[:2])"), want);
    }
    view a = test::make_interp("with_path");
    {
        scoped_enter in(a);
        ASSERT_TRUE(in);
        ASSERT_TRUE(test::exec("import sys"));
        EXPECT_EQ(test::eval_str("repr(sys.path[:2])"), want);
        EXPECT_EQ(test::eval_long("sys.path.count('/nonexistent/pyinterp-path-a')"), 1);
    }
    EXPECT_EQ(a.end(), PYINTERP_OK);
}

TEST(Registry, InterpretersAreIsolated) {
    view a = test::make_interp("iso_a");
    view b = test::make_interp("iso_b");
    {
        scoped_enter in(a);
        ASSERT_TRUE(test::exec("import json\njson.marker = 'a'\nshared = 1"));
    }
    {
        scoped_enter in(b);
        EXPECT_EQ(test::eval_str("'shared' in globals()"), "False");
        EXPECT_EQ(test::eval_str("__import__('json').__dict__.get('marker')"), "None");
    }
    view main = view::main();
    {
        scoped_enter in(main);
        EXPECT_EQ(test::running_interp_id(), 0);
        EXPECT_EQ(test::eval_str("'shared' in globals()"), "False");
    }
}

TEST(Registry, OutlivesTheThreadThatCreatedIt) {
    // The creating thread exits (deleting its thread states); other threads
    // then enter, and another ends it.  CPython 3.11 aborts if the
    // interpreter is ever left without a thread state.
    view a;
    test::on_new_thread([&] {
        a = test::make_interp("orphan");
        pyinterp::scoped_enter in(a);
        EXPECT_TRUE(test::exec("x = 41"));
    });
    test::on_new_thread([&] {
        scoped_enter in(a);
        ASSERT_TRUE(in);
        EXPECT_EQ(test::eval_long("x + 1"), 42);
    });
    EXPECT_EQ(a.end(), PYINTERP_OK);
}

TEST(Registry, RejectsBadNamesAndDuplicates) {
    pyinterp_view* v = nullptr;
    EXPECT_EQ(pyinterp_interp_create(nullptr, nullptr, &v), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_interp_create("", nullptr, &v), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_interp_create("main", nullptr, &v), PYINTERP_ERR_INVALID);
    EXPECT_EQ(pyinterp_interp_create(std::string(256, 'x').c_str(), nullptr, &v), PYINTERP_ERR_INVALID);
    pyinterp_interp_config bad{};
    bad.gil = 7;
    EXPECT_EQ(pyinterp_interp_create("ok", &bad, &v), PYINTERP_ERR_INVALID);
    EXPECT_EQ(v, nullptr);

    view d = test::make_interp("dup");
    int rc = -100;
    view again = view::create("dup", PYINTERP_GIL_SHARED, &rc);
    EXPECT_EQ(rc, PYINTERP_ERR_EXISTS);
    EXPECT_FALSE(again);
    // The name is free again once the interpreter has ended.
    ASSERT_EQ(d.end(), PYINTERP_OK);
    view reborn = view::create("dup", PYINTERP_GIL_SHARED, &rc);
    EXPECT_EQ(rc, PYINTERP_OK);
    EXPECT_NE(reborn.id(), d.id());
}

TEST(Registry, MainCannotBeEndedAndIsFoundByName) {
    view main = view::main();
    ASSERT_TRUE(main);
    EXPECT_STREQ(main.name(), "main");
    EXPECT_EQ(main.id(), 0);
    EXPECT_EQ(main.end(), PYINTERP_ERR_INVALID);
    int rc = -100;
    view byname = view::find("main", &rc);
    EXPECT_EQ(rc, PYINTERP_OK);
    EXPECT_EQ(byname.id(), 0);
}

TEST(Registry, OwnGilMatchesPythonVersion) {
    int rc = -100;
    view own = view::create("own", PYINTERP_GIL_OWN, &rc);
    if (PY_VERSION_HEX < 0x030C0000) {
        EXPECT_EQ(pyinterp_supports_own_gil(), 0);
        EXPECT_EQ(rc, PYINTERP_ERR_UNSUPPORTED);
        EXPECT_FALSE(own);
    } else {
        EXPECT_EQ(pyinterp_supports_own_gil(), 1);
        ASSERT_EQ(rc, PYINTERP_OK);
        EXPECT_TRUE(own.own_gil());
        scoped_enter in(own);
        ASSERT_TRUE(in);
        EXPECT_EQ(test::running_interp_id(), own.id());
    }
}

TEST(Views, CurrentViewFromInsideAndUnmanagedThread) {
    view a = test::make_interp("cur");
    pyinterp_view* v = nullptr;
    EXPECT_EQ(pyinterp_view_current(&v), PYINTERP_ERR_STATE);  // not attached
    {
        scoped_enter in(a);
        ASSERT_EQ(pyinterp_view_current(&v), PYINTERP_OK);
        EXPECT_EQ(pyinterp_view_id(v), a.id());
        pyinterp_view_free(v);
    }
}

TEST(Views, CopiesOutliveTheInterpreterAndReportGone) {
    pyinterp_view* copy = nullptr;
    int64_t id;
    {
        view a = test::make_interp("short");
        id = a.id();
        copy = pyinterp_view_copy(a.get());
        ASSERT_EQ(a.end(), PYINTERP_OK);
    }
    // The original view is freed; the copy still answers, and says gone.
    EXPECT_EQ(pyinterp_view_id(copy), id);
    EXPECT_STREQ(pyinterp_view_name(copy), "short");
    EXPECT_EQ(pyinterp_view_is_live(copy), 0);
    pyinterp_token t;
    EXPECT_EQ(pyinterp_enter(copy, &t), PYINTERP_ERR_GONE);
    pyinterp_guard* g = nullptr;
    EXPECT_EQ(pyinterp_guard_new(copy, &g), PYINTERP_ERR_GONE);
    EXPECT_EQ(pyinterp_interp_end(copy, 0), PYINTERP_ERR_GONE);
    pyinterp_view_free(copy);
    pyinterp_view_free(nullptr);
    pyinterp_guard_free(nullptr);
    pyinterp_callback_free(nullptr);
}

TEST(Views, CopiesAreUsableFromOtherThreads) {
    view a = test::make_interp("shared_view");
    view copy = a;
    int64_t seen = -1;
    test::on_new_thread([&] {
        scoped_enter in(copy);
        ASSERT_TRUE(in);
        seen = test::running_interp_id();
    });
    EXPECT_EQ(seen, a.id());
}

// One cached thread state per thread that entered, until it exits or
// releases them; none once the interpreter ended.
TEST(Views, CountTheThreadStatesCachedForTheirInterpreter) {
    view a = test::make_interp("counted");
    ASSERT_TRUE(a);
    // The creating thread keeps the thread state it created it with.
    EXPECT_EQ(a.thread_states(), 1);
    {
        scoped_enter in(a);
        ASSERT_TRUE(in);
    }
    EXPECT_EQ(a.thread_states(), 1);
    std::thread other([&] {
        {
            scoped_enter in(a);
            EXPECT_TRUE(in);
        }
        EXPECT_EQ(a.thread_states(), 2);
    });
    other.join();  // its thread states are deleted as it exits
    EXPECT_EQ(a.thread_states(), 1);
    EXPECT_EQ(pyinterp_thread_release(), PYINTERP_OK);
    EXPECT_EQ(a.thread_states(), 0);
    {
        scoped_enter in(a);
        ASSERT_TRUE(in);
    }
    EXPECT_EQ(a.end(), PYINTERP_OK);
    EXPECT_EQ(a.thread_states(), 0);
    EXPECT_EQ(pyinterp_view_thread_states(nullptr), 0);
}

TEST(Status, EveryCodeHasItsOwnMessage) {
    std::set<std::string> seen;
    for (int code = PYINTERP_OK; code >= PYINTERP_ERR_CREATE; --code) {
        const char* s = pyinterp_strerror(code);
        ASSERT_NE(s, nullptr);
        EXPECT_TRUE(seen.insert(s).second) << "duplicate message for " << code;
    }
    EXPECT_STREQ(pyinterp_strerror(-999), "unknown pyinterp status");
}

TEST(Log, HostSinkReceivesLibraryMessages) {
    test::log_capture::clear();
    view a = test::make_interp("logged");
    EXPECT_TRUE(test::log_capture::contains("created interpreter 'logged'"));
}

namespace {
PyObject* py_identity(PyObject*, PyObject* arg) {
    return Py_NewRef(arg);
}
PyMethodDef identity_def = {"identity", py_identity, METH_O, nullptr};
}  // namespace

TEST(Views, AnInterpreterTheLibraryDidNotCreateIsNotFoundOnEveryVersion) {
    // Made with Py_NewInterpreter(), as code that manages interpreters of its
    // own would.  On 3.11 the library cannot recognise such a thread state as
    // this thread's by its own bookkeeping (facts: the current thread state
    // is global there); the functions that require a GIL must still answer
    // NOT_FOUND, not STATE.
    view m = view::main();
    scoped_enter in(m);
    ASSERT_TRUE(in);
    PyThreadState* main_ts = PyThreadState_Get();
    PyThreadState* sub = Py_NewInterpreter();
    ASSERT_NE(sub, nullptr);
    ASSERT_EQ(PyThreadState_Get(), sub);
    pyinterp_view* v = nullptr;
    EXPECT_EQ(pyinterp_view_current(&v), PYINTERP_ERR_NOT_FOUND);
    EXPECT_EQ(v, nullptr);
    PyObject* fn = PyCFunction_New(&identity_def, nullptr);
    ASSERT_NE(fn, nullptr);
    pyinterp_callback* cb = nullptr;
    EXPECT_EQ(pyinterp_callback_new(fn, &cb), PYINTERP_ERR_NOT_FOUND);
    EXPECT_EQ(cb, nullptr);
    Py_DECREF(fn);
    // The `pyinterp` module says so too: no group name.
    EXPECT_TRUE(test::exec("import pyinterp\nunmanaged = pyinterp.interpreter()"));
    EXPECT_EQ(test::eval_str("unmanaged[0], unmanaged[2]"), "(None, None)");
    EXPECT_EQ(test::eval_long("unmanaged[1]"), PyInterpreterState_GetID(sub->interp));
    // Portable end (facts §3.5).
    Py_EndInterpreter(sub);
    PyThreadState_Swap(main_ts);
    EXPECT_EQ(pyinterp_view_current(&v), PYINTERP_OK);
    EXPECT_EQ(pyinterp_view_id(v), 0);
    pyinterp_view_free(v);
}
