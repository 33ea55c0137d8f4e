// Helpers for the MoE tests: run a router graph through the public API and read its outputs, and
// independent closed-form helpers (sigmoid, softmax) the expectations are computed with.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <porta/porta.hpp>

namespace porta_moe_test {

inline std::vector<std::int32_t> ints(const porta::Tensor& t) {
  const auto* p = t.data_as<std::int32_t>();
  return std::vector<std::int32_t>(p, p + t.numel());
}

// Tensor::to_f32, except that an empty tensor (T = 0) never reaches convert() with a null pointer.
inline std::vector<float> floats(const porta::Tensor& t) {
  return t.numel() == 0 ? std::vector<float>{} : t.to_f32();
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The nine router outputs, read back from a run.
struct RouterOutputs {
  std::vector<std::int32_t> ids, counts, offsets, perm, inv, dropped, nonfinite;
  std::vector<float> weights, mean_score;
};

// Inputs of the router besides the logits, and where to run it.
struct RouterExtras {
  std::vector<float> bias;                 // passed when attrs.use_bias
  std::vector<std::int32_t> valid;         // passed when attrs.use_valid
  std::vector<std::int32_t> token_ids;     // hash mode
  std::vector<std::int32_t> hash_table;    // hash mode, [V, K] row-major
  porta::DType dtype = porta::DType::F32;  // of the logits
  std::string backend = "reference";
};

// Builds `logits [tokens, E]` (in extras.dtype) -> moe_router -> every output, compiles it for
// extras.backend and runs it.
inline RouterOutputs run_router(const std::vector<float>& logits, std::int64_t tokens,
                                const porta::moe::RouterAttrs& attrs, const RouterExtras& extras) {
  porta::Graph g;
  const auto dtype = extras.dtype;
  porta::MoeRouterInputs in;
  in.logits = g.input("logits", {tokens, attrs.num_experts}, dtype);
  // An empty batch is built with zeros(): from_f32 would hand convert() a null pointer.
  std::map<std::string, porta::Tensor> inputs{
      {"logits", logits.empty()
                     ? porta::Tensor::zeros({tokens, attrs.num_experts}, dtype)
                     : porta::Tensor::from_f32({tokens, attrs.num_experts}, dtype, logits)}};
  const auto int_input = [&](const char* name, porta::Shape shape,
                             const std::vector<std::int32_t>& values) {
    inputs[name] = values.empty() ? porta::Tensor::zeros(shape, porta::DType::I32)
                                  : porta::Tensor::from_vector<std::int32_t>(shape, values);
    return g.input(name, shape, porta::DType::I32);
  };
  if (attrs.use_bias) {
    in.bias = g.input("bias", {attrs.num_experts}, porta::DType::F32);
    inputs["bias"] = porta::Tensor::from_vector<float>({attrs.num_experts}, extras.bias);
  }
  if (attrs.use_valid) in.valid = int_input("valid", {tokens}, extras.valid);
  if (attrs.mode == porta::moe::Mode::Hash) {
    in.token_ids = int_input("token_ids", {tokens}, extras.token_ids);
    const auto rows = static_cast<std::int64_t>(extras.hash_table.size()) / attrs.top_k;
    in.hash_table = int_input("hash_table", {rows, attrs.top_k}, extras.hash_table);
  }
  const auto r = g.moe_router(in, attrs);
  g.output("ids", r.ids);
  g.output("weights", r.weights);
  g.output("counts", r.counts);
  g.output("offsets", r.offsets);
  g.output("perm", r.perm);
  g.output("inv", r.inv);
  g.output("dropped", r.dropped);
  g.output("nonfinite", r.nonfinite);
  g.output("mean_score", r.mean_score);
  porta::CompileOptions options;
  options.backend = extras.backend;
  options.fallback = "";
  auto exe = porta::compile(g, options);
  auto out = exe.run(inputs);
  RouterOutputs o;
  o.ids = ints(out.at("ids"));
  o.weights = floats(out.at("weights"));
  o.counts = ints(out.at("counts"));
  o.offsets = ints(out.at("offsets"));
  o.perm = ints(out.at("perm"));
  o.inv = ints(out.at("inv"));
  o.dropped = ints(out.at("dropped"));
  o.nonfinite = ints(out.at("nonfinite"));
  o.mean_score = floats(out.at("mean_score"));
  return o;
}

// The same on the reference backend with just a bias.
inline RouterOutputs run_router(const std::vector<float>& logits, std::int64_t tokens,
                                const porta::moe::RouterAttrs& attrs,
                                const std::vector<float>& bias = {},
                                porta::DType dtype = porta::DType::F32) {
  RouterExtras extras;
  extras.bias = bias;
  extras.dtype = dtype;
  return run_router(logits, tokens, attrs, extras);
}

inline porta::moe::RouterAttrs router(std::int64_t experts, std::int64_t top_k,
                                      porta::moe::Score score) {
  porta::moe::RouterAttrs a;
  a.num_experts = experts;
  a.top_k = top_k;
  a.score = score;
  return a;
}

}  // namespace porta_moe_test
