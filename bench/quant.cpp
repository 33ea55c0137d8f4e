// Quantized MoE experts on the cpu backend at DeepSeek-V2-Lite dimensions (hidden 2048, 64 routed
// experts of width 1408, top-6), side by side in one run (issue #15's acceptance ratios):
// - decode (T = 1): bf16 weights, W8A8 (int8 per channel, dynamic int8 activations) and W4A16
//   (int4 g32, bf16 scales); each against its bandwidth bound, the bytes of the six routed experts'
//   weights (data + scales, as stored) over the machine's streaming read bandwidth, a different
//   routing each repetition so that the weights come from memory, as in a model's decode;
// - prefill (T = 512): the f32 layer against the W8A8 layer, GFLOP/s of the routed experts.
// Medians of interleaved repetitions (timing.hpp).
//
//   porta-bench-quant [--reps N] [--experts E] [--prefill-tokens T] (T = 0: decode only)
//
// Memory: f32 weights 2.2 GB (prefill only, dropped before the quantized ones are made), bf16
// 1.1 GB, int8 0.56 GB, int4 0.29 GB.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <porta/porta.hpp>

#include "timing.hpp"

namespace {

using porta::DType;
using porta::Tensor;

constexpr std::int64_t kHidden = 2048, kInter = 1408, kTopK = 6;

struct Lcg {
  std::uint64_t state;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return 0.05f * (static_cast<float>(state >> 40) / static_cast<float>(1u << 24) * 2.0f - 1.0f);
  }
};

Tensor random_matrix(std::int64_t rows, std::int64_t cols, DType dtype, std::uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(rows * cols));
  Lcg rng{seed};
  for (auto& x : v) x = rng.next();
  return Tensor::from_f32({rows, cols}, dtype, v);
}

// One projection of every expert, [E, N, K]: plain (stacked per-expert tensors) or quantized.
Tensor plain_stack(std::int64_t experts, std::int64_t n, std::int64_t k, DType dtype,
                   std::uint64_t seed) {
  std::vector<Tensor> parts;
  for (std::int64_t e = 0; e < experts; ++e)
    parts.push_back(random_matrix(n, k, dtype, seed * 1000 + static_cast<std::uint64_t>(e)));
  return Tensor::stack_views(parts);
}

porta::QuantizedTensor quant_stack(std::int64_t experts, std::int64_t n, std::int64_t k,
                                   const porta::QuantScheme& s, std::uint64_t seed) {
  std::vector<Tensor> data, scale;
  for (std::int64_t e = 0; e < experts; ++e) {
    auto q = porta::quantize(
        random_matrix(n, k, DType::F32, seed * 1000 + static_cast<std::uint64_t>(e)), s);
    data.push_back(q.data);
    scale.push_back(q.scale);
  }
  porta::QuantizedTensor q;
  q.scheme = s;
  q.shape = {experts, n, k};
  q.data = Tensor::stack_views(data);
  q.scale = Tensor::stack_views(scale);
  return q;
}

// Routing tables for T tokens, each to K distinct random experts, rows sorted by expert.
std::map<std::string, Tensor> routing(std::int64_t tokens, std::int64_t experts,
                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> ids, order(static_cast<std::size_t>(experts));
  std::iota(order.begin(), order.end(), 0);
  for (std::int64_t t = 0; t < tokens; ++t) {
    std::shuffle(order.begin(), order.end(), rng);
    ids.insert(ids.end(), order.begin(), order.begin() + kTopK);
  }
  std::vector<std::int32_t> offsets(static_cast<std::size_t>(experts + 1), 0);
  for (auto id : ids) ++offsets[static_cast<std::size_t>(id + 1)];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<std::int32_t> perm(ids.size()), inv(ids.size());
  auto cursor = offsets;
  for (std::size_t a = 0; a < ids.size(); ++a) {
    const auto slot = cursor[static_cast<std::size_t>(ids[a])]++;
    perm[static_cast<std::size_t>(slot)] = static_cast<std::int32_t>(a);
    inv[a] = slot;
  }
  const auto tk = static_cast<std::int64_t>(ids.size());
  std::vector<float> w(ids.size(), 1.0f / kTopK);
  std::vector<float> x(static_cast<std::size_t>(tokens * kHidden));
  Lcg lcg{seed};
  for (auto& v : x) v = 20.0f * lcg.next();
  return {{"x", Tensor::from_vector<float>({tokens, kHidden}, x)},
          {"rw", Tensor::from_vector<float>({tokens, kTopK}, w)},
          {"offsets", Tensor::from_vector<std::int32_t>({experts + 1}, offsets)},
          {"perm", Tensor::from_vector<std::int32_t>({tk}, perm)},
          {"inv", Tensor::from_vector<std::int32_t>({tk}, inv)}};
}

