// porta on one screen: describe a tiny Mixture-of-Experts-flavoured block as a Graph, compile it
// for a backend, run it, read the outputs and the per-op profile.
//
//   router: probs = softmax(x · W_router); (weights, experts) = top_k(probs, 2)
//   mixer:  hidden = silu(rms_norm(x, gamma) · W_up)
//
// Run: build/examples/porta_example_quickstart [backend]   (default "reference"; try "cpu")
#include <porta/porta.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace {

// Deterministic, varied values without a random generator.
porta::Tensor ramp(porta::Shape shape, float scale) {
  std::vector<float> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = scale * static_cast<float>(static_cast<int>((i * 37) % 17) - 8);
  }
  return porta::Tensor::from_vector(std::move(shape), values);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string backend = argc > 1 ? argv[1] : "reference";
  constexpr std::int64_t kTokens = 6, kHidden = 16, kExperts = 8, kTopK = 2, kFfn = 32;
  try {
    // 1. Describe: every call checks shapes and dtypes now, so a built graph is a valid graph.
    porta::Graph g;
    auto x = g.input("x", {kTokens, kHidden}, porta::DType::F32);
    auto router = g.weight("router", ramp({kHidden, kExperts}, 0.05f));
    auto probs = g.softmax(g.matmul(x, router));
    auto [weights, experts] = g.top_k(probs, kTopK);
    auto gamma = g.weight("gamma", ramp({kHidden}, 0.02f));
    auto up = g.weight("up", ramp({kHidden, kFfn}, 0.03f));
    auto hidden = g.silu(g.matmul(g.rms_norm(x, gamma), up));
    g.output("expert_weights", weights);
    g.output("expert_ids", experts);
    g.output("hidden", hidden);

    // 2. Compile once: placement, kernel choice and memory planning happen here.
    porta::Executable exe = porta::compile(g, {.backend = backend});

    // 3. Run as often as needed; only the inputs change.
    auto out = exe.run({{"x", ramp({kTokens, kHidden}, 0.1f)}});

    const porta::Tensor& ids = out.at("expert_ids");
    const porta::Tensor& w = out.at("expert_weights");
    std::printf("porta %s on '%s': %s -> %s, %s\n", PORTA_VERSION_STRING, backend.c_str(),
                out.at("hidden").description().c_str(), ids.description().c_str(),
                w.description().c_str());
    for (std::int64_t t = 0; t < kTokens; ++t) {
      std::printf("  token %lld -> experts", static_cast<long long>(t));
      for (std::int64_t k = 0; k < kTopK; ++k) {
        std::printf(" %d (%.3f)", static_cast<int>(ids.at_f32(t * kTopK + k)),
                    w.at_f32(t * kTopK + k));
      }
      std::printf("\n");
    }

    // 4. Where the time went, op by op.
    std::printf("\n%s", exe.profile().to_table().c_str());
    return 0;
  } catch (const porta::Error& error) {
    std::fprintf(stderr, "porta error (%s): %s\n",
                 std::string(porta::error_code_name(error.code())).c_str(), error.what());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
  }
  return 1;
}
