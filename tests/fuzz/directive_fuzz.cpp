// libFuzzer target: the directive argument parsers (mod/config_parse.h)
// with arbitrary arguments.  The first byte picks the parser; the rest is
// split at '\n' into arguments (NUL ends an argument early, as httpd's
// configuration reader would never pass one).  Besides crashes and
// undefined behaviour (the build adds ASan and UBSan), it checks what a
// successful parse promises: a literal group name is short and free of
// spaces and control characters, %{ENV:VAR} names an identifier, a callable
// is an identifier, a timeout is off or a positive number of milliseconds
// within a day, and an error always has a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "config_parse.h"

using namespace pyinterp::mod;

namespace {

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "directive_fuzz: broken promise: %s\n", what);
        std::abort();
    }
}

void check_group(const std::string& err, const parsed_group& g) {
    if (!err.empty()) return;
    check(g.kind != group_kind::unset, "a parsed group has a kind");
    if (g.kind == group_kind::named) {
        check(!g.value.empty() && g.value.size() <= k_max_group_name, "group name length");
        for (char c : g.value)
            check(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f && c != ' ', "group name characters");
    }
    if (g.kind == group_kind::env) check(is_identifier(g.value.c_str()), "%{ENV:VAR} names an identifier");
}

void check_timeout(const std::string& err, int ms) {
    if (err.empty()) check(ms >= 0 && ms <= int(k_max_request_timeout_s * 1000), "timeout range");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::vector<std::string> args;
    std::string cur;
    for (size_t i = 1; i < size; ++i) {
        if (data[i] == '\n') {
            args.push_back(cur.c_str());  // up to a NUL
            cur.clear();
        } else {
            cur.push_back(char(data[i]));
        }
    }
    args.push_back(cur.c_str());
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    switch (data[0] % 4) {
        case 0: {
            parsed_group g;
            std::string err = parse_group(argv[0], &g);
            check(err.empty() || err.size() > 5, "an error has a message");
            check_group(err, g);
            break;
        }
        case 1: {
            pyinterp::app::fallback_policy f = pyinterp::app::fallback_policy::unset;
            std::string err = parse_fallback(argv[0], &f);
            check(err.empty() == (f != pyinterp::app::fallback_policy::unset), "fallback set iff accepted");
            break;
        }
        case 2: {
            int ms = -1;
            std::string err = parse_timeout(argv[0], &ms);
            check(err.empty() == (ms >= 0), "timeout set iff accepted");
            check_timeout(err, ms);
            break;
        }
        default: {
            parsed_options o;
            unsigned accepted = data[0] / 4 % 4;
            std::string err = parse_options(int(argv.size()), argv.data(), 0, accepted, &o);
            if (!err.empty()) break;
            if (o.group.kind != group_kind::unset) check_group(err, o.group);
            if (o.has_callable) check(is_identifier(o.callable.c_str()), "callable is an identifier");
            check((accepted & k_option_fallback) != 0 || o.fallback == pyinterp::app::fallback_policy::unset,
                  "subinterpreter-fallback only where accepted");
            check((accepted & k_option_request_timeout) != 0 || o.request_timeout_ms == -1,
                  "request-timeout only where accepted");
            if (o.request_timeout_ms != -1) check_timeout(err, o.request_timeout_ms);
            for (const char* a : argv) check(std::strchr(a, '=') != nullptr, "every accepted option is key=value");
            break;
        }
    }
    return 0;
}
