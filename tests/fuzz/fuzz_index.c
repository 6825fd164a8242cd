/* libFuzzer target: a checkpoint directory whose model.safetensors.index.json
 * is the input, beside two small valid shards the index may name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_common.h"

/* Little-endian header length, header, data. */
static void write_shard(const char *name, const char *header, const void *values, size_t values_size) {
  size_t header_size = strlen(header);
  size_t total = 8 + header_size + values_size;
  uint8_t *bytes = malloc(total);
  if (!bytes)
    abort();
  for (int i = 0; i < 8; i++)
    bytes[i] = (uint8_t)((uint64_t)header_size >> (8 * i));
  memcpy(bytes + 8, header, header_size);
  memcpy(bytes + 8 + header_size, values, values_size);
  char path[4096];
  fuzz_write_file(name, bytes, total, path, sizeof path);
  free(bytes);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const float values[4] = {1, 2, 3, 4};
  write_shard("model-00001-of-00002.safetensors",
              "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
              values, sizeof values);
  write_shard("model-00002-of-00002.safetensors",
              "{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              values, sizeof values);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4096];
  fuzz_write_file("model.safetensors.index.json", data, size, path, sizeof path);
  checkpoint ckpt;
  if (checkpoint_open(&ckpt, fuzz_directory()) != CLTTT_SUCCESS)
    return 0;
  static const char *const names[] = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "absent"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const safetensors_file *shard = NULL;
    const safetensors_tensor *tensor = checkpoint_find(&ckpt, names[i], &shard);
    if (tensor && !shard)
      abort();
    float out[4];
    int64_t shape[2] = {2, 2};
    checkpoint_read_f32(&ckpt, names[i], shape, i == 0 ? 2 : 1, out);
  }
  checkpoint_close(&ckpt);
  return 0;
}
