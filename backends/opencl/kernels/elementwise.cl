// Elementwise kernels: binary ops with NumPy broadcasting, the activations, swiglu, casts.

// shape: [rank, dims[rank], a_strides[rank], b_strides[rank]] (element strides, 0 = broadcast).
// op: an OpKind value (add, sub, mul or div).
kernel void binary_broadcast(int op, global const uchar* a, ulong a_offset, int a_dtype,
                             global const uchar* b, ulong b_offset, int b_dtype, global uchar* out,
                             ulong out_offset, int out_dtype, global const long* shape, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const int rank = (int)shape[0];
  long rest = i, ia = 0, ib = 0;
  for (int d = rank - 1; d >= 0; --d) {
    const long dim = shape[1 + d];
    const long c = rest % dim;
    rest /= dim;
    ia += c * shape[1 + rank + d];
    ib += c * shape[1 + 2 * rank + d];
  }
  const float x = load_f(AT(a, a_offset), a_dtype, ia);
  const float y = load_f(AT(b, b_offset), b_dtype, ib);
  float r = NAN;
  switch (op) {
    case PORTA_OP_Add: r = x + y; break;
    case PORTA_OP_Sub: r = x - y; break;
    case PORTA_OP_Mul: r = x * y; break;
    case PORTA_OP_Div: r = x / y; break;
  }
  store_f(AT(out, out_offset), out_dtype, i, r);
}

inline float gelu_erf_f(float v) { return 0.5f * v * (1.0f + erf(v * 0.70710678118654752f)); }

inline float gelu_tanh_f(float v) {
  const float k = 0.79788456080286536f;  // sqrt(2 / pi)
  return 0.5f * v * (1.0f + tanh(k * (v + 0.044715f * v * v * v)));
}

// op: an OpKind value; PORTA_CL_UNARY_CASES (the host's prelude) holds one case per line of
// unary_ops.def. The host launches this kernel only for ops of that table.
kernel void unary(int op, int variant, global const uchar* x, ulong x_offset, int x_dtype,
                  global uchar* out, ulong out_offset, int out_dtype, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const float v = load_f(AT(x, x_offset), x_dtype, i);
  float r = NAN;
  switch (op) { PORTA_CL_UNARY_CASES }
  store_f(AT(out, out_offset), out_dtype, i, r);
}

kernel void swiglu(global const uchar* gate, ulong gate_offset, global const uchar* up,
                   ulong up_offset, int dtype, global uchar* out, ulong out_offset, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const float g = load_f(AT(gate, gate_offset), dtype, i);
  const float u = load_f(AT(up, up_offset), dtype, i);
  store_f(AT(out, out_offset), dtype, i, g * sigmoid_f(g) * u);
}

// Float-to-float conversion (f32, f16, bf16 in any direction), rounding to nearest even.
kernel void convert(global const uchar* x, ulong x_offset, int x_dtype, global uchar* out,
                    ulong out_offset, int out_dtype, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  store_f(AT(out, out_offset), out_dtype, i, load_f(AT(x, x_offset), x_dtype, i));
}
