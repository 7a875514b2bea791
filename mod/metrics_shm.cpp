// The counters' shared memory in httpd (see metrics_shm.h).
#include "metrics_shm.h"

#include <ap_mpm.h>
#include <apr_shm.h>
#include <http_core.h>
#include <http_log.h>

#include <unistd.h>

#include <new>

#include "config.h"
#include "error_log.h"

APLOG_USE_MODULE(pyinterp);

namespace pyinterp::mod {
namespace {

namespace metrics = app::metrics;

// The process pool's user data key: survives the module's unloading and
// reloading at a restart.
constexpr const char* k_shm_key = "pyinterp-metrics-shm";

// Set in the parent before it forks (inherited), read by children.
metrics::segment_header* g_segment = nullptr;
// The child's own.
metrics::child_metrics* g_child = nullptr;

// How many children can run at once: ServerLimit of the new generation
// plus as many of the old one still finishing requests after a graceful
// restart (the event MPM starts new children in the scoreboard slots of
// gracefully stopping ones), plus one for a child that exits while its
// successor starts.  Regions nobody claims cost no memory (their pages are
// never touched).
int child_capacity() noexcept {
    int daemons = 0;
    if (ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &daemons) != APR_SUCCESS || daemons < 1) daemons = 1;
    return 2 * daemons + 1;
}

// The segment's header inside an APR segment, aligned to 64 bytes.
metrics::segment_header* header_of(apr_shm_t* shm) noexcept {
    auto base = reinterpret_cast<uintptr_t>(apr_shm_baseaddr_get(shm));
    return reinterpret_cast<metrics::segment_header*>((base + 63) & ~uintptr_t(63));
}

apr_status_t release_region(void*) {
    if (g_child != nullptr && g_child->region() != nullptr) metrics::segment_release(g_child->region(), getpid());
    return APR_SUCCESS;
}

}  // namespace

void metrics_post_config(apr_pool_t*, server_rec* s) noexcept {
    g_segment = nullptr;
    // httpd reads its configuration twice at startup; the first pass is a
    // dry run whose pools go away.
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) return;
    apr_pool_t* proc = s->process->pool;
    int children = child_capacity();
    int slots = server_settings(s).metrics_slots > 0 ? server_settings(s).metrics_slots : k_default_metrics_slots;
    void* kept = nullptr;
    apr_pool_userdata_get(&kept, k_shm_key, proc);
    auto* shm = static_cast<apr_shm_t*>(kept);
    if (shm != nullptr && metrics::segment_fits(header_of(shm), children, slots)) {
        g_segment = header_of(shm);
        return;
    }
    if (shm != nullptr) apr_shm_destroy(shm);  // children still using it keep their mapping
    apr_pool_userdata_set(nullptr, k_shm_key, apr_pool_cleanup_null, proc);
    size_t bytes = metrics::segment_bytes(children, slots) + 64;
    // Anonymous: zero-filled, shared with every child forked afterwards,
    // and its pages cost memory only once touched.
    apr_status_t rv = apr_shm_create(&shm, bytes, nullptr, proc);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s,
                     "PYI0831: cannot make the counters' shared memory (%lu bytes): interpreter counters are off",
                     static_cast<unsigned long>(bytes));
        return;
    }
    apr_pool_userdata_set(shm, k_shm_key, apr_pool_cleanup_null, proc);
    g_segment = metrics::segment_format(header_of(shm), children, slots);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "PYI0832: counters' shared memory: %d child regions of %d interpreter slots, %lu bytes", children,
                 slots, static_cast<unsigned long>(bytes));
}

metrics::child_metrics* metrics_child_init(apr_pool_t* pchild, server_rec* s) noexcept {
    if (g_segment == nullptr) return nullptr;
    metrics::child_region* region =
        metrics::segment_claim(g_segment, getpid(), uint32_t(ap_state_query(AP_SQ_CONFIG_GEN)));
    if (region == nullptr) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "PYI0833: no free counter region for child %ld: its requests are not counted",
                     static_cast<long>(getpid()));
        return nullptr;
    }
    // Lives as long as the process: requests may still count at child exit.
    g_child = new (std::nothrow) metrics::child_metrics(g_segment, region, server_log(s));
    if (g_child == nullptr) {
        metrics::segment_release(region, getpid());
        return nullptr;
    }
    // Registered before the runtime's cleanup, so it runs after it.
    apr_pool_cleanup_register(pchild, nullptr, release_region, apr_pool_cleanup_null);
    return g_child;
}

const metrics::segment_header* metrics_segment() noexcept {
    return g_segment;
}

metrics::segment_header* metrics_segment_mut() noexcept {
    return g_segment;
}

metrics::child_metrics* metrics_child() noexcept {
    return g_child;
}

}  // namespace pyinterp::mod
