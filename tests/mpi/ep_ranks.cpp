// The multi-process tests of expert parallelism, run by ctest under `mpirun -np 2` and `-np 4`
// (tests/mpi/CMakeLists.txt). One program, one mode per test:
//   collectives  the four collective ops through graphs on every rank, against closed-form values,
//                on the reference, cpu and (when it has a device) opencl backends
//   moe          moe_experts_ep on every rank against moe_experts in one process: bit-identical on
//                the reference backend, within 1e-6 on cpu (its own kernels), with a contiguous
//                placement and with EPLB replicas, the slots' weights read in place
//   fault-file | fault-oom | fault-hang | fault-kill   rank 1 fails; every rank must end promptly
// Exit 0 when every check holds; a failed check prints what differed and exits 1.
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <porta/porta.hpp>

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAILED: %s\n", what.c_str());
}

porta::Tensor random_f32(porta::Shape shape, std::uint64_t seed, float lo = -1, float hi = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = d(rng);
  return porta::Tensor::from_vector<float>(shape, v);
}

template <class T>
std::vector<T> values(const porta::Tensor& t) {
  const auto* p = static_cast<const T*>(t.data());
  return std::vector<T>(p, p + t.shape().numel());
}

// ---- collectives ------------------------------------------------------------------------------

void test_collectives(const std::shared_ptr<porta::Communicator>& comm, const std::string& backend) {
  const int n = comm->size(), me = comm->rank();
  const std::int64_t h = 3;
  // all_to_all: rank r sends (p + r) % 3 rows to rank p; row values encode (sender, row).
  std::vector<std::int32_t> send_counts(static_cast<std::size_t>(n));
  std::int64_t total = 0;
  for (int p = 0; p < n; ++p) total += send_counts[static_cast<std::size_t>(p)] = (p + me) % 3;
  std::vector<float> x(static_cast<std::size_t>(total * h));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(me * 1000 + i);
  const std::int64_t capacity = 3 * n;
  porta::Graph g;
  auto xv = g.input("x", {total, h}, porta::DType::F32);
  auto counts = g.input("counts", {n}, porta::DType::I32);
  auto a2a = g.add_op(porta::OpKind::AllToAll, {xv, counts},
                      porta::CollectiveAttrs{.ranks = n, .capacity = capacity});
  g.output("rows", a2a[0]);
  g.output("recv", a2a[1]);
  auto y = g.input("y", {2, h}, porta::DType::F32);
  g.output("gathered", g.add_op(porta::OpKind::AllGather, {y}, porta::CollectiveAttrs{.ranks = n})[0]);
  g.output("sum", g.add_op(porta::OpKind::AllReduce, {y}, porta::CollectiveAttrs{.ranks = n})[0]);
  auto z = g.input("z", {n * 2, h}, porta::DType::F32);
  g.output("scattered",
           g.add_op(porta::OpKind::ReduceScatter, {z}, porta::CollectiveAttrs{.ranks = n})[0]);
  auto exe = porta::compile(g, {.backend = backend, .comm = comm});
  for (const auto& p : exe.placement())
    expect(p.backend == backend, fmt::format("rank {}: {} placed on {}, not {} ({})", me, p.op,
                                             p.backend, backend, p.reason));
  std::vector<float> yv(2 * h), zv(static_cast<std::size_t>(n * 2 * h));
  for (std::size_t i = 0; i < yv.size(); ++i) yv[i] = static_cast<float>(me + 1) * 0.5f + i;
  for (std::size_t i = 0; i < zv.size(); ++i) zv[i] = static_cast<float>((me + 1) * (i + 1));
  auto out = exe.run({{"x", porta::Tensor::from_vector<float>({total, h}, x)},
                      {"counts", porta::Tensor::from_vector<std::int32_t>({n}, send_counts)},
                      {"y", porta::Tensor::from_vector<float>({2, h}, yv)},
                      {"z", porta::Tensor::from_vector<float>({n * 2, h}, zv)}});
  // Expected: from each sender s (rank order) the rows it sends me, which start after the rows
  // it sends to ranks before me.
  const auto rows = values<float>(out["rows"]);
  const auto recv = values<std::int32_t>(out["recv"]);
  std::size_t at = 0;
  for (int s = 0; s < n; ++s) {
    const int count = (me + s) % 3;
    expect(recv[static_cast<std::size_t>(s)] == count,
           fmt::format("{} rank {}: recv_counts[{}] = {}, expected {}", backend, me, s,
                       recv[static_cast<std::size_t>(s)], count));
    std::int64_t before = 0;
    for (int p = 0; p < me; ++p) before += (p + s) % 3;
    for (std::int64_t i = 0; i < count * h; ++i, ++at)
      expect(rows[at] == static_cast<float>(s * 1000 + before * h + i),
             fmt::format("{} rank {}: all_to_all row value {} from rank {}", backend, me, at, s));
  }
  for (; at < rows.size(); ++at) expect(rows[at] == 0, "all_to_all: rows past those received are 0");
  const auto gathered = values<float>(out["gathered"]);
  const auto sum = values<float>(out["sum"]);
  const auto scattered = values<float>(out["scattered"]);
  float rank_sum = 0;
  for (int r = 0; r < n; ++r) rank_sum += static_cast<float>(r + 1);
  for (std::size_t i = 0; i < yv.size(); ++i) {
    float s = 0;
    for (int r = 0; r < n; ++r) {
      const float v = static_cast<float>(r + 1) * 0.5f + i;
      s += v;
      expect(gathered[static_cast<std::size_t>(r) * yv.size() + i] == v,
             fmt::format("{} rank {}: all_gather element {} of rank {}", backend, me, i, r));
    }
    expect(sum[i] == s, fmt::format("{} rank {}: all_reduce[{}] = {}, expected {}", backend, me, i,
                                    sum[i], s));
  }
  for (std::size_t i = 0; i < scattered.size(); ++i) {
    const auto global = static_cast<std::size_t>(me) * scattered.size() + i;
    expect(scattered[i] == rank_sum * static_cast<float>(global + 1),
           fmt::format("{} rank {}: reduce_scatter[{}] = {}, expected {}", backend, me, i,
                       scattered[i], rank_sum * static_cast<float>(global + 1)));
  }
}

