// The `pyinterp` module's C API capsule (pyinterp/module.h): complete,
// versioned, and each entry the function of the same name; pyinterp_log and
// pyinterp_set_pyerr, which extensions reach through it.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "pyinterp/module.h"
#include "support.h"

using pyinterp::scoped_enter;
using pyinterp::view;

namespace {

using any_fn = void (*)();

// Every entry of the table, in order, with the function it must hold.
struct entry {
    const char* name;
    any_fn in_table;
    any_fn function;
};

#define PYINTERP_TEST_ENTRY(n) \
    entry { #n, reinterpret_cast<any_fn>(api->n), reinterpret_cast<any_fn>(&pyinterp_##n) }

std::vector<entry> entries_of(const pyinterp_capi* api) {
    return {
        PYINTERP_TEST_ENTRY(strerror),        PYINTERP_TEST_ENTRY(view_current),
        PYINTERP_TEST_ENTRY(view_copy),       PYINTERP_TEST_ENTRY(view_free),
        PYINTERP_TEST_ENTRY(view_name),       PYINTERP_TEST_ENTRY(view_id),
        PYINTERP_TEST_ENTRY(view_is_live),    PYINTERP_TEST_ENTRY(enter),
        PYINTERP_TEST_ENTRY(leave),           PYINTERP_TEST_ENTRY(callback_new),
        PYINTERP_TEST_ENTRY(callback_call),   PYINTERP_TEST_ENTRY(callback_view),
        PYINTERP_TEST_ENTRY(callback_free),   PYINTERP_TEST_ENTRY(loop_default),
        PYINTERP_TEST_ENTRY(loop_call_soon),  PYINTERP_TEST_ENTRY(loop_call_later),
        PYINTERP_TEST_ENTRY(loop_watch_fd),   PYINTERP_TEST_ENTRY(loop_cancel),
        PYINTERP_TEST_ENTRY(loop_handle_state), PYINTERP_TEST_ENTRY(loop_handle_free),
        // version 2
        PYINTERP_TEST_ENTRY(set_pyerr),       PYINTERP_TEST_ENTRY(log),
        PYINTERP_TEST_ENTRY(supports_own_gil), PYINTERP_TEST_ENTRY(interp_create),
        PYINTERP_TEST_ENTRY(interp_find),     PYINTERP_TEST_ENTRY(interp_end),
        PYINTERP_TEST_ENTRY(view_main),       PYINTERP_TEST_ENTRY(view_own_gil),
        PYINTERP_TEST_ENTRY(guard_new),       PYINTERP_TEST_ENTRY(guard_free),
        PYINTERP_TEST_ENTRY(enter_guarded),   PYINTERP_TEST_ENTRY(thread_release),
        PYINTERP_TEST_ENTRY(thread_is_attached), PYINTERP_TEST_ENTRY(loop_new),
        PYINTERP_TEST_ENTRY(loop_stop),       PYINTERP_TEST_ENTRY(loop_free),
        PYINTERP_TEST_ENTRY(loop_threads),    PYINTERP_TEST_ENTRY(view_thread_states),
    };
}

// Functions for the program that embeds Python, deliberately not in the table.
const std::set<std::string> k_host_only = {
    "initialize", "finalize", "set_log_callback", "loop_set_default_threads",
};

// The names (without the pyinterp_ prefix) of the functions a public header
// declares.
std::set<std::string> declared_in(const std::string& header) {
    std::ifstream in(std::string(PYINTERP_INCLUDE_DIR) + "/pyinterp/" + header);
    EXPECT_TRUE(in) << header;
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    std::set<std::string> names;
    static const std::regex decl(R"(PYINTERP_API[^;(]*\bpyinterp_(\w+)\s*\()");
    for (auto it = std::sregex_iterator(s.begin(), s.end(), decl); it != std::sregex_iterator(); ++it)
        names.insert((*it)[1]);
    return names;
}

const pyinterp_capi* import_capi() {
    const pyinterp_capi* api = pyinterp_capi_import();
    if (api == nullptr) {
        PyErr_Print();
        ADD_FAILURE() << "pyinterp_capi_import failed";
    }
    return api;
}

std::vector<std::pair<int, std::string>> g_logged;
void capture(int level, const char* message, void*) {
    g_logged.emplace_back(level, message);
}

}  // namespace

TEST(CApi, EveryEntryIsTheFunctionOfTheSameName) {
    scoped_enter in(view::main());
    ASSERT_TRUE(in);
    const pyinterp_capi* api = import_capi();
    ASSERT_NE(api, nullptr);
    EXPECT_EQ(api->version, PYINTERP_CAPI_VERSION);
    EXPECT_EQ(api->version, 2);
    EXPECT_EQ(api->size, sizeof(pyinterp_capi));
    std::vector<entry> entries = entries_of(api);
    // Every member after the header is listed above (and so checked).
    EXPECT_EQ(sizeof(pyinterp_capi), offsetof(pyinterp_capi, strerror) + entries.size() * sizeof(any_fn));
    for (const entry& e : entries) {
        EXPECT_NE(e.in_table, nullptr) << e.name;
        EXPECT_EQ(e.in_table, e.function) << e.name;
    }
    EXPECT_TRUE(PYINTERP_CAPI_HAS(api, loop_threads));
    EXPECT_TRUE(PYINTERP_CAPI_HAS(api, view_thread_states));
    EXPECT_TRUE(PYINTERP_CAPI_HAS(api, loop_handle_free));
}

TEST(CApi, CarriesEveryPublicFunctionButTheHostOnes) {
    std::set<std::string> in_table;
    scoped_enter in(view::main());
    ASSERT_TRUE(in);
    const pyinterp_capi* api = import_capi();
    ASSERT_NE(api, nullptr);
    for (const entry& e : entries_of(api)) in_table.insert(e.name);
    std::set<std::string> declared = declared_in("dispatch.h");
    std::set<std::string> loop = declared_in("loop.h");
    EXPECT_GE(declared.size(), 29u);  // the regex found them all
    EXPECT_GE(loop.size(), 12u);
    declared.insert(loop.begin(), loop.end());
    for (const std::string& name : declared) {
        if (k_host_only.count(name) != 0) {
            EXPECT_EQ(in_table.count(name), 0u) << "pyinterp_" << name << " is for hosts only";
        } else {
            EXPECT_EQ(in_table.count(name), 1u) << "pyinterp_" << name << " is missing from pyinterp_capi";
        }
    }
    for (const std::string& name : in_table) EXPECT_EQ(declared.count(name), 1u) << name << " is not declared";
}

TEST(CApi, AnOlderTableIsRefusedWithAClearError) {
    // What an extension built against this header sees when the process
    // provides the table of an older pyinterp (version 1).
    scoped_enter in(view::main());
    ASSERT_TRUE(in);
    static pyinterp_capi old_table{};
    old_table.version = 1;
    old_table.size = offsetof(pyinterp_capi, set_pyerr);
    EXPECT_FALSE(PYINTERP_CAPI_HAS(&old_table, set_pyerr));
    EXPECT_TRUE(PYINTERP_CAPI_HAS(&old_table, loop_handle_free));
    ASSERT_TRUE(test::exec("import sys, types, pyinterp\n"
                           "real_pyinterp = sys.modules['pyinterp']\n"
                           "sys.modules['pyinterp'] = fake = types.ModuleType('pyinterp')\n"));
    PyObject* capsule = PyCapsule_New(&old_table, PYINTERP_CAPI_NAME, nullptr);
    ASSERT_NE(capsule, nullptr);
    ASSERT_EQ(PyObject_SetAttrString(test::main_global("fake"), "_C_API", capsule), 0);
    Py_DECREF(capsule);
    EXPECT_EQ(pyinterp_capi_import(), nullptr);
    ASSERT_TRUE(PyErr_ExceptionMatches(PyExc_RuntimeError));
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject* text = v != nullptr ? PyObject_Str(v) : nullptr;
    ASSERT_NE(text, nullptr);
    EXPECT_STREQ(PyUnicode_AsUTF8(text),
                 "pyinterp._C_API is version 1; this module was built for version 2 or newer "
                 "(pyinterp/module.h of a newer pyinterp)");
    Py_DECREF(text);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    ASSERT_TRUE(test::exec("sys.modules['pyinterp'] = real_pyinterp\n"));
    EXPECT_NE(pyinterp_capi_import(), nullptr);
}

TEST(CApi, SetPyerrRaisesTheMatchingException) {
    scoped_enter in(view::main());
    ASSERT_TRUE(in);
    struct expectation {
        int status;
        PyObject* type;
        const char* text;
    } cases[] = {
        {PYINTERP_ERR_GONE, PyExc_RuntimeError, "pyinterp: interpreter is ending or has ended (PYINTERP_ERR_GONE)"},
        {PYINTERP_ERR_NOT_FOUND, PyExc_RuntimeError, "pyinterp: interpreter not found (PYINTERP_ERR_NOT_FOUND)"},
        {PYINTERP_ERR_INVALID, PyExc_ValueError, "pyinterp: invalid argument (PYINTERP_ERR_INVALID)"},
        {PYINTERP_ERR_TIMEOUT, PyExc_TimeoutError, nullptr},
        {PYINTERP_ERR_UNSUPPORTED, PyExc_NotImplementedError, nullptr},
        {PYINTERP_ERR_NOMEM, PyExc_MemoryError, nullptr},
        {PYINTERP_ERR_PYTHON, PyExc_RuntimeError, nullptr},
        {PYINTERP_OK, PyExc_SystemError, nullptr},
        {-1000, PyExc_RuntimeError, "pyinterp: unknown status -1000"},
    };
    for (const expectation& c : cases) {
        EXPECT_EQ(pyinterp_set_pyerr(c.status), nullptr);
        PyObject* raised = PyErr_Occurred();
        ASSERT_NE(raised, nullptr) << c.status;
        EXPECT_TRUE(PyErr_GivenExceptionMatches(raised, c.type)) << c.status;
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        if (c.text != nullptr) {
            PyObject* s = PyObject_Str(v);
            ASSERT_NE(s, nullptr);
            EXPECT_STREQ(PyUnicode_AsUTF8(s), c.text);
            Py_DECREF(s);
        }
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
    }
    // An exception that is already set stays for PYINTERP_ERR_PYTHON.
    PyErr_SetString(PyExc_KeyError, "kept");
    EXPECT_EQ(pyinterp_set_pyerr(PYINTERP_ERR_PYTHON), nullptr);
    EXPECT_TRUE(PyErr_ExceptionMatches(PyExc_KeyError));
    PyErr_Clear();
}

TEST(CApi, LogReachesTheHostSinkUncut) {
    pyinterp_set_log_callback(capture, PYINTERP_LOG_INFO, nullptr);
    std::string longer(5000, 'x');
    pyinterp_log(PYINTERP_LOG_WARN, "ext: %s|%d", longer.c_str(), 42);
    pyinterp_log(PYINTERP_LOG_DEBUG, "ext: below the sink's level");
    {
        scoped_enter in(view::main());
        ASSERT_TRUE(in);
        const pyinterp_capi* api = import_capi();
        ASSERT_NE(api, nullptr);
        api->log(PYINTERP_LOG_ERROR, "ext: through the table, %s", "formatted");
    }
    std::vector<std::pair<int, std::string>> logged = g_logged;
    test::log_capture::install();  // back to the suite's sink
    ASSERT_EQ(logged.size(), 2u);
    EXPECT_EQ(logged[0].first, PYINTERP_LOG_WARN);
    EXPECT_EQ(logged[0].second, "ext: " + longer + "|42");
    EXPECT_EQ(logged[1].first, PYINTERP_LOG_ERROR);
    EXPECT_EQ(logged[1].second, "ext: through the table, formatted");
}
