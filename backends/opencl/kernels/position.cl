// Position kernels: rope (angles in double, as the reference computes them: an f32 angle at
// position 5000 is already off by 1e-4 radians) and the embedding gather.

#ifdef PORTA_HAS_FP64
// x is [T, H, D]; one work-item per (token, head, pair). inv_freq holds the r/2 frequencies with
// the scaling applied (computed on the host in double); dims >= rotary_dim are copied.
kernel void rope_pairs(global const uchar* x, ulong x_offset, int dtype, global const uchar* pos,
                       ulong pos_offset, int pos_dtype, global const double* inv_freq,
                       global uchar* out, ulong out_offset, long tokens, long heads,
                       long head_dim, long half_rotary, int neox, double position_divisor,
                       double magnitude) {
  const long id = get_global_id(0);
  const long pairs = head_dim / 2;  // every pair of the head, rotated or passed through
  if (id >= tokens * heads * pairs) return;
  const long i = id % pairs;
  const long th = id / pairs;
  const long t = th / heads;
  const long base = th * head_dim;
  global const uchar* in = AT(x, x_offset);
  global uchar* y = AT(out, out_offset);
  if (i >= half_rotary) {
    // Pass-through dims: pair i (>= r/2) covers dims 2i and 2i+1 past the rotary part.
    const long first = 2 * half_rotary + 2 * (i - half_rotary);
    for (long d = first; d < first + 2 && d < head_dim; ++d)
      store_f(y, dtype, base + d, load_f(in, dtype, base + d));
    if (i == pairs - 1 && (head_dim & 1))
      store_f(y, dtype, base + head_dim - 1, load_f(in, dtype, base + head_dim - 1));
    return;
  }
  const double position = (double)load_index(AT(pos, pos_offset), pos_dtype, t) / position_divisor;
  const double angle = position * inv_freq[i];
  const double c = cos(angle) * magnitude;
  const double s = sin(angle) * magnitude;
  const long first = neox ? i : 2 * i;
  const long second = neox ? i + half_rotary : 2 * i + 1;
  const double x0 = load_f(in, dtype, base + first);
  const double x1 = load_f(in, dtype, base + second);
  store_f(y, dtype, base + first, (float)(x0 * c - x1 * s));
  store_f(y, dtype, base + second, (float)(x1 * c + x0 * s));
  if (i == pairs - 1 && (head_dim & 1))
    store_f(y, dtype, base + head_dim - 1, load_f(in, dtype, base + head_dim - 1));
}
#endif

// out[r, :] = table[ids[r], :], bytes copied. An id outside the table gives a zero row and never
// reads out of bounds; the op checks the ids first (checks.cl) and the backend raises the error.
kernel void embedding_gather(global const uchar* table, ulong table_offset, int element,
                             global const uchar* ids, ulong ids_offset, int ids_dtype,
                             global uchar* out, ulong out_offset, long count, long hidden,
                             long vocabulary) {
  const long id = get_global_id(0);
  if (id >= count * hidden) return;
  const long r = id / hidden, h = id % hidden;
  const long row = load_index(AT(ids, ids_offset), ids_dtype, r);
  if (row < 0 || row >= vocabulary) {
    global uchar* y = AT(out, out_offset);
    for (int b = 0; b < element; ++b) y[id * element + b] = 0;
    return;
  }
  copy_element(AT(table, table_offset), row * hidden + h, AT(out, out_offset), id, element);
}
