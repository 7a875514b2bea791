// Script loading and the application cache (mod/app/app_cache.h), in
// subinterpreters of the test binary's runtime, without httpd.
#include "app/app_cache.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "app/interp_state.h"
#include "app_support.h"
#include "pyinterp/py/ref.h"

namespace {

using pyinterp::py::ref;

// Enters a fresh subinterpreter for one test and gives its interp_state.
class AppCache : public ::testing::Test {
protected:
    void SetUp() override {
        apptest::clear_log();
        const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
        view_ = pyinterp::view::create(info->name());
        ASSERT_TRUE(view_);
        in_ = std::make_unique<pyinterp::scoped_enter>(view_);
        ASSERT_TRUE(*in_);
        module_ = app::private_module();
        ASSERT_TRUE(module_);
        st_ = app::state_of(module_.get());
    }
    void TearDown() override {
        module_.reset();
        in_.reset();
        EXPECT_EQ(view_.end(), PYINTERP_OK);
    }

    app::request_target target(const std::string& script) {
        script_ = script;
        app::request_target t;
        t.script = script_.c_str();
        t.group = "g";
        return t;
    }

    pyinterp::view view_;
    std::unique_ptr<pyinterp::scoped_enter> in_;
    ref module_;
    app::interp_state* st_ = nullptr;
    std::string script_;
};

constexpr const char* k_counting_app =
    "import builtins\n"
    "builtins.loads = getattr(builtins, 'loads', 0) + 1\n"
    "def application(environ, start_response):\n"
    "    return [b'v1']\n";

TEST_F(AppCache, LoadsAScriptOnceAndReturnsItsCallable) {
    app::request_target t = target(apptest::write_script("app.wsgi", k_counting_app));
    ref a = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(a) << apptest::take_error();
    ref b = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(b) << apptest::take_error();
    EXPECT_EQ(a.get(), b.get());
    EXPECT_EQ(apptest::eval_str("__import__('builtins').loads"), "1");
    EXPECT_EQ(apptest::count("PYI0201: loaded script '" + script_ + "' in application group 'g'"), 1);
    // The module is in sys.modules under its stable name and in the cache.
    EXPECT_EQ(apptest::eval_str("len([m for m in __import__('sys').modules if m.startswith('_pyinterp_script_')])"),
              "1");
    EXPECT_EQ(PyDict_Size(st_->apps), 1);
}

TEST_F(AppCache, ReloadsAScriptWhoseFileChanged) {
    app::request_target t = target(apptest::write_script("app.wsgi", k_counting_app));
    ref a = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(a) << apptest::take_error();
    std::ofstream(script_) << k_counting_app << "# a longer file\n";
    ref b = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(b) << apptest::take_error();
    EXPECT_NE(a.get(), b.get());
    EXPECT_EQ(apptest::eval_str("__import__('builtins').loads"), "2");
    EXPECT_EQ(apptest::count("PYI0201: reloaded script"), 1);
}

TEST_F(AppCache, TheHostsStampIsWhatTheCacheComparesWith) {
    app::request_target t = target(apptest::write_script("app.wsgi", k_counting_app));
    ref a = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(a) << apptest::take_error();
    // The file changes, but the host says it is the version loaded: no stat,
    // no reload.
    PyObject* entry = PyDict_GetItemString(st_->apps, script_.c_str());
    ASSERT_NE(entry, nullptr);
    t.has_stamp = true;
    t.stamp.mtime_us = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1));
    t.stamp.size = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 2));
    std::ofstream(script_) << k_counting_app << "# changed on disk\n";
    ref b = app::load_application(st_, t, apptest::log_sink());
    EXPECT_EQ(a.get(), b.get());
    // Without the stamp the change is seen.
    t.has_stamp = false;
    ref c = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(c) << apptest::take_error();
    EXPECT_NE(a.get(), c.get());
}

TEST_F(AppCache, WithoutReloadingAChangedFileIsNotReadAgain) {
    app::request_target t = target(apptest::write_script("app.wsgi", k_counting_app));
    t.script_reloading = false;
    ref a = app::load_application(st_, t, apptest::log_sink());
    std::ofstream(script_) << k_counting_app << "# changed\n";
    ref b = app::load_application(st_, t, apptest::log_sink());
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a.get(), b.get());
}

TEST_F(AppCache, AMissingCallableIsNamedWithItsScript) {
    app::request_target t = target(apptest::write_script("app.wsgi", k_counting_app));
    t.callable = "app";
    EXPECT_FALSE(app::load_application(st_, t, apptest::log_sink()));
    std::string error = apptest::take_error();
    EXPECT_NE(error.find("AttributeError: script '" + script_ + "' defines no 'app'"), std::string::npos) << error;
}

TEST_F(AppCache, AScriptThatRaisesLeavesNothingBehind) {
    app::request_target t = target(apptest::write_script("broken.wsgi", "raise RuntimeError('broken at import')\n"));
    EXPECT_FALSE(app::load_application(st_, t, apptest::log_sink()));
    EXPECT_EQ(apptest::take_error(), "RuntimeError: broken at import");
    EXPECT_EQ(PyDict_Size(st_->apps), 0);
    EXPECT_EQ(apptest::eval_str("len([m for m in __import__('sys').modules if m.startswith('_pyinterp_script_')])"),
              "0");
    EXPECT_EQ(apptest::count("PYI0201"), 0);
}

TEST_F(AppCache, AMissingFileIsAnOSError) {
    app::request_target t = target("/nonexistent/pyinterp/app.wsgi");
    EXPECT_FALSE(app::load_application(st_, t, apptest::log_sink()));
    EXPECT_NE(apptest::take_error().find("No such file"), std::string::npos);
}

}  // namespace
