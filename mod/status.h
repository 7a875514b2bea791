// The status handler: `SetHandler pyinterp-status` in a <Location> the
// operator protects as they like.  It reads every child's counters from
// the shared memory (metrics_shm.h) and answers in three forms of the same
// figures: an HTML page for people (the default), `?format=json` and
// `?format=prometheus`; `?stacks` adds the Python stack of every request in
// flight, per child and interpreter (status_stacks.h).  It never enters an
// interpreter nor waits for a GIL, so it answers while every interpreter is
// busy.  docs/operations.md explains every figure.
#pragma once

#include <httpd.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "app/metrics.h"
#include "status_stacks.h"

namespace pyinterp::mod {

inline constexpr const char* k_status_handler_name = "pyinterp-status";

// The handler (hook_handler calls it for its handler name).
int status_handler(request_rec* r) noexcept;

// ---- the figures every form shows (a copy of the shared memory)

struct interp_figures {
    std::string group;  // "" is %{GLOBAL}
    std::string interpreter, placement, why, state;
    int64_t id = 0;
    int pool_member = 0, pool_size = 1;
    int64_t created_ms = 0, ended_ms = 0;
    uint64_t requests = 0;
    int64_t in_flight = 0;
    uint64_t responses[6] = {};  // [1]..[5]: 1xx..5xx, [0]: none
    uint64_t exceptions = 0;
    uint64_t latency[app::metrics::k_buckets] = {};
    uint64_t latency_sum_ns = 0;
    uint64_t gil_wait[app::metrics::k_buckets] = {};
    uint64_t gil_wait_sum_ns = 0;
    uint64_t cpu_ns = 0, script_loads = 0, script_reloads = 0, routed_away = 0;
    uint32_t thread_states = 0;
    struct point {
        int64_t t_ms;
        uint64_t requests, gil_wait_ns, gil_waits;
    };
    std::vector<point> history;  // oldest first
};

struct child_figures {
    int32_t pid = 0;
    uint32_t generation = 0;
    int64_t started_ms = 0;
    uint64_t rss_bytes = 0, refused = 0, untracked = 0;
    int busy_workers = -1, idle_workers = -1;  // from httpd's scoreboard; -1: not found there
    std::vector<interp_figures> interpreters;
};

struct status_figures {
    int64_t now_ms = 0;
    std::string server;     // ServerName[:port] of the request's server
    std::string mpm;        // event, worker, prefork
    std::string python;     // the embedded Python's version
    int generation = 0;     // the configuration generation now
    bool counting = false;  // the shared memory exists
    int slots = 0;          // interpreter slots per child
    std::vector<child_figures> children;
};

// Sums per application group (shown name) over every child.
struct group_totals {
    uint64_t interpreters = 0;  // live ones
    uint64_t requests = 0, exceptions = 0, responses[6] = {};
    int64_t in_flight = 0;
};
std::map<std::string, group_totals> totals_by_group(const status_figures& f);

// ---- the three forms (status_text.cpp, status_html.cpp)

std::string render_json(const status_figures& f, const std::vector<child_stacks>* stacks);
std::string render_prometheus(const status_figures& f);
std::string render_html(const status_figures& f, const std::vector<child_stacks>* stacks);

// Helpers the forms share.
std::string valid_utf8(const std::string& s);            // invalid bytes become U+FFFD
std::string shown_group_name(const std::string& group);  // "%{GLOBAL}" for ""
// The smallest bucket bound (seconds) under which a fraction `q` of the
// histogram's values lie; -1 without values, +inf above the last bound.
double histogram_quantile(const uint64_t* buckets, double q);

}  // namespace pyinterp::mod
