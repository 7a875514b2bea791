// Where an application runs, and the interpreters it runs in.
//
// Three places, from the most parallel: an interpreter with its own GIL
// (Python 3.12+; several of them for one application group with
// interpreters=N, a pool), a subinterpreter sharing the main interpreter's
// GIL, the main interpreter.  The configuration says where an application
// starts (configured_placement: gil=auto|own|shared on its alias or group,
// %{GLOBAL} for main); what its extensions turn out to need moves it down,
// once per process (the import hook finds it out, fallback.h; the executor
// moves it, executor.h).  This file keeps the moves (a process-wide table of
// strings) and the interpreters of each group and placement (the executor's
// interpreter_table), and names them.  No GIL is needed anywhere here except
// where a function says so.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "log.h"
#include "pyinterp/dispatch.hpp"
#include "target.h"

namespace pyinterp::app {

enum class placement : int {
    own = 0,     // a subinterpreter with its own GIL
    shared = 1,  // a subinterpreter sharing the main interpreter's GIL
    main = 2,    // the main interpreter
};

// "own", "shared", "main": the value of the pyinterp.placement environ key.
const char* placement_name(placement p) noexcept;
// "an own-GIL interpreter", "a shared-GIL subinterpreter", "the main interpreter".
const char* placement_words(placement p) noexcept;

// True when gil=auto means an own GIL with the Python running: 3.13+, and
// 3.12.4+ (3.12 before 3.12.4 frees objects another interpreter still uses
// when an own-GIL interpreter ends, gh-119213: auto means shared there).
bool auto_means_own_gil() noexcept;

// Where the configuration puts `t` before anything is known about its
// extensions: main for %{GLOBAL}, else own or shared from t.gil and the
// Python running.
placement configured_placement(const request_target& t) noexcept;

// Where `t` runs now: configured_placement(t), or where its application was
// moved in this process.  Lock-free while nothing was ever moved.
placement current_placement(const request_target& t) noexcept;

// Records that the application (script, group) moved to `to` (shared or
// main).  True the first time.  For main, *others_in_main names (quoted,
// comma-separated) the other scripts moved to main before, when this
// script is new there (they lose isolation from each other).
bool record_move(const char* script, const char* group, placement to, std::string* others_in_main) noexcept;

// One interpreter of an interpreter_table (a pool member, or the only
// interpreter of its group and placement).
struct interp_member {
    pyinterp::view view;
    std::atomic<int> busy{0};  // rounds holding it (waiting for its GIL, inside)
    int index = 1;             // 1-based position in its pool
};

// The interpreter one round of the executor runs in, held busy for the
// lease's lifetime (the least-busy choice counts it).  Move-only.
class interp_lease {
public:
    interp_lease() noexcept = default;
    interp_lease(interp_lease&& o) noexcept = default;
    interp_lease& operator=(interp_lease&& o) noexcept;
    interp_lease(const interp_lease&) = delete;
    interp_lease& operator=(const interp_lease&) = delete;
    ~interp_lease() { release(); }

    explicit operator bool() const noexcept { return static_cast<bool>(view_); }
    const pyinterp::view& view() const noexcept { return view_; }
    placement where() const noexcept { return where_; }
    int member() const noexcept { return member_; }    // 1-based; 0 for main
    int members() const noexcept { return members_; }  // pool size; 0 for main

private:
    friend class interpreter_table;
    void release() noexcept;
    pyinterp::view view_;
    std::shared_ptr<interp_member> held_;
    placement where_ = placement::main;
    int member_ = 0;
    int members_ = 0;
};

// The interpreters of every (group, placement) of one executor, created on
// first use: one interpreter for a shared-GIL group or an own-GIL group of
// interpreters=1; for interpreters=N, a pool of up to N own-GIL
// interpreters, grown one at a time when every member is busy, requests
// going to the least busy member.  Each creation is logged (PYI0120 with
// its GIL and pool position; PYI0121 when it fails).  A member whose
// interpreter ended (an application moved out of it) is made again when
// needed.
class interpreter_table {
public:
    explicit interpreter_table(const log_sink& log) noexcept;
    ~interpreter_table();
    interpreter_table(const interpreter_table&) = delete;
    interpreter_table& operator=(const interpreter_table&) = delete;

    // The interpreter for `t` at placement `p`: the main interpreter for
    // main; else the least busy member of t.group's interpreters for `p`
    // (`member` 0), or member `member` (1-based, for a preload into every
    // member).  May create an interpreter (then no GIL may be held: creation
    // enters main).  An empty lease on failure, with the dispatch status in
    // *status (logged).
    interp_lease acquire(const request_target& t, placement p, int member, int* status) noexcept;

    // The size of the pool t.group gets at placement `p` (1 unless own).
    static int pool_size(const request_target& t, placement p) noexcept;

private:
    struct interp_set;
    interp_set* set_for(const request_target& t, placement p);
    static std::shared_ptr<interp_member> pick(interp_set& s, int member);
    static int free_index(const interp_set& s);
    static interp_lease lease_of(const std::shared_ptr<interp_member>& m, const interp_set& s);
    pyinterp::view create(const interp_set& s, int index, int* status) noexcept;

    log_sink log_;
    std::mutex mu_;
    std::condition_variable grown_;
    std::map<std::string, std::unique_ptr<interp_set>> sets_;  // group '\n' placement
    std::map<std::string, placement> first_;                   // group -> placement of its first set
};

}  // namespace pyinterp::app
