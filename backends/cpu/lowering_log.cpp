#include "lowering_log.hpp"

namespace porta::detail::cpu {

namespace {
thread_local LoweringLog* current = nullptr;
thread_local std::string* current_text = nullptr;
}  // namespace

LoweringLog::LoweringLog() : outer_(current) {
  current = this;
  current_text = &text_;
}

LoweringLog::~LoweringLog() {
  current = outer_;
  current_text = outer_ != nullptr ? &outer_->text_ : nullptr;
}

std::string LoweringLog::take() {
  std::string text = std::move(text_);
  text_.clear();
  return text;
}

void log_choice(const std::string& what) {
  if (current_text == nullptr) return;
  if (!current_text->empty()) *current_text += "; ";
  *current_text += what;
}

}  // namespace porta::detail::cpu
