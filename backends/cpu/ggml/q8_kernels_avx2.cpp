// q8_kernels.hpp's integer path with AVX2, FMA and F16C, for CPUs without AVX-512 VNNI: the
// activation quantizer (8 lanes, bit for bit gguf::quantize_q8_activations), the row kernel
// (short blocks and decode) and 8-row weight panels with a register-tiled kernel (long blocks).
//
// The products are vpmaddubsw (unsigned codes times signed activation codes, adjacent pairs
// summed into int16, saturating) then vpmaddwd (adjacent int16 into int32, times one or times
// the sub-block scales). Each pair must fit int16 before it saturates: 4- to 6-bit codes go in
// unsigned as stored (2 · 63 · 127 = 16002 at most), several such pair sums added in int16
// before vpmaddwd where they still fit; q8_0's codes go in as |w| against x carrying w's sign
// (vpsignb: 2 · 128 · 127 = 32512), and so do iq4_nl's code-book values (−127..113, looked up
// by vpshufb: + 127 would overflow a pair) and, in the row kernel, q4_0's and q5_0's (centred,
// q − 8 and q − 16). q4_1's and q5_1's codes go in unsigned with their min terms beside.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "ggml/q8_kernels.hpp"

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_Q8_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))
#define T PORTA_Q8_AVX2_TARGET
// Helpers forced inline: called out of line from the kernels they would pass vectors through
// memory.
#define TI PORTA_Q8_AVX2_TARGET __attribute__((always_inline))

using G = gguf::GgmlType;

struct Layout {
  int super;        // elements per float scale d (the type's block)
  int sub;          // elements per integer scale and per min term
  int block_bytes;  // bytes per super-block
};

constexpr Layout layout_of(G type) {
  // An if chain: a switch would have to list every ggml type.
  if (type == G::Q8_0) return {32, 32, 34};
  if (type == G::Q4_0) return {32, 32, 18};
  if (type == G::Q4_1) return {32, 32, 20};
  if (type == G::Q5_0) return {32, 32, 22};
  if (type == G::Q5_1) return {32, 32, 24};
  if (type == G::IQ4_NL) return {32, 32, 18};
  if (type == G::Q4_K) return {256, 32, 144};
  if (type == G::Q5_K) return {256, 32, 176};
  if (type == G::Q6_K) return {256, 16, 210};
  throw Error(ErrorCode::Unsupported,
              fmt::format("no integer ggml_q8 kernel for {}", gguf::type_name(type)));
}

TI inline float f16(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

TI inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Four consecutive activation codes in every int32 lane.
TI inline __m256i broadcast4(const std::int8_t* p) {
  std::int32_t four;
  std::memcpy(&four, p, 4);
  return _mm256_set1_epi32(four);
}

TI inline float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// ---- activations ----

TI inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// max|x| over n floats (a multiple of 8): exact whatever the order.
TI inline float abs_max(const float* x, int n) {
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, abs8(_mm256_loadu_ps(x + i)));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

TI inline bool all_finite(const float* x, int n) {
  const __m256 inf = _mm256_set1_ps(__builtin_inff());
  for (int i = 0; i < n; i += 8)
    if (_mm256_movemask_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i)), inf, _CMP_LT_OQ)) != 0xFF)
      return false;
  return true;
}

// round_half_even(x[i] · s) (the default rounding mode, as the definition's nearbyint) for 8
// floats, capped at 127 as Q8_K's definition caps it.
TI inline __m256i round8(const float* x, __m256 s) {
  return _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), s)),
                          _mm256_set1_epi32(127));
}

// q[i] for n floats (a multiple of 32), saturated to int8 by the packs.
TI inline void round_codes(const float* x, int n, float s, std::int8_t* q) {
  const __m256 vs = _mm256_set1_ps(s);
  for (int i = 0; i < n; i += 32) {
    const __m256i ab = _mm256_packs_epi32(round8(x + i, vs), round8(x + i + 8, vs));
    const __m256i cd = _mm256_packs_epi32(round8(x + i + 16, vs), round8(x + i + 24, vs));
    // The packs work per 128-bit half: dwords come out a0 b0 c0 d0 a1 b1 c1 d1 (four codes
    // each); back into order.
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), bytes);
  }
}

// One block as gguf::quantize_q8_activations: Q8_K (256) or Q8_0 (32).
T void quantize_block(bool q8k, const float* x, std::int8_t* q, float& d) {
  const int n = q8k ? 256 : 32;
  if (!all_finite(x, n)) {
    std::fill_n(q, n, std::int8_t{0});
    d = __builtin_nanf("");
    return;
  }
  const float amax = abs_max(x, n);
  if (q8k) {
    float max = 0;
    for (int j = 0; j < n; ++j)
      if (x[j] == amax || x[j] == -amax) {
        max = x[j];
        break;
      }
    const float iscale = amax != 0 ? -127.0f / max : 0.0f;
    if (!(iscale != 0 && iscale - iscale == 0)) {  // zero, or 127/m overflowed
      std::fill_n(q, n, std::int8_t{0});
      d = 0;
      return;
    }
    round_codes(x, n, iscale, q);
    d = 1.0f / iscale;
    return;
  }
  d = _cvtsh_ss(_cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT));
  if (d == 0) {
    std::fill_n(q, n, std::int8_t{0});
    return;
  }
  round_codes(x, n, 127.0f / amax, q);
}

