// The quantized row loops of quant_cpu.hpp per instruction set. Integer sums are exact on every
// path (int16 products summed in int32 lanes, far from overflow for K ≤ 33 000), and the float
// steps are lib/quant's, so W8A8 results equal the reference's bit for bit; weight-only rows are
// exact f32 weights fed to the decode dot loop, so only the f32 summation order differs.
#include <immintrin.h>

#include <algorithm>
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

__attribute__((target("avx512f,avx512bw"))) void dequantize_row_avx512(const QuantMatrix& w,
                                                                       std::int64_t row,
                                                                       float* out) {
  const std::int64_t group = w.group();
  const auto* bytes = static_cast<const std::uint8_t*>(w.data);
  const bool int4 = w.scheme.format == QuantFormat::Int4;
  for (std::int64_t g = 0, c0 = 0; c0 < w.k; ++g, c0 += group) {
    const float s = w.scale_at(row, g);
    const std::int32_t z = w.zero_at(row, g);
    const __m512 vs = _mm512_set1_ps(s);
    const __m512i vz = _mm512_set1_epi32(z);
    const std::int64_t c1 = std::min(w.k, c0 + group);
    std::int64_t c = c0;
    for (; c + 16 <= c1; c += 16) {
      __m512i q;
      if (int4) {
        // 8 bytes → 16 nibbles in k order: each byte b becomes the word (b & 15) | (b >> 4) << 8,
        // whose two bytes are elements 2j and 2j + 1.
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
      _mm512_storeu_ps(
          out + c, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_sub_epi32(q, vz)), vs));
    }
    for (; c < c1; ++c) out[c] = static_cast<float>(w.code(row, c) - z) * s;
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
  const bool vector = (isa == QuantIsa::Avx512 || isa == QuantIsa::Avx512Vnni) &&
                      w.scheme.format != QuantFormat::F8E4M3;
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
  constexpr std::int64_t kBlock = 8;  // weight rows dequantized at a time: 8 · K floats in L1/L2
  std::vector<float> buffer(static_cast<std::size_t>(kBlock * w.k));
  for (std::int64_t n0 = n_begin; n0 < n_end; n0 += kBlock) {
    const std::int64_t n1 = std::min(n_end, n0 + kBlock);
    dequantize_rows(isa, w, n0, n1, buffer.data());
    moe::small_gemm_isa(dot_isa(isa), x, ldx, rows, buffer.data(), DType::F32, w.k, 0, n1 - n0,
                        y + n0, ldy);
  }
}

void quant_linear(const float* x, std::int64_t rows, const QuantMatrix& w, ActivationQuant mode,
                  QuantActivationParams params, float* y) {
  if (rows == 0 || w.n == 0) return;
  const QuantIsa isa = active_quant_isa();
  // Chunks of at least ~256 k multiply-adds: an OpenMP region costs more than a smaller one.
  const std::int64_t grain = std::max<std::int64_t>(16, (std::int64_t{1} << 18) / (rows * w.k + 1));
  if (mode == ActivationQuant::None) {
    moe::parallel_for(w.n, grain, [&](std::int64_t b, std::int64_t e) {
      weight_only_rows(isa, x, w.k, rows, w, b, e, y, w.n);
    });
    return;
  }
  const QuantizedRows a = quantize_rows(x, w.k, rows, w.k, mode, params);
  moe::parallel_for(w.n, grain,
                    [&](std::int64_t b, std::int64_t e) { int8_rows(isa, a, w, b, e, y, w.n); });
}

}  // namespace porta::detail::cpu::quant
