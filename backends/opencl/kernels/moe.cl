// The MoE companions of the router: moe_permute (token rows grouped by expert, bytes copied; a
// padding entry gives a zero row) and moe_combine (each token's weighted expert outputs summed in
// f32 in ascending k, the fixed order the spec gives, so every backend can match bit for bit).
// Entries outside their valid range give zeros, so a bad table never reads out of bounds; the op
// checks its tables first (checks.cl) and the backend raises the reference's error after the run.

kernel void moe_permute_rows(global const uchar* x, ulong x_offset, int element,
                             global const uchar* perm, ulong perm_offset, global uchar* out,
                             ulong out_offset, long rows, long hidden, long assignments,
                             long top_k) {
  const long id = get_global_id(0);
  if (id >= rows * hidden) return;
  const long i = id / hidden, j = id % hidden;
  const long p = ((global const int*)AT(perm, perm_offset))[i];
  global uchar* y = AT(out, out_offset);
  if (p < 0 || p >= assignments) {
    for (int b = 0; b < element; ++b) y[id * element + b] = 0;
    return;
  }
  copy_element(AT(x, x_offset), (p / top_k) * hidden + j, y, id, element);
}

kernel void moe_combine_rows(global const uchar* yp, ulong yp_offset, int dtype, int out_dtype,
                             global const uchar* weights, ulong weights_offset,
                             global const uchar* inv, ulong inv_offset, global uchar* out,
                             ulong out_offset, long tokens, long top_k, long hidden,
                             long yp_rows) {
  const long id = get_global_id(0);
  if (id >= tokens * hidden) return;
  const long t = id / hidden, j = id % hidden;
  global const float* w = (global const float*)AT(weights, weights_offset);
  global const int* rows = (global const int*)AT(inv, inv_offset);
  float acc = 0.0f;
  for (long k = 0; k < top_k; ++k) {
    const long a = t * top_k + k;
    const long r = rows[a];
    if (r < 0 || r >= yp_rows) continue;  // dropped for capacity
    const float term = w[a] * load_f(AT(yp, yp_offset), dtype, r * hidden + j);
    acc += term;
  }
  store_f(AT(out, out_offset), out_dtype, id, acc);
}

// moe_experts' last step with shared experts: out = routed + g * shared, g = sigmoid(logit[t])
// when sigmoid-gated, else 1; the shared term rounded to f32 first, as the reference adds it.
kernel void experts_finish(global const float* routed, global const float* shared,
                           global const float* logit, int gated, global uchar* out,
                           ulong out_offset, int out_dtype, long tokens, long hidden) {
  const long id = get_global_id(0);
  if (id >= tokens * hidden) return;
  float term = shared[id];
  if (gated) {
#ifdef PORTA_HAS_FP64
    const double factor = 1.0 / (1.0 + exp(-(double)logit[id / hidden]));
    term = (float)(factor * (double)term);
#else
    term = sigmoid_f(logit[id / hidden]) * term;
#endif
  }
  store_f(AT(out, out_offset), out_dtype, id, routed[id] + term);
}
