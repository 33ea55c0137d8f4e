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
// f32 weights (dequantized panels) go through the tiles of up to kGroupRows weight rows at a
// time, kL1Floats of xt (one stretch of K) staying in L1 while every tile of the group meets it.
constexpr std::int64_t kGroupRows = 96;  // a multiple of every kNrFor
constexpr std::int64_t kL1Floats = 8192;
constexpr std::int64_t kTileFloats = kGroupRows * kMaxVecs * kLanes;
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
T void load_row(const std::uint16_t* src, std::int64_t kc, float* dst, std::int64_t ahead) {
  constexpr std::int64_t kLine = 64 / sizeof(std::uint16_t);
  for (std::int64_t j = 0; j < kc; j += kLine)
    _mm_prefetch(reinterpret_cast<const char*>(src + ahead + j), _MM_HINT_T1);
  std::int64_t j = 0;
  for (; j + kLanes <= kc; j += kLanes) vstore(dst + j, vwiden(src + j));
  for (; j < kc; ++j) dst[j] = bf16_bits_to_f32(src[j]);
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

// Rows [m0, m0 + mc) of y (their xt packed with ld = MV · kLanes) for every output column, bf16
// weights widened kc columns at a time into wb (f32 weights take run_chunk_f32 below).
template <int MV, int NR>
T void run_chunk(const PanelArgs& a, const float* xt, std::int64_t m0, std::int64_t mc, float* wb,
                 float* tile) {
  constexpr std::int64_t KC = kKcFor<NR>;
  constexpr int LD = MV * kLanes;
  for (std::int64_t n = a.n_begin; n < a.n_end; n += NR) {
    const std::int64_t nr = std::min<std::int64_t>(NR, a.n_end - n);
    for (std::int64_t k0 = 0; k0 < a.k; k0 += KC) {
      const std::int64_t kc = std::min(KC, a.k - k0);
      // Rows past nr (the last group) keep earlier values: their sums are never stored.
      for (std::int64_t i = 0; i < nr; ++i)
        load_row(static_cast<const std::uint16_t*>(a.w) + (n + i) * a.k + k0, kc, wb + i * KC,
                 NR * a.k);
      tile_kernel<MV, NR>(xt + k0 * LD, wb, KC, kc, k0 > 0, tile);
    }
    for (std::int64_t m = 0; m < mc; ++m) {
      float* yr = a.y + (m0 + m) * a.ldy + n;
      for (std::int64_t i = 0; i < nr; ++i) yr[i] = tile[i * LD + m];
    }
  }
}

// run_chunk for f32 weight rows read in place: per group of kGroupRows weight rows, K in
// stretches of kL1Floats / LD, each stretch of xt multiplied by every tile of the group while it
// is in L1, each tile's accumulators kept in `tiles` between stretches. Streaming the whole of xt
// from L2 for every tile, as run_chunk does, left the FMAs waiting on L2 for a third of the time.
template <int MV, int NR>
T void run_chunk_f32(const PanelArgs& a, const float* xt, std::int64_t m0, std::int64_t mc,
                     float* wb, float* tiles) {
  constexpr int LD = MV * kLanes;
  constexpr std::int64_t KC = std::min(kL1Floats / LD, kWbFloats / NR / 16 * 16);
  const auto* w = static_cast<const float*>(a.w);
  for (std::int64_t g0 = a.n_begin; g0 < a.n_end; g0 += kGroupRows) {
    const std::int64_t g1 = std::min(a.n_end, g0 + kGroupRows);
    for (std::int64_t k0 = 0; k0 < a.k; k0 += KC) {
      const std::int64_t kc = std::min(KC, a.k - k0);
      for (std::int64_t n = g0; n < g1; n += NR) {
        float* tile = tiles + (n - g0) * LD;
        const std::int64_t nr = std::min<std::int64_t>(NR, g1 - n);
        if (nr == NR) {
          tile_kernel<MV, NR>(xt + k0 * LD, w + n * a.k + k0, a.k, kc, k0 > 0, tile);
          continue;
        }
        // The last, partial tile: its rows copied out, the rest zero (never stored).
        std::fill(wb, wb + NR * KC, 0.0f);
        for (std::int64_t i = 0; i < nr; ++i) std::copy_n(w + (n + i) * a.k + k0, kc, wb + i * KC);
        tile_kernel<MV, NR>(xt + k0 * LD, wb, KC, kc, k0 > 0, tile);
      }
    }
    for (std::int64_t m = 0; m < mc; ++m) {
      float* yr = a.y + (m0 + m) * a.ldy;
      for (std::int64_t n = g0; n < g1; ++n) yr[n] = tiles[(n - g0) * LD + m];
    }
  }
}

// One chunk of rows [m0, m0 + mc) whose xt is packed, through the tile of its width.
T void run_packed_chunk(const PanelArgs& a, const float* xt, std::int64_t m0, std::int64_t mc,
                        float* wb, float* tile) {
  const auto run = [&]<int MV>() {
    if (a.bf16)
      run_chunk<MV, kNrFor[MV]>(a, xt, m0, mc, wb, tile);
    else
      run_chunk_f32<MV, kNrFor[MV]>(a, xt, m0, mc, wb, tile);
  };
  switch ((mc + kLanes - 1) / kLanes) {
    case 1: run.template operator()<1>(); break;
    case 2: run.template operator()<2>(); break;
    case 3:
      if constexpr (kMaxVecs >= 3) run.template operator()<3>();
      break;
    default:
      if constexpr (kMaxVecs >= 4) run.template operator()<kMaxVecs>();
      break;
  }
}

inline bool zero_k(const PanelArgs& a) {
  if (a.k != 0) return false;
  for (std::int64_t m = 0; m < a.rows; ++m)
    std::fill(a.y + m * a.ldy + a.n_begin, a.y + m * a.ldy + a.n_end, 0.0f);
  return true;
}

T void panel_gemm_impl(const PanelArgs& a) {
  if (a.rows <= 0 || a.n_begin >= a.n_end || zero_k(a)) return;
  const std::int64_t rows_max = max_rows(a.k);
  float* xt = aligned(a.scratch);
  float* wb = aligned(xt + a.k * rows_max);
  float* tile = aligned(wb + kWbFloats);
  for (std::int64_t m0 = 0; m0 < a.rows; m0 += rows_max) {
    const std::int64_t mc = std::min(rows_max, a.rows - m0);
    pack_xt(a.x + m0 * a.ldx, a.ldx, mc, a.k, (mc + kLanes - 1) / kLanes * kLanes, xt);
    run_packed_chunk(a, xt, m0, mc, wb, tile);
  }
}

// A packed x holds every chunk's xt, chunk c at c · k · max_rows(k) floats from the aligned
// start.
inline std::size_t packed_floats(std::int64_t rows, std::int64_t k) {
  const std::int64_t rows_max = max_rows(k);
  return static_cast<std::size_t>((rows + rows_max - 1) / rows_max * rows_max * k + kAlign);
}

inline void pack_chunk(const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                       std::int64_t chunk, float* packed) {
  const std::int64_t rows_max = max_rows(k), m0 = chunk * rows_max;
  const std::int64_t mc = std::min(rows_max, rows - m0);
  if (mc <= 0) return;
  pack_xt(x + m0 * ldx, ldx, mc, k, (mc + kLanes - 1) / kLanes * kLanes,
          aligned(packed) + chunk * rows_max * k);
}

// panel_gemm_impl over a packed x (a.x): the weights f32, only the scratch's wb and tile used.
T void packed_gemm_impl(const PanelArgs& a) {
  if (a.rows <= 0 || a.n_begin >= a.n_end || zero_k(a)) return;
  const std::int64_t rows_max = max_rows(a.k);
  const float* xt = aligned(const_cast<float*>(a.x));
  float* wb = aligned(a.scratch);
  float* tile = aligned(wb + kWbFloats);
  for (std::int64_t m0 = 0; m0 < a.rows; m0 += rows_max)
    run_packed_chunk(a, xt + m0 * a.k, m0, std::min(rows_max, a.rows - m0), wb, tile);
}

#undef T