// ---- weight codes in registers ----

TI inline __m256i low_nibbles(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(15)); }
TI inline __m256i high_nibbles(__m256i v) {
  return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(15));
}
// Bits [shift, shift + width) of each byte (mask = 2^width − 1), moved to bit 4: q5_K's fifth
// and q6_K's fifth and sixth code bits.
TI inline __m256i high_bits(__m256i v, int shift, int mask) {
  return _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)),
                                            _mm256_set1_epi8(static_cast<char>(mask))),
                           4);
}

// A 32-element block's 16 bytes of nibbles as its 32 codes (0..15): the low nibbles, then the
// high ones.
TI inline __m256i nibble_codes(const std::byte* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(15));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(15));
  return _mm256_set_m128i(hi, lo);
}

// q5_0's and q5_1's fifth code bits, bit i of the u32 at qh, as bit 4 of byte i: each byte takes
// the qh byte holding its bit (vpshufb works per 128-bit half, and every half has all four),
// then tests its own bit.
TI inline __m256i q5_high_bits(const std::byte* qh) {
  std::int32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(bits),
      _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
  const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit),
                          _mm256_set1_epi8(16));
}

// An iq4_nl block's 32 weights as signed bytes: its nibbles looked up in the code book.
TI inline __m256i iq4_nl_values(const std::byte* block) {
  const __m256i book = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(gguf::kIq4nlValues)));
  return _mm256_shuffle_epi8(book, nibble_codes(block + 2));
}

// The eight six-bit sub-block scales and mins of a q4_K/q5_K super-block, one byte each (gguf's
// k4_scale_min for the eight at once).
struct K4Scales {
  std::uint64_t scales, mins;
};
TI inline K4Scales k4_scales(const std::byte* block) {
  std::uint32_t a, b, c;
  std::memcpy(&a, block + 4, 4);
  std::memcpy(&b, block + 8, 4);
  std::memcpy(&c, block + 12, 4);
  const std::uint32_t sc_hi = (c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4);
  const std::uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4);
  return {(a & 0x3F3F3F3Fu) | std::uint64_t{sc_hi} << 32,
          (b & 0x3F3F3F3Fu) | std::uint64_t{m_hi} << 32};
}

// Elements [32m, 32m + 32) of a super-block (or the 32-element block) of kType as codes: the
// K-quants' unsigned as stored (q6_K's still with its offset of 32), q4_0's and q4_1's 0..15,
// q5_0's and q5_1's 0..31, q8_0's signed, iq4_nl's the signed code-book values.
template <G kType>
TI inline __m256i codes32(const std::byte* block, int m) {
  if constexpr (kType == G::Q8_0) return load32(block + 2);
  if constexpr (kType == G::Q4_0) return nibble_codes(block + 2);
  if constexpr (kType == G::Q4_1) return nibble_codes(block + 4);
  if constexpr (kType == G::Q5_0)
    return _mm256_or_si256(nibble_codes(block + 6), q5_high_bits(block + 2));
  if constexpr (kType == G::Q5_1)
    return _mm256_or_si256(nibble_codes(block + 8), q5_high_bits(block + 4));
  if constexpr (kType == G::IQ4_NL) return iq4_nl_values(block);
  if constexpr (kType == G::Q4_K) {
    const __m256i v = load32(block + 16 + 32 * (m / 2));
    return m % 2 == 0 ? low_nibbles(v) : high_nibbles(v);
  }
  if constexpr (kType == G::Q5_K) {
    const __m256i v = load32(block + 48 + 32 * (m / 2));
    return _mm256_or_si256(m % 2 == 0 ? low_nibbles(v) : high_nibbles(v),
                           high_bits(load32(block + 16), m, 1));
  }
  // Q6_K: the half m / 4 of the super-block; of its four runs of 32, the first two take the low
  // nibbles of ql's two 32-byte halves, the last two the high ones; qh's bit pairs in order.
  const int h = m / 4, p = m % 4;
  const __m256i ql = load32(block + 64 * h + 32 * (p % 2));
  return _mm256_or_si256(p < 2 ? low_nibbles(ql) : high_nibbles(ql),
                         high_bits(load32(block + 128 + 32 * h), 2 * p, 3));
}

// A block's (super-block's) f16 scale d: q6_K keeps it last.
template <G kType>
TI inline float block_d(const std::byte* block) {
  return f16(block + (kType == G::Q6_K ? 208 : 0));
}

// The 32-element types whose weights are d·q + m (m the f16 after d).
constexpr bool has_block_min(G type) { return type == G::Q4_1 || type == G::Q5_1; }

// The codes the row kernel's vpsignb takes for the 32-element types without a min: signed
// weights over d, q4_0's and q5_0's centred.
template <G kType>
TI inline __m256i signed_codes(const std::byte* block) {
  const __m256i q = codes32<kType>(block, 0);
  if constexpr (kType == G::Q4_0) return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
  if constexpr (kType == G::Q5_0) return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
  return q;
}

