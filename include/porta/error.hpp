// porta::Error is the one exception type porta throws. Every failure a user can cause (a shape
// mismatch, a corrupt file, an op no backend can run, a missing run input) surfaces as an Error
// with a machine-readable code and a message that names the op, node, tensor or key involved.
#pragma once

#include <porta/config.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

PORTA_API_BEGIN
namespace porta {

enum class ErrorCode {
  InvalidArgument,  // a value the caller passed is out of range or malformed
  ShapeMismatch,    // shapes do not agree with the op's rule
  DTypeMismatch,    // dtypes do not agree with the op's rule
  Unsupported,      // no backend (or not the requested one) can do this
  NotFound,         // a named thing (file, tensor, input, backend) does not exist
  Io,               // the operating system refused a read, write or map
  CorruptFile,      // a file's contents contradict its own format
  Backend,          // a device library (oneDNN, OpenCL, ...) reported a failure
  OutOfMemory,      // an allocation failed
  Internal,         // a porta bug: please report it
};

std::string_view error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace porta
PORTA_API_END
