/* Sessions: parameters, the buffers they size, the memory cost model that
 * sums the same sizes, and create / reset / free. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "config.h"
#include "error.h"
#include "session.h"

#define DEFAULT_BATCH_CAPACITY 512
#define MAX_TTT_BATCH_CAPACITY 2048
/* Far beyond any model's positions; a larger request is a mistake, and its
 * sizes would overflow the int positions the kernels take. */
#define MAX_CONTEXT (1 << 28)

clttt_session_params clttt_session_default_params(void) {
  clttt_session_params params;
  memset(&params, 0, sizeof params);
  params.context = 0;
  params.ttt = 1;
  params.chunk = 0;
  params.eta = 0.0f;
  params.ttt_clip_tau = 0.0f;
  params.logits = CLTTT_LOGITS_ALL;
  /* f16: measured (README, "Memory") to move logits by at most 1.8e-3 of
   * their range on the trained stories260K, less than the bf16 rounding
   * real checkpoints carry, for half the cache (llama.cpp's default too). */
  params.kv_type = CLTTT_KV_F16;
  return params;
}

/* The parameters with every "0 = the checkpoint's" filled in, checked. */
clttt_status session_resolve_params(const clttt_config *config, const clttt_session_params *given,
                                   clttt_session_params *resolved) {
  *resolved = given ? *given : clttt_session_default_params();
  if (resolved->context < 0 || resolved->context > MAX_CONTEXT)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session context %d: must be 0 (the model's) or 1..%d",
                      resolved->context, MAX_CONTEXT);
  if (resolved->context == 0)
    resolved->context = config->max_position_embeddings;
  if (resolved->context < 1 || resolved->context > MAX_CONTEXT)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session context %d (max_position_embeddings): must be 1..%d",
                      resolved->context, MAX_CONTEXT);
  if (resolved->ttt != 0 && resolved->ttt != 1)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session ttt %d: must be 0 (off) or 1 (on)", resolved->ttt);
  if (resolved->chunk < 0 || resolved->chunk > MAX_CONTEXT)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session chunk %d: must be 0 (the checkpoint's) or 1..%d",
                      resolved->chunk, MAX_CONTEXT);
  if (!isfinite(resolved->eta))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session eta %g: must be finite", (double)resolved->eta);
  if (!isfinite(resolved->ttt_clip_tau))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session ttt_clip_tau %g: must be finite",
                      (double)resolved->ttt_clip_tau);
  if (resolved->kv_type != CLTTT_KV_F32 && resolved->kv_type != CLTTT_KV_F16)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session kv_type %d: must be CLTTT_KV_F32 or CLTTT_KV_F16",
                      (int)resolved->kv_type);
  if (resolved->check_finite != 0 && resolved->check_finite != 1)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session check_finite %d: must be 0 or 1",
                      resolved->check_finite);
  if (resolved->logits != CLTTT_LOGITS_ALL && resolved->logits != CLTTT_LOGITS_LAST)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session logits mode %d: must be CLTTT_LOGITS_ALL or _LAST",
                      (int)resolved->logits);
  if (resolved->chunk == 0)
    resolved->chunk = config->ttt_chunk;
  if (resolved->eta == 0.0f)
    resolved->eta = config->ttt_lr;
  /* Resolved: > 0 clips, 0 is off. */
  if (resolved->ttt_clip_tau == 0.0f)
    resolved->ttt_clip_tau = config->ttt_clip_tau;
  else if (resolved->ttt_clip_tau < 0.0f)
    resolved->ttt_clip_tau = 0.0f;
  return CLTTT_SUCCESS;
}

static int uses_ttt(const clttt_config *config, const clttt_session_params *params) {
  return params->ttt && config_ttt_layer_count(config) > 0;
}

static int batch_capacity_for(int context, int chunk) {
  int capacity = DEFAULT_BATCH_CAPACITY;
  /* A batch that holds a whole chunk lets the update read h and t in place. */
  if (chunk > capacity && chunk <= MAX_TTT_BATCH_CAPACITY)
    capacity = chunk;
  return capacity < context ? capacity : context;
}

