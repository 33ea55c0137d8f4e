// The MoE companions of the router: moe_permute (token rows grouped by expert, bytes copied; a
// padding entry gives a zero row) and moe_combine (each token's weighted expert outputs summed in
// f32 in ascending k, the fixed order the spec gives, so every backend can match bit for bit).
// Entries outside their valid range give zeros: a device kernel cannot raise the reference's error.

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

kernel void moe_combine_rows(global const uchar* yp, ulong yp_offset, int dtype,
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
  store_f(AT(out, out_offset), dtype, id, acc);
}
