/* Synthetic models: a real model's shapes with seeded random weights, built
 * without any file, so the demo and the benchmarks run anywhere. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "weights.h"

clttt_status clttt_synthetic_config(clttt_config *config, int hidden_size, int intermediate_size, int layers,
                                    int heads, int kv_heads, int head_dim, int vocab_size, int max_positions,
                                    int ttt_every, int chunk, float eta) {
  if (!config)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_synthetic_config: config is NULL");
  memset(config, 0, sizeof *config);
  if (layers < 1 || layers > CONFIG_MAX_LAYERS || ttt_every < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "synthetic config: %d layers, TTT every %d", layers,
                      ttt_every);
  config->arch = CLTTT_ARCH_QWEN3;
  config->hidden_size = hidden_size;
  config->intermediate_size = intermediate_size;
  config->num_hidden_layers = layers;
  config->num_attention_heads = heads;
  config->num_key_value_heads = kv_heads;
  config->head_dim = head_dim;
  config->vocab_size = vocab_size;
  config->max_position_embeddings = max_positions;
  config->rms_norm_eps = 1e-6f;
  config->rope_theta = 1000000.0f;
  config->tie_word_embeddings = 1;
  config->bos_token_id = -1;
  config->eos_token_id = -1;
  config->rope_type = CLTTT_ROPE_DEFAULT;
  config->ttt_mode = ttt_every > 0;
  if (ttt_every > 0) {
    config->ttt_layers = malloc((size_t)(layers / ttt_every + 1) * sizeof *config->ttt_layers);
    if (!config->ttt_layers)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "synthetic config: TTT layer list");
    for (int layer = 0; layer < layers; layer += ttt_every)
      config->ttt_layers[config->ttt_layer_count++] = layer;
  }
  config->ttt_chunk = chunk;
  config->ttt_lr = eta;
  config->ttt_proj = 1;
  config->ttt_target = CLTTT_TARGET_HIDDEN_STATES;
  return CLTTT_SUCCESS;
}

typedef struct {
  uint64_t seed;
  float *values;   /* the tensor last made */
  size_t capacity; /* floats */
} synthetic_source;

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint64_t name_hash(const char *name, uint64_t seed) {
  uint64_t hash = 0xCBF29CE484222325ULL ^ seed;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    hash = (hash ^ *c) * 0x100000001B3ULL;
  return hash;
}

static int ends_with(const char *text, const char *suffix) {
  size_t a = strlen(text), b = strlen(suffix);
  return a >= b && strcmp(text + a - b, suffix) == 0;
}

/* Scales chosen so activations keep unit size through many layers: norms
 * near 1, matrices ~1/sqrt(fan_in), a small conv and a near-diagonal
 * projection, as a freshly continued TTT checkpoint would look. */
static clttt_status synthetic_tensor(void *context, const char *name, const int64_t *shape, int ndim,
                                     tensor_data *data) {
  synthetic_source *source = context;
  size_t count = 1;
  for (int i = 0; i < ndim; i++)
    count *= (size_t)shape[i];
  if (count > source->capacity) {
    float *grown = realloc(source->values, count * sizeof(float));
    if (!grown)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "synthetic tensor %s (%zu bytes)", name,
                        count * sizeof(float));
    source->values = grown;
    source->capacity = count;
  }
  float *out = source->values;
  data->data = out;
  data->type = PACKED_GEMM_F32;
  uint64_t state = name_hash(name, source->seed);
  float scale, offset = 0.0f;
  if (ends_with(name, "norm.weight")) {
    scale = 0.1f;
    offset = 1.0f;
  } else if (ends_with(name, "ttt_conv.weight")) {
    scale = 0.1f;
  } else if (strstr(name, "embed_tokens") || strstr(name, "lm_head")) {
    scale = 1.0f;
  } else {
    scale = ndim == 2 ? 1.0f / sqrtf((float)shape[1]) : 0.1f;
  }
  for (size_t i = 0; i < count; i++) {
    double unit = (double)(splitmix64(&state) >> 11) * 0x1.0p-53; /* [0, 1) */
    out[i] = offset + scale * (float)(2.0 * unit - 1.0);
  }
  if (ends_with(name, "ttt_proj.weight"))
    for (int64_t i = 0; i < shape[0]; i++)
      out[i * shape[1] + i] += 1.0f;
  return CLTTT_SUCCESS;
}

/* No stored type: AUTO means fp32, and another type is no conversion of
 * anything a user has (no warning). */
static int synthetic_stored_type(void *context, const char *name) {
  (void)context;
  (void)name;
  return -1;
}

clttt_status clttt_model_synthetic(clttt_model **model, clttt_device *device, const clttt_config *config,
                                   const clttt_model_params *params, uint64_t seed) {
  if (!model || !config || (!device && !(params && params->device_count > 0)))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_synthetic: NULL argument");
  *model = NULL;
  if (config->hidden_size <= 0 || config->intermediate_size <= 0 || config->num_hidden_layers <= 0 ||
      config->num_attention_heads <= 0 || config->num_key_value_heads <= 0 || config->head_dim <= 0 ||
      config->vocab_size <= 0 || config->num_attention_heads % config->num_key_value_heads != 0)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "synthetic model: sizes must be positive and heads a multiple of kv_heads");
  synthetic_source state = {seed, NULL, 0};
  const tensor_source source = {synthetic_tensor, synthetic_stored_type, &state};
  clttt_status status = model_create(model, device, config, params, &source);
  free(state.values);
  return status;
}
