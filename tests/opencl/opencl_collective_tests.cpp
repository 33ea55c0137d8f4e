// The opencl backend's collective ops, staged through host memory to the host collective, on one
// process (the multi-process runs are tests/mpi's): the ops stay in the opencl segment, between
// device kernels, and give the single-process semantics' closed-form values.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <porta/porta.hpp>

namespace opencl_collective_tests {

namespace {

std::string first_opencl_device() {
  for (const auto& d : porta::list_devices())
    if (d.name.rfind("opencl", 0) == 0 && d.available) return d.name;
  WARN("skipped: no OpenCL device is available");
  return {};
}

std::vector<float> floats(const porta::Tensor& t) { return t.to_f32(); }

}  // namespace

TEST_CASE("opencl runs the collective ops itself, between device kernels", "[opencl][comm]") {
  const std::string device = first_opencl_device();
  if (device.empty()) return;
  constexpr std::int64_t kRows = 3, kH = 2, kCapacity = 5;
  porta::Graph g;
  // x + 1 on the device, then each collective, then + 1 again: every collective's input and
  // output lives in device memory.
  int ones = 0;
  const auto bump = [&](porta::Value v) {
    return g.add(v, g.weight(fmt::format("one{}", ones++),
                             porta::Tensor::from_vector<float>({1}, {1.0f})));
  };
  auto x = bump(g.input("x", {kRows, kH}, porta::DType::F32));
  const porta::CollectiveAttrs one{.ranks = 1};
  auto counts = g.input("counts", {1}, porta::DType::I32);
  auto a2a = g.add_op(porta::OpKind::AllToAll, {x, counts},
                      porta::CollectiveAttrs{.ranks = 1, .capacity = kCapacity});
  g.output("a2a", bump(a2a[0]));
  g.output("recv", a2a[1]);
  g.output("gather", bump(g.add_op(porta::OpKind::AllGather, {x}, one)[0]));
  g.output("reduce", bump(g.add_op(porta::OpKind::AllReduce, {x}, one)[0]));
  g.output("scatter", bump(g.add_op(porta::OpKind::ReduceScatter, {x}, one)[0]));
  auto exe = porta::compile(g, {.backend = device, .fallback = ""});
  for (const auto& p : exe.placement()) CHECK(p.backend == device);
  const std::vector<float> xv{0, 1, 2, 3, 4, 5};
  auto out = exe.run({{"x", porta::Tensor::from_vector<float>({kRows, kH}, xv)},
                      {"counts", porta::Tensor::from_vector<std::int32_t>({1}, {2})}});
  // One rank: all_to_all keeps its first 2 rows (zero rows after), the others are the identity.
  CHECK(floats(out["a2a"]) == std::vector<float>{2, 3, 4, 5, 1, 1, 1, 1, 1, 1});
  CHECK(*static_cast<const std::int32_t*>(out["recv"].data()) == 2);
  const std::vector<float> twice{2, 3, 4, 5, 6, 7};
  CHECK(floats(out["gather"]) == twice);
  CHECK(floats(out["reduce"]) == twice);
  CHECK(floats(out["scatter"]) == twice);
}

}  // namespace opencl_collective_tests
