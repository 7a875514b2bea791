// Counters kept per interpreter (and per pool member) of one child process,
// laid out in memory the host provides: an anonymous shared memory segment
// made by httpd's parent before it forks, so that the status page of any
// child reads every child's counters; the heap in unit tests.
//
// A segment holds one region per possible child process; a child claims a
// free one when it starts (or one whose owner died) and gives it back when
// it exits.  A region holds the child's figures and a fixed number of
// interpreter slots.  The executor gives each interpreter a slot the first
// time it enters it (kept in its interp_state, so a request finds its slot
// without a lookup) and adds to a dozen relaxed atomics per request; the
// child's watchdog samples what is not counted per request (cached thread
// states, RSS, the history behind the status page's charts) once a second.
//
// Everything here is plain memory and atomics: no Python, no GIL, any
// thread, and readers in other processes never wait for anything.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "log.h"
#include "pyinterp/dispatch.hpp"

namespace pyinterp::app::metrics {

// Histogram bucket upper bounds in microseconds (a value equal to a bound
// falls in that bucket); one more bucket counts everything above the last.
inline constexpr int64_t k_bounds_us[] = {10,     25,      50,      100,     250,      500,      1000,
                                          2500,   5000,    10000,   25000,   50000,    100000,   250000,
                                          500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000};
inline constexpr int k_buckets = int(sizeof k_bounds_us / sizeof k_bounds_us[0]) + 1;

struct histogram {
    std::atomic<uint64_t> buckets[k_buckets];  // per bucket, not cumulative
    std::atomic<uint64_t> sum_ns;

    void add(int64_t ns) noexcept;
    uint64_t count() const noexcept;
};

// Where an interpreter runs.
enum class placement : uint32_t { main = 0, shared_gil = 1, own_gil = 2 };
const char* placement_name(placement p) noexcept;  // "main", "shared", "own"

// Where an interpreter runs and why, as the executor placed it.
struct placement_info {
    placement where = placement::shared_gil;
    const char* why = "";  // one sentence for the status page
    int pool_member = 0;   // which member of its group's pool (0 outside a pool)
    int pool_size = 1;     // how many interpreters serve its group
};

inline constexpr size_t k_name_bytes = 256;  // group and interpreter names (the dispatch library allows 255)
inline constexpr size_t k_why_bytes = 256;
inline constexpr int k_history = 60;                         // points kept per interpreter...
inline constexpr int64_t k_history_period_ms = 5000;         // ...one every 5 s: the last five minutes
inline constexpr int64_t k_sample_period_ms = 1000;          // thread states and RSS, once a second
inline constexpr size_t k_stacks_bytes = size_t(64) * 1024;  // a child's answer to a request for stacks

enum class slot_state : uint32_t { free = 0, live = 1, ended = 2 };

// Cumulative figures at one moment, for the charts.
struct history_point {
    std::atomic<int64_t> t_ms;  // wall clock; 0: not written yet
    std::atomic<uint64_t> requests;
    std::atomic<uint64_t> gil_wait_ns;
    std::atomic<uint64_t> gil_waits;
};

// One interpreter's counters.  Identity fields are written before `state`
// turns live and not changed afterwards.
struct interp_slot {
    std::atomic<uint32_t> state;  // slot_state
    uint32_t where;               // placement
    int32_t pool_member;
    int32_t pool_size;
    int64_t interpreter_id;
    int64_t created_ms;  // wall clock
    std::atomic<int64_t> ended_ms;
    char group[k_name_bytes];  // "" is %{GLOBAL}
    char interpreter[k_name_bytes];
    char why[k_why_bytes];

