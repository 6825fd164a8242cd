/* Weights: a checkpoint (or any tensor source) read tensor by tensor into
 * device buffers, q/k/v and gate/up stacked so that one GEMM computes each
 * group. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "rope.h"
#include "weights.h"

typedef struct {
  clttt_model *model;
  tensor_source source;
  void *context;
  float *scratch;        /* host staging of one tensor */
  size_t scratch_floats; /* its capacity, grown to the largest tensor read so far */
  int check_weights;     /* refuse non-finite values */
} loader;

/* Reads tensor `name` of `shape` (count floats) into the staging buffer,
 * which grows to fit: sizing it up front from the config missed tensors
 * (ttt_conv's d x 5 outgrows every other tensor of a tiny model). */
static clttt_status read_tensor(loader *load, const char *name, const int64_t *shape, int ndim, size_t count) {
  if (count > load->scratch_floats) {
    float *grown = realloc(load->scratch, count * sizeof(float));
    if (!grown)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "staging tensor %s (%zu bytes)", name,
                        count * sizeof(float));
    load->scratch = grown;
    load->scratch_floats = count;
  }
  CLTTT_TRY(load->source(name, shape, ndim, load->scratch, load->context));
  for (size_t i = 0; load->check_weights && i < count; i++)
    if (!isfinite(load->scratch[i]))
      return clttt_fail(CLTTT_ERROR_NOT_FINITE, "tensor %s: element %zu of %zu is %g", name, i, count,
                        (double)load->scratch[i]);
  return CLTTT_SUCCESS;
}

/* Reads tensor `name` (rows x columns, or a vector when columns == 0) into
 * `buffer` at `offset_floats`. */
static clttt_status load_into(loader *load, const char *name, int64_t rows, int64_t columns,
                              cl_mem buffer, size_t offset_floats) {
  int64_t shape[2] = {rows, columns};
  int ndim = columns ? 2 : 1;
  size_t count = (size_t)rows * (size_t)(columns ? columns : 1);
  CLTTT_TRY(read_tensor(load, name, shape, ndim, count));
  return runtime_upload(load->model->device, buffer, offset_floats * sizeof(float),
                        count * sizeof(float), load->scratch, name);
}

static clttt_status allocate_weight(clttt_model *model, size_t floats, const char *what, cl_mem *buffer) {
  model->weight_bytes += floats * sizeof(float);
  return runtime_alloc(model->device, floats * sizeof(float), what, buffer);
}

/* A matrix or vector tensor `prefix.suffix` of one layer into its own buffer. */
static clttt_status load_tensor(loader *load, const char *name, int64_t rows, int64_t columns,
                                cl_mem *buffer) {
  CLTTT_TRY(allocate_weight(load->model, (size_t)rows * (size_t)(columns ? columns : 1), name, buffer));
  return load_into(load, name, rows, columns, *buffer, 0);
}

/* Several tensors stacked row-wise into one buffer (q, k, v; gate, up). */
static clttt_status load_stacked(loader *load, const char *prefix, const char *const *names,
                                 const int64_t *rows, int count, int64_t columns, const char *suffix,
                                 cl_mem *buffer) {
  size_t total_rows = 0;
  for (int i = 0; i < count; i++)
    total_rows += (size_t)rows[i];
  char name[256];
  snprintf(name, sizeof name, "%s.{stacked}.%s", prefix, suffix);
  CLTTT_TRY(allocate_weight(load->model, total_rows * (size_t)(columns ? columns : 1), name, buffer));
  size_t offset = 0;
  for (int i = 0; i < count; i++) {
    snprintf(name, sizeof name, "%s.%s.%s", prefix, names[i], suffix);
    CLTTT_TRY(load_into(load, name, rows[i], columns, *buffer, offset));
    offset += (size_t)rows[i] * (size_t)(columns ? columns : 1);
  }
  return CLTTT_SUCCESS;
}

