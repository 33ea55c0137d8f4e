// Reports of a run: a per-op table and a Chrome trace (trace-event JSON, opens in Perfetto).
#include <porta/executable.hpp>

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace porta {

std::string Profile::to_table() const {
  std::vector<const OpProfile*> sorted;
  for (const auto& op : ops) sorted.push_back(&op);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](auto* a, auto* b) { return a->time_us > b->time_us; });
  std::string out = fmt::format("{:<14} {:<28} {:<16} {:>11} {:>11} {:>10} {:>9}\n", "op", "node",
                                "backend", "time (us)", "device (us)", "GFLOP/s", "GB/s");
  for (const auto* op : sorted) {
    const double seconds = (op->device_us >= 0 ? op->device_us : op->time_us) * 1e-6;
    const double gflops = seconds > 0 ? op->flops / seconds * 1e-9 : 0.0;
    const double gbps = seconds > 0 ? op->bytes / seconds * 1e-9 : 0.0;
    out += fmt::format("{:<14} {:<28} {:<16} {:>11.1f} {:>11} {:>10.2f} {:>9.2f}\n", op->op,
                       op->node, op->backend, op->time_us,
                       op->device_us >= 0 ? fmt::format("{:.1f}", op->device_us) : std::string("-"),
                       gflops, gbps);
  }
  std::uint64_t transfer_bytes = 0;
  for (const auto& t : transfers) transfer_bytes += t.bytes;
  out += fmt::format("total {:.1f} us, {} ops, {} transfers ({} bytes)\n", total_us, ops.size(),
                     transfers.size(), transfer_bytes);
  return out;
}

std::string Profile::to_chrome_trace() const {
  using nlohmann::json;
  json events = json::array();
  std::map<std::string, int> tracks;  // backend (or "transfers") -> thread id
  auto track = [&](const std::string& name) {
    auto [it, added] = tracks.emplace(name, static_cast<int>(tracks.size()) + 1);
    if (added)
      events.push_back({{"name", "thread_name"},
                        {"ph", "M"},
                        {"pid", 1},
                        {"tid", it->second},
                        {"args", {{"name", name}}}});
    return it->second;
  };
  events.push_back(
      {{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "porta"}}}});
  for (const auto& op : ops) {
    json args = {{"node", op.node}, {"flops", op.flops}, {"bytes", op.bytes}};
    if (op.device_us >= 0) args["device_us"] = op.device_us;
    for (const auto& [key, value] : op.metrics) args[key] = value;
    events.push_back({{"name", op.op},
                      {"cat", "op"},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", track(op.backend)},
                      {"ts", op.start_us},
                      {"dur", op.time_us},
                      {"args", args}});
  }
  for (const auto& t : transfers)
    events.push_back({{"name", "transfer " + t.value},
                      {"cat", "transfer"},
                      {"ph", "X"},
                      {"pid", 1},
                      {"tid", track("transfers")},
                      {"ts", t.start_us},
                      {"dur", t.time_us},
                      {"args", {{"from", t.from}, {"to", t.to}, {"bytes", t.bytes}}}});
  return json{{"traceEvents", events}, {"displayTimeUnit", "ns"}}.dump(1);
}

}  // namespace porta
