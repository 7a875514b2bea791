// Shared pieces of the application layer's unit tests (see app_support.h).
#include "app_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "app/interp_state.h"
#include "pyinterp/module.h"
#include "pyinterp/py/exception.h"

namespace apptest {
namespace {

std::mutex g_mu;
std::vector<std::string>* g_messages = new std::vector<std::string>;  // outlives every thread

void keep(app::level, const char* message, void*) noexcept {
    std::lock_guard<std::mutex> lk(g_mu);
    g_messages->emplace_back(message);
}

// One runtime per test binary, set up as the httpd module does: the private
// module registered, `import pyinterp` available, the fixture extension
// modules reachable through python_path in every interpreter.
class python_environment : public ::testing::Environment {
public:
    void SetUp() override {
        ASSERT_TRUE(app::register_private_module(nullptr));
        ASSERT_EQ(PyImport_AppendInittab("pyinterp", PyInit_pyinterp), 0);
        pyinterp_config cfg{};
        cfg.no_site = 1;
        cfg.python_path = FIXTURE_MODULE_DIR;
        ASSERT_EQ(pyinterp_initialize(&cfg), PYINTERP_OK);
    }
    void TearDown() override { EXPECT_EQ(pyinterp_finalize(), PYINTERP_OK); }
};

const auto* const env = ::testing::AddGlobalTestEnvironment(new python_environment);

}  // namespace

app::log_sink log_sink() noexcept {
    return {keep, nullptr};
}

std::vector<std::string> messages() {
    std::lock_guard<std::mutex> lk(g_mu);
    return *g_messages;
}

int count(const std::string& needle) {
    int n = 0;
    for (const std::string& m : messages()) n += m.find(needle) != std::string::npos ? 1 : 0;
    return n;
}

void clear_log() {
    std::lock_guard<std::mutex> lk(g_mu);
    g_messages->clear();
}

std::string write_script(const std::string& name, const std::string& text) {
    char tmpl[] = "/tmp/pyinterp-app-test-XXXXXX";
    const char* dir = mkdtemp(tmpl);
    if (dir == nullptr) return "";
    std::string path = std::string(dir) + "/" + name;
    std::ofstream(path) << text;
    return path;
}

std::string take_error() {
    pyinterp::py::ref exc = pyinterp::py::take_exception();
    if (!exc) return "";
    pyinterp::py::ref s = pyinterp::py::ref::steal(PyObject_Str(exc.get()));
    const char* text = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    std::string out = std::string(Py_TYPE(exc.get())->tp_name) + ": " + (text != nullptr ? text : "?");
    PyErr_Clear();
    return out;
}

bool call_application(PyObject* callable, std::string* body, std::string* error) {
    namespace py = pyinterp::py;
    py::ref env = py::ref::steal(PyDict_New());
    py::ref result = py::ref::steal(PyObject_CallFunctionObjArgs(callable, env.get(), Py_None, nullptr));
    py::ref empty = py::ref::steal(PyBytes_FromString(""));
    py::ref joined = py::ref::steal(result ? _PyBytes_Join(empty.get(), result.get()) : nullptr);
    if (!joined) {
        *error = take_error();
        return false;
    }
    *body = PyBytes_AS_STRING(joined.get());
    return true;
}

std::string eval_str(const std::string& expr) {
    PyObject* main = PyImport_AddModule("__main__");  // borrowed
    PyObject* globals = main ? PyModule_GetDict(main) : nullptr;
    pyinterp::py::ref r =
        pyinterp::py::ref::steal(globals ? PyRun_String(expr.c_str(), Py_eval_input, globals, globals) : nullptr);
    pyinterp::py::ref s = pyinterp::py::ref::steal(r ? PyObject_Str(r.get()) : nullptr);
    const char* text = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    if (text == nullptr) {
        PyErr_Clear();
        return "<error>";
    }
    return text;
}

}  // namespace apptest
