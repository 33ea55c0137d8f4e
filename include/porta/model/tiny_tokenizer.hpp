// A tiny Hugging Face tokenizer for the tiny random checkpoints (`porta gen-checkpoint`), so that
// `porta run --prompt` and `porta chat` work on them: Mixtral-style (Metaspace, BPE with <unk>),
// special tokens <unk> <s> </s>, [INST] / [/INST] markers, printable ASCII plus merges learned
// from a fixed English text until the vocabulary is full, and a Mixtral-like chat template.
#pragma once

#include <porta/config.hpp>

#include <cstdint>
#include <string>

PORTA_API_BEGIN
namespace porta::model {

// Writes DIR/tokenizer.json and DIR/tokenizer_config.json with exactly `vocab_size` ids
// (at least 128; the tiny presets use 256). The same size always gives the same files.
void write_tiny_tokenizer(const std::string& dir, std::int64_t vocab_size);

}  // namespace porta::model
PORTA_API_END
