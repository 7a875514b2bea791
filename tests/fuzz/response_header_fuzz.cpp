// libFuzzer target: start_response's status and header checks
// (mod/wsgi_validate.h) over arbitrary strings.  The input is read as
// UTF-8 (an invalid byte stands for itself, as latin-1), so code points
// beyond latin-1 occur too; the first two bytes give the lengths of the
// status and of the header name, the rest is the header value.  What an
// accepted status or header promises is checked on the bytes httpd would
// write: a single line, no NUL, "NNN reason" for the status, a name that
// ends at its colon, and a Content-Length that is a number an apr_off_t
// holds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "wsgi_validate.h"

namespace v = pyinterp::mod::wsgi_validate;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "response_header_fuzz: broken promise: %s\n", what);
        std::abort();
    }
}

// Decodes UTF-8 leniently: a byte that does not start a valid sequence is
// taken as the latin-1 character it is.
std::u32string decode(const uint8_t* p, size_t n) {
    std::u32string out;
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t len = b >= 0xf0 && b < 0xf8 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
        char32_t c = len == 4 ? b & 0x07 : len == 3 ? b & 0x0f : len == 2 ? b & 0x1f : b;
        bool ok = len > 1 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (p[i + k] & 0xc0) == 0x80;
            c = (c << 6) | (p[i + k] & 0x3f);
        }
        if (ok) {
            out.push_back(c);
            i += len;
        } else {
            out.push_back(b);
            ++i;
        }
    }
    return out;
}

// What httpd would write: the code points as latin-1 bytes (the checks let
// nothing else through).
std::string wire(const std::u32string& s) {
    std::string out;
    for (char32_t c : s) {
        check(c <= 0xff, "only latin-1 reaches the wire");
        out.push_back(char(c));
    }
    return out;
}

auto at_of(const std::u32string& s) {
    return [&s](size_t i) { return s[i]; };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    size_t status_len = data[0], name_len = data[1] % 64;
    const uint8_t* rest = data + 2;
    size_t left = size - 2;
    status_len = status_len < left ? status_len : left;
    std::u32string status = decode(rest, status_len);
    rest += status_len;
    left -= status_len;
    name_len = name_len < left ? name_len : left;
    std::u32string name = decode(rest, name_len);
    std::u32string value = decode(rest + name_len, left - name_len);

    v::status_check sc = v::check_status(status.size(), at_of(status));
    if (sc != v::status_check::malformed) {
        std::string line = "HTTP/1.1 " + wire(status) + "\r\n";
        check(line.find_first_of(std::string("\r\n\0", 3)) == line.size() - 2, "a status is one line without NUL");
        check(status[3] == ' ' && status.size() >= 5, "NNN reason");
        for (int i = 0; i < 3; ++i) check(status[i] >= '0' && status[i] <= '9', "three digits");
        check((sc == v::status_check::informational) == (status[0] < '2'), "1xx and 0xx are informational");
    }
    bool name_ok = v::valid_header_name(name.size(), at_of(name));
    bool value_ok = v::valid_header_value(value.size(), at_of(value));
    if (name_ok && value_ok) {
        std::string n = wire(name);
        std::string line = n + ": " + wire(value) + "\r\n";
        check(line.find_first_of(std::string("\r\n\0", 3)) == line.size() - 2, "a header is one line without NUL");
        check(line.find(':') == n.size(), "the name ends at the colon");
        check(n.find_first_of(" \t()<>@,;:\\\"/[]?={}") == std::string::npos, "no separator in a name");
        if (v::valid_content_length(value.size(), at_of(value))) {
            char* end = nullptr;
            std::string digits = wire(value);
            long long cl = std::strtoll(digits.c_str(), &end, 10);
            check(*end == '\0' && cl >= 0 && digits.size() <= 18, "Content-Length is a number an apr_off_t holds");
        }
        (void)v::is_hop_by_hop(n.c_str());
    }
    return 0;
}
