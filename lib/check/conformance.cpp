// Runs conformance cases on backends against the reference and formats the matrix.
#include "check/conformance.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include <porta/device.hpp>
#include <porta/executable.hpp>

#include "check/cases.hpp"
#include "graph/catalogue.hpp"
#include "runtime/backend.hpp"

namespace porta::check {

namespace {

using detail::CaseBuilder;
using detail::CaseDef;

// Largest |test - reference| over the largest |reference| (1 when the reference is all zero).
// Integer outputs must match exactly: any difference is an error of 1 (100 %).
double compare(const Tensor& test, const Tensor& reference, std::string& why) {
  if (test.shape() != reference.shape()) {
    why = fmt::format("shape {} instead of {}", test.shape().to_string(),
                      reference.shape().to_string());
    return INFINITY;
  }
  const auto a = test.to_f32();
  const auto b = reference.to_f32();
  if (is_integer(reference.dtype())) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i]) {
        why = fmt::format("integer output differs at element {}: {} instead of {}", i, a[i], b[i]);
        return 1.0;
      }
    return 0.0;
  }
  double scale = 0;
  for (float v : b)
    if (std::isfinite(v)) scale = std::max(scale, static_cast<double>(std::fabs(v)));
  if (scale == 0) scale = 1;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) != std::isnan(b[i]) || (std::isinf(b[i]) && a[i] != b[i])) {
      why = fmt::format("element {} is {} instead of {}", i, a[i], b[i]);
      return INFINITY;
    }
    if (!std::isfinite(b[i])) continue;
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / scale);
  }
  return worst;
}

std::uint64_t case_seed(std::uint64_t seed, std::size_t index, DType dtype) {
  return seed * 1000003u + index * 7919u + static_cast<std::uint64_t>(dtype);
}

// The longest dot product a case's op computes (K of a matmul, H and I of the MoE experts);
// 0 for ops that contract nothing.
std::int64_t contraction_length(const Graph& graph, OpKind op) {
  std::int64_t k = 0;
  for (const Node& n : graph.nodes()) {
    if (n.op != op) continue;
    const Shape& a = graph.value(n.inputs[0]).shape;
    if (op == OpKind::Matmul)
      k = std::max(k, std::get<MatmulAttrs>(n.attrs).transpose_a ? a[-2] : a[-1]);
    else if (op == OpKind::GroupedMatmul)
      k = std::max(k, a[1]);
    else if (op == OpKind::MoeExperts || op == OpKind::QuantMoeExperts)
      k = std::max({k, a[1], graph.value(n.inputs[5]).shape[1]});
    else if (op == OpKind::QuantMatmul || op == OpKind::QuantGroupedMatmul)
      k = std::max(k, a[-1]);
  }
  return k;
}

CaseBuilder build_case(const CaseDef& def, std::uint64_t seed, DType store, DType values,
                       std::vector<Value>& outs) {
  CaseBuilder b;
  b.dtype = store;
  b.value_dtype = values;
  b.rng.seed(seed);
  outs = def.build(b);
  for (std::size_t i = 0; i < outs.size(); ++i) b.graph.output(fmt::format("out{}", i), outs[i]);
  return b;
}

CaseResult run_case(const CaseDef& def, std::size_t index, const std::string& backend, DType dtype,
                    std::uint64_t seed) {
  CaseResult r;
  r.backend = backend;
  r.op = std::string(op_name(def.op));
  r.label = def.label;
  r.dtype = dtype;
  r.tolerance = tolerance(def.op, dtype);
  try {
    const auto s = case_seed(seed, index, dtype);
    std::vector<Value> test_outs, ref_outs;
    CaseBuilder test = build_case(def, s, dtype, dtype, test_outs);
    CaseBuilder ref = build_case(def, s, DType::F32, dtype, ref_outs);
    r.tolerance = tolerance(def.op, dtype, backend, contraction_length(test.graph, def.op));
    Executable test_exe;
    try {
      test_exe = compile(test.graph, {.backend = backend, .fallback = ""});
    } catch (const Error& e) {
      if (e.code() != ErrorCode::Unsupported) throw;
      r.status = Status::Unsupported;
      r.message = e.what();
      return r;
    }
    auto got = test_exe.run(test.inputs);
    auto want = compile(ref.graph, {.backend = "reference"}).run(ref.inputs);
    for (std::size_t i = 0; i < test_outs.size(); ++i) {
      const std::string name = fmt::format("out{}", i);
      std::string why;
      const double err = compare(got.at(name), want.at(name), why);
      if (err > r.error || !why.empty()) {
        r.error = std::max(r.error, err);
        if (!why.empty()) r.message = fmt::format("output {}: {}", i, why);
      }
    }
    r.status = r.error <= r.tolerance ? Status::Pass : Status::Fail;
    if (r.status == Status::Fail && r.message.empty())
      r.message =
          fmt::format("normalised error {:.3g} exceeds the tolerance {:.3g}", r.error, r.tolerance);
  } catch (const std::exception& e) {
    r.status = Status::Error;
    r.message = e.what();
  }
  return r;
}

}  // namespace

