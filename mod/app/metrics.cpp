// Counters per interpreter in a shared segment (see metrics.h).
#include "metrics.h"

#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pyinterp::app::metrics {
namespace {

constexpr uint64_t k_magic = 0x7079696e74657231ULL;  // "pyinter1"
constexpr uint32_t k_version = 1;

constexpr size_t round64(size_t n) noexcept {
    return (n + 63) & ~size_t(63);
}

constexpr size_t k_header_bytes = round64(sizeof(segment_header));
constexpr size_t k_region_head_bytes = round64(sizeof(child_region));
constexpr size_t k_slot_bytes = round64(sizeof(interp_slot));

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free,
              "counters shared between processes must be lock-free atomics");

size_t region_bytes(int slots) noexcept {
    return k_region_head_bytes + size_t(slots) * k_slot_bytes;
}

// Zeroes shared memory that holds atomics (plain memory to every process
// that maps it).
void zero(void* p, size_t n) noexcept {
    std::memset(p, 0, n);
}

void copy_name(char* dst, size_t size, const char* src) noexcept {
    std::snprintf(dst, size, "%s", src != nullptr ? src : "");
}

// The start of a small file (/proc), NUL-terminated; false if unreadable.
bool read_start(const char* path, char* buf, size_t size) noexcept {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    return true;
}

// Resident set size of this process, from /proc/self/statm.
uint64_t own_rss_bytes() noexcept {
    char buf[128];
    if (!read_start("/proc/self/statm", buf, sizeof buf)) return 0;
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
    return resident * uint64_t(sysconf(_SC_PAGESIZE));
}

}  // namespace

// ---------------------------------------------------------------- histogram

void histogram::add(int64_t ns) noexcept {
    int64_t us = ns / 1000;
    int i = 0;
    while (i < k_buckets - 1 && us > k_bounds_us[i]) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns.fetch_add(uint64_t(ns > 0 ? ns : 0), std::memory_order_relaxed);
}

uint64_t histogram::count() const noexcept {
    uint64_t n = 0;
    for (const auto& b : buckets) n += b.load(std::memory_order_relaxed);
    return n;
}

const char* placement_name(placement p) noexcept {
    switch (p) {
        case placement::main: return "main";
        case placement::shared_gil: return "shared";
        case placement::own_gil: return "own";
    }
    return "?";
}

// ---------------------------------------------------------------- segment

size_t segment_bytes(int children, int slots) noexcept {
    return k_header_bytes + size_t(children) * region_bytes(slots);
}

segment_header* segment_format(void* mem, int children, int slots) noexcept {
    auto* h = static_cast<segment_header*>(mem);
    h->magic = k_magic;
    h->version = k_version;
    h->children = uint32_t(children);
    h->slots = uint32_t(slots);
    h->region_bytes = uint32_t(region_bytes(slots));
    h->created_ms = wall_ms();
    return h;
}

bool segment_fits(const segment_header* h, int children, int slots) noexcept {
    return h != nullptr && h->magic == k_magic && h->version == k_version && h->children == uint32_t(children) &&
           h->slots == uint32_t(slots) && h->region_bytes == region_bytes(slots);
}

child_region* region_at(segment_header* h, int i) noexcept {
    return reinterpret_cast<child_region*>(reinterpret_cast<char*>(h) + k_header_bytes + size_t(i) * h->region_bytes);
}

const child_region* region_at(const segment_header* h, int i) noexcept {
    return region_at(const_cast<segment_header*>(h), i);
}

interp_slot* slot_at(segment_header* h, child_region* r, int j) noexcept {
    (void)h;
    return reinterpret_cast<interp_slot*>(reinterpret_cast<char*>(r) + k_region_head_bytes + size_t(j) * k_slot_bytes);
}

const interp_slot* slot_at(const segment_header* h, const child_region* r, int j) noexcept {
    return slot_at(const_cast<segment_header*>(h), const_cast<child_region*>(r), j);
}

