// q8_kernels.hpp's integer path with AVX-512 VNNI: the activation quantizer (bit for bit
// gguf::quantize_q8_activations), the codes of each block type in registers, the panel packer
// and the register-tiled kernel over a panel (long blocks), and the row kernel (short ones).
// GCC 12's AVX-512 conversion intrinsics pass _mm512_undefined_*() as the unused merge source,
// which -Wmaybe-uninitialized (and, in _mm512_reduce_add_ps, -Wuninitialized) reports once
// inlined; nothing is read uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "ggml/q8_kernels.hpp"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::detail::cpu::ggml {

namespace {

#define PORTA_Q8_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define T PORTA_Q8_TARGET
#define TI PORTA_Q8_TARGET __attribute__((always_inline))

using G = gguf::GgmlType;

// Output columns (weight rows) per panel: one int32 lane each.
constexpr int kCols = 16;
// Rows of x per pass over a panel: three vectors each (the sub-block's and the super-block's
// integer sums, the f32 result) in AVX-512's 32 registers beside the panel's.
constexpr int kMaxRows = 8;

struct Layout {
  int super;        // elements per float scale d (the type's block)
  int sub;          // elements per integer scale and per min term
  bool scaled;      // sub-blocks carry an integer scale (else sub == super)
  int block_bytes;  // bytes per super-block
};

constexpr Layout layout_of(G type) {
  // An if chain: a switch would have to list every ggml type.
  if (type == G::Q8_0) return {32, 32, false, 34};
  if (type == G::Q4_0) return {32, 32, false, 18};
  if (type == G::Q4_1) return {32, 32, false, 20};
  if (type == G::Q5_0) return {32, 32, false, 22};
  if (type == G::Q5_1) return {32, 32, false, 24};
  if (type == G::IQ4_NL) return {32, 32, false, 18};
  if (type == G::Q4_K) return {256, 32, true, 144};
  if (type == G::Q5_K) return {256, 32, true, 176};
  if (type == G::Q6_K) return {256, 16, true, 210};
  throw Error(ErrorCode::Unsupported,
              fmt::format("no integer ggml_q8 kernel for {}", gguf::type_name(type)));
}

// The offset each code is stored with (as the kernels read it: unsigned), which the row kernel
// takes out of its integer sums and the panels' min terms hold. iq4_nl's codes are its code
// book's values, looked up and stored + 128.
constexpr int code_offset(G type) {
  if (type == G::Q8_0 || type == G::IQ4_NL) return 128;
  if (type == G::Q4_0) return 8;
  if (type == G::Q5_0) return 16;
  if (type == G::Q6_K) return 32;
  return 0;
}

// q6_K's row kernel from this many rows of x takes its lanes by sub-block (lane l the sixteen
// codes of sub-block l, activations stored in that order once per call): per super-block and row
// four vpdpbusd and one f32 scale product, instead of four vpdpbusd, four vpdpwssd and four
// loads of −32·Σ qx per four codes. Its transpose of the decoded codes (twelve shuffles a
// super-block) pays for itself over several rows; decode (one row) keeps the groups in order.
constexpr int kQ6LaneRows = 2;

// q4_K's row kernel gives each 32-bit lane of a vector one half of a sub-block: lane l holds
// codes of sub-block 2g + nib (its low nibbles for even sub-blocks, high for odd), half h,
// with l = 8·nib + 2·g + h. Four steps of four codes cover a super-block, and the lanes' sums
// then meet their sub-block scales once (one vpdpwssd per super-block, not one per 64 codes).
// The offset, within the super-block, of lane l's first code at step 0:
constexpr int q4k_lane_offset(int l) {
  const int nib = l / 8, g = (l % 8) / 2, h = l % 2;
  return 32 * (2 * g + nib) + 16 * h;
}

// The 32-element types whose values are d·q + m: m·Σx̂ per block beside the integer sums.
constexpr bool has_block_min(G type) { return type == G::Q4_1 || type == G::Q5_1; }
// The types with a min term in f32 (m, or the K-quants' dmin·m): the codes' offsets are taken
// out in integers, exactly, where a float term d·offset·Σx̂ would cancel against the sums (a
// q8_0 block of codes near 0 lost all its digits to it).
constexpr bool has_min_term(G type) {
  return has_block_min(type) || type == G::Q4_K || type == G::Q5_K;
}

TI inline float f16(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);
}

// ---- activations ----

// max|x| over n floats (a multiple of 16) and, for Q8_K, the first element of that magnitude.
TI inline float abs_max(const float* x, int n) {
  __m512 m = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
  return _mm512_reduce_max_ps(m);
}

TI inline bool all_finite(const float* x, int n) {
  const __m512 inf = _mm512_set1_ps(__builtin_inff());
  for (int i = 0; i < n; i += 16)
    if (_mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + i)), inf, _CMP_LT_OQ) != 0xFFFF)
      return false;
  return true;
}

// q[i] = round_half_even(x[i] · s) for n floats, clamped to [-128, 127] (the callers' values
// already lie in [-127, 127], bar Q8_K's upper clamp which min(127) below keeps).
TI inline void round_codes(const float* x, int n, float s, std::int8_t* q) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512i top = _mm512_set1_epi32(127);
  for (int i = 0; i < n; i += 16) {
    const __m512i v =
        _mm512_min_epi32(_mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                         top);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(v));
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

// ---- weight panels ----

