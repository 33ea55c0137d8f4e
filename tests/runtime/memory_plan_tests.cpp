// The memory planner (internal): values alive at the same time never share bytes, values that are
// not do, offsets are aligned; and compile() reports the saving.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "runtime/memory_plan.hpp"

namespace runtime_memory_plan_tests {

using porta::detail::BufferRequest;
using porta::detail::plan_memory;

namespace {

bool lifetimes_overlap(const BufferRequest& a, const BufferRequest& b) {
  return a.first_step <= b.last_step && b.first_step <= a.last_step;
}

// Every pair alive at once must occupy disjoint byte ranges inside the arena.
void check_plan_is_safe(const std::vector<BufferRequest>& requests,
                        const porta::detail::MemoryPlan& plan, std::size_t alignment) {
  REQUIRE(plan.offsets.size() == requests.size());
  std::size_t sum = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i);
    CHECK(plan.offsets[i] % alignment == 0);
    CHECK(plan.offsets[i] + requests[i].bytes <= plan.arena_bytes);
    sum += (requests[i].bytes + alignment - 1) / alignment * alignment;
  }
  CHECK(plan.unplanned_bytes == sum);
  CHECK(plan.arena_bytes <= plan.unplanned_bytes);
  int collisions = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    for (std::size_t j = i + 1; j < requests.size(); ++j) {
      if (requests[i].bytes == 0 || requests[j].bytes == 0) continue;
      if (!lifetimes_overlap(requests[i], requests[j])) continue;
      const bool disjoint = plan.offsets[i] + requests[i].bytes <= plan.offsets[j] ||
                            plan.offsets[j] + requests[j].bytes <= plan.offsets[i];
      if (!disjoint && ++collisions <= 5)
        UNSCOPED_INFO("requests " << i << " and " << j << " are alive together but share bytes: ["
                                  << plan.offsets[i] << ", +" << requests[i].bytes << ") and ["
                                  << plan.offsets[j] << ", +" << requests[j].bytes << ")");
    }
  }
  CHECK(collisions == 0);
}

}  // namespace

TEST_CASE("a chain of equally sized values needs two buffers", "[unit][memory]") {
  // Value i is written by step i and read by step i + 1.
  constexpr int kLength = 12;
  constexpr std::size_t kBytes = 4096;
  std::vector<BufferRequest> chain;
  for (int i = 0; i < kLength; ++i) chain.push_back({kBytes, i, i + 1});
  const auto plan = plan_memory(chain);
  CHECK(plan.arena_bytes == 2 * kBytes);
  CHECK(plan.unplanned_bytes == kLength * kBytes);
  check_plan_is_safe(chain, plan, 64);
  // Neighbours cannot share; every other one can.
  for (int i = 0; i + 1 < kLength; ++i)
    CHECK(plan.offsets[static_cast<std::size_t>(i)] !=
          plan.offsets[static_cast<std::size_t>(i) + 1]);
}

TEST_CASE("values alive at the same time all get their own bytes", "[unit][memory]") {
  const std::vector<BufferRequest> all_live = {{100, 0, 5}, {200, 1, 5}, {300, 2, 5}, {64, 3, 5}};
  const auto plan = plan_memory(all_live);
  // Aligned to 64: 128 + 256 + 320 + 64.
  CHECK(plan.arena_bytes == 768);
  CHECK(plan.unplanned_bytes == 768);
  check_plan_is_safe(all_live, plan, 64);
}

TEST_CASE("offsets honour the alignment", "[unit][memory]") {
  const std::vector<BufferRequest> requests = {
      {1, 0, 3}, {3, 0, 3}, {130, 1, 2}, {0, 0, 3}, {7, 2, 3}};
  for (std::size_t alignment :
       {std::size_t{1}, std::size_t{16}, std::size_t{64}, std::size_t{256}}) {
    INFO("alignment " << alignment);
    const auto plan = plan_memory(requests, alignment);
    check_plan_is_safe(requests, plan, alignment);
  }
  const auto plan = plan_memory(requests, 256);
  CHECK(plan.unplanned_bytes == 4 * 256);  // the zero-byte request takes nothing
  CHECK(plan.arena_bytes == 4 * 256);      // all four non-empty values overlap at step 2
}

