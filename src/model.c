/* Qwen3 / LLaMA-3 forward pass on OpenCL, with In-Place TTT layers.
 *
 * A session feeds tokens in batches of at most batch_capacity rows; longer
 * inputs are cut into batches, which by the streaming semantics (SPEC.md
 * section 4) gives the same result as one pass. Per batch and layer:
 *   x  = embed(tokens)                       (n x d)
 *   xn = rmsnorm(x)                          (n x d)
 *   qkv = xn Wqkv^T; q/k norm; RoPE; K, V -> cache
 *   x += attention(q, K, V) Wo^T
 *   xn = rmsnorm(x)
 *   h = silu(xn Wg^T) * (xn Wu^T)            (n x f)
 *   x += h W^T  with W = W_down, or the layer's fast weight in a TTT layer
 *   logits = rmsnorm(x) E^T                  (n x vocab) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "gemm.h"
#include "model.h"
#include "rope.h"
#include "ttt.h"

#define DEFAULT_BATCH_CAPACITY 512
#define MAX_TTT_BATCH_CAPACITY 2048
/* What bounds the GEMM attention path's score workspace (heads x block rows
 * x context floats): a fixed 64 MiB per session, so the block shrinks as the
 * context grows; 64 MiB holds a full 512-row batch of 8 heads at 4096
 * tokens. A single row over the budget (heads x context > 16 Mi floats) is
 * still allocated: one row is the least the path can work with. */
#define ATTENTION_SCORE_BUDGET_BYTES ((uint64_t)64 << 20)

/* ------------------------------------------------------------------ */
/* Loading                                                              */

typedef struct {
  clttt_model *model;
  tensor_source source;
  void *context;
  float *scratch; /* host staging, large enough for the biggest tensor */
} loader;

/* Reads tensor `name` (rows x columns, or a vector when columns == 0) into
 * `buffer` at `offset_floats`. */
static clttt_status load_into(loader *load, const char *name, int64_t rows, int64_t columns,
                              cl_mem buffer, size_t offset_floats) {
  int64_t shape[2] = {rows, columns};
  int ndim = columns ? 2 : 1;
  size_t count = (size_t)rows * (size_t)(columns ? columns : 1);
  CLTTT_TRY(load->source(name, shape, ndim, load->scratch, load->context));
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

  layer->is_ttt = config->ttt_mode && config->ttt_layer[index];
  if (layer->is_ttt) {
    /* ttt_conv is stored as Conv1d's d x 1 x 5. */
    snprintf(name, sizeof name, "%s.mlp.ttt_conv.weight", prefix);
    int64_t conv_shape[3] = {d, 1, 5};
    CLTTT_TRY(allocate_weight(model, (size_t)d * 5, name, &layer->ttt_conv));
    CLTTT_TRY(load->source(name, conv_shape, 3, load->scratch, load->context));
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
  if (config->num_hidden_layers > CLTTT_MAX_LAYERS)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%d layers: at most %d are supported",
                      config->num_hidden_layers, CLTTT_MAX_LAYERS);
  if (config->ttt_mode && (config->ttt_chunk < 1 || !(config->ttt_lr == config->ttt_lr)))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "ttt_chunk %d / ttt_lr %g: invalid", config->ttt_chunk,
                      (double)config->ttt_lr);
  return CLTTT_SUCCESS;
}

static size_t largest_tensor_floats(const clttt_config *config) {
  size_t d = (size_t)config->hidden_size, f = (size_t)config->intermediate_size;
  size_t q_dim = (size_t)config->num_attention_heads * (size_t)config->head_dim;
  size_t largest = (size_t)config->vocab_size * d;
  size_t candidates[] = {q_dim * d, d * f, d * d};
  for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
    if (candidates[i] > largest)
      largest = candidates[i];
  return largest;
}

