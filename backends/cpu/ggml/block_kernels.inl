// The SIMD kernels of block_dot.hpp, written once for both vector widths: each block type's
// decoder turns a block, 16 elements at a time, into the dequantizer's own f32 weights in
// registers, and every one of up to kMaxRows rows of activations takes them with an FMA, so a
// block is decoded once per kMaxRows rows of x; or they are stored (dequantize_blocks), for the
// GEMM of long prompts. The including file defines PORTA_BLOCK_TARGET
// (the target attribute), PORTA_BLOCK_ISA_NAME, PORTA_BLOCK_MAX_ROWS and
//   V                       16 f32 lanes (one zmm, or two ymm)
//   V v_zero(); V v_add(V, V); float v_sum(V);
//   V v_fma_x(V w, const float* x, V acc)          acc + w·x[0..16)
//   void v_store(float* out, V w)
//   V w_int8(__m128i q, float s)                   float(q_i)·s for 16 signed bytes
//   Book16 book16_linear(float a, float b, int offset)  w(q) = float(q − offset)·a − b, q < 16
//   Book16 book16_values(float d, const float* values)   w(q) = d·values[q]
//   Book32 book32_linear(float a, float b, int offset)  the same for 5-bit codes
//   void w_nibbles(const Book16& lo, const Book16& hi, __m128i bytes, V& w_lo, V& w_hi)
//       the weights of the low and of the high nibbles of 16 bytes
//   void w_nibbles5(const Book32& lo, const Book32& hi, __m128i bytes, std::uint32_t lo_bits,
//                   std::uint32_t hi_bits, V& w_lo, V& w_hi)
//       the same with a fifth bit per lane (bit i of lo_bits/hi_bits for lane i)
//   std::uint32_t byte_bits(__m128i bytes, int bit)  bit `bit` of each of 16 bytes, as a mask
//   Idx widen(__m128i bytes); Idx field(Idx, int shift, int mask); V lookup16(const Book16&, Idx)
//   Idx with_bit(Idx, std::uint32_t lanes, int value)   16 codes, one per 32-bit lane, for the
//       2- and 3-bit types: (v >> shift) & mask, value or-ed into the lanes set in `lanes`,
//       and their weights (the low four bits index the book)
// Each weight is computed with the dequantizer's operations in its order (lib/gguf/dequantize_*),
// so it equals gguf::dequantize's value bit for bit; only the order of the sum differs.
// Included inside an ISA-specific anonymous namespace; the file compiles with -ffp-contract=off
// so that no multiply and subtract of a weight fuse into one rounding.

#define T PORTA_BLOCK_TARGET
// The per-block helpers, forced inline into the loops (GCC otherwise calls some out of line).
#define TI PORTA_BLOCK_TARGET __attribute__((always_inline))

// Rows of x per pass over a weight row: as many as the register file holds two accumulators for
// (8 on AVX-512's 32 registers, 4 with AVX2's 16), so that a short prompt's expert block of 8
// rows decodes its weights once.
constexpr int kMaxRows = PORTA_BLOCK_MAX_ROWS;
// How far ahead of the block being decoded its stream is prefetched: with the decoding's work
// per byte the hardware prefetcher alone leaves the weights' reads short of the memory's
// bandwidth (q8_0 decode 12.7 → 19 GB/s from memory on 2 cores, q4_K 9.4 → 11-13).
constexpr std::int64_t kPrefetchBytes = 3072;

TI inline float f16(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return _cvtsh_ss(bits);  // exact, as every f16 value is an f32 value
}