TEST_CASE("random requests never share bytes while alive together", "[unit][memory]") {
  std::mt19937 rng(7u);
  std::uniform_int_distribution<int> count_of(1, 60);
  std::uniform_int_distribution<int> start_of(0, 40);
  std::uniform_int_distribution<int> length_of(0, 12);
  std::uniform_int_distribution<std::size_t> bytes_of(0, 5000);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<BufferRequest> requests(static_cast<std::size_t>(count_of(rng)));
    for (auto& r : requests) {
      r.first_step = start_of(rng);
      r.last_step = r.first_step + length_of(rng);
      r.bytes = bytes_of(rng);
    }
    const std::size_t alignment = trial % 2 == 0 ? 64 : 32;
    INFO("trial " << trial);
    const auto plan = plan_memory(requests, alignment);
    check_plan_is_safe(requests, plan, alignment);
    // The arena is at least the largest set of values alive at one step.
    std::size_t peak = 0;
    for (int step = 0; step <= 52; ++step) {
      std::size_t live = 0;
      for (const auto& r : requests)
        if (r.first_step <= step && step <= r.last_step)
          live += (r.bytes + alignment - 1) / alignment * alignment;
      peak = std::max(peak, live);
    }
    CHECK(plan.arena_bytes >= peak);
    // Deterministic.
    CHECK(plan_memory(requests, alignment).offsets == plan.offsets);
  }
}

TEST_CASE("compile() plans a long elementwise chain into a small arena",
          "[unit][memory][runtime]") {
  constexpr int kLength = 16;
  constexpr std::int64_t kRows = 32, kCols = 64;
  constexpr std::uint64_t kValueBytes = kRows * kCols * 4;
  porta::Graph g;
  auto x = g.input("x", {kRows, kCols}, porta::DType::F32);
  auto v = x;
  for (int i = 0; i < kLength; ++i) v = i % 2 == 0 ? g.silu(v) : g.sigmoid(v);
  g.output("y", v);
  auto exe = porta::compile(g);
  // The last value is the graph output, computed into the caller's tensor: not in the arena.
  CHECK(exe.unplanned_bytes() == (kLength - 1) * kValueBytes);
  CHECK(exe.arena_bytes() <= 2 * kValueBytes);
  CHECK(exe.arena_bytes() >= kValueBytes);
  CHECK(exe.summary().find("arena") != std::string::npos);

  // And the reused memory still gives the right answer: 16 alternating silu / sigmoid.
  std::vector<float> input(static_cast<std::size_t>(kRows * kCols));
  for (std::size_t i = 0; i < input.size(); ++i)
    input[i] = static_cast<float>(i % 13) * 0.25f - 1.5f;
  const auto out = exe.run({{"x", porta::Tensor::from_vector<float>({kRows, kCols}, input)}});
  const auto y = out.at("y").to_f32();
  for (std::size_t i = 0; i < input.size(); i += 97) {
    double expected = input[i];
    for (int step = 0; step < kLength; ++step)
      expected = step % 2 == 0 ? expected / (1.0 + std::exp(-expected))
                               : 1.0 / (1.0 + std::exp(-expected));
    CHECK(y[i] == Approx(expected).epsilon(1e-5));
  }
}

TEST_CASE("an early graph output is not overwritten by later values", "[unit][memory][runtime]") {
  // first = x + 1 is an output; eight more steps follow, each the same size as `first`.
  porta::Graph g;
  auto x = g.input("x", {16}, porta::DType::F32);
  auto one = g.weight("one", porta::Tensor::from_vector<float>({1}, {1.0f}));
  auto first = x + one;
  g.output("first", first);
  auto v = first;
  for (int i = 0; i < 8; ++i) v = v + one;
  g.output("last", v);
  auto exe = porta::compile(g);
  std::vector<float> input(16);
  for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i);
  const auto out = exe.run({{"x", porta::Tensor::from_vector<float>({16}, input)}});
  const auto got_first = out.at("first").to_f32();
  const auto got_last = out.at("last").to_f32();
  for (std::size_t i = 0; i < input.size(); ++i) {
    CHECK(got_first[i] == input[i] + 1.0f);
    CHECK(got_last[i] == input[i] + 9.0f);
  }
  // Both outputs are computed into the caller's tensors; the chain between them needs two
  // buffers, reused in turn (and none of them is `first`'s memory, or got_first would be wrong).
  CHECK(exe.arena_bytes() == 2 * 64);
}

}  // namespace runtime_memory_plan_tests
