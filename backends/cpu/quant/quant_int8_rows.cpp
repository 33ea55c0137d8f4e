// The W8A8 decode row kernels of quant_cpu.hpp (int8_rows.inl) for AVX-512 VNNI, AVX-VNNI and
// AVX2. The VNNI paths make each weight byte unsigned once (q + 128: an xor) and multiply it by
// the signed activation codes with vpdpbusd, whose int32 lanes never saturate; AVX2 has no such
// instruction and multiplies |q| by the codes with q's sign (vpmaddubsw) and pairs them into
// int32 lanes (vpmaddwd): the int16 pair sums stay below 2 · 128 · 127 < 32 768 as long as no
// code is −128, which the caller checks.
// GCC 12 flags the _mm512_undefined operands of the unmasked AVX-512 intrinsics as maybe
// uninitialised once inlined (the lanes they stand for are all written).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "quant/quant_cpu.hpp"

namespace porta::detail::cpu::quant {

namespace vnni512 {
namespace {
#define T __attribute__((target("avx512f,avx512bw,avx512vnni")))
using Vec = __m512i;
constexpr std::int64_t kBytes = 64;
constexpr std::int32_t kBias = 128;
T inline Vec vload(const std::int8_t* p) { return _mm512_loadu_si512(p); }
T inline Vec vload_part(const std::int8_t* p, std::int64_t n) {
  return _mm512_maskz_loadu_epi8(n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1, p);
}
T inline Vec vzero() { return _mm512_setzero_si512(); }
T inline Vec vadd(Vec a, Vec b) { return _mm512_add_epi32(a, b); }
T inline std::int32_t vsum(Vec v) {
  // Zero-masked extracts: GCC 12 at -Og flags the unmasked ones' undefined pass-through operand
  // (-Wuninitialized); the values are the same.
  const __m256i h = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xF, v, 0),
                                     _mm512_maskz_extracti64x4_epi64(0xF, v, 1));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}
T inline Vec vprep(Vec w) { return _mm512_xor_si512(w, _mm512_set1_epi8(-128)); }
T inline Vec vdot(Vec acc, Vec prepared, Vec, Vec x) {
  return _mm512_dpbusd_epi32(acc, prepared, x);
}
T inline Vec vcount(Vec acc, Vec w) { return _mm512_dpbusd_epi32(acc, _mm512_set1_epi8(1), w); }
#include "quant/int8_rows.inl"
#undef T
}  // namespace
}  // namespace vnni512

// The 256-bit loads and lane sum both 256-bit paths share (AVX2 only, so they inline into the
// AVX-VNNI target too).
namespace ymm {
namespace {
#define T __attribute__((target("avx2")))
using Vec = __m256i;
T inline Vec vload(const std::int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
T inline Vec vload_part(const std::int8_t* p, std::int64_t n) {
  alignas(32) std::int8_t bytes[32] = {};
  std::memcpy(bytes, p, static_cast<std::size_t>(n));
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(bytes));
}
T inline Vec vzero() { return _mm256_setzero_si256(); }
T inline Vec vadd(Vec a, Vec b) { return _mm256_add_epi32(a, b); }
T inline std::int32_t vsum(Vec v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}
#undef T
}  // namespace
}  // namespace ymm

namespace avx_vnni {
namespace {
#define T __attribute__((target("avx2,avxvnni")))
using Vec = __m256i;
constexpr std::int64_t kBytes = 32;
constexpr std::int32_t kBias = 128;
using ymm::vload, ymm::vload_part, ymm::vzero, ymm::vadd, ymm::vsum;
T inline Vec vprep(Vec w) { return _mm256_xor_si256(w, _mm256_set1_epi8(-128)); }
T inline Vec vdot(Vec acc, Vec prepared, Vec, Vec x) {
  return _mm256_dpbusd_avx_epi32(acc, prepared, x);
}
T inline Vec vcount(Vec acc, Vec w) { return _mm256_dpbusd_avx_epi32(acc, _mm256_set1_epi8(1), w); }
#include "quant/int8_rows.inl"
#undef T
}  // namespace
}  // namespace avx_vnni

namespace avx2 {
namespace {
#define T __attribute__((target("avx2")))
using Vec = __m256i;
constexpr std::int64_t kBytes = 32;
constexpr std::int32_t kBias = 0;
using ymm::vload, ymm::vload_part, ymm::vzero, ymm::vadd, ymm::vsum;
T inline Vec vprep(Vec w) { return _mm256_abs_epi8(w); }
T inline Vec vdot(Vec acc, Vec prepared, Vec w, Vec x) {
  const __m256i pairs = _mm256_maddubs_epi16(prepared, _mm256_sign_epi8(x, w));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
T inline Vec vcount(Vec acc, Vec w) {
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), w);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
#include "quant/int8_rows.inl"
#undef T
}  // namespace
}  // namespace avx2

void int8_rows_avx512_vnni(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                           const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                           std::int64_t ldy) {
  vnni512::rows_any(a, m0, count, w, n_begin, n_end, y, ldy);
}

void int8_rows_avx_vnni(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                        const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                        std::int64_t ldy) {
  avx_vnni::rows_any(a, m0, count, w, n_begin, n_end, y, ldy);
}

void int8_rows_avx2(const QuantizedRows& a, std::int64_t m0, std::int64_t count,
                    const QuantMatrix& w, std::int64_t n_begin, std::int64_t n_end, float* y,
                    std::int64_t ldy) {
  avx2::rows_any(a, m0, count, w, n_begin, n_end, y, ldy);
}

}  // namespace porta::detail::cpu::quant
