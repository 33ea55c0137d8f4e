// The quantized row loops of quant_cpu.hpp per instruction set. Integer sums are exact on every
// path (int16 products summed in int32 lanes, far from overflow for K ≤ 33 000), and the float
// steps are lib/quant's, so W8A8 results equal the reference's bit for bit; weight-only rows are
// exact f32 weights fed to the decode dot loop, so only the f32 summation order differs.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/error.hpp>

#include "moe/dot_rows.hpp"
#include "moe/moe_cpu.hpp"
#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu::quant {
namespace {

// ---- exact int16 dot products ----

std::int32_t dot16_plain(const std::int16_t* a, const std::int16_t* b, std::int64_t n) {
  std::int32_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += static_cast<std::int32_t>(a[i]) * b[i];
  return sum;
}

__attribute__((target("avx2"))) std::int32_t dot16_avx2(const std::int16_t* a,
                                                        const std::int16_t* b, std::int64_t n) {
  __m256i acc = _mm256_setzero_si256();
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = _mm256_add_epi32(
        acc, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + i))));
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  const __m128i d = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  std::int32_t sum = _mm_cvtsi128_si32(_mm_add_epi32(d, _mm_shuffle_epi32(d, 0xb1)));
  return sum + dot16_plain(a + i, b + i, n - i);
}

// Lane sums through memory: GCC 12 flags _mm512_reduce_add_epi32's (and the unmasked
// conversions') _mm512_undefined operands as maybe-uninitialised once inlined.
__attribute__((target("avx512f"))) inline std::int32_t lane_sum(__m512i v) {
  alignas(64) std::int32_t lanes[16];
  _mm512_store_si512(lanes, v);
  std::int32_t sum = 0;
  for (std::int32_t lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx512f,avx512bw"))) std::int32_t dot16_avx512(const std::int16_t* a,
                                                                      const std::int16_t* b,
                                                                      std::int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    acc = _mm512_add_epi32(acc,
                           _mm512_madd_epi16(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i)));
  return lane_sum(acc) + dot16_plain(a + i, b + i, n - i);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) std::int32_t dot16_vnni(
    const std::int16_t* a, const std::int16_t* b, std::int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    acc = _mm512_dpwssd_epi32(acc, _mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
  return lane_sum(acc) + dot16_plain(a + i, b + i, n - i);
}

std::int32_t dot16(QuantIsa isa, const std::int16_t* a, const std::int16_t* b, std::int64_t n) {
  switch (isa) {
    case QuantIsa::Avx512Vnni: return dot16_vnni(a, b, n);
    case QuantIsa::Avx512: return dot16_avx512(a, b, n);
    case QuantIsa::Avx2: return dot16_avx2(a, b, n);
    case QuantIsa::Plain: break;
  }
  return dot16_plain(a, b, n);
}

// Row `row` of an int8 weight as int16 centred codes q − z.
void centred_int8_row(const QuantMatrix& w, std::int64_t row, std::int16_t* out) {
  const auto* q = static_cast<const std::int8_t*>(w.data) + row * w.k;
  const std::int64_t group = w.group();
  for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
    const auto z = static_cast<std::int16_t>(w.zero_at(row, g));
    const std::int64_t c1 = std::min(w.k, c0 + group);
    for (std::int64_t c = c0; c < c1; ++c) out[c] = static_cast<std::int16_t>(q[c] - z);
  }
}

// ---- dequantization of weight rows (exact values: (float)(q − z) · s, f8(q) · s) ----

// e4m3 bytes as f32, for the gathers of the AVX-512 path.
const float* f8_table() {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int b = 0; b < 256; ++b)
      t[static_cast<std::size_t>(b)] = f8e4m3_bits_to_f32(static_cast<std::uint8_t>(b));
    return t;
  }();
  return table.data();
}

