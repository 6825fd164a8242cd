/* Tiny models for tests: seeded random weights written as a real HuggingFace
 * directory (config.json + safetensors), so that the library's loader, the C
 * reference and HuggingFace transformers (tests/golden/generate.py) all read
 * the very same files.
 *
 * Weights come from splitmix64 seeded by a hash of (fixture seed, tensor
 * name), so every tensor is reproducible on its own and the files are
 * byte-identical on every machine. */
#ifndef CLTTT_TEST_FIXTURE_H
#define CLTTT_TEST_FIXTURE_H

#include "clttt.h"

typedef struct {
  const char *name;       /* directory name, e.g. "qwen3-tied" */
  const char *about;      /* one line: what this fixture covers */
  clttt_config config;    /* what config.json says */
  int shards;             /* 1: model.safetensors; N > 1: sharded with an index */
  const char *dtype;      /* "F32", "F16" or "BF16": how the tensors are stored */
  const char *matrix_dtype; /* NULL, or another dtype for the projection matrices and embeddings
                               only (the tensors clttt holds in its weight type) */
} fixture_spec;

int fixture_count(void);
const fixture_spec *fixture_get(int index);
/* NULL when no fixture has that name. */
const fixture_spec *fixture_find(const char *name);

/* Writes the fixture into `dir` (created if missing): config.json and the
 * safetensors file(s). Returns CLTTT_SUCCESS or CLTTT_ERROR_IO. */
clttt_status fixture_write(const fixture_spec *spec, const char *dir);

/* The deterministic weight generator, exposed so tests can build tensors of
 * their own: fills out[0..count-1] with values uniform in [-scale, scale]
 * plus `offset`, seeded by (seed, name). */
void fixture_fill(float *out, long count, unsigned long long seed, const char *name, float scale,
                  float offset);

#endif