/* ---------------------------------------------------------------- */
/* The buffers and the cost model                                     */

/* Which parts of a split hold a per-batch buffer. */
enum { EVERY_PART, FIRST_PART, LAST_PART };

/* One per-batch buffer: its field in a session part, its size and where it lives. */
typedef struct {
  size_t field;      /* offsetof(session_part, ...) */
  uint64_t bytes;
  const char *what;
  int where;
} buffer_plan;

enum { BUFFER_COUNT = 15 };

/* The per-batch buffers of a session with resolved `params`: what
 * clttt_session_create allocates and clttt_estimate_session_bytes sums. */
static void plan_buffers(const clttt_config *config, const clttt_session_params *params, buffer_plan *plan,
                         int *batch_out, int *logits_rows_out, int *block_rows_out) {
  const uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
  const uint64_t q_dim = (uint64_t)config_q_dim(config), kv_dim = (uint64_t)config_kv_dim(config);
  const int batch = batch_capacity_for(params->context, uses_ttt(config, params) ? params->chunk : 0);
  const int logits_rows = params->logits == CLTTT_LOGITS_LAST ? 1 : batch;
  const int heads = config->num_attention_heads;
  const uint64_t rows = (uint64_t)batch, F = sizeof(float);
  const buffer_plan plans[BUFFER_COUNT] = {
      {offsetof(session_part, tokens), rows * sizeof(int32_t), "token ids", FIRST_PART},
      {offsetof(session_part, x), rows * d * F, "residual stream (n x d)", EVERY_PART},
      {offsetof(session_part, xn), rows * d * F, "normalised activations (n x d)", EVERY_PART},
      {offsetof(session_part, embeddings), rows * d * F, "input embeddings (n x d)", EVERY_PART},
      {offsetof(session_part, qkv), rows * (q_dim + 2 * kv_dim) * F, "q, k, v (n x (q_dim + 2 kv_dim))", EVERY_PART},
      {offsetof(session_part, attention), rows * q_dim * F, "attention output (n x q_dim)", EVERY_PART},
      {offsetof(session_part, gate_up), rows * 2 * f * F, "gate and up projections (n x 2f)", EVERY_PART},
      {offsetof(session_part, h), rows * f * F, "gated MLP activations h (n x f)", EVERY_PART},
      {offsetof(session_part, delta), rows * d * F, "layer outputs (n x d)", EVERY_PART},
      {offsetof(session_part, logits), (uint64_t)logits_rows * (uint64_t)config->vocab_size * F,
       "logits (rows x vocab)", LAST_PART},
      /* Allocated whatever the device's ATTENTION_GEMM_MIN_QUERIES, so that
       * the cost model, which knows no device, stays exact. */
      {offsetof(session_part, attention_work.scores),
       attention_score_floats(heads, params->context, batch) * F, "attention scores (heads x block x context)",
       EVERY_PART},
      {offsetof(session_part, attention_work.counter), sizeof(int32_t), "non-finite counter", EVERY_PART},
      /* Allocated whatever the device's long-batch attention path, as the
       * scores are: the tiles, our GEMM and CLBlast on a half cache use them. */
      {offsetof(session_part, attention_work.packed_keys),
       attention_panel_floats(params->context, config->head_dim) * F, "attention K of one kv head (packed)",
       EVERY_PART},
      {offsetof(session_part, attention_work.packed_values),
       attention_panel_floats(params->context, config->head_dim) * F, "attention V of one kv head (packed)",
       EVERY_PART},
      {offsetof(session_part, attention_work.decode_partials),
       ATTENTION_DECODE_FLOATS(heads, config->head_dim) * F,
       "decode attention ranges (heads x 64 x (head_dim + 2))", EVERY_PART},
  };
  memcpy(plan, plans, sizeof plans);
  *batch_out = batch;
  *logits_rows_out = logits_rows;
  *block_rows_out = attention_block_rows(heads, params->context, batch);
}

