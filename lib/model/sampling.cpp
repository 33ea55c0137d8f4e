// Token selection. The random stream is xoshiro256** seeded through splitmix64, implemented here
// rather than taken from <random>'s distributions, whose outputs differ between standard
// libraries: a seed gives the same tokens everywhere.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include <porta/model/generate.hpp>

namespace porta::model {

namespace {

std::uint64_t splitmix64(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void check_logits(std::span<const float> logits) {
  if (logits.empty()) throw Error(ErrorCode::InvalidArgument, "sampling from empty logits");
  for (std::size_t i = 0; i < logits.size(); ++i)
    if (std::isnan(logits[i]))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("the logits hold NaN (token {}): the model output is broken", i));
}

}  // namespace

std::int32_t argmax(std::span<const float> logits) {
  check_logits(logits);
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<std::int32_t>(best);
}

Sampler::Sampler(SamplingOptions options) : options_(options) {
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("temperature must be >= 0, not {}", options.temperature));
  if (!(options.top_p > 0 && options.top_p <= 1))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("top_p must be in (0, 1], not {}", options.top_p));
  std::uint64_t seed = options.seed;
  for (auto& s : state_) s = splitmix64(seed);
}

double Sampler::uniform() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

std::int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  check_logits(logits);
  const double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probs(logits.size());
  double total = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    probs[i] = std::exp((static_cast<double>(logits[i]) - max) / options_.temperature);
    total += probs[i];
  }
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int32_t a, std::int32_t b) { return probs[a] > probs[b]; });
  // The nucleus: the smallest prefix of the sorted tokens holding top_p of the mass.
  std::size_t keep = 0;
  double kept_mass = 0;
  while (keep < order.size()) {
    kept_mass += probs[order[keep]];
    ++keep;
    if (kept_mass >= options_.top_p * total) break;
  }
  double u = uniform() * kept_mass;
  for (std::size_t i = 0; i < keep; ++i) {
    u -= probs[order[i]];
    if (u < 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace porta::model
