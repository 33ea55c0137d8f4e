// The runner of `porta bench`: builds each case once, computes its reference once, and times it on
// every backend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bench_runner.hpp"

namespace porta::cli::bench {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The backends of the project and the build option that adds each, for the "not built in" reason
// (generated from the top-level CMakeLists.txt's list by backends/CMakeLists.txt).
const std::pair<const char*, const char*> kKnownBackends[] = {
    {"reference", ""},
#define PORTA_KNOWN_BACKEND(name, option) {name, option},
#include "porta_known_backends.inc"
#undef PORTA_KNOWN_BACKEND
};

std::string family_of(const std::string& name) { return name.substr(0, name.find(':')); }

BackendTarget resolve_one(const std::string& name, const std::vector<DeviceInfo>& devices) {
  BackendTarget t{name, false, {}, {}};
  for (const auto& d : devices)
    if (d.name == name) {
      t.device = d;
      t.available = d.available;
      t.reason = d.unavailable_reason;
      return t;
    }
  const std::string family = family_of(name);
  std::vector<std::string> siblings;
  for (const auto& d : devices)
    if (family_of(d.name) == family) siblings.push_back(d.name);
  if (!siblings.empty()) {
    // A family may accept device names it does not list (a simulator profile file, "opencl").
    try {
      t.device = device_info(name);
      t.available = t.device.available;
      t.reason = t.device.unavailable_reason;
      return t;
    } catch (const Error&) {
    }
    t.reason = fmt::format("{} has no device '{}' (its devices: {})", family, name,
                           fmt::join(siblings, ", "));
    return t;
  }
  for (const auto& [known, option] : kKnownBackends)
    if (family == known) {
      t.reason = fmt::format("the {} backend is not built into this porta (configure with -D{}=ON)",
                             family, option);
      return t;
    }
  std::vector<std::string> names;
  for (const auto& d : devices) names.push_back(d.name);
  throw Error(ErrorCode::NotFound,
              fmt::format("unknown backend '{}' (devices: {})", name, fmt::join(names, ", ")));
}

// Metrics that count something (cycles, bytes, microseconds, FLOPs, waves) add up over the ops of
// a run; the others (utilisations, busy fractions, cores used) are averaged, weighted by time.
bool is_extensive(const std::string& metric) {
  for (const char* suffix : {"cycles", "_bytes", "_us", "flops", "waves", "_ops", "count"})
    if (metric.ends_with(suffix)) return true;
  return false;
}

// Sums the profile of one run into the record: FLOPs, bytes, modelled device time and metrics.
void add_profile(Record& r, const Profile& profile) {
  r.flops = r.bytes = 0;
  r.modelled_ops = 0;
  r.total_ops = static_cast<int>(profile.ops.size());
  r.metrics.clear();
  double device_us = 0;
  std::map<std::string, double> weight;
  for (const auto& op : profile.ops) {
    r.flops += op.flops;
    r.bytes += op.bytes;
    if (op.device_us >= 0) {
      device_us += op.device_us;
      ++r.modelled_ops;
    }
    const double w = op.device_us >= 0 ? op.device_us : op.time_us;
    for (const auto& [key, value] : op.metrics) {
      if (is_extensive(key)) {
        r.metrics[key] += value;
      } else {
        r.metrics[key] += value * w;
        weight[key] += w;
      }
    }
  }
  for (const auto& [key, w] : weight) r.metrics[key] = w > 0 ? r.metrics[key] / w : 0;
  if (r.modelled_ops > 0) r.device_ms = device_us * 1e-3;
}

std::string placement_note(const Executable& exe) {
  std::set<std::string> ops, where;
  int moved = 0;
  for (const auto& p : exe.placement())
    if (!p.reason.empty()) {
      ++moved;
      ops.insert(p.op);
      where.insert(p.backend);
    }
  if (moved == 0) return "";
  return fmt::format("{} of {} nodes on {} ({})", moved, exe.placement().size(),
                     fmt::join(where, ", "), fmt::join(ops, ", "));
}

// The first `rows` rows (along axis 0) of `t`, sharing its memory.
Tensor prefix_rows(const Tensor& t, std::int64_t rows) {
  std::vector<std::int64_t> dims = t.shape().dims();
  dims[0] = rows;
  return Tensor::view(t.data(), Shape(std::move(dims)), t.dtype(), std::make_shared<Tensor>(t));
}

// The worst error over the outputs; a reference computed on a prefix of the tokens is compared
// with the same prefix of the output.
double worst_error(const std::map<std::string, Tensor>& got,
                   const std::map<std::string, Tensor>& want, bool prefix) {
  double worst = 0;
  for (const auto& [name, w] : want) {
    auto it = got.find(name);
    if (it == got.end()) return INFINITY;
    Tensor g = it->second;
    if (prefix && g.shape().rank() > 0 && g.shape().rank() == w.shape().rank() &&
        w.shape()[0] < g.shape()[0])
      g = prefix_rows(g, w.shape()[0]);
    worst = std::max(worst, normalised_error(g, w));
  }
  return worst;
}

struct CaseRun {
  const CaseSpec* spec;
  DType dtype;
  std::int64_t tokens;
  std::string label() const {
    return fmt::format("{} {} T={}", spec->id(), dtype_name(dtype), tokens);
  }
};

Record blank_record(const CaseRun& c, const BackendTarget& t, const BuiltCase* built) {
  Record r;
  r.case_id = c.spec->id();
  r.case_kind = c.spec->family->kind;
  r.description = built ? built->description : c.spec->config.summary;
  r.dtype = std::string(dtype_name(c.dtype));
  r.tokens = c.tokens;
  r.backend = t.name;
  r.device = t.device.description;
  r.device_kind = t.device.kind;
  r.build = build_info();
  static const HostInfo host = host_info();
  r.host = host;
  return r;
}

// Times `built` on one backend. `reference` is the reference output (null: no check), or is
// filled with this backend's output when `fills_reference`.
Record measure(const CaseRun& c, const BackendTarget& t, const BuiltCase& built,
               const SweepOptions& o, std::map<std::string, Tensor>* reference,
               bool fills_reference, std::int64_t checked_tokens) {
  Record r = blank_record(c, t, &built);
  const auto compile_start = Clock::now();
  Executable exe = compile(built.graph, {.backend = t.name});
  r.compile_ms = ms_since(compile_start);
  r.message = placement_note(exe);
  r.warmup = o.warmup;
  // The first run pays what backends do once, lazily (an OpenCL program build takes seconds on
  // PoCL): it is reported on its own and is never a sample, whatever --warmup says.
  const auto first_start = Clock::now();
  std::map<std::string, Tensor> first = exe.run(built.inputs);
  r.first_run_ms = ms_since(first_start);
  std::vector<double> samples;
  bool slow = false;
  for (int w = 1; w < o.warmup && !slow; ++w) {
    const auto start = Clock::now();
    exe.run(built.inputs);
    const double ms = ms_since(start);
    // A run after the first that takes longer than the whole time budget is its own warm-up:
    // steady-state costs dominate it, and another run would double the cost of the case.
    if (ms > o.max_seconds * 1e3) {
      samples.push_back(ms);
      r.warmup = w;
      slow = true;
      r.message += fmt::format("{}one timed run after {} warm-up: it took longer than --max-time {}s",
                               r.message.empty() ? "" : "; ", w, o.max_seconds);
    }
  }
  double spent_ms = 0;
  for (int rep = 0; !slow && rep < o.repetitions; ++rep) {
    const auto start = Clock::now();
    exe.run(built.inputs);
    const double ms = ms_since(start);
    samples.push_back(ms);
    spent_ms += ms;
    if (spent_ms > o.max_seconds * 1e3) break;
  }
  add_profile(r, exe.profile());
  r.wall = summarise(samples);
  const double seconds = r.wall.median * 1e-3;
  if (seconds > 0) {
    r.gflops = r.flops / seconds * 1e-9;
    r.gbps = r.bytes / seconds * 1e-9;
    r.tokens_per_s = static_cast<double>(c.tokens) / seconds;
  }
  if (r.device_ms && *r.device_ms > 0) r.device_gflops = r.flops / (*r.device_ms * 1e-3) * 1e-9;
  if (fills_reference) *reference = first;
  if (reference && !reference->empty()) {
    r.max_error = worst_error(first, *reference, checked_tokens < c.tokens);
    r.checked_tokens = checked_tokens;
    if (checked_tokens < c.tokens)
      r.message += fmt::format("{}error over the first {} of {} tokens",
                               r.message.empty() ? "" : "; ", checked_tokens, c.tokens);
  }
  return r;
}

Record failed(const CaseRun& c, const BackendTarget& t, const BuiltCase* built,
              const std::string& message) {
  Record r = blank_record(c, t, built);
  r.status = Status::Failed;
  r.message = message;
  return r;
}

}  // namespace

