// Device-side checks of data-dependent index tables (kernels/checks.cl): the lowering side (a
// check kernel per table, its record slot) and the wording of each failure, which follows the
// reference backend's messages (lib/reference/moe_grouped.cpp, embedding.cpp, attention.cpp).
#include <limits>

#include <fmt/format.h>

#include "opencl_lowering.hpp"

namespace porta::detail::opencl {

namespace {

constexpr cl_int kCheckRange = 0, kCheckOffsets = 1;  // kernels/checks.cl
constexpr std::size_t kCheckLocal = 256;

}  // namespace

DeviceArg Bindings::check_record(std::size_t slot) const {
  if (checks_ == nullptr)
    throw Error(ErrorCode::Internal, "opencl: an op enqueued a check but its plan has no records");
  return {checks_->mem(), static_cast<cl_ulong>((first_check_ + slot) * sizeof(CheckRecord))};
}

void IndexCheckLaunch::enqueue(const Bindings& b, Enqueuer& q, DeviceArg table) const {
  set_args(kernel, table, dtype, count, mode, lo, hi, b.check_record(slot),
           LocalBytes{local * sizeof(cl_long)});
  q.launch(kernel, {local}, {local}, "check_indices");
}

IndexCheckLaunch add_index_check(Device& device, LoweredOp& op, DType dtype, std::int64_t count,
                                 bool offsets, std::int64_t lo, std::int64_t hi,
                                 std::function<std::string(const CheckRecord&)> describe) {
  if (!is_index(dtype))
    throw Error(ErrorCode::Internal,
                fmt::format("opencl: an index check of a {} table", dtype_name(dtype)));
  op.kernels.push_back(device.kernel("check_indices"));
  IndexCheckLaunch launch;
  launch.kernel = op.kernels.back().get();
  launch.local = device.work_group_size(launch.kernel, kCheckLocal);
  launch.slot = op.checks.size();
  launch.dtype = dtype_code(dtype);
  launch.mode = offsets ? kCheckOffsets : kCheckRange;
  launch.count = count;
  launch.lo = lo;
  launch.hi = hi;
  op.checks.push_back({std::move(describe)});
  return launch;
}

IndexCheckLaunch add_offsets_check(Device& device, LoweredOp& op, const std::string& label,
                                   std::int64_t count, std::int64_t rows) {
  return add_index_check(
      device, op, DType::I32, count, true, 0, rows, [label, count, rows](const CheckRecord& r) {
        if (r.reason == 0) return fmt::format("{}: offsets[0] = {} is negative", label, r.value);
        if (r.reason == 1)
          return fmt::format(
              "{}: offsets must be non-decreasing, but offsets[{}] = {} < offsets[{}] = {}", label,
              r.position, r.value, r.position - 1, r.previous);
        return fmt::format("{}: offsets[{}] = {} exceeds the {} rows", label, count - 1, r.value,
                           rows);
      });
}

IndexCheckLaunch add_perm_check(Device& device, LoweredOp& op, const std::string& label,
                                std::int64_t count) {
  return add_index_check(device, op, DType::I32, count, false, 0,
                         std::numeric_limits<cl_long>::max(), [label](const CheckRecord& r) {
                           return fmt::format(
                               "{}: perm[{}] = {} is negative (entries are assignment indices, "
                               "or the sentinel T*K for padding)",
                               label, r.position, r.value);
                         });
}

IndexCheckLaunch add_inv_check(Device& device, LoweredOp& op, const std::string& label,
                               std::int64_t count, std::int64_t rows) {
  return add_index_check(device, op, DType::I32, count, false, -1, rows,
                         [label, rows](const CheckRecord& r) {
                           return fmt::format("{}: inv[{}] = {} is neither -1 nor a row in [0, {})",
                                              label, r.position, r.value, rows);
                         });
}

}  // namespace porta::detail::opencl
