// Reading and writing tensors in the files people actually have: NumPy .npy arrays and
// Hugging Face safetensors checkpoints, single-file or sharded through
// model.safetensors.index.json.
//
// safetensors files are memory-mapped; the tensors handed out are views into the mapping (they
// keep it alive), so loading a checkpoint costs no copies. Every header is bounds-checked before
// any byte of data is touched: a truncated or corrupt file gives a porta::Error naming the file
// and the tensor or key at fault, never a crash.
#pragma once

#include <porta/config.hpp>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <porta/tensor.hpp>

PORTA_API_BEGIN
namespace porta::io {

// ---- .npy -------------------------------------------------------------------------------------
// Read: format versions 1.0, 2.0 and 3.0, C order, little-endian float32, float16, int8, int32
// and int64. NumPy has no bf16 or f8 dtype, so write_npy widens those to float32.
Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& tensor);

// ---- safetensors ------------------------------------------------------------------------------
struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::size_t nbytes = 0;
  std::string file;        // the file holding the data
  std::size_t offset = 0;  // byte offset of the data inside `file`
};

class SafeTensorsFile {
 public:
  // Maps the file and validates the whole header: length, JSON, dtypes, shapes, and that each
  // tensor's data_offsets lie inside the data section, match numel * dtype size and do not
  // overlap another tensor's.
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const;
  const std::vector<TensorEntry>& entries() const;  // in data-offset order
  bool contains(const std::string& name) const;
  const TensorEntry& entry(const std::string& name) const;  // throws NotFound naming `name`
  Tensor get(const std::string& name) const;                // a view into the mapping
  const std::map<std::string, std::string>& metadata() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// A checkpoint: one .safetensors file, a directory holding model.safetensors or
// model.safetensors.index.json, or the index file itself. Shards are opened on first use.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  const std::string& path() const;
  std::vector<TensorEntry> entries() const;  // every tensor of every shard, sorted by name
  bool contains(const std::string& name) const;
  Tensor get(const std::string& name) const;  // throws NotFound naming the tensor

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Writes tensors (in the order given) into a safetensors file with optional string metadata.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// A safetensors file written without holding its tensors: the header from these specs, then
// each tensor's bytes produced chunk by chunk by `fill(tensor index, byte offset in the tensor,
// chunk)` (a chunk is at most chunk_bytes, a multiple of 64, and the next chunk is filled while
// the previous one is written). Memory: two chunks, whatever the file's size.
struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};
using StreamFill = std::function<void(std::size_t, std::size_t, std::span<std::byte>)>;
void write_safetensors_streamed(const std::string& path, const std::vector<TensorSpec>& tensors,
                                const std::map<std::string, std::string>& metadata,
                                const StreamFill& fill, std::size_t chunk_bytes = 8u << 20);

// The tensors of a .safetensors, .npy or index file, or of a checkpoint directory, for
// `porta inspect`.
std::vector<TensorEntry> list_tensors(const std::string& path);

}  // namespace porta::io
PORTA_API_END
