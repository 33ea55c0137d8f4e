// The MoE layer on the cpu backend at DeepSeek-V2-Lite dimensions (hidden 2048, 64 routed
// experts of width 1408, top-6 softmax routing, 2 shared experts), for T = 1, 8, 128, 512 with
// f32 and bf16 weights, side by side in one run with: the same layer as a naive per-expert loop
// (plain C++, one thread, the way a first port of Hugging Face's loop over experts reads), a
// single large f32 GEMM of the same FLOPs (oneDNN), and a streaming memory read. Then the
// DeepSeek-V3 router (T = 4096, E = 256, K = 8) next to the gate matmul that produces its logits.
// Every figure is the median of several repetitions (a layer's and its GEMM's interleaved, the
// router's and the gate's too); the closing lines are issue 4's ratios.
//
//   porta-bench-cpu-moe-layer [--quick] [--reps N] [--naive-reps N] [--tokens 1,8,128,512]
//                             [--router-tokens N]
//
// --quick: T = 1 and 8, 3 repetitions, the router at T = 512. --tokens 0 runs the router alone. The
// naive loop takes about a minute per repetition at T = 512 on two cores; --naive-reps lowers its
// repetitions alone.
//
// Weights take 64 · 3 · 2048 · 1408 · 4 B = 2.2 GB in f32 (1.1 GB in bf16); one dtype is held at
// a time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <fmt/format.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <porta/porta.hpp>

#include "timing.hpp"

namespace {

using porta::DType;
using porta::Tensor;
using porta_bench::Clock;
using porta_bench::interleaved_medians;
using porta_bench::median;
using porta_bench::seconds_since;

constexpr std::int64_t kHidden = 2048, kExperts = 64, kInter = 1408, kTopK = 6;
constexpr std::int64_t kShared = 2 * kInter;  // two shared experts = one of twice the width

double median_time(int reps, const std::function<void()>& body, bool warm_up = true) {
  if (warm_up) body();  // first-touch, primitive creation, caches
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    body();
    times.push_back(seconds_since(start));
  }
  return median(times);
}

// Deterministic pseudo-random fill, fast enough for gigabytes.
struct Lcg {
  std::uint64_t state;
  float next(float scale) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return scale * (static_cast<float>(state >> 40) / static_cast<float>(1u << 24) * 2.0f - 1.0f);
  }
};

Tensor random_tensor(porta::Shape shape, DType dtype, float scale, std::uint64_t seed) {
  Tensor t = Tensor::zeros(shape, dtype);
  Lcg rng{seed};
  const auto n = static_cast<std::size_t>(t.numel());
  if (dtype == DType::F32) {
    float* p = t.data_as<float>();
    for (std::size_t i = 0; i < n; ++i) p[i] = rng.next(scale);
  } else {
    for (std::size_t i = 0; i < n; ++i) porta::store_from_f32(t.data(), dtype, i, rng.next(scale));
  }
  return t;
}

struct LayerWeights {
  DType dtype;
  Tensor gate, up, down, s_gate, s_up, s_down;
};

LayerWeights make_weights(DType dtype) {
  const float scale = 0.02f;
  return {dtype,
          random_tensor({kExperts, kInter, kHidden}, dtype, scale, 1),
          random_tensor({kExperts, kInter, kHidden}, dtype, scale, 2),
          random_tensor({kExperts, kHidden, kInter}, dtype, scale, 3),
          random_tensor({kShared, kHidden}, dtype, scale, 4),
          random_tensor({kShared, kHidden}, dtype, scale, 5),
          random_tensor({kHidden, kShared}, dtype, scale, 6)};
}

// ---- the naive per-expert loop ----
// Plain C++ on one thread: each token routed to an expert goes through that expert's three
// nn.Linear products one dot product at a time. The dot product keeps eight partial sums (so
// that the compiler can use SSE lanes without reordering anything itself): naive, not slow on
// purpose.

template <class W>
float to_float(W v) {
  if constexpr (std::is_same_v<W, float>)
    return v;
  else
    return porta::bf16_bits_to_f32(v);
}

