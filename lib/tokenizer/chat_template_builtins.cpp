// Filters, tests, methods and functions of the chat template subset, with Python semantics.
#include "chat_template_builtins.hpp"

#include <algorithm>
#include <cmath>
#include <cctype>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "chat_template_ast.hpp"
#include "utf8.hpp"

namespace porta::tok::jinja {

namespace {

// The characters of a UTF-8 string, each as its own string (Python indexes code points).
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t b = i;
    next_code_point(s, i);
    out.push_back(s.substr(b, i - b));
  }
  return out;
}

const Value& arg(const std::vector<Value>& args, const Kwargs& kwargs, std::size_t index,
                 const char* name, const Value& fallback) {
  if (index < args.size()) return args[index];
  for (const auto& [k, v] : kwargs)
    if (k == name) return v;
  return fallback;
}

const std::string& need_string(const Value& v, const std::string& what, int line) {
  if (v.kind != Value::Kind::String)
    template_error(line, fmt::format("{} expects a string, not {}", what, kind_name(v.kind)));
  return v.s;
}

std::int64_t need_int(const Value& v, const std::string& what, int line) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b ? 1 : 0;
  template_error(line, fmt::format("{} expects an integer, not {}", what, kind_name(v.kind)));
}

bool is_py_space(const std::string& c) {
  std::size_t i = 0;
  return is_whitespace(next_code_point(c, i));
}

