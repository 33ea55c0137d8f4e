// Chat template parsing: splitting the source into text and tags (with Jinja's whitespace
// control, trim_blocks and lstrip_blocks), tokenizing tag contents, and a recursive-descent
// parser with Jinja2's operator precedence.
#include <cctype>
#include <cstdlib>

#include <fmt/format.h>

#include <porta/error.hpp>

#include "chat_template_ast.hpp"

namespace porta::tok::jinja {

void template_error(int line, const std::string& message) {
  throw Error(ErrorCode::Unsupported, fmt::format("chat template line {}: {}", line, message));
}

namespace {

// ---- splitting into chunks ------------------------------------------------------------------

struct Chunk {
  enum class Kind { Text, Expr, Stmt } kind;
  std::string text;
  int line;
};

int line_at(std::string_view s, std::size_t pos) {
  int line = 1;
  for (std::size_t k = 0; k < pos && k < s.size(); ++k) line += s[k] == '\n';
  return line;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::vector<Chunk> split_chunks(std::string_view src) {
  std::vector<Chunk> chunks;
  std::size_t pos = 0;
  bool strip_next = false;  // the previous tag ended with '-'
  bool trim_next = false;   // the previous tag was a block: drop one newline (trim_blocks)
  while (pos <= src.size()) {
    std::size_t open = src.find('{', pos);
    while (open != std::string_view::npos && open + 1 < src.size() && src[open + 1] != '{' &&
           src[open + 1] != '%' && src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string_view::npos && open + 1 >= src.size()) open = std::string_view::npos;
    std::string text(src.substr(pos, open == std::string_view::npos ? std::string_view::npos
                                                                      : open - pos));
    if (strip_next) {
      std::size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    } else if (trim_next) {
      if (text.starts_with("\r\n"))
        text.erase(0, 2);
      else if (text.starts_with("\n"))
        text.erase(0, 1);
    }
    if (open == std::string_view::npos) {
      if (!text.empty()) chunks.push_back({Chunk::Kind::Text, text, line_at(src, pos)});
      break;
    }
    const char type = src[open + 1];
    const char modifier = open + 2 < src.size() ? src[open + 2] : '\0';
    if (modifier == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else if (type != '{' && modifier != '+') {
      // lstrip_blocks: spaces and tabs between a line start and a block tag go.
      std::size_t k = open;
      while (k > pos && (src[k - 1] == ' ' || src[k - 1] == '\t')) --k;
      if (k == 0 || src[k - 1] == '\n') text.erase(text.size() - std::min(text.size(), open - k));
    }
    if (!text.empty()) chunks.push_back({Chunk::Kind::Text, text, line_at(src, pos)});
    const int line = line_at(src, open);
    const std::string_view close = type == '{' ? "}}" : type == '%' ? "%}" : "#}";
    std::size_t body = open + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
    std::size_t end = std::string_view::npos;
    if (type == '#') {
      end = src.find(close, body);
    } else {
      // Find the closing delimiter outside string literals.
      char quote = 0;
      for (std::size_t k = body; k + 1 < src.size(); ++k) {
        const char c = src[k];
        if (quote) {
          if (c == '\\') ++k;
          else if (c == quote) quote = 0;
        } else if (c == '\'' || c == '"') {
          quote = c;
        } else if (c == close[0] && src[k + 1] == close[1]) {
          end = k;
          break;
        }
      }
    }
    if (end == std::string_view::npos)
      template_error(line, fmt::format("a tag opened with '{{{}' is never closed with '{}'", type,
                                       close));
    std::size_t content_end = end;
    strip_next = false;
    if (content_end > body && src[content_end - 1] == '-') {
      strip_next = true;
      --content_end;
    }
    trim_next = type != '{';
    if (type != '#')
      chunks.push_back({type == '{' ? Chunk::Kind::Expr : Chunk::Kind::Stmt,
                        std::string(src.substr(body, content_end - body)), line});
    pos = end + 2;
  }
  return chunks;
}

// ---- tokens -------------------------------------------------------------------------------

struct Token {
  enum class Type { Name, String, Int, Float, Op, End } type = Type::End;
  std::string text;
  std::int64_t i = 0;
  double f = 0;
};

std::vector<Token> tokenize(const std::string& s, int line) {
  std::vector<Token> out;
  std::size_t k = 0;
  while (k < s.size()) {
    const char c = s[k];
    if (is_space(c)) {
      ++k;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t b = k;
      while (k < s.size() && (std::isalnum(static_cast<unsigned char>(s[k])) || s[k] == '_')) ++k;
      out.push_back({Token::Type::Name, s.substr(b, k - b)});
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      const std::size_t b = k;
      while (k < s.size() && (std::isdigit(static_cast<unsigned char>(s[k])) || s[k] == '_')) ++k;
      bool is_float = false;
      if (k + 1 < s.size() && s[k] == '.' && std::isdigit(static_cast<unsigned char>(s[k + 1]))) {
        is_float = true;
        ++k;
        while (k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]))) ++k;
      }
      std::string digits = s.substr(b, k - b);
      std::erase(digits, '_');
      Token t{is_float ? Token::Type::Float : Token::Type::Int, digits};
      if (is_float)
        t.f = std::strtod(digits.c_str(), nullptr);
      else
        t.i = std::strtoll(digits.c_str(), nullptr, 10);
      out.push_back(t);
    } else if (c == '\'' || c == '"') {
      std::string value;
      ++k;
      while (k < s.size() && s[k] != c) {
        if (s[k] == '\\' && k + 1 < s.size()) {
          const char e = s[++k];
          value += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
          value += s[k];
        }
        ++k;
      }
      if (k >= s.size()) template_error(line, "a string literal is not closed");
      ++k;
      out.push_back({Token::Type::String, value});
    } else {
      static const char* const two[] = {"**", "//", "==", "!=", "<=", ">="};
      std::string op(1, c);
      for (const char* t : two)
        if (s.compare(k, 2, t) == 0) op = t;
      if (op.size() == 1 && std::string_view("+-*/%~<>()[]{},.:|=").find(c) == std::string::npos)
        template_error(line, fmt::format("unexpected character '{}'", c));
      k += op.size();
      out.push_back({Token::Type::Op, op});
    }
  }
  out.push_back({Token::Type::End, ""});
  return out;
}

// ---- expressions --------------------------------------------------------------------------

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : t_(std::move(tokens)), line_(line) {}

