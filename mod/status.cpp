// The status handler (see status.h): reads the counters' shared memory and
// httpd's scoreboard, never Python.
#include <Python.h>  // Py_GetVersion only: a static string, no GIL involved

#include "status.h"

#include <ap_mpm.h>
#include <apr_strings.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <scoreboard.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "metrics_shm.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

namespace metrics = app::metrics;

// How long ?stacks waits for the children's watchdogs (they answer on
// their next tick, a tenth of a second).
constexpr int k_stacks_timeout_ms = 2000;

std::string fixed_string(const char* s, size_t size) {
    return std::string(s, strnlen(s, size));
}

template <size_t N>
void copy_histogram(const metrics::histogram& h, uint64_t (&out)[N], uint64_t* sum) {
    static_assert(N == metrics::k_buckets, "one figure per bucket");
    for (size_t i = 0; i < N; ++i) out[i] = h.buckets[i].load(std::memory_order_relaxed);
    *sum = h.sum_ns.load(std::memory_order_relaxed);
}

void copy_history(const metrics::interp_slot& s, interp_figures* out) {
    uint32_t next = s.history_next.load(std::memory_order_acquire);
    uint32_t n = next < uint32_t(metrics::k_history) ? next : uint32_t(metrics::k_history);
    for (uint32_t k = next - n; k != next; ++k) {
        const metrics::history_point& p = s.history[k % metrics::k_history];
        interp_figures::point q{p.t_ms.load(std::memory_order_acquire), p.requests.load(std::memory_order_relaxed),
                                p.gil_wait_ns.load(std::memory_order_relaxed),
                                p.gil_waits.load(std::memory_order_relaxed)};
        if (q.t_ms != 0) out->history.push_back(q);
    }
}

interp_figures copy_slot(const metrics::interp_slot& s) {
    interp_figures f;
    f.state = s.state.load(std::memory_order_acquire) == uint32_t(metrics::slot_state::live) ? "live" : "ended";
    f.group = fixed_string(s.group, sizeof s.group);
    f.interpreter = fixed_string(s.interpreter, sizeof s.interpreter);
    f.why = fixed_string(s.why, sizeof s.why);
    f.placement = metrics::placement_name(metrics::placement(s.where));
    f.id = s.interpreter_id;
    f.pool_member = s.pool_member;
    f.pool_size = s.pool_size;
    f.created_ms = s.created_ms;
    f.ended_ms = s.ended_ms.load(std::memory_order_relaxed);
    f.requests = s.requests.load(std::memory_order_relaxed);
    f.in_flight = s.in_flight.load(std::memory_order_relaxed);
    for (int i = 0; i < 6; ++i) f.responses[i] = s.responses[i].load(std::memory_order_relaxed);
    f.exceptions = s.exceptions.load(std::memory_order_relaxed);
    copy_histogram(s.latency, f.latency, &f.latency_sum_ns);
    copy_histogram(s.gil_wait, f.gil_wait, &f.gil_wait_sum_ns);
    f.cpu_ns = s.cpu_ns.load(std::memory_order_relaxed);
    f.script_loads = s.script_loads.load(std::memory_order_relaxed);
    f.script_reloads = s.script_reloads.load(std::memory_order_relaxed);
    f.routed_away = s.routed_away.load(std::memory_order_relaxed);
    f.thread_states = s.thread_states.load(std::memory_order_relaxed);
    copy_history(s, &f);
    return f;
}

// Busy and idle workers of process `pid`, counted as mod_status counts
// them, from httpd's scoreboard (shared memory too).
void count_workers(int32_t pid, child_figures* c) {
    if (!ap_exists_scoreboard_image()) return;
    int daemons = 0, threads = 0;
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &daemons);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_THREADS, &threads);
    for (int i = 0; i < daemons; ++i) {
        if (ap_get_scoreboard_process(i)->pid != pid) continue;
        c->busy_workers = c->idle_workers = 0;
        for (int j = 0; j < threads; ++j) {
            int st = ap_get_scoreboard_worker_from_indexes(i, j)->status;
            if (st == SERVER_READY)
                ++c->idle_workers;
            else if (st != SERVER_DEAD && st != SERVER_STARTING && st != SERVER_IDLE_KILL)
                ++c->busy_workers;
        }
        return;
    }
}

child_figures copy_region(const metrics::segment_header* h, const metrics::child_region* r) {
    child_figures c;
    c.pid = r->pid.load(std::memory_order_acquire);
    c.generation = r->generation;
    c.started_ms = r->started_ms;
    c.rss_bytes = r->rss_bytes.load(std::memory_order_relaxed);
    c.refused = r->refused.load(std::memory_order_relaxed);
    c.untracked = r->untracked.load(std::memory_order_relaxed);
    uint32_t used = r->slots_used.load(std::memory_order_acquire);
    for (uint32_t j = 0; j < used && j < h->slots; ++j) {
        const metrics::interp_slot* s = metrics::slot_at(h, r, int(j));
        if (s->state.load(std::memory_order_acquire) == uint32_t(metrics::slot_state::free)) continue;
        c.interpreters.push_back(copy_slot(*s));
    }
    count_workers(c.pid, &c);
    return c;
}

