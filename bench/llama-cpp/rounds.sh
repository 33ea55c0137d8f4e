#!/bin/bash
# Rounds of porta and llama.cpp on the same GGUF files, taking turns so that each sees the same
# machine load: porta-bench-gguf-model (both activation modes, one process) then compare.mjs on
# each file, for each prompt length. The files are porta-bench-gguf-model's Qwen3-shaped ones
# (written by a first run without --reuse). docs/gguf.md, "Against llama.cpp", has the figures.
#
#   NODE_PATH=/tmp/llama/node_modules bench/llama-cpp/rounds.sh [ROUNDS] [BUILD_DIR]
set -euo pipefail
rounds=${1:-3}
build=${2:-build}
dir=/tmp/porta-bench-gguf
cd "$(dirname "$0")/../.."
for round in $(seq 1 "$rounds"); do
  for prompt in 128 512; do
    steps=8
    [ "$prompt" = 512 ] && steps=4
    echo "=== round $round T=$prompt porta"
    "$build/bench/porta-bench-gguf-model" --preset qwen3-30b-a3b --experts 0 \
      --tokenizer ../shared/data/tokenizers/qwen3 --prompt "$prompt" --steps "$steps" --reps 3 \
      --reuse --no-bf16 | grep "^| q"
    for type in q8_0 q4_K; do
      echo "=== round $round T=$prompt llama.cpp $type"
      node bench/llama-cpp/compare.mjs "$dir/qwen3-30b-a3b_shaped_$type.gguf" \
        --porta "$build/tools/porta" --prompt "$prompt" --steps "$steps" --reps 3 | tail -2
    done
  done
done
