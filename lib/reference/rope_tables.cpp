// Rope's frequency tables and YaRN's magnitude, shared by every backend (rope_tables.hpp).
#include "reference/rope_tables.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace porta::detail {

namespace {

// DeepSeek's yarn_get_mscale: the attention-temperature correction of YaRN.
double yarn_get_mscale(double factor, double mscale) {
  return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0;
}

// YaRN's dimension at which a frequency completes `rotations` turns over the original context.
double yarn_find_dim(double rotations, double dim, double base, double original_max) {
  return dim * std::log(original_max / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(base));
}

}  // namespace

std::vector<double> rope_inverse_frequencies(const RopeAttrs& attrs, std::int64_t rotary_dim) {
  const auto half = static_cast<std::size_t>(rotary_dim / 2);
  const double dim = static_cast<double>(rotary_dim);
  const double base = attrs.theta;
  std::vector<double> inv_freq(half);
  for (std::size_t i = 0; i < half; ++i)
    inv_freq[i] = std::pow(base, -2.0 * static_cast<double>(i) / dim);
  if (attrs.scaling.type != RopeScalingType::Yarn) return inv_freq;

  // Blend interpolated (freq / factor) and extrapolated (freq) frequencies with a linear ramp
  // between the dimensions that turn beta_fast and beta_slow times over the original context.
  const auto& s = attrs.scaling;
  const double original_max = static_cast<double>(s.original_max_position);
  const double low = std::max(std::floor(yarn_find_dim(s.beta_fast, dim, base, original_max)), 0.0);
  double high = std::min(std::ceil(yarn_find_dim(s.beta_slow, dim, base, original_max)), dim - 1.0);
  if (low == high) high = low + 0.001;  // avoid a zero-width ramp
  for (std::size_t i = 0; i < half; ++i) {
    const double ramp = std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation_weight = 1.0 - ramp;
    const double freq_extra = inv_freq[i];
    const double freq_inter = freq_extra / static_cast<double>(s.factor);
    inv_freq[i] = freq_inter * (1.0 - extrapolation_weight) + freq_extra * extrapolation_weight;
  }
  return inv_freq;
}

double rope_position_divisor(const RopeScaling& scaling) {
  return scaling.type == RopeScalingType::Linear ? scaling.factor : 1.0;
}

double rope_magnitude(const RopeScaling& scaling) {
  return scaling.type == RopeScalingType::Yarn
             ? yarn_get_mscale(scaling.factor, scaling.mscale) /
                   yarn_get_mscale(scaling.factor, scaling.mscale_all_dim)
             : 1.0;
}

}  // namespace porta::detail