// A panel of kCols weight rows: codes [k / 4][kCols][4], and per sub-block the integer scales
// and min terms, per super-block the scales d, each [..][kCols].
struct Panel {
  std::vector<std::uint8_t> codes;
  std::vector<std::int32_t> sc;
  std::vector<float> mins, d;
};

// A K-quant super-block's scales in registers (the row kernel's; the panel's through
// decode_scales): the sub-block scales as int32 lanes with their high halves clear (eight for
// q4_K/q5_K, sixteen for q6_K), the eight min terms dmin·m (q4_K/q5_K) and d.
struct SuperScales {
  __m512i sc;
  __m256 mins;
  float d;
};

TI inline SuperScales super_scales(G type, const std::byte* p) {
  if (type == G::Q6_K)
    return {_mm512_and_si512(
                _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192))),
                _mm512_set1_epi32(0xFFFF)),
            _mm256_setzero_ps(), f16(p + 208)};
  // Q4_K/Q5_K: twelve bytes of six-bit scales and mins (gguf's k4_scale_min, eight at once).
  std::uint32_t a, b, c;
  std::memcpy(&a, p + 4, 4);
  std::memcpy(&b, p + 8, 4);
  std::memcpy(&c, p + 12, 4);
  const std::uint64_t scales =
      (a & 0x3F3F3F3Fu) | std::uint64_t{(c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4)} << 32;
  const std::uint64_t mins =
      (b & 0x3F3F3F3Fu) | std::uint64_t{((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4)}
                              << 32;
  const __m256i m = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(mins)));
  return {_mm512_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(scales))),
          _mm256_mul_ps(_mm256_set1_ps(f16(p + 2)), _mm256_cvtepi32_ps(m)), f16(p)};
}

// The integer sub-block scales, min terms (the amount per unit of Σ x̂ each sub-block subtracts)
// and scale d of one super-block of `type`, for the panel (q6_K's scales sign-extended).
template <G type>
TI inline void decode_scales(const std::byte* p, std::int32_t* sc, float* mins, float& d) {
  if constexpr (layout_of(type).super == 32) {  // d·(q − offset) + m: the offset in integers
    d = f16(p);
    mins[0] = has_block_min(type) ? -f16(p + 2) : 0.0f;
  } else if constexpr (type == G::Q4_K || type == G::Q5_K) {
    const SuperScales ss = super_scales(type, p);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(sc), _mm512_castsi512_si256(ss.sc));
    _mm256_storeu_ps(mins, ss.mins);
    d = ss.d;
  } else {  // Q6_K: int8 scales; its codes' offset of 32 is taken out in integers
    d = f16(p + 208);
    _mm512_storeu_si512(
        sc, _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192))));
    std::fill_n(mins, 16, 0.0f);
  }
}

TI inline __m256i load32(const std::byte* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
TI inline __m256i nibbles(__m256i v, int shift) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(15));
}
// Bits [shift, shift + width) of each byte, moved to bit 4 (a fifth and sixth code bit).
TI inline __m256i high_bits(__m256i v, int shift, int mask) {
  return _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)),
                                            _mm256_set1_epi8(static_cast<char>(mask))),
                           4);
}
TI inline __m512i join(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
// The 32 codes held as nibbles in the 16 bytes at qs: the low nibbles, then the high ones.
TI inline __m256i nibble_codes(const std::byte* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i lo = _mm_and_si128(v, _mm_set1_epi8(15));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(15));
  return _mm256_set_m128i(hi, lo);
}
// q5_0/q5_1's fifth code bits: bit i of the 32-bit qh as bit 4 of code i.
TI inline __m256i fifth_bits(const std::byte* qh) {
  std::uint32_t bits;
  std::memcpy(&bits, qh, 4);
  return _mm256_maskz_mov_epi8(bits, _mm256_set1_epi8(16));
}
// iq4_nl's code book + 128, as the unsigned bytes the kernels multiply.
constexpr auto kIq4nlUnsigned = [] {
  std::array<std::uint8_t, 16> book{};
  for (int i = 0; i < 16; ++i) book[i] = static_cast<std::uint8_t>(gguf::kIq4nlValues[i] + 128);
  return book;
}();
// The 32 codes of one block of a 32-element type, unsigned (stored + code_offset(type)).
TI inline __m256i block_codes(G type, const std::byte* b) {
  if (type == G::Q8_0)
    return _mm256_xor_si256(load32(b + 2), _mm256_set1_epi8(static_cast<char>(0x80)));
  if (type == G::Q4_0) return nibble_codes(b + 2);
  if (type == G::Q4_1) return nibble_codes(b + 4);
  if (type == G::Q5_0) return _mm256_or_si256(nibble_codes(b + 6), fifth_bits(b + 2));
  if (type == G::Q5_1) return _mm256_or_si256(nibble_codes(b + 8), fifth_bits(b + 4));
  const __m256i book = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlUnsigned.data())));
  return _mm256_shuffle_epi8(book, nibble_codes(b + 2));  // IQ4_NL
}

