// Row reductions: softmax (one work-group per row along the last axis, or one work-item per
// column for an inner axis), rms_norm and layer_norm over the last axis, and top_k.

kernel void softmax_rows(global const uchar* x, ulong x_offset, global uchar* out, ulong out_offset,
                         int dtype, long length, local float* scratch) {
  const long row = get_group_id(0);
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  global const uchar* in = AT(x, x_offset);
  global uchar* y = AT(out, out_offset);
  const long base = row * length;
  // A NaN is never the maximum; it reaches exp() and, through the sum, NaNs the row.
  float best = -INFINITY;
  for (long j = lid; j < length; j += size) {
    const float v = load_f(in, dtype, base + j);
    if (v > best) best = v;
  }
  best = group_max(best, scratch);
  float sum = 0.0f;
  for (long j = lid; j < length; j += size) sum += exp(load_f(in, dtype, base + j) - best);
  sum = group_sum(sum, scratch);
  for (long j = lid; j < length; j += size)
    store_f(y, dtype, base + j, exp(load_f(in, dtype, base + j) - best) / sum);
}

// softmax along an inner axis: x is [outer, length, inner], one work-item per (outer, inner).
kernel void softmax_columns(global const uchar* x, ulong x_offset, global uchar* out,
                            ulong out_offset, int dtype, long outer, long length, long inner) {
  const long id = get_global_id(0);
  if (id >= outer * inner) return;
  const long o = id / inner, i = id % inner;
  global const uchar* in = AT(x, x_offset);
  global uchar* y = AT(out, out_offset);
  const long base = o * length * inner + i;
  float best = -INFINITY;
  for (long j = 0; j < length; ++j) {
    const float v = load_f(in, dtype, base + j * inner);
    if (v > best) best = v;
  }
  float sum = 0.0f;
  for (long j = 0; j < length; ++j) sum += exp(load_f(in, dtype, base + j * inner) - best);
  for (long j = 0; j < length; ++j)
    store_f(y, dtype, base + j * inner, exp(load_f(in, dtype, base + j * inner) - best) / sum);
}

kernel void rms_norm_rows(global const uchar* x, ulong x_offset, int x_dtype,
                          global const uchar* w, ulong w_offset, int w_dtype, global uchar* out,
                          ulong out_offset, int out_dtype, long hidden, float eps,
                          local float* scratch) {
  const long row = get_group_id(0);
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  global const uchar* in = AT(x, x_offset);
  const long base = row * hidden;
  float squares = 0.0f;
  for (long h = lid; h < hidden; h += size) {
    const float v = load_f(in, x_dtype, base + h);
    squares += v * v;
  }
  squares = group_sum(squares, scratch);
  const float inv_rms = 1.0f / sqrt(squares / (float)hidden + eps);
  for (long h = lid; h < hidden; h += size)
    store_f(AT(out, out_offset), out_dtype, base + h,
            load_f(in, x_dtype, base + h) * inv_rms * load_f(AT(w, w_offset), w_dtype, h));
}

// Two passes (mean, then squared deviations), as the reference: no E[x²] - E[x]² cancellation.
kernel void layer_norm_rows(global const uchar* x, ulong x_offset, int x_dtype,
                            global const uchar* w, ulong w_offset, int w_dtype,
                            global const uchar* bias, ulong bias_offset, int has_bias,
                            global uchar* out, ulong out_offset, int out_dtype, long hidden,
                            float eps, local float* scratch) {
  const long row = get_group_id(0);
  const int lid = (int)get_local_id(0), size = (int)get_local_size(0);
  global const uchar* in = AT(x, x_offset);
  const long base = row * hidden;
  float sum = 0.0f;
  for (long h = lid; h < hidden; h += size) sum += load_f(in, x_dtype, base + h);
  const float mean = group_sum(sum, scratch) / (float)hidden;
  float deviations = 0.0f;
  for (long h = lid; h < hidden; h += size) {
    const float d = load_f(in, x_dtype, base + h) - mean;
    deviations += d * d;
  }
  const float variance = group_sum(deviations, scratch) / (float)hidden;
  const float inv_std = 1.0f / sqrt(variance + eps);
  for (long h = lid; h < hidden; h += size) {
    const float normalized = (load_f(in, x_dtype, base + h) - mean) * inv_std;
    const float b = has_bias ? load_f(AT(bias, bias_offset), w_dtype, h) : 0.0f;
    store_f(AT(out, out_offset), out_dtype, base + h,
            normalized * load_f(AT(w, w_offset), w_dtype, h) + b);
  }
}

// Whether (a, ia) ranks before (b, ib): numbers before NaN, then by value, then by index.
inline bool ranks_before(float a, long ia, float b, long ib, int largest) {
  const bool a_nan = isnan(a), b_nan = isnan(b);
  if (a_nan != b_nan) return b_nan;
  if (!a_nan && a != b) return largest ? a > b : a < b;
  return ia < ib;
}

// One work-item per row: k passes, each taking the best element ranked after the previous pick
// (the order is total, so no element is picked twice). Values are copied as bytes.
kernel void top_k_rows(global const uchar* x, ulong x_offset, int dtype, int element,
                       global uchar* values, ulong values_offset, global uchar* indices,
                       ulong indices_offset, long rows, long length, long k, int largest) {
  const long row = get_global_id(0);
  if (row >= rows) return;
  global const uchar* in = AT(x, x_offset);
  const long base = row * length;
  float previous = 0.0f;
  long previous_index = -1;
  for (long j = 0; j < k; ++j) {
    long best_index = -1;
    float best = 0.0f;
    for (long i = 0; i < length; ++i) {
      const float v = load_f(in, dtype, base + i);
      if (previous_index >= 0 && !ranks_before(previous, previous_index, v, i, largest)) continue;
      if (best_index < 0 || ranks_before(v, i, best, best_index, largest)) {
        best = v;
        best_index = i;
      }
    }
    copy_element(in, base + best_index, AT(values, values_offset), row * k + j, element);
    ((global int*)AT(indices, indices_offset))[row * k + j] = (int)best_index;
    previous = best;
    previous_index = best_index;
  }
}
