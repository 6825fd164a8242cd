/* libFuzzer target: safetensors_open on arbitrary bytes, then every read a
 * loader does on what it accepted. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4096];
  fuzz_write_file("model.safetensors", data, size, path, sizeof path);
  safetensors_file file;
  if (safetensors_open(&file, path) != CLTTT_SUCCESS)
    return 0;
  for (int i = 0; i < file.count; i++) {
    const safetensors_tensor *tensor = &file.tensors[i];
    if (safetensors_find(&file, tensor->name) != tensor)
      abort(); /* names are unique and sorted: lookup must find each one */
    size_t elements = tensor->nbytes / (tensor->dtype == SAFETENSORS_F32 ? 4 : 2);
    if (elements <= 1 << 16) {
      float *out = malloc((elements ? elements : 1) * sizeof *out);
      if (out)
        safetensors_to_f32(tensor, out);
      free(out);
    }
  }
  safetensors_find(&file, "model.embed_tokens.weight");
  safetensors_close(&file);
  return 0;
}
