// Checkpoints: one safetensors file, a directory of them, or a sharded model described by
// model.safetensors.index.json ({"weight_map": {"tensor name": "shard file name", ...}}).
//
// Sharded checkpoints (DeepSeek-V3: 163 shards, ~690 GB) are opened lazily: open() reads only the
// index and checks that every shard it names exists; a shard is mapped and validated on the first
// get() of one of its tensors, then cached. The cache is guarded by a mutex so that loader threads
// may share one Checkpoint.
#include <porta/io.hpp>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/posix_file.hpp"

namespace porta::io {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexFileName = "model.safetensors.index.json";

std::string read_whole_file(const std::string& path) {
  const detail::InputFile file(path);
  std::string text(file.size(), '\0');
  file.read_at(0, text.data(), text.size());
  return text;
}

bool has_extension(const fs::path& path, std::string_view extension) {
  return path.extension().string() == extension;
}

}  // namespace

struct Checkpoint::Impl {
  struct Shard {
    std::string file;
    std::optional<SafeTensorsFile> opened;
    std::vector<std::string> indexed_tensors;  // what the index promises this shard holds
  };

  std::string path;
  std::string index_path;  // empty unless the checkpoint came from an index
  std::vector<Shard> shards;
  std::map<std::string, std::size_t> shard_of;  // tensor name -> index into shards
  std::mutex mutex;                             // guards Shard::opened

  SafeTensorsFile shard(std::size_t i);
  void add_opened_file(const std::string& file);
  void load_index(const std::string& index_file);
};

SafeTensorsFile Checkpoint::Impl::shard(std::size_t i) {
  const std::lock_guard<std::mutex> lock(mutex);
  Shard& shard = shards[i];
  if (shard.opened) return *shard.opened;
  SafeTensorsFile file = [&] {
    try {
      return SafeTensorsFile::open(shard.file);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::NotFound) throw;
      throw Error(ErrorCode::NotFound,
                  fmt::format("shard '{}' of '{}' (holding tensor '{}') is missing: {}", shard.file,
                              index_path, shard.indexed_tensors.front(), e.what()));
    }
  }();
  // Check the index's promises once, when the shard is first opened, so that a mismatched
  // index fails loudly rather than when some later layer asks for its weights.
  for (const auto& name : shard.indexed_tensors)
    if (!file.contains(name))
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}' maps tensor '{}' to shard '{}', but that shard has no such "
                              "tensor",
                              index_path, name, shard.file));
  shard.opened = file;
  return file;
}

void Checkpoint::Impl::add_opened_file(const std::string& file) {
  SafeTensorsFile opened = SafeTensorsFile::open(file);
  const std::size_t index = shards.size();
  Shard shard{file, opened, {}};
  for (const auto& entry : opened.entries()) {
    const auto [it, inserted] = shard_of.emplace(entry.name, index);
    if (!inserted)
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("checkpoint '{}': tensor '{}' appears in both '{}' and '{}'", path,
                              entry.name, shards[it->second].file, file));
    shard.indexed_tensors.push_back(entry.name);
  }
  shards.push_back(std::move(shard));
}