  const Token& peek(std::size_t ahead = 0) const {
    return t_[std::min(at_ + ahead, t_.size() - 1)];
  }
  bool is_op(std::string_view op, std::size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::Op && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, std::size_t ahead = 0) const {
    return peek(ahead).type == Token::Type::Name && peek(ahead).text == name;
  }
  bool at_end() const { return peek().type == Token::Type::End; }
  Token next() { return t_[std::min(at_++, t_.size() - 1)]; }
  void expect_op(std::string_view op) {
    if (!is_op(op))
      template_error(line_, fmt::format("expected '{}' but found '{}'", op, describe(peek())));
    ++at_;
  }
  std::string expect_name() {
    if (peek().type != Token::Type::Name)
      template_error(line_, fmt::format("expected a name but found '{}'", describe(peek())));
    return next().text;
  }
  void expect_end() {
    if (!at_end()) template_error(line_, fmt::format("unexpected '{}'", describe(peek())));
  }
  static std::string describe(const Token& t) {
    return t.type == Token::Type::End ? "end of tag" : t.text;
  }

  ExprPtr make(Expr::Kind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    return e;
  }
  ExprPtr binary(Expr::Kind kind, ExprPtr a, ExprPtr b, std::string name = {}) {
    auto e = make(kind);
    e->name = std::move(name);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr expression() {
    ExprPtr value = or_expr();
    if (is_name("if")) {
      next();
      auto e = make(Expr::Kind::Conditional);
      e->args.push_back(std::move(value));
      e->args.push_back(or_expr());
      if (is_name("else")) {
        next();
        e->args.push_back(expression());
      } else {
        e->args.push_back(nullptr);
      }
      return e;
    }
    return value;
  }
  ExprPtr or_expr() {
    ExprPtr left = and_expr();
    while (is_name("or")) {
      next();
      left = binary(Expr::Kind::Or, std::move(left), and_expr());
    }
    return left;
  }
  ExprPtr and_expr() {
    ExprPtr left = not_expr();
    while (is_name("and")) {
      next();
      left = binary(Expr::Kind::And, std::move(left), not_expr());
    }
    return left;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      next();
      auto e = make(Expr::Kind::Not);
      e->args.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr first = math1();
    ExprPtr cmp;
    for (;;) {
      std::string op;
      if (peek().type == Token::Type::Op &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
           peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr math1() {
    ExprPtr left = concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = next().text;
      left = binary(Expr::Kind::Binary, std::move(left), concat(), op);
    }
    return left;
  }
  ExprPtr concat() {
    ExprPtr left = math2();
    while (is_op("~")) {
      next();
      left = binary(Expr::Kind::Binary, std::move(left), math2(), "~");
    }
    return left;
  }
  ExprPtr math2() {
    ExprPtr left = pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = next().text;
      left = binary(Expr::Kind::Binary, std::move(left), pow(), op);
    }
    return left;
  }
  ExprPtr pow() {
    ExprPtr left = unary(true);
    if (is_op("**")) template_error(line_, "unsupported operator '**'");
    return left;
  }
  ExprPtr unary(bool with_filter) {
    if (is_op("-") || is_op("+")) {
      const bool neg = next().text == "-";
      ExprPtr node = unary(false);
      if (neg) {
        ExprPtr inner = std::move(node);
        node = make(Expr::Kind::Neg);
        node->args.push_back(std::move(inner));
      }
      return with_filter ? filters(std::move(node)) : std::move(node);
    }
    ExprPtr node = postfix(primary());
    return with_filter ? filters(std::move(node)) : std::move(node);
  }
  void call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == Token::Type::Name && is_op("=", 1)) {
        std::string name = next().text;
        next();
        e.kwargs.emplace_back(std::move(name), expression());
      } else {
        if (!e.kwargs.empty())
          template_error(line_, "a positional argument follows a keyword argument");
        e.args.push_back(expression());
      }
      if (!is_op(")")) expect_op(",");
    }
    expect_op(")");
  }
  ExprPtr postfix(ExprPtr node) {
    for (;;) {
      if (is_op(".")) {
        next();
        auto e = make(Expr::Kind::Attr);
        e->name = expect_name();
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (is_op("[")) {
        next();
        ExprPtr parts[3];
        int colons = 0;
        for (;;) {
          if (is_op(":")) {
            next();
            if (++colons > 2) template_error(line_, "a slice has at most two ':'");
          } else if (is_op("]")) {
            break;
          } else {
            if (parts[colons]) template_error(line_, "malformed subscript");
            parts[colons] = expression();
          }
        }
        expect_op("]");
        if (colons == 0) {
          if (!parts[0]) template_error(line_, "empty subscript");
          node = binary(Expr::Kind::Item, std::move(node), std::move(parts[0]));
        } else {
          auto e = make(Expr::Kind::Slice);
          e->args.push_back(std::move(node));
          for (auto& p : parts) e->args.push_back(std::move(p));
          node = std::move(e);
        }
      } else if (is_op("(")) {
        auto e = make(Expr::Kind::Call);
        e->args.push_back(std::move(node));
        call_args(*e);
        node = std::move(e);
      } else {
        return node;
      }
    }
  }
  ExprPtr filters(ExprPtr node) {
    for (;;) {
      if (is_op("|")) {
        next();
        auto e = make(Expr::Kind::Filter);
        e->name = expect_name();
        e->args.push_back(std::move(node));
        if (is_op("(")) call_args(*e);
        node = std::move(e);
      } else if (is_name("is")) {
        next();
        auto e = make(Expr::Kind::Test);
        if (is_name("not")) {
          next();
          e->negated = true;
        }
        e->name = expect_name();
        e->args.push_back(std::move(node));
        if (is_op("(")) call_args(*e);
        node = std::move(e);
      } else {
        return node;
      }
    }
  }
  ExprPtr primary() {
    const Token t = next();
    auto literal = [&](Value v) {
      auto e = make(Expr::Kind::Literal);
      e->value = std::move(v);
      return e;
    };
    switch (t.type) {
      case Token::Type::String: {
        std::string s = t.text;
        while (peek().type == Token::Type::String) s += next().text;  // 'a' 'b' == 'ab'
        return literal(Value::string(std::move(s)));
      }
      case Token::Type::Int: return literal(Value::integer(t.i));
      case Token::Type::Float: return literal(Value::number(t.f));
      case Token::Type::Name:
        if (t.text == "true" || t.text == "True") return literal(Value::boolean(true));
        if (t.text == "false" || t.text == "False") return literal(Value::boolean(false));
        if (t.text == "none" || t.text == "None") return literal(Value::none());
        {
          auto e = make(Expr::Kind::Name);
          e->name = t.text;
          return e;
        }
      case Token::Type::Op:
        if (t.text == "(") {
          ExprPtr inner = expression();
          if (is_op(",")) template_error(line_, "unsupported construct: tuple");
          expect_op(")");
          return inner;
        }
        if (t.text == "[") {
          auto e = make(Expr::Kind::List);
          while (!is_op("]")) {
            e->args.push_back(expression());
            if (!is_op("]")) expect_op(",");
          }
          expect_op("]");
          return e;
        }
        if (t.text == "{") {
          auto e = make(Expr::Kind::Dict);
          while (!is_op("}")) {
            e->keys.push_back(expression());
            expect_op(":");
            e->args.push_back(expression());
            if (!is_op("}")) expect_op(",");
          }
          expect_op("}");
          return e;
        }
        break;
      case Token::Type::End: template_error(line_, "an expression is missing");
    }
    template_error(line_, fmt::format("unexpected '{}'", t.text));
  }

 private:
  std::vector<Token> t_;
  std::size_t at_ = 0;
  int line_;
};