bool process_exists(int32_t pid) noexcept {
    return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

uint64_t process_start_ticks(int32_t pid) noexcept {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
    char buf[1024];
    if (!read_start(path, buf, sizeof buf)) return 0;
    // pid (comm) state ppid ...: starttime is the 22nd field, the 20th after
    // the command name (which may contain spaces and parentheses).
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) return 0;
    for (int field = 2; field < 22 && p != nullptr; ++field) p = std::strchr(p + 1, ' ');
    return p != nullptr ? std::strtoull(p + 1, nullptr, 10) : 0;
}

bool region_owner_alive(const child_region* r) noexcept {
    int32_t pid = r->pid.load(std::memory_order_acquire);
    if (pid < 0) return process_exists(-pid);  // setting the region up
    if (pid == 0) return false;
    // Without /proc, whether the pid exists is all there is to know.
    uint64_t ticks = process_start_ticks(pid);
    return ticks != 0 ? ticks == r->start_ticks : process_exists(pid);
}

child_region* segment_claim(segment_header* h, int32_t pid, uint32_t generation) noexcept {
    for (uint32_t i = 0; i < h->children; ++i) {
        child_region* r = region_at(h, int(i));
        int32_t owner = r->pid.load(std::memory_order_acquire);
        // Free, or left behind by a child that died without giving it back
        // (its pid gone, or taken by a process started later).
        if (owner != 0 && region_owner_alive(r)) continue;
        if (!r->pid.compare_exchange_strong(owner, -pid, std::memory_order_acq_rel)) continue;
        r->start_ticks = process_start_ticks(pid);
        r->generation = generation;
        r->started_ms = wall_ms();
        r->rss_bytes.store(0, std::memory_order_relaxed);
        r->refused.store(0, std::memory_order_relaxed);
        r->untracked.store(0, std::memory_order_relaxed);
        r->slots_used.store(0, std::memory_order_relaxed);
        r->stacks_asked.store(0, std::memory_order_relaxed);
        r->stacks_done.store(0, std::memory_order_relaxed);
        r->stacks_seq.store(0, std::memory_order_relaxed);
        r->stacks_len.store(0, std::memory_order_relaxed);
        r->pid.store(pid, std::memory_order_release);
        return r;
    }
    return nullptr;
}

void segment_release(child_region* r, int32_t pid) noexcept {
    int32_t owner = pid;
    r->pid.compare_exchange_strong(owner, 0, std::memory_order_acq_rel);
}

int64_t wall_ms() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------- recording

void record_request(interp_slot* s, const request_sample& r) noexcept {
    s->requests.fetch_add(1, std::memory_order_relaxed);
    int cls = r.http_status / 100;
    s->responses[cls >= 1 && cls <= 5 ? cls : 0].fetch_add(1, std::memory_order_relaxed);
    if (r.exception) s->exceptions.fetch_add(1, std::memory_order_relaxed);
    s->latency.add(r.latency_ns);
    s->gil_wait.add(r.gil_wait_ns);
    s->cpu_ns.fetch_add(uint64_t(r.cpu_ns > 0 ? r.cpu_ns : 0), std::memory_order_relaxed);
}

// ---------------------------------------------------------------- child

child_metrics::child_metrics(segment_header* segment, child_region* region, const log_sink& log) noexcept
    : segment_(segment), region_(segment != nullptr ? region : nullptr), log_(log) {}

interp_slot* child_metrics::claim_slot_locked() noexcept {
    uint32_t used = region_->slots_used.load(std::memory_order_relaxed);
    if (used < segment_->slots) {
        region_->slots_used.store(used + 1, std::memory_order_release);
        return slot_at(segment_, region_, int(used));
    }
    // Full: the slot of the interpreter that ended first is reused.
    interp_slot* oldest = nullptr;
    for (uint32_t j = 0; j < used; ++j) {
        interp_slot* s = slot_at(segment_, region_, int(j));
        if (s->state.load(std::memory_order_relaxed) != uint32_t(slot_state::ended)) continue;
        if (oldest == nullptr || s->ended_ms.load() < oldest->ended_ms.load()) oldest = s;
    }
    if (oldest != nullptr) oldest->state.store(uint32_t(slot_state::free), std::memory_order_release);
    return oldest;
}