// ---- the row kernel (short blocks and decode) ----

// q4_K's row kernel gives each 32-bit lane one sub-block for a whole super-block: at step m < 8
// lane i holds codes 4m..4m+3 of sub-block kQ4kLaneSub[i] (the low nibbles of qs dword 8g + m
// for sub-block 2g, the high ones for 2g + 1). The int16 pair sums of eight steps stay within
// 8 · 2 · 15 · 127 = 30480, so they add in int16 and meet the sub-block scales in one vpmaddwd
// per super-block, not one per 32 codes.
constexpr int kQ4kLaneSub[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// Rows of x per pass of the row kernel: a vector of f32 sums and one of int32 sums each, beside
// the codes, scales and temporaries, in AVX2's 16 registers.
constexpr int kRowMax = 4;
// q4_K's row kernel (its lanes whole sub-blocks) keeps its decoded super-block apart from the
// rows' sums and takes 8 rows a pass: Qwen3's 8-row expert blocks went from 223-225 to 254-267
// GOP/s and its down projection's from 154 to 196-223 (PORTA_GGML_ISA=avx2 on Zen 4). q6_K,
// whose decode of 32 codes costs most of all, gains from 8 too (best of four interleaved runs:
// Qwen3 expert gate 179 -> 189, down 140 -> 153, V2-Lite's 12-row gate 174 -> 204); the other
// types were slower with more than 4.
constexpr int row_max(G type) { return type == G::Q4_K || type == G::Q6_K ? 8 : kRowMax; }

// How far ahead of the block being decoded the weight stream is prefetched, as the f32 block
// kernels do (block_kernels.inl): decode reads each weight once, from memory.
constexpr std::int64_t kPrefetchBytes = 3072;

// The weight stream kPrefetchBytes ahead of the super-block at b, every cache line of one.
template <int kBlockBytes>
TI inline void prefetch_ahead(const std::byte* b) {
  for (int at = 0; at < kBlockBytes; at += 64)
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes + at), _MM_HINT_T0);
}

// int16 element j of each 128-bit half, in all eight of its int16 lanes (a vpshufb index).
TI inline __m256i word_broadcast_index(int j) {
  return _mm256_set1_epi16(static_cast<short>(((2 * j + 1) << 8) | (2 * j)));
}