// ---- statements ---------------------------------------------------------------------------

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Chunk> chunks) : chunks_(std::move(chunks)) {}

  // Parses nodes until a statement whose keyword is in `ends`; returns that keyword ("" at the
  // end of the template) and leaves `stmt` holding its parser.
  std::string block(Body& out, std::initializer_list<std::string_view> ends,
                    std::unique_ptr<ExprParser>& stmt) {
    while (at_ < chunks_.size()) {
      const Chunk& c = chunks_[at_++];
      if (c.kind == Chunk::Kind::Text) {
        auto n = node(Node::Kind::Text, c.line);
        n->text = c.text;
        out.push_back(std::move(n));
        continue;
      }
      auto p = std::make_unique<ExprParser>(tokenize(c.text, c.line), c.line);
      if (c.kind == Chunk::Kind::Expr) {
        auto n = node(Node::Kind::Output, c.line);
        n->expr = p->expression();
        p->expect_end();
        out.push_back(std::move(n));
        continue;
      }
      const std::string keyword = p->expect_name();
      for (const std::string_view e : ends)
        if (keyword == e) {
          stmt = std::move(p);
          return keyword;
        }
      out.push_back(statement(keyword, *p, c.line));
    }
    if (ends.size() != 0)
      template_error(chunks_.empty() ? 1 : chunks_.back().line,
                     fmt::format("the template ends without its '{{% {} %}}'", *(ends.end() - 1)));
    return "";
  }

 private:
  NodePtr node(Node::Kind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
  }

  NodePtr statement(const std::string& keyword, ExprParser& p, int line) {
    std::unique_ptr<ExprParser> end;
    if (keyword == "if") {
      auto n = node(Node::Kind::If, line);
      ExprPtr cond = p.expression();
      p.expect_end();
      for (;;) {
        Body body;
        const std::string k = block(body, {"elif", "else", "endif"}, end);
        n->branches.emplace_back(std::move(cond), std::move(body));
        if (k == "endif") break;
        if (k == "else") {
          end->expect_end();
          Body else_body;
          block(else_body, {"endif"}, end);
          n->branches.emplace_back(nullptr, std::move(else_body));
          break;
        }
        cond = end->expression();
        end->expect_end();
      }
      end->expect_end();
      return n;
    }
    if (keyword == "for") {
      auto n = node(Node::Kind::For, line);
      n->targets.push_back(p.expect_name());
      while (p.is_op(",")) {
        p.next();
        n->targets.push_back(p.expect_name());
      }
      if (!p.is_name("in")) template_error(line, "expected 'in' in a for loop");
      p.next();
      n->expr = p.or_expr();
      if (p.is_name("if")) {
        p.next();
        n->filter = p.expression();
      }
      if (p.is_name("recursive")) template_error(line, "unsupported construct: recursive loops");
      p.expect_end();
      const std::string k = block(n->body, {"else", "endfor"}, end);
      if (k == "else") {
        end->expect_end();
        block(n->else_body, {"endfor"}, end);
      }
      end->expect_end();
      return n;
    }
    if (keyword == "set") {
      auto n = node(Node::Kind::Set, line);
      n->targets.push_back(p.expect_name());
      if (p.is_op(".")) {
        p.next();
        n->targets.push_back(p.expect_name());
      }
      if (!p.is_op("="))
        template_error(line, "unsupported construct: block set ({% set x %}...{% endset %})");
      p.next();
      n->expr = p.expression();
      p.expect_end();
      return n;
    }
    if (keyword == "break" || keyword == "continue") {
      p.expect_end();
      return node(keyword == "break" ? Node::Kind::Break : Node::Kind::Continue, line);
    }
    template_error(line, fmt::format("unsupported statement '{{% {} %}}'", keyword));
  }

  std::vector<Chunk> chunks_;
  std::size_t at_ = 0;
};

}  // namespace

Body parse_template(std::string_view source) {
  TemplateParser parser(split_chunks(source));
  Body body;
  std::unique_ptr<ExprParser> end;
  parser.block(body, {}, end);
  return body;
}

}  // namespace porta::tok::jinja