TI inline std::uint32_t u32(const std::byte* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

TI inline __m128i load16(const std::byte* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// Accumulators: two per row of x, alternating by 16-element group, to hide the FMA latency.
template <int R>
struct Acc {
  V v[R][2];
};

template <int R>
TI inline void take(Acc<R>& acc, V w, const float* x, std::int64_t ldx, int parity) {
  for (int r = 0; r < R; ++r) acc.v[r][parity] = v_fma_x(w, x + r * ldx, acc.v[r][parity]);
}

// The other sink: the decoders' weights stored, for dequantizing rows into f32. The decoders
// address their 16 elements through the activation pointer, which for this sink is the output
// row (a float* the caller owns; the decoders only add offsets to it).
struct Store {};
TI inline void take(Store&, V w, const float* at, std::int64_t, int) {
  v_store(const_cast<float*>(at), w);
}

// Q8_0: f16 d, int8 q[32]; w = float(q)·d.
struct Q8_0 {
  static constexpr std::int64_t kElements = 32, kBytes = 34;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const float d = f16(p);
    take(acc, w_int8(load16(p + 2), d), x, ldx, 0);
    take(acc, w_int8(load16(p + 18), d), x + 16, ldx, 1);
  }
};

// Q4_0: f16 d, nibbles q[16] (element j the low nibble of byte j, j + 16 the high one);
// w = float(q − 8)·d.
struct Q4_0 {
  static constexpr std::int64_t kElements = 32, kBytes = 18;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const Book16 book = book16_linear(f16(p), 0.0f, 8);
    V lo, hi;
    w_nibbles(book, book, load16(p + 2), lo, hi);
    take(acc, lo, x, ldx, 0);
    take(acc, hi, x + 16, ldx, 1);
  }
};

// Q4_1: f16 d, f16 m, nibbles as Q4_0; w = float(q)·d + m.
struct Q4_1 {
  static constexpr std::int64_t kElements = 32, kBytes = 20;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const Book16 book = book16_linear(f16(p), -f16(p + 2), 0);
    V lo, hi;
    w_nibbles(book, book, load16(p + 4), lo, hi);
    take(acc, lo, x, ldx, 0);
    take(acc, hi, x + 16, ldx, 1);
  }
};

// IQ4_NL: f16 d, nibbles as Q4_0 indexing the code book; w = d·book[q].
struct Iq4Nl {
  static constexpr std::int64_t kElements = 32, kBytes = 18;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const Book16 book = book16_values(f16(p), kCodeBook);
    V lo, hi;
    w_nibbles(book, book, load16(p + 2), lo, hi);
    take(acc, lo, x, ldx, 0);
    take(acc, hi, x + 16, ldx, 1);
  }
  static constexpr float kCodeBook[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};
};

// Q5_0 / Q5_1: nibbles as Q4_0, the fifth bit of element i is bit i of the u32 qh;
// Q5_0: f16 d, qh, q[16], w = float(q − 16)·d;
// Q5_1: f16 d, f16 m, qh, q[16], w = float(q)·d + m.
template <bool kWithMin>
struct Q5 {
  static constexpr std::int64_t kElements = 32, kBytes = kWithMin ? 24 : 22;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const Book32 book =
        kWithMin ? book32_linear(f16(p), -f16(p + 2), 0) : book32_linear(f16(p), 0.0f, 16);
    const std::byte* qh = p + (kWithMin ? 4 : 2);
    const std::uint32_t bits = u32(qh);
    V lo, hi;
    w_nibbles5(book, book, load16(qh + 4), bits & 0xFFFF, bits >> 16, lo, hi);
    take(acc, lo, x, ldx, 0);
    take(acc, hi, x + 16, ldx, 1);
  }
};

// The eight bytes of `bytes` as f32.
TI inline __m256 widen_bytes(std::uint64_t bytes) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(bytes))));
}

// out[j] = d·float(bytes[j] − bias) for the 16 unsigned bytes (the dequantizer's products).
TI inline void sixteen_scales(__m128i bytes, float d, int bias, float* out) {
  const __m256 vd = _mm256_set1_ps(d);
  const __m256i b = _mm256_set1_epi32(bias);
  _mm256_store_ps(
      out, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), b))));
  _mm256_store_ps(out + 8,
                  _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_sub_epi32(
                                        _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8)), b))));
  __asm__("" : "+m"(*reinterpret_cast<float(*)[16]>(out)));  // broadcast from memory, as below
}

