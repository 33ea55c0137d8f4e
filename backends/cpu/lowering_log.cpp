#include "lowering_log.hpp"

namespace porta::detail::cpu {

namespace {
thread_local LoweringLog* current = nullptr;
}  // namespace

LoweringLog::LoweringLog() : outer_(current) { current = this; }

LoweringLog::~LoweringLog() { current = outer_; }

std::string LoweringLog::take() {
  std::string text = std::move(text_);
  text_.clear();
  return text;
}

void log_choice(const std::string& what) {
  if (current != nullptr) current->append(what);
}

void LoweringLog::append(const std::string& what) {
  if (!text_.empty()) text_ += "; ";
  text_ += what;
}

}  // namespace porta::detail::cpu
