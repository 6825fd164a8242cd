/* A HuggingFace checkpoint directory: config.json plus model.safetensors, or
 * sharded model-0000X-of-0000N.safetensors listed by model.safetensors.index.json. */
#ifndef CLTTT_CHECKPOINT_H
#define CLTTT_CHECKPOINT_H

#include "clttt.h"
#include "safetensors.h"

typedef struct {
  char *dir;
  safetensors_file *shards;
  int shard_count;
} checkpoint;

clttt_status checkpoint_open(checkpoint *ckpt, const char *dir);
void checkpoint_close(checkpoint *ckpt);
/* The tensor and the shard it lives in, or NULL. */
const safetensors_tensor *checkpoint_find(const checkpoint *ckpt, const char *name,
                                          const safetensors_file **shard);
/* Reads tensor `name` as float32 into `out` after checking that its shape is
 * exactly shape[0..ndim-1]. Missing tensor: CLTTT_ERROR_MISSING_TENSOR; other
 * shape: CLTTT_ERROR_SHAPE_MISMATCH; both messages name file and tensor. */
/* Tensor `name` in place (inside its shard's mapping) after the same checks. */
clttt_status checkpoint_tensor(const checkpoint *ckpt, const char *name, const int64_t *shape, int ndim,
                               const safetensors_tensor **tensor, const safetensors_file **shard);
clttt_status checkpoint_read_f32(const checkpoint *ckpt, const char *name, const int64_t *shape,
                                 int ndim, float *out);

#endif