clttt_status model_create(clttt_model **model_out, clttt_device *device, const clttt_config *config,
                          tensor_source source, void *context) {
  *model_out = NULL;
  CLTTT_TRY(check_supported(config));
  clttt_model *model = calloc(1, sizeof *model);
  if (!model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model");
  model->device = device;
  model->config = *config;
  model->q_dim = config_q_dim(config);
  model->kv_dim = config_kv_dim(config);
  model->qkv_width = model->q_dim + 2 * model->kv_dim;
  snprintf(model->kernel_options, sizeof model->kernel_options, "-DHEAD_DIM=%d", config->head_dim);
  model->layers = calloc((size_t)config->num_hidden_layers, sizeof *model->layers);
  loader load = {model, source, context, malloc(largest_tensor_floats(config) * sizeof(float))};
  clttt_status status = CLTTT_SUCCESS;
  if (!model->layers || !load.scratch)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model");

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

clttt_status clttt_config_load(clttt_config *config, const char *dir) {
  if (!config || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_config_load: NULL argument");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  return config_load(config, path);
}

clttt_status clttt_model_load(clttt_model **model, clttt_device *device, const char *dir) {
  if (!model || !device || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_load: NULL argument");
  *model = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  clttt_config config;
  CLTTT_TRY(config_load(&config, path));
  checkpoint ckpt;
  CLTTT_TRY(checkpoint_open(&ckpt, dir));
  clttt_status status = model_create(model, device, &config, checkpoint_source, &ckpt);
  checkpoint_close(&ckpt);
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
  free(model);
}

const clttt_config *clttt_model_get_config(const clttt_model *model) {
  return model ? &model->config : NULL;
}

uint64_t clttt_model_weight_bytes(const clttt_model *model) { return model ? model->weight_bytes : 0; }

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

typedef struct {
  cl_mem fast_weight; /* W: d x f, starts as W_down */
  cl_mem pending_h;   /* C x f: h rows of the unfinished chunk */
  cl_mem pending_t;   /* C x d: target rows of the unfinished chunk */
} ttt_state;

struct clttt_session {
  clttt_model *model;
  int max_context;
  int position;
  int ttt_enabled;
  int chunk;          /* C in use */
  float eta;          /* eta in use */
  int pending;        /* rows of the unfinished chunk, the same in every TTT layer */
  cl_mem *k_cache;    /* per layer: max_context x kv_dim */
  cl_mem *v_cache;
  ttt_state *ttt;     /* per layer; buffers only in TTT layers */
  ttt_workspace ttt_workspace;
  int batch_capacity;
  /* Per-batch activations, batch_capacity rows each. */
  cl_mem tokens;      /* int32 */
  cl_mem x;           /* residual stream, n x d */
  cl_mem xn;          /* normalised, n x d */
  cl_mem embeddings;  /* input embeddings kept for ttt_target = input_embed, n x d */
  cl_mem qkv;         /* n x (q_dim + 2 kv_dim) */
  cl_mem attention;   /* n x q_dim */
  int attention_block_rows; /* queries per block of the GEMM attention path */
  cl_mem scores;      /* that path's heads x block rows x context scores */
  cl_mem gate_up;     /* n x 2f */
  cl_mem h;           /* n x f */
  cl_mem delta;       /* attention or MLP output before the residual add, n x d */
  cl_mem logits;      /* n x vocab */
};

static int session_uses_ttt(const clttt_session *session) {
  return session->ttt_enabled && session->model->config.ttt_mode &&
         config_ttt_layer_count(&session->model->config) > 0;
}

static int batch_capacity_for(int max_context, int chunk) {
  int capacity = DEFAULT_BATCH_CAPACITY;
  /* A batch that holds a whole chunk lets the update read h and t in place. */
  if (chunk > capacity && chunk <= MAX_TTT_BATCH_CAPACITY)
    capacity = chunk;
  return capacity < max_context ? capacity : max_context;
}

/* Queries per block of the GEMM attention path: as many as the score budget
 * allows at the full context, never more than a batch, at least one. */
static int attention_block_rows_for(const clttt_config *config, int context, int batch) {
  uint64_t row_bytes = (uint64_t)config->num_attention_heads * (uint64_t)(context > 0 ? context : 1) * sizeof(float);
  uint64_t rows = ATTENTION_SCORE_BUDGET_BYTES / row_bytes;
  if (rows > (uint64_t)batch)
    rows = (uint64_t)batch;
  return rows < 1 ? 1 : (int)rows;
}

static uint64_t attention_score_floats(const clttt_config *config, int context, int batch) {
  return (uint64_t)config->num_attention_heads * (uint64_t)attention_block_rows_for(config, context, batch) *
         (uint64_t)context;
}

uint64_t clttt_estimate_weight_bytes(const clttt_config *config) {
  uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
  uint64_t q_dim = (uint64_t)config_q_dim(config), kv_dim = (uint64_t)config_kv_dim(config);
  uint64_t per_layer = 2 * d + (q_dim + 2 * kv_dim) * d + d * q_dim + 3 * d * f;
  if (config->attention_bias)
    per_layer += q_dim + 2 * kv_dim + d;
  if (config->mlp_bias)
    per_layer += 2 * f + d;
  if (config->arch == CLTTT_ARCH_QWEN3)
    per_layer += 2 * (uint64_t)config->head_dim;
  uint64_t total = per_layer * (uint64_t)config->num_hidden_layers;
  if (config->ttt_mode)
    total += (uint64_t)config_ttt_layer_count(config) * (5 * d + (config->ttt_proj ? d * d : 0));
  uint64_t embedding = (uint64_t)config->vocab_size * d;
  total += embedding * (config->tie_word_embeddings ? 1 : 2) + d + (uint64_t)config->head_dim / 2;
  return total * sizeof(float);
}

uint64_t clttt_estimate_session_bytes(const clttt_config *config, int context, int ttt_enabled, int chunk) {
  uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
  uint64_t q_dim = (uint64_t)config_q_dim(config), kv_dim = (uint64_t)config_kv_dim(config);
  if (chunk <= 0)
    chunk = config->ttt_chunk;
  int use_ttt = ttt_enabled && config->ttt_mode;
  uint64_t batch = (uint64_t)batch_capacity_for(context, use_ttt ? chunk : 0);
  uint64_t floats = (uint64_t)config->num_hidden_layers * 2 * (uint64_t)context * kv_dim;
  /* Per batch row: token id, x, xn, embeddings, delta (4d), qkv, attention, gate_up + h (3f), logits. */
  floats += batch * (1 + 4 * d + (q_dim + 2 * kv_dim) + q_dim + 3 * f + (uint64_t)config->vocab_size);
  floats += attention_score_floats(config, context, (int)batch);
  if (use_ttt) {
    floats += (uint64_t)config_ttt_layer_count(config) * (d * f + (uint64_t)chunk * (f + d));
    floats += 2 * (uint64_t)chunk * d; /* the update's conv output and targets */
  }
  return floats * sizeof(float);
}

static void release_ttt_buffers(clttt_session *session) {
  for (int i = 0; session->ttt && i < session->model->config.num_hidden_layers; i++) {
    runtime_release(&session->ttt[i].fast_weight);
    runtime_release(&session->ttt[i].pending_h);
    runtime_release(&session->ttt[i].pending_t);
  }
  ttt_workspace_free(&session->ttt_workspace);
}

/* (Re)allocates the TTT state for the current chunk size and copies W_down
 * into every fast weight. */
static clttt_status allocate_ttt_state(clttt_session *session) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  const size_t C = (size_t)session->chunk;
  release_ttt_buffers(session);
  if (!model->config.ttt_mode)
    return CLTTT_SUCCESS;
  CLTTT_TRY(ttt_workspace_create(device, &session->ttt_workspace, session->chunk, (int)d));
  for (int i = 0; i < model->config.num_hidden_layers; i++) {
    if (!model->layers[i].is_ttt)
      continue;
    ttt_state *state = &session->ttt[i];
    CLTTT_TRY(runtime_alloc(device, d * f * sizeof(float), "TTT fast weight W (d x f)", &state->fast_weight));
    CLTTT_TRY(runtime_alloc(device, C * f * sizeof(float), "TTT pending h (C x f)", &state->pending_h));
    CLTTT_TRY(runtime_alloc(device, C * d * sizeof(float), "TTT pending t (C x d)", &state->pending_t));
  }
  return clttt_session_reset_fast_weights(session);
}

static clttt_status allocate_workspace(clttt_session *session) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  const size_t rows = (size_t)session->batch_capacity;
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  struct {
    cl_mem *buffer;
    size_t floats;
    const char *what;
  } buffers[] = {
      {&session->tokens, rows, "token ids"},
      {&session->x, rows * d, "residual stream (n x d)"},
      {&session->xn, rows * d, "normalised activations (n x d)"},
      {&session->embeddings, rows * d, "input embeddings (n x d)"},
      {&session->qkv, rows * (size_t)model->qkv_width, "q, k, v (n x (q_dim + 2 kv_dim))"},
      {&session->attention, rows * (size_t)model->q_dim, "attention output (n x q_dim)"},
      {&session->gate_up, rows * 2 * f, "gate and up projections (n x 2f)"},
      {&session->h, rows * f, "gated MLP activations h (n x f)"},
      {&session->delta, rows * d, "layer outputs (n x d)"},
      {&session->logits, rows * (size_t)model->config.vocab_size, "logits (n x vocab)"},
      /* Allocated whatever the device's ATTENTION_GEMM_MIN_QUERIES, so that
       * clttt_estimate_session_bytes, which knows no device, stays exact. */
      {&session->scores,
       (size_t)attention_score_floats(&model->config, session->max_context, session->batch_capacity),
       "attention scores (heads x block x context)"},
  };
  session->attention_block_rows =
      attention_block_rows_for(&model->config, session->max_context, session->batch_capacity);
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
    CLTTT_TRY(runtime_alloc(device, buffers[i].floats * sizeof(float), buffers[i].what, buffers[i].buffer));
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_create(clttt_session **session_out, clttt_model *model, int max_context) {
  if (!session_out || !model || max_context < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_create: bad arguments");
  *session_out = NULL;
  clttt_session *session = calloc(1, sizeof *session);
  if (!session)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a session");
  const clttt_config *config = &model->config;
  session->model = model;
  session->max_context = max_context ? max_context : config->max_position_embeddings;
  session->ttt_enabled = config->ttt_mode;
  session->chunk = config->ttt_chunk;
  session->eta = config->ttt_lr;
  session->batch_capacity = batch_capacity_for(session->max_context, session->ttt_enabled ? session->chunk : 0);
  session->k_cache = calloc((size_t)config->num_hidden_layers, sizeof(cl_mem));
  session->v_cache = calloc((size_t)config->num_hidden_layers, sizeof(cl_mem));
  session->ttt = calloc((size_t)config->num_hidden_layers, sizeof(ttt_state));
  clttt_status status = CLTTT_SUCCESS;
  if (!session->k_cache || !session->v_cache || !session->ttt)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a session");
  const size_t cache_bytes = (size_t)session->max_context * (size_t)model->kv_dim * sizeof(float);
  for (int i = 0; i < config->num_hidden_layers && status == CLTTT_SUCCESS; i++) {
    status = runtime_alloc(model->device, cache_bytes, "K cache (context x kv_dim)", &session->k_cache[i]);
    if (status == CLTTT_SUCCESS)
      status = runtime_alloc(model->device, cache_bytes, "V cache (context x kv_dim)", &session->v_cache[i]);
  }
  if (status == CLTTT_SUCCESS)
    status = allocate_workspace(session);
  if (status == CLTTT_SUCCESS)
    status = allocate_ttt_state(session);
  if (status != CLTTT_SUCCESS) {
    clttt_session_free(session);
    return clttt_fail_context(status, "creating a session of %d tokens", max_context);
  }
  *session_out = session;
  return CLTTT_SUCCESS;
}

void clttt_session_free(clttt_session *session) {
  if (!session)
    return;
  release_ttt_buffers(session);
  for (int i = 0; i < session->model->config.num_hidden_layers; i++) {
    if (session->k_cache)
      runtime_release(&session->k_cache[i]);
    if (session->v_cache)
      runtime_release(&session->v_cache[i]);
  }
  free(session->k_cache);
  free(session->v_cache);
  free(session->ttt);
  cl_mem *buffers[] = {&session->tokens,    &session->x,       &session->xn,
                       &session->embeddings, &session->qkv,    &session->attention,
                       &session->gate_up,   &session->h,       &session->delta,
                       &session->logits,    &session->scores};
  for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++)
    runtime_release(buffers[b]);
  free(session);
}

int clttt_session_position(const clttt_session *session) { return session ? session->position : -1; }

clttt_status clttt_session_reset_fast_weights(clttt_session *session) {
  if (!session)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "reset: session is NULL");
  clttt_model *model = session->model;
  const size_t bytes = (size_t)model->config.hidden_size * (size_t)model->config.intermediate_size *
                       sizeof(float);
  for (int i = 0; i < model->config.num_hidden_layers; i++)
    if (session->ttt[i].fast_weight)
      CLTTT_TRY(runtime_copy(model->device, session->ttt[i].fast_weight, 0, model->layers[i].down, 0,
                             bytes, "W_down into the fast weight"));
  session->pending = 0;
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_reset(clttt_session *session) {
  CLTTT_TRY(clttt_session_reset_fast_weights(session));
  session->position = 0;
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_set_ttt(clttt_session *session, int enabled) {
  if (!session)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "set_ttt: session is NULL");
  if (session->position != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "TTT can be switched only at position 0 (session is at %d): reset first",
                      session->position);
  session->ttt_enabled = enabled != 0;
  return CLTTT_SUCCESS;
}

int clttt_session_ttt_enabled(const clttt_session *session) {
  return session ? session_uses_ttt(session) : 0;
}

clttt_status clttt_session_set_ttt_params(clttt_session *session, int chunk, float eta) {
  if (!session || chunk < 0 || !(eta == eta))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "set_ttt_params: chunk %d, eta %g", chunk, (double)eta);
  if (session->position != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "TTT parameters can change only at position 0 (session is at %d): reset first",
                      session->position);
  if (eta != 0.0f)
    session->eta = eta;
  if (chunk > 0 && chunk != session->chunk) {
    session->chunk = chunk;
    CLTTT_TRY(allocate_ttt_state(session));
  }
  return CLTTT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Forward pass                                                         */

static clttt_status rmsnorm(clttt_session *session, cl_mem out, int out_ld, cl_mem x, int x_ld,
                            cl_mem weight, int rows, int width) {
  clttt_device *device = session->model->device;
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "rmsnorm.cl", "rmsnorm", NULL, &kernel));
  float eps = session->model->config.rms_norm_eps;
  CLTTT_TRY(runtime_set_args(device, kernel, "rmsnorm", 8, sizeof(cl_mem), &out, sizeof(int), &out_ld,
                             sizeof(cl_mem), &x, sizeof(int), &x_ld, sizeof(cl_mem), &weight,
                             sizeof(int), &rows, sizeof(int), &width, sizeof(float), &eps));
  tuning_launch launch = tuning_launch_rmsnorm(&device->tuning, (size_t)rows);
  return runtime_launch(device, kernel, "rmsnorm", launch.dimensions, launch.global, launch.local);
}

static clttt_status add_in_place(clttt_session *session, cl_mem x, cl_mem y, size_t count) {
  clttt_device *device = session->model->device;
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "elementwise.cl", "add_in_place", NULL, &kernel));
  int n = (int)count;
  CLTTT_TRY(runtime_set_args(device, kernel, "add_in_place", 3, sizeof(cl_mem), &x, sizeof(cl_mem), &y,
                             sizeof(int), &n));
  tuning_launch launch = tuning_launch_add(&device->tuning, count);
  return runtime_launch(device, kernel, "add_in_place", launch.dimensions, launch.global, launch.local);
}

