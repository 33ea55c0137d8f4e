// Whole-model memory: expert weights are views of the checkpoint mapping (stacked tables, no
// copy) on the cpu backend for bf16 and f32 checkpoints; a backend that needs one buffer gathers
// them and counts it; prefill's last-position logits do not depend on whether all positions are
// computed; the memory estimate refuses a model that does not fit.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <porta/device.hpp>
#include <porta/model/memory.hpp>

#include "model/model_test_support.hpp"

namespace porta::test::model_zero_copy_tests {
namespace {

namespace fs = std::filesystem;

// [begin, end) of every mapping of `file` in this process (/proc/self/maps).
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> mappings_of(const std::string& file) {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const std::string path = fs::canonical(file).string();
  while (std::getline(maps, line)) {
    if (!line.ends_with(path)) continue;
    std::uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream fields(line);
    fields >> std::hex >> begin >> dash >> end;
    out.emplace_back(begin, end);
  }
  return out;
}

bool inside(const void* p, std::size_t bytes,
            const std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& ranges) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  for (const auto& [begin, end] : ranges)
    if (a >= begin && a + bytes <= end) return true;
  return false;
}

// Resident bytes of every mapping of `file` in this process (/proc/self/smaps "Rss:").
std::uint64_t resident_bytes_of(const std::string& file) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  const std::string path = fs::canonical(file).string();
  bool in_file = false;
  std::uint64_t kb = 0;
  while (std::getline(smaps, line)) {
    const bool header = !line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
                        line.find('-') != std::string::npos && line.find(':') > line.find(' ');
    if (header) {
      in_file = line.ends_with(path);
    } else if (in_file && line.starts_with("Rss:")) {
      kb += std::stoull(line.substr(4));
    }
  }
  return kb * 1024;
}

bool available(const std::string& backend) {
  for (const auto& d : list_devices())
    if (d.name == backend) return d.available;
  return false;
}

}  // namespace

TEST_CASE("Expert weights are views of the checkpoint mapping, not copies", "[model][zerocopy]") {
  for (const DType dtype : {DType::BF16, DType::F32}) {
    for (const std::string kind : {"deepseek_v2", "mixtral"}) {
      INFO(kind << " " << dtype_name(dtype));
      const TinyModel tiny = tiny_model(kind, 3, dtype);
      const std::string dir = model_tmpdir(fmt::format("zero_copy_{}_{}", kind, dtype_name(dtype)));
      model::write_checkpoint(dir, tiny.config_json, tiny.tensors);
      const model::Model m = model::Model::load(dir);
      const auto ranges = mappings_of(dir + "/model.safetensors");
      REQUIRE(!ranges.empty());

      std::uint64_t total = 0;
      for (const auto& [name, t] : tiny.tensors) total += t.nbytes();
      const auto& stats = m.stats();
      // Everything is mapped; only MLA's kv_b_proj split is copied, with its reason.
      CHECK(stats.mapped_bytes == total);
      if (kind == "deepseek_v2") {
        REQUIRE(stats.copies.size() == 1);
        CHECK_THAT(stats.copies.begin()->first, Catch::Contains("kv_b_proj"));
        CHECK(stats.copied_bytes == stats.copies.begin()->second);
      } else {
        CHECK(stats.copied_bytes == 0);
      }

      const auto& c = m.config();
      int checked = 0;
      for (std::int64_t l = 0; l < c.num_layers; ++l) {
        if (!c.is_moe_layer(l)) continue;
        for (const char* part : {"gate", "up", "down"}) {
          const Tensor& w = m.weight(fmt::format("model.layers.{}.moe.experts.{}", l, part));
          CHECK(w.shape()[0] == c.num_experts);
          CHECK(w.dtype() == dtype);
          for (std::int64_t e = 0; e < c.num_experts; ++e) {
            CHECK(inside(w.part(e), w.part_bytes(), ranges));
            ++checked;
          }
        }
        // Every other weight of the layer is in the mapping too.
        CHECK(inside(m.weight(fmt::format("model.layers.{}.moe.gate", l)).data(), 4, ranges));
      }
      CHECK(checked > 0);
      CHECK(inside(m.weight("model.embed_tokens.weight").data(), 4, ranges));

      // On cpu the experts are read through their table: nothing is gathered, and the logits
      // match the reference backend's.
      if (available("cpu")) {
        model::Session session(m, {.backend = "cpu", .capacity = 16});
        const std::vector<std::int32_t> ids{3, 1, 4, 1, 5};
        const auto cpu = session.forward(ids).to_f32();
        model::Session ref(m, {.capacity = 16});
        const auto expected = ref.forward(ids).to_f32();
        REQUIRE(cpu.size() == expected.size());
        for (std::size_t i = 0; i < cpu.size(); ++i) REQUIRE(std::fabs(cpu[i] - expected[i]) < 1e-3);
        const std::int32_t next = 9;
        session.forward({&next, 1});  // the decode graph, small blocks through the table
        std::uint64_t expert_bytes = 0;
        for (std::int64_t l = 0; l < c.num_layers; ++l)
          if (c.is_moe_layer(l))
            for (const char* part : {"gate", "up", "down"})
              expert_bytes +=
                  m.weight(fmt::format("model.layers.{}.moe.experts.{}", l, part)).nbytes();
        // Whatever the cpu kernels repack (the MLA absorption's batched weights), never the
        // experts.
        CHECK(session.copied_weight_bytes() < expert_bytes);
      }
    }
  }
}

