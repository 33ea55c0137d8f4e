// The data of a Graph: its nodes and values in creation (hence topological) order. compile()
// takes a copy, so an Executable never depends on the Graph it came from; backends read it when
// they check support and compile segments.
#pragma once

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <porta/graph.hpp>

namespace porta::detail {

struct GraphState {
  std::vector<Node> nodes;
  std::vector<ValueInfo> values;
  std::vector<std::pair<std::string, ValueId>> inputs;
  std::vector<std::pair<std::string, ValueId>> outputs;
  std::unordered_set<std::string> node_names;

  const ValueInfo& value(ValueId id) const { return values[id]; }
  const ValueInfo& input_of(const Node& n, std::size_t i) const { return values[n.inputs[i]]; }
  const ValueInfo& output_of(const Node& n, std::size_t i) const { return values[n.outputs[i]]; }
};

// "matmul 'q_proj' (a f32[4, 8], b f32[9, 8])": the op, the node and its operands, for errors.
std::string describe_node(const GraphState& g, const Node& n);

}  // namespace porta::detail