static clttt_status add_bias(clttt_session *session, cl_mem y, cl_mem bias, int rows, int width, int ld) {
  if (!bias)
    return CLTTT_SUCCESS;
  clttt_device *device = session->model->device;
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "elementwise.cl", "add_bias_rows", NULL, &kernel));
  CLTTT_TRY(runtime_set_args(device, kernel, "add_bias_rows", 5, sizeof(cl_mem), &y, sizeof(cl_mem), &bias,
                             sizeof(int), &rows, sizeof(int), &width, sizeof(int), &ld));
  tuning_launch launch = tuning_launch_elementwise_rows(&device->tuning, (size_t)width, (size_t)rows);
  return runtime_launch(device, kernel, "add_bias_rows", launch.dimensions, launch.global, launch.local);
}

static clttt_status embed(clttt_session *session, const int32_t *tokens, int n) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= model->config.vocab_size)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "token %d at position %d is outside the vocabulary (0..%d)",
                        tokens[i], session->position + i, model->config.vocab_size - 1);
  CLTTT_TRY(runtime_upload(device, session->tokens, 0, (size_t)n * sizeof(int32_t), tokens, "token ids"));
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "elementwise.cl", "embedding_gather", NULL, &kernel));
  int d = model->config.hidden_size;
  CLTTT_TRY(runtime_set_args(device, kernel, "embedding_gather", 5, sizeof(cl_mem), &session->x,
                             sizeof(cl_mem), &model->token_embedding, sizeof(cl_mem), &session->tokens,
                             sizeof(int), &n, sizeof(int), &d));
  tuning_launch launch = tuning_launch_elementwise_rows(&device->tuning, (size_t)d, (size_t)n);
  CLTTT_TRY(runtime_launch(device, kernel, "embedding_gather", launch.dimensions, launch.global, launch.local));
  if (session_uses_ttt(session) && model->config.ttt_target == CLTTT_TARGET_INPUT_EMBED)
    CLTTT_TRY(runtime_copy(device, session->embeddings, 0, session->x, 0,
                           (size_t)n * (size_t)d * sizeof(float), "input embeddings"));
  return CLTTT_SUCCESS;
}

