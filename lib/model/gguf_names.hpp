// The correspondence between Hugging Face tensor names (what porta's loader asks for) and GGUF
// tensor names (what llama.cpp's convert_hf_to_gguf.py writes), shared by the GGUF import and
// export so that both directions follow one table.
#pragma once

#include <cstdint>
#include <string>

#include <porta/model/config.hpp>

namespace porta::model::detail {

enum class GgufLayout {
  Same,          // the same bytes: GGUF dims are the HF shape reversed
  PermutedRows,  // llama's attn_q/attn_k: rows of each head interleaved for GPT-J style rope
  ExpertSlice,   // expert `expert` of a merged [E, rows, cols] tensor
  KvB,           // deepseek2's attn_kv_b, or its split attn_k_b / attn_v_b
};

struct GgufName {
  std::string gguf;          // e.g. "blk.3.ffn_gate_exps.weight"
  GgufLayout layout = GgufLayout::Same;
  std::int64_t expert = -1;  // ExpertSlice
  std::int64_t heads = 0;    // PermutedRows: the heads the rows are grouped into
  std::int64_t layer = -1;   // the block, -1 for the embedding, final norm and output
};

// The GGUF name of Hugging Face tensor `hf` for a model of `config`; throws NotFound for names
// with no GGUF counterpart.
GgufName gguf_name_of(const std::string& hf, const ModelConfig& config);

// GGUF's `general.architecture` for a config: "deepseek2", "llama", "qwen2moe", "qwen3moe".
std::string gguf_architecture(const ModelConfig& config);

// The rows of a llama q/k projection [heads * d, cols] reordered as convert_hf_to_gguf.py's
// permute() does (HF row i * d/2 + j of a head goes to row 2j + i), or back (`inverse`).
// `elem` bytes per element; rows are moved whole.
void permute_rows(const std::byte* src, std::byte* dst, std::int64_t heads, std::int64_t rows,
                  std::size_t row_bytes, bool inverse);

}  // namespace porta::model::detail
