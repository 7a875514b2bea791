// Stacks on demand for the status page (?stacks), across child processes:
// the page asks every live child through the counters' shared memory
// (app/metrics.h: a number in the child's region); each child's watchdog
// sees it on its next tick, reads the Python stack of every request in
// flight inside its own interpreter (app/inflight.h: collect_stacks) and
// writes a short text answer back into its region.  The worker answering
// the page never takes a GIL: it only waits, bounded, for the answers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/inflight.h"
#include "app/metrics.h"

namespace pyinterp::mod {

// One request in a child's answer.
struct stack_entry {
    uint64_t id = 0;
    std::string group, interpreter, url;
    int64_t interpreter_id = -1;
    unsigned long thread = 0;  // the OS thread's ident (pthread_t)
    double elapsed_s = 0;
    bool captured = false;  // false: it left Python before its stack was read
    std::vector<app::stack_frame> frames;
};

// One child's answer.
struct child_stacks {
    int32_t pid = 0;
    bool answered = false;   // false: no answer in time (its watchdog waits for a GIL)
    bool truncated = false;  // the answer did not fit in the region
    std::vector<stack_entry> requests;
};

// On the child's watchdog thread, each tick: answers a pending request for
// stacks, if any.  No GIL held (it takes each interpreter's GIL in turn).
void stacks_answer(app::metrics::child_region* r, const app::inflight_registry& reg) noexcept;

// Asks every live child for its stacks and waits up to `timeout_ms` for all
// answers.  Never takes a GIL.
std::vector<child_stacks> stacks_gather(app::metrics::segment_header* h, int timeout_ms);

}  // namespace pyinterp::mod