static clttt_status load_layer(loader *load, int index) {
  clttt_model *model = load->model;
  const clttt_config *config = &model->config;
  layer_weights *layer = &model->layers[index];
  const int64_t d = config->hidden_size, f = config->intermediate_size;
  char prefix[128], name[256];
  snprintf(prefix, sizeof prefix, "model.layers.%d", index);

#define LAYER_TENSOR(suffix, rows, columns, field)                  \
  do {                                                              \
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);           \
    CLTTT_TRY(load_tensor(load, name, rows, columns, &layer->field)); \
  } while (0)

  LAYER_TENSOR("input_layernorm.weight", d, 0, input_norm);
  LAYER_TENSOR("post_attention_layernorm.weight", d, 0, post_norm);

  char attention_prefix[160];
  snprintf(attention_prefix, sizeof attention_prefix, "%s.self_attn", prefix);
  static const char *const qkv_names[] = {"q_proj", "k_proj", "v_proj"};
  const int64_t qkv_rows[] = {model->q_dim, model->kv_dim, model->kv_dim};
  CLTTT_TRY(load_stacked(load, attention_prefix, qkv_names, qkv_rows, 3, d, "weight", &layer->qkv));
  LAYER_TENSOR("self_attn.o_proj.weight", d, model->q_dim, o);
  if (config->attention_bias) {
    CLTTT_TRY(load_stacked(load, attention_prefix, qkv_names, qkv_rows, 3, 0, "bias", &layer->qkv_bias));
    LAYER_TENSOR("self_attn.o_proj.bias", d, 0, o_bias);
  }
  if (config->arch == CLTTT_ARCH_QWEN3) {
    LAYER_TENSOR("self_attn.q_norm.weight", config->head_dim, 0, q_norm);
    LAYER_TENSOR("self_attn.k_norm.weight", config->head_dim, 0, k_norm);
  }

  char mlp_prefix[160];
  snprintf(mlp_prefix, sizeof mlp_prefix, "%s.mlp", prefix);
  static const char *const gate_up_names[] = {"gate_proj", "up_proj"};
  const int64_t gate_up_rows[] = {f, f};
  CLTTT_TRY(load_stacked(load, mlp_prefix, gate_up_names, gate_up_rows, 2, d, "weight", &layer->gate_up));
  LAYER_TENSOR("mlp.down_proj.weight", d, f, down);
  if (config->mlp_bias) {
    CLTTT_TRY(load_stacked(load, mlp_prefix, gate_up_names, gate_up_rows, 2, 0, "bias", &layer->gate_up_bias));
    LAYER_TENSOR("mlp.down_proj.bias", d, 0, down_bias);
  }

  layer->is_ttt = config->ttt_mode && clttt_config_is_ttt_layer(config, index);
  if (layer->is_ttt) {
    /* ttt_conv is stored as Conv1d's d x 1 x 5. */
    snprintf(name, sizeof name, "%s.mlp.ttt_conv.weight", prefix);
    int64_t conv_shape[3] = {d, 1, 5};
    CLTTT_TRY(allocate_weight(model, (size_t)d * 5, name, &layer->ttt_conv));
    CLTTT_TRY(read_tensor(load, name, conv_shape, 3, (size_t)d * 5));
    CLTTT_TRY(runtime_upload(model->device, layer->ttt_conv, 0, (size_t)d * 5 * sizeof(float),
                             load->scratch, name));
    if (config->ttt_proj)
      LAYER_TENSOR("mlp.ttt_proj.weight", d, d, ttt_proj);
  }
#undef LAYER_TENSOR
  return CLTTT_SUCCESS;
}

static clttt_status check_supported(const clttt_config *config) {
  if (config->head_dim % 2 != 0 || config->head_dim > 512)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "head_dim %d: even sizes up to 512 are supported",
                      config->head_dim);
  if (config->ttt_mode && (config->ttt_chunk < 1 || !(config->ttt_lr == config->ttt_lr)))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "ttt_chunk %d / ttt_lr %g: invalid", config->ttt_chunk,
                      (double)config->ttt_lr);
  return CLTTT_SUCCESS;
}

clttt_model_params clttt_model_default_params(void) {
  clttt_model_params params;
  memset(&params, 0, sizeof params);
  return params;
}

