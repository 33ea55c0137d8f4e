// What the lowering of one node chose, in words, for Executable::describe() and PORTA_VERBOSE:
// the oneDNN implementation of each primitive it created (logged by PrimitiveCall itself), or the
// porta kernel it built. The cpu backend's compile() opens a log around each node it lowers;
// outside compile() nothing is recorded.
#pragma once

#include <string>

namespace porta::detail::cpu {

// Appends `what` to the log of the node being lowered, if one is open on this thread.
void log_choice(const std::string& what);

// Opens a log for this thread's next lowering; take() closes it and returns what was logged.
class LoweringLog {
 public:
  LoweringLog();
  ~LoweringLog();
  LoweringLog(const LoweringLog&) = delete;
  LoweringLog& operator=(const LoweringLog&) = delete;
  std::string take();
  void append(const std::string& what);

 private:
  std::string text_;
  LoweringLog* outer_;
};

}  // namespace porta::detail::cpu