static int planned_here(const buffer_plan *plan, int has_embedding, int has_head) {
  return plan->where == EVERY_PART || (plan->where == FIRST_PART && has_embedding) ||
         (plan->where == LAST_PART && has_head);
}

static uint64_t kv_cache_bytes(const clttt_config *config, const clttt_session_params *params) {
  const uint64_t element = params->kv_type == CLTTT_KV_F16 ? 2 : sizeof(float);
  return (uint64_t)params->context * (uint64_t)config_kv_dim(config) * element;
}

uint64_t session_part_bytes(const clttt_config *config, const clttt_session_params *params, int first_layer,
                            int layer_count, int has_embedding, int has_head) {
  buffer_plan plan[BUFFER_COUNT];
  int batch, logits_rows, block_rows;
  plan_buffers(config, params, plan, &batch, &logits_rows, &block_rows);
  uint64_t total = 2 * (uint64_t)layer_count * kv_cache_bytes(config, params);
  for (int i = 0; i < BUFFER_COUNT; i++)
    if (planned_here(&plan[i], has_embedding, has_head))
      total += plan[i].bytes;
  if (uses_ttt(config, params))
    total += ttt_state_range_bytes(config, params->chunk, params->ttt_clip_tau, first_layer, layer_count);
  return total;
}

static uint64_t session_bytes(const clttt_config *config, const clttt_session_params *params) {
  return session_part_bytes(config, params, 0, config->num_hidden_layers, 1, 1);
}

/* The cost model's products overflow 64 bits for absurd configs; the same
 * sums in double say when, and the estimate then saturates. */
static uint64_t saturate(uint64_t exact, double approximate) {
  return approximate >= 1.8e19 ? UINT64_MAX : exact;
}

uint64_t clttt_estimate_session_bytes(const clttt_config *config, const clttt_session_params *params) {
  clttt_session_params resolved;
  if (!config || session_resolve_params(config, params, &resolved) != CLTTT_SUCCESS)
    return 0;
  /* The largest terms: the KV cache, one batch of logits and activations,
   * the fast weights and the clipping scratch. */
  double d = config->hidden_size, f = config->intermediate_size, context = resolved.context;
  double kv_dim = (double)config->num_key_value_heads * config->head_dim;
  double approximate = 4.0 * (2 * (double)config->num_hidden_layers * context * kv_dim +
                              2048.0 * ((double)config->vocab_size + 8 * d + 4 * f + 3 * kv_dim) +
                              (config_ttt_layer_count(config) + 1.0) * (d * f + context * (d + f)));
  return saturate(session_bytes(config, &resolved), approximate);
}

/* ---------------------------------------------------------------- */
/* Create, reset, free                                                */

static cl_mem *field(session_part *part, size_t offset) { return (cl_mem *)((char *)part + offset); }

/* Everything is checked before anything is allocated: a session a device
 * cannot hold beside what is already on it fails with the sizes, instead of
 * failing (or, under PoCL, aborting) half-way through. Parts that share one
 * device are summed. */
static clttt_status check_fits(const clttt_model *model, const clttt_session_params *resolved) {
  for (int p = 0; p < model->part_count; p++) {
    const clttt_device *device = model->parts[p].placement.device;
    uint64_t bytes = 0;
    for (int q = 0; q < model->part_count; q++) {
      const clttt_split_part *other = &model->parts[q].placement;
      if (other->device == device)
        bytes += session_part_bytes(&model->config, resolved, other->first_layer, other->layer_count,
                                    other->has_embedding, other->has_head);
    }
    const clttt_device_info *info = &device->info;
    uint64_t in_use = 0;
    runtime_memory_usage(device->context, &in_use, NULL, 0);
    if (info->global_memory == 0 || bytes + in_use <= info->global_memory)
      continue;
    return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                      "a session of %.1f MiB does not fit on device '%s': %.1f MiB of its %.1f MiB are in use",
                      (double)bytes / 1048576.0, info->name, (double)in_use / 1048576.0,
                      (double)info->global_memory / 1048576.0);
  }
  return CLTTT_SUCCESS;
}

