// The status page as HTML (see status.h): tables and small inline SVG
// charts made here, no JavaScript; it refreshes itself with a meta tag.
#include "status.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace pyinterp::mod {
namespace {

namespace metrics = app::metrics;

constexpr int k_refresh_s = 10;
constexpr int64_t k_chart_span_ms = metrics::k_history * metrics::k_history_period_ms;  // five minutes
constexpr int k_chart_w = 150, k_chart_h = 40;

std::string html(const std::string& s) {
    std::string out;
    for (char c : valid_utf8(s)) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// A duration for people: "850 µs", "12.5 ms", "3.2 s".
std::string duration(double s) {
    if (s < 0) return "–";
    if (std::isinf(s)) return "&gt; 60 s";
    if (s < 1e-3) return fmt("%.0f µs", s * 1e6);
    if (s < 1) return fmt("%.1f ms", s * 1e3);
    return fmt("%.1f s", s);
}

std::string mean(uint64_t sum_ns, uint64_t n) {
    return n == 0 ? "–" : duration(double(sum_ns) / 1e9 / double(n));
}

std::string clock_time(int64_t ms) {
    time_t t = time_t(ms / 1000);
    tm u;
    gmtime_r(&t, &u);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &u);
    return buf;
}

std::string age(int64_t now_ms, int64_t then_ms) {
    int64_t s = (now_ms - then_ms) / 1000;
    if (s < 120) return std::to_string(s) + " s";
    if (s < 7200) return std::to_string(s / 60) + " min";
    return std::to_string(s / 3600) + " h";
}

uint64_t count_of(const uint64_t* buckets) {
    uint64_t n = 0;
    for (int i = 0; i < metrics::k_buckets; ++i) n += buckets[i];
    return n;
}

const char* k_style =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}"
    ".meta{color:#555}table{border-collapse:collapse}"
    "th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3}td.l,th.l{text-align:left}.why{color:#666;font-size:.85em;max-width:22em}"
    ".ended{color:#999}.bad{color:#b00}pre{background:#f6f6f6;padding:.5em;margin:.2em 0 .8em;overflow-x:auto}"
    "svg{display:block}td{white-space:nowrap}td.l{white-space:normal}";

// Requests per second (bars) and mean GIL wait (line) over the last five
// minutes, from the history's cumulative points.
std::string chart(const interp_figures& f, int64_t now_ms) {
    struct bar {
        int64_t t;
        double rate, wait_ms;
    };
    std::vector<bar> bars;
    for (size_t k = 1; k < f.history.size(); ++k) {
        const interp_figures::point& a = f.history[k - 1];
        const interp_figures::point& b = f.history[k];
        if (b.t_ms <= a.t_ms || b.t_ms < now_ms - k_chart_span_ms) continue;
        double dt = double(b.t_ms - a.t_ms) / 1000;
        uint64_t waits = b.gil_waits - a.gil_waits;
        bars.push_back({b.t_ms, double(b.requests - a.requests) / dt,
                        waits ? double(b.gil_wait_ns - a.gil_wait_ns) / 1e6 / double(waits) : 0});
    }
    if (bars.empty()) return "<span class=\"why\">collecting…</span>";
    double max_rate = 0, max_wait = 0;
    for (const bar& b : bars) {
        max_rate = std::max(max_rate, b.rate);
        max_wait = std::max(max_wait, b.wait_ms);
    }
    std::string title = "last 5 min: up to " + fmt("%.1f", max_rate) + " requests/s (bars), mean GIL wait up to " +
                        fmt("%.2f", max_wait) + " ms (line)";
    std::string svg = "<svg width=\"" + std::to_string(k_chart_w) + "\" height=\"" + std::to_string(k_chart_h + 12) +
                      "\" viewBox=\"0 0 " + std::to_string(k_chart_w) + " " + std::to_string(k_chart_h + 12) +
                      "\" role=\"img\" aria-label=\"" + html(title) + "\"><title>" + html(title) + "</title>" +
                      "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(k_chart_w) + "\" height=\"" +
                      std::to_string(k_chart_h) + "\" fill=\"#fafafa\" stroke=\"#ddd\"/>";
    double slot_w = double(k_chart_w) / metrics::k_history;
    std::string line;
    for (const bar& b : bars) {
        double x = double(k_chart_w) * double(b.t - (now_ms - k_chart_span_ms)) / double(k_chart_span_ms) - slot_w;
        double h = max_rate > 0 ? b.rate / max_rate * (k_chart_h - 2) : 0;
        svg += "<rect x=\"" + fmt("%.1f", x) + "\" y=\"" + fmt("%.1f", k_chart_h - h) + "\" width=\"" +
               fmt("%.1f", slot_w * 0.8) + "\" height=\"" + fmt("%.1f", h) + "\" fill=\"#6a9fd8\"/>";
        double y = max_wait > 0 ? k_chart_h - 1 - b.wait_ms / max_wait * (k_chart_h - 4) : k_chart_h - 1;
        line += fmt("%.1f,", x + slot_w * 0.4) + fmt("%.1f ", y);
    }
    svg += "<polyline points=\"" + line + "\" fill=\"none\" stroke=\"#d2691e\" stroke-width=\"1.5\"/>";
    svg += "<text x=\"0\" y=\"" + std::to_string(k_chart_h + 10) + "\" font-size=\"9\" fill=\"#555\">" +
           fmt("%.1f", max_rate) + " req/s · " + fmt("%.2f", max_wait) + " ms GIL</text></svg>";
    return svg;
}

