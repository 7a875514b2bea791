// Stacks on demand across child processes (see status_stacks.h).
#include "status_stacks.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace pyinterp::mod {
namespace {

namespace metrics = app::metrics;

// The answer's text: one line per request, then one per frame:
//   R <id> <interpreter id> <thread> <elapsed ms> <captured> <group> <interpreter> <url>
//   F <line> <file> <function>
// tab-separated; tabs and line ends inside values become spaces; a last
// line "T" says the answer was cut short.
std::string clean(const std::string& s) {
    std::string out = s;
    for (char& c : out)
        if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return out;
}

std::string answer_text(const std::vector<app::inflight_stack>& stacks, size_t limit) {
    std::string out;
    int64_t now = app::monotonic_ns();
    for (const app::inflight_stack& s : stacks) {
        std::string block = "R\t" + std::to_string(s.info.id) + "\t" + std::to_string(s.info.interpreter_id) + "\t" +
                            std::to_string(s.info.thread_ident) + "\t" +
                            std::to_string((now - s.info.start_ns) / 1000000) + "\t" + (s.captured ? "1" : "0") + "\t" +
                            clean(s.info.group) + "\t" + clean(s.info.interpreter) + "\t" +
                            clean(s.info.url.empty() ? s.info.script : s.info.url) + "\n";
        for (const app::stack_frame& f : s.frames)
            block += "F\t" + std::to_string(f.line) + "\t" + clean(f.file) + "\t" + clean(f.function) + "\n";
        if (out.size() + block.size() + 2 > limit) {
            out += "T\n";
            break;
        }
        out += block;
    }
    return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t tab = line.find('\t', start);
        out.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
        if (tab == std::string::npos) return out;
        start = tab + 1;
    }
}

void parse_answer(const std::string& text, child_stacks* out) {
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
        start = nl == std::string::npos ? text.size() : nl + 1;
        std::vector<std::string> f = split_tabs(line);
        if (f[0] == "T") {
            out->truncated = true;
        } else if (f[0] == "R" && f.size() == 9) {
            stack_entry e;
            e.id = std::strtoull(f[1].c_str(), nullptr, 10);
            e.interpreter_id = std::strtoll(f[2].c_str(), nullptr, 10);
            e.thread = std::strtoul(f[3].c_str(), nullptr, 10);
            e.elapsed_s = double(std::strtoll(f[4].c_str(), nullptr, 10)) / 1000;
            e.captured = f[5] == "1";
            e.group = f[6];
            e.interpreter = f[7];
            e.url = f[8];
            out->requests.push_back(std::move(e));
        } else if (f[0] == "F" && f.size() == 4 && !out->requests.empty()) {
            out->requests.back().frames.push_back({f[2], std::atoi(f[1].c_str()), f[3]});
        }
    }
}

// The region's answer, read consistently (the writer bumps stacks_seq to
// an odd number while it writes).  False if it kept changing.
bool read_answer(const metrics::child_region* r, std::string* out) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        uint64_t before = r->stacks_seq.load(std::memory_order_acquire);
        if ((before & 1) == 0) {
            uint32_t len = r->stacks_len.load(std::memory_order_acquire);
            out->assign(r->stacks, len < metrics::k_stacks_bytes ? len : metrics::k_stacks_bytes);
            std::atomic_thread_fence(std::memory_order_acquire);
            if (r->stacks_seq.load(std::memory_order_relaxed) == before) return true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
}

}  // namespace

void stacks_answer(metrics::child_region* r, const app::inflight_registry& reg) noexcept {
    uint64_t asked = r->stacks_asked.load(std::memory_order_acquire);
    if (asked == 0 || asked == r->stacks_done.load(std::memory_order_relaxed)) return;
    try {
        std::string text = answer_text(app::collect_stacks(reg), metrics::k_stacks_bytes);
        uint64_t seq = r->stacks_seq.load(std::memory_order_relaxed);
        r->stacks_seq.store(seq + 1, std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_release);
        std::memcpy(r->stacks, text.data(), text.size());
        r->stacks_len.store(uint32_t(text.size()), std::memory_order_relaxed);
        r->stacks_seq.store(seq + 2, std::memory_order_release);
    } catch (...) {
        // Out of memory: answered with what was there before.
    }
    r->stacks_done.store(asked, std::memory_order_release);
}

std::vector<child_stacks> stacks_gather(metrics::segment_header* h, int timeout_ms) {
    std::vector<child_stacks> out;
    std::vector<metrics::child_region*> asked;
    uint64_t n = h->stacks_asked.fetch_add(1, std::memory_order_acq_rel) + 1;
    for (uint32_t i = 0; i < h->children; ++i) {
        metrics::child_region* r = metrics::region_at(h, int(i));
        if (r->pid.load(std::memory_order_acquire) <= 0 || !metrics::region_owner_alive(r)) continue;
        r->stacks_asked.store(n, std::memory_order_release);
        asked.push_back(r);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        bool all = true;
        for (metrics::child_region* r : asked) all = all && r->stacks_done.load(std::memory_order_acquire) >= n;
        if (all || std::chrono::steady_clock::now() >= deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (metrics::child_region* r : asked) {
        child_stacks c;
        c.pid = r->pid.load(std::memory_order_relaxed);
        std::string text;
        c.answered = r->stacks_done.load(std::memory_order_acquire) >= n && read_answer(r, &text);
        if (c.answered) parse_answer(text, &c);
        out.push_back(std::move(c));
    }
    return out;
}

}  // namespace pyinterp::mod
