// The case registry of `porta bench`: what can be benchmarked, as families of named configurations.
//
// A case family (an op, the MoE layer, a model) builds a Graph and its inputs from a configuration
// (named sizes such as hidden=2048), a dtype and a token count. Each family lives in one file
// (bench_cases_<family>.cpp) and registers itself at start-up with a static CaseRegistrar, so
// adding a family touches no other file. Suites name a list of cases with the backends, token
// counts and dtypes to sweep them over; `make demo` runs the "demo" suite.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <porta/porta.hpp>

namespace porta::cli::bench {

// Named integer sizes of one configuration, e.g. {"hidden", 2048}, {"experts", 64}.
using Dims = std::map<std::string, std::int64_t>;

struct CaseConfig {
  std::string name;     // "v2-lite", "small", ...
  std::string summary;  // one line for --list and the table's header
  Dims dims;
};

struct CaseParams {
  DType dtype = DType::F32;  // the dtype the family applies it to (weights, or every operand)
  std::int64_t tokens = 1;   // rows, tokens or sequence length, as the family documents
  std::uint64_t seed = 7;
};

// Random tensors with a fixed seed, made once and shared by every token count of a case: the
// weights of a DeepSeek-V2-Lite layer are 1.1 GB in bf16, too much to regenerate per row.
class TensorCache {
 public:
  // Uniform in [-scale, scale), deterministic in (name, seed); shared when asked for again with
  // the same name, shape and dtype.
  Tensor random(const std::string& name, const Shape& shape, DType dtype, float scale);
  void clear() { tensors_.clear(); }
  void set_seed(std::uint64_t seed) { seed_ = seed; }

 private:
  std::uint64_t seed_ = 7;
  std::map<std::string, Tensor> tensors_;
};

// A graph ready to run: the inputs to pass to run() and the outputs to compare to the reference.
struct BuiltCase {
  Graph graph;
  std::map<std::string, Tensor> inputs;
  std::string description;  // sizes for this token count, e.g. "x f32[512, 2048]"
};

struct CaseFamily {
  std::string name;     // "matmul", "moe_layer", "model", ...
  std::string kind;     // "op", "layer" or "model"
  std::string summary;  // one line
  // What "tokens" means for this family, for the help text ("rows of A", "sequence length").
  std::string tokens_meaning = "tokens";
  std::vector<CaseConfig> configs;  // the first is the default
  // Configurations that cannot be listed up front, such as a checkpoint directory given as
  // "family:PATH": returns the config for a name not in `configs`, or nullopt if it is not one.
  std::function<std::optional<CaseConfig>(std::string_view)> resolve_config;
  std::function<BuiltCase(const CaseConfig&, const CaseParams&, TensorCache&)> build;
  // The first k rows of every output depend only on the first k rows (along axis 0) of every
  // input: row-wise ops, causal attention, the MoE layer without capacity limits. The reference
  // check of a long case may then run on a prefix of the same inputs (SweepOptions::check_tokens).
  bool prefix_independent = false;
};

// Registers a family at static-initialisation time: `const CaseRegistrar r{family()};` in its file.
struct CaseRegistrar {
  explicit CaseRegistrar(CaseFamily family);
};

// Every registered family, sorted by kind (ops, layers, models) then name.
std::vector<const CaseFamily*> case_families();
// The family of that name; throws porta::Error (NotFound) listing the known ones.
const CaseFamily& case_family(std::string_view name);

// One case to sweep: a family and one of its configurations, with dims overridden as asked.
struct CaseSpec {
  const CaseFamily* family = nullptr;
  CaseConfig config;
  std::string id() const;  // "moe_layer:v2-lite"
};

// "family" or "family:config"; throws porta::Error (NotFound) naming an unknown family or config
// and listing the known ones.
CaseSpec parse_case(std::string_view text);
// Sets dims of `spec`; throws porta::Error (InvalidArgument) naming a dim the family does not have
// or a value that is not positive.
void override_dims(CaseSpec& spec, const Dims& dims);

// A named sweep: the cases and, unless the command line says otherwise, backends, token counts,
// dtypes and repetitions.
struct Suite {
  std::string name;
  std::string summary;
  std::vector<std::string> cases;     // "family:config"
  std::vector<std::string> backends;  // empty: every available backend
  std::vector<std::int64_t> tokens;
  std::vector<std::string> dtypes;
  int repetitions = 5;
  double max_seconds = 5;  // per case and backend, after which repetitions stop early
};

std::vector<Suite> suites();
const Suite& suite(std::string_view name);

// Shared building blocks for family files.
Tensor random_input(TensorCache& cache, const std::string& name, const Shape& shape, DType dtype);
std::int64_t dim(const CaseConfig& config, const std::string& key);

// The sizes of one MoE feed-forward block, read from a config's dims: hidden, experts, inter,
// top_k, shared (shared experts, each of width inter) and the router preset to use.
struct MoeBlockDims {
  std::int64_t hidden = 0, experts = 0, inter = 0, top_k = 0, shared = 0;
  std::string router = "v2-lite";  // "v2-lite", "mixtral", "qwen2", "olmoe"
};
MoeBlockDims moe_block_dims(const CaseConfig& config, std::string router);
// rms_norm -> router -> routed (+ shared) experts -> residual add, weights named under `prefix`
// in `weight_dtype`, activations f32. Returns x + moe(norm(x)).
Value moe_block(Graph& g, Value x, const MoeBlockDims& d, DType weight_dtype, TensorCache& cache,
                const std::string& prefix);

}  // namespace porta::cli::bench