// The eight 6-bit scales and mins of Q4_K/Q5_K's 12 bytes, as f32 d·scale and dmin·min (the
// dequantizer's products): scales j < 4 are the low six bits of bytes j, mins of bytes j + 4;
// j >= 4 take the nibbles of byte j + 4 and the top two bits of bytes j - 4 (scale) and j (min).
TI inline void k_scales(const std::byte* p, float d, float dmin, float* dl, float* ml) {
  const std::uint32_t a = u32(p), b = u32(p + 4), c = u32(p + 8);
  const std::uint64_t scales =
      (a & 0x3F3F3F3Fu) | std::uint64_t{(c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4)} << 32;
  const std::uint64_t mins =
      (b & 0x3F3F3F3Fu) | std::uint64_t{((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4)}
                              << 32;
  _mm256_storeu_ps(dl, _mm256_mul_ps(_mm256_set1_ps(d), widen_bytes(scales)));
  _mm256_storeu_ps(ml, _mm256_mul_ps(_mm256_set1_ps(dmin), widen_bytes(mins)));
  // Read back from memory: a broadcast from memory costs a load, one from a register a shuffle
  // on the port the table lookups need.
  __asm__("" : "+m"(*reinterpret_cast<float(*)[8]>(dl)), "+m"(*reinterpret_cast<float(*)[8]>(ml)));
}

// Q4_K: f16 d, f16 dmin, 12 bytes of scales, q[128]; each 64 elements share 32 bytes, the
// first 32 elements (sub-block 2p) their low nibbles, the next 32 (2p + 1) the high ones;
// w = (d·sc)·float(q) − dmin·m.
struct Q4_K {
  static constexpr std::int64_t kElements = 256, kBytes = 144;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    alignas(32) float dl[8], ml[8];
    k_scales(p + 4, f16(p), f16(p + 2), dl, ml);
    for (int pair = 0; pair < 4; ++pair) {
      const Book16 lo_book = book16_linear(dl[2 * pair], ml[2 * pair], 0);
      const Book16 hi_book = book16_linear(dl[2 * pair + 1], ml[2 * pair + 1], 0);
      for (int half = 0; half < 2; ++half) {
        V lo, hi;
        w_nibbles(lo_book, hi_book, load16(p + 16 + 32 * pair + 16 * half), lo, hi);
        take(acc, lo, x + 64 * pair + 16 * half, ldx, 0);
        take(acc, hi, x + 64 * pair + 32 + 16 * half, ldx, 1);
      }
    }
  }
};

// Q5_K: Q4_K with qh[32] before the nibbles: the fifth bit of element 32·s + l is bit s of qh[l].
struct Q5_K {
  static constexpr std::int64_t kElements = 256, kBytes = 176;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    alignas(32) float dl[8], ml[8];
    k_scales(p + 4, f16(p), f16(p + 2), dl, ml);
    const __m128i qh[2] = {load16(p + 16), load16(p + 32)};
    for (int pair = 0; pair < 4; ++pair) {
      const Book32 lo_book = book32_linear(dl[2 * pair], ml[2 * pair], 0);
      const Book32 hi_book = book32_linear(dl[2 * pair + 1], ml[2 * pair + 1], 0);
      for (int half = 0; half < 2; ++half) {
        V lo, hi;
        w_nibbles5(lo_book, hi_book, load16(p + 48 + 32 * pair + 16 * half),
                   byte_bits(qh[half], 2 * pair), byte_bits(qh[half], 2 * pair + 1), lo, hi);
        take(acc, lo, x + 64 * pair + 16 * half, ldx, 0);
        take(acc, hi, x + 64 * pair + 32 + 16 * half, ldx, 1);
      }
    }
  }
};