// y[r·ldy] = Σ_k W[k] · x̂[first + r, k] for one weight row and R <= kRowMax rows of x, each 32
// codes of the row decoded once for the R rows.
// - q8_0, iq4_nl, q4_0 and q5_0 (centred): per block and row vpsignb, vpmaddubsw, vpmaddwd by
//   one, and the block's scale product d · dx in f32.
// - q4_1, q5_1: the same on the unsigned codes without vpsignb, and the min term m · dx·Σ qx in
//   a second f32 sum.
// - q4_K, q5_K, q6_K: per 32 codes and row vpmaddubsw and vpmaddwd by the sub-block scales into
//   int32 sums; per super-block d · dx in f32, then q4_K/q5_K's min terms dmin·m · dx·Σ qx and
//   q6_K's offset, 32 · Σ_sub scale · Σ qx, in int32.
template <G kType, int R>
T void row_kernel(const std::byte* row, const Q8Rows& x, std::int64_t first, float* y,
                  std::int64_t ldy) {
  constexpr Layout l = layout_of(kType);
  const std::int64_t k = x.k, supers = k / l.super;
  const std::int8_t* xr[R];
  const float* dx[R];
  __m256 f[R];
  // The min terms of q4_1 and q5_1: apart from f, so that each row's two FMAs per block do not
  // wait on each other.
  [[maybe_unused]] __m256 fm[R];
  for (int r = 0; r < R; ++r) {
    xr[r] = x.codes(first + r);
    dx[r] = x.d.data() + (first + r) * supers;
    f[r] = _mm256_setzero_ps();
    fm[r] = _mm256_setzero_ps();
  }
  if constexpr (l.super == 32) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * l.block_bytes;
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes), _MM_HINT_T0);
      const __m256 dw = _mm256_set1_ps(f16(b));
      if constexpr (has_block_min(kType)) {
        const __m256i w = codes32<kType>(b, 0);  // 0..31: 2 · 31 · 127 a pair at most
        // m · dx·Σ qx enters all eight lanes, which sum8 adds: m/8 there (exact, a power of 2).
        const __m256 m8 = _mm256_set1_ps(f16(b + 2) * 0.125f);
        for (int r = 0; r < R; ++r) {
          const __m256i sums =
              _mm256_madd_epi16(_mm256_maddubs_epi16(w, load32(xr[r] + 32 * s)), ones);
          f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums),
                                 _mm256_mul_ps(dw, _mm256_broadcast_ss(dx[r] + s)), f[r]);
          fm[r] = _mm256_fmadd_ps(m8, _mm256_broadcast_ss(x.sums.data() + (first + r) * supers + s),
                                  fm[r]);
        }
      } else {
        const __m256i w = signed_codes<kType>(b);
        const __m256i magnitude = _mm256_sign_epi8(w, w);
        for (int r = 0; r < R; ++r) {
          const __m256i signed_x = _mm256_sign_epi8(load32(xr[r] + 32 * s), w);
          const __m256i sums = _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, signed_x), ones);
          f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums),
                                 _mm256_mul_ps(dw, _mm256_broadcast_ss(dx[r] + s)), f[r]);
        }
      }
    }
    if constexpr (has_block_min(kType))
      for (int r = 0; r < R; ++r) f[r] = _mm256_add_ps(f[r], fm[r]);
  } else if constexpr (kType == G::Q4_K) {
    const std::int64_t subs = k / l.sub;
    const std::int8_t* xl[R];
    for (int r = 0; r < R; ++r) xl[r] = x.lane_codes.data() + (first + r) * k;
    const __m256i low4 = _mm256_set1_epi8(15);
    // Each int16 lane pair 2i, 2i + 1 meets the scale of sub-block kQ4kLaneSub[i].
    const __m128i scale_order = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 1, 1, 3, 3, 5, 5, 7, 7);
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * l.block_bytes;
      prefetch_ahead<l.block_bytes>(b);
      const K4Scales k4 = k4_scales(b);
      const __m256i scales = _mm256_cvtepu8_epi16(
          _mm_shuffle_epi8(_mm_cvtsi64_si128(static_cast<long long>(k4.scales)), scale_order));
      // qs dword 8g + m for g < 4 side by side: a 4 x 8 transpose of dwords, steps m and m + 4
      // in the two halves of u[m].
      const __m256i q0 = load32(b + 16), q1 = load32(b + 48), q2 = load32(b + 80),
                    q3 = load32(b + 112);
      const __m256i t01lo = _mm256_unpacklo_epi32(q0, q1), t01hi = _mm256_unpackhi_epi32(q0, q1);
      const __m256i t23lo = _mm256_unpacklo_epi32(q2, q3), t23hi = _mm256_unpackhi_epi32(q2, q3);
      const __m256i u[4] = {
          _mm256_unpacklo_epi64(t01lo, t23lo), _mm256_unpackhi_epi64(t01lo, t23lo),
          _mm256_unpacklo_epi64(t01hi, t23hi), _mm256_unpackhi_epi64(t01hi, t23hi)};
      __m256i w[8];
      for (int m = 0; m < 4; ++m) {
        const __m256i lo = _mm256_and_si256(u[m], low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(u[m], 4), low4);
        w[m] = _mm256_permute2x128_si256(lo, hi, 0x20);
        w[m + 4] = _mm256_permute2x128_si256(lo, hi, 0x31);
      }
      const float d = block_d<kType>(b);
      const __m256 mins = _mm256_mul_ps(_mm256_set1_ps(f16(b + 2)),
                                        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                            _mm_cvtsi64_si128(static_cast<long long>(k4.mins)))));
      for (int r = 0; r < R; ++r) {
        const std::int8_t* xs = xl[r] + 256 * s;
        __m256i pairs = _mm256_maddubs_epi16(w[0], load32(xs));
        for (int m = 1; m < 8; ++m)
          pairs = _mm256_add_epi16(pairs, _mm256_maddubs_epi16(w[m], load32(xs + 32 * m)));
        const __m256i a = _mm256_madd_epi16(pairs, scales);
        f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(d * dx[r][s]), f[r]);
        f[r] = _mm256_fnmadd_ps(mins, _mm256_loadu_ps(x.sums.data() + (first + r) * subs + 8 * s),
                                f[r]);
      }
    }
  } else {
    constexpr bool q6 = kType == G::Q6_K;
    const std::int64_t subs = k / l.sub;
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * l.block_bytes;
      prefetch_ahead<l.block_bytes>(b);
      [[maybe_unused]] const K4Scales k4 = q6 ? K4Scales{} : k4_scales(b);
      __m256i a[R];
      for (int r = 0; r < R; ++r) a[r] = _mm256_setzero_si256();
      if constexpr (q6) {
        const __m128i scales = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
#pragma GCC unroll 8
        for (int m = 0; m < 8; ++m) {
          const __m256i w = codes32<kType>(b, m);
          // Sub-blocks 2m and 2m + 1 (16 codes each): their scales over the two halves.
          const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(
              scales, _mm_set_epi64x(static_cast<long long>(0x0101010101010101ull * (2 * m + 1)),
                                     static_cast<long long>(0x0101010101010101ull * (2 * m)))));
          for (int r = 0; r < R; ++r)
            a[r] = _mm256_add_epi32(
                a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(w, load32(xr[r] + 256 * s + 32 * m)),
                                        sc));
        }
        // The codes' offset: Σ_sub scale · 32 · Σ qx, from the 16 sub-blocks' code sums.
        const __m256i sc16 = _mm256_cvtepi8_epi16(scales);
        for (int r = 0; r < R; ++r) {
          const __m256i sums = load32(x.code_sums.data() + (first + r) * subs + 16 * s);
          a[r] = _mm256_sub_epi32(a[r], _mm256_slli_epi32(_mm256_madd_epi16(sums, sc16), 5));
        }
      } else {
        const __m256i sc = _mm256_broadcastsi128_si256(
            _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(k4.scales))));
