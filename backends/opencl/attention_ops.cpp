// Lowering of attention: kernels/attention.cl, with the score scratch owned by the plan.
#include <cmath>

#include <fmt/format.h>

#include <porta/ops.hpp>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

SupportResult attention_supports(const Device&, const GraphState& g, const Node& n) {
  const auto* attrs = std::get_if<AttentionAttrs>(&n.attrs);
  if (attrs == nullptr)
    return SupportResult::no(fmt::format("{} without AttentionAttrs", label(n)));
  const std::size_t expected = attrs->kv_cache ? 6 : 3;
  if (n.inputs.size() != expected)
    return SupportResult::no(fmt::format("{} with {} inputs", label(n), n.inputs.size()));
  if (auto r = need_float_storage(g, n, 0, attrs->kv_cache ? 5 : 3); !r.supported) return r;
  const DType t = g.input_of(n, 0).dtype;
  for (std::size_t i = 1; i < (attrs->kv_cache ? 5u : 3u); ++i)
    if (g.input_of(n, i).dtype != t)
      return SupportResult::no(
          fmt::format("{}: q, k, v (and the caches) must share one dtype on opencl", label(n)));
  if (attrs->kv_cache && !is_index(g.input_of(n, 5).dtype))
    return SupportResult::no(fmt::format("{}: cache_len must be i32 or i64", label(n)));
  const Shape& q = g.input_of(n, 0).shape;
  const Shape& k = g.input_of(n, 1).shape;
  if (q.rank() != 3 || k.rank() != 3 || k[1] == 0 || q[1] % k[1] != 0)
    return SupportResult::no(
        fmt::format("{}: q and k must be [T, H, D] with Hq a multiple of Hkv", label(n)));
  return SupportResult::yes();
}

void attention_lower(Device& device, const GraphState& g, const Node& n, LoweredOp& op) {
  const auto& attrs = std::get<AttentionAttrs>(n.attrs);
  const Shape& q = g.input_of(n, 0).shape;
  const Shape& k = g.input_of(n, 1).shape;
  const Shape& v = g.input_of(n, 2).shape;
  const cl_long q_tokens = q[0], q_heads = q[1], kv_tokens = k[0], kv_heads = k[1], key_dim = q[2],
                value_dim = v[2];
  const cl_long capacity = attrs.kv_cache ? g.input_of(n, 3).shape[0] : 0;
  const cl_long max_keys = capacity + kv_tokens;
  const float scale = attrs.scale != 0.0f
                          ? attrs.scale
                          : static_cast<float>(1.0 / std::sqrt(static_cast<double>(key_dim)));
  const auto items = static_cast<std::size_t>(q_tokens * q_heads);
  op.buffers.push_back(allocate_buffer(
      device,
      std::max<std::size_t>(1, items * static_cast<std::size_t>(max_keys)) * sizeof(float)));
  const ClBuffer* scores = op.buffers.back().get();
  op.kernels.push_back(device.kernel("attention_decode"));
  const cl_kernel kernel = op.kernels.back().get();
  const std::size_t local = device.work_group_size(kernel, 128);
  const cl_int dtype = dtype_code(g.input_of(n, 0).dtype);
  const bool cache = attrs.kv_cache;
  const cl_int len_dtype = cache ? dtype_code(g.input_of(n, 5).dtype) : dtype_code(DType::I32);
  const cl_int causal = attrs.causal ? 1 : 0;
  const std::vector<ValueId> in(n.inputs.begin(), n.inputs.end());
  const ValueId y = n.outputs[0];
  // cache_len must lie in [0, capacity]; the kernel clamps it, the check reports it.
  IndexCheckLaunch check;
  if (cache)
    check = add_index_check(device, op, g.input_of(n, 5).dtype, 1, false, 0, capacity + 1,
                            [where = label(n), capacity](const CheckRecord& r) {
                              return fmt::format(
                                  "{}: cache_len {} is outside [0, {}] (the cache holds {} "
                                  "positions)",
                                  where, r.value, capacity, capacity);
                            });
  op.run = [=](const Bindings& b, Enqueuer& qu) {
    if (cache) check.enqueue(b, qu, b.at(in[5]));
    const DeviceArg kc = cache ? b.at(in[3]) : b.at(in[1]);
    const DeviceArg vc = cache ? b.at(in[4]) : b.at(in[2]);
    const DeviceArg len = cache ? b.at(in[5]) : b.at(in[0]);
    set_args(kernel, b.at(in[0]), b.at(in[1]), b.at(in[2]), kc, vc, len, len_dtype,
             cl_int{cache ? 1 : 0}, dtype, scores->mem(), b.at(y), q_tokens, q_heads, kv_tokens,
             kv_heads, key_dim, value_dim, capacity, max_keys, causal, scale,
             LocalBytes{local * sizeof(float)});
    qu.launch(kernel, {items * local}, {local}, "attention_decode");
  };
}

}  // namespace porta::detail::opencl