template <class W>
void naive_linear(const W* w, std::int64_t rows, std::int64_t cols, const float* v, float* y) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const W* row = w + r * cols;
    float part[8] = {};
    const std::int64_t body = cols - cols % 8;
    for (std::int64_t c = 0; c < body; c += 8)
      for (int k = 0; k < 8; ++k) part[k] += to_float(row[c + k]) * v[c + k];
    float sum =
        ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (std::int64_t c = body; c < cols; ++c) sum += to_float(row[c]) * v[c];
    y[r] = sum;
  }
}

template <class W>
void naive_mlp_typed(const Tensor& gate, const Tensor& up, const Tensor& down, std::size_t expert,
                     std::int64_t inter, const float* x, float* out) {
  std::vector<float> g(static_cast<std::size_t>(inter)), u(g.size());
  const std::size_t stride = static_cast<std::size_t>(inter * kHidden);
  const auto* wg = static_cast<const W*>(gate.data()) + expert * stride;
  const auto* wu = static_cast<const W*>(up.data()) + expert * stride;
  const auto* wd = static_cast<const W*>(down.data()) + expert * stride;
  naive_linear(wg, inter, kHidden, x, g.data());
  naive_linear(wu, inter, kHidden, x, u.data());
  for (std::size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  naive_linear(wd, kHidden, inter, g.data(), out);
}

void naive_mlp(const Tensor& gate, const Tensor& up, const Tensor& down, std::size_t expert,
               std::int64_t inter, const float* x, float* out) {
  if (gate.dtype() == DType::F32)
    naive_mlp_typed<float>(gate, up, down, expert, inter, x, out);
  else
    naive_mlp_typed<std::uint16_t>(gate, up, down, expert, inter, x, out);
}

// For each expert, the tokens routed to it, through the expert, added with their weight; plus
// the shared experts on every token.
void naive_layer(const LayerWeights& w, const std::vector<float>& x, const std::vector<int>& ids,
                 const std::vector<float>& weights, std::int64_t T, std::vector<float>& y) {
  std::fill(y.begin(), y.end(), 0.0f);
  std::vector<float> out(kHidden);
  for (std::int64_t e = 0; e < kExperts; ++e)
    for (std::int64_t a = 0; a < T * kTopK; ++a) {
      if (ids[static_cast<std::size_t>(a)] != e) continue;
      const std::int64_t t = a / kTopK;
      naive_mlp(w.gate, w.up, w.down, static_cast<std::size_t>(e), kInter, &x[t * kHidden],
                out.data());
      for (std::int64_t j = 0; j < kHidden; ++j)
        y[t * kHidden + j] += weights[static_cast<std::size_t>(a)] * out[j];
    }
  for (std::int64_t t = 0; t < T; ++t) {
    naive_mlp(w.s_gate, w.s_up, w.s_down, 0, kShared, &x[t * kHidden], out.data());
    for (std::int64_t j = 0; j < kHidden; ++j) y[t * kHidden + j] += out[j];
  }
}

// ---- references points ----

double stream_read_gbps(int reps) {
  const std::size_t n = std::size_t{1} << 27;  // 512 MiB of floats
  std::vector<float> data(n, 1.0f);
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<double> sums(threads);
  const double t = median_time(reps, [&] {
    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        const std::size_t begin = n / threads * i,
                          end = i + 1 == threads ? n : n / threads * (i + 1);
        float acc[16] = {};
        for (std::size_t j = begin; j + 16 <= end; j += 16)
          for (int k = 0; k < 16; ++k) acc[k] += data[j + static_cast<std::size_t>(k)];
        double s = 0;
        for (float a : acc) s += a;
        sums[i] = s;
      });
    for (auto& th : pool) th.join();
  });
  if (sums[0] < 0) std::puts("");  // keep the reads
  return static_cast<double>(n * sizeof(float)) / t / 1e9;
}

