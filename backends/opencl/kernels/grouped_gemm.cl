// The ragged grouped expert GEMM: out[r] = rows[r] · w[e]ᵀ for the rows r of expert e
// (offsets[e] <= r < offsets[e + 1]), every expert with its own row count, in one launch.
//
// Each work-group computes a 64x64 tile of one expert's block: dimension 1 enumerates the row
// tiles of all experts in order (at most ceil(P / 64) + E of them; a group past the last tile
// exits), found from the offsets on the device, so the routing never travels to the host.
// 16x16 work-items each accumulate a strided 4x4 micro-tile; 64x16 slabs of the rows and of the
// weights are staged in local memory. Loads widen f16/bf16 (bf16 weights stay bf16 in memory).
// Two row-tile heights: 64 (experts with many rows) and 16 (decode and small batches, where a
// 64-row tile would be mostly padding); the host picks one from the expected rows per expert.
#define GG_TN 64
#define GG_TK 16

// The expert of tile `slot` when each expert's rows [offsets[e], offsets[e+1]) (clamped into
// [0, P)) are cut into tiles of `tm` rows, experts in order; its first row and the expert's end
// in *row0 and *row_end. -1 past the last tile. (Both grouped GEMM kernels enumerate tiles so.)
inline long find_tile(global const int* offsets, long E, long P, long tm, long slot, long* row0,
                      long* row_end) {
  long seen = 0;
  for (long e = 0; e < E; ++e) {
    const long first = clamp((long)offsets[e], 0L, P);
    const long last = clamp((long)offsets[e + 1], first, P);
    const long tiles = (last - first + tm - 1) / tm;
    if (slot < seen + tiles) {
      *row0 = first + (slot - seen) * tm;
      *row_end = last;
      return e;
    }
    seen += tiles;
  }
  return -1;
}

#define GROUPED_GEMM_KERNEL(NAME, TM)                                                             \
  __attribute__((reqd_work_group_size(16, 16, 1))) kernel void NAME(                             \
      global const uchar* rows_buffer, ulong rows_offset, int rows_dtype,                        \
      global const uchar* w_buffer, ulong w_offset, int w_dtype,                                 \
      global const uchar* offsets_buffer, ulong offsets_offset, global uchar* out_buffer,         \
      ulong out_offset, int out_dtype, long P, long H, long N, long E) {                         \
    const int tx = (int)get_local_id(0), ty = (int)get_local_id(1);                              \
    const int lid = ty * 16 + tx;                                                                \
    const long n0 = (long)get_group_id(0) * GG_TN;                                               \
    const long slot = get_group_id(1);                                                           \
    global const int* offsets = (global const int*)AT(offsets_buffer, offsets_offset);           \
    long row0 = 0, row_end = 0;                                                                  \
    const long expert = find_tile(offsets, E, P, TM, slot, &row0, &row_end);                     \
    if (expert < 0) return; /* uniform over the group: no barrier is skipped by some only */     \
    local float a_tile[GG_TK][TM];                                                               \
    local float b_tile[GG_TK][GG_TN];                                                            \
    float acc[TM / 16][4];                                                                       \
    for (int i = 0; i < TM / 16; ++i)                                                            \
      for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;                                              \
    global const uchar* rows = AT(rows_buffer, rows_offset);                                     \
    global const uchar* w = AT(w_buffer, w_offset);                                              \
    const long w_base = expert * N;                                                              \
    for (long k0 = 0; k0 < H; k0 += GG_TK) {                                                     \
      for (int r = 0; r < TM / 16; ++r) {                                                        \
        const int index = lid + 256 * r;                                                         \
        const int m = index / GG_TK, kk = index % GG_TK;                                         \
        const long k = k0 + kk, row = row0 + m;                                                  \
        a_tile[kk][m] = (row < row_end && k < H) ? load_f(rows, rows_dtype, row * H + k) : 0.0f; \
      }                                                                                          \
      for (int r = 0; r < 4; ++r) {                                                              \
        const int index = lid + 256 * r;                                                         \
        const int m = index / GG_TK, kk = index % GG_TK;                                         \
        const long k = k0 + kk, col = n0 + m;                                                    \
        b_tile[kk][m] =                                                                          \
            (col < N && k < H) ? load_f(w, w_dtype, (w_base + col) * H + k) : 0.0f;              \
      }                                                                                          \
      barrier(CLK_LOCAL_MEM_FENCE);                                                              \
      for (int kk = 0; kk < GG_TK; ++kk) {                                                       \
        float a[TM / 16], b[4];                                                                  \
        for (int i = 0; i < TM / 16; ++i) a[i] = a_tile[kk][ty + 16 * i];                        \
        for (int j = 0; j < 4; ++j) b[j] = b_tile[kk][tx + 16 * j];                              \
        for (int i = 0; i < TM / 16; ++i)                                                        \
          for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);                    \
      }                                                                                          \
      barrier(CLK_LOCAL_MEM_FENCE);                                                              \
    }                                                                                            \
    global uchar* out = AT(out_buffer, out_offset);                                              \
    for (int i = 0; i < TM / 16; ++i) {                                                          \
      const long row = row0 + ty + 16 * i;                                                       \
      if (row >= row_end) continue;                                                              \
      for (int j = 0; j < 4; ++j) {                                                              \
        const long col = n0 + tx + 16 * j;                                                       \
        if (col < N) store_f(out, out_dtype, row * N + col, acc[i][j]);                          \
      }                                                                                          \
    }                                                                                            \
  }

GROUPED_GEMM_KERNEL(grouped_gemm_64, 64)
GROUPED_GEMM_KERNEL(grouped_gemm_16, 16)

// Rows before offsets[0] or past offsets[E] belong to no expert: zeros, as the reference gives.
kernel void grouped_zero_rows(global const uchar* offsets_buffer, ulong offsets_offset,
                              global uchar* out_buffer, ulong out_offset, int out_dtype, long P,
                              long N, long E) {
  const long r = get_global_id(0);
  if (r >= P) return;
  global const int* offsets = (global const int*)AT(offsets_buffer, offsets_offset);
  const long first = clamp((long)offsets[0], 0L, P);
  const long last = clamp((long)offsets[E], first, P);
  if (r >= first && r < last) return;
  for (long j = 0; j < N; ++j) store_f(AT(out_buffer, out_offset), out_dtype, r * N + j, 0.0f);
}
