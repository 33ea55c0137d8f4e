// Timing helpers the benchmarks share (and their flags' values): medians, repetitions of several bodies interleaved so
// that each sees the same machine load (a shared host's speed drifts by 2x within a minute), and
// the machine's streaming read bandwidth (the denominator of decode's bandwidth bound).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace porta_bench {

// GB/s of summing `regions` (pointer, bytes; together much larger than the caches) on all
// hardware threads, best of `reps`. The model bench passes mapped weights, so that the bound is
// measured on the memory decode reads without adding a buffer to the peak RSS.
inline double streaming_read_gbps(const std::vector<std::pair<const float*, std::size_t>>& regions,
                                  int reps) {
  std::size_t total_bytes = 0;
  for (const auto& r : regions) total_bytes += r.second;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  double best = 0;
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<double> sums(threads);
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        float acc[8] = {};
        for (const auto& [p, bytes] : regions) {
          const std::size_t n = bytes / sizeof(float);
          const std::size_t begin = n * t / threads, end = n * (t + 1) / threads;
          for (std::size_t i = begin; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; ++j) acc[j] += p[i + j];
        }
        sums[t] = acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
      });
    for (auto& th : pool) th.join();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double total = 0;
    for (double v : sums) total += v;
    if (total == 12345.678) std::puts("");  // keeps the sums alive
    best = std::max(best, static_cast<double>(total_bytes) / s / 1e9);
  }
  return best;
}

using Clock = std::chrono::steady_clock;

// The value after flag argv[i] (advancing i), or exit 2 with a message when there is none.
inline std::string flag_value(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

// "a,b,c" as its comma-separated items.
inline std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  for (std::size_t at = 0; at < list.size();) {
    const std::size_t end = std::min(list.find(',', at), list.size());
    items.push_back(list.substr(at, end - at));
    at = end + 1;
  }
  return items;
}

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The median of `v` (the mean of the middle two for an even count); 0 for none.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median seconds of each body over `reps` rounds after one warm-up call each, the bodies taking
// turns within a round.
inline std::vector<double> interleaved_medians(int reps,
                                               const std::vector<std::function<void()>>& bodies) {
  std::vector<std::vector<double>> times(bodies.size());
  for (const auto& body : bodies) body();
  for (int r = 0; r < reps; ++r)
    for (std::size_t b = 0; b < bodies.size(); ++b) {
      const auto start = Clock::now();
      bodies[b]();
      times[b].push_back(seconds_since(start));
    }
  std::vector<double> medians;
  for (auto& t : times) medians.push_back(median(t));
  return medians;
}

// GB/s of summing a buffer much larger than the caches, on all hardware threads, best of 3.
inline double streaming_read_gbps() {
  const std::size_t n = std::size_t{256} << 20;  // 1 GiB of floats
  std::vector<float> buffer(n, 1.0f);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<double> sums(threads);
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const std::size_t begin = n * t / threads, end = n * (t + 1) / threads;
        float acc[8] = {};
        for (std::size_t i = begin; i + 8 <= end; i += 8)
          for (int j = 0; j < 8; ++j) acc[j] += buffer[i + j];
        sums[t] = acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    double total = 0;
    for (double v : sums) total += v;
    if (total < 0) std::puts("");  // keeps the sums alive
    best = std::max(best, static_cast<double>(n * sizeof(float)) / s / 1e9);
  }
  return best;
}

}  // namespace porta_bench
