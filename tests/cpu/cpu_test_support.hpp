// Helpers for the cpu backend tests: build one graph twice (stored in the dtype under test, and
// in f32 with the same rounded values for the reference backend), run it on cpu and on the
// reference, and measure the largest error normalised by the largest reference magnitude.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <porta/porta.hpp>

#include "check/cases.hpp"

namespace cpu_test {

using porta::check::detail::CaseBuilder;
using Build = std::function<std::vector<porta::Value>(CaseBuilder&)>;

inline porta::CompileOptions on(const std::string& backend, const std::string& fallback = "") {
  porta::CompileOptions options;
  options.backend = backend;
  options.fallback = fallback;
  return options;
}

inline CaseBuilder make_case(const Build& build, porta::DType store, porta::DType values,
                             std::uint64_t seed) {
  CaseBuilder b;
  b.dtype = store;
  b.value_dtype = values;
  b.rng.seed(seed);
  const auto outs = build(b);
  for (std::size_t i = 0; i < outs.size(); ++i) b.graph.output(fmt::format("out{}", i), outs[i]);
  return b;
}

// Largest |cpu - reference| / max |reference| over every output (integer outputs must match
// exactly: any difference counts 1). Every node must run on cpu (no fallback).
inline double cpu_error(const Build& build, porta::DType dtype, std::uint64_t seed = 7) {
  CaseBuilder test = make_case(build, dtype, dtype, seed);
  CaseBuilder ref = make_case(build, porta::DType::F32, dtype, seed);
  auto got = porta::compile(test.graph, on("cpu")).run(test.inputs);
  auto want = porta::compile(ref.graph, on("reference")).run(ref.inputs);
  double worst = 0;
  for (const auto& [name, expected] : want) {
    const porta::Tensor& actual = got.at(name);
    REQUIRE(actual.shape() == expected.shape());
    const auto a = actual.to_f32();
    const auto b = expected.to_f32();
    if (porta::is_integer(expected.dtype())) {
      for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i]) worst = std::max(worst, 1.0);
      continue;
    }
    double scale = 0;
    for (float v : b)
      if (std::isfinite(v)) scale = std::max(scale, static_cast<double>(std::fabs(v)));
    if (scale == 0) scale = 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(b[i]) != std::isnan(a[i])) return INFINITY;
      if (std::isfinite(b[i])) worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / scale);
    }
  }
  return worst;
}

// The tolerance for a dtype: f32 agrees to float rounding, bf16 to one bf16 rounding of the
// result (plus the rounding of intermediates the fused or widened paths skip).
inline double tolerance(porta::DType dtype, double f32 = 2e-5) {
  return dtype == porta::DType::BF16 ? 1.6e-2 : f32;
}

}  // namespace cpu_test