/* Part `index`'s kernels and per-batch buffers. */
static clttt_status create_part(clttt_session *session, int index, const buffer_plan *plan) {
  const model_part *model_part = &session->model->parts[index];
  clttt_device *device = model_part->placement.device;
  session_part *part = &session->parts[index];
  part->attention_work.block_rows = session->parts[0].attention_work.block_rows;
  CLTTT_TRY(kernel_set_create(&session->kernels[index], device, &device->tuning, session->model->config.head_dim,
                              session->params.kv_type == CLTTT_KV_F16));
  if (session->model->weight_type != PACKED_GEMM_F32)
    CLTTT_TRY(kernel_set_add_packed(&session->kernels[index]));
  for (int i = 0; i < BUFFER_COUNT; i++)
    if (plan[i].bytes > 0 && planned_here(&plan[i], model_part->placement.has_embedding,
                                          model_part->placement.has_head))
      CLTTT_TRY(runtime_alloc(device, (size_t)plan[i].bytes, plan[i].what, field(part, plan[i].field)));
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_create(clttt_session **session_out, clttt_model *model,
                                  const clttt_session_params *params) {
  if (!session_out || !model)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_create: NULL argument");
  *session_out = NULL;
  const clttt_config *config = &model->config;
  clttt_session_params resolved;
  CLTTT_TRY(session_resolve_params(config, params, &resolved));
  CLTTT_TRY(check_fits(model, &resolved));

  clttt_session *session = calloc(1, sizeof *session);
  if (!session)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a session");
  session->model = model;
  session->params = resolved;
  session->uses_ttt = uses_ttt(config, &resolved);
  session->part_count = model->part_count;
  session->kernels = calloc((size_t)model->part_count, sizeof *session->kernels);
  session->parts = calloc((size_t)model->part_count, sizeof *session->parts);
  clttt_status status = CLTTT_SUCCESS;
  if (!session->kernels || !session->parts) {
    free(session->kernels);
    free(session->parts);
    free(session);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a session of %d parts", model->part_count);
  }
  buffer_plan plan[BUFFER_COUNT];
  plan_buffers(config, &resolved, plan, &session->batch_capacity, &session->logits_rows,
               &session->parts[0].attention_work.block_rows);

  for (int p = 0; p < session->part_count && status == CLTTT_SUCCESS; p++)
    status = create_part(session, p, plan);
  session->k_cache = calloc((size_t)config->num_hidden_layers, sizeof(cl_mem));
  session->v_cache = calloc((size_t)config->num_hidden_layers, sizeof(cl_mem));
  if (status == CLTTT_SUCCESS && (!session->k_cache || !session->v_cache))
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a session");
  if (status == CLTTT_SUCCESS && (session->part_count > 1 || model_is_slice(model))) {
    session->staging = malloc((size_t)session->batch_capacity * (size_t)config->hidden_size * sizeof(float));
    if (!session->staging)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the host staging between devices");
  }
  const size_t cache_bytes = (size_t)kv_cache_bytes(config, &resolved);
  for (int i = model_first_layer(model); i < model_end_layer(model) && status == CLTTT_SUCCESS; i++) {
    const clttt_device *device = layer_device(model, i);
    status = runtime_alloc(device, cache_bytes, "K cache (context x kv_dim)", &session->k_cache[i]);
    if (status == CLTTT_SUCCESS)
      status = runtime_alloc(device, cache_bytes, "V cache (context x kv_dim)", &session->v_cache[i]);
  }
  if (status == CLTTT_SUCCESS && session->uses_ttt)
    status = ttt_state_create(&session->ttt, session->kernels, model, resolved.chunk, resolved.eta,
                              resolved.ttt_clip_tau);
  if (status != CLTTT_SUCCESS) {
    clttt_session_free(session);
    return clttt_fail_context(status, "creating a session of %d tokens", resolved.context);
  }
  *session_out = session;
  return CLTTT_SUCCESS;
}

clttt_status session_finish(const clttt_session *session) {
  for (int p = 0; p < session->model->part_count; p++)
    CLTTT_TRY(runtime_finish(session->model->parts[p].placement.device));
  return CLTTT_SUCCESS;
}

void clttt_session_free(clttt_session *session) {
  if (!session)
    return;
  /* Commands still in flight hold references to the buffers, and a buffer
   * released while referenced is not subtracted from the device's memory
   * account (runtime_release): a session freed right after creation (a
   * failed load) would otherwise leave its fast weights counted. */
  session_finish(session);
  ttt_state_free(&session->ttt);
  for (int i = 0; i < session->model->config.num_hidden_layers; i++) {
    if (session->k_cache)
      runtime_release(&session->k_cache[i]);
    if (session->v_cache)
      runtime_release(&session->v_cache[i]);
  }
  free(session->k_cache);
  free(session->v_cache);
  free(session->history);
  free(session->staging);
  buffer_plan plan[BUFFER_COUNT];
  int batch, logits_rows, block_rows;
  plan_buffers(&session->model->config, &session->params, plan, &batch, &logits_rows, &block_rows);
  for (int p = 0; p < session->part_count; p++) {
    for (int i = 0; i < BUFFER_COUNT; i++)
      runtime_release(field(&session->parts[p], plan[i].field));
    kernel_set_release(&session->kernels[p]);
  }
  free(session->parts);
  free(session->kernels);
  free(session);
}

clttt_session_params clttt_session_get_params(const clttt_session *session) {
  return session ? session->params : clttt_session_default_params();
}

int clttt_session_position(const clttt_session *session) { return session ? session->position : -1; }

int clttt_session_ttt_enabled(const clttt_session *session) { return session ? session->uses_ttt : 0; }

clttt_status clttt_session_reset_fast_weights(clttt_session *session) {
  if (!session)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "reset: session is NULL");
  if (!session->uses_ttt)
    return CLTTT_SUCCESS;
  return ttt_state_reset(&session->ttt, session->kernels, session->model);
}