// Elements [at, at + 64) of a weight row as unsigned codes (at a multiple of 64; with `half`
// only 32 remain, the upper lanes zero).
// (A template, as decode_scales: layout_of, with its throw, is not inlined, and called with a
// run-time type per 64 codes it held q8_0's 8-row expert blocks at 87 GOP/s instead of 144.)
template <G type>
TI inline __m512i group_codes(const std::byte* row, std::int64_t at, bool half) {
  if constexpr (layout_of(type).super == 32) {
    constexpr int bytes = layout_of(type).block_bytes;
    const std::byte* b = row + (at / 32) * bytes;
    return join(block_codes(type, b),
                half ? _mm256_setzero_si256() : block_codes(type, b + bytes));
  }
  const std::int64_t s = at / 256;
  const int g = static_cast<int>(at % 256) / 64;
  if (type == G::Q4_K) {
    const __m256i v = load32(row + s * 144 + 16 + 32 * g);
    return join(nibbles(v, 0), nibbles(v, 4));
  }
  if (type == G::Q5_K) {
    const std::byte* b = row + s * 176;
    const __m256i v = load32(b + 48 + 32 * g), h = load32(b + 16);
    return join(_mm256_or_si256(nibbles(v, 0), high_bits(h, 2 * g, 1)),
                _mm256_or_si256(nibbles(v, 4), high_bits(h, 2 * g + 1, 1)));
  }
  // Q6_K: half g / 2 of the super-block; its first 64 elements take the low nibbles of ql and
  // bits 0-3 of qh, the next 64 the high nibbles and bits 4-7. In 512-bit operations, half the
  // instructions of two 256-bit halves (the packer decodes every weight of a panel once, and on
  // Mixtral's 32-row expert blocks it took longer than the tile): qh's 32 bytes in both halves,
  // each half shifted to its own bit pair by vpsrlvw.
  const std::byte* b = row + s * 210;
  const int h = g / 2, shift = 4 * (g % 2);
  const __m512i ql = _mm512_loadu_si512(b + 64 * h);
  const __m512i qh = _mm512_broadcast_i64x4(load32(b + 128 + 32 * h));
  const __m512i low =
      _mm512_and_si512(_mm512_srl_epi16(ql, _mm_cvtsi32_si128(shift)), _mm512_set1_epi8(15));
  const __m512i pair_shift =
      _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(static_cast<short>(shift)),
                              _mm512_set1_epi16(static_cast<short>(shift + 2)));
  const __m512i high = _mm512_slli_epi16(
      _mm512_and_si512(_mm512_srlv_epi16(qh, pair_shift), _mm512_set1_epi8(3)), 4);
  return _mm512_or_si512(low, high);
}

// The 16 x 16 transpose of 32-bit lanes: row c of the input becomes lane c of every output, so
// that output q, stored at dst + 64·q for q < count, holds dword q (codes 4q..4q+3) of each of
// the 16 weight rows. (Stored from here: copied back into r, the result went through memory.)
TI inline void transpose16_store(__m512i r[16], std::uint8_t* dst, int count) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512i x0 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x44);
    const __m512i x1 = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xEE);
    const __m512i y0 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x44);
    const __m512i y1 = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xEE);
    _mm512_storeu_si512(dst + 64 * m, _mm512_shuffle_i32x4(x0, y0, 0x88));
    _mm512_storeu_si512(dst + 64 * (4 + m), _mm512_shuffle_i32x4(x0, y0, 0xDD));
    if (count > 8) {  // the upper eight dwords: absent in a last half group of 32 codes
      _mm512_storeu_si512(dst + 64 * (8 + m), _mm512_shuffle_i32x4(x1, y1, 0x88));
      _mm512_storeu_si512(dst + 64 * (12 + m), _mm512_shuffle_i32x4(x1, y1, 0xDD));
    }
  }
}

// Weight rows [0, cols) of w (cols <= kCols; the rest of the panel zero) packed for the kernel.
template <G kType>
T void pack_panel(const std::byte* w, std::size_t row_bytes, int cols, std::int64_t k, Panel& p) {
  constexpr G type = kType;
  constexpr Layout l = layout_of(type);
  const std::int64_t supers = k / l.super, subs = k / l.sub;
  p.codes.resize(static_cast<std::size_t>(kCols * k));
  p.sc.resize(static_cast<std::size_t>(subs * kCols));
  p.mins.resize(static_cast<std::size_t>(subs * kCols));
  p.d.resize(static_cast<std::size_t>(supers * kCols));
  if (cols < kCols) {  // the missing rows' lanes add nothing
    std::fill(p.sc.begin(), p.sc.end(), 0);
    std::fill(p.mins.begin(), p.mins.end(), 0.0f);
    std::fill(p.d.begin(), p.d.end(), 0.0f);
  }
  std::int32_t sc[16] = {};
  float mins[16] = {};
  const int subs_per_super = l.super / l.sub;
  if constexpr (type == G::Q6_K) {
    // Sixteen int8 scales per super-block and no min terms: each super-block's [col][sub]
    // scales go into [sub][col] by one 16 x 16 transpose, not 256 scattered stores (the packer
    // took longer than the tile on Mixtral's 32-row expert blocks).
    __m512i r[16];
    for (std::int64_t s = 0; s < supers; ++s) {
      for (int c = 0; c < kCols; ++c) {
        r[c] = _mm512_setzero_si512();
        if (c >= cols) continue;
        const std::byte* b = w + static_cast<std::size_t>(c) * row_bytes + s * l.block_bytes;
        r[c] = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192)));
        p.d[static_cast<std::size_t>(s * kCols + c)] = f16(b + 208);
      }
      transpose16_store(r, reinterpret_cast<std::uint8_t*>(p.sc.data() + s * 16 * kCols), 16);
    }
  }
  for (int c = 0; c < cols && type != G::Q6_K; ++c) {
    const std::byte* row = w + static_cast<std::size_t>(c) * row_bytes;
    for (std::int64_t s = 0; s < supers; ++s) {
      float d = 0;
      decode_scales<type>(row + s * l.block_bytes, sc, mins, d);
      p.d[static_cast<std::size_t>(s * kCols + c)] = d;
      for (int j = 0; j < subs_per_super; ++j) {
        const auto at = static_cast<std::size_t>((s * subs_per_super + j) * kCols + c);
        p.sc[at] = l.scaled ? sc[j] : 1;
        p.mins[at] = mins[j];
      }
    }
  }
  // Interleave 64 codes (16 dwords) of each row at a time; a last 32 with the upper half zero.
  __m512i r[16];
  for (std::int64_t at = 0; at < k; at += 64) {
    const bool half = k - at < 64;
    for (int c = 0; c < kCols; ++c)
      r[c] = c < cols ? group_codes<type>(w + static_cast<std::size_t>(c) * row_bytes, at, half)
                      : _mm512_setzero_si512();
    transpose16_store(r, p.codes.data() + at * kCols, half ? 8 : 16);
  }
}

