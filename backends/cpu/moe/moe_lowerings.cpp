// The cpu backend's MoE ops: the router (token choice and hash mode; expert choice is declined
// and placed on the reference backend), permute and combine, and the experts as grouped GEMMs.
// The kernels live in the other files of this folder; moe_cpu.hpp describes them.
#include "moe/moe_cpu.hpp"

namespace porta::detail::cpu {

std::span<const OpLowering> moe_lowerings() {
  static const OpLowering table[] = {
      {OpKind::MoeRouter, moe::router_supports, moe::lower_router},
      {OpKind::MoePermute, moe::permute_supports, moe::lower_permute},
      {OpKind::GroupedMatmul, moe::grouped_supports, moe::lower_grouped},
      {OpKind::MoeExperts, moe::experts_supports, moe::lower_experts},
      {OpKind::MoeCombine, moe::combine_supports, moe::lower_combine},
  };
  return table;
}

}  // namespace porta::detail::cpu
