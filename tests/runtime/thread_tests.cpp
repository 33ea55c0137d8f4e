// Separate Executables of one Graph run independently on separate threads and give exactly the
// results of a single-threaded run.
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>

namespace runtime_thread_tests {

using porta::DType;
using porta::Tensor;

namespace {

constexpr std::int64_t kTokens = 4, kHidden = 16, kInner = 32, kOut = 8;
constexpr int kRuns = 20;

// Deterministic, varied values without a random engine shared between threads.
std::vector<float> pattern(std::size_t count, int seed) {
  std::vector<float> v(count);
  for (std::size_t i = 0; i < count; ++i) {
    const auto k = static_cast<int>((i * 7919u + static_cast<std::size_t>(seed) * 104729u) % 2001u);
    v[i] = static_cast<float>(k - 1000) / 997.0f;
  }
  return v;
}

// x -> matmul(w1) -> rms_norm -> silu -> matmul(w2)
porta::Graph small_mlp() {
  porta::Graph g;
  auto x = g.input("x", {kTokens, kHidden}, DType::F32);
  auto w1 =
      g.weight("w1", Tensor::from_vector<float>({kHidden, kInner}, pattern(kHidden * kInner, 1)));
  auto norm = g.weight("norm", Tensor::from_vector<float>({kInner}, pattern(kInner, 2)));
  auto w2 = g.weight("w2", Tensor::from_vector<float>({kInner, kOut}, pattern(kInner * kOut, 3)));
  auto h = g.silu(g.rms_norm(g.matmul(x, w1), norm));
  g.output("y", g.matmul(h, w2));
  return g;
}

Tensor input_for(int thread, int run) {
  return Tensor::from_vector<float>({kTokens, kHidden},
                                    pattern(kTokens * kHidden, 100 + thread * kRuns + run));
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

}  // namespace

TEST_CASE("two threads with their own Executables match a single-threaded run bitwise",
          "[runtime][threads]") {
  const porta::Graph g = small_mlp();

  // The single-threaded answers, first.
  std::vector<std::vector<Tensor>> expected(2);
  {
    auto exe = porta::compile(g);
    for (int t = 0; t < 2; ++t)
      for (int r = 0; r < kRuns; ++r)
        expected[static_cast<std::size_t>(t)].push_back(exe.run({{"x", input_for(t, r)}}).at("y"));
  }
  // The runs differ from one another (so equality below means something).
  CHECK_FALSE(bitwise_equal(expected[0][0], expected[0][1]));
  CHECK_FALSE(bitwise_equal(expected[0][0], expected[1][0]));

  std::vector<std::vector<Tensor>> got(2);
  std::vector<std::string> failures(2);
  auto work = [&](int t) {
    try {
      auto exe = porta::compile(g);  // compiled on this thread, concurrently with the other
      for (int r = 0; r < kRuns; ++r)
        got[static_cast<std::size_t>(t)].push_back(exe.run({{"x", input_for(t, r)}}).at("y"));
    } catch (const std::exception& e) {
      failures[static_cast<std::size_t>(t)] = e.what();
    }
  };
  std::thread first(work, 0);
  std::thread second(work, 1);
  first.join();
  second.join();

  for (int t = 0; t < 2; ++t) {
    INFO("thread " << t);
    CHECK(failures[static_cast<std::size_t>(t)].empty());
    REQUIRE(got[static_cast<std::size_t>(t)].size() == static_cast<std::size_t>(kRuns));
    for (int r = 0; r < kRuns; ++r) {
      INFO("run " << r);
      CHECK(bitwise_equal(got[static_cast<std::size_t>(t)][static_cast<std::size_t>(r)],
                          expected[static_cast<std::size_t>(t)][static_cast<std::size_t>(r)]));
    }
  }
}

TEST_CASE("one Executable shared by two threads serialises its runs", "[runtime][threads]") {
  const porta::Graph g = small_mlp();
  auto exe = porta::compile(g);
  const Tensor expected_a = exe.run({{"x", input_for(0, 0)}}).at("y");
  const Tensor expected_b = exe.run({{"x", input_for(1, 0)}}).at("y");
  std::vector<int> mismatches(2, 0);
  auto work = [&](int t) {
    const Tensor input = input_for(t, 0);
    const Tensor& want = t == 0 ? expected_a : expected_b;
    for (int r = 0; r < kRuns; ++r) {
      try {
        if (!bitwise_equal(exe.run({{"x", input}}).at("y"), want))
          ++mismatches[static_cast<std::size_t>(t)];
      } catch (const std::exception&) {
        ++mismatches[static_cast<std::size_t>(t)];
      }
    }
  };
  std::thread first(work, 0);
  std::thread second(work, 1);
  first.join();
  second.join();
  CHECK(mismatches[0] == 0);
  CHECK(mismatches[1] == 0);
}

}  // namespace runtime_thread_tests