std::string placement_cell(const interp_figures& i) {
    std::string where = i.placement == "main"     ? "main interpreter"
                        : i.placement == "own"    ? "own GIL"
                        : i.placement == "shared" ? "shared GIL"
                                                  : i.placement;
    if (i.pool_size > 1)
        where += " · pool member " + std::to_string(i.pool_member + 1) + " of " + std::to_string(i.pool_size);
    return "<td class=\"l\">" + html(where) + "<div class=\"why\">" + html(i.why) + "</div></td>";
}

std::string interp_row(const child_figures& c, const interp_figures& i, int64_t now_ms) {
    std::string cls = i.state == "live" ? "" : " class=\"ended\"";
    uint64_t n = count_of(i.latency);
    std::string state = i.state == "live" ? "" : "<div class=\"why\">ended " + age(now_ms, i.ended_ms) + " ago</div>";
    return "<tr" + cls + "><td>" + std::to_string(c.pid) + "</td><td class=\"l\">" + html(shown_group_name(i.group)) +
           "</td><td class=\"l\">" + html(i.interpreter) + " <span class=\"why\">#" + std::to_string(i.id) + "</span>" +
           state + "</td>" + placement_cell(i) + "<td>" + std::to_string(i.requests) + "</td><td>" +
           std::to_string(i.in_flight) + "</td><td>" + std::to_string(i.responses[4]) + "</td><td" +
           (i.responses[5] ? " class=\"bad\"" : "") + ">" + std::to_string(i.responses[5]) + "</td><td" +
           (i.exceptions ? " class=\"bad\"" : "") + ">" + std::to_string(i.exceptions) + "</td><td>" +
           mean(i.latency_sum_ns, n) + " / ≤ " + duration(histogram_quantile(i.latency, 0.99)) + "</td><td>" +
           mean(i.gil_wait_sum_ns, n) + " / ≤ " + duration(histogram_quantile(i.gil_wait, 0.99)) + "</td><td>" +
           fmt("%.2f s", double(i.cpu_ns) / 1e9) + "</td><td>" + std::to_string(i.script_loads) + " / " +
           std::to_string(i.script_reloads) + "</td><td>" + std::to_string(i.thread_states) + "</td><td>" +
           chart(i, now_ms) + "</td></tr>\n";
}

std::string interp_table(const status_figures& f) {
    std::string out =
        "<h2>Interpreters</h2>\n<table>\n<tr><th>Child</th><th class=\"l\">Group</th><th class=\"l\">Interpreter</th>"
        "<th class=\"l\">Placement</th><th>Requests</th><th>In flight</th><th>4xx</th><th>5xx</th>"
        "<th>Exceptions</th><th>Latency mean / p99</th><th>GIL wait mean / p99</th><th>CPU</th>"
        "<th>Loads / reloads</th><th>Thread states</th><th class=\"l\">Last 5 minutes</th></tr>\n";
    for (const child_figures& c : f.children)
        for (const interp_figures& i : c.interpreters) out += interp_row(c, i, f.now_ms);
    return out + "</table>\n";
}

std::string group_table(const status_figures& f) {
    std::string out =
        "<h2>Application groups</h2>\n<table>\n<tr><th class=\"l\">Group</th><th>Interpreters</th>"
        "<th>Requests</th><th>In flight</th><th>4xx</th><th>5xx</th><th>Exceptions</th></tr>\n";
    for (const auto& [name, t] : totals_by_group(f))
        out += "<tr><td class=\"l\">" + html(name) + "</td><td>" + std::to_string(t.interpreters) + "</td><td>" +
               std::to_string(t.requests) + "</td><td>" + std::to_string(t.in_flight) + "</td><td>" +
               std::to_string(t.responses[4]) + "</td><td>" + std::to_string(t.responses[5]) + "</td><td>" +
               std::to_string(t.exceptions) + "</td></tr>\n";
    return out + "</table>\n";
}