double tolerance(OpKind op, DType dtype) {
  double base = 0;
  switch (dtype) {
    case DType::F32: base = 2e-6; break;
    case DType::F16: base = 1e-3; break;
    case DType::BF16: base = 8e-3; break;
    case DType::F8E4M3: base = 0.07; break;
    case DType::I8:
    case DType::I32:
    case DType::I64: base = 0; break;  // integer results are exact
  }
  // Long accumulations may be ordered differently by a backend; reductions and exp amplify input
  // rounding. The op list's cost family says which kind of computation an op is.
  const std::string_view family = porta::detail::op_cost_family(op);
  if (family == "matmul" || family == "grouped_matmul" || family == "attention" ||
      family == "moe_experts" || family == "quant_matmul" || family == "quant_moe_experts")
    return base * 8;
  if (family == "normalization" || op == OpKind::Exp) return base * 4;
  return base * 2;
}

double tolerance(OpKind op, DType dtype, const std::string& backend, std::int64_t k) {
  if (auto own = porta::detail::get_backend(backend)->conformance_tolerance(op, dtype, k))
    return *own;
  return tolerance(op, dtype);
}

std::vector<OpKind> covered_ops() {
  std::set<OpKind> ops;
  for (const auto& c : detail::all_cases()) ops.insert(c.op);
  return {ops.begin(), ops.end()};
}

std::vector<CaseResult> run_conformance(const CheckOptions& options,
                                        const std::function<void(const CaseResult&)>& progress) {
  std::set<OpKind> wanted;
  for (const auto& name : options.ops) wanted.insert(parse_op(name));
  const std::vector<DType> dtypes = options.dtypes.empty()
                                        ? std::vector<DType>{DType::F32, DType::F16, DType::BF16}
                                        : options.dtypes;
  for (DType t : dtypes)
    if (!is_floating(t))
      throw Error(
          ErrorCode::InvalidArgument,
          fmt::format("conformance cases run in floating-point dtypes, not {}", dtype_name(t)));
  std::vector<CaseResult> results;
  const auto& cases = detail::all_cases();
  for (const auto& backend : options.backends) {
    porta::device_info(backend);  // an unknown backend is an error, not a column of failures
    for (std::size_t i = 0; i < cases.size(); ++i) {
      if (!wanted.empty() && !wanted.contains(cases[i].op)) continue;
      for (DType t : dtypes) {
        results.push_back(run_case(cases[i], i, backend, t, options.seed));
        if (progress) progress(results.back());
      }
    }
  }
  return results;
}

std::string format_matrix(const std::vector<CaseResult>& results) {
  // Columns in first-seen order; rows in catalogue order.
  std::vector<std::string> columns;
  std::map<std::pair<std::string, std::string>, std::vector<const CaseResult*>> cells;
  std::set<std::string> ops;
  for (const auto& r : results) {
    const std::string column = fmt::format("{} {}", r.backend, dtype_name(r.dtype));
    if (std::find(columns.begin(), columns.end(), column) == columns.end())
      columns.push_back(column);
    cells[{r.op, column}].push_back(&r);
    ops.insert(r.op);
  }
  std::string out = fmt::format("{:<16}", "op");
  for (const auto& c : columns) out += fmt::format(" {:>20}", c);
  out += "\n";
  for (const auto& info : all_ops()) {
    const std::string op(info.name);
    if (!ops.contains(op)) continue;
    out += fmt::format("{:<16}", op);
    for (const auto& c : columns) {
      auto it = cells.find({op, c});
      std::string cell = "-";
      if (it != cells.end()) {
        int pass = 0, fail = 0, unsupported = 0;
        double worst = 0;
        for (const auto* r : it->second) {
          if (r->status == Status::Pass)
            ++pass;
          else if (r->status == Status::Unsupported)
            ++unsupported;
          else
            ++fail;
          if (r->status != Status::Unsupported) worst = std::max(worst, r->error);
        }
        if (fail > 0)
          cell = fmt::format("FAIL {}/{}", fail, it->second.size());
        else if (pass == 0)
          cell = "unsupported";
        else
          cell = fmt::format("ok {:.1e}{}", worst, unsupported > 0 ? "*" : "");
      }
      out += fmt::format(" {:>20}", cell);
    }
    out += "\n";
  }
  return out;
}

}  // namespace porta::check
