// The chat-template renderer: the real Qwen3 template (its expected renderings worked out by hand
// from the template's text), Mixtral- and DeepSeek-V2-style templates, the Jinja features the
// families use (whitespace control, trim_blocks / lstrip_blocks, loops, namespace, slicing,
// filters, tests), and errors naming unsupported constructs.
#include <fstream>

#include <nlohmann/json.hpp>

#include <porta/error.hpp>
#include <porta/tokenizer.hpp>

#include "tokenizer/tokenizer_test_support.hpp"

namespace porta::test::tokenizer_chat_template_tests {
namespace {

// Ordered: tojson prints keys in the order the messages give them.
using json = nlohmann::ordered_json;

Tokenizer with_template(const std::string& chat_template) {
  const json tokenizer = {
      {"added_tokens",
       {{{"id", 2}, {"content", "<s>"}, {"special", true}},
        {{"id", 3}, {"content", "</s>"}, {"special", true}}}},
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}}}, {"merges", json::array()}}}};
  const json config = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"chat_template", chat_template}};
  return Tokenizer::from_json(tokenizer.dump(), config.dump());
}

std::string render(const std::string& chat_template, const json& messages = json::array(),
                   bool add_generation_prompt = false, const json& extra = json::object()) {
  return with_template(chat_template)
      .apply_chat_template_json(messages.dump(), add_generation_prompt, extra.dump());
}

// Mixtral-8x7B-Instruct's template as its tokenizer_config.json ships it (optional system
// message folded into the first user turn).
const char* const kMixtral =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

TEST_CASE("a Mixtral-style chat template", "[tokenizer]") {
  const json chat = {{{"role", "system"}, {"content", "Be brief."}},
                     {{"role", "user"}, {"content", "Hi"}},
                     {{"role", "assistant"}, {"content", "Hello."}},
                     {{"role", "user"}, {"content", "Bye"}}};
  CHECK(render(kMixtral, chat) ==
        "<s> [INST] Be brief.\n\nHi [/INST] Hello.</s> [INST] Bye [/INST]");
  const json bad = {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}};
  CHECK_THROWS_WITH(render(kMixtral, bad), Catch::Contains("roles must alternate"));
  // The typed-message overload gives the same text.
  const std::vector<ChatMessage> typed = {{"user", "Hi"}};
  CHECK(with_template(kMixtral).apply_chat_template(typed, true) == "<s> [INST] Hi [/INST]");
}

TEST_CASE("a DeepSeek-V2-style chat template", "[tokenizer]") {
  const std::string v2 =
      "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
      "{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
      "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
      "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
      "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
      "{{ 'Assistant:' }}{% endif %}";
  const json chat = {{{"role", "system"}, {"content", "S"}},
                     {{"role", "user"}, {"content", "Q"}},
                     {{"role", "assistant"}, {"content", "A"}},
                     {{"role", "user"}, {"content", "Q2"}}};
  CHECK(render(v2, chat, true) == "<s>S\n\nUser: Q\n\nAssistant: A</s>User: Q2\n\nAssistant:");
  CHECK(render(v2, chat, false) == "<s>S\n\nUser: Q\n\nAssistant: A</s>User: Q2\n\n");
}

std::string qwen3_template() {
  const std::string dir = tokenizer_data_dir("qwen3");
  if (dir.empty()) return "";
  return Tokenizer::load(dir).chat_template();
}