// ---- the kernel ----

// y[r·ldy + c] for R rows of x from `first` and the columns of P panels side by side (16
// each; panel i's cols[i] valid): per four codes and row one broadcast of the row's four codes
// meets each panel's 64 bytes by one vpdpbusd. Two panels share every broadcast: on Zen 4 a
// broadcast from memory takes a vector pipe like vpdpbusd, and one panel of 8 rows (a
// broadcast per vpdpbusd) reached 2.1 G vpdpbusd/s a core against 3.0 with two panels of 4
// rows, 3.7 with no loads at all (a synthetic loop of each shape).
template <G kType, int R, int P>
T void tile(const Panel* const* ps, const Q8Rows& x, std::int64_t first, float* y, std::int64_t ldy,
            const int* cols) {
  constexpr Layout l = layout_of(kType);
  const std::int64_t k = x.k, supers = k / l.super;
  const int subs_per_super = l.super / l.sub, quads = l.sub / 4;
  const std::int64_t subs_per_row = k / l.sub;
  __m512 f[R][P];
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < P; ++i) f[r][i] = _mm512_setzero_ps();
  const std::int8_t* xr[R];
  for (int r = 0; r < R; ++r) xr[r] = x.codes(first + r);
  for (std::int64_t s = 0; s < supers; ++s) {
    __m512i a[R][P];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < P; ++i) a[r][i] = _mm512_setzero_si512();
    for (int js = 0; js < subs_per_super; ++js) {
      const std::int64_t j = s * subs_per_super + js;
      const std::int64_t e0 = j * l.sub;
      const std::uint8_t* c[P];
      for (int i = 0; i < P; ++i) c[i] = ps[i]->codes.data() + e0 * kCols;
      __m512i t[R][P];
      // Each row's sums start at −offset · Σ qx of the sub-block, exact in int32.
      for (int r = 0; r < R; ++r) {
        const __m512i start =
            code_offset(kType) == 0
                ? _mm512_setzero_si512()
                : _mm512_set1_epi32(
                      -code_offset(kType) *
                      x.code_sums[static_cast<std::size_t>((first + r) * subs_per_row + j)]);
        for (int i = 0; i < P; ++i) t[r][i] = start;
      }
      for (int q = 0; q < quads; ++q) {
        __m512i w[P];
        for (int i = 0; i < P; ++i) w[i] = _mm512_loadu_si512(c[i] + q * 64);
        for (int r = 0; r < R; ++r) {
          std::int32_t four;
          std::memcpy(&four, xr[r] + e0 + 4 * q, 4);
          const __m512i codes = _mm512_set1_epi32(four);
          for (int i = 0; i < P; ++i) t[r][i] = _mm512_dpbusd_epi32(t[r][i], w[i], codes);
        }
      }
      for (int i = 0; i < P; ++i) {
        if constexpr (l.scaled) {
          const __m512i sc = _mm512_loadu_si512(ps[i]->sc.data() + j * kCols);
          for (int r = 0; r < R; ++r)
            a[r][i] = _mm512_add_epi32(a[r][i], _mm512_mullo_epi32(t[r][i], sc));
        } else {
          for (int r = 0; r < R; ++r) a[r][i] = t[r][i];
        }
        if constexpr (has_min_term(kType)) {
          const __m512 mins = _mm512_loadu_ps(ps[i]->mins.data() + j * kCols);
          for (int r = 0; r < R; ++r)
            f[r][i] = _mm512_fnmadd_ps(
                mins,
                _mm512_set1_ps(x.sums[static_cast<std::size_t>((first + r) * subs_per_row + j)]),
                f[r][i]);
        }
      }
    }
    for (int i = 0; i < P; ++i) {
      const __m512 d = _mm512_loadu_ps(ps[i]->d.data() + s * kCols);
      for (int r = 0; r < R; ++r) {
        const __m512 dx = _mm512_set1_ps(x.d[static_cast<std::size_t>((first + r) * supers + s)]);
        f[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r][i]), _mm512_mul_ps(d, dx), f[r][i]);
      }
    }
  }
  for (int i = 0; i < P; ++i) {
    const auto mask = static_cast<__mmask16>((1u << cols[i]) - 1);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(y + r * ldy + i * kCols, mask, f[r][i]);
  }
}

// Rows of x per tile with P panels: three vectors a row and panel (the sub-block's and the
// super-block's integer sums, the f32 result) in 32 registers beside the panels' codes.
template <int P>
constexpr int kTileRows = P == 1 ? kMaxRows : 4;