TEST_CASE("Prefaulting maps every weight's pages at load; without it they wait for first use",
          "[model][zerocopy]") {
  // A vocabulary large enough (4 MB each of embedding and lm_head) that reading the header and
  // the fault-around of a few pages cannot make the mapping resident by accident. The embedding
  // table, read a row per token, is left to be faulted in.
  TinyModel tiny = tiny_model("mixtral", 3, DType::F32);
  auto json = nlohmann::json::parse(tiny.config_json);
  json["vocab_size"] = 1 << 15;
  tiny.config_json = json.dump();
  tiny.config = model::parse_config(tiny.config_json, "mixtral");
  tiny.tensors = model::random_weights(tiny.config, {.seed = 3, .dtype = DType::F32});
  const std::string dir = model_tmpdir("prefault");
  model::write_checkpoint(dir, tiny.config_json, tiny.tensors);
  const std::string file = dir + "/model.safetensors";
  std::uint64_t weight_bytes = 0;
  for (const auto& [name, t] : tiny.tensors) weight_bytes += t.nbytes();
  REQUIRE(weight_bytes > (8u << 20));

  std::uint64_t lazy_resident = 0;
  {
    const model::Model m = model::Model::load(dir, {.prefault = false});
    CHECK(m.stats().prefaulted_bytes == 0);
    lazy_resident = resident_bytes_of(file);
  }
  const model::Model m = model::Model::load(dir);
  const std::uint64_t embedding = m.weight("model.embed_tokens.weight").nbytes();
  CHECK(m.stats().prefaulted_bytes ==
        m.stats().mapped_bytes + m.stats().copied_bytes - embedding);
  const std::uint64_t resident = resident_bytes_of(file);
  INFO("resident without prefault " << lazy_resident << ", with " << resident << " of "
                                    << weight_bytes << " weight bytes");
  CHECK(lazy_resident < weight_bytes / 4);
  CHECK(resident >= weight_bytes - embedding);
  CHECK(resident < weight_bytes - embedding / 2);
}

TEST_CASE("A stacked tensor addresses its parts where they are, and gathers on request",
          "[model][zerocopy]") {
  const Tensor a = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = Tensor::from_vector<float>({2, 3}, {7, 8, 9, 10, 11, 12});
  const Tensor s = Tensor::stack_views({b, a});
  CHECK(s.stacked());
  CHECK(s.shape() == Shape{2, 2, 3});
  CHECK(s.data() == nullptr);
  CHECK(s.part(0) == b.data());
  CHECK(s.part(1) == a.data());
  CHECK(s.part_bytes() == 24);
  CHECK(s.to_f32() == std::vector<float>{7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6});
  CHECK(s.at_f32(7) == 2.0f);
  const Tensor g = s.contiguous();
  CHECK(!g.stacked());
  CHECK(g.to_f32() == s.to_f32());
  CHECK(s.reshape({2, 6}).part(1) == a.data());
  CHECK_THROWS_WITH(s.reshape({12}), Catch::Contains("stacked"));
  CHECK_THROWS_WITH(s.data_as<float>(), Catch::Contains("stacked"));
  // Parts that lie back to back in order are an ordinary view of their memory.
  const Tensor whole = Tensor::from_vector<float>({4}, {1, 2, 3, 4});
  const auto* base = static_cast<float*>(whole.data());
  const Tensor lo = Tensor::view(const_cast<float*>(base), {2}, DType::F32);
  const Tensor hi = Tensor::view(const_cast<float*>(base + 2), {2}, DType::F32);
  const Tensor joined = Tensor::stack_views({lo, hi});
  CHECK(!joined.stacked());
  CHECK(joined.data() == base);
  CHECK_THROWS_WITH(Tensor::stack_views({a, whole}), Catch::Contains("part 1"));
}

