// A process-wide pool of worker threads for the MoE kernels' own loops. oneDNN threads its
// primitives itself (OpenMP); these loops are the ones it does not run. Work is handed out in
// chunks through an atomic counter, so uneven chunks balance themselves.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu::moe {
namespace {

class Pool {
 public:
  Pool() {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < hw; ++i) workers_.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void run(std::int64_t chunks, const std::function<void(std::int64_t)>& chunk) {
    std::unique_lock job_lock(job_mutex_);  // one parallel loop at a time
    {
      std::lock_guard lock(mutex_);
      chunk_ = &chunk;
      total_ = chunks;
      next_.store(0);
      pending_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    drain();
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    chunk_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void drain() {
    for (;;) {
      const std::int64_t i = next_.fetch_add(1);
      if (i >= total_) return;
      try {
        (*chunk_)(i);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }
  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      drain();
      {
        std::lock_guard lock(mutex_);
        --pending_;
      }
      done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t)>* chunk_ = nullptr;
  std::int64_t total_ = 0;
  std::atomic<std::int64_t> next_{0};
  int pending_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

int worker_count() { return pool().size(); }

void parallel_for(std::int64_t count, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (count <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  // A few chunks per worker so that uneven chunks even out, never smaller than `grain`.
  const std::int64_t workers = worker_count();
  const std::int64_t chunk = std::max(grain, (count + workers * 4 - 1) / (workers * 4));
  const std::int64_t chunks = (count + chunk - 1) / chunk;
  if (chunks == 1 || workers == 1) {
    body(0, count);
    return;
  }
  pool().run(chunks, [&](std::int64_t i) {
    const std::int64_t begin = i * chunk;
    body(begin, std::min(count, begin + chunk));
  });
}

}  // namespace porta::detail::cpu::moe
