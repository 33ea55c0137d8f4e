// q8_kernels.hpp's dispatch: which integer implementation this CPU runs (under PORTA_GGML_ISA's
// cap, which block_dot.cpp's choice of f32 kernels also reads) and the calls into it. Compiled
// without ISA flags: nothing here may execute an instruction the CPU lacks.
#include "ggml/q8_kernels.hpp"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "ggml/block_dot.hpp"

namespace porta::detail::cpu::ggml {

namespace {

// available_q8_isas() less what PORTA_GGML_ISA rules out.
std::vector<Q8Isa> allowed_q8_isas() {
  std::vector<Q8Isa> isas = available_q8_isas();
  const GgmlIsaCap cap = ggml_isa_cap();
  if (cap == GgmlIsaCap::Plain) isas.clear();
  if (cap == GgmlIsaCap::Avx2) std::erase(isas, Q8Isa::Avx512Vnni);
  return isas;
}

}  // namespace

GgmlIsaCap parse_ggml_isa_cap(const char* value) {
  if (value == nullptr || *value == '\0') return GgmlIsaCap::None;
  const std::string_view v(value);
  if (v == "avx2") return GgmlIsaCap::Avx2;
  if (v == "plain") return GgmlIsaCap::Plain;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("PORTA_GGML_ISA={}: not a cap on the ggml block kernels' instruction "
                          "set (accepted: avx2, plain; unset for the best the CPU has)",
                          v));
}

GgmlIsaCap ggml_isa_cap() {
  // A throw leaves the static uninitialised, so every later call throws too.
  static const GgmlIsaCap cap = parse_ggml_isa_cap(std::getenv("PORTA_GGML_ISA"));
  return cap;
}

std::vector<Q8Isa> available_q8_isas() {
  // The f32 kernels' ISAs are the same feature sets (AVX2 with FMA and F16C; AVX-512F/BW/VL
  // on top); the integer kernels need VNNI besides for AVX-512.
  const std::vector<BlockIsa> block = available_block_isas();
  const auto has = [&](BlockIsa isa) { return std::ranges::count(block, isa) > 0; };
  std::vector<Q8Isa> isas;
  if (has(BlockIsa::Avx2)) isas.push_back(Q8Isa::Avx2);
  if (has(BlockIsa::Avx512) && __builtin_cpu_supports("avx512vnni"))
    isas.push_back(Q8Isa::Avx512Vnni);
  return isas;
}

bool has_q8_isa() {
  static const bool has = !allowed_q8_isas().empty();
  return has;
}

Q8Isa best_q8_isa() {
  static const Q8Isa best = [] {
    const std::vector<Q8Isa> isas = allowed_q8_isas();
    if (isas.empty())
      throw Error(ErrorCode::Unsupported,
                  "no integer ggml_q8 kernels here (they need AVX2 with FMA and F16C, and "
                  "PORTA_GGML_ISA not `plain`)");
    return isas.back();
  }();
  return best;
}

const char* q8_isa_name(Q8Isa isa) {
  switch (isa) {
    case Q8Isa::Avx512Vnni: return "avx512_vnni";
    case Q8Isa::Avx2: break;
  }
  return "avx2";
}

bool has_q8_kernel(Q8Isa, gguf::GgmlType type) {
  // Both implementations cover the same types (every test of them runs on each).
  using G = gguf::GgmlType;
  return type == G::Q8_0 || type == G::Q4_0 || type == G::Q4_1 || type == G::Q5_0 ||
         type == G::Q5_1 || type == G::IQ4_NL || type == G::Q4_K || type == G::Q5_K ||
         type == G::Q6_K;
}

void fill_sub_block_sums(std::int64_t r, Q8Rows& out) {
  const std::int64_t subs = out.k / out.sub, per_super = out.super / out.sub;
  const std::int8_t* q = out.codes(r);
  for (std::int64_t j = 0; j < subs; ++j) {
    int sum = 0;
    for (std::int64_t i = 0; i < out.sub; ++i) sum += q[j * out.sub + i];
    const auto at = static_cast<std::size_t>(r * subs + j);
    out.sums[at] = out.d[static_cast<std::size_t>(r * (subs / per_super) + j / per_super)] *
                   static_cast<float>(sum);
    if (!out.code_sums.empty()) out.code_sums[at] = static_cast<std::int16_t>(sum);  // <= 4064
  }
}

void shape_q8_common(gguf::GgmlType type, std::int64_t rows, std::int64_t k, std::int64_t super,
                     std::int64_t sub, Q8Rows& out) {
  if (k <= 0 || k % super != 0)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("a {} row of {} elements is not a whole number of {}-element blocks",
                            gguf::type_name(type), k, super));
  out.weight_type = type;
  out.rows = rows;
  out.k = k;
  out.super = super;
  out.sub = sub;
  out.q.resize(static_cast<std::size_t>(rows * k));
  out.d.resize(static_cast<std::size_t>(rows * (k / super)));
  out.sums.resize(static_cast<std::size_t>(rows * (k / sub)));
}

bool has_q8_kernel(gguf::GgmlType type) {
  return has_q8_isa() && has_q8_kernel(best_q8_isa(), type);
}

void shape_q8_rows(Q8Isa isa, gguf::GgmlType type, std::int64_t rows, std::int64_t k,
                   Q8Rows& out) {
  if (isa == Q8Isa::Avx512Vnni) {
    shape_q8_rows_avx512(type, rows, k, out);
  } else {
    shape_q8_rows_avx2(type, rows, k, out);
  }
  out.isa = isa;
}

void quantize_q8_rows(const float* x, std::int64_t ldx, std::int64_t first, std::int64_t count,
                      Q8Rows& out) {
  if (out.isa == Q8Isa::Avx512Vnni) return quantize_q8_rows_avx512(x, ldx, first, count, out);
  quantize_q8_rows_avx2(x, ldx, first, count, out);
}

void round_q8_row(gguf::Q8Blocks blocks, const float* x, std::int64_t k, float* out) {
  if (best_q8_isa() == Q8Isa::Avx512Vnni) return round_q8_row_avx512(blocks, x, k, out);
  round_q8_row_avx2(blocks, x, k, out);
}

void q8_matmul_serial(const std::byte* w, std::int64_t n_rows, const Q8Rows& x, std::int64_t first,
                      std::int64_t count, float* y, std::int64_t ldy) {
  if (x.isa == Q8Isa::Avx512Vnni) return q8_matmul_avx512(w, n_rows, x, first, count, y, ldy);
  q8_matmul_avx2(w, n_rows, x, first, count, y, ldy);
}

}  // namespace porta::detail::cpu::ggml
