// Checkpoints: single files, folders of files, sharded indexes, and their failure modes.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include <porta/io.hpp>

#include "io/io_test_support.hpp"

namespace io_checkpoint_tests {

using namespace porta;
using namespace porta::io::test;

namespace {

Tensor floats(Shape shape, std::vector<float> values) {
  return Tensor::from_vector<float>(std::move(shape), values);
}

float element(const Tensor& t, std::size_t i) { return load_unaligned<float>(t.data(), i); }

// Two shards and an index, as Hugging Face lays out a sharded model.
std::string make_sharded(const std::string& name) {
  const std::string dir = fresh_dir(name);
  io::write_safetensors(dir + "/model-00001-of-00002.safetensors",
                        {{"layers.0.w", floats({2}, {1, 2})}, {"embed", floats({1}, {10})}});
  io::write_safetensors(dir + "/model-00002-of-00002.safetensors",
                        {{"layers.1.w", floats({3}, {3, 4, 5})}});
  write_bytes(dir + "/model.safetensors.index.json",
              R"({"metadata": {"total_size": 24}, "weight_map": {)"
              R"("embed": "model-00001-of-00002.safetensors",)"
              R"("layers.0.w": "model-00001-of-00002.safetensors",)"
              R"("layers.1.w": "model-00002-of-00002.safetensors"}})");
  return dir;
}

}  // namespace

TEST_CASE("checkpoint from a sharded index, by folder or by index file", "[io][checkpoint]") {
  const std::string dir = make_sharded("ckpt_sharded");
  for (const std::string& path : {dir, dir + "/model.safetensors.index.json"}) {
    INFO(path);
    const auto checkpoint = io::Checkpoint::open(path);
    CHECK(checkpoint.path() == path);
    CHECK(checkpoint.contains("layers.1.w"));
    CHECK_FALSE(checkpoint.contains("layers.2.w"));
    const Tensor w1 = checkpoint.get("layers.1.w");
    CHECK(w1.shape() == Shape{3});
    CHECK(element(w1, 2) == 5.0f);
    CHECK(element(checkpoint.get("embed"), 0) == 10.0f);

    const auto entries = checkpoint.entries();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].name == "embed");
    CHECK(entries[1].name == "layers.0.w");
    CHECK(entries[2].name == "layers.1.w");
    CHECK_THAT(entries[2].file, Catch::EndsWith("model-00002-of-00002.safetensors"));
    REQUIRE_PORTA_ERROR(checkpoint.get("layers.2.w"), ErrorCode::NotFound, "'layers.2.w'");
  }
  CHECK(io::list_tensors(dir).size() == 3);
  CHECK(io::list_tensors(dir + "/model.safetensors.index.json").size() == 3);
}

TEST_CASE("checkpoint shards open lazily", "[io][checkpoint]") {
  const std::string dir = make_sharded("ckpt_lazy");
  // Shard 2 is garbage: only asking for one of its tensors may fail.
  write_bytes(dir + "/model-00002-of-00002.safetensors", "not a safetensors file at all");
  const auto checkpoint = io::Checkpoint::open(dir);
  CHECK(element(checkpoint.get("layers.0.w"), 1) == 2.0f);
  REQUIRE_PORTA_ERROR(checkpoint.get("layers.1.w"), ErrorCode::CorruptFile,
                      "model-00002-of-00002.safetensors");
}

TEST_CASE("checkpoint views outlive the checkpoint", "[io][checkpoint]") {
  const std::string dir = make_sharded("ckpt_view_lifetime");
  Tensor w;
  { w = io::Checkpoint::open(dir).get("layers.0.w"); }
  CHECK(element(w, 0) == 1.0f);
  CHECK(element(w, 1) == 2.0f);
}

TEST_CASE("checkpoint get from many threads at once", "[io][checkpoint]") {
  const std::string dir = make_sharded("ckpt_threads");
  const auto checkpoint = io::Checkpoint::open(dir);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const bool second = (i + t) % 2 == 0;
        const Tensor w = checkpoint.get(second ? "layers.1.w" : "layers.0.w");
        if (element(w, 0) != (second ? 3.0f : 1.0f)) ++wrong;
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(wrong == 0);
}