// All `count` rows of x through tiles of P panels.
template <G kType, int P>
T void tiles(const Panel* const* ps, const Q8Rows& x, std::int64_t first, std::int64_t count,
             float* y, std::int64_t ldy, const int* cols) {
  constexpr int kRows = kTileRows<P>;
  std::int64_t r = 0;
  for (; r + kRows <= count; r += kRows)
    tile<kType, kRows, P>(ps, x, first + r, y + r * ldy, ldy, cols);
  float* yr = y + r * ldy;
  static_assert(kRows <= 8, "the remainders below");
  switch (count - r) {
    case 7: return tile<kType, 7, P>(ps, x, first + r, yr, ldy, cols);
    case 6: return tile<kType, 6, P>(ps, x, first + r, yr, ldy, cols);
    case 5: return tile<kType, 5, P>(ps, x, first + r, yr, ldy, cols);
    case 4: return tile<kType, 4, P>(ps, x, first + r, yr, ldy, cols);
    case 3: return tile<kType, 3, P>(ps, x, first + r, yr, ldy, cols);
    case 2: return tile<kType, 2, P>(ps, x, first + r, yr, ldy, cols);
    case 1: return tile<kType, 1, P>(ps, x, first + r, yr, ldy, cols);
    default: return;
  }
}

// ---- the row kernel (short blocks and decode) ----

// How far ahead of the block being decoded the weight stream is prefetched, as the f32 block
// kernels do (block_kernels.inl): decode reads each weight once, from memory.
constexpr std::int64_t kPrefetchBytes = 3072;

// The weight stream kPrefetchBytes ahead of the super-block at b, every cache line of one.
template <int kBlockBytes>
TI inline void prefetch_ahead(const std::byte* b) {
  for (int at = 0; at < kBlockBytes; at += 64)
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes + at), _MM_HINT_T0);
}

