// list_tensors: what `porta inspect` shows for any file or folder the loaders understand.
#include <porta/io.hpp>

#include <filesystem>

#include <fmt/format.h>

#include "io/npy_format.hpp"
#include "io/posix_file.hpp"

namespace porta::io {

namespace fs = std::filesystem;

std::vector<TensorEntry> list_tensors(const std::string& path) {
  if (detail::classify_path(path, "tensor file") == detail::PathKind::Directory)
    return Checkpoint::open(path).entries();

  const std::string extension = fs::path(path).extension().string();
  if (extension == ".safetensors") return SafeTensorsFile::open(path).entries();
  if (extension == ".json") return Checkpoint::open(path).entries();
  if (extension == ".npy") {
    const detail::InputFile file(path);
    const detail::NpyLayout layout = detail::read_npy_layout(file);
    TensorEntry entry;
    entry.name = fs::path(path).stem().string();
    entry.dtype = layout.dtype;
    entry.shape = layout.shape;
    entry.nbytes = layout.data_bytes;
    entry.file = path;
    entry.offset = layout.data_offset;
    return {entry};
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("cannot list tensors of '{}': unknown file type '{}' (expected .npy, "
                          ".safetensors, an index .json or a checkpoint directory)",
                          path, extension));
}

}  // namespace porta::io