interp_slot* child_metrics::slot_for(const pyinterp::view& v, const char* group, const placement_info& p) noexcept {
    if (region_ == nullptr) return nullptr;
    int64_t id = v.id();
    std::lock_guard<std::mutex> lk(mu_);
    // CPython never reuses an interpreter id within a process.
    for (const auto& k : known_)
        if (k.second->interpreter_id == id) return k.second;
    interp_slot* s = claim_slot_locked();
    if (s == nullptr) {
        if (!full_logged_)
            app::log(log_, level::warn,
                     "PYI0830: no counter slot left for interpreter '%s' (all %u in use): its requests are counted "
                     "as untracked; raise PyInterpMetricsSlots",
                     v.name(), segment_->slots);
        full_logged_ = true;
        return nullptr;
    }
    try {
        known_.emplace_back(v, s);
    } catch (...) {
        return nullptr;
    }
    zero(static_cast<void*>(s), sizeof *s);
    s->where = uint32_t(p.where);
    s->pool_member = p.pool_member;
    s->pool_size = p.pool_size;
    s->interpreter_id = id;
    s->created_ms = wall_ms();
    copy_name(s->group, sizeof s->group, group);
    copy_name(s->interpreter, sizeof s->interpreter, v.name());
    copy_name(s->why, sizeof s->why, p.why);
    s->state.store(uint32_t(slot_state::live), std::memory_order_release);
    return s;
}

void child_metrics::interpreter_ended(int64_t id) noexcept {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = known_.begin(); it != known_.end(); ++it) {
        if (it->second->interpreter_id != id) continue;
        it->second->thread_states.store(0, std::memory_order_relaxed);
        it->second->ended_ms.store(wall_ms(), std::memory_order_relaxed);
        it->second->state.store(uint32_t(slot_state::ended), std::memory_order_release);
        known_.erase(it);
        return;
    }
}

void child_metrics::count_refused() noexcept {
    if (region_ != nullptr) region_->refused.fetch_add(1, std::memory_order_relaxed);
}

void child_metrics::count_untracked() noexcept {
    if (region_ != nullptr) region_->untracked.fetch_add(1, std::memory_order_relaxed);
}

void child_metrics::sample(int64_t now_ms) noexcept {
    if (region_ == nullptr || now_ms - last_sample_ms_ < k_sample_period_ms) return;
    last_sample_ms_ = now_ms;
    region_->rss_bytes.store(own_rss_bytes(), std::memory_order_relaxed);
    bool history = now_ms - last_history_ms_ >= k_history_period_ms;
    if (history) last_history_ms_ = now_ms;
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [v, s] : known_) {
        if (!v.live()) {
            s->thread_states.store(0, std::memory_order_relaxed);
            s->ended_ms.store(now_ms, std::memory_order_relaxed);
            s->state.store(uint32_t(slot_state::ended), std::memory_order_release);
            continue;
        }
        s->thread_states.store(uint32_t(v.thread_states()), std::memory_order_relaxed);
        if (!history) continue;
        uint32_t n = s->history_next.load(std::memory_order_relaxed);
        history_point& p = s->history[n % k_history];
        p.requests.store(s->requests.load(std::memory_order_relaxed), std::memory_order_relaxed);
        p.gil_wait_ns.store(s->gil_wait.sum_ns.load(std::memory_order_relaxed), std::memory_order_relaxed);
        p.gil_waits.store(s->gil_wait.count(), std::memory_order_relaxed);
        p.t_ms.store(now_ms, std::memory_order_release);
        s->history_next.store(n + 1, std::memory_order_release);
    }
    // Views of ended interpreters are dropped (their slots stay readable).
    for (auto it = known_.begin(); it != known_.end();) it = it->first.live() ? it + 1 : known_.erase(it);
}

}  // namespace pyinterp::app::metrics
