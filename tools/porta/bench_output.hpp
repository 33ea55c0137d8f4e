// What `porta bench` writes: the records as a markdown table, CSV, JSON or JSON lines; the ratio
// table of two runs (--compare); the throughput chart (--plot, SVG); and the progress line.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "bench_record.hpp"
#include "bench_runner.hpp"

namespace porta::cli::bench {

enum class Format { Markdown, Csv, Json, JsonLines };
// "md", "csv", "json", "jsonl"; throws porta::Error (InvalidArgument) listing them.
Format parse_format(const std::string& name);

// The markdown report: the build and host once, one table row per record grouped by case with
// each backend's speed-up over the first, the simulated devices side by side, skipped backends
// with their reasons.
std::string to_markdown(const std::vector<Record>& records);
// The CSV columns, in order; the header row is exactly these, and they change only by addition.
const std::vector<std::string>& csv_columns();
std::string to_csv(const std::vector<Record>& records);
// {"format": "porta-bench", "version": 1, "records": [...]}
std::string to_json_document(const std::vector<Record>& records);
// One record per line.
std::string to_json_lines(const std::vector<Record>& records);
std::string format_records(const std::vector<Record>& records, Format format);

// Reads a file written with --format json or jsonl. Throws porta::Error: NotFound for a missing
// file, CorruptFile naming the file for anything that is not such a run.
std::vector<Record> read_records(const std::string& path);
// A markdown table of B against A for every (case, dtype, T, backend) in both: the median times,
// their ratio and B's speed-up; rows in only one run are listed after it.
std::string compare_runs(const std::vector<Record>& a, const std::vector<Record>& b,
                         const std::string& a_name, const std::string& b_name);

// A grouped bar chart: one group per case, one bar per backend, height the throughput (GFLOP/s,
// or tokens/s when a case has no FLOPs), log-scaled when the bars span more than 30x.
std::string throughput_svg(const std::vector<Record>& records);

// The progress line on stderr: "[3/12] 0:41 left  moe_layer:v2-lite bf16 T=512 on opencl",
// redrawn in place. Silent unless stderr is a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  ~ProgressLine();
  void operator()(const ProgressEvent& event);

 private:
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::size_t last_width_ = 0;
};
bool stderr_is_terminal();

}  // namespace porta::cli::bench