clttt_status attention_flash(clttt_device *device, const attention_problem *problem) {
  char options[64];
  snprintf(options, sizeof options, "-DHEAD_DIM=%d", problem->head_dim);
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "attention.cl", "attention", options, &kernel));
  float scale = 1.0f / sqrtf((float)problem->head_dim);
  CLTTT_TRY(runtime_set_args(device, kernel, "attention", 11, sizeof(cl_mem), &problem->out, sizeof(cl_mem),
                             &problem->q, sizeof(int), &problem->q_ld, sizeof(cl_mem), &problem->k_cache,
                             sizeof(cl_mem), &problem->v_cache, sizeof(int), &problem->kv_dim, sizeof(int),
                             &problem->n, sizeof(int), &problem->position0, sizeof(int), &problem->heads,
                             sizeof(int), &problem->kv_heads, sizeof(float), &scale));
  tuning_launch launch = tuning_launch_attention(&device->tuning, (size_t)problem->n, (size_t)problem->heads);
  return runtime_launch(device, kernel, "attention", launch.dimensions, launch.global, launch.local);
}

/* GQA by offsets: query head h's products read kv head h / group straight
 * from the cache with its leading dimension, so no reordered copy of Q, K or
 * V is made. One CLBlastSgemmBatched per product (offset arrays over the
 * heads) measured 1.1-1.3x slower than this loop of plain GEMMs on PoCL (512
 * queries over 1536-4096 keys, 8 heads of 64), so the loop stays. A block of
 * queries only needs the keys up to its last query, so the products shrink
 * with the causal mask instead of covering the whole context every time. */
