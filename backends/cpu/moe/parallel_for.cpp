// The MoE kernels' own loops (router rows, permute, combine, the small-block dot products of
// decode), on OpenMP's threads: the same threads oneDNN runs its primitives on. Chunks are handed
// out dynamically, so uneven chunks balance themselves.
//
// Why not a pool of porta's own threads that sleep between loops: oneDNN's OpenMP workers
// spin-wait after each primitive, so a pool thread woken right after a GEMM finds its core taken.
// On 2 cores, decode at T = 1 measured 15.5 ms with such a pool and 8.0 ms here (bf16 weights,
// DeepSeek-V2-Lite layer; 7.97 ms with the pool and OMP_WAIT_POLICY=passive).
#include <algorithm>
#include <exception>
#include <mutex>

#include "cpu_threads.hpp"
#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {

int worker_count() { return cpu_threads(); }

void parallel_for(std::int64_t count, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  // A few chunks per worker so that uneven chunks even out, never smaller than `grain`.
  const std::int64_t workers = active_threads();
  const std::int64_t chunk = std::max(grain, (count + workers * 4 - 1) / (workers * 4));
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  if (chunks == 1 || workers == 1) {
    body(0, count);
    return;
  }
  // An exception must not leave an OpenMP region: the first is kept and rethrown here.
  std::exception_ptr error;
  std::mutex error_mutex;
#pragma omp parallel for num_threads(static_cast <int>(std::min(workers, chunks))) schedule(dynamic)
  for (std::int64_t i = 0; i < chunks; ++i) {
    try {
      const std::int64_t begin = i * chunk;
      body(begin, std::min(count, begin + chunk));
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace porta::detail::cpu::moe
