#include "support.h"

#include <cstdlib>
#include <thread>

#include "pyinterp/module.h"

namespace test {
namespace {

std::mutex log_mu;
std::vector<std::pair<int, std::string>>& log_store() {
    static std::vector<std::pair<int, std::string>> v;
    return v;
}

void on_log(int level, const char* message, void*) {
    std::lock_guard<std::mutex> lk(log_mu);
    log_store().emplace_back(level, message);
}

std::string fetch_error() {
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    std::string out = "(unknown)";
    if (PyObject* mod = PyImport_ImportModule("traceback")) {
        if (PyObject* lines = PyObject_CallMethod(mod, "format_exception", "OOO", t, v ? v : Py_None,
                                                  tb ? tb : Py_None)) {
            PyObject* sep = PyUnicode_FromString("");
            PyObject* s = PyUnicode_Join(sep, lines);
            if (s) out = PyUnicode_AsUTF8(s);
            Py_XDECREF(s);
            Py_XDECREF(sep);
            Py_DECREF(lines);
        }
        Py_DECREF(mod);
    }
    PyErr_Clear();
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return out;
}

PyObject* main_dict() {
    PyObject* m = PyImport_AddModule("__main__");  // borrowed
    return m ? PyModule_GetDict(m) : nullptr;
}

PyObject* run(const std::string& src, int mode) {
    PyObject* d = main_dict();
    PyObject* r = d ? PyRun_String(src.c_str(), mode, d, d) : nullptr;
    if (r == nullptr) ADD_FAILURE() << "Python error running:\n" << src << "\n" << fetch_error();
    return r;
}

PyObject* py_probe(PyObject*, PyObject*) {
    return PyLong_FromLongLong(PyInterpreterState_GetID(PyInterpreterState_Get()));
}
PyMethodDef probe_def = {"probe", py_probe, METH_NOARGS, "id of the running interpreter"};

// One runtime per test binary.
class python_environment : public ::testing::Environment {
public:
    void SetUp() override {
        log_capture::install();
        // The `pyinterp` module, importable in every interpreter, as a host
        // such as the httpd module provides it.
        ASSERT_EQ(PyImport_AppendInittab("pyinterp", PyInit_pyinterp), 0);
        pyinterp_config cfg{};
        cfg.no_site = 1;
        cfg.python_path = k_python_path;
        ASSERT_EQ(pyinterp_initialize(&cfg), PYINTERP_OK);
        pyinterp::view main = pyinterp::view::main();
        pyinterp::scoped_enter in(main);
        ASSERT_TRUE(in);
        install_probe();
    }
    void TearDown() override {
        EXPECT_EQ(pyinterp_finalize(), PYINTERP_OK);
        for (auto& [level, msg] : log_capture::messages()) {
            if (level >= PYINTERP_LOG_WARN) std::fprintf(stderr, "[pyinterp log %d] %s\n", level, msg.c_str());
        }
    }
};

const auto* const env = ::testing::AddGlobalTestEnvironment(new python_environment);

}  // namespace

void log_capture::install() {
    pyinterp_set_log_callback(on_log, PYINTERP_LOG_DEBUG, nullptr);
}

bool log_capture::contains(const std::string& needle, int min_level) {
    std::lock_guard<std::mutex> lk(log_mu);
    for (auto& [level, msg] : log_store()) {
        if (level >= min_level && msg.find(needle) != std::string::npos) return true;
    }
    return false;
}

std::vector<std::pair<int, std::string>> log_capture::messages() {
    std::lock_guard<std::mutex> lk(log_mu);
    return log_store();
}

void log_capture::clear() {
    std::lock_guard<std::mutex> lk(log_mu);
    log_store().clear();
}

bool exec(const std::string& code) {
    PyObject* r = run(code, Py_file_input);
    Py_XDECREF(r);
    return r != nullptr;
}

long eval_long(const std::string& expr) {
    PyObject* r = run(expr, Py_eval_input);
    if (r == nullptr) return -1;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) {
        ADD_FAILURE() << "not an int: " << expr << "\n" << fetch_error();
    }
    return v;
}

std::string eval_str(const std::string& expr) {
    PyObject* r = run(expr, Py_eval_input);
    if (r == nullptr) return "<error>";
    PyObject* s = PyObject_Str(r);
    std::string out = s ? PyUnicode_AsUTF8(s) : "<error>";
    Py_XDECREF(s);
    Py_DECREF(r);
    return out;
}

int64_t running_interp_id() {
    return PyInterpreterState_GetID(PyInterpreterState_Get());
}

PyObject* main_global(const char* name) {
    return PyDict_GetItemString(PyModule_GetDict(PyImport_AddModule("__main__")), name);
}

pyinterp::callback make_callback(const pyinterp::view& v, const std::string& src, const char* name) {
    pyinterp::scoped_enter in(v);
    EXPECT_TRUE(in);
    EXPECT_TRUE(exec(src));
    int rc = -100;
    pyinterp::callback cb = pyinterp::callback::create(main_global(name), &rc);
    EXPECT_EQ(rc, PYINTERP_OK);
    return cb;
}

void install_builtin(PyMethodDef* def) {
    PyObject* fn = PyCFunction_New(def, nullptr);
    PyObject* builtins = PyEval_GetBuiltins();  // borrowed
    ASSERT_TRUE(fn != nullptr && builtins != nullptr);
    ASSERT_EQ(PyDict_SetItemString(builtins, def->ml_name, fn), 0);
    Py_DECREF(fn);
}

bool wait_in(const pyinterp::view& v, const std::string& expr, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            pyinterp::scoped_enter in(v);
            if (in && eval_long(expr) != 0) return true;
        }
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

void install_probe() {
    install_builtin(&probe_def);
}

int count_tstates() {
    int n = 0;
    for (PyThreadState* t = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); t; t = PyThreadState_Next(t)) ++n;
    return n;
}

pyinterp::view make_interp(const char* name, pyinterp_gil_mode gil) {
    int rc = -100;
    pyinterp::view v = pyinterp::view::create(name, gil, &rc);
    EXPECT_EQ(rc, PYINTERP_OK) << pyinterp_strerror(rc);
    if (v) {
        pyinterp::scoped_enter in(v);
        EXPECT_TRUE(in);
        install_probe();
        exec("import sys\nsys.interp_name = '" + std::string(name) + "'");
    }
    return v;
}

}  // namespace test
