// Quantized weights (docs/quantization.md): the ragged grouped GEMM with the weight dequantized
// inside the kernel, and the int8 activation quantizers of W8A8.
//
// A weight is W[E, N, K] as codes (int8; int4 two per byte, element 2j in the low nibble of byte
// j; f8 e4m3), scales [E, ceil(N / block_n), groups] (f32, f16 or bf16) and, when asymmetric,
// zero points (int8, the scales' shape). Every row r of `rows` belongs to the expert e with
// offsets[e] <= r < offsets[e + 1] (quant_matmul passes one expert covering every row; rows in no
// expert's block are written by grouped_zero_rows). One work-item computes QG_COLS adjacent
// outputs of one row, so the activation row is read once per QG_COLS columns.
#define QF_INT8 0
#define QF_INT4 1
#define QF_F8 2
#define QG_COLS 4

// e4m3 (bias 7, no infinities, S.1111.111 is NaN) to f32, exactly.
inline float f8e4m3_to_f32(uchar bits) {
  const float sign = (bits & 0x80) ? -1.0f : 1.0f;
  const int exponent = (bits >> 3) & 0xf, mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return as_float(0x7fc00000u);
  if (exponent == 0) return sign * ldexp((float)mantissa, -9);  // subnormal: m · 2^-6 / 8
  return sign * ldexp((float)(8 + mantissa), exponent - 10);
}

// The integer code of element k of a weight row (int8 signed, int4 the unsigned nibble).
inline int quant_code(global const uchar* row, int format, long k) {
  if (format == QF_INT4) {
    const uchar byte = row[k >> 1];
    return (k & 1) ? (byte >> 4) : (byte & 0xf);
  }
  return (int)((global const char*)row)[k];
}

// Which expert row r belongs to (-1: none).
inline long expert_of(global const int* offsets, long E, long r) {
  for (long e = 0; e < E; ++e)
    if (r >= offsets[e] && r < offsets[e + 1]) return e;
  return -1;
}

// Weight-only: y[r, n] = Σ_k x[r, k] · w(n, k), w(n, k) = f32(q - z) · s (int) or f8(q) · s,
// each element one f32 rounding as the reference's, accumulated in f32.
kernel void quant_gemm(global const uchar* x_buffer, ulong x_offset, int x_dtype,
                       global const uchar* data_buffer, ulong data_offset,
                       global const uchar* scale_buffer, ulong scale_offset, int scale_dtype,
                       global const uchar* zero_buffer, ulong zero_offset, int has_zero,
                       global const uchar* offsets_buffer, ulong offsets_offset,
                       global uchar* out_buffer, ulong out_offset, int out_dtype, long P, long K,
                       long N, long E, int format, long group, long block_n) {
  const long c0 = get_global_id(0) * QG_COLS, r = get_global_id(1);
  if (r >= P || c0 >= N) return;
  const long e = expert_of((global const int*)AT(offsets_buffer, offsets_offset), E, r);
  if (e < 0) return;
  const long groups = (K + group - 1) / group, scale_rows = (N + block_n - 1) / block_n;
  const long row_bytes = format == QF_INT4 ? K / 2 : K;
  global const uchar* x = AT(x_buffer, x_offset);
  global const uchar* data = AT(data_buffer, data_offset);
  global const uchar* scale = AT(scale_buffer, scale_offset);
  global const char* zero = (global const char*)AT(zero_buffer, zero_offset);
  float acc[QG_COLS];
  for (int j = 0; j < QG_COLS; ++j) acc[j] = 0.0f;
  for (long g = 0; g < groups; ++g) {
    const long k_end = min(K, (g + 1) * group);
    for (int j = 0; j < QG_COLS; ++j) {
      const long n = c0 + j;
      if (n >= N) break;
      const long at = (e * scale_rows + n / block_n) * groups + g;
      const float s = load_f(scale, scale_dtype, at);
      global const uchar* w = data + (e * N + n) * row_bytes;
      if (format == QF_F8) {
        for (long k = g * group; k < k_end; ++k)
          acc[j] += load_f(x, x_dtype, r * K + k) * (f8e4m3_to_f32(w[k]) * s);
      } else {
        const int z = has_zero ? (int)zero[at] : (format == QF_INT4 ? 8 : 0);
        for (long k = g * group; k < k_end; ++k)
          acc[j] += load_f(x, x_dtype, r * K + k) * ((float)(quant_code(w, format, k) - z) * s);
      }
    }
  }
  global uchar* out = AT(out_buffer, out_offset);
  for (int j = 0; j < QG_COLS && c0 + j < N; ++j) store_f(out, out_dtype, r * N + c0 + j, acc[j]);
}

