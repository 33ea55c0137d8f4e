// The run profile: per-op entries with costs, the table, the Chrome trace and writing it out.
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "core/error_check.hpp"

namespace runtime_profile_tests {

using porta::DType;
using porta::Tensor;

namespace {

// y = silu(x[4, 8] · w[8, 16]) + b[16]
struct ProfiledGraph {
  porta::Graph g;
  ProfiledGraph() {
    auto x = g.input("x", {4, 8}, DType::F32);
    auto w = g.weight("w", Tensor::zeros({8, 16}, DType::F32));
    auto b = g.weight("b", Tensor::zeros({16}, DType::F32));
    auto mm = g.name(g.matmul(x, w), "proj");
    auto act = g.name(g.silu(mm), "act");
    g.output("y", g.name(act + b, "bias"));
  }
  static std::map<std::string, Tensor> inputs() {
    return {{"x", Tensor::zeros({4, 8}, DType::F32)}};
  }
};

const porta::OpProfile* find_op(const porta::Profile& p, const std::string& node) {
  for (const auto& op : p.ops)
    if (op.node == node) return &op;
  return nullptr;
}

}  // namespace

TEST_CASE("the profile has one entry per op with FLOPs and bytes", "[runtime][profile]") {
  ProfiledGraph graph;
  auto exe = porta::compile(graph.g);
  exe.run(ProfiledGraph::inputs());
  const auto& profile = exe.profile();
  REQUIRE(profile.ops.size() == 3);

  const auto* proj = find_op(profile, "proj");
  REQUIRE(proj != nullptr);
  CHECK(proj->op == "matmul");
  CHECK(proj->backend == "reference");
  CHECK(proj->flops == 2.0 * 4 * 8 * 16);
  CHECK(proj->bytes == (4 * 8 + 8 * 16 + 4 * 16) * 4.0);  // read a and b, write the output
  CHECK(proj->time_us >= 0);
  CHECK(proj->device_us == -1);

  const auto* act = find_op(profile, "act");
  REQUIRE(act != nullptr);
  CHECK(act->flops == 64);  // one per output element
  CHECK(act->bytes == 2 * 64 * 4.0);

  // Ops are in execution order and lie inside the run.
  CHECK(profile.ops[0].node == "proj");
  CHECK(profile.ops[1].node == "act");
  CHECK(profile.ops[2].node == "bias");
  for (std::size_t i = 1; i < profile.ops.size(); ++i)
    CHECK(profile.ops[i].start_us >=
          profile.ops[i - 1].start_us + profile.ops[i - 1].time_us - 1e-3);
  const auto& last = profile.ops.back();
  CHECK(profile.total_us >= last.start_us + last.time_us - 1e-3);

  // Each run replaces the previous profile.
  exe.run(ProfiledGraph::inputs());
  CHECK(exe.profile().ops.size() == 3);
}

TEST_CASE("profiling can be turned off", "[runtime][profile]") {
  ProfiledGraph graph;
  porta::CompileOptions options;
  options.profile = false;
  auto exe = porta::compile(graph.g, options);
  exe.run(ProfiledGraph::inputs());
  CHECK(exe.profile().ops.empty());
}

TEST_CASE("Profile::to_table lists every op", "[runtime][profile]") {
  ProfiledGraph graph;
  auto exe = porta::compile(graph.g);
  exe.run(ProfiledGraph::inputs());
  const std::string table = exe.profile().to_table();
  for (const char* mention :
       {"proj", "act", "bias", "matmul", "silu", "add", "reference", "3 ops"}) {
    INFO("the table should mention " << mention << ":\n" << table);
    CHECK(table.find(mention) != std::string::npos);
  }
}

TEST_CASE("Profile::to_chrome_trace is trace-event JSON with one complete event per op",
          "[runtime][profile]") {
  ProfiledGraph graph;
  auto exe = porta::compile(graph.g);
  exe.run(ProfiledGraph::inputs());
  const auto trace = nlohmann::json::parse(exe.profile().to_chrome_trace());
  REQUIRE(trace.contains("traceEvents"));
  REQUIRE(trace["traceEvents"].is_array());
  std::multiset<std::string> op_events;
  std::set<std::string> nodes;
  for (const auto& event : trace["traceEvents"]) {
    REQUIRE(event.contains("ph"));
    if (event["ph"] != "X") continue;
    op_events.insert(event["name"].get<std::string>());
    CHECK(event["ts"].is_number());
    CHECK(event["dur"].is_number());
    CHECK(event["dur"].get<double>() >= 0);
    nodes.insert(event["args"]["node"].get<std::string>());
  }
  CHECK(op_events == std::multiset<std::string>{"matmul", "silu", "add"});
  CHECK(nodes == std::set<std::string>{"proj", "act", "bias"});

  // An empty profile is still valid JSON.
  const auto empty = nlohmann::json::parse(porta::Profile{}.to_chrome_trace());
  CHECK(empty["traceEvents"].is_array());
}

TEST_CASE("write_trace writes the trace to a file, and reports I/O errors", "[runtime][profile]") {
  ProfiledGraph graph;
  auto exe = porta::compile(graph.g);
  exe.run(ProfiledGraph::inputs());
  const std::string path = std::string(PORTA_TEST_TMPDIR) + "/runtime_profile_trace.json";
  std::remove(path.c_str());
  exe.write_trace(path);
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream contents;
  contents << in.rdbuf();
  const auto trace = nlohmann::json::parse(contents.str());
  int complete_events = 0;
  for (const auto& event : trace["traceEvents"])
    if (event["ph"] == "X") ++complete_events;
  CHECK(complete_events == 3);
  std::remove(path.c_str());

  const std::string bad = std::string(PORTA_TEST_TMPDIR) + "/no/such/directory/trace.json";
  REQUIRE_PORTA_ERROR(exe.write_trace(bad), porta::ErrorCode::Io, bad);
}

TEST_CASE("every executed node appears exactly once in the profile", "[runtime][profile]") {
  porta::Graph g;
  auto x = g.input("x", {3, 8}, porta::DType::F32);
  auto logits = g.matmul(x, g.weight("router", porta::Tensor::zeros({4, 8}, porta::DType::F32)),
                         {false, true});
  auto route = g.moe_router(logits, porta::moe::mixtral(4, 2));
  porta::MoeExpertWeights w;
  w.gate = g.weight("gate", porta::Tensor::zeros({4, 6, 8}, porta::DType::F32));
  w.up = g.weight("up", porta::Tensor::zeros({4, 6, 8}, porta::DType::F32));
  w.down = g.weight("down", porta::Tensor::zeros({4, 8, 6}, porta::DType::F32));
  auto rows = g.moe_permute(x, route);
  auto y = g.moe_experts(x, route, w) + g.moe_combine(rows, route);
  g.output("y", g.silu(y));
  auto exe = porta::compile(g);
  exe.run({{"x", porta::Tensor::zeros({3, 8}, porta::DType::F32)}});
  std::map<std::string, int> seen;
  for (const auto& op : exe.profile().ops) ++seen[op.node];
  CHECK(seen.size() == g.nodes().size());
  for (const auto& [node, count] : seen) {
    INFO(node);
    CHECK(count == 1);
  }
}

}  // namespace runtime_profile_tests