// y[r·ldy] = Σ_k W[k] · x̂[first + r, k] for one weight row and R <= kMaxRows rows of x: each
// 64 codes of the row decoded once for the R rows; per 64 codes and row one vpdpbusd (its
// accumulator starting at −offset · Σ qx, so that each lane holds Σ (q − offset) · qx of four
// codes, which fits 16 bits), one vpmaddwd by the sub-block scales and one add; per super-block
// the scales d · dx in f32, and the min terms dmin·m · dx·Σ qx.
// The block type is a template argument: with it known, group_codes and super_scales inline to
// the type's own instructions (as a run-time argument its tests stayed in the loop over codes:
// q4_K decode ran 1.35x slower on Zen 4).
template <G kType, int R>
T void row_kernel(const std::byte* row, const Q8Rows& x, std::int64_t first, float* y,
                  std::int64_t ldy) {
  constexpr G type = kType;
  constexpr bool kSmallBlocks = layout_of(type).super == 32;
  constexpr int kBlockBytes = layout_of(type).block_bytes;
  const std::int64_t k = x.k;
  // The 32-element types stored with an offset (q4_0, q5_0, iq4_nl) start each lane's sum at
  // −offset·Σ of its four codes of x.
  constexpr bool centred = kSmallBlocks && code_offset(type) != 0;
  const std::int64_t lanes_per_row = k / 4;
  const std::int8_t* xr[R];
  const std::int32_t* init[R];
  __m512 f[R];
  for (int r = 0; r < R; ++r) {
    xr[r] = x.codes(first + r);
    init[r] = centred ? x.init.data() + (first + r) * lanes_per_row : nullptr;
    f[r] = _mm512_setzero_ps();
  }
  if constexpr (kSmallBlocks) {  // per 64 codes, two blocks' scales in the halves
    const std::int64_t chunks = (k + 63) / 64, blocks = k / 32;
    float block_mins[R] = {};  // q4_1, q5_1: Σ m · dx·Σqx over the blocks
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t at = 64 * c;
      const bool half = k - at < 64;
      const std::byte* b = row + (at / 32) * kBlockBytes;
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchBytes + 64), _MM_HINT_T0);
      const __m512 dw = _mm512_mask_mov_ps(_mm512_set1_ps(f16(b)), 0xFF00,
                                           _mm512_set1_ps(half ? 0.0f : f16(b + kBlockBytes)));
      const __m512i w = group_codes<type>(row, at, half);
      for (int r = 0; r < R; ++r) {
        const __m512i xq = half ? _mm512_zextsi256_si512(_mm256_loadu_si256(
                                      reinterpret_cast<const __m256i*>(xr[r] + at)))
                                : _mm512_loadu_si512(xr[r] + at);
        __m512i start = _mm512_setzero_si512();
        if constexpr (centred)
          start = half ? _mm512_zextsi256_si512(_mm256_loadu_si256(
                             reinterpret_cast<const __m256i*>(init[r] + at / 4)))
                       : _mm512_loadu_si512(init[r] + at / 4);
        const __m512i t = _mm512_dpbusd_epi32(start, w, xq);
        const __m512 dx = _mm512_loadu_ps(x.lane_d.data() + ((first + r) * chunks + c) * 16);
        f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw, dx), f[r]);
      }
      if constexpr (has_block_min(type)) {
        const float m0 = f16(b + 2), m1 = half ? 0.0f : f16(b + kBlockBytes + 2);
        for (int r = 0; r < R; ++r) {
          const float* sums = x.sums.data() + (first + r) * blocks + at / 32;
          block_mins[r] += m0 * sums[0] + (half ? 0.0f : m1 * sums[1]);
        }
      }
    }
    if constexpr (has_block_min(type))
      for (int r = 0; r < R; ++r) y[r * ldy] = _mm512_reduce_add_ps(f[r]) + block_mins[r];
    else
      for (int r = 0; r < R; ++r) y[r * ldy] = _mm512_reduce_add_ps(f[r]);
    return;
  } else if constexpr (type == G::Q4_K) {
    // Lane l at step i reads qs dword 8g + 4h + i (its nibble chosen by the lane's shift).
    __m512i step_index[4];
    for (int i = 0; i < 4; ++i)
      step_index[i] = _mm512_add_epi32(
          _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
          _mm512_set1_epi32(i));
    const __m512i nibble_shift = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
    // Lane l's sub-block 2g + nib among the eight scales.
    const __m512i scale_index = _mm512_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6, 1, 1, 3, 3, 5, 5, 7, 7);
    const __m512i low4 = _mm512_set1_epi8(15);
    const std::int64_t supers = k / 256;
    const std::int8_t* xl[R];
    for (int r = 0; r < R; ++r) xl[r] = x.lane_codes.data() + (first + r) * k;
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * kBlockBytes;
      prefetch_ahead<kBlockBytes>(b);
      const SuperScales ss = super_scales(type, b);
      const __m512i scales = _mm512_permutexvar_epi32(scale_index, ss.sc);
      const __m512i qs0 = _mm512_loadu_si512(b + 16), qs1 = _mm512_loadu_si512(b + 80);
      __m512i w[4];
      for (int i = 0; i < 4; ++i)
        w[i] = _mm512_and_si512(
            _mm512_srlv_epi32(_mm512_permutex2var_epi32(qs0, step_index[i], qs1), nibble_shift),
            low4);
      for (int r = 0; r < R; ++r) {
        const std::int8_t* xs = xl[r] + s * 256;
        // Sixteen products of a 4-bit code and an 8-bit one per lane: at most 30720, in int16.
        __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[0], _mm512_loadu_si512(xs));
        t = _mm512_dpbusd_epi32(t, w[1], _mm512_loadu_si512(xs + 64));
        t = _mm512_dpbusd_epi32(t, w[2], _mm512_loadu_si512(xs + 128));
        t = _mm512_dpbusd_epi32(t, w[3], _mm512_loadu_si512(xs + 192));
        const __m512i a = _mm512_dpwssd_epi32(_mm512_setzero_si512(), t, scales);
        const float dx = x.d[static_cast<std::size_t>((first + r) * supers + s)];
        f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(ss.d * dx), f[r]);
        f[r] = _mm512_fnmadd_ps(
            _mm512_zextps256_ps512(ss.mins),
            _mm512_zextps256_ps512(_mm256_loadu_ps(x.sums.data() + (first + r) * (k / 32) + 8 * s)),
            f[r]);
      }
    }
  } else if constexpr (type == G::Q6_K && R >= kQ6LaneRows) {
    // Lane l holds sub-block l for the whole super-block: step i is codes 16l + 4i..+3. The four
    // steps' vpdpbusd add in each lane's int32 from −32 · Σ qx of its sub-block (exact: at most
    // 16 · 63 · 127 above it), then meet the sixteen scales once, in f32 (d·scale per lane).
    const __m512i transpose4 =
        _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    const std::int64_t supers = k / 256, subs = k / 16;
    const std::int8_t* xl[R];
    for (int r = 0; r < R; ++r) xl[r] = x.lane_codes.data() + (first + r) * k;
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * kBlockBytes;
      prefetch_ahead<kBlockBytes>(b);
      // Group g's lane 4c + i is sub-block 4g + c, step i: transposed 4 x 4 within each group,
      // then the groups' 128-bit quarters 4 x 4 across them, step i's vector holds lane l =
      // sub-block l.
      __m512i v[4];
      for (int g = 0; g < 4; ++g)
        v[g] =
            _mm512_permutexvar_epi32(transpose4, group_codes<type>(row, 256 * s + 64 * g, false));
      const __m512i a0 = _mm512_shuffle_i32x4(v[0], v[1], 0x44);
      const __m512i a1 = _mm512_shuffle_i32x4(v[0], v[1], 0xEE);
      const __m512i a2 = _mm512_shuffle_i32x4(v[2], v[3], 0x44);
      const __m512i a3 = _mm512_shuffle_i32x4(v[2], v[3], 0xEE);
      const __m512i w[4] = {_mm512_shuffle_i32x4(a0, a2, 0x88), _mm512_shuffle_i32x4(a0, a2, 0xDD),
                            _mm512_shuffle_i32x4(a1, a3, 0x88), _mm512_shuffle_i32x4(a1, a3, 0xDD)};
      const __m512 scales = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                              reinterpret_cast<const __m128i*>(b + 192)))),
                                          _mm512_set1_ps(f16(b + 208)));
      for (int r = 0; r < R; ++r) {
        const std::int8_t* xs = xl[r] + s * 256;
        const __m512i sums = _mm512_cvtepi16_epi32(_mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(x.code_sums.data() + (first + r) * subs + 16 * s)));
        __m512i t = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 5));
        for (int i = 0; i < 4; ++i)
          t = _mm512_dpbusd_epi32(t, w[i], _mm512_loadu_si512(xs + 64 * i));
        const float dx = x.d[static_cast<std::size_t>((first + r) * supers + s)];
        f[r] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(scales, _mm512_set1_ps(dx)), f[r]);
      }
    }
  } else {  // K-quants: 256-element super-blocks of 32- (q4_K, q5_K) or 16-element sub-blocks
    const std::int64_t supers = k / 256;
    constexpr bool q6 = type == G::Q6_K;
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::byte* b = row + s * kBlockBytes;
      prefetch_ahead<kBlockBytes>(b);
      const SuperScales ss = super_scales(type, b);
      __m512i a[R];
      for (int r = 0; r < R; ++r) a[r] = _mm512_setzero_si512();
      for (int g = 0; g < 4; ++g) {
        const std::int64_t at = 256 * s + 64 * g;
        const __m512i w = group_codes<type>(row, at, false);
        // The scales of the sub-blocks of these 64 codes, one per int32 lane.
        const __m512i first_sub = _mm512_set1_epi32(q6 ? 4 * g : 2 * g);
        const __m512i scales = _mm512_permutexvar_epi32(
            _mm512_add_epi32(
                first_sub, q6 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                              : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)),
            ss.sc);
        // Each int32 lane's sum fits its low 16 bits and the scales' high halves are zero, so
        // vpdpwssd adds exactly lane · scale.
        for (int r = 0; r < R; ++r) {
          const __m512i t =
              _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(xr[r] + at));
          a[r] = _mm512_dpwssd_epi32(a[r], t, scales);
        }
      }
      if constexpr (q6) {
        // q6_K's codes carry an offset of 32: Σ (q − 32)·x = Σ q·x − 32·Σ x per sub-block, the
        // sums from the activations' 16-code totals. (A start value of −32·Σ x per four codes,
        // an int32 for every four bytes of x, doubled what x keeps in L1: at Mixtral's K of
        // 14336 it no longer fitted, and the down projections streamed at 0.65x of the lm_head.)
        for (int r = 0; r < R; ++r) {
          const __m512i sums =
              _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                  x.code_sums.data() + (first + r) * (k / 16) + 16 * s)));
          a[r] = _mm512_sub_epi32(a[r], _mm512_slli_epi32(_mm512_madd_epi16(sums, ss.sc), 5));
        }
      }
      const float d = ss.d;
      const __m256 m8 = ss.mins;
      for (int r = 0; r < R; ++r) {
        const float dx = x.d[static_cast<std::size_t>((first + r) * supers + s)];
        f[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r]), _mm512_set1_ps(d * dx), f[r]);
        if (!q6)  // q4_K, q5_K: − Σ_j dmin·m_j · dx·Σ qx over the eight sub-blocks
          f[r] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(m8),
                                  _mm512_zextps256_ps512(_mm256_loadu_ps(
                                      x.sums.data() + (first + r) * (k / 32) + 8 * s)),
                                  f[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) y[r * ldy] = _mm512_reduce_add_ps(f[r]);
}

