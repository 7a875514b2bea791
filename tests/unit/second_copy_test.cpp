// A host that links the library but does not register its `pyinterp`
// module, while pyinterp's extension module is on sys.path: importing it
// must fail with an ImportError that says what to do, in every interpreter
// the host created, instead of loading a second copy of the library that
// knows none of them.
#include <Python.h>
#include <gtest/gtest.h>

#include <string>

#include "pyinterp/dispatch.hpp"

using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

std::string g_logged;
void on_log(int, const char* message, void*) {
    g_logged += message;
    g_logged += '\n';
}

// `import pyinterp` in the current interpreter; the exception's type name
// and text, or "imported".
std::string import_pyinterp() {
    PyObject* sys_path = PySys_GetObject("path");  // borrowed
    PyObject* dir = PyUnicode_FromString(PYINTERP_PYTHON_MODULE_DIR);
    EXPECT_EQ(PyList_Insert(sys_path, 0, dir), 0);
    Py_DECREF(dir);
    PyObject* mod = PyImport_ImportModule("pyinterp");
    if (mod != nullptr) {
        Py_DECREF(mod);
        return "imported";
    }
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    PyObject* s = PyObject_Str(v);
    std::string out = std::string(reinterpret_cast<PyTypeObject*>(t)->tp_name) + ": " + PyUnicode_AsUTF8(s);
    Py_XDECREF(s);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return out;
}

void expect_refused(const std::string& what) {
    EXPECT_EQ(what.rfind("ImportError: pyinterp: this interpreter is managed by another copy of the pyinterp library", 0),
              0u)
        << what;
    EXPECT_NE(what.find(PYINTERP_PYTHON_MODULE_DIR "/pyinterp."), std::string::npos) << what;
    EXPECT_NE(what.find("PyImport_AppendInittab(\"pyinterp\", PyInit_pyinterp)"), std::string::npos) << what;
}

}  // namespace

TEST(SecondCopy, ImportingTheExtensionModuleIsRefusedInEveryInterpreter) {
    int rc = -100;
    view sub = view::create("second_copy_sub", PYINTERP_GIL_SHARED, &rc);
    ASSERT_EQ(rc, PYINTERP_OK);
    for (const view& v : {view::main(), sub}) {
        scoped_enter in(v);
        ASSERT_TRUE(in);
        expect_refused(import_pyinterp());
        // Nothing was left behind: a second attempt says the same.
        expect_refused(import_pyinterp());
        // This copy still knows the interpreter.
        pyinterp_view* cur = nullptr;
        EXPECT_EQ(pyinterp_view_current(&cur), PYINTERP_OK);
        EXPECT_EQ(pyinterp_view_id(cur), v.id());
        pyinterp_view_free(cur);
    }
    EXPECT_EQ(sub.end(), PYINTERP_OK);
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    pyinterp_set_log_callback(on_log, PYINTERP_LOG_WARN, nullptr);
    pyinterp_config cfg{};
    cfg.no_site = 1;
    // No PyImport_AppendInittab("pyinterp", PyInit_pyinterp): the mistake.
    if (pyinterp_initialize(&cfg) != PYINTERP_OK) return 2;
    int rc = RUN_ALL_TESTS();
    if (pyinterp_finalize() != PYINTERP_OK) rc = 1;
    if (!g_logged.empty()) {
        std::fprintf(stderr, "unexpected log messages:\n%s", g_logged.c_str());
        rc = 1;
    }
    return rc;
}
