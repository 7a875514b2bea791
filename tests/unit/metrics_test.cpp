// The per-interpreter counters (mod/app/metrics.h): the segment's layout,
// regions claimed and given back by processes, histograms, and what the
// executor counts for each request.
#include "app/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "app/executor.h"
#include "app_support.h"
#include "pyinterp/py/ref.h"

namespace metrics = pyinterp::app::metrics;

namespace {

// A zeroed, 64-byte aligned segment on the heap.
struct heap_segment {
    void* mem = nullptr;
    metrics::segment_header* h = nullptr;

    heap_segment(int children, int slots) {
        size_t n = metrics::segment_bytes(children, slots);
        mem = std::aligned_alloc(64, (n + 63) & ~size_t(63));
        std::memset(mem, 0, n);
        h = metrics::segment_format(mem, children, slots);
    }
    ~heap_segment() { std::free(mem); }
};

TEST(MetricsHistogram, CountsEachValueInTheFirstBucketItFits) {
    heap_segment seg(1, 1);
    metrics::child_region* r = metrics::segment_claim(seg.h, getpid(), 1);
    ASSERT_NE(r, nullptr);
    metrics::histogram& h = metrics::slot_at(seg.h, r, 0)->latency;
    h.add(0);                           // <= 10 us
    h.add(10 * 1000);                   // == 10 us: still the first
    h.add(10 * 1000 + 1000);            // 11 us: the second (<= 25)
    h.add(999LL * 1000 * 1000 * 1000);  // 999 s: above the last bound
    EXPECT_EQ(h.buckets[0].load(), 2u);
    EXPECT_EQ(h.buckets[1].load(), 1u);
    EXPECT_EQ(h.buckets[metrics::k_buckets - 1].load(), 1u);
    EXPECT_EQ(h.count(), 4u);
    EXPECT_EQ(h.sum_ns.load(), uint64_t(10 * 1000 + 11 * 1000 + 999LL * 1000 * 1000 * 1000));
}

TEST(MetricsSegment, LayoutFitsOnlyItsOwnGeometry) {
    heap_segment seg(3, 5);
    EXPECT_TRUE(metrics::segment_fits(seg.h, 3, 5));
    EXPECT_FALSE(metrics::segment_fits(seg.h, 4, 5));
    EXPECT_FALSE(metrics::segment_fits(seg.h, 3, 6));
    // Regions and slots do not overlap and stay inside the segment.
    auto* end = static_cast<char*>(seg.mem) + metrics::segment_bytes(3, 5);
    for (int i = 0; i < 3; ++i) {
        metrics::child_region* r = metrics::region_at(seg.h, i);
        metrics::interp_slot* last = metrics::slot_at(seg.h, r, 4);
        EXPECT_LE(reinterpret_cast<char*>(last + 1), end);
        if (i > 0) {
            EXPECT_LE(reinterpret_cast<char*>(metrics::slot_at(seg.h, metrics::region_at(seg.h, i - 1), 4) + 1),
                      reinterpret_cast<char*>(r));
        }
    }
}

// A region is claimed once per process; one whose owner died is claimed
// again, reset; a full segment says so.
TEST(MetricsSegment, RegionsAreClaimedPerProcessAndReclaimedFromDeadOnes) {
    heap_segment seg(2, 2);
    metrics::child_region* mine = metrics::segment_claim(seg.h, getpid(), 7);
    ASSERT_NE(mine, nullptr);
    EXPECT_EQ(mine->pid.load(), getpid());
    EXPECT_EQ(mine->generation, 7u);
    EXPECT_TRUE(metrics::region_owner_alive(mine));
    mine->refused.store(5);
    // The other region as a child that died without giving it back left it.
    pid_t child = fork();
    if (child == 0) _exit(0);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    metrics::child_region* other = metrics::region_at(seg.h, 1);
    other->pid.store(child);
    other->start_ticks = 12345;
    other->refused.store(9);
    EXPECT_FALSE(metrics::region_owner_alive(other));
    // A region of a live process is never taken; the dead child's is, reset.
    const int32_t newcomer = 1;  // init: a live process, started before us
    metrics::child_region* again = metrics::segment_claim(seg.h, newcomer, 8);
    ASSERT_EQ(again, other);
    EXPECT_EQ(again->pid.load(), newcomer);
    EXPECT_TRUE(metrics::region_owner_alive(again));
    EXPECT_EQ(again->refused.load(), 0u);
    EXPECT_EQ(again->generation, 8u);
    EXPECT_EQ(mine->refused.load(), 5u);
    EXPECT_EQ(metrics::segment_claim(seg.h, getpid(), 9), nullptr);  // both taken
    metrics::segment_release(mine, getpid() + 1);                    // not the owner: nothing
    EXPECT_EQ(mine->pid.load(), getpid());
    metrics::segment_release(mine, getpid());
    EXPECT_EQ(mine->pid.load(), 0);
    metrics::segment_release(again, newcomer);
    EXPECT_EQ(again->pid.load(), 0);
}

TEST(MetricsSegment, AFullSegmentClaimsNothing) {
    heap_segment seg(1, 1);
    ASSERT_NE(metrics::segment_claim(seg.h, getpid(), 1), nullptr);
    EXPECT_EQ(metrics::segment_claim(seg.h, getpid(), 1), nullptr);
}

// --------------------------------------------------------------- executor

struct counted_request {
    std::string body;
    int answer = 200;
    bool raised = false;
};

int serve_counted(const app::application& a, const app::request_target&, void* request) noexcept {
    auto* c = static_cast<counted_request*>(request);
    pyinterp::py::ref env = pyinterp::py::ref::steal(PyDict_New());
    pyinterp::py::ref result =
        pyinterp::py::ref::steal(PyObject_CallFunctionObjArgs(a.callable, env.get(), Py_None, nullptr));
    if (!result) {
        PyErr_Clear();
        c->raised = true;
        return 500;
    }
    c->answer = int(PyLong_AsLong(result.get()));
    return 0;
}

int load_failed_counted(const app::request_target&, void* request) noexcept {
    PyErr_Clear();
    static_cast<counted_request*>(request)->raised = true;
    return 500;
}

app::response_outcome outcome_counted(const app::run_result& r, void* request) noexcept {
    auto* c = static_cast<counted_request*>(request);
    return {r.what == app::run_result::served && r.status == 0 ? c->answer : 500, c->raised};
}

const app::protocol counted_protocol = {"test", serve_counted, load_failed_counted, nullptr, nullptr, outcome_counted};
const app::protocol preload_like = {"test", serve_counted, load_failed_counted, nullptr, nullptr, nullptr};

class MetricsExecutor : public ::testing::Test {
protected:
    MetricsExecutor() : seg_(1, 4) {}
    void SetUp() override {
        region_ = metrics::segment_claim(seg_.h, getpid(), 1);
        ASSERT_NE(region_, nullptr);
        child_ = std::make_unique<metrics::child_metrics>(seg_.h, region_, apptest::log_sink());
        app::executor_options opt;
        opt.log = apptest::log_sink();
        opt.metrics = child_.get();
        opt.cpu_sample_every = 1;  // every request's CPU time, so the figures are exact
        ex_ = std::make_unique<app::executor>(opt);
    }
    void TearDown() override { metrics::segment_release(region_, getpid()); }

