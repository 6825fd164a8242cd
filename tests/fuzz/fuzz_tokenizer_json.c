/* libFuzzer target: clttt_tokenizer_load of a tokenizer.json holding the input,
 * then fuzz_exercise_tokenizer. */
#include "fuzz_common.h"
#include "clttt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4096];
  fuzz_write_file("tokenizer.json", data, size, path, sizeof path);
  clttt_tokenizer *tok = NULL;
  if (clttt_tokenizer_load(&tok, fuzz_directory()) != CLTTT_SUCCESS)
    return 0;
  fuzz_exercise_tokenizer(tok, data, size);
  clttt_tokenizer_free(tok);
  return 0;
}
