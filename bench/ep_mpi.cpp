// Expert parallelism on this machine's shared memory (docs/expert-parallel.md), under mpirun:
//   mpirun --oversubscribe --allow-run-as-root --mca btl self,vader -np N porta-bench-ep-mpi all-to-all
//     all_to_all latency and bandwidth against the bytes each rank sends to each peer
//   mpirun ... -np N porta-bench-ep-mpi moe-layer [reference|cpu]
//     the expert-parallel MoE layer's exchange (T = 512) with N ranks: time in the all_to_alls
//     against time in the local experts (the reference backend's grouped GEMM, or the cpu
//     backend's grouped_matmul kernels), medians
//   mpirun ... -np N porta-bench-ep-mpi model-rss DIR [BACKEND]
//     each rank loads DIR's checkpoint with its contiguous share of every MoE layer's experts, runs
//     one 256-token forward pass on BACKEND (default cpu), and reports its resident memory (peak,
//     file-backed: the weights it mapped and touched, anonymous) next to the shared weights plus
//     its share of the experts. Without mpirun: the same for one process holding every expert.
// Rank 0 prints; every figure is the median over repetitions of the slowest rank.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include <fmt/format.h>

#include <porta/comm.hpp>
#include <porta/expert_parallel.hpp>
#include <porta/model/model.hpp>
#include <porta/porta.hpp>

#include "comm/expert_dispatch.hpp"
#include "reference/moe_internal.hpp"
#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;
using porta_bench::seconds_since;

double slowest(porta::Communicator& comm, double seconds) {
  std::vector<float> v{static_cast<float>(seconds)};
  std::vector<float> all(static_cast<std::size_t>(comm.size()));
  comm.all_gather(v.data(), sizeof(float), all.data(),
                  std::vector<std::int64_t>(all.size(), sizeof(float)));
  return *std::max_element(all.begin(), all.end());
}

void all_to_all(porta::Communicator& comm) {
  const auto n = static_cast<std::size_t>(comm.size());
  if (comm.rank() == 0)
    fmt::print("all_to_all, {} ranks (shared memory): bytes per peer, median latency, bandwidth "
               "(bytes a rank sends to its peers / time)\n{:>10} {:>12} {:>12}\n",
               n, "bytes", "latency us", "GB/s");
  for (std::int64_t bytes = 8; bytes <= (std::int64_t{4} << 20); bytes *= 8) {
    std::vector<char> send(static_cast<std::size_t>(bytes) * n, 1), recv(send.size());
    const std::vector<std::int64_t> counts(n, bytes);
    const int reps = bytes >= (1 << 20) ? 10 : 50;
    std::vector<double> times;
    for (int r = 0; r < reps + 2; ++r) {
      comm.barrier();
      const auto start = Clock::now();
      comm.all_to_all(send.data(), counts, recv.data(), counts);
      const double t = slowest(comm, seconds_since(start));
      if (r >= 2) times.push_back(t);
    }
    const double t = median(times);
    const double sent = static_cast<double>(bytes) * static_cast<double>(n - 1);
    if (comm.rank() == 0)
      fmt::print("{:>10} {:>12.1f} {:>12.3f}\n", bytes, t * 1e6, sent / t / 1e9);
  }
}

