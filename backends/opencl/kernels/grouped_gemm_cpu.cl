// The ragged grouped expert GEMM for CPU devices (PoCL and other CPU drivers): the same contract
// as grouped_gemm.cl (out[r] = rows[r] · w[e]ᵀ for offsets[e] <= r < offsets[e + 1]), shaped for
// how a CPU driver runs a work-group: as a loop over its work-items on one core, each work-item
// straight-line code that the compiler keeps in vector registers.
//
// Both operands are contiguous along the reduction dimension H, so each work-item loads 8
// consecutive elements of 3 rows and of 4 weight rows per step (vload8, widened from f16/bf16)
// and keeps 3x4 float8 accumulators: 12 vector FMAs per 7 vector loads, 16 vector registers in
// all (AVX2). The 8 lanes are summed once at the end. No local memory and no barriers: the CPU's
// caches hold the tile (3 rows and 4 weight rows of H elements per work-item), and a barrier
// would make the driver spill every accumulator between the phases.
//
// Grid dimension 1 enumerates every expert's row tiles in order (as grouped_gemm.cl), dimension
// 0 the 32-column tiles. A tile is GC_BLOCKS_R x 8 blocks of 3x4 outputs, spread over however
// many work-items the group has (any size; the host takes it from the device's limits). Blocks
// past the expert's last row or the last column do nothing; a partial block clamps its loads
// into the valid rows and columns and stores only those.
#define GC_RM 3
#define GC_RN 4
#define GC_TN (GC_RN * 8)

inline float8 load_f8(global const uchar* base, int dtype, long i) {
  if (dtype == DT_F16) return vload_half8(0, (global const half*)base + i);
  if (dtype == DT_BF16)
    return as_float8(convert_uint8(vload8(0, (global const ushort*)base + i)) << 16);
  return vload8(0, (global const float*)base + i);
}

inline float sum8(float8 v) {
  return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
}

#define GROUPED_GEMM_CPU_KERNEL(NAME, BLOCKS_R)                                                   \
  kernel void NAME(global const uchar* rows_buffer, ulong rows_offset, int rows_dtype,           \
                   global const uchar* w_buffer, ulong w_offset, int w_dtype,                    \
                   global const uchar* offsets_buffer, ulong offsets_offset,                     \
                   global uchar* out_buffer, ulong out_offset, int out_dtype, long P, long H,    \
                   long N, long E) {                                                             \
    const long TM = GC_RM * (BLOCKS_R);                                                          \
    const long slot = get_group_id(1);                                                           \
    global const int* offsets = (global const int*)AT(offsets_buffer, offsets_offset);           \
    long row0 = 0, row_end = 0;                                                                  \
    const long expert = find_tile(offsets, E, P, TM, slot, &row0, &row_end);                     \
    if (expert < 0) return;                                                                      \
    global const uchar* rows = AT(rows_buffer, rows_offset);                                     \
    global const uchar* w = AT(w_buffer, w_offset);                                              \
    global uchar* out = AT(out_buffer, out_offset);                                              \
    const long H8 = H & ~7L;                                                                     \
    for (int block = (int)get_local_id(0); block < (BLOCKS_R) * 8;                               \
         block += (int)get_local_size(0)) {                                                      \
      const long r0 = row0 + (block % (BLOCKS_R)) * GC_RM;                                       \
      const long c0 = (long)get_group_id(0) * GC_TN + (block / (BLOCKS_R)) * GC_RN;              \
      if (r0 >= row_end || c0 >= N) continue;                                                    \
      long ra[GC_RM], wa[GC_RN];                                                                 \
      _Pragma("unroll") for (int i = 0; i < GC_RM; ++i) ra[i] = min(r0 + i, row_end - 1) * H;    \
      _Pragma("unroll") for (int j = 0; j < GC_RN; ++j) wa[j] =                                  \
          (expert * N + min(c0 + j, N - 1)) * H;                                                 \
      float8 acc[GC_RM][GC_RN];                                                                  \
      _Pragma("unroll") for (int i = 0; i < GC_RM; ++i)                                          \
          _Pragma("unroll") for (int j = 0; j < GC_RN; ++j) acc[i][j] = (float8)(0.0f);          \
      for (long k = 0; k < H8; k += 8) {                                                         \
        float8 a[GC_RM];                                                                         \
        _Pragma("unroll") for (int i = 0; i < GC_RM; ++i) a[i] =                                 \
            load_f8(rows, rows_dtype, ra[i] + k);                                                \
        _Pragma("unroll") for (int j = 0; j < GC_RN; ++j) {                                      \
          const float8 b = load_f8(w, w_dtype, wa[j] + k);                                       \
          _Pragma("unroll") for (int i = 0; i < GC_RM; ++i) acc[i][j] = fma(a[i], b, acc[i][j]); \
        }                                                                                        \
      }                                                                                          \
      _Pragma("unroll") for (int i = 0; i < GC_RM; ++i) {                                        \
        if (r0 + i >= row_end) break;                                                            \
        _Pragma("unroll") for (int j = 0; j < GC_RN; ++j) {                                      \
          if (c0 + j >= N) break;                                                                \
          float s = sum8(acc[i][j]);                                                             \
          for (long k = H8; k < H; ++k)                                                          \
            s = fma(load_f(rows, rows_dtype, ra[i] + k), load_f(w, w_dtype, wa[j] + k), s);      \
          store_f(out, out_dtype, (r0 + i) * N + c0 + j, s);                                     \
        }                                                                                        \
      }                                                                                          \
    }                                                                                            \
  }

// 48-row tiles (16 blocks of 3 rows) for prefill and large batches, 12-row tiles (4 blocks) when
// experts get few rows each; 32 columns either way.
GROUPED_GEMM_CPU_KERNEL(grouped_gemm_cpu_48, 16)
GROUPED_GEMM_CPU_KERNEL(grouped_gemm_cpu_12, 4)