// Sixteen weights (row, c .. c + 15) as exact f32 values: (float)(q − z) · s, or f8(q) · s.
// For int4, c is even (groups are even), so the 16 nibbles are 8 whole bytes.
__attribute__((target("avx512f,avx512bw"))) inline __m512 load16_weights(const QuantMatrix& w,
                                                                         std::int64_t row,
                                                                         std::int64_t c, __m512i vz,
                                                                         __m512 vs) {
  const auto* bytes = static_cast<const std::uint8_t*>(w.data);
  if (w.scheme.format == QuantFormat::F8E4M3) {
    const __m512i idx = _mm512_maskz_cvtepu8_epi32(
        0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + row * w.k + c)));
    return _mm512_mul_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, idx, f8_table(), 4),
                         vs);
  }
  __m512i q;
  if (w.scheme.format == QuantFormat::Int4) {
    // Each byte b becomes the word (b & 15) | (b >> 4) << 8, whose two bytes are elements 2j and
    // 2j + 1 in k order.
    const __m128i raw =
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes + row * (w.k / 2) + c / 2));
    const __m128i wide = _mm_cvtepu8_epi16(raw);
    const __m128i lo = _mm_and_si128(wide, _mm_set1_epi16(0x0f));
    const __m128i hi = _mm_slli_epi16(_mm_srli_epi16(wide, 4), 8);
    q = _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_or_si128(lo, hi));
  } else {
    q = _mm512_maskz_cvtepi8_epi32(
        0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + row * w.k + c)));
  }
  return _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_sub_epi32(q, vz)), vs);
}

// One weight element, exactly as dequantize_row computes it.
inline float weight_at(const QuantMatrix& w, std::int64_t row, std::int64_t c, std::int32_t z,
                       float s) {
  if (w.scheme.format == QuantFormat::F8E4M3)
    return f8e4m3_bits_to_f32(static_cast<const std::uint8_t*>(w.data)[row * w.k + c]) * s;
  return static_cast<float>(w.code(row, c) - z) * s;
}

__attribute__((target("avx512f,avx512bw"))) void dequantize_row_avx512(const QuantMatrix& w,
                                                                       std::int64_t row,
                                                                       float* out) {
  const std::int64_t group = w.group();
  for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
    const float s = w.scale_at(row, g);
    const std::int32_t z = w.zero_at(row, g);
    const std::int64_t c1 = std::min(w.k, c0 + group);
    std::int64_t c = c0;
    for (; c + 16 <= c1; c += 16)
      _mm512_storeu_ps(out + c, load16_weights(w, row, c, _mm512_set1_epi32(z), _mm512_set1_ps(s)));
    for (; c < c1; ++c) out[c] = weight_at(w, row, c, z, s);
  }
}

__attribute__((target("avx512f"))) inline float float_lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0;
  for (float lane : lanes) sum += lane;
  return sum;
}

// Decode: M ≤ 8 activation rows against weight rows [n_begin, n_end), each weight formed in
// registers and used for all M rows at once, never stored: the weights are streamed once, at
// their quantized size.
template <int M>
__attribute__((target("avx512f,avx512bw"))) void fused_rows_avx512(const float* x, std::int64_t ldx,
                                                                   const QuantMatrix& w,
                                                                   std::int64_t n_begin,
                                                                   std::int64_t n_end, float* y,
                                                                   std::int64_t ldy) {
  const std::int64_t group = w.group();
  std::vector<float> scales(static_cast<std::size_t>(w.groups()));
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    w.scale_row(n, scales.data());  // one widening call per row, not one per group
    __m512 acc[M];
    float tail[M];
    for (int m = 0; m < M; ++m) {
      acc[m] = _mm512_setzero_ps();
      tail[m] = 0.0f;
    }
    for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
      const float s = scales[static_cast<std::size_t>(g)];
      const std::int32_t z = w.zero_at(n, g);
      const __m512 vs = _mm512_set1_ps(s);
      const __m512i vz = _mm512_set1_epi32(z);
      const std::int64_t c1 = std::min(w.k, c0 + group);
      std::int64_t c = c0;
      for (; c + 16 <= c1; c += 16) {
        const __m512 wv = load16_weights(w, n, c, vz, vs);
        for (int m = 0; m < M; ++m)
          acc[m] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * ldx + c), wv, acc[m]);
      }
      for (; c < c1; ++c) {
        const float wv = weight_at(w, n, c, z, s);
        for (int m = 0; m < M; ++m) tail[m] += x[m * ldx + c] * wv;
      }
    }
    for (int m = 0; m < M; ++m) y[m * ldy + n] = float_lane_sum(acc[m]) + tail[m];
  }
}