struct Layer {
  porta::Graph graph;
  porta::MoeRoute route;
  porta::Value x;
};

Layer layer_inputs(std::int64_t tokens, std::int64_t experts) {
  Layer l;
  l.x = l.graph.input("x", {tokens, kHidden}, DType::F32);
  l.route.weights = l.graph.input("rw", {tokens, kTopK}, DType::F32);
  l.route.offsets = l.graph.input("offsets", {experts + 1}, DType::I32);
  l.route.perm = l.graph.input("perm", {tokens * kTopK}, DType::I32);
  l.route.inv = l.graph.input("inv", {tokens * kTopK}, DType::I32);
  return l;
}

porta::Executable plain_layer(std::int64_t tokens, std::int64_t experts, DType dtype) {
  Layer l = layer_inputs(tokens, experts);
  porta::MoeExpertWeights w{
      l.graph.weight("gate", plain_stack(experts, kInter, kHidden, dtype, 1)),
      l.graph.weight("up", plain_stack(experts, kInter, kHidden, dtype, 2)),
      l.graph.weight("down", plain_stack(experts, kHidden, kInter, dtype, 3))};
  l.graph.output("y", l.graph.moe_experts(l.x, l.route, w));
  return porta::compile(l.graph, {.backend = "cpu", .fallback = ""});
}

// The executable and the bytes one expert's three matrices take.
std::pair<porta::Executable, double> quant_layer(std::int64_t tokens, std::int64_t experts,
                                                 const porta::QuantScheme& s,
                                                 porta::ActivationQuant act) {
  Layer l = layer_inputs(tokens, experts);
  auto gate = quant_stack(experts, kInter, kHidden, s, 1);
  auto up = quant_stack(experts, kInter, kHidden, s, 2);
  auto down = quant_stack(experts, kHidden, kInter, s, 3);
  const double bytes = static_cast<double>(gate.nbytes() + up.nbytes() + down.nbytes()) /
                       static_cast<double>(experts);
  porta::QuantMoeExpertWeights w{l.graph.weight("gate", gate), l.graph.weight("up", up),
                                 l.graph.weight("down", down)};
  l.graph.output("y", l.graph.moe_experts(l.x, l.route, w, act));
  return {porta::compile(l.graph, {.backend = "cpu", .fallback = ""}), bytes};
}