// ---- the expert-parallel MoE layer ------------------------------------------------------------

constexpr std::int64_t kH = 16, kI = 8, kE = 8, kK = 2, kS = 12;

struct Layer {
  std::int64_t tokens;
  porta::Tensor x, logits, gate, up, down, s_gate, s_up, s_down;
};

// `tokens` rows: 13 keep every expert's block within the cpu's small-block (decode) loop, 96 send
// most blocks through its oneDNN GEMMs.
Layer make_layer(std::int64_t tokens) {
  Layer l;
  l.tokens = tokens;
  l.x = random_f32({tokens, kH}, 1);
  // Skewed routing: expert 0 and 1 are hot, so replicas have work to split.
  l.logits = random_f32({tokens, kE}, 2);
  auto* lg = static_cast<float*>(l.logits.data());
  for (std::int64_t t = 0; t < tokens; ++t) lg[t * kE] += 2.0f, lg[t * kE + 1] += 1.0f;
  l.gate = random_f32({kE, kI, kH}, 3);
  l.up = random_f32({kE, kI, kH}, 4);
  l.down = random_f32({kE, kH, kI}, 5);
  l.s_gate = random_f32({kS, kH}, 6);
  l.s_up = random_f32({kS, kH}, 7);
  l.s_down = random_f32({kH, kS}, 8);
  return l;
}

