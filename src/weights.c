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
  clttt_device *device;  /* of the part being loaded */
  int part;
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
  return runtime_upload(load->device, buffer, offset_floats * sizeof(float),
                        count * sizeof(float), load->scratch, name);
}

/* Counts `bytes` of weights on the part being loaded. */
static void count_weight(loader *load, uint64_t bytes) {
  load->model->weight_bytes += bytes;
  load->model->parts[load->part].weight_bytes += bytes;
}

static clttt_status allocate_weight(loader *load, size_t floats, const char *what, cl_mem *buffer) {
  count_weight(load, floats * sizeof(float));
  return runtime_alloc(load->device, floats * sizeof(float), what, buffer);
}

/* A matrix or vector tensor `prefix.suffix` of one layer into its own buffer. */
static clttt_status load_tensor(loader *load, const char *name, int64_t rows, int64_t columns,
                                cl_mem *buffer) {
  CLTTT_TRY(allocate_weight(load, (size_t)rows * (size_t)(columns ? columns : 1), name, buffer));
  return load_into(load, name, rows, columns, *buffer, 0);
}

/* The weight of a linear product, from one or several tensors stacked
 * row-wise (q, k, v; gate, up), each `columns` wide. Packed for our GEMM
 * when `pack` (the whole packed weight is staged on the host once: the
 * panels interleave rows of every tensor), else uploaded row by row. */
static clttt_status load_linear(loader *load, const char *const *names, const int64_t *rows, int count,
                                int64_t columns, int pack, linear_weight *weight) {
  size_t total_rows = 0;
  for (int i = 0; i < count; i++)
    total_rows += (size_t)rows[i];
  weight->out_features = total_rows;
  weight->in_features = (size_t)columns;
  weight->packed = pack;
  if (!pack) {
    CLTTT_TRY(allocate_weight(load, total_rows * (size_t)columns, names[0], &weight->buffer));
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
      CLTTT_TRY(load_into(load, names[i], rows[i], columns, weight->buffer, offset));
      offset += (size_t)rows[i] * (size_t)columns;
    }
    return CLTTT_SUCCESS;
  }
  CLTTT_TRY(packed_gemm_layout_for(&load->device->tuning.gemm, PACKED_GEMM_F32, total_rows, (size_t)columns,
                                   &weight->layout));
  const size_t bytes = packed_gemm_bytes(&weight->layout);
  unsigned char *host = malloc(bytes ? bytes : 1);
  if (!host)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "packing %s (%zu bytes)", names[0], bytes);
  clttt_status status = CLTTT_SUCCESS;
  size_t row0 = 0;
  for (int i = 0; i < count && status == CLTTT_SUCCESS; i++) {
    int64_t shape[2] = {rows[i], columns};
    status = read_tensor(load, names[i], shape, 2, (size_t)rows[i] * (size_t)columns);
    if (status == CLTTT_SUCCESS)
      status = packed_gemm_pack(&weight->layout, host, row0, (size_t)rows[i], load->scratch, PACKED_GEMM_F32,
                                (size_t)columns);
    row0 += (size_t)rows[i];
  }
  if (status == CLTTT_SUCCESS) {
    count_weight(load, bytes);
    status = runtime_alloc(load->device, bytes, names[0], &weight->buffer);
  }
  if (status == CLTTT_SUCCESS)
    status = runtime_upload(load->device, weight->buffer, 0, bytes, host, names[0]);
  free(host);
  return status;
}

