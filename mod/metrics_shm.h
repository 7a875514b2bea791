// The counters' shared memory in httpd (app/metrics.h): one anonymous
// segment made by the parent in post_config, before it forks, so that
// every child maps the same one and the status page of any child reads all
// of them.  It is kept across graceful restarts (in the process pool's user
// data) while its geometry stays the same, so children of the old and the
// new generation share it; when ServerLimit or PyInterpMetricsSlots change,
// a new one is made (children still running on the old one keep their
// mapping).  No Python anywhere here.
#pragma once

#include <httpd.h>

#include "app/metrics.h"

namespace pyinterp::mod {

// post_config (parent): makes or keeps the segment.  Logged on failure;
// counting is then off.
void metrics_post_config(apr_pool_t* ptemp, server_rec* s) noexcept;

// child_init: claims this child's region (given back when `pchild` is
// cleared) and makes its child_metrics.  nullptr when counting is off.
app::metrics::child_metrics* metrics_child_init(apr_pool_t* pchild, server_rec* s) noexcept;

// The segment (every child's regions), or nullptr.  Any thread.
const app::metrics::segment_header* metrics_segment() noexcept;
app::metrics::segment_header* metrics_segment_mut() noexcept;

// This child's counters, or nullptr.
app::metrics::child_metrics* metrics_child() noexcept;

// Default of PyInterpMetricsSlots.
inline constexpr int k_default_metrics_slots = 32;

}  // namespace pyinterp::mod