// Bytes of x the row kernel reads per code and row: the codes; for weight types stored with an
// offset, −offset·Σq of each four codes (an int32 per four); for the 32-element types, the block
// scales spread over the lanes (a float per four).
template <G kType>
constexpr std::int64_t kRowKernelXBytes = 1 +
                                          (code_offset(kType) != 0 && kType != G::Q6_K ? 1 : 0) +
                                          (layout_of(kType).super == 32 ? 1 : 0);

// Bytes of x a pass of the row kernel keeps in L1 while every weight row of its item passes
// (of L1's 32 KiB on Zen 4, 48 KiB on Sapphire Rapids): 8 rows of q8_0 at K 2048 are 48 KiB,
// and read from L2 for every weight row they held its 8-row expert blocks at 75 GOP/s; in two
// passes of 4 rows, 123-143 (porta-bench-cpu-ggml-prefill --type q8_0, Zen 4).
constexpr std::int64_t kRowKernelXBudget = 24 << 10;

// Rows [0, n_rows) of w times rows [first, first + count) of x, each weight row by the row
// kernel for up to kMaxRows rows of x at a time; rows of x whose footprint exceeds the L1
// budget go in passes of fewer rows, each over every weight row.
template <G kType>
T void row_kernels(const std::byte* w, std::size_t row_bytes, std::int64_t n_rows, const Q8Rows& x,
                   std::int64_t first, std::int64_t count, float* y, std::int64_t ldy) {
  const std::int64_t fit = std::clamp<std::int64_t>(
      kRowKernelXBudget / std::max<std::int64_t>(1, x.k * kRowKernelXBytes<kType>), 1, kMaxRows);
  if (count > fit) {
    const std::int64_t passes = (count + fit - 1) / fit, per = (count + passes - 1) / passes;
    for (std::int64_t r = 0; r < count; r += per)
      row_kernels<kType>(w, row_bytes, n_rows, x, first + r, std::min(per, count - r), y + r * ldy,
                         ldy);
    return;
  }
  for (std::int64_t n = 0; n < n_rows; ++n) {
    const std::byte* row = w + static_cast<std::size_t>(n) * row_bytes;
    std::int64_t r = 0;
    for (; r + kMaxRows <= count; r += kMaxRows)
      row_kernel<kType, kMaxRows>(row, x, first + r, y + n + r * ldy, ldy);
    float* yr = y + n + r * ldy;
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

// Rows of x from which panels beat the row kernel. q4_K's row kernel (its lanes a sub-block's
// halves) stays ahead up to 15 rows: V2-Lite's 12-row expert blocks ran at 338 GOP/s in it
// against 238 in panels, 16-row ones at 302-306 against 348-388 (Zen 4). So does q6_K's (its
// lanes whole sub-blocks): 12-row blocks 1.46-1.58x faster than in panels, 16-row ones level.
constexpr std::int64_t panel_rows(G type) {
  return type == G::Q4_K || type == G::Q6_K ? 16 : kQ8PanelRows;
}

// q8_matmul_serial for one block type: the row kernel under panel_rows rows of x, else panels.
template <G kType>
T void matmul_of(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                 std::int64_t count, float* y, std::int64_t ldy) {
  const std::size_t row_bytes = gguf::row_bytes(kType, static_cast<std::uint64_t>(x.k));
  if (count < panel_rows(kType))
    return row_kernels<kType>(w, row_bytes, n_rows, x, first, count, y, ldy);
  // Two panels (32 weight rows) at a time where there are: the tiles share each broadcast.
  thread_local Panel panels[2];
  const Panel* const ps[2] = {&panels[0], &panels[1]};
  for (std::int64_t n0 = 0; n0 < n_rows; n0 += 2 * kCols) {
    int cols[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      const std::int64_t at = n0 + i * kCols;
      if (at >= n_rows) break;
      cols[i] = static_cast<int>(std::min<std::int64_t>(kCols, n_rows - at));
      // The packer decodes the scales of 16 rows first, each block's first touch a miss; asked
      // for all at once here, the panel's rows (one contiguous run) arrive together.
      const std::byte* rows = w + static_cast<std::size_t>(at) * row_bytes;
      for (std::size_t b = 0; b < static_cast<std::size_t>(cols[i]) * row_bytes; b += 64)
        _mm_prefetch(reinterpret_cast<const char*>(rows + b), _MM_HINT_T0);
      pack_panel<kType>(rows, row_bytes, cols[i], x.k, panels[i]);
    }
    if (cols[1] > 0)
      tiles<kType, 2>(ps, x, first, count, y + n0, ldy, cols);
    else
      tiles<kType, 1>(ps, x, first, count, y + n0, ldy, cols);
  }
}

}  // namespace

void shape_q8_rows_avx512(gguf::GgmlType type, std::int64_t rows, std::int64_t k, Q8Rows& out) {
  const Layout l = layout_of(type);
  shape_q8_common(type, rows, k, l.super, l.sub, out);
  out.init.resize(l.super == 32 && code_offset(type) != 0 ? static_cast<std::size_t>(rows * (k / 4))
                                                          : 0);
  out.lane_d.resize(l.super == 32 ? static_cast<std::size_t>(rows * ((k + 63) / 64) * 16) : 0);
  out.lane_codes.resize(type == G::Q4_K || type == G::Q6_K ? static_cast<std::size_t>(rows * k)
                                                           : 0);
  out.code_sums.resize(code_offset(type) != 0 ? static_cast<std::size_t>(rows * (k / l.sub)) : 0);
}

PORTA_Q8_TARGET void quantize_q8_rows_avx512(const float* x, std::int64_t ldx,
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
    if (!out.init.empty()) {  // −offset · Σ of each four codes
      const int offset = code_offset(out.weight_type);
      std::int32_t* init = out.init.data() + r * (out.k / 4);
      for (std::int64_t l = 0; l < out.k / 4; ++l)
        init[l] = -offset * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    }
    if (!out.lane_codes.empty()) {  // q4_K, q6_K: each super-block's codes in its lanes' order
      std::int8_t* lanes = out.lane_codes.data() + r * out.k;
      const bool q6 = out.weight_type == G::Q6_K;
      for (std::int64_t s = 0; s < supers; ++s)
        for (int i = 0; i < 4; ++i)
          for (int l = 0; l < 16; ++l)
            std::memcpy(lanes + s * 256 + 64 * i + 4 * l,
                        q + s * 256 + (q6 ? 16 * l : q4k_lane_offset(l)) + 4 * i, 4);
    }
    if (!out.lane_d.empty()) {  // each 64 codes' two block scales, eight lanes each
      const std::int64_t chunks = (out.k + 63) / 64;
      for (std::int64_t c = 0; c < chunks; ++c) {
        float* lanes = out.lane_d.data() + (r * chunks + c) * 16;
        const float d0 = out.d[static_cast<std::size_t>(r * supers + 2 * c)];
        const float d1 =
            2 * c + 1 < supers ? out.d[static_cast<std::size_t>(r * supers + 2 * c + 1)] : 0.0f;
        std::fill_n(lanes, 8, d0);
        std::fill_n(lanes + 8, 8, d1);
      }
    }
  }
}

PORTA_Q8_TARGET void round_q8_row_avx512(gguf::Q8Blocks blocks, const float* x,
                                         std::int64_t k, float* out) {
  if (k % blocks.block != 0)  // the definition's own message
    return gguf::round_q8_activations(blocks, x, k, out);
  const bool q8k = blocks.type == G::Q8_K;
  alignas(64) std::int8_t q[256];
  for (std::int64_t at = 0; at < k; at += blocks.block) {
    float d = 0;
    quantize_block(q8k, x + at, q, d);
    const __m512 vd = _mm512_set1_ps(d);
    for (std::uint32_t i = 0; i < blocks.block; i += 16)
      _mm512_storeu_ps(out + at + i,
                       _mm512_mul_ps(vd, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(
                                             reinterpret_cast<const __m128i*>(q + i))))));
  }
}

PORTA_Q8_TARGET void q8_matmul_avx512(const std::byte* w, std::int64_t n_rows, const Q8Rows& x,
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
