// The W8A8 decode row kernel of quant_cpu.hpp, written once for each SIMD path. The including
// file defines, inside its own anonymous namespace:
//   T              the target attribute;
//   Vec, kBytes    the integer vector type and its width in bytes;
//   Vec vload(const std::int8_t* p);                  kBytes bytes
//   Vec vload_part(const std::int8_t* p, std::int64_t n);  the first n bytes, the rest zero
//   Vec vzero();  Vec vadd(Vec, Vec);  std::int32_t vsum(Vec v);   int32 lanes, lane sum
//   Vec vprep(Vec w);                                 per weight vector, shared by all rows
//   Vec vdot(Vec acc, Vec prepared, Vec w, Vec x);   acc += 4-byte dot products (int32 lanes)
//   Vec vcount(Vec acc, Vec w);                       acc += sums of w's signed bytes
//   kBias                                             Σ lanes of vdot = Σ x·w + kBias · Σ x
// Activation rows are padded to a multiple of 64 bytes, so their loads are always whole; a weight
// vector that ends a group is loaded partly and zero elsewhere, and the activations are loaded
// the same way so that a prepared padding byte meets a zero.

#define PORTA_PREFETCH_ROWS 2  // weight rows ahead of the one being read

template <int M>
T void rows_m(const QuantizedRows& a, std::int64_t m0, const QuantMatrix& w, std::int64_t n_begin,
              std::int64_t n_end, float* y, std::int64_t ldy) {
  const std::int64_t group = w.group(), groups = w.groups(), k = w.k;
  const bool offset = a.offset != 0;
  std::vector<std::int64_t> acc(static_cast<std::size_t>(groups * M));
  const std::int8_t* x[M];
  for (int m = 0; m < M; ++m) x[m] = a.row(m0 + m);
  const auto* base = static_cast<const std::int8_t*>(w.data);
  for (std::int64_t n = n_begin; n < n_end; ++n) {
    const std::int8_t* q = base + n * k;
    const std::int8_t* zeros = zero_row(w, n);
    // The hardware prefetcher follows one stream per thread well, but not across the jump to
    // the next expert's matrix: ask for the rows ahead (within this matrix) explicitly.
    const std::int8_t* ahead =
        n + PORTA_PREFETCH_ROWS < n_end ? q + PORTA_PREFETCH_ROWS * k : nullptr;
    for (std::int64_t g = 0, c0 = 0; c0 < k; ++g, c0 += group) {
      const std::int64_t c1 = std::min(k, c0 + group);
      Vec sums[M];
      for (int m = 0; m < M; ++m) sums[m] = vzero();
      Vec count = vzero();
      std::int64_t c = c0;
      if constexpr (M <= 2) {
        // Two chains per row: one would wait on vpdpbusd's latency when the row is in cache.
        Vec more[M];
        for (int m = 0; m < M; ++m) more[m] = vzero();
        for (; c + 2 * kBytes <= c1; c += 2 * kBytes) {
          if (ahead != nullptr)
            for (std::int64_t b = 0; b < 2 * kBytes; b += 64)
              _mm_prefetch(reinterpret_cast<const char*>(ahead + c + b), _MM_HINT_T0);
          const Vec w0 = vload(q + c), w1 = vload(q + c + kBytes);
          const Vec p0 = vprep(w0), p1 = vprep(w1);
          if (offset) count = vcount(vcount(count, w0), w1);
          for (int m = 0; m < M; ++m) {
            sums[m] = vdot(sums[m], p0, w0, vload(x[m] + c));
            more[m] = vdot(more[m], p1, w1, vload(x[m] + c + kBytes));
          }
        }
        for (int m = 0; m < M; ++m) sums[m] = vadd(sums[m], more[m]);
      }
      for (; c + kBytes <= c1; c += kBytes) {
        if (ahead != nullptr && (c & 63) == 0)
          _mm_prefetch(reinterpret_cast<const char*>(ahead + c), _MM_HINT_T0);
        const Vec wv = vload(q + c);
        const Vec p = vprep(wv);
        if (offset) count = vcount(count, wv);
        for (int m = 0; m < M; ++m) sums[m] = vdot(sums[m], p, wv, vload(x[m] + c));
      }
      if (c < c1) {
        if (ahead != nullptr) _mm_prefetch(reinterpret_cast<const char*>(ahead + c), _MM_HINT_T0);
        const Vec wv = vload_part(q + c, c1 - c);
        const Vec p = vprep(wv);
        if (offset) count = vcount(count, wv);
        for (int m = 0; m < M; ++m) sums[m] = vdot(sums[m], p, wv, vload_part(x[m] + c, c1 - c));
      }
      const std::int64_t wsum = offset ? vsum(count) : 0;
      for (int m = 0; m < M; ++m) {
        const std::int64_t p = static_cast<std::int64_t>(vsum(sums[m])) -
                               std::int64_t{kBias} * a.sum(m0 + m, g);
        acc[static_cast<std::size_t>(m * groups + g)] =
            centred_sum(a, m0 + m, g, zeros == nullptr ? 0 : zeros[g], p, wsum);
      }
    }
    if (groups == 1) {
      float s;
      widen_scales(w, n, &s);
      for (int m = 0; m < M; ++m)
        y[(m0 + m) * ldy + n] = int8_output_one_group(
            acc[static_cast<std::size_t>(m)], s, a.scales[static_cast<std::size_t>(m0 + m)]);
      continue;
    }
    for (int m = 0; m < M; ++m)
      y[(m0 + m) * ldy + n] = int8_output(acc.data() + m * groups, w, n,
                                          a.scales[static_cast<std::size_t>(m0 + m)]);
  }
}

#undef PORTA_PREFETCH_ROWS

T void rows_any(const QuantizedRows& a, std::int64_t m0, std::int64_t count, const QuantMatrix& w,
                std::int64_t n_begin, std::int64_t n_end, float* y, std::int64_t ldy) {
  switch (count) {
    case 1: return rows_m<1>(a, m0, w, n_begin, n_end, y, ldy);
    case 2: return rows_m<2>(a, m0, w, n_begin, n_end, y, ldy);
    case 3: return rows_m<3>(a, m0, w, n_begin, n_end, y, ldy);
    case 4: return rows_m<4>(a, m0, w, n_begin, n_end, y, ldy);
    case 5: return rows_m<5>(a, m0, w, n_begin, n_end, y, ldy);
    case 6: return rows_m<6>(a, m0, w, n_begin, n_end, y, ldy);
    case 7: return rows_m<7>(a, m0, w, n_begin, n_end, y, ldy);
    default: return rows_m<8>(a, m0, w, n_begin, n_end, y, ldy);
  }
}