void fused_rows(const float* x, std::int64_t ldx, std::int64_t rows, const QuantMatrix& w,
                std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  for (std::int64_t m0 = 0; m0 < rows; m0 += 8) {
    const float* xm = x + m0 * ldx;
    float* ym = y + m0 * ldy;
    switch (std::min<std::int64_t>(rows - m0, 8)) {
      case 1: fused_rows_avx512<1>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 2: fused_rows_avx512<2>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 3: fused_rows_avx512<3>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 4: fused_rows_avx512<4>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 5: fused_rows_avx512<5>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 6: fused_rows_avx512<6>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      case 7: fused_rows_avx512<7>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
      default: fused_rows_avx512<8>(xm, ldx, w, n_begin, n_end, ym, ldy); break;
    }
  }
}

// W8A8 for M ≤ 8 activation rows: 32 weight codes widened to int16 in a register and used for all
// M rows (vpdpwssd with VNNI, vpmaddwd + vpaddd without); exact int32 sums per group. One body,
// compiled for each target (a VNNI target could let the compiler use VNNI in the scalar tails).
#define PORTA_FUSED_INT8(NAME, TARGET, ACCUMULATE)                                            \
  template <int M>                                                                            \
  __attribute__((target(TARGET))) void NAME(const QuantizedRows& a, std::int64_t m0,          \
                                            const QuantMatrix& w, std::int64_t n_begin,       \
                                            std::int64_t n_end, float* y, std::int64_t ldy) { \
    const std::int64_t group = w.group();                                                     \
    std::vector<std::int64_t> acc(static_cast<std::size_t>(w.groups() * M));                  \
    const std::int16_t* x = a.codes.data() + m0 * a.k;                                        \
    for (std::int64_t n = n_begin; n < n_end; ++n) {                                          \
      const auto* q = static_cast<const std::int8_t*>(w.data) + n * w.k;                      \
      for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {                          \
        const std::int32_t z = w.zero_at(n, g);                                               \
        const __m512i vz = _mm512_set1_epi16(static_cast<std::int16_t>(z));                   \
        const std::int64_t c1 = std::min(w.k, c0 + group);                                    \
        __m512i sums[M];                                                                      \
        for (int m = 0; m < M; ++m) sums[m] = _mm512_setzero_si512();                         \
        std::int64_t c = c0;                                                                  \
        for (; c + 32 <= c1; c += 32) {                                                       \
          const __m512i wv = _mm512_sub_epi16(                                                \
              _mm512_maskz_cvtepi8_epi16(                                                     \
                  0xFFFFFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + c))),   \
              vz);                                                                            \
          for (int m = 0; m < M; ++m) {                                                       \
            const __m512i xv = _mm512_loadu_si512(x + m * a.k + c);                           \
            sums[m] = ACCUMULATE;                                                             \
          }                                                                                   \
        }                                                                                     \
        for (int m = 0; m < M; ++m) {                                                         \
          std::int32_t total = lane_sum(sums[m]);                                             \
          for (std::int64_t t = c; t < c1; ++t)                                               \
            total += static_cast<std::int32_t>(x[m * a.k + t]) * (q[t] - z);                  \
          acc[static_cast<std::size_t>(m * w.groups() + g)] = total;                          \
        }                                                                                     \
      }                                                                                       \
      for (int m = 0; m < M; ++m)                                                             \
        y[(m0 + m) * ldy + n] = int8_output(acc.data() + m * w.groups(), w, n,                \
                                            a.scales[static_cast<std::size_t>(m0 + m)]);      \
    }                                                                                         \
  }
PORTA_FUSED_INT8(fused_int8_bw, "avx512f,avx512bw",
                 _mm512_add_epi32(sums[m], _mm512_madd_epi16(xv, wv)))
PORTA_FUSED_INT8(fused_int8_vnni, "avx512f,avx512bw,avx512vnni",
                 _mm512_dpwssd_epi32(sums[m], xv, wv))
#undef PORTA_FUSED_INT8

template <int M, bool Vnni>
void fused_int8_avx512(const QuantizedRows& a, std::int64_t m0, const QuantMatrix& w,
                       std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  if constexpr (Vnni)
    fused_int8_vnni<M>(a, m0, w, n_begin, n_end, y, ldy);
  else
    fused_int8_bw<M>(a, m0, w, n_begin, n_end, y, ldy);
}