#pragma GCC unroll 8
        for (int m = 0; m < 8; ++m) {
          const __m256i w = codes32<kType>(b, m);
          const __m256i scale = _mm256_shuffle_epi8(sc, word_broadcast_index(m));
          for (int r = 0; r < R; ++r)
            a[r] = _mm256_add_epi32(
                a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(w, load32(xr[r] + 256 * s + 32 * m)),
                                        scale));
        }
      }
      const float d = block_d<kType>(b);
      for (int r = 0; r < R; ++r)
        f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[r]), _mm256_set1_ps(d * dx[r][s]), f[r]);
      if constexpr (!q6) {  // − Σ_j dmin·m_j · dx·Σ qx over the eight sub-blocks
        const __m256 mins = _mm256_mul_ps(
            _mm256_set1_ps(f16(b + 2)),
            _mm256_cvtepi32_ps(
                _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(k4.mins)))));
        for (int r = 0; r < R; ++r)
          f[r] = _mm256_fnmadd_ps(
              mins, _mm256_loadu_ps(x.sums.data() + (first + r) * subs + 8 * s), f[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) y[r * ldy] = sum8(f[r]);
}

// Bytes of x the row kernel reads per code and row: the code, and a float scale per 32 (and
// q4_1's and q5_1's sums) or the sums per sub-block (K-quants), a small fraction more.
constexpr std::int64_t kRowKernelXBytes = 1;
// Bytes of x a pass of the row kernel keeps in L1 while every weight row of its item passes (of
// L1's 32 KiB on Zen 4, 48 KiB on recent Intel cores): as q8_kernels_avx512.cpp's row kernel.
constexpr std::int64_t kRowKernelXBudget = 24 << 10;

template <G kType>
T void row_kernels(const std::byte* w, std::size_t row_bytes, std::int64_t n_rows, const Q8Rows& x,
                   std::int64_t first, std::int64_t count, float* y, std::int64_t ldy) {
  constexpr int kRows = row_max(kType);
  // Rows of x that fit the budget, at most a pass of the kernel; more go in passes of equal
  // size, each over every weight row (8 rows at K 4096 as 4 + 4: q6_K's Qwen3 o_proj at 8 rows
  // fell to 0.77x in one pass of 8).
  const std::int64_t fit = std::clamp<std::int64_t>(
      kRowKernelXBudget / std::max<std::int64_t>(1, x.k * kRowKernelXBytes), 1, kRows);
  if (count > fit) {
    const std::int64_t passes = (count + fit - 1) / fit, per = (count + passes - 1) / passes;
    for (std::int64_t r = 0; r < count; r += per)
      row_kernels<kType>(w, row_bytes, n_rows, x, first + r, std::min(per, count - r),
                         y + r * ldy, ldy);
    return;
  }
  for (std::int64_t n = 0; n < n_rows; ++n) {
    const std::byte* row = w + static_cast<std::size_t>(n) * row_bytes;
    std::int64_t r = 0;
    for (; r + kRows <= count; r += kRows)
      row_kernel<kType, kRows>(row, x, first + r, y + n + r * ldy, ldy);
    float* yr = y + n + r * ldy;
    static_assert(kRows <= 8, "the remainders below");
    switch (count - r) {
      case 7: row_kernel<kType, 7>(row, x, first + r, yr, ldy); break;
      case 6: row_kernel<kType, 6>(row, x, first + r, yr, ldy); break;
      case 5: row_kernel<kType, 5>(row, x, first + r, yr, ldy); break;
      case 4: row_kernel<kType, 4>(row, x, first + r, yr, ldy); break;
      case 3: row_kernel<kType, 3>(row, x, first + r, yr, ldy); break;
      case 2: row_kernel<kType, 2>(row, x, first + r, yr, ldy); break;
      case 1: row_kernel<kType, 1>(row, x, first + r, yr, ldy); break;
      default: break;
    }
  }
}

// ---- weight panels (long blocks) ----

// Output columns (weight rows) per panel: one int32 lane each.
constexpr int kCols = 8;
// Rows of x per tile: three vectors each (int16 pair sums, int32 sums, f32 result) beside the
// codes and a broadcast, in 16 registers.
constexpr int kTileRows = 4;

// A panel of kCols weight rows: codes [k / 4][kCols][4]; per sub-block the integer scales (one
// int16 scale in both halves of each column's lane: vpmaddwd then multiplies the column's two
// pair sums by it) and the min terms (dmin·m; q6_K d · 32 · scale; q4_0 d · 8, q5_0 d · 16;
// q4_1 and q5_1 −m), per super-block the scales d, each [..][kCols].
struct Panel {
  std::vector<std::uint8_t> codes;
  std::vector<std::int32_t> sc;
  std::vector<float> mins, d;
};

// int16 pair sums of vpmaddubsw that can be added in int16 before they could overflow: each is
// at most 2 · max code · 127.
constexpr int pair_sums_per_flush(G type) {
  if (type == G::Q5_K || type == G::Q5_0 || type == G::Q5_1) return 4;  // codes to 31: 7874
  if (type == G::Q6_K) return 2;                                        // codes to 63: 16002
  if (type == G::Q8_0 || type == G::IQ4_NL) return 1;  // |codes| to 128: 32512 each
  return 8;                                            // q4_0, q4_1, q4_K, to 15: 3810 each
}