std::vector<float> random_values(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void moe_layer(porta::Communicator& comm, const std::string& backend) {
  constexpr std::int64_t T = 512, H = 512, I = 256, E = 16, K = 4;
  const auto n = comm.size();
  const auto placement = porta::ep::contiguous_placement(E, n);
  // A routing every rank shares: token t's k-th expert (t·7 + k·5) mod E, distinct per token.
  std::vector<std::int64_t> counts(E, 0), offsets(E + 1, 0), perm(T * K);
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t k = 0; k < K; ++k) ++counts[static_cast<std::size_t>((t * 7 + k * 5) % E)];
  for (std::int64_t e = 0; e < E; ++e) offsets[e + 1] = offsets[e] + counts[e];
  std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t k = 0; k < K; ++k)
      perm[static_cast<std::size_t>(fill[(t * 7 + k * 5) % E]++)] = t * K + k;
  const auto x = random_values(T * H, 1);
  const auto& mine = placement.rank_experts[static_cast<std::size_t>(comm.rank())];
  const auto slots = static_cast<std::int64_t>(mine.size());
  const auto w_gate = random_values(static_cast<std::size_t>(slots * I * H), 2);
  const auto w_up = random_values(static_cast<std::size_t>(slots * I * H), 3);
  const auto w_down = random_values(static_cast<std::size_t>(slots * H * I), 4);
  namespace ref = porta::detail::reference;
  // The cpu backend's grouped GEMMs, compiled on the first (warm-up) call: the routing is fixed,
  // so every call receives the same rows.
  std::optional<porta::Executable> cpu_experts;
  const porta::detail::ep::LocalExperts local =
      [&](const float* rows, std::int64_t count, std::span<const std::int64_t> at, float* out) {
        if (backend == "cpu") {
          if (!cpu_experts) {
            porta::Graph g;
            const auto view = [](const std::vector<float>& v, porta::Shape s) {
              return porta::Tensor::view(const_cast<float*>(v.data()), s, porta::DType::F32);
            };
            auto r = g.input("rows", {count, H}, porta::DType::F32);
            auto o = g.input("offsets", {slots + 1}, porta::DType::I32);
            auto gate = g.grouped_matmul(r, g.weight("gate", view(w_gate, {slots, I, H})), o);
            auto up = g.grouped_matmul(r, g.weight("up", view(w_up, {slots, I, H})), o);
            g.output("y", g.grouped_matmul(g.swiglu(gate, up),
                                           g.weight("down", view(w_down, {slots, H, I})), o));
            cpu_experts = porta::compile(g, {.backend = "cpu", .fallback = ""});
          }
          const std::vector<std::int32_t> offsets32(at.begin(), at.end());
          auto y = cpu_experts->run(
              {{"rows", porta::Tensor::view(const_cast<float*>(rows), {count, H},
                                            porta::DType::F32)},
               {"offsets", porta::Tensor::from_vector<std::int32_t>({slots + 1}, offsets32)}});
          std::copy_n(static_cast<const float*>(y["y"].data()), count * H, out);
          return;
        }
        const auto g = ref::grouped_matmul_rows(rows, count, H, w_gate.data(), slots, I, at);
        const auto u = ref::grouped_matmul_rows(rows, count, H, w_up.data(), slots, I, at);
        const auto a = ref::swiglu_values(g, u);
        const auto d = ref::grouped_matmul_rows(a.data(), count, I, w_down.data(), slots, H, at);
        std::copy(d.begin(), d.end(), out);
      };
  const porta::detail::ep::DispatchInput in{&placement, offsets, perm, T, K, H, x.data()};
  std::vector<double> total, exchange, compute;
  for (int r = 0; r < (backend == "cpu" ? 11 : 4); ++r) {
    porta::detail::ep::DispatchStats stats;
    comm.barrier();
    const auto start = Clock::now();
    (void)porta::detail::ep::dispatch_to_experts(comm, in, local, &stats);
    const double t = slowest(comm, seconds_since(start));
    const double x_us = slowest(comm, stats.exchange_us * 1e-6);
    const double c_us = slowest(comm, stats.compute_us * 1e-6);
    if (r == 0) continue;  // warm-up
    total.push_back(t), exchange.push_back(x_us), compute.push_back(c_us);
  }
  if (comm.rank() == 0)
    fmt::print("moe layer T={} H={} I={} E={} K={}, {} rank(s), {} experts: {:.1f} ms per layer, "
               "all_to_all {:.1f} ms ({:.1f} %), local experts {:.1f} ms (slowest rank, medians)\n",
               T, H, I, E, K, n, backend, median(total) * 1e3, median(exchange) * 1e3,
               100 * median(exchange) / median(total), median(compute) * 1e3);
}

// A field of /proc/self/status in bytes ("VmHWM", "RssFile", "RssAnon"; the file says kB).
double status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) * 1024;
  return -1;
}

