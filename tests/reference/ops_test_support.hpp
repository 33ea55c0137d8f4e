// Helpers for the op tests: build a graph, run it on a backend, compare against expectations
// worked out by hand or in closed form.
#pragma once

#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>
#include <porta/tensor.hpp>

namespace ops_test {

using Inputs = std::map<std::string, porta::Tensor>;

inline porta::Tensor f32(porta::Shape shape, const std::vector<float>& values) {
  return porta::Tensor::from_vector<float>(std::move(shape), values);
}
inline porta::Tensor i32(porta::Shape shape, const std::vector<std::int32_t>& values) {
  return porta::Tensor::from_vector<std::int32_t>(std::move(shape), values);
}
inline porta::Tensor i64(porta::Shape shape, const std::vector<std::int64_t>& values) {
  return porta::Tensor::from_vector<std::int64_t>(std::move(shape), values);
}

// Marks `y` as the output "y", compiles for `backend` and runs once.
inline porta::Tensor run_single(porta::Graph& g, porta::Value y, const Inputs& inputs,
                                const std::string& backend = "reference") {
  g.output("y", y);
  porta::CompileOptions options;
  options.backend = backend;
  options.fallback = "";
  auto exe = porta::compile(g, options);
  auto out = exe.run(inputs);
  return out.at("y");
}

// Element-by-element comparison with an absolute-plus-relative tolerance; NaN matches NaN and
// an infinity matches only itself.
inline void check_close(const std::vector<float>& got, const std::vector<double>& want,
                        double tolerance = 1e-6) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    if (std::isnan(want[i])) {
      CHECK(std::isnan(got[i]));
    } else if (std::isinf(want[i])) {
      CHECK(static_cast<double>(got[i]) == want[i]);
    } else {
      CHECK(std::abs(static_cast<double>(got[i]) - want[i]) <=
            tolerance * (1.0 + std::abs(want[i])));
    }
  }
}

}  // namespace ops_test
