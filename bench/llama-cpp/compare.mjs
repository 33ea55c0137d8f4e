// porta next to llama.cpp on one GGUF file: the same greedy tokens and next-token
// probabilities, and prefill / decode speed on the same threads, medians of interleaved runs.
//
// llama.cpp comes from node-llama-cpp's prebuilt CPU binaries (npm), which pick the kernels of
// the CPU at run time as llama.cpp's own build does. Not a dependency of porta: nothing in the
// build or the tests uses it. See bench/README.md.
//
//   npm install --prefix /tmp/llama node-llama-cpp@3
//   NODE_PATH=/tmp/llama/node_modules node bench/llama-cpp/compare.mjs FILE.gguf \
//       [--porta build/tools/porta] [--prompt 128] [--steps 16] [--reps 3] [--threads N]
//       [--check-steps 8] [--activations ggml_q8|none] [--porta-args "--fp8-dtype f32"]
// --activations: porta run's --gguf-activations for the logits (default ggml_q8, porta's default
// for a GGUF: llama.cpp's own 8-bit activation blocks; none: exact products).
//
// Logits: llama.cpp's KV cache is made f32 (its default is f16, which alone moves probabilities
// by ~1e-3) and flash attention off, so that what differs is the arithmetic of the weights.
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {createRequire} from "node:module";

const require = createRequire(import.meta.url);
const {getLlama, LlamaLogLevel} = await import(require.resolve("node-llama-cpp"));

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
if (!file) {
  console.error("usage: compare.mjs FILE.gguf [--porta PATH] [--prompt N] [--steps N] [--reps N] " +
                "[--threads N] [--check-steps N] [--activations ggml_q8|none]");
  process.exit(2);
}
const portaBin = flag("--porta", "build/tools/porta");
const promptLen = Number(flag("--prompt", "128"));
const steps = Number(flag("--steps", "16"));
const reps = Number(flag("--reps", "3"));
const threads = Number(flag("--threads", String(os.availableParallelism())));
const checkSteps = Number(flag("--check-steps", "8"));
const activations = flag("--activations", "ggml_q8");
// More arguments for porta run, e.g. "--fp8-dtype f32" (tables dequantized at load in f32).
const portaArgs = flag("--porta-args", "").split(" ").filter((a) => a);

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: file});
const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? 32000;
// The same prompt as porta-bench-gguf-model's: ids spread over the vocabulary.
const prompt = Array.from({length: promptLen}, (_, i) => (i * 7919 + 13) % Math.min(vocab, 32000));
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

// --- numbers: greedy tokens and full next-token distributions -------------------------------
const exact = await model.createContext({
  contextSize: promptLen + checkSteps + 8, batchSize: 512, threads,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false,
});
const llamaTokens = [], llamaProbs = [];
{
  const seq = exact.getSequence();
  for await (const r of seq.evaluateWithMetadata(prompt, {probabilities: true}, {temperature: 0})) {
    llamaTokens.push(r.token);
    llamaProbs.push(r.probabilities);
    if (llamaTokens.length >= checkSteps) break;
  }
}
await exact.dispose();

function readNpyF32(p) {
  const buf = fs.readFileSync(p);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString("latin1", 10, 10 + headerLen);
  if (!header.includes("'<f4'")) throw new Error(`${p}: not a little-endian f32 .npy`);
  const shape = header.match(/\(([^)]*)\)/)[1].split(",").filter((s) => s.trim()).map(Number);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 10 + headerLen));
  return {shape, data};
}
const npy = path.join(os.tmpdir(), `porta-llama-compare-${process.pid}.npy`);
// porta over the prompt and llama.cpp's own continuation, so every position is compared on the
// same context even where the two would pick different tokens.
execFileSync(portaBin, ["run", "--model", file, "--prompt-ids",
                        [...prompt, ...llamaTokens.slice(0, -1)].join(","),
                        "--max-new-tokens", "1", "--dump-logits", npy,
                        "--gguf-activations", activations, ...portaArgs], {stdio: "ignore"});
const {shape, data} = readNpyF32(npy);
fs.rmSync(npy);
let agree = 0, worst = 0;
for (let s = 0; s < llamaTokens.length; ++s) {
  const row = data.subarray((promptLen - 1 + s) * shape[1], (promptLen + s) * shape[1]);
  let max = -Infinity, arg = 0;
  for (let j = 0; j < row.length; ++j) if (row[j] > max) { max = row[j]; arg = j; }
  let sum = 0;
  for (let j = 0; j < row.length; ++j) sum += Math.exp(row[j] - max);
  let pmax = 0, diff = 0;
  for (let j = 0; j < row.length; ++j) {
    const p = Math.exp(row[j] - max) / sum;
    pmax = Math.max(pmax, p);
    diff = Math.max(diff, Math.abs(p - (llamaProbs[s].get(j) ?? 0)));
  }
  worst = Math.max(worst, diff / pmax);
  if (arg === llamaTokens[s]) ++agree;
}
console.log(`${path.basename(file)} (porta activations ${activations}): greedy tokens agree ${agree}/${llamaTokens.length}; ` +
            `max |p_porta - p_llama| / max p = ${worst.toExponential(2)}`);

// --- speed: llama.cpp with its defaults (f16 KV cache), porta from its bench's numbers --------
const ctx = await model.createContext({contextSize: promptLen + steps + 8, batchSize: 512, threads});
const prefill = [], decode = [];
for (let rep = 0; rep <= reps; ++rep) {
  const seq = ctx.getSequence();
  let last = performance.now(), n = 0;
  for await (const _ of seq.evaluate(prompt, {temperature: 0})) {
    const now = performance.now();
    if (rep > 0) (n === 0 ? prefill : decode).push(now - last);  // rep 0 warms up
    last = now;
    if (++n > steps) break;
  }
  seq.dispose();
}
console.log(`llama.cpp (${threads} threads): prefill T=${promptLen} ` +
            `${(promptLen / median(prefill) * 1000).toFixed(1)} tok/s, decode ` +
            `${(1000 / median(decode)).toFixed(2)} tok/s (medians of ${reps} prefills and ` +
            `${decode.length} steps)`);