// 8 x 8 transpose of 32-bit lanes: v[c] holds 32 codes of weight row c; the output at
// dst + 32·q holds codes 4q..4q+3 of each of the 8 rows.
TI inline void transpose8_store(const __m256i v[8], std::uint8_t* dst) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // u[j] (j < 4) holds dword j of rows 0-3 in its low half and dword 4 + j in its high half;
  // u[4 + j] the same of rows 4-7.
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * j),
                        _mm256_permute2x128_si256(u[j], u[4 + j], 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * (4 + j)),
                        _mm256_permute2x128_si256(u[j], u[4 + j], 0x31));
  }
}

// The integer scales, min terms and d of super-block s of weight row c into the panel.
template <G kType>
TI inline void pack_scales(const std::byte* b, std::int64_t s, int c, Panel& p) {
  constexpr Layout l = layout_of(kType);
  constexpr int subs = l.super / l.sub;
  const float d = block_d<kType>(b);
  p.d[static_cast<std::size_t>(s * kCols + c)] = d;
  [[maybe_unused]] std::int32_t* sc = p.sc.data() + s * subs * kCols + c;
  [[maybe_unused]] float* mins = p.mins.data() + s * subs * kCols + c;
  if constexpr (has_block_min(kType)) {
    mins[0] = -f16(b + 2);  // the tile subtracts its min terms
  } else if constexpr (kType == G::Q4_K || kType == G::Q5_K) {
    const K4Scales k4 = k4_scales(b);
    const float dmin = f16(b + 2);
    for (int j = 0; j < subs; ++j) {
      const auto scale = static_cast<std::int32_t>((k4.scales >> (8 * j)) & 0xFF);
      sc[j * kCols] = scale | scale << 16;
      mins[j * kCols] = dmin * static_cast<float>((k4.mins >> (8 * j)) & 0xFF);
    }
  } else if constexpr (kType == G::Q6_K) {
    for (int j = 0; j < subs; ++j) {
      const auto scale = static_cast<std::int8_t>(b[192 + j]);
      sc[j * kCols] = static_cast<std::int32_t>(static_cast<std::uint16_t>(scale) * 0x10001u);
    }
  }
}

// Weight rows [0, cols) (cols <= kCols) of k elements from w into the panel; missing rows are
// zero codes and scales.
template <G kType>
T void pack_panel(const std::byte* w, std::size_t row_bytes, int cols, std::int64_t k, Panel& p) {
  constexpr Layout l = layout_of(kType);
  const std::int64_t supers = k / l.super, subs = k / l.sub;
  p.codes.resize(static_cast<std::size_t>(k * kCols));
  p.sc.assign(static_cast<std::size_t>(subs * kCols), 0);
  p.mins.assign(static_cast<std::size_t>(subs * kCols), 0.0f);
  p.d.assign(static_cast<std::size_t>(supers * kCols), 0.0f);
  for (std::int64_t s = 0; s < supers; ++s) {
    for (int c = 0; c < cols; ++c)
      pack_scales<kType>(w + static_cast<std::size_t>(c) * row_bytes + s * l.block_bytes, s, c, p);
    for (int m = 0; m < l.super / 32; ++m) {
      __m256i v[kCols];
      for (int c = 0; c < kCols; ++c)
        v[c] = c < cols ? codes32<kType>(
                              w + static_cast<std::size_t>(c) * row_bytes + s * l.block_bytes, m)
                        : _mm256_setzero_si256();
      transpose8_store(v, p.codes.data() + (s * l.super + 32 * m) * kCols);
    }
  }
}