porta::QuantScheme scheme(porta::QuantFormat f, std::int64_t group, DType scale) {
  porta::QuantScheme s;
  s.format = f;
  s.group_k = group;
  s.scale_dtype = scale;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7;
  std::int64_t experts = 64, prefill = 512;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (flag == "--experts")
      experts = std::atoll(argv[i + 1]);
    else if (flag == "--prefill-tokens")
      prefill = std::atoll(argv[i + 1]);
    else {
      fmt::print(stderr, "unknown flag {}\n", flag);
      return 2;
    }
  }
  try {
    fmt::print("cpu: {}\n", porta::device_info("cpu").description);
    for (const auto& [key, value] : porta::device_info("cpu").properties)
      if (key == "quant_kernels" || key == "threads") fmt::print("  {}: {}\n", key, value);
    const double gbps = porta_bench::streaming_read_gbps();
    fmt::print("streaming read bandwidth: {:.1f} GB/s\n\n", gbps);

    // ---- prefill: f32 against W8A8 ----
    const double flops = 2.0 * static_cast<double>(prefill * kTopK) * 3.0 * kHidden * kInter;
    double t_f32 = 0, t_w8a8 = 0;
    if (prefill > 0) {
      const auto prefill_inputs = routing(prefill, experts, 7);
      auto f32 = plain_layer(prefill, experts, DType::F32);
      auto w8a8 = quant_layer(prefill, experts, scheme(porta::QuantFormat::Int8, 0, DType::F32),
                              porta::ActivationQuant::DynamicInt8)
                      .first;
      const auto t = porta_bench::interleaved_medians(
          std::max(3, reps / 2),
          {[&] { f32.run(prefill_inputs); }, [&] { w8a8.run(prefill_inputs); }});
      t_f32 = t[0];
      t_w8a8 = t[1];
    }
    if (prefill > 0)
      fmt::print(
          "prefill T={} routed experts: f32 {:.1f} ms ({:.1f} GFLOP/s), W8A8 {:.1f} ms "
          "({:.1f} GFLOP/s): W8A8/f32 = {:.2f}x (goal >= 1.3x: {})\n\n",
          prefill, t_f32 * 1e3, flops / t_f32 / 1e9, t_w8a8 * 1e3, flops / t_w8a8 / 1e9,
          t_f32 / t_w8a8, t_f32 / t_w8a8 >= 1.3 ? "holds" : "NOT MET");

    // ---- decode: bf16, W8A8, W4A16 g32 against their bandwidth bounds ----
    // A different routing every repetition (16 in turn, each six random experts): with one
    // routing the same six experts' weights (29-104 MB) stayed in a large L3 between
    // repetitions, and the ratios compared cache reads with a DRAM bound.
    std::vector<std::map<std::string, Tensor>> decode_inputs;
    for (std::uint64_t r = 0; r < 16; ++r) decode_inputs.push_back(routing(1, experts, 11 + r));
    std::size_t turn[3] = {0, 0, 0};
    auto next = [&](int i) -> const std::map<std::string, Tensor>& {
      return decode_inputs[turn[i]++ % decode_inputs.size()];
    };
    auto bf16 = plain_layer(1, experts, DType::BF16);
    const double bf16_bytes = 3.0 * kHidden * kInter * 2;
    auto [w8a8, w8a8_bytes] =
        quant_layer(1, experts, scheme(porta::QuantFormat::Int8, 0, DType::F32),
                    porta::ActivationQuant::DynamicInt8);
    auto [w4a16, w4a16_bytes] =
        quant_layer(1, experts, scheme(porta::QuantFormat::Int4, 32, DType::BF16),
                    porta::ActivationQuant::None);
    const auto t = porta_bench::interleaved_medians(
        reps * 4, {[&] { bf16.run(next(0)); }, [&] { w8a8.run(next(1)); },
                   [&] { w4a16.run(next(2)); }});
    const char* names[] = {"bf16", "W8A8", "W4A16 g32"};
    const double bytes[] = {bf16_bytes, w8a8_bytes, w4a16_bytes};
    const double goals[] = {0, 1.15, 1.3};
    fmt::print("decode T=1, six routed experts:\n");
    for (int i = 0; i < 3; ++i) {
      const double streamed = kTopK * bytes[i];
      const double bound = streamed / (gbps * 1e9);
      const double ratio = t[static_cast<std::size_t>(i)] / bound;
      fmt::print(
          "  {:<10} {:7.3f} ms  {:6.1f} MB read  bound {:7.3f} ms  ratio {:.2f}x{}  vs bf16 "
          "{:.2f}x faster\n",
          names[i], t[static_cast<std::size_t>(i)] * 1e3, streamed / 1e6, bound * 1e3, ratio,
          goals[i] > 0 ? fmt::format(" (goal <= {:.2f}x: {})", goals[i],
                                     ratio <= goals[i] ? "holds" : "NOT MET")
                       : std::string(),
          t[0] / t[static_cast<std::size_t>(i)]);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "porta-bench-quant: {}\n", e.what());
    return 1;
  }
  return 0;
}