// One oneDNN f32 matmul [m, k] · [k, n] (weights given [n, k], as nn.Linear stores them),
// created once; run() executes it.
class Gemm {
 public:
  Gemm(std::int64_t m, std::int64_t k, std::int64_t n)
      : engine_(dnnl::engine::kind::cpu, 0),
        stream_(engine_),
        a_(static_cast<std::size_t>(m * k), 0.5f),
        b_(static_cast<std::size_t>(k * n), 0.01f),
        c_(static_cast<std::size_t>(m * n)) {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc a({m, k}, dt::f32, dnnl::memory::dims{k, 1});
    const dnnl::memory::desc b({k, n}, dt::f32, dnnl::memory::dims{1, k});
    const dnnl::memory::desc c({m, n}, dt::f32, dnnl::memory::dims{n, 1});
    prim_ = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), engine_));
    ma_ = dnnl::memory(a, engine_, a_.data());
    mb_ = dnnl::memory(b, engine_, b_.data());
    mc_ = dnnl::memory(c, engine_, c_.data());
  }
  void run() {
    prim_.execute(stream_, {{DNNL_ARG_SRC, ma_}, {DNNL_ARG_WEIGHTS, mb_}, {DNNL_ARG_DST, mc_}});
    stream_.wait();
  }

 private:
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<float> a_, b_, c_;
  dnnl::matmul prim_;
  dnnl::memory ma_, mb_, mc_;
};

// ---- the porta layer ----

struct LayerResult {
  std::int64_t T = 0;
  double seconds = 0, naive_seconds = 0, gemm_seconds = 0;
  double flops = 0, weight_bytes = 0;
};

LayerResult run_layer(const LayerWeights& w, std::int64_t T, int reps, int naive_reps) {
  porta::Graph g;
  auto x = g.input("x", {T, kHidden}, DType::F32);
  auto logits = g.input("logits", {T, kExperts}, DType::F32);
  const auto route = g.moe_router(logits, porta::moe::deepseek_v2_lite(kExperts, kTopK));
  porta::MoeExpertWeights mw;
  mw.gate = g.weight("gate", w.gate);
  mw.up = g.weight("up", w.up);
  mw.down = g.weight("down", w.down);
  mw.shared_gate = g.weight("s_gate", w.s_gate);
  mw.shared_up = g.weight("s_up", w.s_up);
  mw.shared_down = g.weight("s_down", w.s_down);
  g.output("y", g.moe_experts(x, route, mw));
  g.output("ids", route.ids);
  g.output("weights", route.weights);
  g.output("counts", route.counts);
  porta::CompileOptions options;
  options.backend = "cpu";
  options.fallback = "";
  options.profile = false;
  auto exe = porta::compile(g, options);
  const std::map<std::string, Tensor> inputs{
      {"x", random_tensor({T, kHidden}, DType::F32, 1.0f, 10 + static_cast<std::uint64_t>(T))},
      {"logits",
       random_tensor({T, kExperts}, DType::F32, 2.0f, 20 + static_cast<std::uint64_t>(T))}};
  LayerResult r;
  r.T = T;
  std::map<std::string, Tensor> out;
  // The flops, then the layer and the same-FLOP GEMM with their repetitions interleaved, so
  // that both see the same load.
  r.flops =
      2.0 * static_cast<double>(T) * (kTopK * 3.0 * kHidden * kInter + 3.0 * kHidden * kShared);
  const auto n = static_cast<std::int64_t>(r.flops / (2.0 * static_cast<double>(T) * kHidden));
  Gemm gemm(T, kHidden, n);
  const auto t = interleaved_medians(reps, {[&] { out = exe.run(inputs); }, [&] { gemm.run(); }});
  r.seconds = t[0];
  r.gemm_seconds = t[1];
  const auto* counts = out.at("counts").data_as<std::int32_t>();
  const double element = static_cast<double>(porta::dtype_size(w.dtype));
  double active = 0;
  for (std::int64_t e = 0; e < kExperts; ++e) active += counts[e] > 0 ? 1 : 0;
  r.weight_bytes = (active * 3 * kHidden * kInter + 3.0 * kHidden * kShared) * element;
  if (naive_reps > 0) {
    const auto* xv = inputs.at("x").data_as<float>();
    std::vector<float> xs(xv, xv + T * kHidden), y(static_cast<std::size_t>(T * kHidden));
    const auto* idv = out.at("ids").data_as<std::int32_t>();
    const auto* wv = out.at("weights").data_as<float>();
    std::vector<int> ids(idv, idv + T * kTopK);
    std::vector<float> weights(wv, wv + T * kTopK);
    r.naive_seconds = median_time(
        reps, [&] { naive_layer(w, xs, ids, weights, T, y); }, false);
    // The naive loop is a check of the fast path, too.
    const auto* fast = out.at("y").data_as<float>();
    double worst = 0, scale = 1e-6;
    for (std::size_t i = 0; i < y.size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::abs(fast[i] - y[i])));
      scale = std::max(scale, static_cast<double>(std::abs(y[i])));
    }
    if (worst > 1e-3 * scale)
      fmt::print("  WARNING: T={} fast path and naive loop differ by {:.3g} (scale {:.3g})\n", T,
                 worst, scale);
  }
  return r;
}

