// Timing helpers the benchmarks share: medians, and repetitions of several bodies interleaved so
// that each sees the same machine load (a shared host's speed drifts by 2x within a minute).
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace porta_bench {

using Clock = std::chrono::steady_clock;

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

}  // namespace porta_bench