// W8A8: acc_g = Σ_{k in g} (qx[r, k] - o) · (q(n, k) - z) exactly in integers, then
// y = (Σ_g f32(acc_g) · s(n, g), groups in ascending order) · s_x[r]: docs/quantization.md's
// sequence, so the float result is the reference's bit for bit.
kernel void quant_gemm_i8(global const char* qx, global const float* x_scales, int x_offset_code,
                          global const uchar* data_buffer, ulong data_offset,
                          global const uchar* scale_buffer, ulong scale_offset, int scale_dtype,
                          global const uchar* zero_buffer, ulong zero_offset, int has_zero,
                          global const uchar* offsets_buffer, ulong offsets_offset,
                          global uchar* out_buffer, ulong out_offset, int out_dtype, long P,
                          long K, long N, long E, long group, long block_n) {
  const long c0 = get_global_id(0) * QG_COLS, r = get_global_id(1);
  if (r >= P || c0 >= N) return;
  const long e = expert_of((global const int*)AT(offsets_buffer, offsets_offset), E, r);
  if (e < 0) return;
  const long groups = (K + group - 1) / group, scale_rows = (N + block_n - 1) / block_n;
  global const char* data = (global const char*)AT(data_buffer, data_offset);
  global const uchar* scale = AT(scale_buffer, scale_offset);
  global const char* zero = (global const char*)AT(zero_buffer, zero_offset);
  global const char* xr = qx + r * K;
  float y[QG_COLS];
  for (int j = 0; j < QG_COLS; ++j) y[j] = 0.0f;
  for (long g = 0; g < groups; ++g) {
    const long k_end = min(K, (g + 1) * group);
    for (int j = 0; j < QG_COLS; ++j) {
      const long n = c0 + j;
      if (n >= N) break;
      const long at = (e * scale_rows + n / block_n) * groups + g;
      const int z = has_zero ? (int)zero[at] : 0;
      global const char* w = data + (e * N + n) * K;
      long acc = 0;
      for (long k = g * group; k < k_end; ++k)
        acc += (long)(((int)xr[k] - x_offset_code) * ((int)w[k] - z));
      y[j] += (float)acc * load_f(scale, scale_dtype, at);
    }
  }
  const float sx = x_scales[r];
  global uchar* out = AT(out_buffer, out_offset);
  for (int j = 0; j < QG_COLS && c0 + j < N; ++j)
    store_f(out, out_dtype, r * N + c0 + j, y[j] * sx);
}

// Dynamic per-token quantization, one work-group per row (porta::quantize_activations_per_token):
// s = max|x| / 127 (1 for a zero row), q = clamp(rint(x / s), -127, 127) with a true division
// (the program is built correctly rounded where the device allows; supports() declines W8A8
// elsewhere); a row with a NaN or infinity gets s = NaN and codes 0.
kernel void quantize_per_token(global const uchar* x_buffer, ulong x_offset, int x_dtype,
                               global char* q, global float* scales, long K,
                               local float* scratch) {
  const long r = get_group_id(0);
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  global const uchar* x = AT(x_buffer, x_offset);
  float amax = 0.0f, bad = 0.0f;
  for (long k = lid; k < K; k += size) {
    const float v = load_f(x, x_dtype, r * K + k);
    if (isfinite(v))
      amax = fmax(amax, fabs(v));
    else
      bad = 1.0f;
  }
  amax = group_max(amax, scratch);
  bad = group_max(bad, scratch);
  const float s = bad != 0.0f ? as_float(0x7fc00000u) : (amax == 0.0f ? 1.0f : amax / 127.0f);
  if (lid == 0) scales[r] = s;
  for (long k = lid; k < K; k += size)
    q[r * K + k] =
        bad != 0.0f ? 0 : (char)clamp(rint(load_f(x, x_dtype, r * K + k) / s), -127.0f, 127.0f);
}

// Static per-tensor quantization (msModelSlim W8A8): q = clamp(rint(x / scale) + offset, -128,
// 127), NaN to the offset; every row's scale is `scale`.
kernel void quantize_static(global const uchar* x_buffer, ulong x_offset, int x_dtype,
                            global char* q, global float* scales, long rows, long K, float scale,
                            float offset) {
  const long i = get_global_id(0);
  if (i >= rows * K) return;
  const float v = load_f(AT(x_buffer, x_offset), x_dtype, i);
  q[i] = isnan(v) ? (char)offset : (char)clamp(rint(v / scale) + offset, -128.0f, 127.0f);
  if (i % K == 0) scales[i / K] = scale;
}

#ifdef PORTA_HAS_FP64
// SwiGLU as the reference computes it (in double, one rounding to f32): under W8A8 the down
// projection requantizes these values, so an f32 SwiGLU's last-bit differences could move a code.
kernel void swiglu_f64(global const float* gate, global const float* up, global float* out,
                       long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const double g = gate[i];
  out[i] = (float)(g / (1.0 + exp(-g)) * (double)up[i]);
}
#endif
