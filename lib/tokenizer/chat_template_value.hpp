// The values a chat template computes with: Jinja's undefined, None, booleans, integers, floats,
// strings, lists, dicts (insertion-ordered, as Python's) and namespace() objects. Lists, dicts and
// namespaces are shared by reference, as in Python, so that {% set ns.x = ... %} is seen by
// every holder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace porta::tok::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace };
  Kind kind = Kind::Undefined;
  bool b = false;
  std::int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // Dict and Namespace

  static Value none() { return make(Kind::None); }
  static Value boolean(bool v) {
    Value x = make(Kind::Bool);
    x.b = v;
    return x;
  }
  static Value integer(std::int64_t v) {
    Value x = make(Kind::Int);
    x.i = v;
    return x;
  }
  static Value number(double v) {
    Value x = make(Kind::Float);
    x.f = v;
    return x;
  }
  static Value string(std::string v) {
    Value x = make(Kind::String);
    x.s = std::move(v);
    return x;
  }
  static Value make_list(List items = {}) {
    Value x = make(Kind::List);
    x.list = std::make_shared<List>(std::move(items));
    return x;
  }
  static Value make_dict(Dict items = {}, Kind kind = Kind::Dict) {
    Value x = make(kind);
    x.dict = std::make_shared<Dict>(std::move(items));
    return x;
  }
  static Value make(Kind k) {
    Value x;
    x.kind = k;
    return x;
  }

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_mapping() const { return kind == Kind::Dict || kind == Kind::Namespace; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(i + (b ? 1 : 0)); }
  // The entry for `key`, or nullptr.
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

Value from_json(const nlohmann::ordered_json& j);
const char* kind_name(Value::Kind kind);

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python's str() (what {{ v }} prints) and repr() (inside lists and dicts).
std::string to_str(const Value& v);
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent), transformers' tojson filter; indent < 0: none.
std::string to_json(const Value& v, int indent = -1);

}  // namespace porta::tok::jinja
