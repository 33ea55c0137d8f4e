// `porta quantize`: a float checkpoint re-encoded into a quantized format, one output shard per
// input shard, streamed: the writer asks for each output tensor's bytes chunk by chunk, and the
// one source tensor being encoded is held with its encoding until its last output tensor is
// written. Source pages are released from the mapping after use (madvise), so resident memory
// stays near one tensor plus its encoding whatever the checkpoint's size.
#include <porta/model/quant_checkpoint.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <porta/io.hpp>
#include <porta/model/config.hpp>

namespace porta::model {

namespace {

namespace fs = std::filesystem;

// The (name, dtype, shape) encode_linear() produces, in its order, without encoding anything.
std::vector<io::TensorSpec> encoded_specs(const std::string& name, const Shape& shape,
                                          const QuantizedFormat& f) {
  const std::string m = name.substr(0, name.size() - 7);
  const auto n = shape[0], k = shape[1];
  const QuantScheme& s = f.scheme;
  const Shape scale{n, s.group_k > 0 ? k / s.group_k : 1};
  if (f.family != QuantizedFormat::Family::CompressedTensors)
    throw Error(ErrorCode::Unsupported, "porta quantize writes compressed-tensors checkpoints");
  if (f.activation != ActivationQuant::None) {  // int-quantized
    std::vector<io::TensorSpec> out{{name, DType::I8, shape}, {m + ".weight_scale", s.scale_dtype, scale}};
    if (s.zero_point) out.push_back({m + ".weight_zero_point", DType::I8, scale});
    return out;
  }
  const std::int64_t per = s.format == QuantFormat::Int4 ? 8 : 4;
  std::vector<io::TensorSpec> out{{m + ".weight_packed", DType::I32, Shape{n, (k + per - 1) / per}},
                                  {m + ".weight_scale", s.scale_dtype, scale},
                                  {m + ".weight_shape", DType::I64, Shape{2}}};
  if (s.zero_point) out.push_back({m + ".weight_zero_point", DType::I32, Shape{(n + per - 1) / per, scale[1]}});
  return out;
}

void release(const Tensor& t) {
  if (t.data() == nullptr || t.nbytes() == 0) return;
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(t.data()) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(t.data()) + t.nbytes() + page - 1) / page * page;
  // Clean file-backed pages: dropping them only costs a re-read should they be touched again.
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::NotFound, fmt::format("cannot open '{}'", path.string()));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::vector<io::TensorSpec> quantized_tensor_specs(const std::string& name, const Shape& shape,
                                                   const QuantizedFormat& format) {
  return encoded_specs(name, shape, format);
}

QuantizeStats quantize_checkpoint(const std::string& in_dir, const std::string& out_dir,
                                  const QuantizedFormat& format) {
  const auto start = std::chrono::steady_clock::now();
  if (format.family != QuantizedFormat::Family::CompressedTensors)
    throw Error(ErrorCode::Unsupported, "porta quantize writes compressed-tensors checkpoints");
  if (out_dir.empty() || (fs::exists(out_dir) && fs::equivalent(in_dir, out_dir)))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("--out must be another directory than --model ('{}')", in_dir));
  const std::string config_text = read_text(fs::path(in_dir) / "config.json");
  const ModelConfig config = parse_config(config_text, in_dir + "/config.json");
  if (!config.quant_method.empty())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("'{}' is already quantized ({}); porta quantize reads float checkpoints",
                            in_dir, config.quant_method));
  const io::Checkpoint ck = io::Checkpoint::open(in_dir);
  const std::vector<io::TensorEntry> entries = ck.entries();

  // One output file per input file, tensors in the input's order.
  std::map<std::string, std::vector<const io::TensorEntry*>> by_file;
  for (const auto& e : entries) by_file[e.file].push_back(&e);
  fs::create_directories(out_dir);
  QuantizeStats stats;
  nlohmann::json weight_map = nlohmann::json::object();
  for (const auto& [file, tensors] : by_file) {
    struct Source {
      const io::TensorEntry* entry;
      std::size_t part;  // index into its encoding; npos: copied as it is
    };
    std::vector<io::TensorSpec> specs;
    std::vector<Source> sources;
    for (const io::TensorEntry* e : tensors) {
      stats.bytes_in += e->nbytes;
      if (is_quantized_linear(e->name) && is_floating(e->dtype) && e->dtype != DType::F8E4M3 &&
          e->shape.rank() == 2) {
        const auto parts = encoded_specs(e->name, e->shape, format);
        for (std::size_t i = 0; i < parts.size(); ++i) {
          specs.push_back(parts[i]);
          sources.push_back({e, i});
        }
        ++stats.quantized;
      } else {
        specs.push_back({e->name, e->dtype, e->shape});
        sources.push_back({e, std::string::npos});
        ++stats.copied;
      }
    }
    const std::string out_name = fs::path(file).filename().string();
    for (const auto& s : specs) weight_map[s.name] = out_name;

    const io::TensorEntry* cached_for = nullptr;
    std::vector<std::pair<std::string, Tensor>> cached;
    Tensor cached_source;
    io::write_safetensors_streamed(
        (fs::path(out_dir) / out_name).string(), specs, {{"format", "pt"}},
        [&](std::size_t i, std::size_t offset, std::span<std::byte> chunk) {
          const Source& src = sources[i];
          Tensor from;
          if (src.part == std::string::npos) {
            from = ck.get(src.entry->name);
          } else {
            if (cached_for != src.entry) {
              if (cached_source.defined()) release(cached_source);
              cached.clear();
              cached_source = ck.get(src.entry->name);
              cached = encode_linear(src.entry->name, cached_source, format);
              cached_for = src.entry;
            }
            from = cached[src.part].second;
            if (cached[src.part].first != specs[i].name || offset + chunk.size() > from.nbytes())
              throw Error(ErrorCode::Internal,
                          fmt::format("quantize: '{}' encoded as '{}'", specs[i].name,
                                      cached[src.part].first));
          }
          std::memcpy(chunk.data(), static_cast<const std::byte*>(from.data()) + offset, chunk.size());
          if (src.part == std::string::npos && offset + chunk.size() == from.nbytes()) release(from);
        });
    if (cached_source.defined()) release(cached_source);
    for (const auto& s : specs) stats.bytes_out += static_cast<std::uint64_t>(s.shape.numel()) * dtype_size(s.dtype);
  }
  if (by_file.size() > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", stats.bytes_out}}},
                                  {"weight_map", weight_map}};
    std::ofstream out(fs::path(out_dir) / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    out << index.dump(2) << "\n";
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write '{}/model.safetensors.index.json'", out_dir));
  }
  {
    std::ofstream out(fs::path(out_dir) / "config.json", std::ios::binary | std::ios::trunc);
    out << quantized_config_json(config_text, format);
    if (!out) throw Error(ErrorCode::Io, fmt::format("cannot write '{}/config.json'", out_dir));
  }
  // The tokenizer and generation files travel along unchanged.
  for (const auto& item : fs::directory_iterator(in_dir)) {
    const std::string name = item.path().filename().string();
    if (!item.is_regular_file() || name == "config.json" || name.ends_with(".safetensors") ||
        name == "model.safetensors.index.json")
      continue;
    fs::copy_file(item.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace porta::model
