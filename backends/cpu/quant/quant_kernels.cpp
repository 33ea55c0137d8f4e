// The quantized kernels of quant_cpu.hpp: choosing the instruction-set path, the int16 W8A8
// loops (plain, AVX2 with codes of −128, AVX-512 without VNNI), the weight-only loops other than
// int4's table, and the parallel loop that hands each path its rows. Integer sums are exact on
// every path (far from int32 overflow for K ≤ 33 000), and the float steps are lib/quant's, so
// W8A8 results equal the reference's bit for bit; weight-only rows are exact f32 weights, so
// only the f32 summation order differs.
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
#include "moe/panel_gemm.hpp"
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

std::int32_t dot16(QuantIsa isa, const std::int16_t* a, const std::int16_t* b, std::int64_t n) {
  switch (isa) {
    case QuantIsa::Avx512Vnni:
    case QuantIsa::Avx512: return dot16_avx512(a, b, n);
    case QuantIsa::AvxVnni:
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
  // The row's scales widened once (scale_at per group cost a fifth of W4A16 prefill).
  thread_local std::vector<float> scales;
  scales.resize(static_cast<std::size_t>(w.groups()));
  widen_scales(w, row, scales.data());
  const std::int8_t* zeros = zero_row(w, row);
  for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
    const float s = scales[static_cast<std::size_t>(g)];
    const std::int32_t z = zeros != nullptr ? zeros[g] : w.zero_at(row, g);
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
    widen_scales(w, n, scales.data());
    const std::int8_t* zeros = zero_row(w, n);
    __m512 acc[M];
    float tail[M];
    for (int m = 0; m < M; ++m) {
      acc[m] = _mm512_setzero_ps();
      tail[m] = 0.0f;
    }
    for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
      const float s = scales[static_cast<std::size_t>(g)];
      const std::int32_t z = zeros != nullptr ? zeros[g] : w.zero_at(n, g);
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

// W8A8 on AVX-512 without VNNI, M ≤ 8 activation rows: 32 weight codes widened to int16 in a
// register (q − z) and used for all M rows against the widened codes (q − o) (vpmaddwd +
// vpaddd); exact int32 sums per group.
template <int M>
__attribute__((target("avx512f,avx512bw"))) void fused_int8_bw(
    const QuantizedRows& a, std::int64_t m0, const QuantMatrix& w, std::int64_t n_begin,
    std::int64_t n_end, float* y, std::int64_t ldy) {
  const std::int64_t group = w.group();
  std::vector<std::int64_t> acc(static_cast<std::size_t>(w.groups() * M));
  const std::int16_t* x = a.wide.data() + m0 * a.k;
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    const auto* q = static_cast<const std::int8_t*>(w.data) + n * w.k;
    for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
      const std::int32_t z = w.zero_at(n, g);
      const __m512i vz = _mm512_set1_epi16(static_cast<std::int16_t>(z));
      const std::int64_t c1 = std::min(w.k, c0 + group);
      __m512i sums[M];
      for (int m = 0; m < M; ++m) sums[m] = _mm512_setzero_si512();
      std::int64_t c = c0;
      for (; c + 32 <= c1; c += 32) {
        const __m512i wv = _mm512_sub_epi16(
            _mm512_maskz_cvtepi8_epi16(0xFFFFFFFF,
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + c))),
            vz);
        for (int m = 0; m < M; ++m)
          sums[m] =
              _mm512_add_epi32(sums[m], _mm512_madd_epi16(_mm512_loadu_si512(x + m * a.k + c), wv));
      }
      for (int m = 0; m < M; ++m) {
        std::int32_t total = lane_sum(sums[m]);
        for (std::int64_t t = c; t < c1; ++t)
          total += static_cast<std::int32_t>(x[m * a.k + t]) * (q[t] - z);
        acc[static_cast<std::size_t>(m * w.groups() + g)] = total;
      }
    }
    for (int m = 0; m < M; ++m)
      y[(m0 + m) * ldy + n] = int8_output(acc.data() + m * w.groups(), w, n,
                                          a.scales[static_cast<std::size_t>(m0 + m)]);
  }
}

void fused_int8(const QuantizedRows& a, std::int64_t m0, std::int64_t count, const QuantMatrix& w,
                std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  switch (count) {
    case 1: return fused_int8_bw<1>(a, m0, w, n_begin, n_end, y, ldy);
    case 2: return fused_int8_bw<2>(a, m0, w, n_begin, n_end, y, ldy);
    case 3: return fused_int8_bw<3>(a, m0, w, n_begin, n_end, y, ldy);
    case 4: return fused_int8_bw<4>(a, m0, w, n_begin, n_end, y, ldy);
    case 5: return fused_int8_bw<5>(a, m0, w, n_begin, n_end, y, ldy);
    case 6: return fused_int8_bw<6>(a, m0, w, n_begin, n_end, y, ldy);
    case 7: return fused_int8_bw<7>(a, m0, w, n_begin, n_end, y, ldy);
    default: return fused_int8_bw<8>(a, m0, w, n_begin, n_end, y, ldy);
  }
}