TEST_CASE("Qwen3's real chat template", "[tokenizer]") {
  const std::string t = qwen3_template();
  if (t.empty()) return;
  const json simple = {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "Hi"}}};
  CHECK(render(t, simple, true) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(render(t, simple, true, {{"enable_thinking", false}}) ==
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Reasoning of turns before the last user message is dropped; the answer is kept.
  const json turns = {{{"role", "user"}, {"content", "Q1"}},
                      {{"role", "assistant"}, {"content", "<think>\nR1\n</think>\n\nA1"}},
                      {{"role", "user"}, {"content", "Q2"}}};
  CHECK(render(t, turns, true) ==
        "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n");
  // An assistant turn after the last user message keeps a (here empty) think block.
  const json last = {{{"role", "user"}, {"content", "Q"}}, {{"role", "assistant"}, {"content", "A"}}};
  CHECK(render(t, last) ==
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA"
        "<|im_end|>\n");
  // Tools: each is printed with tojson (Python's json.dumps spacing, keys in their order).
  const json tools = {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", json::object()}}}}};
  CHECK(render(t, {{{"role", "user"}, {"content", "Q"}}}, true, {{"tools", tools}}) ==
        "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the "
        "user query.\n\nYou are provided with function signatures within <tools></tools> XML "
        "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
        "{}}}\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
  // A tool call and its response.
  const json calls = {
      {{"role", "user"}, {"content", "Weather?"}},
      {{"role", "assistant"},
       {"content", ""},
       {"tool_calls",
        {{{"type", "function"},
          {"function", {{"name", "get"}, {"arguments", {{"city", "Paris"}}}}}}}}},
      {{"role", "tool"}, {"content", "sunny"}}};
  CHECK(render(t, calls, true) ==
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": "
        "\"get\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n");
}

TEST_CASE("chat templates: whitespace control, trim_blocks and lstrip_blocks", "[tokenizer]") {
  CHECK(render("  {% if true %}\n  x\n  {% endif %}\ny") == "  x\ny");
  CHECK(render("a  {%- if true -%}  b  {%- endif -%}  c") == "abc");
  CHECK(render("{{ 'a' }}\n{{ 'b' }}") == "a\nb");  // trim_blocks leaves {{ }} alone
  CHECK(render("{# a comment #}\nx") == "x");
  CHECK(render("a {%+ if true %}b{% endif %}") == "a b");
}

TEST_CASE("chat templates: expressions, loops, filters and tests", "[tokenizer]") {
  CHECK(render("{{ [1, 2, 3][::-1] | join(',') }}|{{ 'hello'[1:3] }}|{{ [1, 2, 3][-1] }}") ==
        "3,2,1|el|3");
  CHECK(render("{{ 'n=' ~ (1 + 2) * 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 1 / 2 }} {{ -3 }}") ==
        "n=6 3 1 0.5 -3");
  CHECK(render("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ x }}{% if not loop.last %},"
               "{% endif %}{% endfor %}") == "1a,2b,3c");
  CHECK(render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}") ==
        "2242");
  CHECK(render("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}"
               "{% if x == 3 %}{% break %}{% endif %}{% endfor %}") == "13");
  CHECK(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}") ==
        "a=1;b=2;");
  CHECK(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
               "{% endfor %}{{ ns.n }}") == "6");
  // A plain set inside a loop does not leak out (hence namespace()).
  CHECK(render("{% set n = 1 %}{% for i in [5] %}{% set n = i %}{% endfor %}{{ n }}") == "1");
  CHECK(render("{{ '  x \\n' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ [3, 4] | length }}"
               "|{{ 'héllo' | length }}|{{ none | default('d') }}{{ undefined_name | default('u') }}")
        == "x|ABab|2|5|Noneu");
  CHECK(render("{{ {'a': [1, 'x', none, true]} | tojson }}") == R"({"a": [1, "x", null, true]})");
  CHECK(render("{{ {'a': 1} | tojson(indent=2) }}") == "{\n  \"a\": 1\n}");
  CHECK(render("{{ x is defined }}{{ x is not defined }}{{ none is none }}{{ 'a' is string }}"
               "{{ 1 is number }}{{ {} is mapping }}") == "FalseTrueTrueTrueTrueTrue");
  CHECK(render("{{ 'b' in 'abc' }}{{ 2 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}") ==
        "TrueTrueTrueTrue");
  CHECK(render("{{ 'a</think>b'.split('</think>')[-1] }}|{{ '\\n\\nx\\n'.strip('\\n') }}|"
               "{{ 'xxa'.lstrip('x') }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}|"
               "{{ 'a-b'.replace('-', '+') }}|{{ ' a  b '.split() | length }}") ==
        "b|x|a|TrueTrue|a+b|2");
  CHECK(render("{{ 'yes' if 1 < 2 else 'no' }}{{ 'x' if false }}") == "yes");
  CHECK(render("{{ messages[0].role }}:{{ messages[0]['content'] }}",
               {{{"role", "user"}, {"content", "hi"}}}) == "user:hi");
  CHECK(render("{{ [1, 2] }}{{ {'a': 'b'} }}{{ none }}{{ 1.5 }}") == "[1, 2]{'a': 'b'}None1.5");
  CHECK(render("{% if a %}A{% elif b %}B{% else %}C{% endif %}", json::array(), false,
               {{"b", true}}) == "B");
}

TEST_CASE("chat templates: unsupported constructs and bad input are errors naming them",
          "[tokenizer]") {
  CHECK_THROWS_WITH(render("{% macro f() %}{% endmacro %}"),
                    Catch::Contains("line 1") && Catch::Contains("macro"));
  CHECK_THROWS_WITH(render("\n{{ x | wordwrap }}"),
                    Catch::Contains("line 2") && Catch::Contains("unsupported filter 'wordwrap'"));
  CHECK_THROWS_WITH(render("{{ x is sameas(1) }}"), Catch::Contains("unsupported test 'sameas'"));
  CHECK_THROWS_WITH(render("{{ 'a'.zfill(3) }}"), Catch::Contains("unsupported method 'zfill'"));
  CHECK_THROWS_WITH(render("{{ cycler() }}"), Catch::Contains("unsupported function 'cycler'"));
  CHECK_THROWS_WITH(render("{% if true %}x"), Catch::Contains("endif"));
  CHECK_THROWS_WITH(render("{{ 'a' "), Catch::Contains("never closed"));
  CHECK_THROWS_WITH(render("{{ 2 ** 3 }}"), Catch::Contains("'**'"));
  CHECK_THROWS_WITH(render("{{ 'a' + 1 }}"), Catch::Contains("string and int"));
  CHECK_THROWS_WITH(render("{{ missing.attr }}"), Catch::Contains("'missing' is undefined"));
  CHECK_THROWS_WITH(render("{{ raise_exception('nope') }}"), Catch::Contains("nope"));
  CHECK_THROWS_WITH(render("{% set x %}a{% endset %}"), Catch::Contains("block set"));
  CHECK_THROWS_AS(render("{% set x = 1 %}{% set x.y = 2 %}"), Error);
}

}  // namespace
}  // namespace porta::test::tokenizer_chat_template_tests
