// The parsed form of a chat template: expressions and statement nodes, built by
// chat_template_parse.cpp and walked by chat_template_render.cpp.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat_template_value.hpp"

namespace porta::tok::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,      // value
    Name,         // name
    Attr,         // args[0].name
    Item,         // args[0][args[1]]
    Slice,        // args[0][args[1]:args[2]:args[3]] (null parts are absent)
    Call,         // args[0](args[1..], kwargs)
    Filter,       // args[0] | name(args[1..], kwargs)
    Test,         // args[0] is [not] name(args[1..])
    Not,          // not args[0]
    Neg,          // -args[0]
    Binary,       // args[0] name args[1]: + - * / // % ~
    And,          // args[0] and args[1]
    Or,           // args[0] or args[1]
    Compare,      // args[0] ops[0] args[1] ops[1] args[2] ...: == != < > <= >= in notin
    Conditional,  // args[0] if args[1] else args[2] (args[2] may be null)
    List,         // [args...]
    Dict,         // {keys[k]: args[k]}
  };
  Kind kind = Kind::Literal;
  int line = 0;
  std::string name;
  Value value;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  std::vector<ExprPtr> keys;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { Text, Output, If, For, Set, Break, Continue };
  Kind kind = Kind::Text;
  int line = 0;
  std::string text;
  ExprPtr expr;                                    // Output, Set value, For iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: (condition, body); null condition: else
  std::vector<std::string> targets;  // For: loop variables; Set: {name} or {namespace, attribute}
  ExprPtr filter;                    // For ... if filter
  Body body, else_body;              // For
};

// Parses a template; throws porta::Error ("chat template line N: ...") on anything outside the
// supported subset.
Body parse_template(std::string_view source);

[[noreturn]] void template_error(int line, const std::string& message);

}  // namespace porta::tok::jinja
