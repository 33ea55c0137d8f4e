// What chat templates may call: filters (x | name), tests (x is name), methods of strings, lists
// and dicts (x.startswith(...)), and the global functions raise_exception, namespace and range.
// Each throws porta::Error naming an unsupported one.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "chat_template_value.hpp"

namespace porta::tok::jinja {

using Kwargs = std::vector<std::pair<std::string, Value>>;

Value apply_filter(const std::string& name, const Value& input, const std::vector<Value>& args,
                   const Kwargs& kwargs, int line);
bool apply_test(const std::string& name, const Value& input, const std::vector<Value>& args,
                int line);
Value call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                  const Kwargs& kwargs, int line);
Value call_function(const std::string& name, const std::vector<Value>& args, const Kwargs& kwargs,
                    int line);
// Python's [start:stop:step] on a list or string (null parts: the defaults).
Value slice(const Value& v, const Value* start, const Value* stop, const Value* step, int line);

}  // namespace porta::tok::jinja
