// The SIMD row kernels of block_dot.hpp, written once for both vector widths. The including file
// defines PORTA_BLOCK_TARGET (the target attribute), the float vector type Vec, and
//   Vec vzero(); Vec vdot16(__m128i codes, const float* x);   // 16 int8 codes times 16 floats
//   Vec vfma(float s, Vec v, Vec acc); Vec vadd(Vec, Vec); Vec vload16(const float* x) (16 floats
//   folded into a Vec, for sums); float vsum(Vec);
// Code extraction uses AVX2 integer instructions, which both targets include.
// Included inside an ISA-specific anonymous namespace.

#define T PORTA_BLOCK_TARGET

T inline float f16(const std::byte* p) {
  std::uint16_t bits;
  std::memcpy(&bits, p, 2);
  return f16_bits_to_f32(bits);
}

T inline __m256i load32(const std::byte* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

T inline Vec vdot32(__m256i codes, const float* x) {
  return vadd(vdot16(_mm256_castsi256_si128(codes), x),
              vdot16(_mm256_extracti128_si256(codes, 1), x + 16));
}

// Q8_0: f16 d, int8 q[32]; w = d·q.
T float dot_q8_0(const std::byte* row, const float* x, std::int64_t blocks) {
  Vec acc = vzero();
  for (std::int64_t b = 0; b < blocks; ++b, row += 34, x += 32)
    acc = vfma(f16(row), vdot32(load32(row + 2), x), acc);
  return vsum(acc);
}

// Q4_0: f16 d, nibbles q[16]: element j is the low nibble of byte j, j + 16 the high one;
// w = d·(q - 8).
T float dot_q4_0(const std::byte* row, const float* x, std::int64_t blocks) {
  const __m128i low = _mm_set1_epi8(0x0F);
  const __m256i eight = _mm256_set1_epi8(8);
  Vec acc = vzero();
  for (std::int64_t b = 0; b < blocks; ++b, row += 18, x += 32) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2));
    const __m256i codes = _mm256_sub_epi8(
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), _mm_and_si128(bytes, low)),
        eight);
    acc = vfma(f16(row), vdot32(codes, x), acc);
  }
  return vsum(acc);
}

// Q4_K: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, nibbles q[128]; sub-block j (32
// elements) is the low (j even) or high (j odd) nibbles of bytes 32·(j/2)..; w = d·sc·q - dmin·m.
T float dot_q4_k(const std::byte* row, const float* x, std::int64_t blocks) {
  const __m256i low = _mm256_set1_epi8(0x0F);
  Vec acc = vzero(), mins = vzero();
  for (std::int64_t b = 0; b < blocks; ++b, row += 144, x += 256) {
    const float d = f16(row), dmin = f16(row + 2);
    for (int pair = 0; pair < 4; ++pair) {
      const __m256i bytes = load32(row + 16 + 32 * pair);
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * pair + half;
        std::uint8_t sc = 0, m = 0;
        gguf::detail::k4_scale_min(j, row + 4, sc, m);
        const __m256i codes =
            _mm256_and_si256(half ? _mm256_srli_epi16(bytes, 4) : bytes, low);
        const float* xs = x + 32 * j;
        acc = vfma(d * static_cast<float>(sc), vdot32(codes, xs), acc);
        mins = vfma(dmin * static_cast<float>(m), vadd(vload16(xs), vload16(xs + 16)), mins);
      }
    }
  }
  return vsum(acc) - vsum(mins);
}

// Q6_K: ql[128], qh[64], int8 scales[16], f16 d. Element 128·h + 32·k + l has the low four bits
// in nibble k/2 of ql[64·h + 32·(k%2) + l], the top two in bits 2k of qh[32·h + l], bias 32, and
// the scale of its 16-element group; w = d·scale·(q - 32).
T float dot_q6_k(const std::byte* row, const float* x, std::int64_t blocks) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(3);
  const __m256i bias = _mm256_set1_epi8(32);
  Vec acc = vzero();
  for (std::int64_t b = 0; b < blocks; ++b, row += 210, x += 256) {
    const float d = f16(row + 208);
    const auto* scales = reinterpret_cast<const std::int8_t*>(row + 192);
    for (int h = 0; h < 2; ++h) {
      const __m256i qh = load32(row + 128 + 32 * h);
      for (int k = 0; k < 4; ++k) {
        const __m256i ql = load32(row + 64 * h + 32 * (k % 2));
        const __m256i nib = _mm256_and_si256(
            k / 2 ? _mm256_srli_epi16(ql, 4) : ql, low4);
        const __m256i top = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), low2);
        const __m256i codes =
            _mm256_sub_epi8(_mm256_or_si256(nib, _mm256_slli_epi16(top, 4)), bias);
        const float* xs = x + 128 * h + 32 * k;
        const int g = 8 * h + 2 * k;
        acc = vfma(d * static_cast<float>(scales[g]), vdot16(_mm256_castsi256_si128(codes), xs),
                   acc);
        acc = vfma(d * static_cast<float>(scales[g + 1]),
                   vdot16(_mm256_extracti128_si256(codes, 1), xs + 16), acc);
      }
    }
  }
  return vsum(acc);
}

T float dot_blocks(gguf::GgmlType type, const std::byte* row, const float* x, std::int64_t k) {
  using G = gguf::GgmlType;  // an if chain: a switch would have to list every ggml type
  if (type == G::Q8_0) return dot_q8_0(row, x, k / 32);
  if (type == G::Q4_0) return dot_q4_0(row, x, k / 32);
  if (type == G::Q4_K) return dot_q4_k(row, x, k / 256);
  if (type == G::Q6_K) return dot_q6_k(row, x, k / 256);
  throw Error(ErrorCode::Unsupported,
              fmt::format("no {} block kernel for {}", PORTA_BLOCK_ISA_NAME, gguf::type_name(type)));
}

#undef T
