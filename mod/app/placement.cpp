// Placement of applications and their interpreters (see placement.h).
#include "placement.h"

#include <Python.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>

#include "script.h"

namespace pyinterp::app {
namespace {

// The dispatch library limits names to 255 bytes and reserves "main".
constexpr size_t k_max_interp_name = 255;

// Process-wide moves: strings only.
struct moves {
    std::mutex mu;
    std::atomic<bool> any{false};         // something moved: the request path's lock-free check
    std::map<std::string, placement> to;  // script '\n' group -> where it moved
    std::set<std::string> in_main;        // distinct scripts moved to main
};

moves& table() {
    static moves* m = new moves;  // never destroyed: used until the process exits
    return *m;
}

std::string key_of(const char* script, const char* group) {
    return std::string(script) + '\n' + group;
}

// The dispatch library's name for the interpreter of `group`: the group's
// name ("main" is reserved: "group:main"), with `suffix`, cut to fit.
std::string interpreter_name(const char* group, const std::string& suffix) {
    std::string name = std::strcmp(group, "main") == 0 ? std::string("group:main") : std::string(group);
    name += suffix;
    if (name.size() > k_max_interp_name) {
        char tail[24];
        std::snprintf(tail, sizeof tail, "#%016llx",
                      static_cast<unsigned long long>(stable_hash(name.data(), name.size())));
        name = name.substr(0, 200) + tail;
    }
    return name;
}

}  // namespace

const char* placement_name(placement p) noexcept {
    switch (p) {
        case placement::own: return "own";
        case placement::shared: return "shared";
        case placement::main: break;
    }
    return "main";
}

const char* placement_words(placement p) noexcept {
    switch (p) {
        case placement::own: return "an own-GIL interpreter";
        case placement::shared: return "a shared-GIL subinterpreter";
        case placement::main: break;
    }
    return "the main interpreter";
}

bool auto_means_own_gil() noexcept {
    if (pyinterp_supports_own_gil() == 0) return false;
    // Py_Version: the running library's version, not the headers'.
    return Py_Version >= 0x030C04F0;
}

placement configured_placement(const request_target& t) noexcept {
    if (*t.group == '\0') return placement::main;
    switch (t.gil) {
        case gil_mode::own: return pyinterp_supports_own_gil() != 0 ? placement::own : placement::shared;
        case gil_mode::shared: return placement::shared;
        case gil_mode::unset:
        case gil_mode::auto_: break;
    }
    return auto_means_own_gil() ? placement::own : placement::shared;
}

placement current_placement(const request_target& t) noexcept {
    placement p = configured_placement(t);
    if (p == placement::main) return p;
    try {
        moves& m = table();
        // Usually nothing ever moved: no lock, no key built.
        if (!m.any.load(std::memory_order_acquire)) return p;
        std::lock_guard<std::mutex> lk(m.mu);
        auto it = m.to.find(key_of(t.script, t.group));
        if (it != m.to.end() && it->second > p) p = it->second;
    } catch (...) {
        // Out of memory: where the configuration says.
    }
    return p;
}

bool record_move(const char* script, const char* group, placement to, std::string* others_in_main) noexcept {
    try {
        moves& m = table();
        std::lock_guard<std::mutex> lk(m.mu);
        placement& at = m.to.emplace(key_of(script, group), placement::own).first->second;
        bool first = at < to;
        if (first) at = to;
        m.any.store(true, std::memory_order_release);
        if (to == placement::main && m.in_main.insert(script).second && others_in_main != nullptr) {
            for (const std::string& other : m.in_main)
                if (other != script) *others_in_main += (others_in_main->empty() ? "'" : ", '") + other + "'";
        }
        return first;
    } catch (...) {
        // Out of memory: the move is not remembered; the next request finds
        // out again and moves again.
        return true;
    }
}

// ------------------------------------------------------------ leases

interp_lease& interp_lease::operator=(interp_lease&& o) noexcept {
    if (this != &o) {
        release();
        view_ = std::move(o.view_);
        held_ = std::move(o.held_);
        where_ = o.where_;
        member_ = o.member_;
        members_ = o.members_;
    }
    return *this;
}

void interp_lease::release() noexcept {
    if (held_) held_->busy.fetch_sub(1, std::memory_order_relaxed);
    held_.reset();
}

// ------------------------------------------------------------ interpreter table

// The interpreters of one (group, placement).
struct interpreter_table::interp_set {
    std::string group;
    placement where = placement::shared;
    int size = 1;                                         // members wanted at most
    std::string base;                                     // interpreter name, or the pool members' prefix
    bool growing = false;                                 // a thread is creating a member (under mu_)
    std::vector<std::shared_ptr<interp_member>> members;  // live ones, under mu_
};

interpreter_table::interpreter_table(const log_sink& log) noexcept : log_(log) {}
interpreter_table::~interpreter_table() = default;

int interpreter_table::pool_size(const request_target& t, placement p) noexcept {
    if (p != placement::own || t.interpreters < 1) return 1;
    return t.interpreters < k_max_interpreters ? t.interpreters : k_max_interpreters;
}

// Under mu_.
interpreter_table::interp_set* interpreter_table::set_for(const request_target& t, placement p) {
    std::string key = std::string(t.group) + '\n' + placement_name(p);
    auto it = sets_.find(key);
    if (it != sets_.end()) {
        // Aliases (or a PyInterpImportScript) of one group asking for
        // different pool sizes: the largest wins.
        it->second->size = std::max(it->second->size, pool_size(t, p));
        return it->second.get();
    }
    auto s = std::make_unique<interp_set>();
    s->group = t.group;
    s->where = p;
    s->size = pool_size(t, p);
    // The group's first placement gets its plain name; a second one (an
    // application moved from own to shared, or aliases configuring the
    // same group differently) says which it is.
    placement first = first_.emplace(t.group, p).first->second;
    std::string suffix = first == p ? "" : p == placement::own ? " (own GIL)" : " (shared GIL)";
    s->base = interpreter_name(t.group, suffix);
    return sets_.emplace(key, std::move(s)).first->second.get();
}

pyinterp::view interpreter_table::create(const interp_set& s, int index, int* status) noexcept {
    std::string name;
    try {
        name = s.size > 1 ? s.base + "#" + std::to_string(index) : s.base;
    } catch (...) {
        *status = PYINTERP_ERR_NOMEM;
        return {};
    }
    pyinterp_gil_mode gil = s.where == placement::own ? PYINTERP_GIL_OWN : PYINTERP_GIL_SHARED;
    pyinterp::view v = pyinterp::view::find(name.c_str(), status);
    if (!v) {
        v = pyinterp::view::create(name.c_str(), gil, status);
        if (*status == PYINTERP_ERR_EXISTS)
            v = pyinterp::view::find(name.c_str(), status);  // lost a race
        else if (v) {
            char pool[64] = "";
            if (s.size > 1) std::snprintf(pool, sizeof pool, ", pool member %d of %d", index, s.size);
            app::log(log_, level::info,
                     "PYI0120: created interpreter '%s' (id %lld, %s GIL%s) for application group '%s'", v.name(),
                     static_cast<long long>(v.id()), v.own_gil() ? "own" : "shared", pool, s.group.c_str());
        }
    }
    if (v && v.own_gil() != (gil == PYINTERP_GIL_OWN)) {
        app::log(log_, level::error,
                 "PYI0121: cannot create the interpreter of application group '%s': an interpreter named '%s' "
                 "exists with %s GIL",
                 s.group.c_str(), name.c_str(), v.own_gil() ? "its own" : "a shared");
        *status = PYINTERP_ERR_EXISTS;
        return {};
    }
    if (!v)
        app::log(log_, level::error, "PYI0121: cannot create the interpreter of application group '%s': %s",
                 s.group.c_str(), pyinterp_strerror(*status));
    return v;
}

// Under mu_: drops the members whose interpreter ended (made again when
// needed), then returns member `member`, or with 0 the least busy one
// (the lowest index among equals), or nullptr.
std::shared_ptr<interp_member> interpreter_table::pick(interp_set& s, int member) {
    auto& ms = s.members;
    for (size_t i = 0; i < ms.size();) {
        if (!ms[i]->view.live())
            ms.erase(ms.begin() + long(i));
        else
            ++i;
    }
    std::shared_ptr<interp_member> best;
    for (const auto& m : ms) {
        if (member != 0) {
            if (m->index == member) best = m;
        } else if (!best || m->busy.load(std::memory_order_relaxed) < best->busy.load(std::memory_order_relaxed) ||
                   (m->busy.load(std::memory_order_relaxed) == best->busy.load(std::memory_order_relaxed) &&
                    m->index < best->index)) {
            best = m;
        }
    }
    return best;
}

// Under mu_: the lowest index no member has.
int interpreter_table::free_index(const interp_set& s) {
    for (int index = 1; index < s.size; ++index) {
        bool taken = false;
        for (const auto& m : s.members) taken = taken || m->index == index;
        if (!taken) return index;
    }
    return s.size;
}

// Marks `m` busy and hands it out.
interp_lease interpreter_table::lease_of(const std::shared_ptr<interp_member>& m, const interp_set& s) {
    interp_lease lease;
    m->busy.fetch_add(1, std::memory_order_relaxed);
    lease.view_ = m->view;
    lease.held_ = m;
    lease.where_ = s.where;
    lease.member_ = m->index;
    lease.members_ = s.size;
    return lease;
}

interp_lease interpreter_table::acquire(const request_target& t, placement p, int member, int* status) noexcept {
    *status = PYINTERP_OK;
    if (p == placement::main) {
        interp_lease lease;
        lease.view_ = pyinterp::view::main(status);
        return lease;
    }
    try {
        std::unique_lock<std::mutex> lk(mu_);
        interp_set* s = set_for(t, p);
        if (member > s->size) member = s->size;
        for (;;) {
            std::shared_ptr<interp_member> best = pick(*s, member);
            // A new member when the one asked for is missing, or when every
            // member is busy and the pool may grow.
            bool grow = member != 0 ? !best
                                    : !best || (best->busy.load(std::memory_order_relaxed) > 0 &&
                                                int(s->members.size()) < s->size);
            if (best && (!grow || s->growing)) return lease_of(best, *s);
            if (s->growing) {
                grown_.wait(lk);
                continue;
            }
            // Create it without the lock: creating an interpreter takes
            // milliseconds, and other groups' requests go on meanwhile.
            int index = member != 0 ? member : free_index(*s);
            s->growing = true;
            lk.unlock();
            pyinterp::view v = create(*s, index, status);
            lk.lock();
            s->growing = false;
            grown_.notify_all();
            if (!v) {
                // Logged by create(); serve with the members there are.
                if (!best || !best->view.live()) return {};
                *status = PYINTERP_OK;
                return lease_of(best, *s);
            }
            auto made = std::make_shared<interp_member>();
            made->view = std::move(v);
            made->index = index;
            s->members.push_back(made);
            return lease_of(made, *s);
        }
    } catch (...) {
        *status = PYINTERP_ERR_NOMEM;
        return {};
    }
}

}  // namespace pyinterp::app