// Q6_K: ql[128], qh[64], int8 scales[16], f16 d. Element 128·h + 32·k + l has its low four
// bits in nibble k/2 of ql[64·h + 32·(k%2) + l], its top two in bits 2k of qh[32·h + l], bias
// 32, and the scale of its 16 elements; w = (d·scale)·float(q − 32). The codes are put
// together as bytes, 32 at a time.
struct Q6_K {
  static constexpr std::int64_t kElements = 256, kBytes = 210;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    alignas(64) float ds[16];
    const __m256 d = _mm256_set1_ps(f16(p + 208));
    const __m128i scales = load16(p + 192);
    _mm256_store_ps(ds, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(scales))));
    _mm256_store_ps(
        ds + 8,
        _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(scales, 8)))));
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(3);
    const __m256i bias = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; ++h) {
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 128 + 32 * h));
      for (int k = 0; k < 4; ++k) {
        const __m256i ql =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 64 * h + 32 * (k % 2)));
        const __m256i nib = _mm256_and_si256(k / 2 ? _mm256_srli_epi16(ql, 4) : ql, low4);
        const __m256i top = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), low2);
        const __m256i codes =
            _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(top, 4)), bias);
        const int g = 8 * h + 2 * k;
        const float* xs = x + 128 * h + 32 * k;
        take(acc, w_int8(_mm256_castsi256_si128(codes), ds[g]), xs, ldx, 0);
        take(acc, w_int8(_mm256_extracti128_si256(codes, 1), ds[g + 1]), xs + 16, ldx, 1);
      }
    }
  }
};

// Q2_K: scales[16] (per 16 elements: low nibble scale, high nibble min), qs[64], f16 d, f16 dmin.
// In each half h of 128 elements, element 32·j + l has code bits 2j of qs[32·h + l];
// w = (d·sc)·float(q) − dmin·m.
struct Q2_K {
  static constexpr std::int64_t kElements = 256, kBytes = 84;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    alignas(64) float dl[16], ml[16];
    const __m128i scales = load16(p);
    const __m128i nibble = _mm_set1_epi8(0x0F);
    sixteen_scales(_mm_and_si128(scales, nibble), f16(p + 80), 0, dl);
    sixteen_scales(_mm_and_si128(_mm_srli_epi16(scales, 4), nibble), f16(p + 82), 0, ml);
    for (int h = 0; h < 2; ++h) {
      const Idx first = widen(load16(p + 16 + 32 * h)), second = widen(load16(p + 32 + 32 * h));
      for (int j = 0; j < 4; ++j) {
        const int g = 8 * h + 2 * j;
        const float* xs = x + 128 * h + 32 * j;
        take(acc, lookup16(book16_linear(dl[g], ml[g], 0), field(first, 2 * j, 3)), xs, ldx, 0);
        take(acc, lookup16(book16_linear(dl[g + 1], ml[g + 1], 0), field(second, 2 * j, 3)),
             xs + 16, ldx, 1);
      }
    }
  }
};

// Q3_K: hmask[32], qs[64], 12 bytes of sixteen 6-bit scales (bias 32), f16 d. Element
// 128·h + 32·j + l has its low two bits as Q2_K and its third in bit 4h + j of hmask[l]; the code
// c = low | third << 2 gives w = (d·(sc − 32))·float(c − 4) (a clear third bit subtracts 4).
struct Q3_K {
  static constexpr std::int64_t kElements = 256, kBytes = 110;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    alignas(64) float dl[16];
    // Scale j: low four bits from nibble j / 8 of byte j % 8, top two from bits 2·(j / 4) of
    // byte 8 + j % 4.
    const __m128i nibble = _mm_set1_epi8(0x0F);
    const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 96));
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(packed, nibble),
                                           _mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
    const __m128i high = _mm_and_si128(
        _mm_srlv_epi32(_mm_set1_epi32(static_cast<int>(u32(p + 104))), _mm_setr_epi32(0, 2, 4, 6)),
        _mm_set1_epi8(3));
    sixteen_scales(_mm_or_si128(low, _mm_slli_epi16(high, 4)), f16(p + 108), 32, dl);
    const __m128i hmask[2] = {load16(p), load16(p + 16)};
    for (int h = 0; h < 2; ++h) {
      const Idx first = widen(load16(p + 32 + 32 * h)), second = widen(load16(p + 48 + 32 * h));
      for (int j = 0; j < 4; ++j) {
        const int g = 8 * h + 2 * j, bit = 4 * h + j;
        const float* xs = x + 128 * h + 32 * j;
        take(acc,
             lookup16(book16_linear(dl[g], 0.0f, 4),
                      with_bit(field(first, 2 * j, 3), byte_bits(hmask[0], bit), 4)),
             xs, ldx, 0);
        take(acc,
             lookup16(book16_linear(dl[g + 1], 0.0f, 4),
                      with_bit(field(second, 2 * j, 3), byte_bits(hmask[1], bit), 4)),
             xs + 16, ldx, 1);
      }
    }
  }
};