    std::atomic<uint64_t> requests;        // answered through this interpreter
    std::atomic<int64_t> in_flight;        // inside it now
    std::atomic<uint64_t> responses[6];    // [1]..[5]: 1xx..5xx; [0]: no HTTP status
    std::atomic<uint64_t> exceptions;      // requests whose application raised (or failed to load)
    histogram latency;                     // from reaching the executor to the response handed to httpd
    histogram gil_wait;                    // entering the interpreter: the wait for its GIL
    std::atomic<uint64_t> cpu_ns;          // CPU time of the serving threads inside the interpreter
    std::atomic<uint64_t> script_loads;    // first loads of a script
    std::atomic<uint64_t> script_reloads;  // loads of a script whose file changed
    std::atomic<uint64_t> routed_away;     // applications moved from here to main (fallback policy)
    std::atomic<uint32_t> thread_states;   // cached thread states (sampled)
    std::atomic<uint32_t> history_next;    // the next history point written (mod k_history)
    history_point history[k_history];
};

// One child process's part of the segment.
struct child_region {
    std::atomic<int32_t> pid;          // 0: free; the owner's pid; -pid while it sets the region up
    uint32_t generation;               // the host's configuration generation when the child started
    uint64_t start_ticks;              // the owner's start time (/proc/PID/stat), telling it from a later process
    int64_t started_ms;                // wall clock
    std::atomic<uint64_t> rss_bytes;   // sampled
    std::atomic<uint64_t> refused;     // requests that found no interpreter to enter
    std::atomic<uint64_t> untracked;   // requests of interpreters that found no free slot
    std::atomic<uint32_t> slots_used;  // slots [0, slots_used) were handed out since it started
    // Stacks on demand (the status page's ?stacks): a reader asks with a
    // number, the child's watchdog writes its answer and the number it
    // answered.  `stacks_seq` is odd while the text is being written.
    std::atomic<uint64_t> stacks_asked;
    std::atomic<uint64_t> stacks_done;
    std::atomic<uint64_t> stacks_seq;
    std::atomic<uint32_t> stacks_len;
    char stacks[k_stacks_bytes];
};

struct segment_header {
    uint64_t magic;
    uint32_t version;
    uint32_t children;  // regions
    uint32_t slots;     // interpreter slots per region
    uint32_t region_bytes;
    int64_t created_ms;
    std::atomic<uint64_t> stacks_asked;  // the last number a reader asked stacks with
};

// Bytes of a segment with `children` regions of `slots` slots.
size_t segment_bytes(int children, int slots) noexcept;

// Lays a segment out in `mem` (segment_bytes() bytes, zero-filled, aligned
// to 64).  Returns its header.
segment_header* segment_format(void* mem, int children, int slots) noexcept;

// True if `h` is a segment laid out for `children` regions of `slots` slots.
bool segment_fits(const segment_header* h, int children, int slots) noexcept;

child_region* region_at(segment_header* h, int i) noexcept;
const child_region* region_at(const segment_header* h, int i) noexcept;
interp_slot* slot_at(segment_header* h, child_region* r, int j) noexcept;
const interp_slot* slot_at(const segment_header* h, const child_region* r, int j) noexcept;

// False only if no process `pid` exists (kill(pid, 0) fails with ESRCH).
bool process_exists(int32_t pid) noexcept;

// The start time of process `pid` in clock ticks since boot (field 22 of
// /proc/PID/stat), or 0.
uint64_t process_start_ticks(int32_t pid) noexcept;

// True while the process that claimed `r` runs (a pid reused by a process
// started later does not count).
bool region_owner_alive(const child_region* r) noexcept;

// Claims a free region (or one whose owner no longer exists) for process
// `pid`, resets it, and returns it; nullptr when every region is taken.
child_region* segment_claim(segment_header* h, int32_t pid, uint32_t generation) noexcept;

// Gives the region back (at child exit).
void segment_release(child_region* r, int32_t pid) noexcept;

// Wall-clock milliseconds since the epoch.
int64_t wall_ms() noexcept;

// What one request came to, for record_request().
struct request_sample {
    int http_status = 0;  // 0: none (no response status known)
    bool exception = false;
    int64_t latency_ns = 0;
    int64_t gil_wait_ns = 0;
    int64_t cpu_ns = 0;
};

void record_request(interp_slot* s, const request_sample& r) noexcept;

// The counters of this child process: its region and which slot each of
// its interpreters has.
class child_metrics {
public:
    // `region` may be nullptr (no segment, or no free region): then nothing
    // is counted.
    child_metrics(segment_header* segment, child_region* region, const log_sink& log) noexcept;
    child_metrics(const child_metrics&) = delete;
    child_metrics& operator=(const child_metrics&) = delete;

    // The slot of the interpreter `v` (of application group `group`, ""
    // for %{GLOBAL}), given one the first time.  nullptr when the region is
    // full (logged once, PYI0830).  Any GIL state.
    interp_slot* slot_for(const pyinterp::view& v, const char* group, const placement_info& p) noexcept;

    // The interpreter `id` ended: its slot says so and may be reused.
    void interpreter_ended(int64_t id) noexcept;

    // A request found no interpreter to enter.
    void count_refused() noexcept;
    // A request's interpreter had no slot.
    void count_untracked() noexcept;

    // Once a second at most (earlier calls return at once): cached thread
    // states, ended interpreters, RSS, and every k_history_period_ms a
    // history point.  No GIL (the watchdog's tick).
    void sample(int64_t now_ms) noexcept;

    child_region* region() noexcept { return region_; }

private:
    interp_slot* claim_slot_locked() noexcept;

    segment_header* segment_;
    child_region* region_;
    log_sink log_;
    std::mutex mu_;
    std::vector<std::pair<pyinterp::view, interp_slot*>> known_;  // under mu_
    bool full_logged_ = false;
    int64_t last_sample_ms_ = 0;   // the watchdog thread only
    int64_t last_history_ms_ = 0;  // the watchdog thread only
};

// Adds the counters of a script load (app_cache.cpp), when the
// interpreter has a slot.
inline void count_load(interp_slot* s, bool reload) noexcept {
    if (s != nullptr) (reload ? s->script_reloads : s->script_loads).fetch_add(1, std::memory_order_relaxed);
}

}  // namespace pyinterp::app::metrics
