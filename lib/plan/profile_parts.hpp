// Parsers for the parts of a cluster profile, shared by cluster_profile.cpp and chip_spec.cpp.
#pragma once

#include <porta/plan.hpp>

#include "plan/json_fields.hpp"

namespace porta::plan::detail {

ChipSpec parse_chip(const Fields& chip_object);

}  // namespace porta::plan::detail
