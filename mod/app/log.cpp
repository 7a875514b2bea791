// Logging through an injected sink (see log.h).
#include "log.h"

#include <Python.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "pyinterp/py/exception.h"

namespace pyinterp::app {

void log(const log_sink& sink, level lv, const char* fmt, ...) noexcept {
    if (sink.fn == nullptr) return;
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (size_t(n) < sizeof small) {
        sink.fn(lv, small, sink.user);
        return;
    }
    try {
        std::string big(size_t(n) + 1, '\0');
        va_start(ap, fmt);
        std::vsnprintf(big.data(), big.size(), fmt, ap);
        va_end(ap);
        big.resize(size_t(n));
        sink.fn(lv, big.c_str(), sink.user);
    } catch (...) {
        sink.fn(lv, small, sink.user);  // out of memory: the message cut short
    }
}

void log_exception(const log_sink& sink, const char* what) noexcept {
    py::ref exc = py::take_exception();
    if (!exc) return;
    log(sink, level::error, "%s", what);
    std::string text = py::format_exception(exc.get());
    for (const char* p = text.c_str(); *p;) {
        const char* nl = std::strchr(p, '\n');
        int len = nl != nullptr ? int(nl - p) : int(std::strlen(p));
        log(sink, level::error, "PYI0310: %.*s", len, p);
        p += len + (nl != nullptr ? 1 : 0);
    }
}

}  // namespace pyinterp::app