void Checkpoint::Impl::load_index(const std::string& index_file) {
  index_path = index_file;
  nlohmann::json index;
  try {
    index = nlohmann::json::parse(read_whole_file(index_file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(
        ErrorCode::CorruptFile,
        fmt::format("'{}': the checkpoint index is not valid JSON: {}", index_file, e.what()));
  }
  const auto weight_map = index.is_object() ? index.find("weight_map") : index.end();
  if (!index.is_object() || weight_map == index.end() || !weight_map->is_object())
    throw Error(ErrorCode::CorruptFile,
                fmt::format("'{}': a checkpoint index must be an object with a \"weight_map\" "
                            "object mapping tensor names to shard files",
                            index_file));

  const fs::path folder = fs::path(index_file).parent_path();
  std::map<std::string, std::size_t> shard_by_name;
  for (const auto& [tensor, shard_json] : weight_map->items()) {
    if (!shard_json.is_string() || shard_json.get_ref<const std::string&>().empty())
      throw Error(ErrorCode::CorruptFile,
                  fmt::format("'{}': weight_map entry for tensor '{}' must be a shard file name, "
                              "not {}",
                              index_file, tensor, shard_json.dump()));
    const auto& shard_name = shard_json.get_ref<const std::string&>();
    auto [it, inserted] = shard_by_name.emplace(shard_name, shards.size());
    if (inserted) shards.push_back(Shard{(folder / shard_name).string(), std::nullopt, {}});
    shards[it->second].indexed_tensors.push_back(tensor);
    shard_of.emplace(tensor, it->second);
  }
  // Existence is cheap to check now and saves a failure deep into a long model load.
  for (const auto& shard : shards) {
    std::error_code error;
    if (!fs::is_regular_file(shard.file, error))
      throw Error(ErrorCode::NotFound,
                  fmt::format("'{}' names shard '{}' (holding tensor '{}'), which does not exist",
                              index_file, shard.file, shard.indexed_tensors.front()));
  }
}

Checkpoint Checkpoint::open(const std::string& path) {
  auto impl = std::make_shared<Impl>();
  impl->path = path;
  std::error_code error;
  if (detail::classify_path(path, "checkpoint") == detail::PathKind::Directory) {
    const fs::path index = fs::path(path) / kIndexFileName;
    if (fs::is_regular_file(index, error)) {
      impl->load_index(index.string());
    } else {
      std::vector<std::string> files;
      for (const auto& item : fs::directory_iterator(path, error))
        if (has_extension(item.path(), ".safetensors") && item.is_regular_file(error))
          files.push_back(item.path().string());
      if (error)
        throw Error(ErrorCode::Io, fmt::format("cannot list checkpoint directory '{}': {}", path,
                                               error.message()));
      if (files.empty())
        throw Error(ErrorCode::NotFound,
                    fmt::format("checkpoint directory '{}' holds neither {} nor any .safetensors "
                                "file",
                                path, kIndexFileName));
      std::sort(files.begin(), files.end());
      for (const auto& file : files) impl->add_opened_file(file);
    }
  } else if (has_extension(path, ".json")) {
    impl->load_index(path);
  } else if (has_extension(path, ".safetensors")) {
    impl->add_opened_file(path);
  } else {
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' is not a checkpoint: expected a .safetensors file, an index "
                            ".json or a directory",
                            path));
  }
  Checkpoint checkpoint;
  checkpoint.impl_ = std::move(impl);
  return checkpoint;
}

namespace {
// A default-constructed Checkpoint has no Impl; using it is a caller error, not a crash.
template <class Impl>
Impl& opened_or_throw(const std::shared_ptr<Impl>& impl) {
  if (!impl)
    throw Error(ErrorCode::InvalidArgument,
                "this Checkpoint was default-constructed; use Checkpoint::open");
  return *impl;
}
}  // namespace

const std::string& Checkpoint::path() const { return opened_or_throw(impl_).path; }

std::vector<TensorEntry> Checkpoint::entries() const {
  Impl& impl = opened_or_throw(impl_);
  std::vector<TensorEntry> all;
  all.reserve(impl.shard_of.size());
  for (std::size_t i = 0; i < impl.shards.size(); ++i) {
    const SafeTensorsFile file = impl.shard(i);
    // Only what the index maps here: a tensor the index does not list cannot be get() either.
    for (const auto& name : impl.shards[i].indexed_tensors) all.push_back(file.entry(name));
  }
  std::sort(all.begin(), all.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.name < b.name; });
  return all;
}

bool Checkpoint::contains(const std::string& name) const {
  return opened_or_throw(impl_).shard_of.count(name) != 0;
}

Tensor Checkpoint::get(const std::string& name) const {
  Impl& impl = opened_or_throw(impl_);
  const auto it = impl.shard_of.find(name);
  if (it == impl.shard_of.end())
    throw Error(ErrorCode::NotFound,
                fmt::format("checkpoint '{}' has no tensor named '{}'", impl.path, name));
  return impl.shard(it->second).get(name);
}

}  // namespace porta::io