clttt_status attention_gemm(clttt_device *device, const attention_problem *problem, cl_mem scores,
                            int block_rows) {
  if (block_rows < 1 || problem->heads < 1 || problem->kv_heads < 1 || problem->heads % problem->kv_heads != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention: %d block rows, %d heads, %d kv heads", block_rows,
                      problem->heads, problem->kv_heads);
  char options[64];
  snprintf(options, sizeof options, "-DHEAD_DIM=%d", problem->head_dim);
  cl_kernel softmax = NULL;
  CLTTT_TRY(runtime_kernel(device, "attention.cl", "causal_softmax_rows", options, &softmax));
  const int group = problem->heads / problem->kv_heads;
  const size_t head_dim = (size_t)problem->head_dim, q_width = (size_t)problem->heads * head_dim;
  const float scale = 1.0f / sqrtf((float)problem->head_dim);
  for (int row0 = 0; row0 < problem->n; row0 += block_rows) {
    const int rows = problem->n - row0 < block_rows ? problem->n - row0 : block_rows;
    const int first_position = problem->position0 + row0;
    const int keys = first_position + rows;
    const size_t head_scores = (size_t)rows * (size_t)keys;
    for (int h = 0; h < problem->heads; h++) {
      const size_t kv_column = (size_t)(h / group) * head_dim;
      /* scores_h (rows x keys) = scale Q_h (rows x head_dim) K_g^T */
      CLTTT_TRY(gemm(device, "attention scores", GEMM_NO_TRANSPOSE, GEMM_TRANSPOSE, (size_t)rows, (size_t)keys,
                     head_dim, scale,
                     view(problem->q, (size_t)row0 * (size_t)problem->q_ld + (size_t)h * head_dim,
                          (size_t)problem->q_ld),
                     view(problem->k_cache, kv_column, (size_t)problem->kv_dim), 0.0f,
                     view(scores, (size_t)h * head_scores, (size_t)keys)));
    }
    int all_rows = rows * problem->heads;
    CLTTT_TRY(runtime_set_args(device, softmax, "causal_softmax_rows", 6, sizeof(cl_mem), &scores, sizeof(int),
                               &all_rows, sizeof(int), &keys, sizeof(int), &keys, sizeof(int), &rows, sizeof(int),
                               &first_position));
    tuning_launch launch = tuning_launch_softmax(&device->tuning, (size_t)all_rows);
    CLTTT_TRY(runtime_launch(device, softmax, "causal_softmax_rows", launch.dimensions, launch.global,
                             launch.local));
    for (int h = 0; h < problem->heads; h++) {
      const size_t kv_column = (size_t)(h / group) * head_dim;
      /* out_h (rows x head_dim) = P_h (rows x keys) V_g (keys x head_dim) */
      CLTTT_TRY(gemm(device, "attention values", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE, (size_t)rows, head_dim,
                     (size_t)keys, 1.0f, view(scores, (size_t)h * head_scores, (size_t)keys),
                     view(problem->v_cache, kv_column, (size_t)problem->kv_dim), 0.0f,
                     view(problem->out, (size_t)row0 * q_width + (size_t)h * head_dim, q_width)));
    }
  }
  return CLTTT_SUCCESS;
}

