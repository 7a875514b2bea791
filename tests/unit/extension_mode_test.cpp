// Extension mode: Python is initialised and finalized by someone else (the
// way a C extension imported by `python` sees it); the library attaches to
// the running interpreter and tears itself down from Python's atexit.
#include <Python.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "pyinterp/dispatch.hpp"
#include "support.h"  // header-only parts: this binary has its own main()

using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

int64_t running_interp_id() { return PyInterpreterState_GetID(PyInterpreterState_Get()); }

// The host: initialises Python itself, then loads "the extension" (calls
// pyinterp_initialize with the GIL held, as a module's init would).
PyThreadState* g_host_tstate = nullptr;

}  // namespace

TEST(ExtensionMode, AttachesWithTheGilHeldAndWorksFromForeignThreads) {
    PyEval_RestoreThread(g_host_tstate);
    EXPECT_EQ(pyinterp_initialize(nullptr), PYINTERP_OK);
    EXPECT_EQ(pyinterp_initialize(nullptr), PYINTERP_OK);  // idempotent
    int rc = -100;
    view cur = view::current(&rc);
    ASSERT_EQ(rc, PYINTERP_OK);
    EXPECT_EQ(cur.id(), 0);
    EXPECT_EQ(pyinterp_finalize(), PYINTERP_ERR_STATE);  // not ours to finalize
    g_host_tstate = PyEval_SaveThread();

    view a = view::create("ext_a", PYINTERP_GIL_SHARED, &rc);
    ASSERT_EQ(rc, PYINTERP_OK);
    int64_t seen = -1;
    std::thread t([&] {
        scoped_enter in(a);
        if (in) seen = running_interp_id();
    });
    t.join();
    EXPECT_EQ(seen, a.id());
}

TEST(ExtensionMode, InitializeWithoutTheGilIsRefused) {
    EXPECT_EQ(pyinterp_initialize(nullptr), PYINTERP_ERR_STATE);
}

TEST(ExtensionMode, PythonFinalizationTearsDownThreadsAndInterpreters) {
    PyEval_RestoreThread(g_host_tstate);
    ASSERT_EQ(pyinterp_initialize(nullptr), PYINTERP_OK);
    g_host_tstate = PyEval_SaveThread();
    int rc = -100;
    view a = view::create("ext_fin", PYINTERP_GIL_SHARED, &rc);
    ASSERT_EQ(rc, PYINTERP_OK);
    view m = view::main();

    // A foreign thread holds cached thread states for main and `a` and is
    // still alive when Python finalizes.
    test::latch cached, finalized;
    std::atomic<int> after_enter{-100}, after_main{-100};
    std::thread t([&] {
        { scoped_enter in(m); }
        { scoped_enter in(a); }
        cached.release();
        finalized.wait();
        pyinterp_token tok;
        after_enter = pyinterp_enter(a.get(), &tok);
        after_main = pyinterp_enter(m.get(), &tok);
        // Exits now: its cache must not touch the deleted thread states.
    });
    cached.wait();
    PyEval_RestoreThread(g_host_tstate);
    g_host_tstate = nullptr;
    EXPECT_EQ(Py_FinalizeEx(), 0);
    EXPECT_FALSE(a.live());
    EXPECT_FALSE(m.live());
    finalized.release();
    t.join();
    EXPECT_NE(after_enter.load(), PYINTERP_OK);
    EXPECT_NE(after_main.load(), PYINTERP_OK);
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    PyStatus st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) return 2;
    g_host_tstate = PyEval_SaveThread();
    int rc = RUN_ALL_TESTS();
    if (g_host_tstate != nullptr) {
        PyEval_RestoreThread(g_host_tstate);
        if (Py_FinalizeEx() < 0) rc = 1;
    }
    return rc;
}