// Python's str.strip / lstrip / rstrip; `chars` none: whitespace.
std::string strip(const std::string& s, const Value& chars, bool left, bool right, int line) {
  const std::vector<std::string> cs = chars_of(s);
  std::vector<std::string> set;
  const bool whitespace = chars.kind == Value::Kind::None || chars.is_undefined();
  if (!whitespace) set = chars_of(need_string(chars, "strip()", line));
  auto strip_it = [&](const std::string& c) {
    return whitespace ? is_py_space(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  std::size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  std::string out;
  for (std::size_t k = b; k < e; ++k) out += cs[k];
  return out;
}

std::string ascii_case(std::string s, int mode) {  // 0 lower, 1 upper, 2 capitalize, 3 title
  bool word_start = true;
  for (std::size_t k = 0; k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    bool up = mode == 1 || (mode == 2 && k == 0) || (mode == 3 && word_start);
    s[k] = static_cast<char>(up ? std::toupper(c) : std::tolower(c));
    word_start = !std::isalnum(c);
  }
  return s;
}

Value split(const std::string& s, const Value& sep, std::int64_t maxsplit, int line) {
  List parts;
  if (sep.kind == Value::Kind::None || sep.is_undefined()) {
    std::size_t i = 0;
    const std::vector<std::string> cs = chars_of(s);
    std::string cur;
    bool in_word = false;
    for (; i < cs.size(); ++i) {
      if (is_py_space(cs[i])) {
        if (in_word) {
          if (maxsplit >= 0 && static_cast<std::int64_t>(parts.size()) == maxsplit) {
            cur += cs[i];
            continue;
          }
          parts.push_back(Value::string(cur));
          cur.clear();
          in_word = false;
        }
      } else {
        cur += cs[i];
        in_word = true;
      }
    }
    if (in_word) parts.push_back(Value::string(cur));
    return Value::make_list(std::move(parts));
  }
  const std::string& d = need_string(sep, "split()", line);
  if (d.empty()) template_error(line, "split(): empty separator");
  std::size_t at = 0, found = 0;
  while ((maxsplit < 0 || static_cast<std::int64_t>(parts.size()) < maxsplit) &&
         (found = s.find(d, at)) != std::string::npos) {
    parts.push_back(Value::string(s.substr(at, found - at)));
    at = found + d.size();
  }
  parts.push_back(Value::string(s.substr(at)));
  return Value::make_list(std::move(parts));
}

std::string replace(std::string s, const std::string& from, const std::string& to,
                    std::int64_t count) {
  if (from.empty()) return s;
  std::size_t at = 0;
  for (std::int64_t n = 0; (count < 0 || n < count) && (at = s.find(from, at)) != std::string::npos;
       ++n) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
  return s;
}

std::int64_t length(const Value& v, int line) {
  switch (v.kind) {
    case Value::Kind::String: return static_cast<std::int64_t>(chars_of(v.s).size());
    case Value::Kind::List: return static_cast<std::int64_t>(v.list->size());
    case Value::Kind::Dict:
    case Value::Kind::Namespace: return static_cast<std::int64_t>(v.dict->size());
    default: template_error(line, fmt::format("length of {} is undefined", kind_name(v.kind)));
  }
}

Value items_of(const Value& v, int line) {
  if (!v.is_mapping())
    template_error(line, fmt::format("items() needs a dict, not {}", kind_name(v.kind)));
  List out;
  for (const auto& [k, e] : *v.dict) out.push_back(Value::make_list({Value::string(k), e}));
  return Value::make_list(std::move(out));
}

Value as_list(const Value& v, int line) {
  switch (v.kind) {
    case Value::Kind::List: return v;
    case Value::Kind::String: {
      List out;
      for (auto& c : chars_of(v.s)) out.push_back(Value::string(c));
      return Value::make_list(std::move(out));
    }
    case Value::Kind::Dict:
    case Value::Kind::Namespace: {
      List out;
      for (const auto& [k, e] : *v.dict) out.push_back(Value::string(k));
      return Value::make_list(std::move(out));
    }
    default: template_error(line, fmt::format("{} is not iterable", kind_name(v.kind)));
  }
}

}  // namespace

Value slice(const Value& v, const Value* start, const Value* stop, const Value* step, int line) {
  List items;
  std::vector<std::string> cs;
  std::int64_t n = 0;
  if (v.kind == Value::Kind::List) {
    n = static_cast<std::int64_t>(v.list->size());
  } else if (v.kind == Value::Kind::String) {
    cs = chars_of(v.s);
    n = static_cast<std::int64_t>(cs.size());
  } else {
    template_error(line, fmt::format("cannot slice {}", kind_name(v.kind)));
  }
  auto given = [](const Value* p) { return p && p->kind != Value::Kind::None; };
  const std::int64_t st = given(step) ? need_int(*step, "a slice step", line) : 1;
  if (st == 0) template_error(line, "slice step cannot be zero");
  auto clamp = [&](const Value* p, std::int64_t fallback) {
    if (!given(p)) return fallback;
    std::int64_t x = need_int(*p, "a slice bound", line);
    if (x < 0) x += n;
    return st > 0 ? std::clamp<std::int64_t>(x, 0, n) : std::clamp<std::int64_t>(x, -1, n - 1);
  };
  const std::int64_t b = clamp(start, st > 0 ? 0 : n - 1);
  const std::int64_t e = clamp(stop, st > 0 ? n : -1);
  std::string text;
  for (std::int64_t k = b; st > 0 ? k < e : k > e; k += st) {
    if (v.kind == Value::Kind::List)
      items.push_back((*v.list)[static_cast<std::size_t>(k)]);
    else
      text += cs[static_cast<std::size_t>(k)];
  }
  return v.kind == Value::Kind::List ? Value::make_list(std::move(items))
                                     : Value::string(std::move(text));
}

Value apply_filter(const std::string& name, const Value& input, const std::vector<Value>& args,
                   const Kwargs& kwargs, int line) {
  static const Value none = Value::none();
  if (name == "length" || name == "count") return Value::integer(length(input, line));
  if (name == "tojson") {
    const Value& indent = arg(args, kwargs, 0, "indent", none);
    return Value::string(
        to_json(input, indent.kind == Value::Kind::None ? -1
                                                        : static_cast<int>(need_int(indent, "tojson indent", line))));
  }
  if (name == "trim")
    return Value::string(
        strip(need_string(input, "trim", line), arg(args, kwargs, 0, "chars", none), true, true, line));
  if (name == "string") return Value::string(to_str(input));
  if (name == "lower") return Value::string(ascii_case(need_string(input, "lower", line), 0));
  if (name == "upper") return Value::string(ascii_case(need_string(input, "upper", line), 1));
  if (name == "capitalize")
    return Value::string(ascii_case(need_string(input, "capitalize", line), 2));
  if (name == "title") return Value::string(ascii_case(need_string(input, "title", line), 3));
  if (name == "safe") return input;
  if (name == "first" || name == "last") {
    const Value l = as_list(input, line);
    if (l.list->empty()) return Value();
    return name == "first" ? l.list->front() : l.list->back();
  }
  if (name == "reverse") {
    if (input.kind == Value::Kind::String) {
      auto cs = chars_of(input.s);
      std::string out;
      for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
      return Value::string(out);
    }
    List l = *as_list(input, line).list;
    std::reverse(l.begin(), l.end());
    return Value::make_list(std::move(l));
  }
  if (name == "list") return Value::make_list(*as_list(input, line).list);
  if (name == "items") return items_of(input, line);
  if (name == "join") {
    static const Value empty = Value::string("");
    const std::string& sep = need_string(arg(args, kwargs, 0, "d", empty), "join", line);
    std::string out;
    const Value l = as_list(input, line);
    for (std::size_t k = 0; k < l.list->size(); ++k) out += (k ? sep : "") + to_str((*l.list)[k]);
    return Value::string(out);
  }
  if (name == "default" || name == "d") {
    static const Value empty = Value::string("");
    static const Value no = Value::boolean(false);
    const bool boolean = truthy(arg(args, kwargs, 1, "boolean", no));
    if (input.is_undefined() || (boolean && !truthy(input)))
      return arg(args, kwargs, 0, "default_value", empty);
    return input;
  }
  if (name == "int") {
    if (input.kind == Value::Kind::Float) return Value::integer(static_cast<std::int64_t>(input.f));
    if (input.kind == Value::Kind::String) return Value::integer(std::atoll(input.s.c_str()));
    return Value::integer(input.is_number() ? static_cast<std::int64_t>(input.as_double()) : 0);
  }
  if (name == "float") {
    if (input.kind == Value::Kind::String) return Value::number(std::atof(input.s.c_str()));
    return Value::number(input.is_number() ? input.as_double() : 0.0);
  }
  if (name == "abs") {
    if (input.kind == Value::Kind::Int) return Value::integer(std::llabs(input.i));
    return Value::number(std::fabs(input.as_double()));
  }
  if (name == "replace") {
    static const Value all = Value::integer(-1);
    return Value::string(replace(need_string(input, "replace", line),
                                 need_string(arg(args, kwargs, 0, "old", none), "replace", line),
                                 need_string(arg(args, kwargs, 1, "new", none), "replace", line),
                                 need_int(arg(args, kwargs, 2, "count", all), "replace", line)));
  }
  template_error(line, fmt::format("unsupported filter '{}'", name));
}

bool apply_test(const std::string& name, const Value& input, const std::vector<Value>& args,
                int line) {
  using K = Value::Kind;
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.kind == K::None;
  if (name == "true") return input.kind == K::Bool && input.b;
  if (name == "false") return input.kind == K::Bool && !input.b;
  if (name == "boolean") return input.kind == K::Bool;
  if (name == "string") return input.kind == K::String;
  if (name == "number") return input.kind == K::Int || input.kind == K::Float;
  if (name == "integer") return input.kind == K::Int;
  if (name == "float") return input.kind == K::Float;
  if (name == "mapping") return input.is_mapping();
  if (name == "sequence") return input.kind == K::List || input.kind == K::String || input.is_mapping();
  if (name == "iterable") return input.kind == K::List || input.kind == K::String || input.is_mapping();
  if (name == "even" || name == "odd") {
    const std::int64_t v = need_int(input, name, line);
    return (v % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    if (args.size() != 1) template_error(line, "'divisibleby' takes one argument");
    const std::int64_t d = need_int(args[0], "divisibleby", line);
    return d != 0 && need_int(input, "divisibleby", line) % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=") {
    if (args.size() != 1) template_error(line, fmt::format("'{}' takes one argument", name));
    return equals(input, args[0]) == (name != "ne" && name != "!=");
  }
  template_error(line, fmt::format("unsupported test '{}'", name));
}

Value call_method(const Value& self, const std::string& name, const std::vector<Value>& args,
                  const Kwargs& kwargs, int line) {
  static const Value none = Value::none();
  if (self.kind == Value::Kind::String) {
    const std::string& s = self.s;
    if (name == "startswith" || name == "endswith") {
      const std::string& p = need_string(arg(args, kwargs, 0, "prefix", none), name, line);
      return Value::boolean(name == "startswith" ? s.starts_with(p) : s.ends_with(p));
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return Value::string(strip(s, arg(args, kwargs, 0, "chars", none), name != "rstrip",
                                 name != "lstrip", line));
    if (name == "split") {
      static const Value all = Value::integer(-1);
      return split(s, arg(args, kwargs, 0, "sep", none),
                   need_int(arg(args, kwargs, 1, "maxsplit", all), "split", line), line);
    }
    if (name == "upper") return Value::string(ascii_case(s, 1));
    if (name == "lower") return Value::string(ascii_case(s, 0));
    if (name == "title") return Value::string(ascii_case(s, 3));
    if (name == "capitalize") return Value::string(ascii_case(s, 2));
    if (name == "replace") {
      static const Value all = Value::integer(-1);
      return Value::string(replace(s, need_string(arg(args, kwargs, 0, "old", none), name, line),
                                   need_string(arg(args, kwargs, 1, "new", none), name, line),
                                   need_int(arg(args, kwargs, 2, "count", all), name, line)));
    }
    if (name == "find") {
      const std::size_t at = s.find(need_string(arg(args, kwargs, 0, "sub", none), name, line));
      return Value::integer(at == std::string::npos
                                ? -1
                                : static_cast<std::int64_t>(chars_of(s.substr(0, at)).size()));
    }
    if (name == "join") {
      std::string out;
      const Value l = as_list(arg(args, kwargs, 0, "iterable", none), line);
      for (std::size_t k = 0; k < l.list->size(); ++k)
        out += (k ? s : "") + need_string((*l.list)[k], "join", line);
      return Value::string(out);
    }
  } else if (self.is_mapping()) {
    if (name == "items") return items_of(self, line);
    if (name == "keys") return as_list(self, line);
    if (name == "values") {
      List out;
      for (const auto& [k, v] : *self.dict) out.push_back(v);
      return Value::make_list(std::move(out));
    }
    if (name == "get") {
      const Value* found = self.find(need_string(arg(args, kwargs, 0, "key", none), "get", line));
      return found ? *found : arg(args, kwargs, 1, "default", none);
    }
  } else if (self.is_undefined()) {
    template_error(line, fmt::format("calling '{}' on an undefined value", name));
  }
  template_error(line, fmt::format("unsupported method '{}' of {}", name, kind_name(self.kind)));
}

Value call_function(const std::string& name, const std::vector<Value>& args, const Kwargs& kwargs,
                    int line) {
  if (name == "raise_exception") {
    const std::string message = args.empty() ? std::string("(no message)") : to_str(args[0]);
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("chat template line {}: raise_exception: {}", line, message));
  }
  if (name == "namespace" || name == "dict") {
    Value ns = Value::make_dict({}, name == "namespace" ? Value::Kind::Namespace : Value::Kind::Dict);
    for (const Value& a : args) {
      if (!a.is_mapping()) template_error(line, fmt::format("{}() takes a dict", name));
      for (const auto& [k, v] : *a.dict) ns.set(k, v);
    }
    for (const auto& [k, v] : kwargs) ns.set(k, v);
    return ns;
  }
  if (name == "range") {
    std::int64_t b = 0, e = 0, st = 1;
    if (args.size() == 1) {
      e = need_int(args[0], "range", line);
    } else if (args.size() == 2 || args.size() == 3) {
      b = need_int(args[0], "range", line);
      e = need_int(args[1], "range", line);
      if (args.size() == 3) st = need_int(args[2], "range", line);
    } else {
      template_error(line, "range() takes 1 to 3 arguments");
    }
    if (st == 0) template_error(line, "range() step cannot be zero");
    List out;
    for (std::int64_t k = b; st > 0 ? k < e : k > e; k += st) {
      out.push_back(Value::integer(k));
      if (out.size() > 1000000) template_error(line, "range() is too long");
    }
    return Value::make_list(std::move(out));
  }
  template_error(line, fmt::format("unsupported function '{}'", name));
}

}  // namespace porta::tok::jinja