static clttt_status attention_block(clttt_session *session, int layer_index, int n) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  const clttt_config *config = &model->config;
  layer_weights *layer = &model->layers[layer_index];
  const size_t d = (size_t)config->hidden_size;

  CLTTT_TRY(rmsnorm(session, session->xn, (int)d, session->x, (int)d, layer->input_norm, n, (int)d));
  /* qkv (n x (q_dim + 2 kv_dim)) = xn (n x d) Wqkv^T */
  CLTTT_TRY(gemm_linear(device, "q, k, v projections", (size_t)n, (size_t)model->qkv_width, d,
                        view(session->xn, 0, d), view(layer->qkv, 0, d), 0.0f,
                        view(session->qkv, 0, (size_t)model->qkv_width)));
  CLTTT_TRY(add_bias(session, session->qkv, layer->qkv_bias, n, model->qkv_width, model->qkv_width));

  cl_kernel rope = NULL;
  CLTTT_TRY(runtime_kernel(device, "rope.cl", "qk_norm_rope", model->kernel_options, &rope));
  int qkv_ld = model->qkv_width, position0 = session->position;
  int heads = config->num_attention_heads, kv_heads = config->num_key_value_heads;
  int use_qk_norm = layer->q_norm != NULL, kv_dim = model->kv_dim;
  float eps = config->rms_norm_eps, scaling = model->rope_attention_scaling;
  /* Without q/k norm weights the kernel never reads them; any buffer will do. */
  cl_mem q_norm = layer->q_norm ? layer->q_norm : layer->input_norm;
  cl_mem k_norm = layer->k_norm ? layer->k_norm : layer->input_norm;
  CLTTT_TRY(runtime_set_args(device, rope, "qk_norm_rope", 15, sizeof(cl_mem), &session->qkv, sizeof(int),
                             &qkv_ld, sizeof(int), &n, sizeof(int), &position0, sizeof(int), &heads,
                             sizeof(int), &kv_heads, sizeof(cl_mem), &model->rope_inverse_frequency,
                             sizeof(float), &scaling, sizeof(int), &use_qk_norm, sizeof(cl_mem), &q_norm,
                             sizeof(cl_mem), &k_norm, sizeof(float), &eps, sizeof(cl_mem),
                             &session->k_cache[layer_index], sizeof(cl_mem), &session->v_cache[layer_index],
                             sizeof(int), &kv_dim));
  tuning_launch rope_launch = tuning_launch_rope(&device->tuning, (size_t)n, (size_t)(heads + kv_heads));
  CLTTT_TRY(runtime_launch(device, rope, "qk_norm_rope", rope_launch.dimensions, rope_launch.global,
                           rope_launch.local));

  attention_problem problem = {session->attention, session->qkv, qkv_ld, session->k_cache[layer_index],
                               session->v_cache[layer_index], kv_dim, n, position0, heads, kv_heads,
                               config->head_dim};
  /* The flash kernel walks all keys serially per query: fine for decode and
   * short batches, while long prefills run far faster as GEMMs (README,
   * Tuning: ATTENTION_GEMM_MIN_QUERIES). */
  int threshold = device->tuning.attention_gemm_min_queries;
  if (threshold > 0 && n >= threshold)
    CLTTT_TRY(attention_gemm(device, &problem, session->scores, session->attention_block_rows));
  else
    CLTTT_TRY(attention_flash(device, &problem));

  /* delta (n x d) = attention (n x q_dim) Wo^T */
  CLTTT_TRY(gemm_linear(device, "attention output projection", (size_t)n, d, (size_t)model->q_dim,
                        view(session->attention, 0, (size_t)model->q_dim), view(layer->o, 0, (size_t)model->q_dim),
                        0.0f, view(session->delta, 0, d)));
  CLTTT_TRY(add_bias(session, session->delta, layer->o_bias, n, (int)d, (int)d));
  return add_in_place(session, session->x, session->delta, (size_t)n * d);
}