// The DeepSeek-V3 router and the gate matmul that produces its logits, repetitions
// interleaved (router, gate, router, ...) so that both see the same load; medians.
std::pair<double, double> router_and_gate_seconds(std::int64_t T, int reps) {
  constexpr std::int64_t E = 256;
  porta::Graph g;
  auto logits = g.input("logits", {T, E}, DType::F32);
  auto bias = g.input("bias", {E}, DType::F32);
  const auto r = g.moe_router(logits, porta::moe::deepseek_v3(E, 8), bias);
  for (const auto& [name, v] : {std::pair{"ids", r.ids},
                                {"weights", r.weights},
                                {"perm", r.perm},
                                {"inv", r.inv},
                                {"offsets", r.offsets}})
    g.output(name, v);
  porta::CompileOptions options;
  options.backend = "cpu";
  options.fallback = "";
  options.profile = false;
  auto exe = porta::compile(g, options);
  const std::map<std::string, Tensor> inputs{
      {"logits", random_tensor({T, E}, DType::F32, 3.0f, 77)},
      {"bias", random_tensor({E}, DType::F32, 0.05f, 78)}};
  Gemm gate(T, 7168, E);
  const auto t = interleaved_medians(reps, {[&] { (void)exe.run(inputs); }, [&] { gate.run(); }});
  return {t[0], t[1]};
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int reps = 5, naive_reps = -1;
  std::vector<std::int64_t> token_counts{1, 8, 128, 512};
  std::int64_t router_tokens = 4096;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--quick") {
      quick = true;
      token_counts = {1, 8};
      router_tokens = 512;
    } else if (arg == "--reps" && has_value) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--naive-reps" && has_value) {
      naive_reps = std::max(0, std::atoi(argv[++i]));
    } else if (arg == "--router-tokens" && has_value) {
      router_tokens = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--tokens" && has_value) {
      token_counts.clear();
      std::string list = argv[++i];
      for (std::size_t start = 0; start <= list.size();) {
        const std::size_t comma = std::min(list.find(',', start), list.size());
        const int t = std::atoi(list.substr(start, comma - start).c_str());
        if (t > 0) token_counts.push_back(t);
        start = comma + 1;
      }
    } else {
      fmt::print(stderr,
                 "usage: {} [--quick] [--reps N] [--naive-reps N] [--tokens 1,8,128,512] "
                 "[--router-tokens N]\n",
                 argv[0]);
      return arg == "--help" || arg == "-h" ? 0 : 2;
    }
  }
  if (quick) reps = std::min(reps, 3);
  if (naive_reps < 0) naive_reps = reps;
  try {
    fmt::print("MoE layer, DeepSeek-V2-Lite dims: H={} E={} I={} top-{} softmax, shared {}\n",
               kHidden, kExperts, kInter, kTopK, kShared);
    fmt::print("medians of {} reps ({} for the naive loop); {} threads\n\n", reps, naive_reps,
               std::thread::hardware_concurrency());
    const double bandwidth = stream_read_gbps(reps);
    fmt::print("streaming read bandwidth: {:.1f} GB/s\n\n", bandwidth);

    std::map<std::string, std::vector<LayerResult>> results;
    for (DType dtype : {DType::F32, DType::BF16}) {
      if (token_counts.empty()) break;  // --tokens 0: the router alone
      const LayerWeights w = make_weights(dtype);
      const std::string name(porta::dtype_name(dtype));
      fmt::print("{} weights\n", name);
      fmt::print("{:>5} {:>10} {:>10} {:>9} {:>9} {:>11} {:>11} {:>10} {:>8}\n", "T", "ms",
                 "tokens/s", "GB/s", "GFLOP/s", "naive ms", "fast/naive", "GEMM GF/s", "vs GEMM");
      for (std::int64_t T : token_counts) {
        const auto r = run_layer(w, T, reps, naive_reps);
        results[name].push_back(r);
        const std::string naive = r.naive_seconds > 0
                                      ? fmt::format("{:>11.1f} {:>10.1f}x", r.naive_seconds * 1e3,
                                                    r.naive_seconds / r.seconds)
                                      : fmt::format("{:>11} {:>11}", "-", "-");
        fmt::print("{:>5} {:>10.3f} {:>10.1f} {:>9.2f} {:>9.2f} {} {:>10.2f} {:>7.0f}%\n", T,
                   r.seconds * 1e3, static_cast<double>(T) / r.seconds,
                   r.weight_bytes / r.seconds / 1e9, r.flops / r.seconds / 1e9, naive,
                   r.flops / r.gemm_seconds / 1e9, 100.0 * r.gemm_seconds / r.seconds);
        std::fflush(stdout);
      }
      fmt::print("\n");
    }

    const auto [router, gate] = router_and_gate_seconds(router_tokens, reps);
    fmt::print(
        "router, DeepSeek-V3 preset, T={} E=256 K=8: {:.3f} ms; gate matmul {}x7168 . "
        "7168x256: {:.3f} ms ({:.1f} GFLOP/s)\n\n",
        router_tokens, router * 1e3, router_tokens, gate * 1e3,
        2.0 * static_cast<double>(router_tokens) * 7168 * 256 / gate / 1e9);

    fmt::print("issue 4's targets:\n");
    for (const auto& [name, rows] : results) {
      for (const auto& r : rows) {
        if (r.T == 512) {
          const double share = r.gemm_seconds / r.seconds;
          fmt::print(
              "  [{}] prefill T=512: layer GFLOP/s = {:.0f}% of the large f32 GEMM's "
              "(target >= 70%): {}\n",
              name, 100 * share, share >= 0.7 ? "met" : "NOT met");
          const double speedup = r.naive_seconds / r.seconds;
          if (r.naive_seconds > 0)
            fmt::print("  [{}] fast path vs naive loop at T=512: {:.1f}x (target >= 3x): {}\n",
                       name, speedup, speedup >= 3 ? "met" : "NOT met");
        }
        if (r.T == 1) {
          const double bound = r.weight_bytes / (bandwidth * 1e9);
          const double ratio = r.seconds / bound;
          fmt::print(
              "  [{}] decode T=1: {:.3f} ms for {:.0f} MB of weights = {:.2f}x the "
              "bandwidth bound {:.3f} ms (target <= 1.5x): {}\n",
              name, r.seconds * 1e3, r.weight_bytes / 1e6, ratio, bound * 1e3,
              ratio <= 1.5 ? "met" : "NOT met");
        }
      }
    }
    const double share = router / gate;
    fmt::print("  router at T={}: {:.1f}% of the gate matmul (target <= 5%): {}\n", router_tokens,
               100 * share, share <= 0.05 ? "met" : "NOT met");
  } catch (const std::exception& e) {
    fmt::print(stderr, "porta-bench-cpu-moe-layer: {}\n", e.what());
    return 1;
  }
  return 0;
}