template <bool Vnni>
void fused_int8(const QuantizedRows& a, const QuantMatrix& w, std::int64_t n_begin,
                std::int64_t n_end, float* y, std::int64_t ldy) {
  for (std::int64_t m0 = 0; m0 < a.rows; m0 += 8) {
    switch (std::min<std::int64_t>(a.rows - m0, 8)) {
      case 1: fused_int8_avx512<1, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 2: fused_int8_avx512<2, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 3: fused_int8_avx512<3, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 4: fused_int8_avx512<4, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 5: fused_int8_avx512<5, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 6: fused_int8_avx512<6, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      case 7: fused_int8_avx512<7, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
      default: fused_int8_avx512<8, Vnni>(a, m0, w, n_begin, n_end, y, ldy); break;
    }
  }
}

moe::DotIsa dot_isa(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Avx512Vnni:
    case QuantIsa::Avx512: return moe::DotIsa::Avx512;
    case QuantIsa::Avx2: return moe::DotIsa::Avx2;
    case QuantIsa::Plain: break;
  }
  return moe::DotIsa::Plain;
}

std::optional<QuantIsa>& isa_override() {
  static std::optional<QuantIsa> value;
  return value;
}

}  // namespace

std::vector<QuantIsa> available_quant_isas() {
  std::vector<QuantIsa> isas{QuantIsa::Plain};
  if (moe::has_avx2()) isas.push_back(QuantIsa::Avx2);
  const bool avx512 =
      moe::has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (avx512) isas.push_back(QuantIsa::Avx512);
  if (avx512 && __builtin_cpu_supports("avx512vnni")) isas.push_back(QuantIsa::Avx512Vnni);
  return isas;
}

const char* quant_isa_name(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Avx512Vnni: return "avx512_vnni";
    case QuantIsa::Avx512: return "avx512";
    case QuantIsa::Avx2: return "avx2";
    case QuantIsa::Plain: break;
  }
  return "plain";
}

std::string quant_kernels_description() {
  try {
    const QuantIsa isa = active_quant_isa();
    const char* how = "";
    switch (isa) {
      case QuantIsa::Avx512Vnni:
        how = "W8A8 int32 sums by vpdpwssd; int8/int4 weights dequantized in AVX-512 registers";
        break;
      case QuantIsa::Avx512:
        how = "W8A8 int32 sums by vpmaddwd; int8/int4 weights dequantized in AVX-512 registers";
        break;
      case QuantIsa::Avx2:
        how = "W8A8 int32 sums by vpmaddwd; weights dequantized by plain loops";
        break;
      case QuantIsa::Plain: how = "plain C++ loops"; break;
    }
    return fmt::format("{} ({})", quant_isa_name(isa), how);
  } catch (const Error& e) {
    return e.what();
  }
}

void set_quant_isa(std::optional<QuantIsa> isa) { isa_override() = isa; }

QuantIsa active_quant_isa() {
  if (isa_override()) return *isa_override();
  const auto available = available_quant_isas();
  const char* env = std::getenv("PORTA_CPU_QUANT_ISA");
  if (env == nullptr || *env == '\0') return available.back();
  std::vector<std::string_view> names;
  for (QuantIsa isa : available) {
    if (std::string_view(env) == quant_isa_name(isa)) return isa;
    names.push_back(quant_isa_name(isa));
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("PORTA_CPU_QUANT_ISA={}: not a quantized-kernel path this CPU has "
                          "(available: {})",
                          env, fmt::join(names, ", ")));
}

QuantizedRows quantize_rows(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                            ActivationQuant mode, QuantActivationParams params) {
  QuantizedRows a;
  a.rows = rows;
  a.k = k;
  a.codes.resize(static_cast<std::size_t>(rows * k));
  a.scales.assign(static_cast<std::size_t>(rows), params.scale);
  std::vector<std::int8_t> q(static_cast<std::size_t>(k));
  const auto offset = static_cast<std::int16_t>(params.offset);
  for (std::int64_t m = 0; m < rows; ++m) {
    if (mode == ActivationQuant::DynamicInt8) {
      quantize_activations_per_token(x + m * ldx, 1, k, q.data(),
                                     &a.scales[static_cast<std::size_t>(m)]);
      for (std::int64_t c = 0; c < k; ++c)
        a.codes[static_cast<std::size_t>(m * k + c)] = q[static_cast<std::size_t>(c)];
    } else {
      quantize_activations_static(x + m * ldx, k, params, q.data());
      for (std::int64_t c = 0; c < k; ++c)
        a.codes[static_cast<std::size_t>(m * k + c)] =
            static_cast<std::int16_t>(q[static_cast<std::size_t>(c)] - offset);
    }
  }
  return a;
}