/* The down-projection of a TTT layer over n rows, cut at chunk boundaries:
 * each piece is applied with the current W, appended to the pending rows,
 * and a completed chunk updates W before the next piece (SPEC.md section 4). */
static clttt_status ttt_down_projection(clttt_session *session, int layer_index, int n) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  layer_weights *weights = &model->layers[layer_index];
  ttt_state *state = &session->ttt[layer_index];
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  const int C = session->chunk;
  ttt_layer layer = {(int)d, (int)f, C, session->eta, weights->ttt_conv, weights->ttt_proj};
  cl_mem targets = model->config.ttt_target == CLTTT_TARGET_INPUT_EMBED ? session->embeddings : session->xn;

  int pending = session->pending;
  for (int row = 0; row < n;) {
    int piece = n - row < C - pending ? n - row : C - pending;
    CLTTT_TRY(ttt_apply(device, &layer, state->fast_weight, (size_t)piece, view(session->h, (size_t)row * f, f),
                        view(session->delta, (size_t)row * d, d)));
    if (pending == 0 && piece == C) {
      /* A whole chunk inside this batch: update straight from its rows. */
      CLTTT_TRY(ttt_update(device, &layer, &session->ttt_workspace, state->fast_weight,
                           view(session->h, (size_t)row * f, f), view(targets, (size_t)row * d, d)));
    } else {
      CLTTT_TRY(runtime_copy(device, state->pending_h, (size_t)pending * f * sizeof(float), session->h,
                             (size_t)row * f * sizeof(float), (size_t)piece * f * sizeof(float), "pending h rows"));
      CLTTT_TRY(runtime_copy(device, state->pending_t, (size_t)pending * d * sizeof(float), targets,
                             (size_t)row * d * sizeof(float), (size_t)piece * d * sizeof(float), "pending t rows"));
      if (pending + piece == C)
        CLTTT_TRY(ttt_update(device, &layer, &session->ttt_workspace, state->fast_weight,
                             view(state->pending_h, 0, f), view(state->pending_t, 0, d)));
    }
    pending = (pending + piece) % C;
    row += piece;
  }
  return CLTTT_SUCCESS;
}