// IQ4_XS: f16 d, u16 scales_h, scales_l[4], q[128]; sub-block s (32 elements) has the 6-bit
// scale ls = nibble s%2 of scales_l[s/2] | (bits 2s of scales_h) << 4 and its 16 bytes laid out
// as IQ4_NL; w = (d·float(ls − 32))·book[q].
struct Iq4Xs {
  static constexpr std::int64_t kElements = 256, kBytes = 136;
  template <class Sink>
  TI static inline void block(const std::byte* p, const float* x, std::int64_t ldx, Sink& acc) {
    const float d = f16(p);
    const unsigned scales_h = static_cast<unsigned>(p[2]) | static_cast<unsigned>(p[3]) << 8;
    for (int s = 0; s < 8; ++s) {
      const int ls = ((static_cast<int>(p[4 + s / 2]) >> (4 * (s % 2))) & 0xF) |
                     static_cast<int>(((scales_h >> (2 * s)) & 3u) << 4);
      const Book16 book = book16_values(d * static_cast<float>(ls - 32), Iq4Nl::kCodeBook);
      V lo, hi;
      w_nibbles(book, book, load16(p + 8 + 16 * s), lo, hi);
      take(acc, lo, x + 32 * s, ldx, 0);
      take(acc, hi, x + 32 * s + 16, ldx, 1);
    }
  }
};

// out[r] (+)= Σ_k dequantize(row)[k] · x[r·ldx + k] for r < R; `accumulate` adds to out.
template <class Kind, int R>
T void dot_rows(const std::byte* row, const float* x, std::int64_t ldx, std::int64_t k, float* out,
                std::int64_t out_stride, bool accumulate) {
  Acc<R> acc;
  for (int r = 0; r < R; ++r) acc.v[r][0] = acc.v[r][1] = v_zero();
  const std::int64_t blocks = k / Kind::kElements;
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::byte* p = row + b * Kind::kBytes;
    for (std::int64_t at = 0; at < Kind::kBytes; at += 64)
      _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes + at), _MM_HINT_T0);
    Kind::block(p, x + b * Kind::kElements, ldx, acc);
  }
  for (int r = 0; r < R; ++r) {
    const float sum = v_sum(v_add(acc.v[r][0], acc.v[r][1]));
    out[r * out_stride] = accumulate ? out[r * out_stride] + sum : sum;
  }
}

// Floats of x per pass: rows × K past this (8 rows of K 2048 are 64 KiB) do not stay in L1
// while a weight row passes, and reading them from L2 for every weight row left the FMAs
// waiting (an 8-row expert block at K 2048 ran at half the speed of one at K 768).
constexpr std::int64_t kStretchFloats = 6144;

// y[r·ldy + n] for n < n_rows and r < rows: each weight row decoded once per kMaxRows rows of x,
// K in stretches of whole blocks whose rows of x stay in L1 while every weight row passes.
template <class Kind>
T void matmul_rows(const std::byte* w, std::size_t row_bytes, std::int64_t n_rows, std::int64_t k,
                   const float* x, std::int64_t ldx, std::int64_t rows, float* y,
                   std::int64_t ldy) {
  // One row (decode) streams its weights in one pass: splitting would break that stream.
  const std::int64_t stretch =
      rows <= 1 || rows * k <= 2 * kStretchFloats
          ? k
          : std::max<std::int64_t>(Kind::kElements,
                                   kStretchFloats / rows / Kind::kElements * Kind::kElements);
  for (std::int64_t k0 = 0; k0 < k; k0 += stretch) {
    const std::int64_t kc = std::min(stretch, k - k0);
    const bool accumulate = k0 > 0;
    const float* xs = x + k0;
    for (std::int64_t n = 0; n < n_rows; ++n) {
      const std::byte* row = w + static_cast<std::size_t>(n) * row_bytes +
                             static_cast<std::size_t>(k0 / Kind::kElements * Kind::kBytes);
      std::int64_t r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows)
        dot_rows<Kind, kMaxRows>(row, xs + r * ldx, ldx, kc, y + r * ldy + n, ldy, accumulate);
      if constexpr (kMaxRows > 4)
        if (rows - r >= 4) {
          dot_rows<Kind, 4>(row, xs + r * ldx, ldx, kc, y + r * ldy + n, ldy, accumulate);
          r += 4;
        }
      switch (rows - r) {
        case 3:
          dot_rows<Kind, 3>(row, xs + r * ldx, ldx, kc, y + r * ldy + n, ldy, accumulate);
          break;
        case 2:
          dot_rows<Kind, 2>(row, xs + r * ldx, ldx, kc, y + r * ldy + n, ldy, accumulate);
          break;
        case 1:
          dot_rows<Kind, 1>(row, xs + r * ldx, ldx, kc, y + r * ldy + n, ldy, accumulate);
          break;
        default: break;
      }
    }
  }
}