clttt_status model_create(clttt_model **model_out, clttt_device *device, const clttt_config *config,
                          const clttt_model_params *params, tensor_source source, void *context) {
  *model_out = NULL;
  CLTTT_TRY(check_supported(config));
  clttt_model *model = calloc(1, sizeof *model);
  if (!model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model");
  model->device = device;
  pthread_mutex_init(&model->fingerprint_lock, NULL);
  clttt_status copied = config_copy(&model->config, config);
  if (copied != CLTTT_SUCCESS) {
    pthread_mutex_destroy(&model->fingerprint_lock);
    free(model);
    return copied;
  }
  model->q_dim = config_q_dim(config);
  model->kv_dim = config_kv_dim(config);
  model->qkv_width = model->q_dim + 2 * model->kv_dim;
  model->layers = calloc((size_t)config->num_hidden_layers, sizeof *model->layers);
  loader load = {model, source, context, NULL, 0, params && params->check_weights};
  clttt_status status = CLTTT_SUCCESS;
  if (!model->layers)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's %d layers",
                        config->num_hidden_layers);

  const int64_t d = config->hidden_size;
  if (status == CLTTT_SUCCESS)
    status = load_tensor(&load, "model.embed_tokens.weight", config->vocab_size, d, &model->token_embedding);
  for (int i = 0; i < config->num_hidden_layers && status == CLTTT_SUCCESS; i++)
    status = load_layer(&load, i);
  if (status == CLTTT_SUCCESS)
    status = load_tensor(&load, "model.norm.weight", d, 0, &model->final_norm);
  if (status == CLTTT_SUCCESS) {
    if (config->tie_word_embeddings)
      model->lm_head = model->token_embedding;
    else
      status = load_tensor(&load, "lm_head.weight", config->vocab_size, d, &model->lm_head);
  }
  if (status == CLTTT_SUCCESS) {
    float inverse_frequency[256];
    rope_inverse_frequencies(config, inverse_frequency, &model->rope_attention_scaling);
    status = runtime_alloc(device, (size_t)config->head_dim / 2 * sizeof(float), "RoPE frequencies",
                           &model->rope_inverse_frequency);
    if (status == CLTTT_SUCCESS)
      status = runtime_upload(device, model->rope_inverse_frequency, 0,
                              (size_t)config->head_dim / 2 * sizeof(float), inverse_frequency,
                              "RoPE frequencies");
  }
  free(load.scratch);
  if (status != CLTTT_SUCCESS) {
    clttt_model_free(model);
    return status;
  }
  *model_out = model;
  return CLTTT_SUCCESS;
}

static clttt_status checkpoint_source(const char *name, const int64_t *shape, int ndim, float *out,
                                      void *context) {
  return checkpoint_read_f32(context, name, shape, ndim, out);
}

clttt_status clttt_model_load(clttt_model **model, clttt_device *device, const char *dir,
                              const clttt_model_params *params) {
  if (!model || !device || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_load: NULL argument");
  *model = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  clttt_config config;
  CLTTT_TRY(config_load(&config, path));
  checkpoint ckpt;
  clttt_status opened = checkpoint_open(&ckpt, dir);
  if (opened != CLTTT_SUCCESS) {
    clttt_config_free(&config);
    return opened;
  }
  clttt_status status = model_create(model, device, &config, params, checkpoint_source, &ckpt);
  checkpoint_close(&ckpt);
  clttt_config_free(&config);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "loading model '%s'", dir);
  return CLTTT_SUCCESS;
}

void clttt_model_free(clttt_model *model) {
  if (!model)
    return;
  for (int i = 0; model->layers && i < model->config.num_hidden_layers; i++) {
    layer_weights *layer = &model->layers[i];
    cl_mem *buffers[] = {&layer->input_norm, &layer->qkv,       &layer->qkv_bias,  &layer->o,
                         &layer->o_bias,     &layer->q_norm,    &layer->k_norm,    &layer->post_norm,
                         &layer->gate_up,    &layer->gate_up_bias, &layer->down,   &layer->down_bias,
                         &layer->ttt_conv,   &layer->ttt_proj};
    for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++)
      runtime_release(buffers[b]);
  }
  free(model->layers);
  if (model->lm_head != model->token_embedding)
    runtime_release(&model->lm_head);
  runtime_release(&model->token_embedding);
  runtime_release(&model->final_norm);
  runtime_release(&model->rope_inverse_frequency);
  clttt_config_free(&model->config);
  pthread_mutex_destroy(&model->fingerprint_lock);
  free(model);
}

const clttt_config *clttt_model_get_config(const clttt_model *model) {
  return model ? &model->config : NULL;
}

uint64_t clttt_model_weight_bytes(const clttt_model *model) { return model ? model->weight_bytes : 0; }

