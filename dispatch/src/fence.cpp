#include "fence.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pyinterp::detail {

std::atomic<bool> g_light_entry_fence{false};

namespace {
long membarrier(int cmd) noexcept {
    return syscall(__NR_membarrier, cmd, 0, 0);
}
}  // namespace

void fence_init() noexcept {
    if (g_light_entry_fence.load()) return;
    long supported = membarrier(MEMBARRIER_CMD_QUERY);
    if (supported > 0 && (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
        g_light_entry_fence.store(true);
}

void heavy_fence() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (g_light_entry_fence.load(std::memory_order_relaxed)) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

}  // namespace pyinterp::detail