TEST_CASE("A backend that needs one buffer gets the stacked experts gathered, and counted",
          "[model][zerocopy]") {
  // npu-sim's kernels read one buffer: the runtime gathers the experts for it and says so.
  if (!available("npu-sim:910b2")) return;
  const model::Model m = load(tiny_model("mixtral", 2, DType::F32));
  const auto& c = m.config();
  REQUIRE(m.weight("model.layers.0.moe.experts.gate").stacked());
  model::Session session(m, {.backend = "npu-sim:910b2", .capacity = 16});
  const std::vector<std::int32_t> ids{1, 2, 3};
  const auto got = session.forward(ids).to_f32();
  std::uint64_t expert_bytes = 0;
  for (std::int64_t l = 0; l < c.num_layers; ++l)
    for (const char* part : {"gate", "up", "down"})
      expert_bytes += m.weight(fmt::format("model.layers.{}.moe.experts.{}", l, part)).nbytes();
  CHECK(session.copied_weight_bytes() >= expert_bytes);
  model::Session ref(m, {.capacity = 16});
  const auto expected = ref.forward(ids).to_f32();
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::fabs(got[i] - expected[i]) < 1e-3);
}

TEST_CASE("Prefill's last-position logits are identical with and without all positions",
          "[model][zerocopy]") {
  const model::Model m = load(tiny_model("deepseek_v3", 4));
  const std::vector<std::int32_t> ids{3, 141, 59, 26, 5};
  std::vector<std::string> backends{"reference"};
  if (available("cpu")) backends.push_back("cpu");
  for (const auto& backend : backends) {
    INFO(backend);
    model::Session all(m, {.backend = backend, .capacity = 16, .all_logits = true});
    model::Session last(m, {.backend = backend, .capacity = 16});
    const Tensor full = all.forward(ids);
    const Tensor one = last.forward(ids);
    const auto vocab = m.config().vocab_size;
    REQUIRE(full.shape() == Shape{5, vocab});
    REQUIRE(one.shape() == Shape{1, vocab});
    const auto f = full.to_f32();
    const auto o = one.to_f32();
    CHECK(std::vector<float>(f.end() - vocab, f.end()) == o);
  }
}

TEST_CASE("The memory a run needs is known before loading, and too much is refused",
          "[model][zerocopy]") {
  const TinyModel tiny = tiny_model("deepseek_v2", 5);
  const std::string dir = model_tmpdir("memory_need");
  model::write_checkpoint(dir, tiny.config_json, tiny.tensors);
  const model::MemoryNeed need = model::estimate_memory(dir, {}, 8, 32, false);
  std::uint64_t mapped = 0;
  for (const auto& [name, t] : tiny.tensors) mapped += t.nbytes();
  const auto& c = tiny.config;
  // Weights: every tensor mapped, plus the kv_b_proj halves (a copy of each kv_b_proj).
  const std::uint64_t kv_b = static_cast<std::uint64_t>(
      c.num_layers * c.num_heads * (c.qk_nope_head_dim + c.v_head_dim) * c.kv_lora_rank * 2);
  CHECK(need.weights == mapped + kv_b);
  // KV cache: the MLA latent of 32 positions per layer in f32.
  CHECK(need.kv_cache ==
        static_cast<std::uint64_t>(c.num_layers * 32 * (c.kv_lora_rank + c.qk_rope_head_dim) * 4));
  CHECK(need.activations > 0);
  CHECK_NOTHROW(model::check_memory(need, need.total(), "--max-memory"));
  CHECK_THROWS_WITH(model::check_memory(need, need.total() - 1, "--max-memory"),
                    Catch::Contains("--max-memory") && Catch::Contains("KV cache"));
  CHECK(model::parse_bytes("12G") == 12ull << 30);
  CHECK(model::parse_bytes("512MiB") == 512ull << 20);
  CHECK(model::parse_bytes("64kb") == 64ull << 10);
  CHECK(model::parse_bytes("1000") == 1000);
  CHECK_THROWS_WITH(model::parse_bytes("12X"), Catch::Contains("'12X' is not a byte count"));
  CHECK_THROWS_WITH(model::parse_bytes("G"), Catch::Contains("not a byte count"));
  CHECK(model::available_memory() > 0);
  CHECK(model::peak_rss_bytes() > 0);
}

}  // namespace porta::test::model_zero_copy_tests
