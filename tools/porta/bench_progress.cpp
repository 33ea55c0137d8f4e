// The progress line of long sweeps, on stderr and only on a terminal: a pipe or a log file gets
// just the results.
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "bench_output.hpp"

namespace porta::cli::bench {

namespace {

std::string clock_text(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

}  // namespace

bool stderr_is_terminal() { return isatty(fileno(stderr)) == 1; }

ProgressLine::ProgressLine(bool enabled)
    : enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

ProgressLine::~ProgressLine() {
  if (enabled_ && last_width_ > 0) fmt::print(stderr, "\r{:{}}\r", "", last_width_);
}

void ProgressLine::operator()(const ProgressEvent& e) {
  if (!enabled_) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // Runs differ by orders of magnitude (T=1 against T=512), so this is the plainest estimate:
  // the mean time per finished run so far, times the runs left.
  const std::string left =
      e.done > 0 ? clock_text(elapsed / e.done * (e.total - e.done)) + " left" : "estimating";
  std::string line = e.now.empty()
                         ? fmt::format("[{}/{}] done in {}", e.done, e.total, clock_text(elapsed))
                         : fmt::format("[{}/{}] {} elapsed, {}  {}", e.done, e.total,
                                       clock_text(elapsed), left, e.now);
  if (line.size() > 118) line = line.substr(0, 117) + "~";
  const std::size_t width = line.size();
  fmt::print(stderr, "\r{}{:{}}", line, "", last_width_ > width ? last_width_ - width : 0);
  std::fflush(stderr);
  last_width_ = std::max(last_width_, width);
}

}  // namespace porta::cli::bench
