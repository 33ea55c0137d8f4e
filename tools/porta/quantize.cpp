// `porta quantize --model DIR --scheme w8a8|w8a16|w4a16 [--group N] [--asym] --out DIR2`:
// round-to-nearest quantization of a float checkpoint into compressed-tensors, streamed tensor by
// tensor (lib/model/quantize_checkpoint.cpp), with config.json's quantization_config and the
// tokenizer files.
#include <fmt/format.h>

#include <porta/model/quant_checkpoint.hpp>

#include "commands.hpp"

namespace porta::cli {

Command add_quantize_command(CLI::App& app) {
  struct Options {
    std::string model, out, scheme;
    std::int64_t group = 128;
    bool asym = false;
  };
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "Float checkpoint directory")->required();
  app.add_option("--out", o->out, "Directory to write the quantized checkpoint into")->required();
  app.add_option("--scheme", o->scheme,
                 "w8a8 (int8 per channel, dynamic int8 activations), w8a16 (int8 per channel), "
                 "w4a16 (int4 in groups of --group)")
      ->required();
  app.add_option("--group", o->group, "w4a16: group size along K")->capture_default_str();
  app.add_flag("--asym", o->asym, "w8a16/w4a16: asymmetric, with zero points");
  return [o] {
    std::string name;
    if (o->scheme == "w8a8")
      name = "compressed-tensors-w8a8";
    else if (o->scheme == "w8a16")
      name = "compressed-tensors-w8a16";
    else if (o->scheme == "w4a16")
      name = o->asym ? "compressed-tensors-w4a16-asym" : "compressed-tensors-w4a16";
    else
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("unknown --scheme '{}' (w8a8, w8a16, w4a16)", o->scheme));
    if (o->asym && o->scheme == "w8a8")
      throw Error(ErrorCode::InvalidArgument,
                  "--asym applies to the weight-only schemes (w8a16, w4a16): W8A8's int8 "
                  "activations meet symmetric weights");
    model::QuantizedFormat format = model::parse_quantized_format(name, o->group);
    if (o->asym) format.scheme.zero_point = true;
    const auto stats = model::quantize_checkpoint(o->model, o->out, format);
    fmt::print("quantized {} tensors ({} copied as they are): {} -> {} bytes in {:.2f} s, "
               "written to {}\n",
               stats.quantized, stats.copied, stats.bytes_in, stats.bytes_out, stats.seconds,
               o->out);
    return 0;
  };
}

}  // namespace porta::cli