// Calls BODY(Kind) with the decoder of `type`, or throws for a type without one.
#define PORTA_BLOCK_DISPATCH(type, BODY)                                                           \
  do {                                                                                             \
    using G = gguf::GgmlType; /* an if chain: a switch would list every ggml type */               \
    if ((type) == G::Q8_0) BODY(Q8_0);                                                             \
    if ((type) == G::Q4_0) BODY(Q4_0);                                                             \
    if ((type) == G::Q4_1) BODY(Q4_1);                                                             \
    if ((type) == G::Q5_0) BODY(Q5<false>);                                                        \
    if ((type) == G::Q5_1) BODY(Q5<true>);                                                         \
    if ((type) == G::IQ4_NL) BODY(Iq4Nl);                                                          \
    if ((type) == G::Q2_K) BODY(Q2_K);                                                             \
    if ((type) == G::Q3_K) BODY(Q3_K);                                                             \
    if ((type) == G::Q4_K) BODY(Q4_K);                                                             \
    if ((type) == G::Q5_K) BODY(Q5_K);                                                             \
    if ((type) == G::Q6_K) BODY(Q6_K);                                                             \
    if ((type) == G::IQ4_XS) BODY(Iq4Xs);                                                          \
    throw Error(ErrorCode::Unsupported, fmt::format("no {} block kernel for {}",                   \
                                                    PORTA_BLOCK_ISA_NAME, gguf::type_name(type))); \
  } while (false)

T void matmul_blocks(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                     std::int64_t n_rows, std::int64_t k, const float* x, std::int64_t ldx,
                     std::int64_t rows, float* y, std::int64_t ldy) {
#define PORTA_RUN(Kind) return matmul_rows<Kind>(w, row_bytes, n_rows, k, x, ldx, rows, y, ldy)
  PORTA_BLOCK_DISPATCH(type, PORTA_RUN);
#undef PORTA_RUN
}

// out[n·ldo + k] = dequantize(W)[n, k]: the weights the kernels multiply, stored.
template <class Kind>
T void dequantize_rows_of(const std::byte* w, std::size_t row_bytes, std::int64_t n_rows,
                          std::int64_t k, float* out, std::int64_t ldo) {
  Store store;
  for (std::int64_t n = 0; n < n_rows; ++n) {
    const std::byte* row = w + static_cast<std::size_t>(n) * row_bytes;
    for (std::int64_t b = 0; b < k / Kind::kElements; ++b)
      Kind::block(row + b * Kind::kBytes, out + n * ldo + b * Kind::kElements, 0, store);
  }
}

T void dequantize_blocks(gguf::GgmlType type, const std::byte* w, std::size_t row_bytes,
                         std::int64_t n_rows, std::int64_t k, float* out, std::int64_t ldo) {
#define PORTA_RUN(Kind) return dequantize_rows_of<Kind>(w, row_bytes, n_rows, k, out, ldo)
  PORTA_BLOCK_DISPATCH(type, PORTA_RUN);
#undef PORTA_RUN
}

#undef PORTA_BLOCK_DISPATCH
#undef T
#undef TI