std::vector<BackendTarget> resolve_backends(const std::vector<std::string>& requested) {
  const auto devices = list_devices();
  std::vector<BackendTarget> out;
  if (requested.empty()) {
    for (const auto& d : devices)
      if (d.available) out.push_back({d.name, true, {}, d});
    return out;
  }
  std::set<std::string> seen;
  for (const auto& name : requested)
    if (seen.insert(name).second) out.push_back(resolve_one(name, devices));
  return out;
}

std::vector<Record> run_sweep(const SweepOptions& o, const ProgressFn& progress) {
  std::vector<CaseRun> runs;
  for (const auto& spec : o.cases)
    for (auto dtype : o.dtypes)
      for (auto tokens : o.tokens) runs.push_back({&spec, dtype, tokens});
  int available = 0;
  for (const auto& t : o.backends) available += t.available ? 1 : 0;
  ProgressEvent event{0, static_cast<int>(runs.size()) * available, {}};

  // The reference backend, when benchmarked, runs first: its output is then the check's.
  std::vector<std::size_t> order(o.backends.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_partition(order.begin(), order.end(),
                        [&](std::size_t i) { return o.backends[i].name == "reference"; });

  std::vector<Record> records;
  TensorCache cache;
  cache.set_seed(o.seed);
  const CaseSpec* cached_spec = nullptr;
  for (const auto& c : runs) {
    // Weights are shared by the token counts and dtypes of one case, then freed.
    if (cached_spec != c.spec) cache.clear();
    cached_spec = c.spec;
    std::vector<Record> row(o.backends.size());
    std::optional<BuiltCase> built;
    std::string build_error;
    try {
      built = c.spec->family->build(c.spec->config, {c.dtype, c.tokens, o.seed}, cache);
    } catch (const std::exception& e) {
      build_error = fmt::format("cannot build the case: {}", e.what());
    }
    std::map<std::string, Tensor> reference;
    bool have_reference_target = false;
    for (auto i : order)
      have_reference_target |= o.backends[i].name == "reference" && o.backends[i].available;
    std::string reference_error;
    std::int64_t checked_tokens = c.tokens;
    if (built && o.check && !have_reference_target) {
      try {
        if (progress) progress({event.done, event.total, c.label() + " on reference (check)"});
        if (c.spec->family->prefix_independent && o.check_tokens > 0 && c.tokens > o.check_tokens) {
          // The same weights (from the cache) and the first rows of the same inputs.
          checked_tokens = o.check_tokens;
          const BuiltCase head =
              c.spec->family->build(c.spec->config, {c.dtype, checked_tokens, o.seed}, cache);
          std::map<std::string, Tensor> inputs;
          for (const auto& [name, tensor] : built->inputs)
            inputs[name] = prefix_rows(tensor, checked_tokens);
          reference = compile(head.graph, {.backend = "reference"}).run(inputs);
        } else {
          reference = compile(built->graph, {.backend = "reference"}).run(built->inputs);
        }
      } catch (const std::exception& e) {
        reference_error = fmt::format("no error check: the reference failed: {}", e.what());
      }
    }
    for (auto i : order) {
      const auto& t = o.backends[i];
      if (!t.available) {
        row[i] = blank_record(c, t, built ? &*built : nullptr);
        row[i].status = Status::Skipped;
        row[i].message = t.reason;
        continue;
      }
      if (progress) progress({event.done, event.total, fmt::format("{} on {}", c.label(), t.name)});
      if (!built) {
        row[i] = failed(c, t, nullptr, build_error);
      } else {
        try {
          const bool fills = o.check && t.name == "reference";
          row[i] = measure(c, t, *built, o, o.check ? &reference : nullptr, fills,
                           fills ? c.tokens : checked_tokens);
          if (!reference_error.empty())
            row[i].message += (row[i].message.empty() ? "" : "; ") + reference_error;
        } catch (const std::exception& e) {
          row[i] = failed(c, t, &*built, e.what());
        }
      }
      ++event.done;
    }
    for (auto& r : row) records.push_back(std::move(r));
  }
  if (progress) progress({event.done, event.total, ""});
  return records;
}

}  // namespace porta::cli::bench