void model_rss(const std::shared_ptr<porta::Communicator>& comm_ptr, const std::string& dir,
               const std::string& backend) {
  porta::Communicator& comm = *comm_ptr;
  // Before any weight is mapped: the program and its libraries (oneDNN's code is most of it).
  const double program = status_bytes("RssFile");
  namespace model = porta::model;
  const model::ModelConfig config = model::load_config(dir);
  model::LoadOptions load;
  if (comm.size() > 1) {
    load.ep_rank = comm.rank();
    load.ep_placement.emplace();
    for (std::int64_t l = 0; l < config.num_layers; ++l)
      if (config.is_moe_layer(l))
        load.ep_placement->layers[l] = porta::ep::contiguous_placement(config.num_experts,
                                                                       comm.size());
  }
  const auto m = model::Model::load(dir, load);
  // The routed experts this rank holds: the stacked [slots, ...] tensors of every MoE layer.
  double experts = 0;
  for (std::int64_t l = 0; l < config.num_layers; ++l)
    if (config.is_moe_layer(l))
      for (const char* w : {"gate", "up", "down"})
        experts += static_cast<double>(
            m.weight(fmt::format("model.layers.{}.moe.experts.{}", l, w)).nbytes());
  const double shared = static_cast<double>(m.weight_bytes()) - experts;
  // Pages of the embedding table are touched only for the ids looked up.
  const auto embedding = static_cast<double>(m.weight("model.embed_tokens.weight").nbytes());
  // Enough tokens that the router sends rows to every expert, so that every expert's pages are
  // touched (an idle expert's never are).
  const std::int64_t tokens = 256;
  const auto graph = m.build({.tokens = tokens, .all_logits = false});
  auto exe = porta::compile(graph, {.backend = backend, .comm = comm_ptr});
  std::vector<std::int32_t> ids(tokens), positions(tokens);
  for (std::int64_t t = 0; t < tokens; ++t)
    ids[static_cast<std::size_t>(t)] = static_cast<std::int32_t>((t * 7919) % config.vocab_size),
    positions[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(t);
  (void)exe.run({{model::kIdsInput, porta::Tensor::from_vector<std::int32_t>({tokens}, ids)},
                 {model::kPositionsInput,
                  porta::Tensor::from_vector<std::int32_t>({tokens}, positions)}});
  const std::vector<double> mine{shared,  embedding, experts, status_bytes("VmHWM"),
                                 program, status_bytes("RssFile"), status_bytes("RssAnon")};
  const auto bytes = static_cast<std::int64_t>(mine.size() * sizeof(double));
  std::vector<double> all(mine.size() * static_cast<std::size_t>(comm.size()));
  comm.all_gather(mine.data(), bytes, all.data(),
                  std::vector<std::int64_t>(static_cast<std::size_t>(comm.size()), bytes));
  if (comm.rank() != 0) return;
  const auto mib = [](double b) { return b / (1 << 20); };
  fmt::print("{}: {} rank(s), {} backend, one {}-token forward pass; MiB (shared: every weight "
             "but the routed experts, of which the embedding table; RssFile before loading: the program)"
             "\n{:>4} {:>8} {:>9} {:>9} {:>15} {:>9} {:>15} {:>9} {:>9}\n",
             dir, comm.size(), backend, tokens, "rank", "shared", "embedding", "experts",
             "shared+experts", "peak RSS", "RssFile before", "RssFile", "RssAnon");
  for (int r = 0; r < comm.size(); ++r) {
    const double* v = all.data() + static_cast<std::size_t>(r) * mine.size();
    fmt::print("{:>4} {:>8.0f} {:>9.0f} {:>9.0f} {:>15.0f} {:>9.0f} {:>15.0f} {:>9.0f} {:>9.0f}\n",
               r, mib(v[0]), mib(v[1]), mib(v[2]), mib(v[0] + v[2]), mib(v[3]), mib(v[4]),
               mib(v[5]), mib(v[6]));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "all-to-all" && mode != "moe-layer" && !(mode == "model-rss" && argc > 2)) {
    std::fprintf(stderr,
                 "usage: mpirun -np N %s all-to-all|moe-layer [reference|cpu]|model-rss DIR "
                 "[BACKEND]\n",
                 argv[0]);
    return 2;
  }
  try {
    auto comm = porta::launched_by_mpi() ? porta::mpi_world() : porta::single_process_communicator();
    if (mode == "all-to-all")
      all_to_all(*comm);
    else if (mode == "moe-layer")
      moe_layer(*comm, argc > 2 ? argv[2] : "reference");
    else
      model_rss(comm, argv[2], argc > 3 ? argv[3] : "cpu");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
