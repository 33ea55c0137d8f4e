// The .npy header, parsed and checked against the file size, shared by read_npy and list_tensors.
#pragma once

#include <cstddef>

#include <porta/dtype.hpp>
#include <porta/shape.hpp>

#include "io/posix_file.hpp"

namespace porta::io::detail {

struct NpyLayout {
  DType dtype = DType::F32;
  Shape shape;
  std::size_t data_offset = 0;  // where the elements start in the file
  std::size_t data_bytes = 0;   // numel * dtype size, equal to what the file holds after the header
};

// Reads and validates the header of `file`: magic, version (1.0, 2.0, 3.0), the header dict
// (descr, fortran_order, shape, nothing else), a supported little-endian descr, C order, and
// that exactly numel * itemsize bytes follow the header.
NpyLayout read_npy_layout(const InputFile& file);

}  // namespace porta::io::detail
