// panel_gemm.hpp's kernel, written once for both vector widths. The including file defines
// PORTA_PANEL_TARGET (the target attribute), the float vector type Vec with kLanes lanes,
//   Vec vzero(); Vec vload(const float*); void vstore(float*, Vec); Vec vbroadcast(const float*);
//   Vec vfma(Vec a, Vec b, Vec acc) (a·b + acc); Vec vwiden(const std::uint16_t*) (kLanes bf16);
// kMaxVecs (vectors of rows per chunk) and kNrFor[mv] (weight rows per tile for mv vectors: the
// accumulator tile kNrFor[mv] × mv vectors fills the register file, leaving room for the mv
// vectors of x and the broadcast weight). Included inside an ISA-specific anonymous namespace.
//
// Shapes: a chunk of up to kMaxVecs · kLanes rows of x is transposed once into xt [K][ld]
// (ld = mv · kLanes, rows past the chunk zero), which stays in L2 while every group of kNrFor[mv]
// weight rows passes: those are widened to f32 kc columns at a time into an L1-sized block wb, and
// per k one row of xt (mv vectors) is multiplied by each of the group's broadcast weights. Each
// output is one f32 sum over k in ascending order, as oneDNN's is.

#define T PORTA_PANEL_TARGET

// The widened weight block: 32 KB (L1 is 48 KB on the Xeon this was tuned on).
constexpr std::int64_t kWbFloats = 8192;
template <int NR>
constexpr std::int64_t kKcFor = kWbFloats / NR / 16 * 16;
constexpr std::int64_t kTileFloats = 512;
constexpr std::int64_t kAlign = 16;  // floats: 64-byte aligned pieces of the scratch

// Rows per chunk: as many as the register tile takes, within 1.5 MB of xt (2 MB L2).
inline std::int64_t max_rows(std::int64_t k) {
  const std::int64_t fit = (1536 * 1024 / 4) / std::max<std::int64_t>(k, 1) / kLanes * kLanes;
  return std::clamp<std::int64_t>(fit, kLanes, kMaxVecs * kLanes);
}

inline std::size_t scratch_floats(std::int64_t k) {
  return static_cast<std::size_t>(k * max_rows(k) + kWbFloats + kTileFloats + 3 * kAlign);
}

inline float* aligned(float* p) {
  const auto bytes = reinterpret_cast<std::uintptr_t>(p);
  return p + ((64 - bytes % 64) % 64) / sizeof(float);
}

// dst[j] = src[j] widened to f32 for j < kc, and the same stretch `ahead` elements further on
// (the next group of weight rows) fetched into L2: the weights come from memory (a prefill reads
// each expert's once), and the hardware prefetcher does not ramp up on runs of a few KB in 8
// rows at once; without this the widening stalled on DRAM for about a third of the kernel's time.
template <class W>
T void load_row(const W* src, std::int64_t kc, float* dst, std::int64_t ahead) {
  constexpr std::int64_t kLine = 64 / sizeof(W);
  for (std::int64_t j = 0; j < kc; j += kLine)
    _mm_prefetch(reinterpret_cast<const char*>(src + ahead + j), _MM_HINT_T1);
  std::int64_t j = 0;
  if constexpr (std::is_same_v<W, std::uint16_t>) {
    for (; j + kLanes <= kc; j += kLanes) vstore(dst + j, vwiden(src + j));
    for (; j < kc; ++j) dst[j] = bf16_bits_to_f32(src[j]);
  } else {
    std::copy_n(src, kc, dst);
  }
}

// xt[j * ld + m] = x[m * ldx + j] for m < mc, 0 for mc <= m < ld; 16 columns of x at a time, so
// that the stretch of xt written (16 · ld floats) stays in L1.
inline void pack_xt(const float* x, std::int64_t ldx, std::int64_t mc, std::int64_t k,
                    std::int64_t ld, float* xt) {
  for (std::int64_t j0 = 0; j0 < k; j0 += 16) {
    const std::int64_t j1 = std::min<std::int64_t>(k, j0 + 16);
    for (std::int64_t m = 0; m < mc; ++m)
      for (std::int64_t j = j0; j < j1; ++j) xt[j * ld + m] = x[m * ldx + j];
    if (mc < ld)
      for (std::int64_t j = j0; j < j1; ++j) std::fill(xt + j * ld + mc, xt + (j + 1) * ld, 0.0f);
  }
}