// The expert weights of `rank`'s slots, stacked in slot order from parts of their own (as a
// checkpoint's mapping holds them), so that a kernel reading them in place copies nothing.
porta::Tensor slot_weights(const porta::Tensor& all, const std::vector<std::int64_t>& slots) {
  const auto& s = all.shape();
  const std::int64_t each = s[1] * s[2];
  const auto* src = static_cast<const float*>(all.data());
  std::vector<porta::Tensor> parts;
  for (auto e : slots)
    parts.push_back(porta::Tensor::from_vector<float>(
        {s[1], s[2]}, std::vector<float>(src + e * each, src + (e + 1) * each)));
  return porta::Tensor::stack_views(parts);
}

porta::Tensor run_layer(const Layer& l, const porta::ep::ExpertPlacement* placement, int rank,
                        const std::shared_ptr<porta::Communicator>& comm,
                        const std::string& backend) {
  const std::int64_t T = l.tokens;
  porta::Graph g;
  auto x = g.input("x", {T, kH}, porta::DType::F32);
  auto logits = g.input("logits", {T, kE}, porta::DType::F32);
  const auto route = g.moe_router(logits, porta::moe::mixtral(kE, kK));
  porta::Value gate, up, down;
  if (placement == nullptr) {
    gate = g.weight("gate", l.gate), up = g.weight("up", l.up), down = g.weight("down", l.down);
  } else {
    const auto& slots = placement->rank_experts[static_cast<std::size_t>(rank)];
    gate = g.weight("gate", slot_weights(l.gate, slots));
    up = g.weight("up", slot_weights(l.up, slots));
    down = g.weight("down", slot_weights(l.down, slots));
  }
  std::vector<porta::Value> in{x,    route.weights,         route.offsets,         route.perm,
                               route.inv, gate, up, down, g.weight("sg", l.s_gate),
                               g.weight("su", l.s_up), g.weight("sd", l.s_down)};
  porta::moe::ExpertsAttrs experts{.has_shared = true};
  porta::Value y;
  if (placement == nullptr) {
    y = g.add_op(porta::OpKind::MoeExperts, in, experts)[0];
  } else {
    porta::ExpertParallelAttrs attrs{experts, rank, *placement};
    y = g.add_op(porta::OpKind::MoeExpertsEp, in, attrs)[0];
  }
  g.output("y", y);
  auto exe = porta::compile(g, {.backend = backend, .comm = comm});
  if (placement != nullptr) {
    // Both backends run the layer themselves, on the slots' weights where they lie.
    for (const auto& p : exe.placement())
      if (p.op == "moe_experts_ep")
        expect(p.backend == backend, fmt::format("rank {}: moe_experts_ep placed on {}, not {} ({})",
                                                 rank, p.backend, backend, p.reason));
    expect(exe.copied_weight_bytes() == 0,
           fmt::format("rank {}: {} copied {} bytes of weights", rank, backend,
                       exe.copied_weight_bytes()));
  }
  return exe.run({{"x", l.x}, {"logits", l.logits}})["y"];
}

