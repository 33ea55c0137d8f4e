// panel_gemm.hpp: the choice between the AVX-512 and AVX2 builds of the expert-block GEMM.
#include "moe/panel_gemm.hpp"

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta::detail::cpu::moe {

std::size_t panel_scratch_floats(DotIsa isa, std::int64_t k) {
  switch (isa) {
    case DotIsa::Avx512: return panel_scratch_avx512(k);
    case DotIsa::Avx2: return panel_scratch_avx2(k);
    case DotIsa::Plain: break;
  }
  return 0;
}

std::int64_t panel_chunk_rows(DotIsa isa, std::int64_t k) {
  switch (isa) {
    case DotIsa::Avx512: return panel_chunk_rows_avx512(k);
    case DotIsa::Avx2: return panel_chunk_rows_avx2(k);
    case DotIsa::Plain: break;
  }
  return 0;
}

std::size_t packed_x_floats(DotIsa isa, std::int64_t rows, std::int64_t k) {
  switch (isa) {
    case DotIsa::Avx512: return packed_x_floats_avx512(rows, k);
    case DotIsa::Avx2: return packed_x_floats_avx2(rows, k);
    case DotIsa::Plain: break;
  }
  throw Error(ErrorCode::Internal, "packed x: no plain kernel");
}

void pack_x_chunk(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows, std::int64_t k,
                  std::int64_t chunk, float* packed) {
  switch (isa) {
    case DotIsa::Avx512: return pack_x_chunk_avx512(x, ldx, rows, k, chunk, packed);
    case DotIsa::Avx2: return pack_x_chunk_avx2(x, ldx, rows, k, chunk, packed);
    case DotIsa::Plain: break;
  }
  throw Error(ErrorCode::Internal, "packed x: no plain kernel");
}

void packed_panel_gemm(DotIsa isa, const float* packed, std::int64_t rows, const float* panel,
                       std::int64_t k, std::int64_t cols, float* y, std::int64_t ldy,
                       float* scratch) {
  const PanelArgs args{packed, 0, rows, panel, false, k, 0, cols, y, ldy, scratch};
  switch (isa) {
    case DotIsa::Avx512: return packed_gemm_avx512(args);
    case DotIsa::Avx2: return packed_gemm_avx2(args);
    case DotIsa::Plain: break;
  }
  throw Error(ErrorCode::Internal, "packed panel GEMM: no plain kernel");
}

void panel_gemm_isa(DotIsa isa, const float* x, std::int64_t ldx, std::int64_t rows, const void* w,
                    DType wdtype, std::int64_t k, std::int64_t n_begin, std::int64_t n_end,
                    float* y, std::int64_t ldy, float* scratch) {
  if (wdtype != DType::BF16 && wdtype != DType::F32)
    throw Error(ErrorCode::Internal,
                fmt::format("panel GEMM: weights of dtype {}", dtype_name(wdtype)));
  const PanelArgs args{x, ldx, rows, w, wdtype == DType::BF16, k, n_begin, n_end, y, ldy, scratch};
  switch (isa) {
    case DotIsa::Avx512: return panel_gemm_avx512(args);
    case DotIsa::Avx2: return panel_gemm_avx2(args);
    case DotIsa::Plain: break;
  }
  throw Error(ErrorCode::Internal, fmt::format("panel GEMM: no {} kernel", dot_isa_name(isa)));
}

}  // namespace porta::detail::cpu::moe