TEST_CASE("checkpoint from a single file or a folder of files", "[io][checkpoint]") {
  const std::string dir = fresh_dir("ckpt_files");
  io::write_safetensors(dir + "/a.safetensors", {{"x", floats({1}, {1})}});
  io::write_safetensors(dir + "/b.safetensors", {{"y", floats({2}, {2, 3})}});
  write_bytes(dir + "/README.md", "not a tensor file");

  const auto single = io::Checkpoint::open(dir + "/b.safetensors");
  CHECK(single.contains("y"));
  CHECK_FALSE(single.contains("x"));
  CHECK(element(single.get("y"), 1) == 3.0f);

  const auto folder = io::Checkpoint::open(dir);
  const auto entries = folder.entries();
  REQUIRE(entries.size() == 2);
  CHECK(entries[0].name == "x");
  CHECK(entries[1].name == "y");
  CHECK(element(folder.get("x"), 0) == 1.0f);
}

// ---- bad inputs -------------------------------------------------------------------------------

TEST_CASE("checkpoint bad input: index naming a missing shard", "[io][checkpoint][bad]") {
  const std::string dir = make_sharded("ckpt_missing_shard");
  std::filesystem::remove(dir + "/model-00002-of-00002.safetensors");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir), ErrorCode::NotFound,
                      "model-00002-of-00002.safetensors' (holding tensor 'layers.1.w')");
}

TEST_CASE("checkpoint bad input: index naming a tensor absent from its shard",
          "[io][checkpoint][bad]") {
  const std::string dir = make_sharded("ckpt_absent_tensor");
  write_bytes(dir + "/model.safetensors.index.json",
              R"({"weight_map": {"layers.0.w": "model-00001-of-00002.safetensors",)"
              R"("ghost": "model-00001-of-00002.safetensors"}})");
  const auto checkpoint = io::Checkpoint::open(dir);
  CHECK(checkpoint.contains("ghost"));
  REQUIRE_PORTA_ERROR(checkpoint.get("ghost"), ErrorCode::CorruptFile,
                      "maps tensor 'ghost' to shard");
  REQUIRE_PORTA_ERROR(checkpoint.get("ghost"), ErrorCode::CorruptFile,
                      "model-00001-of-00002.safetensors");
}

TEST_CASE("checkpoint bad input: malformed index", "[io][checkpoint][bad]") {
  const std::string dir = fresh_dir("ckpt_bad_index");
  write_bytes(dir + "/bad.json", "{\"weight_map\": ");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir + "/bad.json"), ErrorCode::CorruptFile,
                      "bad.json': the checkpoint index is not valid JSON");
  write_bytes(dir + "/nomap.json", R"({"metadata": {}})");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir + "/nomap.json"), ErrorCode::CorruptFile,
                      "weight_map");
  write_bytes(dir + "/numbers.json", R"({"weight_map": {"w": 3}})");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir + "/numbers.json"), ErrorCode::CorruptFile,
                      "tensor 'w'");
}

TEST_CASE("checkpoint bad input: paths that are not checkpoints", "[io][checkpoint][bad]") {
  const std::string dir = fresh_dir("ckpt_bad_paths");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir + "/nowhere"), ErrorCode::NotFound, "nowhere");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir), ErrorCode::NotFound, "neither");
  write_bytes(dir + "/weights.bin", "x");
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir + "/weights.bin"), ErrorCode::InvalidArgument,
                      "weights.bin");
}

TEST_CASE("checkpoint bad input: a tensor in two files of a folder", "[io][checkpoint][bad]") {
  const std::string dir = fresh_dir("ckpt_duplicate");
  io::write_safetensors(dir + "/a.safetensors", {{"w", floats({1}, {1})}});
  io::write_safetensors(dir + "/b.safetensors", {{"w", floats({1}, {2})}});
  REQUIRE_PORTA_ERROR(io::Checkpoint::open(dir), ErrorCode::CorruptFile,
                      "tensor 'w' appears in both");
}

}  // namespace io_checkpoint_tests
