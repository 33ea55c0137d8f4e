// Router attribute values by name, as configs and the command line spell them. One table per
// enum drives both directions, so a name can never parse to a value that prints differently.
#include <array>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <porta/error.hpp>
#include <porta/moe.hpp>

namespace porta::moe {
namespace {

template <class Enum, std::size_t N>
using NameTable = std::array<std::pair<Enum, std::string_view>, N>;

constexpr NameTable<Score, 4> kScoreNames{{{Score::Softmax, "softmax"},
                                           {Score::Sigmoid, "sigmoid"},
                                           {Score::SqrtSoftplus, "sqrt_softplus"},
                                           {Score::Identity, "identity"}}};
constexpr NameTable<SelectOn, 2> kSelectOnNames{
    {{SelectOn::Score, "score"}, {SelectOn::Logit, "logit"}}};
constexpr NameTable<GroupScore, 2> kGroupScoreNames{
    {{GroupScore::Max, "max"}, {GroupScore::Top2Sum, "top2_sum"}}};
constexpr NameTable<Mode, 3> kModeNames{{{Mode::TokenChoice, "token_choice"},
                                         {Mode::Hash, "hash"},
                                         {Mode::ExpertChoice, "expert_choice"}}};

template <class Enum, std::size_t N>
Enum parse_name(const NameTable<Enum, N>& table, std::string_view what, std::string_view name) {
  for (const auto& [value, spelling] : table)
    if (spelling == name) return value;
  std::string accepted;
  for (const auto& entry : table) {
    if (!accepted.empty()) accepted += ", ";
    accepted += entry.second;
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown moe router {} '{}' (accepted: {})", what, name, accepted));
}

template <class Enum, std::size_t N>
std::string_view name_of(const NameTable<Enum, N>& table, Enum value) noexcept {
  for (const auto& [entry, spelling] : table)
    if (entry == value) return spelling;
  return "unknown";
}

}  // namespace

Score parse_score(std::string_view name) { return parse_name(kScoreNames, "score", name); }
SelectOn parse_select_on(std::string_view name) {
  return parse_name(kSelectOnNames, "select_on", name);
}
GroupScore parse_group_score(std::string_view name) {
  return parse_name(kGroupScoreNames, "group_score", name);
}
Mode parse_mode(std::string_view name) { return parse_name(kModeNames, "mode", name); }

std::string_view to_string(Score value) noexcept { return name_of(kScoreNames, value); }
std::string_view to_string(SelectOn value) noexcept { return name_of(kSelectOnNames, value); }
std::string_view to_string(GroupScore value) noexcept { return name_of(kGroupScoreNames, value); }
std::string_view to_string(Mode value) noexcept { return name_of(kModeNames, value); }

}  // namespace porta::moe
