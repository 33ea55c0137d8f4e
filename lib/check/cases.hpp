// Internals of the conformance harness: how a case builds its graph and inputs.
#pragma once

#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <porta/graph.hpp>

namespace porta::check::detail {

// Builds one case's graph. The same case is built twice from the same seed: once storing float
// tensors in the case's dtype (run on the backend under test) and once storing them in f32 (run on
// the reference); values are rounded through the case's dtype either way, so both see the same
// numbers.
struct CaseBuilder {
  Graph graph;
  std::map<std::string, Tensor> inputs;
  DType dtype = DType::F32;        // how float tensors are stored in this build
  DType value_dtype = DType::F32;  // the case's dtype: values are representable in it
  std::mt19937_64 rng;

  Value input(const std::string& name, Shape shape, float lo = -1.0f, float hi = 1.0f);
  Value weight(const std::string& name, Shape shape, float lo = -1.0f, float hi = 1.0f);
  Value input_f32(const std::string& name, Shape shape, float lo = -1.0f,
                  float hi = 1.0f);                          // always f32
  Value exact_input(const std::string& name, Tensor value);  // integers and fixed tables
  Tensor random_tensor(Shape shape, float lo, float hi, DType store);
  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi);
};

struct CaseDef {
  OpKind op;
  std::string label;
  std::function<std::vector<Value>(CaseBuilder&)> build;  // returns the values to compare
};

// Appends one case (the quantized ops' cases live in quant_cases.cpp).
void add_case(std::vector<CaseDef>& cases, OpKind op, std::string label,
              std::function<std::vector<Value>(CaseBuilder&)> build);

// Every op's cases, in the op list's order. Each op of the list has its cases_<name> (cases.cpp),
// so an op without conformance cases does not link.
const std::vector<CaseDef>& all_cases();

#define PORTA_CHECK_CASES_DECLARATION(kind, name, ...) void cases_##name(std::vector<CaseDef>& c);
PORTA_OP_LIST(PORTA_CHECK_CASES_DECLARATION)
#undef PORTA_CHECK_CASES_DECLARATION

// A consistent random routing (distinct experts per token, perm stably sorted by expert) made
// without the router, for checking the MoE companion ops on their own.
struct RandomRouting {
  Tensor weights, offsets, perm, inv;
};
RandomRouting random_routing(std::mt19937_64& rng, std::int64_t tokens, std::int64_t experts,
                             std::int64_t k);

}  // namespace porta::check::detail
