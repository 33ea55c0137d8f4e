// llama.cpp's 8-bit activation blocks (ggml_quants.hpp): the one definition the reference, the
// exact-product fallback and the integer kernels of the cpu backend all quantize with.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/ggml_quants.hpp>

#include "gguf/block_util.hpp"

namespace porta::gguf {

namespace {

// Round half to even, as ggml's nearest_int (the 1.5·2²³ trick) and _mm256_round_ps do; the
// default floating-point environment rounds this way.
int round_even(float v) { return static_cast<int>(std::nearbyint(v)); }

// A block holding NaN or ±inf: zero codes and a NaN scale, so that every product it enters is
// NaN, as the exact product's would be (a code cannot hold the value, and a cast would be UB).
bool non_finite(const float* x, int n, std::int8_t* q, float& d) {
  for (int j = 0; j < n; ++j)
    if (!std::isfinite(x[j])) {
      std::fill_n(q, n, std::int8_t{0});
      d = std::nanf("");
      return true;
    }
  return false;
}

void quantize_q8_k(const float* x, std::int8_t* q, float& d) {
  if (non_finite(x, detail::kQKK, q, d)) return;
  float amax = 0, max = 0;
  for (int j = 0; j < detail::kQKK; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float iscale = amax != 0 ? -127.0f / max : 0.0f;
  if (!std::isfinite(iscale) || iscale == 0) {  // all zero, or too small for 127/m in f32
    std::fill_n(q, detail::kQKK, std::int8_t{0});
    d = 0;
    return;
  }
  for (int j = 0; j < detail::kQKK; ++j)
    q[j] = static_cast<std::int8_t>(std::min(127, round_even(iscale * x[j])));
  d = 1.0f / iscale;
}

void quantize_q8_0(const float* x, std::int8_t* q, float& d) {
  if (non_finite(x, detail::kQK, q, d)) return;
  float amax = 0;
  for (int j = 0; j < detail::kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  d = detail::through_f16(amax / 127.0f);
  if (d == 0) {  // all zero, or below f16's range: every product is 0 whatever the codes
    std::fill_n(q, detail::kQK, std::int8_t{0});
    return;
  }
  const float id = 127.0f / amax;
  for (int j = 0; j < detail::kQK; ++j) q[j] = static_cast<std::int8_t>(round_even(x[j] * id));
}

}  // namespace

Q8Blocks q8_activation_blocks(GgmlType weight) {
  using G = GgmlType;  // an if chain: a switch would have to list every ggml type
  if (weight == G::Q2_K || weight == G::Q3_K || weight == G::Q4_K || weight == G::Q5_K ||
      weight == G::Q6_K || weight == G::IQ4_XS)
    return {G::Q8_K, detail::kQKK};
  if (weight == G::Q8_0 || weight == G::Q4_0 || weight == G::Q4_1 || weight == G::Q5_0 ||
      weight == G::Q5_1 || weight == G::IQ4_NL)
    return {G::Q8_0, detail::kQK};
  throw Error(ErrorCode::Unsupported,
              fmt::format("{} weights have no 8-bit activation blocks (ggml_q8 activations need a "
                          "quantized block type: q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_K, q3_K, "
                          "q4_K, q5_K, q6_K or iq4_xs)",
                          type_name(weight)));
}

void quantize_q8_activations(Q8Blocks blocks, const float* x, std::int64_t k, std::int8_t* q,
                             float* d) {
  if (k < 0 || k % blocks.block != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} activations: a row of {} elements is not a whole number of "
                            "{}-element blocks",
                            type_name(blocks.type), k, blocks.block));
  for (std::int64_t b = 0; b * blocks.block < k; ++b) {
    const std::int64_t at = b * blocks.block;
    if (blocks.type == GgmlType::Q8_K)
      quantize_q8_k(x + at, q + at, d[b]);
    else
      quantize_q8_0(x + at, q + at, d[b]);
  }
}

void round_q8_activations(Q8Blocks blocks, const float* x, std::int64_t k, float* out) {
  std::int8_t q[256];
  float d = 0;
  if (k < 0 || k % blocks.block != 0) quantize_q8_activations(blocks, x, k, nullptr, nullptr);
  for (std::int64_t at = 0; at < k; at += blocks.block) {
    quantize_q8_activations(blocks, x + at, blocks.block, q, &d);
    for (std::uint32_t i = 0; i < blocks.block; ++i) out[at + i] = d * static_cast<float>(q[i]);
  }
}

}  // namespace porta::gguf
