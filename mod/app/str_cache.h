// A per-interpreter cache of the str objects the request path would
// otherwise make from the same C strings on every request: WSGI environ keys,
// script paths, callable names.
//
// Building an environ with PyDict_SetItemString makes, interns, hashes and
// (at the end of the request) frees and un-interns a str for every key, on
// every request: a third of the request path's instructions before this cache
// (docs/benchmarks.md).  The cache keeps one str per distinct C string
// instead, its hash computed, so a key costs a lookup here and nothing in
// CPython.
//
// Environ keys come partly from the client (HTTP_* names), so the cache is
// bounded: once full, further new strings are made per call and not kept.
// A cache lives in the private module's state of one interpreter and is used
// with that interpreter's GIL held, so it needs no lock of its own.
#pragma once

#include <Python.h>

#include <cstddef>
#include <string>

namespace pyinterp::app {

class str_cache {
public:
    // How C bytes become a str: new reference, or nullptr with an exception.
    using decoder = PyObject* (*)(const char* s, Py_ssize_t n);

    explicit str_cache(decoder decode) noexcept : decode_(decode) {}
    str_cache(const str_cache&) = delete;
    str_cache& operator=(const str_cache&) = delete;
    ~str_cache();  // GIL of the owning interpreter held

    // The str for the bytes s[0..n): a new reference, or nullptr with an
    // exception set.
    PyObject* get(const char* s, size_t n) noexcept;

    // Drops every entry (GIL held).
    void clear() noexcept;

    size_t size() const noexcept { return count_; }

    // At most this many entries are kept.
    static constexpr size_t k_max_entries = 256;

    // The decoders in use: PEP 3333's latin-1 for the environ, the file
    // system encoding for paths and names from the configuration.
    static PyObject* latin1(const char* s, Py_ssize_t n) noexcept;
    static PyObject* fs(const char* s, Py_ssize_t n) noexcept;

private:
    static constexpr size_t k_slots = 512;  // power of two, twice the entries
    struct slot {
        PyObject* str = nullptr;
        size_t hash = 0;
        std::string bytes;  // what `str` was decoded from
    };
    decoder decode_;
    slot slots_[k_slots];
    size_t count_ = 0;
};

}  // namespace pyinterp::app
