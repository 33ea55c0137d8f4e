// The conformance harness behind `porta check` and the op tests: every op of the catalogue, at
// several shapes and dtypes, run on a backend and compared with the reference backend on the same
// inputs. The oracle is the reference backend computing in f32 from the very values the case's
// dtype can hold, so a backend's error is its own rounding, not a difference in inputs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <porta/dtype.hpp>
#include <porta/ops.hpp>

namespace porta::check {

enum class Status { Pass, Fail, Unsupported, Error };

struct CaseResult {
  std::string backend;
  std::string op;
  std::string label;  // shapes and attributes of the case
  DType dtype = DType::F32;
  Status status = Status::Pass;
  double error = 0;  // the worst normalised error over the case's outputs
  double tolerance = 0;
  std::string message;  // why it failed, was unsupported or raised an error
};

struct CheckOptions {
  std::vector<std::string> backends{"reference"};
  std::vector<std::string> ops;  // empty: every op
  std::vector<DType> dtypes;     // empty: f32, f16 and bf16
  std::uint64_t seed = 42;
};

// Runs the cases; `progress` (optional) sees each result as it completes. Never throws for a
// failing case: failures are results. Throws porta::Error for an unknown op or backend name.
std::vector<CaseResult> run_conformance(
    const CheckOptions& options, const std::function<void(const CaseResult&)>& progress = {});

// The ops the harness has cases for (every op of the catalogue).
std::vector<OpKind> covered_ops();

// A pass/fail matrix: one row per op, one column per backend × dtype, worst error in each cell.
std::string format_matrix(const std::vector<CaseResult>& results);

// The tolerance on normalised error for an op computed in a dtype.
double tolerance(OpKind op, DType dtype);
// The same on a named backend, for a contraction over `k` terms: npu-sim's cube ops get a
// K-dependent bound (docs/npu-sim.md, "Tolerance"); every other backend and op the one above.
double tolerance(OpKind op, DType dtype, const std::string& backend, std::int64_t k);

}  // namespace porta::check
