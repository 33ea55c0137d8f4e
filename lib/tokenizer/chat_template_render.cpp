// Rendering a parsed chat template: scopes, expression evaluation, loops with Jinja's `loop`
// variable, and output.
#include <cmath>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "chat_template.hpp"
#include "chat_template_ast.hpp"
#include "chat_template_builtins.hpp"

namespace porta::tok {

namespace jinja {

namespace {

// A name for an expression in error messages: `message.content`, `messages[...]`.
std::string describe(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Name: return e.name;
    case Expr::Kind::Attr: return describe(*e.args[0]) + "." + e.name;
    case Expr::Kind::Item: return describe(*e.args[0]) + "[...]";
    default: return "an expression";
  }
}

class Renderer {
 public:
  explicit Renderer(Dict globals) { scopes_.push_back(std::move(globals)); }

  enum class Flow { Normal, Break, Continue };

  Flow run(const Body& body) {
    for (const NodePtr& n : body) {
      const Flow f = run(*n);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  std::string out;

 private:
  Flow run(const Node& n) {
    switch (n.kind) {
      case Node::Kind::Text: out += n.text; return Flow::Normal;
      case Node::Kind::Output: out += to_str(eval(*n.expr)); return Flow::Normal;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (!cond || truthy(eval(*cond))) return run(body);
        return Flow::Normal;
      case Node::Kind::Set: {
        Value v = eval(*n.expr);
        if (n.targets.size() == 1) {
          assign(n.targets[0], std::move(v));
        } else {
          Value ns = lookup(n.targets[0]);
          if (ns.kind != Value::Kind::Namespace)
            template_error(n.line, fmt::format("'{}' is not a namespace(): only namespace "
                                               "attributes can be assigned",
                                               n.targets[0]));
          ns.set(n.targets[1], std::move(v));
        }
        return Flow::Normal;
      }
      case Node::Kind::For: return run_for(n);
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Flow run_for(const Node& n) {
    const Value iterable = eval(*n.expr);
    List items;
    switch (iterable.kind) {
      case Value::Kind::List: items = *iterable.list; break;
      case Value::Kind::Dict:
        for (const auto& [k, v] : *iterable.dict) items.push_back(Value::string(k));
        break;
      case Value::Kind::String:
        items = *apply_filter("list", iterable, {}, {}, n.line).list;
        break;
      case Value::Kind::Undefined:
        template_error(n.line, fmt::format("'{}' is undefined and cannot be looped over",
                                           describe(*n.expr)));
      default:
        template_error(n.line, fmt::format("cannot loop over {}", kind_name(iterable.kind)));
    }
    if (n.filter) {
      List kept;
      for (const Value& item : items) {
        scopes_.emplace_back();
        bind(n, item);
        if (truthy(eval(*n.filter))) kept.push_back(item);
        scopes_.pop_back();
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      run(n.else_body);
      return Flow::Normal;
    }
    const auto count = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < count; ++k) {
      scopes_.emplace_back();
      bind(n, items[static_cast<std::size_t>(k)]);
      Dict loop{{"index", Value::integer(k + 1)},
                {"index0", Value::integer(k)},
                {"revindex", Value::integer(count - k)},
                {"revindex0", Value::integer(count - k - 1)},
                {"first", Value::boolean(k == 0)},
                {"last", Value::boolean(k == count - 1)},
                {"length", Value::integer(count)},
                {"previtem", k > 0 ? items[static_cast<std::size_t>(k - 1)] : Value()},
                {"nextitem", k + 1 < count ? items[static_cast<std::size_t>(k + 1)] : Value()}};
      scopes_.back().emplace_back("loop", Value::make_dict(std::move(loop)));
      const Flow f = run(n.body);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind(const Node& n, const Value& item) {
    if (n.targets.size() == 1) {
      assign(n.targets[0], item);
      return;
    }
    if (item.kind != Value::Kind::List || item.list->size() != n.targets.size())
      template_error(n.line, fmt::format("cannot unpack {} into {} loop variables",
                                         kind_name(item.kind), n.targets.size()));
    for (std::size_t k = 0; k < n.targets.size(); ++k) assign(n.targets[k], (*item.list)[k]);
  }

  void assign(const std::string& name, Value v) {
    for (auto& [k, old] : scopes_.back())
      if (k == name) {
        old = std::move(v);
        return;
      }
    scopes_.back().emplace_back(name, std::move(v));
  }

  Value lookup(const std::string& name) const {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s)
      for (const auto& [k, v] : *s)
        if (k == name) return v;
    return Value();
  }

  std::vector<Value> eval_args(const Expr& e, std::size_t first) {
    std::vector<Value> out;
    for (std::size_t k = first; k < e.args.size(); ++k) out.push_back(eval(*e.args[k]));
    return out;
  }
  Kwargs eval_kwargs(const Expr& e) {
    Kwargs out;
    for (const auto& [k, v] : e.kwargs) out.emplace_back(k, eval(*v));
    return out;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: return lookup(e.name);
      case Expr::Kind::Attr: {
        const Value base = eval(*e.args[0]);
        if (base.is_undefined())
          template_error(e.line, fmt::format("'{}' is undefined (reading '.{}')",
                                             describe(*e.args[0]), e.name));
        if (const Value* v = base.find(e.name)) return *v;
        return Value();
      }
      case Expr::Kind::Item: return item(e, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Slice: {
        const Value base = eval(*e.args[0]);
        Value parts[3];
        for (int k = 0; k < 3; ++k)
          parts[k] = e.args[static_cast<std::size_t>(k + 1)]
                         ? eval(*e.args[static_cast<std::size_t>(k + 1)])
                         : Value::none();
        return slice(base, &parts[0], &parts[1], &parts[2], e.line);
      }
      case Expr::Kind::Call: {
        const Expr& callee = *e.args[0];
        if (callee.kind == Expr::Kind::Attr)
          return call_method(eval(*callee.args[0]), callee.name, eval_args(e, 1), eval_kwargs(e),
                             e.line);
        if (callee.kind == Expr::Kind::Name)
          return call_function(callee.name, eval_args(e, 1), eval_kwargs(e), e.line);
        template_error(e.line, "unsupported call");
      }
      case Expr::Kind::Filter:
        return apply_filter(e.name, eval(*e.args[0]), eval_args(e, 1), eval_kwargs(e), e.line);
      case Expr::Kind::Test:
        return Value::boolean(apply_test(e.name, eval(*e.args[0]), eval_args(e, 1), e.line) !=
                              e.negated);
      case Expr::Kind::Not: return Value::boolean(!truthy(eval(*e.args[0])));
      case Expr::Kind::Neg: {
        const Value v = eval(*e.args[0]);
        if (v.kind == Value::Kind::Int) return Value::integer(-v.i);
        if (v.kind == Value::Kind::Float) return Value::number(-v.f);
        template_error(e.line, fmt::format("cannot negate {}", kind_name(v.kind)));
      }
      case Expr::Kind::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case Expr::Kind::Conditional:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value();
      case Expr::Kind::Binary: return binary(e, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::Compare: {
        Value left = eval(*e.args[0]);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          if (!compare(e, e.ops[k], left, right)) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::List: return Value::make_list(eval_args(e, 0));
      case Expr::Kind::Dict: {
        Dict d;
        for (std::size_t k = 0; k < e.keys.size(); ++k) {
          const Value key = eval(*e.keys[k]);
          if (key.kind != Value::Kind::String)
            template_error(e.line, "dict literal keys must be strings");
          d.emplace_back(key.s, eval(*e.args[k]));
        }
        return Value::make_dict(std::move(d));
      }
    }
    template_error(e.line, "unsupported expression");
  }

  Value item(const Expr& e, const Value& base, const Value& key) {
    if (base.is_mapping()) {
      if (key.kind != Value::Kind::String) return Value();
      const Value* v = base.find(key.s);
      return v ? *v : Value();
    }
    if (base.kind == Value::Kind::List || base.kind == Value::Kind::String) {
      if (key.kind != Value::Kind::Int)
        template_error(e.line, fmt::format("{} indices must be integers", kind_name(base.kind)));
      const Value one = Value::integer(key.i + 1);
      const Value picked = key.i == -1 ? slice(base, &key, nullptr, nullptr, e.line)
                                       : slice(base, &key, &one, nullptr, e.line);
      if (base.kind == Value::Kind::String) return picked.s.empty() ? Value() : picked;
      return picked.list->empty() ? Value() : picked.list->front();
    }
    if (base.is_undefined())
      template_error(e.line, fmt::format("'{}' is undefined (reading an item)", describe(*e.args[0])));
    template_error(e.line, fmt::format("{} has no items", kind_name(base.kind)));
  }

  Value binary(const Expr& e, const Value& a, const Value& b) {
    const std::string& op = e.name;
    if (op == "~") return Value::string(to_str(a) + to_str(b));
    if (op == "+") {
      if (a.kind == Value::Kind::String && b.kind == Value::Kind::String)
        return Value::string(a.s + b.s);
      if (a.kind == Value::Kind::List && b.kind == Value::Kind::List) {
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(l));
      }
    }
    if (a.is_number() && b.is_number()) {
      const bool ints = a.kind != Value::Kind::Float && b.kind != Value::Kind::Float;
      const double x = a.as_double(), y = b.as_double();
      if (op == "+") return ints ? Value::integer(a.i + b.i + a.b + b.b) : Value::number(x + y);
      if (op == "-") return ints ? Value::integer((a.i + a.b) - (b.i + b.b)) : Value::number(x - y);
      if (op == "*") return ints ? Value::integer((a.i + a.b) * (b.i + b.b)) : Value::number(x * y);
      if (y == 0) template_error(e.line, "division by zero");
      if (op == "/") return Value::number(x / y);
      if (op == "//") return ints ? Value::integer(static_cast<std::int64_t>(std::floor(x / y)))
                                  : Value::number(std::floor(x / y));
      if (op == "%") {
        const double r = x - std::floor(x / y) * y;
        return ints ? Value::integer(static_cast<std::int64_t>(r)) : Value::number(r);
      }
    }
    template_error(e.line, fmt::format("unsupported operand types for '{}': {} and {}", op,
                                       kind_name(a.kind), kind_name(b.kind)));
  }

  bool compare(const Expr& e, const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in" || op == "notin") {
      bool found = false;
      if (b.kind == Value::Kind::String) {
        if (a.kind != Value::Kind::String)
          template_error(e.line, fmt::format("'in <string>' needs a string on the left, not {}",
                                             kind_name(a.kind)));
        found = b.s.find(a.s) != std::string::npos;
      } else if (b.kind == Value::Kind::List) {
        for (const Value& x : *b.list) found |= equals(a, x);
      } else if (b.is_mapping()) {
        found = a.kind == Value::Kind::String && b.find(a.s) != nullptr;
      } else {
        template_error(e.line, fmt::format("'in' needs a string, list or dict on the right, not "
                                           "{} ({})",
                                           kind_name(b.kind), describe(*e.args.back())));
      }
      return found == (op == "in");
    }
    double x = 0, y = 0;
    if (a.is_number() && b.is_number()) {
      x = a.as_double();
      y = b.as_double();
    } else if (a.kind == Value::Kind::String && b.kind == Value::Kind::String) {
      const int c = a.s.compare(b.s);
      x = c;
      y = 0;
    } else {
      template_error(e.line, fmt::format("cannot compare {} and {} with '{}'", kind_name(a.kind),
                                         kind_name(b.kind), op));
    }
    if (op == "<") return x < y;
    if (op == ">") return x > y;
    if (op == "<=") return x <= y;
    return x >= y;
  }

  std::vector<Dict> scopes_;
};

}  // namespace

}  // namespace jinja

ChatTemplate::ChatTemplate(std::string_view source) {
  auto root = std::make_shared<jinja::Node>();
  root->body = jinja::parse_template(source);
  root_ = root;
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& variables) const {
  jinja::Dict globals;
  for (const auto& [k, v] : variables.items()) globals.emplace_back(k, jinja::from_json(v));
  jinja::Renderer r(std::move(globals));
  r.run(root_->body);
  return std::move(r.out);
}

}  // namespace porta::tok
