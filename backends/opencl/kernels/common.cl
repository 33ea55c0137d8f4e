// Helpers every porta kernel uses: dtype-generic loads and stores (f16 and bf16 are storage
// formats, widened to f32 for arithmetic), index loads, and byte offsets. Tensors arrive as a
// buffer plus a byte offset so that values can share one arena; kernels never rely on a
// particular device's quirks (no warp-synchronous code, explicit barriers, bounds checked).
#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define PORTA_HAS_FP64 1
#endif
// The reference rounds every product and sum separately: no fused multiply-adds behind our back.
#pragma OPENCL FP_CONTRACT OFF

#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2
#define DT_I32 3
#define DT_I64 4
#define DT_I8 5

#define AT(buffer, offset) ((buffer) + (offset))

inline float bf16_to_f32(ushort bits) { return as_float(((uint)bits) << 16); }

// Round to nearest, ties to even; NaN stays a quiet NaN (as porta's host conversion).
inline ushort f32_to_bf16(float value) {
  const uint x = as_uint(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (ushort)((x >> 16) | 0x40u);
  return (ushort)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float load_f(global const uchar* base, int dtype, long i) {
  if (dtype == DT_F16) return vload_half((size_t)i, (global const half*)base);
  if (dtype == DT_BF16) return bf16_to_f32(((global const ushort*)base)[i]);
  return ((global const float*)base)[i];
}

inline void store_f(global uchar* base, int dtype, long i, float value) {
  if (dtype == DT_F16)
    vstore_half_rte(value, (size_t)i, (global half*)base);
  else if (dtype == DT_BF16)
    ((global ushort*)base)[i] = f32_to_bf16(value);
  else
    ((global float*)base)[i] = value;
}

inline long load_index(global const uchar* base, int dtype, long i) {
  if (dtype == DT_I64) return ((global const long*)base)[i];
  return (long)((global const int*)base)[i];
}

inline void store_index(global uchar* base, int dtype, long i, long value) {
  if (dtype == DT_I64)
    ((global long*)base)[i] = value;
  else
    ((global int*)base)[i] = (int)value;
}

// Copies element `from` of `src` to element `to` of `dst`, `size` bytes each (1, 2, 4 or 8).
inline void copy_element(global const uchar* src, long from, global uchar* dst, long to, int size) {
  if (size == 4)
    ((global uint*)dst)[to] = ((global const uint*)src)[from];
  else if (size == 2)
    ((global ushort*)dst)[to] = ((global const ushort*)src)[from];
  else if (size == 8)
    ((global ulong*)dst)[to] = ((global const ulong*)src)[from];
  else
    dst[to] = src[from];
}

inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp(-x)); }

// Sum of `value` over the work-group (its size a power of two), left in every work-item.
inline float group_sum(float value, local float* scratch) {
  const int lid = (int)get_local_id(0);
  const int size = (int)get_local_size(0);
  scratch[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = size / 2; stride > 0; stride /= 2) {
    if (lid < stride) scratch[lid] += scratch[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float total = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return total;
}

inline float group_max(float value, local float* scratch) {
  const int lid = (int)get_local_id(0);
  const int size = (int)get_local_size(0);
  scratch[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = size / 2; stride > 0; stride /= 2) {
    if (lid < stride) scratch[lid] = fmax(scratch[lid], scratch[lid + stride]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float best = scratch[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return best;
}
