// Elementwise kernels: binary ops with NumPy broadcasting, the activations, swiglu, casts.

#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3

// shape: [rank, dims[rank], a_strides[rank], b_strides[rank]] (element strides, 0 = broadcast).
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
  float r;
  if (op == OP_ADD)
    r = x + y;
  else if (op == OP_SUB)
    r = x - y;
  else if (op == OP_MUL)
    r = x * y;
  else
    r = x / y;
  store_f(AT(out, out_offset), out_dtype, i, r);
}

#define UNARY_SILU 0
#define UNARY_GELU 1
#define UNARY_GELU_TANH 2
#define UNARY_SIGMOID 3
#define UNARY_EXP 4

kernel void unary(int op, global const uchar* x, ulong x_offset, int x_dtype, global uchar* out,
                  ulong out_offset, int out_dtype, long count) {
  const long i = get_global_id(0);
  if (i >= count) return;
  const float v = load_f(AT(x, x_offset), x_dtype, i);
  float r;
  if (op == UNARY_SILU) {
    r = v * sigmoid_f(v);
  } else if (op == UNARY_GELU) {
    r = 0.5f * v * (1.0f + erf(v * 0.70710678118654752f));
  } else if (op == UNARY_GELU_TANH) {
    const float k = 0.79788456080286536f;  // sqrt(2 / pi)
    r = 0.5f * v * (1.0f + tanh(k * (v + 0.044715f * v * v * v)));
  } else if (op == UNARY_SIGMOID) {
    r = sigmoid_f(v);
  } else {
    r = exp(v);
  }
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