// acc[i][v] (+)= Σ_{j < kc} wb[i * ldw + j] · xt[j * mv·L + v·L ...]: the register tile, stored
// to `tile` [NR][MV·L]; `accumulate` starts from the tile instead of zero (later blocks of K).
template <int MV, int NR>
T void tile_kernel(const float* xt, const float* wb, std::int64_t ldw, std::int64_t kc,
                   bool accumulate, float* tile) {
  constexpr int LD = MV * kLanes;
  Vec acc[NR][MV];
#pragma GCC unroll 32
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < MV; ++v)
      acc[i][v] = accumulate ? vload(tile + i * LD + v * kLanes) : vzero();
  for (std::int64_t j = 0; j < kc; ++j) {
    Vec b[MV];
#pragma GCC unroll 4
    for (int v = 0; v < MV; ++v) b[v] = vload(xt + j * LD + v * kLanes);
#pragma GCC unroll 32
    for (int i = 0; i < NR; ++i) {
      const Vec s = vbroadcast(wb + i * ldw + j);
#pragma GCC unroll 4
      for (int v = 0; v < MV; ++v) acc[i][v] = vfma(s, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < MV; ++v) vstore(tile + i * LD + v * kLanes, acc[i][v]);
}

// Rows [m0, m0 + mc) of y (their xt packed with ld = MV · kLanes) for every output column.
template <int MV, int NR>
T void run_chunk(const PanelArgs& a, const float* xt, std::int64_t m0, std::int64_t mc, float* wb,
                 float* tile) {
  constexpr std::int64_t KC = kKcFor<NR>;
  constexpr int LD = MV * kLanes;
  for (std::int64_t n = a.n_begin; n < a.n_end; n += NR) {
    const std::int64_t nr = std::min<std::int64_t>(NR, a.n_end - n);
    for (std::int64_t k0 = 0; k0 < a.k; k0 += KC) {
      const std::int64_t kc = std::min(KC, a.k - k0);
      if (!a.bf16 && nr == NR) {
        // f32 weights of a whole group are read where they are (a dequantized panel in cache).
        tile_kernel<MV, NR>(xt + k0 * LD, static_cast<const float*>(a.w) + n * a.k + k0, a.k,
                            kc, k0 > 0, tile);
        continue;
      }
      // Rows past nr (the last group) keep earlier values: their sums are never stored.
      for (std::int64_t i = 0; i < nr; ++i) {
        const std::int64_t at = (n + i) * a.k + k0, ahead = NR * a.k;
        if (a.bf16)
          load_row(static_cast<const std::uint16_t*>(a.w) + at, kc, wb + i * KC, ahead);
        else
          load_row(static_cast<const float*>(a.w) + at, kc, wb + i * KC, ahead);
      }
      tile_kernel<MV, NR>(xt + k0 * LD, wb, KC, kc, k0 > 0, tile);
    }
    for (std::int64_t m = 0; m < mc; ++m) {
      float* yr = a.y + (m0 + m) * a.ldy + n;
      for (std::int64_t i = 0; i < nr; ++i) yr[i] = tile[i * LD + m];
    }
  }
}

T void panel_gemm_impl(const PanelArgs& a) {
  if (a.rows <= 0 || a.n_begin >= a.n_end) return;
  if (a.k == 0) {
    for (std::int64_t m = 0; m < a.rows; ++m)
      std::fill(a.y + m * a.ldy + a.n_begin, a.y + m * a.ldy + a.n_end, 0.0f);
    return;
  }
  const std::int64_t rows_max = max_rows(a.k);
  float* xt = aligned(a.scratch);
  float* wb = aligned(xt + a.k * rows_max);
  float* tile = aligned(wb + kWbFloats);
  for (std::int64_t m0 = 0; m0 < a.rows; m0 += rows_max) {
    const std::int64_t mc = std::min(rows_max, a.rows - m0);
    const int mv = static_cast<int>((mc + kLanes - 1) / kLanes);
    pack_xt(a.x + m0 * a.ldx, a.ldx, mc, a.k, mv * kLanes, xt);
    switch (mv) {
      case 1: run_chunk<1, kNrFor[1]>(a, xt, m0, mc, wb, tile); break;
      case 2: run_chunk<2, kNrFor[2]>(a, xt, m0, mc, wb, tile); break;
      case 3:
        if constexpr (kMaxVecs >= 3) run_chunk<3, kNrFor[3]>(a, xt, m0, mc, wb, tile);
        break;
      default:
        if constexpr (kMaxVecs >= 4) run_chunk<4, kNrFor[4]>(a, xt, m0, mc, wb, tile);
        break;
    }
  }
}

#undef T
