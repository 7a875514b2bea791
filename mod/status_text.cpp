// The status page as JSON and as Prometheus text (see status.h).
#include "status.h"

#include <cinttypes>
#include <cstdio>
#include <map>

namespace pyinterp::mod {
namespace {

namespace metrics = app::metrics;

const char* const k_classes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};

std::string num(uint64_t v) {
    return std::to_string(v);
}
std::string num(int64_t v) {
    return std::to_string(v);
}
std::string num(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}
// Seconds since the epoch, to the millisecond.
std::string epoch(int64_t ms) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.3f", double(ms) / 1000);
    return buf;
}
std::string seconds(uint64_t ns) {
    return num(double(ns) / 1e9);
}

// A histogram bucket bound as text: "1e-05", ..., "60", "+Inf".
std::string bound(int i) {
    if (i >= metrics::k_buckets - 1) return "+Inf";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", double(metrics::k_bounds_us[i]) / 1e6);
    return buf;
}

// ------------------------------------------------------------------ JSON

std::string jstr(const std::string& s) {
    std::string out = "\"";
    for (char ch : valid_utf8(s)) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

std::string jhistogram(const uint64_t* buckets, uint64_t sum_ns) {
    std::string out = "{\"buckets\": [";
    uint64_t cumulative = 0;
    for (int i = 0; i < metrics::k_buckets; ++i) {
        cumulative += buckets[i];
        out += (i ? ", " : "") + std::string("{\"le\": ") + jstr(bound(i)) + ", \"count\": " + num(cumulative) + "}";
    }
    return out + "], \"sum\": " + seconds(sum_ns) + ", \"count\": " + num(cumulative) + "}";
}

std::string jresponses(const uint64_t* responses) {
    std::string out = "{";
    for (int i = 1; i <= 6; ++i) {
        int k = i % 6;  // 1xx..5xx, then none
        out += (i > 1 ? ", " : "") + jstr(k_classes[k]) + ": " + num(responses[k]);
    }
    return out + "}";
}

std::string jhistory(const interp_figures& f) {
    std::string out = "[";
    for (size_t i = 0; i < f.history.size(); ++i) {
        const interp_figures::point& p = f.history[i];
        out += (i ? ", " : "") + std::string("{\"time\": ") + epoch(p.t_ms) + ", \"requests\": " + num(p.requests) +
               ", \"gil_wait_seconds\": " + seconds(p.gil_wait_ns) + ", \"gil_waits\": " + num(p.gil_waits) + "}";
    }
    return out + "]";
}

std::string jinterp(const interp_figures& f) {
    return "{\"group\": " + jstr(shown_group_name(f.group)) + ", \"interpreter\": " + jstr(f.interpreter) +
           ", \"id\": " + num(f.id) + ", \"state\": " + jstr(f.state) + ", \"placement\": " + jstr(f.placement) +
           ", \"why\": " + jstr(f.why) + ", \"pool_member\": " + num(int64_t(f.pool_member)) +
           ", \"pool_size\": " + num(int64_t(f.pool_size)) + ", \"created\": " + epoch(f.created_ms) +
           ", \"ended\": " + (f.ended_ms != 0 ? epoch(f.ended_ms) : std::string("null")) +
           ", \"requests\": " + num(f.requests) + ", \"in_flight\": " + num(f.in_flight) +
           ", \"responses\": " + jresponses(f.responses) + ", \"exceptions\": " + num(f.exceptions) +
           ", \"latency_seconds\": " + jhistogram(f.latency, f.latency_sum_ns) +
           ", \"gil_wait_seconds\": " + jhistogram(f.gil_wait, f.gil_wait_sum_ns) +
           ", \"cpu_seconds\": " + seconds(f.cpu_ns) + ", \"script_loads\": " + num(f.script_loads) +
           ", \"script_reloads\": " + num(f.script_reloads) + ", \"routed_away\": " + num(f.routed_away) +
           ", \"thread_states\": " + num(uint64_t(f.thread_states)) + ", \"history\": " + jhistory(f) + "}";
}

std::string jworkers(int n) {
    return n >= 0 ? num(int64_t(n)) : std::string("null");
}

std::string jchild(const child_figures& c) {
    std::string out = "{\"pid\": " + num(int64_t(c.pid)) + ", \"generation\": " + num(uint64_t(c.generation)) +
                      ", \"started\": " + epoch(c.started_ms) + ", \"rss_bytes\": " + num(c.rss_bytes) +
                      ", \"busy_workers\": " + jworkers(c.busy_workers) +
                      ", \"idle_workers\": " + jworkers(c.idle_workers) + ", \"requests_refused\": " + num(c.refused) +
                      ", \"requests_untracked\": " + num(c.untracked) + ", \"interpreters\": [";
    for (size_t i = 0; i < c.interpreters.size(); ++i) out += (i ? ", " : "") + jinterp(c.interpreters[i]);
    return out + "]}";
}

// Totals per application group over every child and interpreter.
std::string jgroups(const status_figures& f) {
    std::string out = "{";
    bool first = true;
    for (const auto& [name, t] : totals_by_group(f)) {
        out += (first ? "" : ", ") + jstr(name) + ": {\"interpreters\": " + num(t.interpreters) +
               ", \"requests\": " + num(t.requests) + ", \"in_flight\": " + num(t.in_flight) +
               ", \"responses\": " + jresponses(t.responses) + ", \"exceptions\": " + num(t.exceptions) + "}";
        first = false;
    }
    return out + "}";
}

std::string jstacks(const std::vector<child_stacks>& stacks) {
    std::string out = "[";
    for (size_t i = 0; i < stacks.size(); ++i) {
        const child_stacks& c = stacks[i];
        out += (i ? ", " : "") + std::string("{\"pid\": ") + num(int64_t(c.pid)) +
               ", \"answered\": " + (c.answered ? "true" : "false") +
               ", \"truncated\": " + (c.truncated ? "true" : "false") + ", \"requests\": [";
        for (size_t j = 0; j < c.requests.size(); ++j) {
            const stack_entry& e = c.requests[j];
            out += (j ? ", " : "") + std::string("{\"id\": ") + num(e.id) +
                   ", \"group\": " + jstr(shown_group_name(e.group)) + ", \"interpreter\": " + jstr(e.interpreter) +
                   ", \"interpreter_id\": " + num(e.interpreter_id) + ", \"url\": " + jstr(e.url) +
                   ", \"thread\": " + num(uint64_t(e.thread)) + ", \"elapsed_seconds\": " + num(e.elapsed_s) +
                   ", \"captured\": " + (e.captured ? "true" : "false") + ", \"frames\": [";
            for (size_t k = 0; k < e.frames.size(); ++k)
                out += (k ? ", " : "") + std::string("{\"file\": ") + jstr(e.frames[k].file) +
                       ", \"line\": " + num(int64_t(e.frames[k].line)) +
                       ", \"function\": " + jstr(e.frames[k].function) + "}";
            out += "]}";
        }
        out += "]}";
    }
    return out + "]";
}

// ------------------------------------------------------------ Prometheus

std::string label_value(const std::string& s) {
    std::string out;
    for (char c : valid_utf8(s)) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string labels(const child_figures& c, const interp_figures& i) {
    return "group=\"" + label_value(shown_group_name(i.group)) + "\",interpreter=\"" + label_value(i.interpreter) +
           "\",pid=\"" + std::to_string(c.pid) + "\"";
}

struct family {
    const char* name;
    const char* type;
    const char* help;
};

void head(std::string& out, const family& f) {
    out += std::string("# HELP ") + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.type + "\n";
}

// One sample per live interpreter of every child.
template <typename F>
void per_interp(std::string& out, const status_figures& s, const family& f, F value) {
    head(out, f);
    for (const child_figures& c : s.children)
        for (const interp_figures& i : c.interpreters)
            if (i.state == "live") out += std::string(f.name) + "{" + labels(c, i) + "} " + value(i) + "\n";
}

void histogram_family(std::string& out, const status_figures& s, const family& f, bool gil) {
    head(out, f);
    for (const child_figures& c : s.children) {
        for (const interp_figures& i : c.interpreters) {
            if (i.state != "live") continue;
            const uint64_t* b = gil ? i.gil_wait : i.latency;
            uint64_t cumulative = 0;
            std::string l = labels(c, i);
            for (int k = 0; k < metrics::k_buckets; ++k) {
                cumulative += b[k];
                out += std::string(f.name) + "_bucket{" + l + ",le=\"" + bound(k) + "\"} " + num(cumulative) + "\n";
            }
            out +=
                std::string(f.name) + "_sum{" + l + "} " + seconds(gil ? i.gil_wait_sum_ns : i.latency_sum_ns) + "\n";
            out += std::string(f.name) + "_count{" + l + "} " + num(cumulative) + "\n";
        }
    }
}

void child_families(std::string& out, const status_figures& s) {
    head(out, {"pyinterp_child_workers", "gauge", "Worker threads of the child process, busy or idle (scoreboard)."});
    for (const child_figures& c : s.children) {
        if (c.busy_workers < 0) continue;
        out += "pyinterp_child_workers{pid=\"" + std::to_string(c.pid) + "\",state=\"busy\"} " +
               num(int64_t(c.busy_workers)) + "\n";
        out += "pyinterp_child_workers{pid=\"" + std::to_string(c.pid) + "\",state=\"idle\"} " +
               num(int64_t(c.idle_workers)) + "\n";
    }
    struct one {
        family f;
        uint64_t (*value)(const child_figures&);
    };
    const one all[] = {
        {{"pyinterp_child_resident_memory_bytes", "gauge", "Resident set size of the child process."},
         [](const child_figures& c) { return c.rss_bytes; }},
        {{"pyinterp_child_start_time_seconds", "gauge", "When the child process started, seconds since the epoch."},
         [](const child_figures& c) { return uint64_t(c.started_ms / 1000); }},
        {{"pyinterp_child_requests_refused_total", "counter",
          "Requests of the child that found no interpreter to enter."},
         [](const child_figures& c) { return c.refused; }},
        {{"pyinterp_child_requests_untracked_total", "counter",
          "Requests of interpreters that found no counter slot (PyInterpMetricsSlots)."},
         [](const child_figures& c) { return c.untracked; }},
    };
    for (const one& o : all) {
        head(out, o.f);
        for (const child_figures& c : s.children)
            out += std::string(o.f.name) + "{pid=\"" + std::to_string(c.pid) + "\"} " + num(o.value(c)) + "\n";
    }
}

void info_family(std::string& out, const status_figures& s) {
    head(out, {"pyinterp_interpreter_info", "gauge",
               "One per live interpreter: where it runs (main, shared or own GIL), why, its pool membership."});
    for (const child_figures& c : s.children)
        for (const interp_figures& i : c.interpreters)
            if (i.state == "live")
                out += "pyinterp_interpreter_info{" + labels(c, i) + ",id=\"" + std::to_string(i.id) +
                       "\",placement=\"" + i.placement + "\",why=\"" + label_value(i.why) + "\",pool_member=\"" +
                       std::to_string(i.pool_member) + "\",pool_size=\"" + std::to_string(i.pool_size) + "\"} 1\n";
}

}  // namespace

std::string render_json(const status_figures& f, const std::vector<child_stacks>* stacks) {
    std::string out = "{\"server\": " + jstr(f.server) + ", \"mpm\": " + jstr(f.mpm) +
                      ", \"python\": " + jstr(f.python) + ", \"generation\": " + num(int64_t(f.generation)) +
                      ", \"time\": " + epoch(f.now_ms) + ", \"counting\": " + (f.counting ? "true" : "false") +
                      ", \"slots_per_child\": " + num(int64_t(f.slots)) + ", \"children\": [";
    for (size_t i = 0; i < f.children.size(); ++i) out += (i ? ", " : "") + jchild(f.children[i]);
    out += "], \"groups\": " + jgroups(f);
    if (stacks != nullptr) out += ", \"stacks\": " + jstacks(*stacks);
    return out + "}\n";
}

std::string render_prometheus(const status_figures& s) {
    std::string out;
    info_family(out, s);
    per_interp(out, s, {"pyinterp_requests_total", "counter", "Requests answered through the interpreter."},
               [](const interp_figures& i) { return num(i.requests); });
    per_interp(out, s, {"pyinterp_requests_in_flight", "gauge", "Requests inside the interpreter now."},
               [](const interp_figures& i) { return num(i.in_flight); });
    head(out, {"pyinterp_responses_total", "counter", "Responses by status class (none: no HTTP status)."});
    for (const child_figures& c : s.children)
        for (const interp_figures& i : c.interpreters)
            if (i.state == "live")
                for (int k = 0; k < 6; ++k)
                    out += "pyinterp_responses_total{" + labels(c, i) + ",code=\"" + k_classes[k] + "\"} " +
                           num(i.responses[k]) + "\n";
    per_interp(
        out, s,
        {"pyinterp_exceptions_total", "counter", "Requests whose application raised an exception or failed to load."},
        [](const interp_figures& i) { return num(i.exceptions); });
    histogram_family(out, s,
                     {"pyinterp_request_duration_seconds", "histogram",
                      "Time from the request reaching the executor to its response handed to httpd."},
                     false);
    histogram_family(out, s,
                     {"pyinterp_gil_wait_seconds", "histogram",
                      "Time spent waiting to enter the interpreter (its GIL) per request."},
                     true);
    per_interp(out, s, {"pyinterp_cpu_seconds_total", "counter", "CPU time of requests inside the interpreter."},
               [](const interp_figures& i) { return seconds(i.cpu_ns); });
    per_interp(out, s, {"pyinterp_script_loads_total", "counter", "Scripts loaded for the first time."},
               [](const interp_figures& i) { return num(i.script_loads); });
    per_interp(out, s, {"pyinterp_script_reloads_total", "counter", "Scripts loaded again because they changed."},
               [](const interp_figures& i) { return num(i.script_reloads); });
    per_interp(out, s,
               {"pyinterp_routed_applications_total", "counter",
                "Applications moved from this interpreter to main by PyInterpSubinterpreterFallback."},
               [](const interp_figures& i) { return num(i.routed_away); });
    per_interp(out, s, {"pyinterp_thread_states", "gauge", "Thread states cached for the interpreter."},
               [](const interp_figures& i) { return num(uint64_t(i.thread_states)); });
    child_families(out, s);
    return out;
}

}  // namespace pyinterp::mod
