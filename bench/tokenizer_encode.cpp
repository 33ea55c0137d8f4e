// porta-bench-tokenizer-encode: how fast porta's tokenizer loads a real tokenizer.json and
// encodes mixed text on one core.
//
//   porta-bench-tokenizer-encode [--model DIR] [--mb 4] [--reps 5]
// DIR defaults to ../shared/data/tokenizers/deepseek_v3 next to the source tree. Three texts of
// about --mb MB each: "prose" (the texts of cases.jsonl, English, French, CJK, Korean, Russian,
// Arabic, code, emoji, repeated: the word cache sees few new words), "mixed" (the same with one
// word in four replaced by random letters, digits or CJK characters: many words are new), and
// "cold" (mixed, on a freshly loaded tokenizer, so nothing is cached). Reported: medians of --reps
// runs, in MB of UTF-8 input per second, and the median load time of tokenizer.json; each both
// as CPU time of the running thread (what one core delivers, whatever else the machine runs) and
// as wall-clock time.
#include <time.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/tokenizer.hpp>

#include "timing.hpp"

namespace {

using porta_bench::Clock;
using porta_bench::median;
using porta_bench::seconds_since;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Median CPU and wall seconds of `reps` calls of `body` after one warm-up call.
template <class F>
std::pair<double, double> time_body(int reps, F&& body, bool warm_up = true) {
  if (warm_up) body();
  std::vector<double> cpu, wall;
  for (int r = 0; r < reps; ++r) {
    const double c0 = thread_cpu_seconds();
    const auto w0 = Clock::now();
    body();
    wall.push_back(seconds_since(w0));
    cpu.push_back(thread_cpu_seconds() - c0);
  }
  return {median(cpu), median(wall)};
}

std::vector<std::string> case_texts(const std::string& dir) {
  std::ifstream in(std::filesystem::path(dir) / "cases.jsonl");
  std::vector<std::string> texts;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("text")) texts.push_back(j["text"]);
  }
  return texts;
}

std::string random_word(std::mt19937& rng) {
  static const char* const cjk[] = {"模型", "专家", "深度", "東京", "テキスト", "한국어", "参数"};
  std::string w;
  switch (rng() % 4) {
    case 0:
      for (unsigned k = 0, n = 3 + rng() % 9; k < n; ++k) w += static_cast<char>('a' + rng() % 26);
      break;
    case 1: w = std::to_string(rng() % 1000000); break;
    case 2:
      for (unsigned k = 0, n = 1 + rng() % 3; k < n; ++k) w += cjk[rng() % 7];
      break;
    default:
      w = fmt::format("{}_{}", static_cast<char>('a' + rng() % 26), rng() % 100);
  }
  return w;
}

std::string build_text(const std::vector<std::string>& texts, std::size_t bytes, bool mix) {
  std::mt19937 rng(42);
  std::string out;
  while (out.size() < bytes) {
    const std::string& t = texts[rng() % texts.size()];
    if (!mix) {
      out += t;
      out += '\n';
      continue;
    }
    std::size_t at = 0;
    while (at < t.size()) {
      std::size_t space = t.find(' ', at);
      if (space == std::string::npos) space = t.size();
      out += rng() % 4 == 0 ? random_word(rng) : t.substr(at, space - at);
      out += ' ';
      at = space + 1;
    }
    out += '\n';
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::string(PORTA_TOKENIZER_DATA_DIR) + "/deepseek_v3";
  double mb = 4;
  int reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") dir = argv[i + 1];
    else if (flag == "--mb") mb = std::stod(argv[i + 1]);
    else if (flag == "--reps") reps = std::stoi(argv[i + 1]);
  }
  if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json")) {
    fmt::print(stderr, "no tokenizer.json in '{}' (pass --model DIR)\n", dir);
    return 1;
  }
  const auto load = time_body(
      reps, [&] { const porta::Tokenizer t = porta::Tokenizer::load(dir); }, false);
  const auto texts = case_texts(dir);
  if (texts.empty()) {
    fmt::print(stderr, "no cases.jsonl texts in '{}'\n", dir);
    return 1;
  }
  const auto bytes = static_cast<std::size_t>(mb * 1e6);
  const std::string prose = build_text(texts, bytes, false);
  const std::string mixed = build_text(texts, bytes, true);

  const porta::Tokenizer tok = porta::Tokenizer::load(dir);
  std::size_t tokens = 0;
  const auto warm_prose = time_body(reps, [&] { tokens = tok.encode(prose, false).size(); });
  const std::size_t prose_tokens = tokens;
  const auto warm_mixed = time_body(reps, [&] { tokens = tok.encode(mixed, false).size(); });
  // Cold: each run on a fresh tokenizer (its load not timed), so the word cache starts empty.
  std::vector<double> cold_cpu, cold_wall;
  for (int r = 0; r < reps; ++r) {
    const porta::Tokenizer fresh = porta::Tokenizer::load(dir);
    const auto t = time_body(1, [&] { tokens = fresh.encode(mixed, false).size(); }, false);
    cold_cpu.push_back(t.first);
    cold_wall.push_back(t.second);
  }
  fmt::print("tokenizer: {}\n", dir);
  fmt::print("load tokenizer.json: {:.1f} ms CPU, {:.1f} ms wall (medians of {})\n",
             load.first * 1e3, load.second * 1e3, reps);
  auto line = [&](const char* name, const std::string& text, std::pair<double, double> t) {
    const double m = static_cast<double>(text.size()) / 1e6;
    fmt::print("encode {:6}: {:.2f} MB: {:.1f} MB/s CPU ({:.3f} s), {:.1f} MB/s wall\n", name, m,
               m / t.first, t.first, m / t.second);
  };
  line("prose", prose, warm_prose);
  line("mixed", mixed, warm_mixed);
  line("cold", mixed, {median(cold_cpu), median(cold_wall)});
  fmt::print("({} and {} tokens in the prose and mixed texts, one thread)\n", prose_tokens, tokens);
  return 0;
}