clttt_status clttt_session_reset(clttt_session *session) {
  CLTTT_TRY(clttt_session_reset_fast_weights(session));
  session->position = 0;
  return CLTTT_SUCCESS;
}

uint64_t clttt_session_bytes_moved(const clttt_session *session) { return session ? session->bytes_moved : 0; }

const int32_t *clttt_session_tokens(const clttt_session *session, int *count) {
  if (count)
    *count = session ? session->position : 0;
  return session && session->position > 0 ? session->history : NULL;
}

clttt_status session_reserve_history(clttt_session *session, int more) {
  /* The caller has checked position + more against the context. */
  const int needed = session->position + more;
  if (needed <= session->history_capacity)
    return CLTTT_SUCCESS;
  int capacity = session->history_capacity > 0 ? session->history_capacity : 256;
  while (capacity < needed)
    capacity = capacity > session->params.context / 2 ? session->params.context : capacity * 2;
  int32_t *grown = realloc(session->history, (size_t)capacity * sizeof *grown);
  if (!grown)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "growing the token history to %d tokens", capacity);
  session->history = grown;
  session->history_capacity = capacity;
  return CLTTT_SUCCESS;
}

clttt_status session_create_resolved(clttt_session **session, clttt_model *model,
                                     const clttt_session_params *resolved) {
  clttt_session_params params = *resolved;
  /* A resolved tau of 0 means "off", but given to create it would mean "the
   * checkpoint's": ask for off explicitly. Every other resolved value
   * resolves to itself. */
  if (params.ttt_clip_tau == 0.0f)
    params.ttt_clip_tau = -1.0f;
  return clttt_session_create(session, model, &params);
}
