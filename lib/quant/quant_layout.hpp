// The one consistency check of a quantized weight's layout (internal), shared by validate() and
// the shape rules of the quantized ops, so a loader and a graph builder reject the same things
// with the same words.
#pragma once

#include <optional>
#include <string>

#include <porta/quant.hpp>

namespace porta::detail {

// The three tensors of a quantized weight as shapes and dtypes (values need not exist yet).
struct QuantLayout {
  Shape data_shape;
  DType data_dtype = DType::I8;
  Shape scale_shape;
  DType scale_dtype = DType::F32;
  bool has_zero = false;
  Shape zero_shape;
  DType zero_dtype = DType::I8;
};

// What is wrong, naming the field first ("scale: shape [4, 3] should be [4, 2] ..."), or nothing.
// `logical` is the weight's [..., N, K]; the scheme's own fields (group, block, zero point with
// FP8, scale dtype) are checked too.
std::optional<std::string> quant_layout_problem(const QuantLayout& layout, const Shape& logical,
                                                const QuantScheme& scheme);
// The scheme alone against K (group divides K, int4 needs even K, ...), for rules that know K
// before they know the tensors.
std::optional<std::string> quant_scheme_problem(const QuantScheme& scheme, std::int64_t k);

// The effective group along K (group_k, or K when 0) and the groups per row.
std::int64_t quant_group(const QuantScheme& scheme, std::int64_t k);
std::int64_t quant_groups(const QuantScheme& scheme, std::int64_t k);

}  // namespace porta::detail