// y[r·ldy + c] for R rows of x from `first` and the panel's `cols` columns: per four codes and
// row a broadcast of the four activation codes and one vpmaddubsw against the panel's codes of
// the eight columns, the int16 pair sums added until they could overflow, then one vpmaddwd by
// the sub-block scales (or by one) into int32; per sub-block the min terms and per super-block
// d · dx in f32. q8_0 and iq4_nl take the activations with the codes' signs (vpsignb) and
// |codes|.
template <G kType, int R>
T void tile(const Panel& p, const Q8Rows& x, std::int64_t first, float* y, std::int64_t ldy,
            int cols) {
  constexpr Layout l = layout_of(kType);
  constexpr int subs_per_super = l.super / l.sub, quads = l.sub / 4;
  constexpr int flush = pair_sums_per_flush(kType);
  constexpr bool scaled = kType == G::Q4_K || kType == G::Q5_K || kType == G::Q6_K;
  constexpr bool sign_trick = kType == G::Q8_0 || kType == G::IQ4_NL;
  // q4_0's, q5_0's and q6_K's offsets come out in integers, from Σ qx of each sub-block (a
  // float term offset·d·Σx̂ would cancel against the sums: codes at the offset lost their
  // digits to it); the others' min terms are part of their values.
  constexpr bool has_mins = has_block_min(kType) || kType == G::Q4_K || kType == G::Q5_K;
  constexpr int offset = kType == G::Q4_0 ? 8 : kType == G::Q5_0 ? 16 : kType == G::Q6_K ? 32 : 0;
  const std::int64_t supers = x.k / l.super, subs = x.k / l.sub;
  const __m256i ones = _mm256_set1_epi16(1);
  const std::int8_t* xr[R];
  __m256 f[R];
  for (int r = 0; r < R; ++r) {
    xr[r] = x.codes(first + r);
    f[r] = _mm256_setzero_ps();
  }
  for (std::int64_t s = 0; s < supers; ++s) {
    __m256i a[R];
    for (int r = 0; r < R; ++r) a[r] = _mm256_setzero_si256();
    for (int js = 0; js < subs_per_super; ++js) {
      const std::int64_t j = s * subs_per_super + js, e0 = j * l.sub;
      const std::uint8_t* c = p.codes.data() + e0 * kCols;
      const __m256i sc = scaled ? load32(p.sc.data() + j * kCols) : ones;
      if constexpr (offset != 0) {
        // −offset · scale · Σ qx per column: offset/2 · Σ qx fits int16 (16 · 2032, 8 · 4064),
        // and vpmaddwd adds it twice against the scale in both halves of each lane.
        for (int r = 0; r < R; ++r) {
          const int sum = x.code_sums[static_cast<std::size_t>((first + r) * subs + j)];
          a[r] = _mm256_add_epi32(
              a[r], _mm256_madd_epi16(
                        _mm256_set1_epi16(static_cast<std::int16_t>(-(offset / 2) * sum)), sc));
        }
      }
      for (int q0 = 0; q0 < quads; q0 += flush) {
        __m256i pairs[R];
        for (int r = 0; r < R; ++r) pairs[r] = _mm256_setzero_si256();
        for (int q = q0; q < q0 + flush; ++q) {
          const __m256i w = load32(c + 32 * q);
          if constexpr (sign_trick) {
            const __m256i magnitude = _mm256_sign_epi8(w, w);
            for (int r = 0; r < R; ++r)
              pairs[r] = _mm256_maddubs_epi16(
                  magnitude, _mm256_sign_epi8(broadcast4(xr[r] + e0 + 4 * q), w));
          } else {
            for (int r = 0; r < R; ++r)
              pairs[r] = _mm256_add_epi16(
                  pairs[r], _mm256_maddubs_epi16(w, broadcast4(xr[r] + e0 + 4 * q)));
          }
        }
        for (int r = 0; r < R; ++r) a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(pairs[r], sc));
      }
      if constexpr (has_mins) {
        const __m256 mins = _mm256_loadu_ps(p.mins.data() + j * kCols);
        for (int r = 0; r < R; ++r)
          f[r] = _mm256_fnmadd_ps(
              mins, _mm256_broadcast_ss(x.sums.data() + (first + r) * subs + j), f[r]);
      }
    }
    const __m256 d = _mm256_loadu_ps(p.d.data() + s * kCols);
    for (int r = 0; r < R; ++r) {
      const __m256 dx = _mm256_broadcast_ss(x.d.data() + (first + r) * supers + s);
      f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[r]), _mm256_mul_ps(d, dx), f[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if (cols == kCols) {
      _mm256_storeu_ps(y + r * ldy, f[r]);
    } else {
      alignas(32) float out[kCols];
      _mm256_store_ps(out, f[r]);
      std::copy_n(out, cols, y + r * ldy);
    }
  }
}

template <G kType>
T void tiles(const Panel& p, const Q8Rows& x, std::int64_t first, std::int64_t count, float* y,
             std::int64_t ldy, int cols) {
  std::int64_t r = 0;
  for (; r + kTileRows <= count; r += kTileRows)
    tile<kType, kTileRows>(p, x, first + r, y + r * ldy, ldy, cols);
  float* yr = y + r * ldy;
  static_assert(kTileRows == 4, "the remainders below");
  switch (count - r) {
    case 3: return tile<kType, 3>(p, x, first + r, yr, ldy, cols);
    case 2: return tile<kType, 2>(p, x, first + r, yr, ldy, cols);
    case 1: return tile<kType, 1>(p, x, first + r, yr, ldy, cols);
    default: return;
  }
}

// Rows of x from which panels beat the row kernel. The 32-element types pay the row kernel's
// vpsignb (or q4_1's and q5_1's min term) and an f32 scale product per 32 codes and row, and
// cross at kQ8PanelRows as q8_0 and q4_0 do on AVX-512; the K-quants' row kernel stays ahead
// longer. q4_K's 8-row passes beat the panels at every row count while a pass's activations fit
// the L1 budget (porta-bench-cpu-ggml-prefill, PORTA_GGML_ISA=avx2, Zen 4, Qwen3 q_proj, K 2048:
// 243-268 GOP/s against 182-213 at 32-512 rows); at K 4096 they spill and the panels win there
// from 32 rows (o_proj: 189-247 against 183-207).
constexpr std::int64_t panel_rows_from(G type, std::int64_t k) {
  if (layout_of(type).super == 32) return kQ8PanelRows;
  if (type == G::Q4_K && k * kRowKernelXBytes * row_max(type) <= kRowKernelXBudget)
    return std::numeric_limits<std::int64_t>::max();
  return 32;
}