void int8_rows(QuantIsa isa, const QuantizedRows& a, const QuantMatrix& w, std::int64_t n_begin,
               std::int64_t n_end, float* y, std::int64_t ldy) {
  if (isa == QuantIsa::Avx512Vnni) return fused_int8<true>(a, w, n_begin, n_end, y, ldy);
  if (isa == QuantIsa::Avx512) return fused_int8<false>(a, w, n_begin, n_end, y, ldy);
  std::vector<std::int16_t> codes(static_cast<std::size_t>(w.k));
  std::vector<std::int64_t> acc(static_cast<std::size_t>(w.groups()));
  const std::int64_t group = w.group();
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    centred_int8_row(w, n, codes.data());
    for (std::int64_t m = 0; m < a.rows; ++m) {
      const std::int16_t* x = a.codes.data() + m * a.k;
      for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group)
        acc[static_cast<std::size_t>(g)] =
            dot16(isa, x + c0, codes.data() + c0, std::min(group, w.k - c0));
      y[m * ldy + n] = int8_output(acc.data(), w, n, a.scales[static_cast<std::size_t>(m)]);
    }
  }
}

void dequantize_rows(QuantIsa isa, const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end,
                     float* out) {
  const bool vector = isa == QuantIsa::Avx512 || isa == QuantIsa::Avx512Vnni;
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    float* row = out + (n - n_begin) * w.k;
    if (vector)
      dequantize_row_avx512(w, n, row);
    else
      dequantize_row(w, n, row);
  }
}

void weight_only_rows(QuantIsa isa, const float* x, std::int64_t ldx, std::int64_t rows,
                      const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                      std::int64_t ldy) {
  const bool avx512 = isa == QuantIsa::Avx512 || isa == QuantIsa::Avx512Vnni;
  if (avx512 && rows <= 8) return fused_rows(x, ldx, rows, w, n_begin, n_end, y, ldy);
  constexpr std::int64_t kBlock = 8;  // weight rows dequantized at a time: 8 · K floats in L1/L2
  std::vector<float> buffer(static_cast<std::size_t>(kBlock * w.k));
  for (std::int64_t n0 = n_begin; n0 < n_end; n0 += kBlock) {
    const std::int64_t n1 = std::min(n_end, n0 + kBlock);
    dequantize_rows(isa, w, n0, n1, buffer.data());
    moe::small_gemm_isa(dot_isa(isa), x, ldx, rows, buffer.data(), DType::F32, w.k, 0, n1 - n0,
                        y + n0, ldy);
  }
}

void quant_linear_blocks(const float* x, std::int64_t k, const std::vector<QuantBlock>& blocks,
                         std::int64_t out_features, ActivationQuant mode,
                         QuantActivationParams params, float* y) {
  std::int64_t rows = 0;
  for (const auto& b : blocks) rows += b.count;
  if (rows == 0 || out_features == 0) return;
  const QuantIsa isa = active_quant_isa();
  // Chunks of at least ~256 k multiply-adds: an OpenMP region costs more than a smaller one.
  const std::int64_t grain = std::max<std::int64_t>(16, (std::int64_t{1} << 18) / (rows * k + 1));
  if (mode == ActivationQuant::None) {
    moe::parallel_for(out_features, grain, [&](std::int64_t b, std::int64_t e) {
      for (const auto& block : blocks)
        weight_only_rows(isa, x + block.first * k, k, block.count, block.w, b, e,
                         y + block.first * out_features, out_features);
    });
    return;
  }
  std::vector<QuantizedRows> codes;
  for (const auto& block : blocks)
    codes.push_back(quantize_rows(x + block.first * k, k, block.count, k, mode, params));
  moe::parallel_for(out_features, grain, [&](std::int64_t b, std::int64_t e) {
    for (std::size_t i = 0; i < blocks.size(); ++i)
      int8_rows(isa, codes[i], blocks[i].w, b, e, y + blocks[i].first * out_features, out_features);
  });
}

void quant_linear(const float* x, std::int64_t rows, const QuantMatrix& w, ActivationQuant mode,
                  QuantActivationParams params, float* y) {
  quant_linear_blocks(x, w.k, {QuantBlock{w, 0, rows}}, w.n, mode, params, y);
}

}  // namespace porta::detail::cpu::quant
