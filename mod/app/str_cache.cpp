// The str cache (see str_cache.h).  All functions: GIL held.
#include "str_cache.h"

#include <cstdint>
#include <cstring>

namespace pyinterp::app {
namespace {

// A word at a time: the keys are short and this runs ~40 times a request.
size_t hash_bytes(const char* p, size_t n) noexcept {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return static_cast<size_t>(h ^ (h >> 29));
}

}  // namespace

PyObject* str_cache::latin1(const char* s, Py_ssize_t n) noexcept {
    return PyUnicode_DecodeLatin1(s, n, nullptr);
}

PyObject* str_cache::fs(const char* s, Py_ssize_t n) noexcept {
    return PyUnicode_DecodeFSDefaultAndSize(s, n);
}

str_cache::~str_cache() {
    clear();
}

void str_cache::clear() noexcept {
    for (slot& s : slots_) {
        Py_CLEAR(s.str);
        s.hash = 0;
        std::string().swap(s.bytes);
    }
    count_ = 0;
}

PyObject* str_cache::get(const char* s, size_t n) noexcept {
    size_t h = hash_bytes(s, n);
    size_t i = h & (k_slots - 1);
    for (;; i = (i + 1) & (k_slots - 1)) {  // never full: at most half the slots are used
        slot& e = slots_[i];
        if (e.str == nullptr) break;
        if (e.hash == h && e.bytes.size() == n && std::memcmp(e.bytes.data(), s, n) == 0) return Py_NewRef(e.str);
    }
    PyObject* str = decode_(s, static_cast<Py_ssize_t>(n));
    if (str == nullptr || count_ >= k_max_entries) return str;
    if (PyObject_Hash(str) == -1) {  // computed once, kept in the str
        Py_DECREF(str);
        return nullptr;
    }
    try {
        slots_[i].bytes.assign(s, n);
    } catch (...) {
        return str;  // not kept; still correct
    }
    slots_[i].str = Py_NewRef(str);
    slots_[i].hash = h;
    ++count_;
    return str;
}

}  // namespace pyinterp::app