static clttt_status mlp_block(clttt_session *session, int layer_index, int n) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  layer_weights *layer = &model->layers[layer_index];
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;

  CLTTT_TRY(rmsnorm(session, session->xn, (int)d, session->x, (int)d, layer->post_norm, n, (int)d));
  /* gate_up (n x 2f) = xn (n x d) [Wg; Wu]^T */
  CLTTT_TRY(gemm_linear(device, "MLP gate and up projections", (size_t)n, 2 * f, d, view(session->xn, 0, d),
                        view(layer->gate_up, 0, d), 0.0f, view(session->gate_up, 0, 2 * f)));
  CLTTT_TRY(add_bias(session, session->gate_up, layer->gate_up_bias, n, (int)(2 * f), (int)(2 * f)));
  cl_kernel swiglu = NULL;
  CLTTT_TRY(runtime_kernel(device, "elementwise.cl", "swiglu", NULL, &swiglu));
  int rows = n, width = (int)f;
  CLTTT_TRY(runtime_set_args(device, swiglu, "swiglu", 4, sizeof(cl_mem), &session->h, sizeof(cl_mem),
                             &session->gate_up, sizeof(int), &rows, sizeof(int), &width));
  tuning_launch launch = tuning_launch_swiglu(&device->tuning, f, (size_t)n);
  CLTTT_TRY(runtime_launch(device, swiglu, "swiglu", launch.dimensions, launch.global, launch.local));

  if (layer->is_ttt && session_uses_ttt(session)) {
    CLTTT_TRY(ttt_down_projection(session, layer_index, n));
  } else {
    /* delta (n x d) = h (n x f) W_down^T */
    CLTTT_TRY(gemm_linear(device, "MLP down projection", (size_t)n, d, f, view(session->h, 0, f),
                          view(layer->down, 0, f), 0.0f, view(session->delta, 0, d)));
  }
  CLTTT_TRY(add_bias(session, session->delta, layer->down_bias, n, (int)d, (int)d));
  return add_in_place(session, session->x, session->delta, (size_t)n * d);
}

/* logits (rows x vocab) = rmsnorm(x[first_row ..]) E^T, into session->logits. */
static clttt_status compute_logits(clttt_session *session, int first_row, int rows) {
  clttt_model *model = session->model;
  clttt_device *device = model->device;
  const size_t d = (size_t)model->config.hidden_size, vocab = (size_t)model->config.vocab_size;
  if (first_row > 0)
    CLTTT_TRY(runtime_copy(device, session->delta, 0, session->x, (size_t)first_row * d * sizeof(float),
                           (size_t)rows * d * sizeof(float), "last rows of the residual stream"));
  cl_mem source = first_row > 0 ? session->delta : session->x;
  CLTTT_TRY(rmsnorm(session, session->xn, (int)d, source, (int)d, model->final_norm, rows, (int)d));
  /* logits (rows x vocab) = xn (rows x d) E^T */
  return gemm_linear(device, "LM head", (size_t)rows, vocab, d, view(session->xn, 0, d),
                     view(model->lm_head, 0, d), 0.0f, view(session->logits, 0, vocab));
}

static clttt_status feed_batch(clttt_session *session, const int32_t *tokens, int n, float *logits,
                               int last_row_only) {
  clttt_model *model = session->model;
  CLTTT_TRY(embed(session, tokens, n));
  for (int layer = 0; layer < model->config.num_hidden_layers; layer++) {
    CLTTT_TRY(attention_block(session, layer, n));
    CLTTT_TRY(mlp_block(session, layer, n));
  }
  if (session_uses_ttt(session))
    session->pending = (session->pending + n) % session->chunk;
  session->position += n;
  if (!logits)
    return runtime_finish(model->device);
  const size_t vocab = (size_t)model->config.vocab_size;
  int first = last_row_only ? n - 1 : 0;
  int rows = n - first;
  CLTTT_TRY(compute_logits(session, first, rows));
  return runtime_download(model->device, session->logits, 0, (size_t)rows * vocab * sizeof(float), logits,
                          "logits");
}

clttt_status clttt_session_feed(clttt_session *session, const int32_t *tokens, int n, float *logits,
                                int logits_last_only) {
  if (!session || n < 0 || (n > 0 && !tokens))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_feed: bad arguments");
  if (n == 0)
    return CLTTT_SUCCESS;
  if (session->position + n > session->max_context)
    return clttt_fail(CLTTT_ERROR_CONTEXT_FULL,
                      "%d tokens at position %d exceed the session's context of %d tokens", n,
                      session->position, session->max_context);
  const size_t vocab = (size_t)session->model->config.vocab_size;
  for (int done = 0; done < n;) {
    int batch = n - done < session->batch_capacity ? n - done : session->batch_capacity;
    int is_last = done + batch == n;
    float *batch_logits = NULL;
    if (logits && !logits_last_only)
      batch_logits = logits + (size_t)done * vocab;
    else if (logits && is_last)
      batch_logits = logits;
    clttt_status status = feed_batch(session, tokens + done, batch, batch_logits, logits_last_only);
    if (status != CLTTT_SUCCESS)
      return status;
    done += batch;
  }
  return CLTTT_SUCCESS;
}
