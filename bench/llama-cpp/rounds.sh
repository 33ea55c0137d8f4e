#!/bin/bash
# Rounds of porta and llama.cpp on the same GGUF files, taking turns so that each sees the same
# machine load: porta-bench-gguf-model (both activation modes, one process) then compare.mjs on
# each file, for each prompt length. The files are porta-bench-gguf-model's Qwen3-shaped ones
# (written by a first run without --reuse). docs/gguf.md, "Against llama.cpp", has the figures.
#
#   NODE_PATH=/tmp/llama/node_modules bench/llama-cpp/rounds.sh [ROUNDS] [BUILD_DIR]
#
# Environment: TYPES, the files (default "q8_0 q4_K"; any of the bench's --types, such as the
# llama-quantize recipe q4_K_M), PROMPTS (default "128 512"). For CPUs with AVX2 only, on an
# AVX-512 machine: PORTA_GGML_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2, and NODE_PATH at a copy of
# node-llama-cpp whose bins/linux-x64 keeps no libggml-cpu-*.so above haswell.
set -euo pipefail
rounds=${1:-3}
build=${2:-build}
types=${TYPES:-q8_0 q4_K}
prompts=${PROMPTS:-128 512}
dir=/tmp/porta-bench-gguf
cd "$(dirname "$0")/../.."
for round in $(seq 1 "$rounds"); do
  for prompt in $prompts; do
    steps=8
    [ "$prompt" -ge 512 ] && steps=4
    echo "=== round $round T=$prompt porta"
    "$build/bench/porta-bench-gguf-model" --preset qwen3-30b-a3b --experts 0 \
      --tokenizer ../shared/data/tokenizers/qwen3 --prompt "$prompt" --steps "$steps" --reps 3 \
      --reuse --no-bf16 --types "${types// /,}" | grep "^| q"
    for type in $types; do
      echo "=== round $round T=$prompt llama.cpp $type"
      node bench/llama-cpp/compare.mjs "$dir/qwen3-30b-a3b_shaped_$type.gguf" \
        --porta "$build/tools/porta" --prompt "$prompt" --steps "$steps" --reps 3 | tail -2
    done
  done
done