// q8_matmul_avx2 for one block type: the row kernel under panel_rows_from rows of x, else panels.
template <G kType>
T void matmul_of(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                 std::int64_t count, float* y, std::int64_t ldy) {
  const std::size_t row_bytes = gguf::row_bytes(kType, static_cast<std::uint64_t>(x.k));
  if (count < panel_rows_from(kType, x.k))
    return row_kernels<kType>(w, row_bytes, n_rows, x, first, count, y, ldy);
  thread_local Panel panel;
  for (std::int64_t n0 = 0; n0 < n_rows; n0 += kCols) {
    const int cols = static_cast<int>(std::min<std::int64_t>(kCols, n_rows - n0));
    const std::byte* rows = w + static_cast<std::size_t>(n0) * row_bytes;
    for (std::size_t at = 0; at < static_cast<std::size_t>(cols) * row_bytes; at += 64)
      _mm_prefetch(reinterpret_cast<const char*>(rows + at), _MM_HINT_T0);
    pack_panel<kType>(rows, row_bytes, cols, x.k, panel);
    tiles<kType>(panel, x, first, count, y + n0, ldy, cols);
  }
}

}  // namespace

void shape_q8_rows_avx2(gguf::GgmlType type, std::int64_t rows, std::int64_t k, Q8Rows& out) {
  const Layout l = layout_of(type);
  shape_q8_common(type, rows, k, l.super, l.sub, out);
  out.init.clear();
  out.lane_d.clear();
  const bool offset_in_integers = type == G::Q6_K || type == G::Q4_0 || type == G::Q5_0;
  out.code_sums.resize(offset_in_integers ? static_cast<std::size_t>(rows * (k / l.sub)) : 0);
  out.lane_codes.resize(type == G::Q4_K ? static_cast<std::size_t>(rows * k) : 0);
}

PORTA_Q8_AVX2_TARGET void quantize_q8_rows_avx2(const float* x, std::int64_t ldx,
                                                std::int64_t first, std::int64_t count,
                                                Q8Rows& out) {
  const bool q8k = out.super == 256;
  const std::int64_t supers = out.k / out.super;
  for (std::int64_t r = first; r < first + count; ++r) {
    std::int8_t* q = out.q.data() + r * out.k;
    for (std::int64_t s = 0; s < supers; ++s)
      quantize_block(q8k, x + r * ldx + s * out.super, q + s * out.super,
                     out.d[static_cast<std::size_t>(r * supers + s)]);
    fill_sub_block_sums(r, out);
    if (!out.lane_codes.empty()) {  // q4_K: each super-block's codes in its lanes' order
      std::int8_t* lanes = out.lane_codes.data() + r * out.k;
      for (std::int64_t s = 0; s < supers; ++s)
        for (int m = 0; m < 8; ++m)
          for (int i = 0; i < 8; ++i)
            std::memcpy(lanes + s * 256 + 32 * m + 4 * i, q + s * 256 + 32 * kQ4kLaneSub[i] + 4 * m,
                        4);
    }
  }
}

PORTA_Q8_AVX2_TARGET void round_q8_row_avx2(gguf::Q8Blocks blocks, const float* x,
                                            std::int64_t k, float* out) {
  if (k % blocks.block != 0)  // the definition's own message
    return gguf::round_q8_activations(blocks, x, k, out);
  const bool q8k = blocks.type == G::Q8_K;
  alignas(32) std::int8_t q[256];
  for (std::int64_t at = 0; at < k; at += blocks.block) {
    float d = 0;
    quantize_block(q8k, x + at, q, d);
    const __m256 vd = _mm256_set1_ps(d);
    for (std::uint32_t i = 0; i < blocks.block; i += 8)
      _mm256_storeu_ps(out + at + i,
                       _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                                             reinterpret_cast<const __m128i*>(q + i))))));
  }
}

PORTA_Q8_AVX2_TARGET void q8_matmul_avx2(const std::byte* w, std::int64_t n_rows, const Q8Rows& x,
                                         std::int64_t first, std::int64_t count, float* y,
                                         std::int64_t ldy) {
  // An if chain: a switch would have to list every ggml type.
  const G type = x.weight_type;
  if (type == G::Q8_0) return matmul_of<G::Q8_0>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q4_0) return matmul_of<G::Q4_0>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q4_1) return matmul_of<G::Q4_1>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q5_0) return matmul_of<G::Q5_0>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q5_1) return matmul_of<G::Q5_1>(w, n_rows, x, first, count, y, ldy);
  if (type == G::IQ4_NL) return matmul_of<G::IQ4_NL>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q4_K) return matmul_of<G::Q4_K>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q5_K) return matmul_of<G::Q5_K>(w, n_rows, x, first, count, y, ldy);
  if (type == G::Q6_K) return matmul_of<G::Q6_K>(w, n_rows, x, first, count, y, ldy);
  layout_of(type);  // throws, naming the type
}

}  // namespace porta::detail::cpu::ggml
