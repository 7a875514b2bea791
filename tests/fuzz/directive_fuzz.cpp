// libFuzzer target: the directive argument parsers (mod/config_parse.h)
// with arbitrary arguments.  The first byte picks the parser; the rest is
// split at '\n' into arguments (NUL ends an argument early, as httpd's
// configuration reader would never pass one).  Besides crashes and
// undefined behaviour (the build adds ASan and UBSan), it checks what a
// successful parse promises: a literal group name is short and free of
// spaces and control characters, %{ENV:VAR} names an identifier, a callable
// is an identifier, a timeout is off or a positive number of milliseconds
// within a day, a pool size is within its bounds, options a directive does
// not take stay unset, the placement check refuses what the Python or
// %{GLOBAL} cannot do, and an error always has a message.
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

// What check_placement promises for options that parsed.
void check_placement_rules(const placement_options& p, bool global_group, bool own_gil) {
    std::string err = check_placement(p, global_group, own_gil, "3.11");
    bool any = p.gil != pyinterp::app::gil_mode::unset || p.interpreters != 0;
    if (global_group && any) check(!err.empty(), "%{GLOBAL} takes no placement options");
    // (For %{GLOBAL}, the refusal above comes first and says why.)
    if (!global_group && !own_gil && p.gil == pyinterp::app::gil_mode::own)
        check(err.find("3.11") != std::string::npos, "gil=own without an own GIL names the Python");
    if (p.interpreters > 1 && (!own_gil || p.gil == pyinterp::app::gil_mode::shared))
        check(!err.empty(), "a pool needs an own GIL");
    if (!any) check(err.empty(), "no placement options, nothing to refuse");
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
            // The bits above the parser's: the options the directive takes
            // (the first two as option_flags, then placement, then no
            // application-group=/callable=), whether this Python has an
            // own GIL and whether the group is %{GLOBAL}.
            unsigned bits = data[0] / 4;
            unsigned accepted =
                (bits & 3U) | ((bits & 4U) != 0 ? k_option_placement : 0U) | ((bits & 8U) != 0 ? 0U : k_option_target);
            parsed_options o;
            std::string err = parse_options(int(argv.size()), argv.data(), 0, accepted, &o);
            if (!err.empty()) break;
            if (o.group.kind != group_kind::unset) check_group(err, o.group);
            if (o.has_callable) check(is_identifier(o.callable.c_str()), "callable is an identifier");
            check((accepted & k_option_fallback) != 0 || o.fallback == pyinterp::app::fallback_policy::unset,
                  "subinterpreter-fallback only where accepted");
            check((accepted & k_option_request_timeout) != 0 || o.request_timeout_ms == -1,
                  "request-timeout only where accepted");
            if (o.request_timeout_ms != -1) check_timeout(err, o.request_timeout_ms);
            check((accepted & k_option_target) != 0 || (o.group.kind == group_kind::unset && !o.has_callable),
                  "application-group= and callable= only where accepted");
            check((accepted & k_option_placement) != 0 ||
                      (o.placement.gil == pyinterp::app::gil_mode::unset && o.placement.interpreters == 0),
                  "gil= and interpreters= only where accepted");
            check(o.placement.interpreters == 0 ||
                      (o.placement.interpreters >= 1 && o.placement.interpreters <= pyinterp::app::k_max_interpreters),
                  "pool size range");
            check_placement_rules(o.placement, (bits & 32U) != 0, (bits & 16U) != 0);
            for (const char* a : argv) check(std::strchr(a, '=') != nullptr, "every accepted option is key=value");
            break;
        }
    }
    return 0;
}