void test_moe(const std::shared_ptr<porta::Communicator>& comm, std::int64_t tokens) {
  const Layer l = make_layer(tokens);
  const auto single = porta::single_process_communicator();
  const auto expected = values<float>(run_layer(l, nullptr, 0, single, "reference"));
  const auto cpu_single = values<float>(run_layer(l, nullptr, 0, single, "cpu"));
  const int n = comm->size();
  // Loads as the router will produce them, to place replicas where the tokens are.
  std::vector<std::int64_t> load(kE, 1);
  load[0] = 20, load[1] = 8;
  const auto contiguous = porta::ep::contiguous_placement(kE, n);
  const auto replicated = porta::ep::eplb(load, {.ranks = n, .replicas = n});
  expect(replicated.replicas(0).size() > 1, "eplb replicates the hottest expert");
  for (const auto* p : {&contiguous, &replicated}) {
    const std::string which =
        fmt::format("{}, T = {}", p == &contiguous ? "contiguous" : "with replicas", tokens);
    const auto got = values<float>(run_layer(l, p, comm->rank(), comm, "reference"));
    expect(got.size() == expected.size() &&
               std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0,
           fmt::format("rank {} of {}: moe_experts_ep ({}) is not bit-identical to one process",
                       comm->rank(), n, which));
    // The cpu backend's own kernels: within 1e-6 of its single-process moe_experts (a block
    // split between replicas may take the small-block loop instead of oneDNN's GEMM).
    const auto cpu = values<float>(run_layer(l, p, comm->rank(), comm, "cpu"));
    double max_err = 0, max_ref = 0;
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      max_err = std::max(max_err, std::abs(static_cast<double>(cpu[i]) - cpu_single[i]));
      max_ref = std::max(max_ref, std::abs(static_cast<double>(cpu_single[i])));
    }
    expect(cpu.size() == cpu_single.size() && max_ref > 0 && max_err <= 1e-6 * max_ref,
           fmt::format("rank {}: cpu ({}) differs from one process by {} relative", comm->rank(),
                       which, max_err / max_ref));
  }
}

// ---- faults -----------------------------------------------------------------------------------

// Each rank's step, then the agreement: rank 1's failure becomes every rank's error.
int fault(const std::shared_ptr<porta::Communicator>& comm, const std::string& kind) {
  const bool victim = comm->rank() == 1;
  std::string failure;
  try {
    if (victim && kind == "fault-file") {
      std::ifstream in("/nonexistent/porta-weights.safetensors");
      if (!in) throw porta::Error(porta::ErrorCode::NotFound,
                                  "cannot open '/nonexistent/porta-weights.safetensors'");
    }
    if (victim && kind == "fault-oom") {
      // A 1 PiB tensor: its allocation fails as on a machine out of memory, and porta reports
      // ErrorCode::OutOfMemory (under ASan too, where allocator_may_return_null makes the
      // allocation return null as malloc would; ASan's operator new would end the process).
      const porta::Tensor huge =
          porta::Tensor::empty(porta::Shape{std::int64_t{1} << 24, std::int64_t{1} << 24},
                               porta::DType::F32);
      (void)huge;
    }
    if (victim && kind == "fault-hang") std::this_thread::sleep_for(std::chrono::seconds(60));
    if (victim && kind == "fault-kill") raise(SIGKILL);
  } catch (const porta::Error& e) {
    failure = e.code() == porta::ErrorCode::OutOfMemory ? std::string("out of memory: ") + e.what()
                                                        : std::string(e.what());
  } catch (const std::bad_alloc&) {
    failure = "out of memory";
  } catch (const std::length_error&) {
    failure = "out of memory (allocation too large)";
  }
  try {
    comm->agree(failure);
  } catch (const porta::Error& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", comm->rank(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s collectives|moe|fault-file|fault-oom|fault-hang|fault-kill\n",
                 argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  try {
    {
      auto comm = porta::mpi_world();
      if (mode.rfind("fault-", 0) == 0) return fault(comm, mode);
      if (mode == "collectives") {
        test_collectives(comm, "reference");
        test_collectives(comm, "cpu");
        // opencl stages them through host memory itself (PoCL in CI; skipped without a device).
        for (const auto& d : porta::list_devices())
          if (d.name.rfind("opencl", 0) == 0 && d.available) {
            test_collectives(comm, d.name);
            break;
          }
      } else if (mode == "moe") {
        test_moe(comm, 13);
        test_moe(comm, 96);
      } else {
        std::fprintf(stderr, "unknown mode '%s'\n", mode.c_str());
        return 2;
      }
      // Fail together: a rank whose checks failed must not leave the others passing.
      comm->agree(failures == 0 ? "" : fmt::format("{} check(s) failed", failures));
    }
  } catch (const porta::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  if (failures > 0) return 1;
  std::printf("%s: all checks passed\n", mode.c_str());
  return 0;
}