std::string child_table(const status_figures& f) {
    std::string out =
        "<h2>Child processes</h2>\n<table>\n<tr><th>Pid</th><th>Generation</th><th>Started</th>"
        "<th>Workers busy / idle</th><th>In Python now</th><th>Interpreters</th><th>RSS</th>"
        "<th>Refused</th><th>Untracked</th></tr>\n";
    for (const child_figures& c : f.children) {
        int64_t in_python = 0;
        int live = 0;
        for (const interp_figures& i : c.interpreters) {
            in_python += i.in_flight;
            live += i.state == "live" ? 1 : 0;
        }
        std::string workers = c.busy_workers >= 0
                                  ? std::to_string(c.busy_workers) + " / " + std::to_string(c.idle_workers)
                                  : std::string("–");
        out += "<tr><td>" + std::to_string(c.pid) + "</td><td>" + std::to_string(c.generation) + "</td><td>" +
               age(f.now_ms, c.started_ms) + " ago</td><td>" + workers + "</td><td>" + std::to_string(in_python) +
               "</td><td>" + std::to_string(live) + "</td><td>" + fmt("%.1f MiB", double(c.rss_bytes) / 1048576.0) +
               "</td><td>" + std::to_string(c.refused) + "</td><td>" + std::to_string(c.untracked) + "</td></tr>\n";
    }
    return out + "</table>\n";
}

std::string stack_section(const std::vector<child_stacks>& stacks) {
    std::string out = "<h2>Python stacks of the requests in flight</h2>\n";
    for (const child_stacks& c : stacks) {
        out += "<h3>Child " + std::to_string(c.pid) + "</h3>\n";
        if (!c.answered) {
            out += "<p class=\"bad\">No answer within 2 s: its watchdog waits for an interpreter's GIL.</p>\n";
            continue;
        }
        if (c.requests.empty()) out += "<p>No request inside Python.</p>\n";
        for (const stack_entry& e : c.requests) {
            out += "<p><b>" + html(shown_group_name(e.group)) + "</b> · interpreter " + html(e.interpreter) + " #" +
                   std::to_string(e.interpreter_id) + " · " + html(e.url) + " · running for " +
                   fmt("%.1f s", e.elapsed_s) + " · thread " + std::to_string(e.thread) + "</p>\n";
            if (!e.captured) {
                out += "<p class=\"why\">left Python before its stack was read</p>\n";
                continue;
            }
            out += "<pre>";
            for (const app::stack_frame& fr : e.frames)
                out += html("File \"" + fr.file + "\", line " + std::to_string(fr.line) + ", in " + fr.function) + "\n";
            out += "</pre>\n";
        }
        if (c.truncated) out += "<p class=\"why\">(more requests did not fit)</p>\n";
    }
    return out;
}

}  // namespace

std::string render_html(const status_figures& f, const std::vector<child_stacks>* stacks) {
    std::string title = "pyinterp status · " + f.server;
    std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    if (stacks == nullptr) out += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(k_refresh_s) + "\">\n";
    // No favicon to fetch: an empty data: URL.
    out += "<link rel=\"icon\" href=\"data:,\">\n<title>" + html(title) + "</title>\n<style>" + k_style +
           "</style>\n</head>\n<body>\n";
    out +=
        "<h1>" + html(title) + "</h1>\n<p class=\"meta\">MPM " + html(f.mpm) + " · Python " + html(f.python) +
        " · configuration generation " + std::to_string(f.generation) + " · " + clock_time(f.now_ms) +
        (stacks == nullptr ? " · refreshes every " + std::to_string(k_refresh_s) + " s" : std::string()) +
        " · <a href=\"?format=json\">JSON</a> · <a href=\"?format=prometheus\">Prometheus</a> · " +
        (stacks == nullptr ? "<a href=\"?stacks\">Python stacks of busy workers</a>" : "<a href=\"?\">counters</a>") +
        "</p>\n";
    if (!f.counting)
        out += "<p class=\"bad\">No counters: the shared memory could not be made (see the error log).</p>\n";
    if (stacks != nullptr) out += stack_section(*stacks);
    out += group_table(f) + interp_table(f) + child_table(f);
    return out + "</body>\n</html>\n";
}

}  // namespace pyinterp::mod
