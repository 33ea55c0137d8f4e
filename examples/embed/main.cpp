// Builds a small graph with porta's public API, runs it on the reference backend and checks the
// result against the same computation written out in plain C++. It prints with fmt, as the
// README's example does: porta::porta and `pkg-config porta` bring fmt along.
//
//   y = silu(rms_norm(x · W, gamma)),  x[4, 8], W[8, 8], gamma[8]
#include <porta/porta.hpp>

#include <fmt/format.h>

#include <cmath>
#include <exception>
#include <vector>

namespace {

constexpr int kRows = 4;
constexpr int kCols = 8;
constexpr float kEps = 1e-6f;

// Small, varied values that need no random generator: the same on every machine.
std::vector<float> make_values(int count, float scale, float offset) {
  std::vector<float> values(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    values[static_cast<std::size_t>(i)] = scale * static_cast<float>((i * 7) % 11 - 5) + offset;
  }
  return values;
}

// The expected result, computed in double without porta.
std::vector<double> expected_output(const std::vector<float>& x, const std::vector<float>& w,
                                    const std::vector<float>& gamma) {
  std::vector<double> y(static_cast<std::size_t>(kRows * kCols));
  for (int r = 0; r < kRows; ++r) {
    std::vector<double> row(kCols, 0.0);
    for (int c = 0; c < kCols; ++c) {
      for (int k = 0; k < kCols; ++k) row[c] += double(x[r * kCols + k]) * double(w[k * kCols + c]);
    }
    double mean_square = 0.0;
    for (double v : row) mean_square += v * v;
    mean_square /= kCols;
    const double inv_rms = 1.0 / std::sqrt(mean_square + double(kEps));
    for (int c = 0; c < kCols; ++c) {
      const double normed = row[c] * inv_rms * double(gamma[c]);
      y[r * kCols + c] = normed / (1.0 + std::exp(-normed));
    }
  }
  return y;
}

}  // namespace

int main() {
  try {
    const std::vector<float> x = make_values(kRows * kCols, 0.25f, 0.1f);
    const std::vector<float> w = make_values(kCols * kCols, 0.05f, -0.02f);
    const std::vector<float> gamma = make_values(kCols, 0.1f, 1.0f);

    porta::Graph graph;
    porta::Value input = graph.input("x", {kRows, kCols}, porta::DType::F32);
    porta::Value weight = graph.weight("W", porta::Tensor::from_vector({kCols, kCols}, w));
    porta::Value scale = graph.weight("gamma", porta::Tensor::from_vector({kCols}, gamma));
    porta::Value hidden = graph.rms_norm(graph.matmul(input, weight), scale, kEps);
    graph.output("y", graph.silu(hidden));

    porta::Executable exe = porta::compile(graph, {.backend = "reference"});
    auto outputs = exe.run({{"x", porta::Tensor::from_vector({kRows, kCols}, x)}});
    const std::vector<float> got = outputs.at("y").to_f32();
    const std::vector<double> want = expected_output(x, w, gamma);

    if (got.size() != want.size()) {
      fmt::print(stderr, "embed: porta returned {} values, expected {}\n", got.size(), want.size());
      return 1;
    }
    double max_error = 0.0;  // relative to the value's magnitude, absolute near zero
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double error = std::fabs(double(got[i]) - want[i]) / (1.0 + std::fabs(want[i]));
      max_error = std::fmax(max_error, error);
    }
    const bool ok = max_error < 1e-5;
    fmt::print("porta {}: y = silu(rms_norm(x[{},{}] . W[{},{}])) on reference, max error {:.2e}: {}\n",
               PORTA_VERSION_STRING, kRows, kCols, kCols, kCols, max_error, ok ? "OK" : "MISMATCH");
    return ok ? 0 : 1;
  } catch (const porta::Error& error) {
    fmt::print(stderr, "porta error ({}): {}\n", porta::error_code_name(error.code()), error.what());
  } catch (const std::exception& error) {
    fmt::print(stderr, "error: {}\n", error.what());
  }
  return 1;
}