// The int16 loop of every path for weight rows [n_begin, n_end) and rows [first, first + rows)
// of `a`.
void int16_rows(QuantIsa isa, const QuantizedRows& a, std::int64_t first, std::int64_t rows,
                const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                std::int64_t ldy) {
  std::vector<std::int16_t> codes(static_cast<std::size_t>(w.k));
  std::vector<std::int64_t> acc(static_cast<std::size_t>(w.groups()));
  const std::int64_t group = w.group();
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    centred_int8_row(w, n, codes.data());
    for (std::int64_t m = first; m < first + rows; ++m) {
      const std::int16_t* x = a.wide.data() + m * a.k;
      for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group)
        acc[static_cast<std::size_t>(g)] =
            dot16(isa, x + c0, codes.data() + c0, std::min(group, w.k - c0));
      y[m * ldy + n] = int8_output(acc.data(), w, n, a.scales[static_cast<std::size_t>(m)]);
    }
  }
}

// Activation rows per call of the decode row kernels; larger blocks take oneDNN's GEMM where it
// fits (quant_int8_gemm.cpp).
constexpr std::int64_t kRowBlock = 8;

moe::DotIsa dot_isa(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Avx512Vnni:
    case QuantIsa::Avx512: return moe::DotIsa::Avx512;
    case QuantIsa::AvxVnni:
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
  if (moe::has_avx2() && __builtin_cpu_supports("avxvnni")) isas.push_back(QuantIsa::AvxVnni);
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
    case QuantIsa::AvxVnni: return "avx_vnni";
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
        how =
            "W8A8 decode by vpdpbusd, prefill by oneDNN's s8s8s32 GEMM; int4 weights by "
            "table lookup, int8/fp8 dequantized in AVX-512 registers";
        break;
      case QuantIsa::Avx512:
        how =
            "W8A8 int32 sums by vpmaddwd; int4 weights by table lookup, int8/fp8 dequantized "
            "in AVX-512 registers";
        break;
      case QuantIsa::AvxVnni:
        how = "W8A8 int32 sums by 256-bit vpdpbusd; weights dequantized by plain loops";
        break;
      case QuantIsa::Avx2:
        how = "W8A8 int32 sums by vpmaddubsw + vpmaddwd; weights dequantized by plain loops";
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

bool needs_wide_codes(QuantIsa isa, bool has_min_code) {
  return isa == QuantIsa::Plain || isa == QuantIsa::Avx512 ||
         (isa == QuantIsa::Avx2 && has_min_code);
}

void int8_rows(QuantIsa isa, const QuantizedRows& a, std::int64_t first, std::int64_t rows,
               const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
               std::int64_t ldy) {
  if (needs_wide_codes(isa, a.has_min_code) && isa != QuantIsa::Avx512)
    return int16_rows(isa, a, first, rows, w, n_begin, n_end, y, ldy);
  for (std::int64_t m0 = first; m0 < first + rows; m0 += kRowBlock) {
    const std::int64_t count = std::min(kRowBlock, first + rows - m0);
    switch (isa) {
      case QuantIsa::Avx512Vnni:
        int8_rows_avx512_vnni(a, m0, count, w, n_begin, n_end, y, ldy);
        break;
      case QuantIsa::AvxVnni: int8_rows_avx_vnni(a, m0, count, w, n_begin, n_end, y, ldy); break;
      case QuantIsa::Avx2: int8_rows_avx2(a, m0, count, w, n_begin, n_end, y, ldy); break;
      case QuantIsa::Avx512:
      case QuantIsa::Plain:  // widened codes: int16_rows above
        fused_int8(a, m0, count, w, n_begin, n_end, y, ldy);
        break;
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
  const moe::DotIsa dot = dot_isa(isa);
  if (dot != moe::DotIsa::Plain && rows > kRowBlock) {
    // Prefill-sized blocks: weight rows dequantized once (exactly as dequantize does) into an
    // f32 panel, then multiplied by every activation row (panel_rows_gemm: the register-tiled
    // GEMM of the bf16 experts for expert-sized blocks, whose activation transpose is made once
    // per panel, so the panel is as large as the range allows; oneDNN's sgemm beyond). The
    // decode dot products, 8 rows at a time, made W4A16 prefill 3.4x slower than bf16. Panels
    // of up to 4 MB: a parallel range.
    const std::int64_t panel_rows =
        std::max<std::int64_t>(48, (std::int64_t{1} << 20) / std::max<std::int64_t>(w.k, 1));
    thread_local std::vector<float> panel;
    panel.resize(static_cast<std::size_t>(std::min(panel_rows, n_end - n_begin) * w.k));
    for (std::int64_t n0 = n_begin; n0 < n_end; n0 += panel_rows) {
      const std::int64_t n1 = std::min(n_end, n0 + panel_rows);
      dequantize_rows(isa, w, n0, n1, panel.data());
      moe::panel_rows_gemm(dot, x, ldx, rows, panel.data(), w.k, n1 - n0, y + n0, ldy);
    }
    return;
  }
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
  std::int64_t rows = 0, lo = 0, hi = 0;
  for (const auto& b : blocks) {
    if (rows == 0 || b.first < lo) lo = b.first;
    hi = std::max(hi, b.first + b.count);
    rows += b.count;
  }
  if (rows == 0 || out_features == 0) return;
  const QuantIsa isa = active_quant_isa();
  // Chunks of at least ~256 k multiply-adds: an OpenMP region costs more than a smaller one.
  const std::int64_t grain = std::max<std::int64_t>(16, (std::int64_t{1} << 18) / (rows * k + 1));
  if (mode == ActivationQuant::None) {
    // int4 by table on AVX-512: each small block's activations reordered once, here.
    const bool lut = isa == QuantIsa::Avx512 || isa == QuantIsa::Avx512Vnni;
    std::vector<std::vector<float>> reordered(blocks.size());
    for (std::size_t i = 0; i < blocks.size(); ++i)
      if (lut && blocks[i].count <= kRowBlock && int4_lut_fits(blocks[i].w))
        reordered[i] = deinterleave_int4_rows(x + blocks[i].first * k, k, blocks[i].count, k);
    moe::parallel_for(out_features, grain, [&](std::int64_t b, std::int64_t e) {
      for (std::size_t i = 0; i < blocks.size(); ++i) {
        const QuantBlock& block = blocks[i];
        float* yb = y + block.first * out_features;
        if (!reordered[i].empty())
          int4_rows_avx512(reordered[i].data(), block.count, block.w, b, e, yb, out_features);
        else
          weight_only_rows(isa, x + block.first * k, k, block.count, block.w, b, e, yb,
                           out_features);
      }
    });
    return;
  }
  // Every block's rows quantized at once (rows between blocks too: harmless, and one loop).
  QuantizedRows a = quantize_rows(x + lo * k, k, hi - lo, k, mode, params, blocks.front().w.group(),
                                  vector_quantizer(isa));
  if (needs_wide_codes(isa, a.has_min_code)) widen_codes(a);
  float* ya = y + lo * out_features;
  // Prefill-sized blocks: oneDNN GEMMs, items of (block, range of output columns), at least
  // four items per thread.
  std::vector<const QuantBlock*> large, small;
  for (const auto& block : blocks)
    (block.count > kRowBlock && onednn_int8_fits(isa, block.w) ? large : small).push_back(&block);
  if (!large.empty()) {
    const auto count = static_cast<std::int64_t>(large.size());
    const std::int64_t splits =
        std::max<std::int64_t>(1, (4 * moe::worker_count() + count - 1) / count);
    const std::int64_t width = std::max<std::int64_t>(64, (out_features + splits - 1) / splits);
    const std::int64_t per_block = (out_features + width - 1) / width;
    moe::parallel_for(count * per_block, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const QuantBlock& block = *large[static_cast<std::size_t>(i / per_block)];
        const std::int64_t n0 = (i % per_block) * width;
        onednn_int8_rows(a, block.first - lo, block.count, block.w, n0,
                         std::min(out_features, n0 + width), ya, out_features);
      }
    });
  }
  if (small.empty()) return;
  moe::parallel_for(out_features, grain, [&](std::int64_t b, std::int64_t e) {
    for (const QuantBlock* block : small)
      int8_rows(isa, a, block->first - lo, block->count, block->w, b, e, ya, out_features);
  });
}

void quant_linear(const float* x, std::int64_t rows, const QuantMatrix& w, ActivationQuant mode,
                  QuantActivationParams params, float* y) {
  quant_linear_blocks(x, w.k, {QuantBlock{w, 0, rows}}, w.n, mode, params, y);
}

}  // namespace porta::detail::cpu::quant