    app::run_result run(const std::string& script, const char* group, const app::protocol& p = counted_protocol) {
        app::request_target t;
        t.script = script.c_str();
        t.group = group;
        counted_request c;
        return ex_->run(t, p, &c);
    }
    // The live slot of `group`, or nullptr.
    metrics::interp_slot* slot(const std::string& group) {
        for (uint32_t j = 0; j < region_->slots_used.load(); ++j) {
            metrics::interp_slot* s = metrics::slot_at(seg_.h, region_, int(j));
            if (s->state.load() == uint32_t(metrics::slot_state::live) && group == s->group) return s;
        }
        return nullptr;
    }

    heap_segment seg_;
    metrics::child_region* region_ = nullptr;
    std::unique_ptr<metrics::child_metrics> child_;
    std::unique_ptr<app::executor> ex_;
};

// The script answers with the status its environ names... here, a status
// per call from a list, so one script gives 2xx, 4xx and an exception.
constexpr const char* k_answers =
    "answers = iter([200, 201, 404, 'raise', 503])\n"
    "def application(environ, start_response):\n"
    "    a = next(answers)\n"
    "    if a == 'raise':\n"
    "        raise RuntimeError('on purpose')\n"
    "    return a\n";

TEST_F(MetricsExecutor, CountsEachRequestInItsInterpretersSlot) {
    std::string script = apptest::write_script("answers.wsgi", k_answers);
    for (int i = 0; i < 5; ++i) run(script, "metrics-a");
    run(apptest::write_script("hello.wsgi", "def application(e, s):\n    return 200\n"), "");
    metrics::interp_slot* a = slot("metrics-a");
    metrics::interp_slot* main = slot("");
    ASSERT_NE(a, nullptr);
    ASSERT_NE(main, nullptr);
    EXPECT_EQ(a->requests.load(), 5u);
    EXPECT_EQ(a->responses[2].load(), 2u);
    EXPECT_EQ(a->responses[4].load(), 1u);
    EXPECT_EQ(a->responses[5].load(), 2u);  // the exception's 500 and the 503
    EXPECT_EQ(a->exceptions.load(), 1u);
    EXPECT_EQ(a->latency.count(), 5u);
    EXPECT_EQ(a->gil_wait.count(), 5u);
    EXPECT_GT(a->latency.sum_ns.load(), 0u);
    EXPECT_GT(a->cpu_ns.load(), 0u);
    EXPECT_LE(a->cpu_ns.load(), a->latency.sum_ns.load());  // CPU inside the interpreter, within the wall time
    EXPECT_EQ(a->script_loads.load(), 1u);
    EXPECT_EQ(a->script_reloads.load(), 0u);
    EXPECT_EQ(a->in_flight.load(), 0);
    EXPECT_STREQ(a->interpreter, "metrics-a");
    EXPECT_EQ(a->interpreter_id, pyinterp::view::find("metrics-a").id());
    // gil=auto, the default: its own GIL from Python 3.12.4 (placement.h).
    EXPECT_EQ(a->where,
              uint32_t(app::auto_means_own_gil() ? metrics::placement::own_gil : metrics::placement::shared_gil));
    EXPECT_EQ(a->pool_size, 1);
    EXPECT_EQ(main->requests.load(), 1u);
    EXPECT_EQ(main->where, uint32_t(metrics::placement::main));
    EXPECT_STREQ(main->interpreter, "main");
    EXPECT_EQ(main->interpreter_id, 0);
    // Sampling reads the cached thread states (this thread's, in each).
    child_->sample(metrics::wall_ms());
    EXPECT_GE(a->thread_states.load(), 1u);
    EXPECT_GT(region_->rss_bytes.load(), 0u);
    EXPECT_EQ(a->history_next.load(), 1u);
    EXPECT_EQ(a->history[0].requests.load(), 5u);
    EXPECT_EQ(pyinterp::view::find("metrics-a").end(), PYINTERP_OK);
    child_->sample(metrics::wall_ms() + 2000);
    EXPECT_EQ(a->state.load(), uint32_t(metrics::slot_state::ended));
    EXPECT_EQ(a->thread_states.load(), 0u);
}

// Sampled (one request in 8 by default), the CPU time is an estimate that
// is right on average: a CPU-bound application, many requests.
TEST_F(MetricsExecutor, SampledCpuTimeIsRightOnAverage) {
    app::executor_options opt;
    opt.log = apptest::log_sink();
    opt.metrics = child_.get();
    ASSERT_EQ(opt.cpu_sample_every, 8u);
    app::executor sampled(opt);
    std::string script =
        apptest::write_script("busy.wsgi",
                              "import time\ndef application(e, s):\n    end = time.thread_time() + 0.002\n"
                              "    while time.thread_time() < end: pass\n    return 200\n");
    app::request_target t;
    t.script = script.c_str();
    t.group = "metrics-cpu";
    counted_request c;
    sampled.run(t, counted_protocol, &c);  // loads the script
    metrics::interp_slot* s = slot("metrics-cpu");
    ASSERT_NE(s, nullptr);
    uint64_t before = s->cpu_ns.load();
    const int n = 400;  // 2 ms of CPU each: 0.8 s
    for (int i = 0; i < n; ++i) sampled.run(t, counted_protocol, &c);
    double estimate = double(s->cpu_ns.load() - before) / 1e9;
    EXPECT_GT(estimate, 0.8 * 0.5);
    EXPECT_LT(estimate, 0.8 * 1.6 + 0.2);
    EXPECT_EQ(pyinterp::view::find("metrics-cpu").end(), PYINTERP_OK);
}

TEST_F(MetricsExecutor, ReloadsLoadFailuresAndPreloadsAreCountedApart) {
    std::string script = apptest::write_script("reload.wsgi", "def application(e, s):\n    return 200\n");
    run(script, "metrics-b");
    run(script, "metrics-b", preload_like);  // not a request
    metrics::interp_slot* b = slot("metrics-b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->requests.load(), 1u);
    // A rewritten script (another size) is reloaded; one that fails to load
    // answers 500 with an exception.
    {
        std::FILE* f = std::fopen(script.c_str(), "w");
        std::fputs("def application(e, s):\n    return 201  # reloaded\n", f);
        std::fclose(f);
    }
    run(script, "metrics-b");
    run(apptest::write_script("broken.wsgi", "1/0\n"), "metrics-b");
    EXPECT_EQ(b->requests.load(), 3u);
    EXPECT_EQ(b->script_loads.load(), 1u);  // broken.wsgi never loaded
    EXPECT_EQ(b->script_reloads.load(), 1u);
    EXPECT_EQ(b->responses[2].load(), 2u);
    EXPECT_EQ(b->responses[5].load(), 1u);
    EXPECT_EQ(b->exceptions.load(), 1u);
    EXPECT_EQ(region_->refused.load(), 0u);
    EXPECT_EQ(pyinterp::view::find("metrics-b").end(), PYINTERP_OK);
}

// Four slots: the fifth interpreter has none (logged once, its requests
// counted as untracked) until an ended interpreter's slot is reused.
TEST_F(MetricsExecutor, InterpretersBeyondTheSlotsAreUntrackedUntilOneEnds) {
    std::string script = apptest::write_script("hello.wsgi", "def application(e, s):\n    return 200\n");
    const char* groups[] = {"slots-1", "slots-2", "slots-3", "slots-4", "slots-5"};
    for (const char* g : groups) run(script, g);
    run(script, "slots-5");
    EXPECT_EQ(region_->untracked.load(), 2u);
    EXPECT_EQ(apptest::count("PYI0830: no counter slot left for interpreter 'slots-5'"), 1);
    EXPECT_EQ(slot("slots-5"), nullptr);
    EXPECT_EQ(pyinterp::view::find("slots-2").end(), PYINTERP_OK);
    child_->sample(metrics::wall_ms());
    // slots-5 had no slot when it was set up; a new interpreter gets one.
    run(script, "slots-6");
    ASSERT_NE(slot("slots-6"), nullptr);
    EXPECT_EQ(slot("slots-6")->requests.load(), 1u);
    for (const char* g : {"slots-1", "slots-3", "slots-4", "slots-5", "slots-6"})
        EXPECT_EQ(pyinterp::view::find(g).end(), PYINTERP_OK) << g;
}

}  // namespace
