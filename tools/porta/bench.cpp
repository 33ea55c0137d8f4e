// `porta bench`: sweeps of cases (ops, the MoE layer, whole models) over backends, dtypes and
// token counts, with the median and spread of wall time, throughput, the simulated devices'
// modelled time and the error against the reference backend; written as markdown, CSV, JSON or
// JSON lines, compared between runs, plotted as SVG. docs/bench.md is the user's guide.
#include <cstdio>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <porta/porta.hpp>

#include "bench_case.hpp"
#include "bench_output.hpp"
#include "bench_runner.hpp"
#include "commands.hpp"

namespace porta::cli {

namespace {

struct BenchArgs {
  std::string suite;
  std::vector<std::string> cases;
  std::vector<std::string> backends;
  std::vector<std::int64_t> tokens;
  std::vector<std::string> dtypes;
  int repetitions = 0;  // 0: the suite's
  int warmup = 1;
  double max_seconds = 0;          // 0: the suite's
  std::vector<std::string> sizes;  // "key=value"
  std::int64_t hidden = 0, experts = 0, top_k = 0, inter = 0;
  bool no_check = false;
  std::int64_t check_tokens = 64;
  bool no_progress = false;
  bool list = false;
  std::string format = "md";
  std::string output;
  std::string plot;
  std::vector<std::string> compare;
  std::uint64_t seed = 7;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(ErrorCode::Io, fmt::format("{}: cannot open the file for writing", path));
  out << text;
  out.close();
  if (!out) throw Error(ErrorCode::Io, fmt::format("{}: writing failed", path));
}

bench::Dims parse_sizes(const BenchArgs& a) {
  bench::Dims dims;
  for (const auto& s : a.sizes) {
    const auto eq = s.find('=');
    std::int64_t value = 0;
    bool ok = eq != std::string::npos && eq > 0 && eq + 1 < s.size();
    if (ok) {
      try {
        std::size_t used = 0;
        value = std::stoll(s.substr(eq + 1), &used);
        ok = used == s.size() - eq - 1;
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--set '{}' is not NAME=INTEGER (e.g. --set hidden=1024)", s));
    dims[s.substr(0, eq)] = value;
  }
  // The MoE layer's historical options are --set shorthands.
  for (const auto& [key, value] : {std::pair<const char*, std::int64_t>{"hidden", a.hidden},
                                   {"experts", a.experts},
                                   {"top_k", a.top_k},
                                   {"inter", a.inter}})
    if (value > 0) dims[key] = value;
  return dims;
}

// Each size applies to every chosen case that has it; a size no chosen case has is a mistake.
void apply_sizes(std::vector<bench::CaseSpec>& specs, const bench::Dims& dims) {
  for (const auto& [key, value] : dims) {
    bool used = false;
    for (auto& spec : specs)
      if (spec.config.dims.count(key)) {
        bench::override_dims(spec, {{key, value}});
        used = true;
      }
    if (!used) {
      std::set<std::string> known;
      for (const auto& spec : specs)
        for (const auto& [k, v] : spec.config.dims) known.insert(k);
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("no chosen bench case has a size '{}' (their sizes: {})", key,
                              fmt::join(known, ", ")));
    }
  }
}

DType parse_bench_dtype(const std::string& name) {
  const DType t = parse_dtype(name);
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("bench dtypes must be f32, f16 or bf16, not {}", name));
  return t;
}

std::string listing() {
  std::string out = "Cases (family:config; the first config is the default):\n";
  for (const auto* f : bench::case_families()) {
    out +=
        fmt::format("\n  {} [{}]: {}; T = {}\n", f->name, f->kind, f->summary, f->tokens_meaning);
    for (const auto& c : f->configs) {
      std::vector<std::string> dims;
      for (const auto& [k, v] : c.dims) dims.push_back(fmt::format("{}={}", k, v));
      out += fmt::format("    {:<14} {} ({})\n", c.name, c.summary, fmt::join(dims, " "));
    }
  }
  out += "\nSuites:\n";
  for (const auto& s : bench::suites())
    out += fmt::format("  {:<8} {}: {} at T={} in {}\n", s.name, s.summary, fmt::join(s.cases, " "),
                       fmt::join(s.tokens, ","), fmt::join(s.dtypes, ","));
  return out;
}

int run_compare(const BenchArgs& a) {
  const auto first = bench::read_records(a.compare[0]);
  const auto second = bench::read_records(a.compare[1]);
  fmt::print("{}", bench::compare_runs(first, second, a.compare[0], a.compare[1]));
  return 0;
}

int run_bench(const BenchArgs& a) {
  if (a.list) {
    fmt::print("{}", listing());
    return 0;
  }
  if (!a.compare.empty()) return run_compare(a);
  const bench::Format format = bench::parse_format(a.format);

  // The suite gives defaults; explicit options win. Without --suite or --case, the demo suite.
  const bench::Suite& suite = bench::suite(a.suite.empty() ? "demo" : a.suite);
  bench::SweepOptions o;
  for (const auto& c : a.cases.empty() ? suite.cases : a.cases)
    o.cases.push_back(bench::parse_case(c));
  apply_sizes(o.cases, parse_sizes(a));
  for (const auto& d : a.dtypes.empty() ? suite.dtypes : a.dtypes)
    o.dtypes.push_back(parse_bench_dtype(d));
  o.tokens = a.tokens.empty() ? suite.tokens : a.tokens;
  // Plain `porta bench` compares every available backend (the reference too) on the demo's
  // cases; `--suite demo` (make demo) runs the suite's own backends, the reference not among them.
  const bool named = !a.suite.empty() || !a.cases.empty();
  o.backends = bench::resolve_backends(!a.backends.empty() ? a.backends
                                       : named             ? suite.backends
                                                           : std::vector<std::string>{});
  o.repetitions = a.repetitions > 0 ? a.repetitions : suite.repetitions;
  o.max_seconds = a.max_seconds > 0 ? a.max_seconds : suite.max_seconds;
  o.warmup = a.warmup;
  o.check = !a.no_check;
  o.check_tokens = a.check_tokens;
  o.seed = a.seed;

  std::vector<bench::Record> records;
  {
    bench::ProgressLine progress(!a.no_progress && bench::stderr_is_terminal());
    records = bench::run_sweep(o, [&](const bench::ProgressEvent& e) { progress(e); });
  }
  const std::string text = bench::format_records(records, format);
  if (a.output.empty()) {
    fmt::print("{}", text);
  } else {
    write_text(a.output, text);
    if (format != bench::Format::Markdown) fmt::print("{}", bench::to_markdown(records));
    fmt::print("\nwrote {} records to {}\n", records.size(), a.output);
  }
  if (!a.plot.empty()) {
    write_text(a.plot, bench::throughput_svg(records));
    fmt::print("wrote the throughput chart to {}\n", a.plot);
  }
  std::fflush(stdout);
  int failures = 0;
  for (const auto& r : records)
    if (r.status == bench::Status::Failed) {
      ++failures;
      fmt::print(stderr, "porta bench: {} on {} failed: {}\n", r.key(), r.backend, r.message);
    }
  return failures > 0 ? kExitFailure : 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("-s,--suite", a->suite, "A named sweep (demo, ops, layers, models, tiny; --list)");
  app.add_option("-c,--case", a->cases, "Cases to run, family[:config] (default: the suite's)")
      ->delimiter(',');
  app.add_option("-b,--backend", a->backends,
                 "Backends to compare, e.g. cpu,opencl,npu-sim:910b2 (default: every available)")
      ->delimiter(',');
  app.add_option("-t,--tokens", a->tokens, "Token counts (rows, sequence length) to sweep")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
  app.add_option("--dtype", a->dtypes, "Dtypes to sweep: f32, bf16, f16 (weights of layers)")
      ->delimiter(',');
  app.add_option("-r,--repetitions", a->repetitions, "Timed runs per case and backend (at most)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", a->warmup, "Untimed runs before timing")->check(CLI::Range(0, 1000));
  app.add_option("--max-time", a->max_seconds,
                 "Stop timing a case on a backend after this many seconds (at least one run)")
      ->check(CLI::PositiveNumber);
  app.add_option("--set", a->sizes, "Override sizes of the chosen cases: NAME=VALUE,...")
      ->delimiter(',');
  app.add_option("--hidden", a->hidden, "Shorthand for --set hidden=N")->check(CLI::PositiveNumber);
  app.add_option("--experts", a->experts, "Shorthand for --set experts=N")
      ->check(CLI::PositiveNumber);
  app.add_option("--top-k", a->top_k, "Shorthand for --set top_k=N")->check(CLI::PositiveNumber);
  app.add_option("--inter", a->inter, "Shorthand for --set inter=N (expert width)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-check", a->no_check, "Skip the error check against the reference backend");
  app.add_option("--check-tokens", a->check_tokens,
                 "Check longer cases on their first N tokens where that is exact (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("-f,--format", a->format, "Output format: md (default), csv, json, jsonl");
  app.add_option("-o,--output", a->output,
                 "Write the records to FILE (the markdown table still goes to stdout)");
  app.add_option("--plot", a->plot, "Write a throughput bar chart to FILE.svg");
  app.add_option("--compare", a->compare, "Compare two runs written with --format json or jsonl")
      ->expected(2);
  app.add_option("--seed", a->seed, "Seed of the random weights and inputs");
  app.add_flag("--no-progress", a->no_progress,
               "No progress line on stderr (it is only drawn on a terminal)");
  app.add_flag("--list", a->list, "List the cases, their configurations and the suites");
  return [a] { return run_bench(*a); };
}

}  // namespace porta::cli
