// The ragged grouped expert GEMM on the host side: which tile configuration a device takes, its
// kernels and launch shape (kernels/grouped_gemm.cl for GPUs, kernels/grouped_gemm_cpu.cl for
// CPU devices). Each work-group finds its expert from the offsets on the device, so the routing
// never travels to the host.
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr std::size_t kGpuLocal = 256;              // 16x16, reqd_work_group_size in the kernel
constexpr std::uint64_t kGpuLocalBytes = 8 * 1024;  // the a and b slabs of a 64-row tile
constexpr std::size_t kCpuBlocksPerColumnTile = 8;  // 32 columns in blocks of 4

}  // namespace

const char* to_string(GroupedTiles tiles) { return tiles == GroupedTiles::Cpu ? "cpu" : "gpu"; }

GroupedTiles grouped_tiles(const Device& device) {
  const char* env = std::getenv("PORTA_OPENCL_GROUPED_TILES");
  const std::string_view choice = env != nullptr ? env : "";
  if (choice.empty()) return device.is_cpu() ? GroupedTiles::Cpu : GroupedTiles::Gpu;
  if (choice == "cpu") return GroupedTiles::Cpu;
  if (choice == "gpu") return GroupedTiles::Gpu;
  throw Error(
      ErrorCode::InvalidArgument,
      fmt::format("PORTA_OPENCL_GROUPED_TILES is '{}'; it must be 'cpu', 'gpu' or unset", choice));
}

std::string grouped_gemm_unfit(const Device& device) {
  if (grouped_tiles(device) == GroupedTiles::Cpu) return {};  // any work-group size will do
  if (device.max_work_group() >= kGpuLocal && device.local_memory() >= kGpuLocalBytes) return {};
  return fmt::format(
      "the grouped GEMM kernel's gpu tiles need {} work-items and {} KiB of local memory per "
      "work-group; the device offers {} and {} bytes",
      kGpuLocal, kGpuLocalBytes / 1024, device.max_work_group(), device.local_memory());
}

std::string describe_grouped_gemm(const GroupedGemm& gemm) {
  return fmt::format("porta grouped_gemm, {} tiles {}x{}",
                     gemm.tiles == GroupedTiles::Gpu ? "gpu" : "cpu", gemm.tile_rows,
                     gemm.tile_columns);
}

GroupedGemm make_grouped_gemm(Device& device, std::int64_t rows, std::int64_t hidden,
                              std::int64_t out_features, std::int64_t experts, DType rows_dtype,
                              DType w_dtype, DType out_dtype) {
  GroupedGemm gemm;
  gemm.tiles = grouped_tiles(device);
  const std::int64_t per_expert = experts > 0 ? rows / experts : rows;
  if (gemm.tiles == GroupedTiles::Gpu) {
    // With fewer than 32 rows per expert on average (decode, small batches) most of a 64-row
    // tile would be padding.
    gemm.tile_rows = per_expert < 32 ? 16 : 64;
    gemm.tile_columns = 64;
    gemm.gemm = device.kernel(gemm.tile_rows == 16 ? "grouped_gemm_16" : "grouped_gemm_64");
    gemm.local_size = kGpuLocal;
  } else {
    gemm.tile_rows = per_expert < 24 ? 12 : 48;
    gemm.tile_columns = 32;
    gemm.gemm = device.kernel(gemm.tile_rows == 12 ? "grouped_gemm_cpu_12" : "grouped_gemm_cpu_48");
    // One work-item per 3x4 block of the tile where the device allows it; the kernel loops over
    // the blocks with whatever group size it gets.
    const std::size_t blocks =
        static_cast<std::size_t>(gemm.tile_rows / 3) * kCpuBlocksPerColumnTile;
    gemm.local_size = device.work_group_size(gemm.gemm.get(), blocks);
  }
  gemm.zero_rows = device.kernel("grouped_zero_rows");
  gemm.rows = rows;
  gemm.hidden = hidden;
  gemm.out_features = out_features;
  gemm.experts = experts;
  gemm.rows_dtype = rows_dtype;
  gemm.w_dtype = w_dtype;
  gemm.out_dtype = out_dtype;
  return gemm;
}

void enqueue_grouped_gemm(const GroupedGemm& gemm, Enqueuer& queue, DeviceArg rows, DeviceArg w,
                          DeviceArg offsets, DeviceArg out) {
  const cl_long P = gemm.rows, H = gemm.hidden, N = gemm.out_features, E = gemm.experts;
  if (P == 0 || N == 0) return;
  const cl_int od = dtype_code(gemm.out_dtype);
  set_args(gemm.zero_rows.get(), offsets, out, od, P, N, E);
  queue.launch(gemm.zero_rows.get(), {static_cast<std::size_t>(P)}, {64}, "grouped_zero_rows");
  // Grid dimension 0: the column tiles; dimension 1: every expert's row tiles, at most
  // ceil(P / tile_rows) + E of them (groups past the last tile exit at once).
  const std::size_t column_tiles =
      ceil_div(static_cast<std::size_t>(N), static_cast<std::size_t>(gemm.tile_columns));
  const std::size_t row_slots =
      ceil_div(static_cast<std::size_t>(P), static_cast<std::size_t>(gemm.tile_rows)) +
      static_cast<std::size_t>(E);
  set_args(gemm.gemm.get(), rows, dtype_code(gemm.rows_dtype), w, dtype_code(gemm.w_dtype), offsets,
           out, od, P, H, N, E);
  if (gemm.tiles == GroupedTiles::Gpu)
    queue.launch(gemm.gemm.get(), {column_tiles * 16, row_slots * 16}, {16, 16}, "grouped_gemm");
  else
    queue.launch(gemm.gemm.get(), {column_tiles * gemm.local_size, row_slots}, {gemm.local_size, 1},
                 "grouped_gemm_cpu");
}

}  // namespace porta::detail::opencl
