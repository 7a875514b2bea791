// The request path's str cache (mod/app/str_cache.h), in the main
// interpreter of the test binary's runtime.
#include "app/str_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "app_support.h"

using pyinterp::app::str_cache;

namespace {

class StrCache : public ::testing::Test {
protected:
    void SetUp() override {
        in_ = std::make_unique<pyinterp::scoped_enter>(pyinterp::view::main());
        ASSERT_TRUE(*in_);
    }
    void TearDown() override { in_.reset(); }

private:
    std::unique_ptr<pyinterp::scoped_enter> in_;
};

// The str's text as UTF-8.
std::string text(PyObject* s) {
    const char* u = PyUnicode_AsUTF8(s);
    return u ? u : "<error>";
}

TEST_F(StrCache, SameBytesGiveTheSameObjectWithItsHashComputed) {
    str_cache c(str_cache::latin1);
    PyObject* a = c.get("HTTP_HOST", 9);
    PyObject* b = c.get("HTTP_HOST", 9);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a, b);
    EXPECT_EQ(text(a), "HTTP_HOST");
    EXPECT_NE(reinterpret_cast<PyASCIIObject*>(a)->hash, -1);
    // Not a prefix match, not a match of a longer key.
    PyObject* shorter = c.get("HTTP_HOS", 8);
    PyObject* longer = c.get("HTTP_HOST_", 10);
    EXPECT_NE(shorter, a);
    EXPECT_NE(longer, a);
    EXPECT_EQ(text(shorter), "HTTP_HOS");
    EXPECT_EQ(text(longer), "HTTP_HOST_");
    EXPECT_EQ(c.size(), 3u);
    // The cache holds its own reference: the strs outlive ours.
    Py_ssize_t refs = Py_REFCNT(a);
    Py_DECREF(b);
    EXPECT_EQ(Py_REFCNT(a), refs - 1);
    Py_DECREF(a);
    Py_DECREF(shorter);
    Py_DECREF(longer);
}

TEST_F(StrCache, DecodesLatin1OrTheFileSystemEncoding) {
    str_cache latin(str_cache::latin1), fs(str_cache::fs);
    const char bytes[] = "caf\xc3\xa9";  // "café" in UTF-8
    PyObject* l = latin.get(bytes, 5);
    PyObject* f = fs.get(bytes, 5);
    ASSERT_NE(l, nullptr);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(PyUnicode_GET_LENGTH(l), 5);  // one character per byte
    EXPECT_EQ(PyUnicode_GET_LENGTH(f), 4);
    EXPECT_EQ(text(f), "caf\xc3\xa9");
    // Keys that differ only after the first word, and empty ones.
    PyObject* e1 = latin.get("", 0);
    PyObject* e2 = latin.get("", 0);
    EXPECT_EQ(e1, e2);
    PyObject* k1 = latin.get("SERVER_SOFTWARE", 15);
    PyObject* k2 = latin.get("SERVER_SIGNATURE", 16);
    EXPECT_EQ(text(k1), "SERVER_SOFTWARE");
    EXPECT_EQ(text(k2), "SERVER_SIGNATURE");
    for (PyObject* o : {l, f, e1, e2, k1, k2}) Py_DECREF(o);
}

TEST_F(StrCache, IsBoundedAndStillCorrectWhenFull) {
    str_cache c(str_cache::latin1);
    std::vector<PyObject*> kept;
    for (size_t i = 0; i < str_cache::k_max_entries; ++i) {
        std::string k = "HTTP_X_" + std::to_string(i);
        kept.push_back(c.get(k.data(), k.size()));
        ASSERT_NE(kept.back(), nullptr);
    }
    EXPECT_EQ(c.size(), str_cache::k_max_entries);
    // Full: a new key is made per call and not kept, and still right.
    PyObject* x1 = c.get("HTTP_X_NEW", 10);
    PyObject* x2 = c.get("HTTP_X_NEW", 10);
    EXPECT_NE(x1, x2);
    EXPECT_EQ(text(x1), "HTTP_X_NEW");
    EXPECT_EQ(c.size(), str_cache::k_max_entries);
    // Every kept key is still found.
    for (size_t i = 0; i < kept.size(); ++i) {
        std::string k = "HTTP_X_" + std::to_string(i);
        PyObject* again = c.get(k.data(), k.size());
        EXPECT_EQ(again, kept[i]) << k;
        Py_XDECREF(again);
    }
    c.clear();
    EXPECT_EQ(c.size(), 0u);
    for (PyObject* o : kept) EXPECT_EQ(Py_REFCNT(o), 1);  // only ours left
    for (PyObject* o : kept) Py_DECREF(o);
    Py_DECREF(x1);
    Py_DECREF(x2);
}

}  // namespace