/* One layer's stacked linear weight `prefix.{names}.weight`. */
static clttt_status load_stacked_linear(loader *load, const char *prefix, const char *const *names,
                                        const int64_t *rows, int count, int64_t columns, int pack,
                                        linear_weight *weight) {
  char full[3][256];
  const char *full_names[3];
  for (int i = 0; i < count && i < 3; i++) {
    snprintf(full[i], sizeof full[i], "%s.%s.weight", prefix, names[i]);
    full_names[i] = full[i];
  }
  return load_linear(load, full_names, rows, count, columns, pack, weight);
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
  CLTTT_TRY(allocate_weight(load, total_rows * (size_t)(columns ? columns : 1), name, buffer));
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
  const int pack = load->device->tuning.gemm_packed;
  CLTTT_TRY(load_stacked_linear(load, attention_prefix, qkv_names, qkv_rows, 3, d, pack, &layer->qkv));
  static const char *const o_names[] = {"o_proj"};
  const int64_t o_rows[] = {d};
  CLTTT_TRY(load_stacked_linear(load, attention_prefix, o_names, o_rows, 1, model->q_dim, pack, &layer->o));
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
  CLTTT_TRY(load_stacked_linear(load, mlp_prefix, gate_up_names, gate_up_rows, 2, d, pack, &layer->gate_up));
  /* A TTT layer's fast weights start as a row-major copy of W_down, which
   * the apply and update kernels read in that layout. */
  layer->is_ttt = config->ttt_mode && clttt_config_is_ttt_layer(config, index);
  static const char *const down_names[] = {"down_proj"};
  const int64_t down_rows[] = {d};
  CLTTT_TRY(load_stacked_linear(load, mlp_prefix, down_names, down_rows, 1, f, pack && !layer->is_ttt, &layer->down));
  if (config->mlp_bias) {
    CLTTT_TRY(load_stacked(load, mlp_prefix, gate_up_names, gate_up_rows, 2, 0, "bias", &layer->gate_up_bias));
    LAYER_TENSOR("mlp.down_proj.bias", d, 0, down_bias);
  }

  if (layer->is_ttt) {
    /* ttt_conv is stored as Conv1d's d x 1 x 5. */
    snprintf(name, sizeof name, "%s.mlp.ttt_conv.weight", prefix);
    int64_t conv_shape[3] = {d, 1, 5};
    CLTTT_TRY(allocate_weight(load, (size_t)d * 5, name, &layer->ttt_conv));
    CLTTT_TRY(read_tensor(load, name, conv_shape, 3, (size_t)d * 5));
    CLTTT_TRY(runtime_upload(load->device, layer->ttt_conv, 0, (size_t)d * 5 * sizeof(float),
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

/* Where every part goes: the plan of a split (checked and sized before
 * anything is allocated), or all of it on `device`. */
static clttt_status place_parts(clttt_model *model, clttt_device *device, const clttt_model_params *params) {
  const int split = params && params->device_count > 0;
  const int layers = model->config.num_hidden_layers;
  const int sliced = params && params->layer_count != 0;
  const int first = sliced ? params->first_layer : 0, count = sliced ? params->layer_count : layers;
  if (sliced && (first < 0 || count < 1 || first > layers - count))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a slice of layers %d..%d of a model with %d layers", first,
                      first + count - 1, layers);
  if (sliced && split)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a model slice runs on one device: give a device, not a split");
  const int part_count = split ? params->device_count : 1;
  clttt_split_part *placement = calloc((size_t)part_count, sizeof *placement);
  model->parts = calloc((size_t)part_count, sizeof *model->parts);
  clttt_status status = CLTTT_SUCCESS;
  if (!placement || !model->parts)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's %d parts", part_count);
  else if (split)
    status = clttt_plan_split(&model->config, params->devices, part_count, params->split, params->split_context,
                              placement);
  else
    placement[0] = (clttt_split_part){.device = device, .first_layer = first, .layer_count = count,
                                      .has_embedding = first == 0, .has_head = first + count == layers};
  if (status == CLTTT_SUCCESS) {
    model->part_count = part_count;
    for (int p = 0; p < part_count; p++) {
      model->parts[p].placement = placement[p];
      for (int i = 0; i < placement[p].layer_count; i++)
        model->layers[placement[p].first_layer + i].part = p;
    }
    model->device = placement[0].device;
  }
  free(placement);
  return status;
}

/* The final norm and the LM head, on the last part. A tied head on another
 * device than the embedding is a second copy of it there, which is not the
 * model's own weight (weight_bytes, the session files' hash); in a slice
 * without the embedding it is the only copy, and counts. */
static clttt_status load_head(loader *load) {
  clttt_model *model = load->model;
  const clttt_config *config = &model->config;
  const int64_t d = config->hidden_size;
  CLTTT_TRY(load_tensor(load, "model.norm.weight", d, 0, &model->final_norm));
  if (config->tie_word_embeddings && model->token_embedding && load->device == model->device) {
    /* The gather reads the embedding row-major, so a tied head does too. */
    model->lm_head.buffer = model->token_embedding;
    model->lm_head.out_features = (size_t)config->vocab_size;
    model->lm_head.in_features = (size_t)d;
    model->lm_head.packed = 0;
    return CLTTT_SUCCESS;
  }
  if (config->tie_word_embeddings) {
    static const char *const tied_names[] = {"model.embed_tokens.weight"};
    const int64_t tied_rows[] = {config->vocab_size};
    CLTTT_TRY(load_linear(load, tied_names, tied_rows, 1, d, 0, &model->lm_head));
    /* A second copy beside the embedding on another device; a slice
     * holding the head alone holds its only copy. */
    if (model->token_embedding)
      model->weight_bytes -= (uint64_t)config->vocab_size * (uint64_t)d * sizeof(float);
    return CLTTT_SUCCESS;
  }
  static const char *const head_names[] = {"lm_head.weight"};
  const int64_t head_rows[] = {config->vocab_size};
  return load_linear(load, head_names, head_rows, 1, d, load->device->tuning.gemm_packed, &model->lm_head);
}

/* The RoPE frequencies every part's attention reads, one copy per part. */
static clttt_status load_rope(clttt_model *model) {
  const clttt_config *config = &model->config;
  float inverse_frequency[256];
  rope_inverse_frequencies(config, inverse_frequency, &model->rope_attention_scaling);
  const size_t bytes = (size_t)config->head_dim / 2 * sizeof(float);
  for (int p = 0; p < model->part_count; p++) {
    const clttt_device *device = model->parts[p].placement.device;
    cl_mem *buffer = &model->parts[p].rope_inverse_frequency;
    CLTTT_TRY(runtime_alloc(device, bytes, "RoPE frequencies", buffer));
    CLTTT_TRY(runtime_upload(device, *buffer, 0, bytes, inverse_frequency, "RoPE frequencies"));
  }
  model->rope_inverse_frequency = model->parts[0].rope_inverse_frequency;
  return CLTTT_SUCCESS;
}

/* Points the loader at part `index`. */
static void load_on_part(loader *load, int index) {
  load->part = index;
  load->device = load->model->parts[index].placement.device;
}

clttt_status model_create(clttt_model **model_out, clttt_device *device, const clttt_config *config,
                          const clttt_model_params *params, tensor_source source, void *context) {
  *model_out = NULL;
  if (!device && !(params && params->device_count > 0))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "loading a model: no device given");
  CLTTT_TRY(check_supported(config));
  clttt_model *model = calloc(1, sizeof *model);
  if (!model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model");
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
  loader load = {model, NULL, 0, source, context, NULL, 0, params && params->check_weights};
  clttt_status status = CLTTT_SUCCESS;
  if (!model->layers)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's %d layers",
                        config->num_hidden_layers);
  if (status == CLTTT_SUCCESS)
    status = place_parts(model, device, params);

  const int64_t d = config->hidden_size;
  if (status == CLTTT_SUCCESS && model->parts[0].placement.has_embedding) {
    load_on_part(&load, 0);
    status = load_tensor(&load, "model.embed_tokens.weight", config->vocab_size, d, &model->token_embedding);
  }
  const int first_layer = status == CLTTT_SUCCESS ? model_first_layer(model) : 0;
  const int end_layer = status == CLTTT_SUCCESS ? model_end_layer(model) : 0;
  for (int i = first_layer; i < end_layer && status == CLTTT_SUCCESS; i++) {
    load_on_part(&load, model->layers[i].part);
    status = load_layer(&load, i);
  }
  if (status == CLTTT_SUCCESS && model->parts[model->part_count - 1].placement.has_head) {
    load_on_part(&load, model->part_count - 1);
    status = load_head(&load);
  }
  if (status == CLTTT_SUCCESS)
    status = load_rope(model);
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
  if (!model || !dir || (!device && !(params && params->device_count > 0)))
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
    cl_mem *buffers[] = {&layer->input_norm,     &layer->qkv.buffer, &layer->qkv_bias,   &layer->o.buffer,
                         &layer->o_bias,         &layer->q_norm,     &layer->k_norm,     &layer->post_norm,
                         &layer->gate_up.buffer, &layer->gate_up_bias, &layer->down.buffer, &layer->down_bias,
                         &layer->ttt_conv,       &layer->ttt_proj};
    for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++)
      runtime_release(buffers[b]);
  }
  free(model->layers);
  for (int p = 0; model->parts && p < model->part_count; p++)
    runtime_release(&model->parts[p].rope_inverse_frequency);
  free(model->parts);
  model->rope_inverse_frequency = NULL; /* part 0's, released above */
  if (model->lm_head.buffer != model->token_embedding)
    runtime_release(&model->lm_head.buffer);
  runtime_release(&model->token_embedding);
  runtime_release(&model->final_norm);
  clttt_config_free(&model->config);
  pthread_mutex_destroy(&model->fingerprint_lock);
  free(model);
}

const clttt_config *clttt_model_get_config(const clttt_model *model) {
  return model ? &model->config : NULL;
}

uint64_t clttt_model_weight_bytes(const clttt_model *model) { return model ? model->weight_bytes : 0; }

int clttt_model_part_count(const clttt_model *model) { return model ? model->part_count : 0; }

clttt_status clttt_model_get_part(const clttt_model *model, int index, clttt_split_part *part) {
  if (!model || !part || index < 0 || index >= model->part_count)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_get_part: part %d of %d", index,
                      model ? model->part_count : 0);
  *part = model->parts[index].placement;
  return CLTTT_SUCCESS;
}

