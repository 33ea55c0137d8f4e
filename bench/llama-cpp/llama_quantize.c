// llama.cpp's own quantizer on a GGUF file, so that porta can be checked on files llama.cpp
// wrote (its type choices, fallbacks and block rounding, not porta's writer's): the
// llama_model_quantize() of node-llama-cpp's prebuilt libllama, loaded at run time. Not part of
// porta's build; see bench/README.md.
//
//   cc -O1 bench/llama-cpp/llama_quantize.c -o /tmp/llama_quantize -ldl
//   export LD_LIBRARY_PATH=/tmp/llama/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
//   /tmp/llama_quantize IN.gguf OUT.gguf FTYPE [THREADS]
//
// IN: an f16/bf16/f32 GGUF (porta-bench-gguf-model --types f16 writes one with a tokenizer).
// FTYPE: llama_ftype's number, e.g. 7 Q8_0, 15 Q4_K_M, 17 Q5_K_M, 18 Q6_K.
// llama_model_quantize_params has grown fields over llama.cpp's releases, but its first two
// have always been nthread and ftype: the defaults are taken into a buffer larger than any
// release's struct and only those two are set.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  int32_t nthread;
  int32_t ftype;
  unsigned char rest[1016];
} quantize_params;

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE [THREADS]\n", argv[0]);
    return 2;
  }
  const char* names[] = {"libllama.so", "libllama.v0.5.0.so"};
  void* lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && lib == NULL; ++i)
    lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
  if (lib == NULL) {
    fprintf(stderr, "cannot load libllama (set LD_LIBRARY_PATH to node-llama-cpp's bins): %s\n",
            dlerror());
    return 1;
  }
  void (*backend_init)(void) = (void (*)(void))dlsym(lib, "llama_backend_init");
  quantize_params (*defaults)(void) =
      (quantize_params(*)(void))dlsym(lib, "llama_model_quantize_default_params");
  uint32_t (*quantize)(const char*, const char*, const quantize_params*) = (uint32_t(*)(
      const char*, const char*, const quantize_params*))dlsym(lib, "llama_model_quantize");
  if (backend_init == NULL || defaults == NULL || quantize == NULL) {
    fprintf(stderr, "libllama lacks llama_model_quantize\n");
    return 1;
  }
  backend_init();
  quantize_params params = defaults();
  params.ftype = atoi(argv[3]);
  params.nthread = argc > 4 ? atoi(argv[4]) : 2;
  const uint32_t status = quantize(argv[1], argv[2], &params);
  if (status != 0) fprintf(stderr, "llama_model_quantize failed (%u)\n", status);
  return status != 0;
}