const char* mpm_name() noexcept {
    const char* name = ap_show_mpm();
    return name != nullptr ? name : "?";
}

status_figures take_figures(request_rec* r) {
    status_figures f;
    f.now_ms = metrics::wall_ms();
    f.server = apr_psprintf(r->pool, "%s:%u", r->server->server_hostname ? r->server->server_hostname : "",
                            unsigned(r->server->port ? r->server->port : ap_get_server_port(r)));
    f.mpm = mpm_name();
    const char* version = Py_GetVersion();
    f.python = std::string(version, strcspn(version, " "));
    f.generation = ap_state_query(AP_SQ_CONFIG_GEN);
    const metrics::segment_header* h = metrics_segment();
    f.counting = h != nullptr;
    if (h == nullptr) return f;
    f.slots = int(h->slots);
    for (uint32_t i = 0; i < h->children; ++i) {
        const metrics::child_region* region = metrics::region_at(h, int(i));
        if (region->pid.load(std::memory_order_acquire) <= 0 || !metrics::region_owner_alive(region)) continue;
        f.children.push_back(copy_region(h, region));
    }
    return f;
}

// The query: format=html|json|prometheus, stacks.  False for anything else.
bool parse_query(request_rec* r, std::string* format, bool* stacks) {
    *format = "html";
    *stacks = false;
    if (r->args == nullptr) return true;
    char* args = apr_pstrdup(r->pool, r->args);
    char* state = nullptr;
    for (char* kv = apr_strtok(args, "&", &state); kv != nullptr; kv = apr_strtok(nullptr, "&", &state)) {
        char* eq = std::strchr(kv, '=');
        if (eq != nullptr) *eq = '\0';
        const char* value = eq != nullptr ? eq + 1 : "";
        if (std::strcmp(kv, "format") == 0 && (std::strcmp(value, "html") == 0 || std::strcmp(value, "json") == 0 ||
                                               std::strcmp(value, "prometheus") == 0)) {
            *format = value;
        } else if (std::strcmp(kv, "stacks") == 0 && (*value == '\0' || std::strcmp(value, "1") == 0)) {
            *stacks = true;
        } else {
            return false;
        }
    }
    return !(*stacks && *format == "prometheus");
}

}  // namespace

int status_handler(request_rec* r) noexcept {
    if (r->method_number != M_GET) {
        ap_allow_methods(r, REPLACE_ALLOW, "GET", nullptr);  // HEAD comes with GET
        return HTTP_METHOD_NOT_ALLOWED;
    }
    try {
        std::string format;
        bool stacks = false;
        if (!parse_query(r, &format, &stacks)) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          "PYI0820: status page: unknown query '%s' (format=html|json|prometheus, stacks)", r->args);
            return HTTP_BAD_REQUEST;
        }
        status_figures figures = take_figures(r);
        std::vector<child_stacks> gathered;
        if (stacks && metrics_segment() != nullptr)
            gathered = stacks_gather(metrics_segment_mut(), k_stacks_timeout_ms);
        std::string body;
        if (format == "json") {
            ap_set_content_type(r, "application/json");
            body = render_json(figures, stacks ? &gathered : nullptr);
        } else if (format == "prometheus") {
            ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
            body = render_prometheus(figures);
        } else {
            ap_set_content_type(r, "text/html; charset=utf-8");
            body = render_html(figures, stacks ? &gathered : nullptr);
        }
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        ap_set_content_length(r, apr_off_t(body.size()));
        if (!r->header_only) ap_rwrite(body.data(), int(body.size()), r);
        return OK;
    } catch (...) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "PYI0821: status page: out of memory");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
}

std::string valid_utf8(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        bool ok = n > 0 && i + n <= s.size();
        for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
        if (ok && n == 2) ok = c >= 0xC2;  // no overlong forms
        if (ok) {
            out.append(s, i, n);
            i += n;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
    return out;
}

std::map<std::string, group_totals> totals_by_group(const status_figures& f) {
    std::map<std::string, group_totals> out;
    for (const child_figures& c : f.children) {
        for (const interp_figures& i : c.interpreters) {
            group_totals& t = out[shown_group_name(i.group)];
            t.interpreters += i.state == "live" ? 1 : 0;
            t.requests += i.requests;
            t.exceptions += i.exceptions;
            t.in_flight += i.in_flight;
            for (int k = 0; k < 6; ++k) t.responses[k] += i.responses[k];
        }
    }
    return out;
}

std::string shown_group_name(const std::string& group) {
    return group.empty() ? "%{GLOBAL}" : group;
}

double histogram_quantile(const uint64_t* buckets, double q) {
    uint64_t total = 0;
    for (int i = 0; i < metrics::k_buckets; ++i) total += buckets[i];
    if (total == 0) return -1;
    double want = q * double(total);
    uint64_t seen = 0;
    for (int i = 0; i < metrics::k_buckets - 1; ++i) {
        seen += buckets[i];
        if (double(seen) >= want) return double(metrics::k_bounds_us[i]) / 1e6;
    }
    return std::numeric_limits<double>::infinity();
}

}  // namespace pyinterp::mod
