// No byte pattern makes the safetensors reader crash: thousands of random mutations of a valid
// file either load (and every tensor view stays inside the file) or raise porta::Error.
#include <filesystem>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>

#include <porta/io.hpp>

namespace io_safetensors_mutation_tests {

TEST_CASE("mutated safetensors files load or raise porta::Error, never crash", "[io]") {
  const auto dir = std::filesystem::path(PORTA_TEST_TMPDIR) / "io" / "mutation";
  std::filesystem::create_directories(dir);
  const auto original_path = (dir / "original.safetensors").string();
  porta::io::write_safetensors(original_path,
                               {{"a", porta::Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4})},
                                {"b", porta::Tensor::from_vector<std::int32_t>({3}, {5, 6, 7})}},
                               {{"format", "pt"}});
  std::ifstream in(original_path, std::ios::binary);
  const std::string original((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  std::mt19937_64 rng(1234);
  const auto mutated_path = (dir / "mutated.safetensors").string();
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bytes = original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const auto at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] = static_cast<char>(rng() & 0xff); break;            // flip a byte
        case 1: bytes[at] = "{}[]\",:0123456789-e"[rng() % 19]; break;         // JSON-ish byte
        case 2: bytes.resize(at); break;                                       // truncate
        default: bytes.insert(at, 1, static_cast<char>(rng() & 0xff)); break;  // insert
      }
      if (bytes.empty()) break;
    }
    std::ofstream(mutated_path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    try {
      const auto file = porta::io::SafeTensorsFile::open(mutated_path);
      for (const auto& entry : file.entries()) {
        const auto t = file.get(entry.name);
        CHECK(t.nbytes() == entry.nbytes);
        volatile float sink =
            t.numel() > 0 ? t.at_f32(t.numel() - 1) : 0.0f;  // touch the last byte
        (void)sink;
      }
      ++loaded;
    } catch (const porta::Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(loaded + rejected == 1500);
}

}  // namespace io_safetensors_mutation_tests
