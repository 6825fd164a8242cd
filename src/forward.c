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
 *   logits = rmsnorm(x) E^T                  (n x vocab)
 * With a layer split each layer runs on its part's device with that part's
 * kernels and buffers; where the part changes, x (and the input embeddings
 * a later TTT layer learns from) crosses to the next device through host
 * memory. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "error.h"
#include "gemm.h"
#include "profile.h"
#include "session.h"

/* The part (device) holding layer `index` and its kernels. */
static session_part *part_of(clttt_session *session, int index) {
  return &session->parts[session->model->layers[index].part];
}
static const kernel_set *kernels_of(const clttt_session *session, int index) {
  return &session->kernels[session->model->layers[index].part];
}

static clttt_status check_tokens(const clttt_session *session, const int32_t *tokens, int n) {
  const int vocab = session->model->config.vocab_size;
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "token %d at position %d is outside the vocabulary (0..%d)",
                        tokens[i], session->position + i, vocab - 1);
  return CLTTT_SUCCESS;
}

static clttt_status embed(clttt_session *session, const int32_t *tokens, int n) {
  const clttt_model *model = session->model;
  const int d = model->config.hidden_size;
  session_part *part = &session->parts[0];
  CLTTT_TRY(runtime_upload(model->device, part->tokens, 0, (size_t)n * sizeof(int32_t), tokens, "token ids"));
  /* x (n x d) = E[tokens] */
  CLTTT_TRY(op_embedding_gather(&session->kernels[0], part->x, &model->embedding, part->tokens, n, d));
  if (session->uses_ttt && model->config.ttt_target == CLTTT_TARGET_INPUT_EMBED)
    CLTTT_TRY(runtime_copy(model->device, part->embeddings, 0, part->x, 0,
                           (size_t)n * (size_t)d * sizeof(float), "input embeddings"));
  return CLTTT_SUCCESS;
}

static clttt_status attention_block(clttt_session *session, int layer_index, int n) {
  const clttt_model *model = session->model;
  const kernel_set *kernels = kernels_of(session, layer_index);
  session_part *part = part_of(session, layer_index);
  const clttt_config *config = &model->config;
  const layer_weights *layer = &model->layers[layer_index];
  const size_t d = (size_t)config->hidden_size, q_dim = (size_t)model->q_dim, width = (size_t)model->qkv_width;

  CLTTT_TRY(op_rmsnorm(kernels, part->xn, (int)d, part->x, (int)d, layer->input_norm, n, (int)d,
                       config->rms_norm_eps));
  /* qkv (n x (q_dim + 2 kv_dim)) = xn (n x d) Wqkv^T */
  CLTTT_TRY(gemm_weight(kernels, "q, k, v projections", (size_t)n, view(part->xn, 0, d), &layer->qkv, 0.0f,
                        view(part->qkv, 0, width)));
  CLTTT_TRY(op_add_bias_rows(kernels, part->qkv, layer->qkv_bias, n, (int)width, (int)width));

  const rope_problem rope = {part->qkv,
                             (int)width,
                             n,
                             session->position,
                             config->num_attention_heads,
                             config->num_key_value_heads,
                             model->parts[layer->part].rope_inverse_frequency,
                             model->rope_attention_scaling,
                             layer->q_norm,
                             layer->k_norm,
                             config->rms_norm_eps,
                             session->k_cache[layer_index],
                             session->v_cache[layer_index],
                             model->kv_dim};
  CLTTT_TRY(op_qk_norm_rope(kernels, &rope));

  const attention_problem problem = {part->attention,
                                     part->qkv,
                                     (int)width,
                                     session->k_cache[layer_index],
                                     session->v_cache[layer_index],
                                     model->kv_dim,
                                     n,
                                     session->position,
                                     config->num_attention_heads,
                                     config->num_key_value_heads,
                                     config->head_dim};
  CLTTT_TRY(attention_forward(kernels, &problem, &part->attention_work));

  /* Without a bias the product adds itself into the residual stream (beta
   * 1): x + attention Wo^T rounds as the separate add did, one pass and one
   * launch fewer. x (n x d) += attention (n x q_dim) Wo^T */
  if (!layer->o_bias)
    return gemm_weight(kernels, "attention output projection", (size_t)n, view(part->attention, 0, q_dim),
                       &layer->o, 1.0f, view(part->x, 0, d));
  /* delta (n x d) = attention (n x q_dim) Wo^T */
  CLTTT_TRY(gemm_weight(kernels, "attention output projection", (size_t)n, view(part->attention, 0, q_dim),
                        &layer->o, 0.0f, view(part->delta, 0, d)));
  CLTTT_TRY(op_add_bias_rows(kernels, part->delta, layer->o_bias, n, (int)d, (int)d));
  /* x += delta */
  return op_add_in_place(kernels, part->x, part->delta, (size_t)n * d);
}

static clttt_status mlp_block(clttt_session *session, int layer_index, int n) {
  const clttt_model *model = session->model;
  const kernel_set *kernels = kernels_of(session, layer_index);
  session_part *part = part_of(session, layer_index);
  const layer_weights *layer = &model->layers[layer_index];
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;

  CLTTT_TRY(op_rmsnorm(kernels, part->xn, (int)d, part->x, (int)d, layer->post_norm, n, (int)d,
                       model->config.rms_norm_eps));
  /* gate_up (n x 2f) = xn (n x d) [Wg; Wu]^T */
  CLTTT_TRY(gemm_weight(kernels, "MLP gate and up projections", (size_t)n, view(part->xn, 0, d), &layer->gate_up,
                        0.0f, view(part->gate_up, 0, 2 * f)));
  CLTTT_TRY(op_add_bias_rows(kernels, part->gate_up, layer->gate_up_bias, n, (int)(2 * f), (int)(2 * f)));
  /* h (n x f) = silu(gate) * up */
  CLTTT_TRY(op_swiglu(kernels, part->h, part->gate_up, n, (int)f));

  if (layer->is_ttt && session->uses_ttt) {
    /* x (n x d) += h (n x f) W^T, into the residual as below, W the fast
     * weight, learning chunk by chunk from the LM-aligned target (SPEC.md
     * sections 3-4). No down_proj bias: the authors' training never adds it
     * in a TTT layer, so weights trained with it expect none, for any n and
     * any streaming split. */
    cl_mem targets = model->config.ttt_target == CLTTT_TARGET_INPUT_EMBED ? part->embeddings : part->xn;
    return ttt_down_projection(&session->ttt, kernels, model, layer_index, n, view(part->h, 0, f),
                               view(targets, 0, d), view(part->x, 0, d));
  } else if (!layer->down_bias) {
    /* x (n x d) += h (n x f) W_down^T, into the residual */
    return gemm_weight(kernels, "MLP down projection", (size_t)n, view(part->h, 0, f), &layer->down, 1.0f,
                       view(part->x, 0, d));
  } else {
    /* delta (n x d) = h (n x f) W_down^T + b_down */
    CLTTT_TRY(gemm_weight(kernels, "MLP down projection", (size_t)n, view(part->h, 0, f), &layer->down, 0.0f,
                          view(part->delta, 0, d)));
    CLTTT_TRY(op_add_bias_rows(kernels, part->delta, layer->down_bias, n, (int)d, (int)d));
  }
  /* x += delta */
  return op_add_in_place(kernels, part->x, part->delta, (size_t)n * d);
}

/* logits (rows x vocab) = rmsnorm(x[first_row ..]) E^T, into the last part's logits. */
static clttt_status compute_logits(clttt_session *session, int first_row, int rows) {
  const clttt_model *model = session->model;
  const kernel_set *kernels = &session->kernels[session->part_count - 1];
  session_part *part = &session->parts[session->part_count - 1];
  const clttt_device *device = head_device(model);
  const size_t d = (size_t)model->config.hidden_size, vocab = (size_t)model->config.vocab_size;
  if (first_row > 0)
    CLTTT_TRY(runtime_copy(device, part->delta, 0, part->x, (size_t)first_row * d * sizeof(float),
                           (size_t)rows * d * sizeof(float), "last rows of the residual stream"));
  cl_mem source = first_row > 0 ? part->delta : part->x;
  CLTTT_TRY(op_rmsnorm(kernels, part->xn, (int)d, source, (int)d, model->final_norm, rows, (int)d,
                       model->config.rms_norm_eps));
  /* logits (rows x vocab) = xn (rows x d) E^T */
  return gemm_weight(kernels, "LM head", (size_t)rows, view(part->xn, 0, d), &model->lm_head, 0.0f,
                     view(part->logits, 0, vocab));
}

/* With check_finite: fails when the residual stream has stopped being
 * finite, naming the layer, the block and the first position. */
static clttt_status check_stream(clttt_session *session, int n, int layer, const char *block) {
  if (!session->params.check_finite)
    return CLTTT_SUCCESS;
  const size_t d = (size_t)session->model->config.hidden_size;
  session_part *part = part_of(session, layer);
  int nonfinite = 0;
  CLTTT_TRY(op_count_nonfinite(kernels_of(session, layer), part->x, 0, (size_t)n * d, part->attention_work.counter,
                               &nonfinite));
  if (nonfinite == 0)
    return CLTTT_SUCCESS;
  /* Found: the first position is worth a download of the batch. */
  float *rows = malloc((size_t)n * d * sizeof *rows);
  if (!rows)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "locating a non-finite value");
  clttt_status status = runtime_download(layer_device(session->model, layer), part->x, 0, (size_t)n * d * sizeof *rows,
                                         rows, "residual stream");
  size_t first = 0;
  while (status == CLTTT_SUCCESS && first < (size_t)n * d && isfinite(rows[first]))
    first++;
  free(rows);
  CLTTT_TRY(status);
  return clttt_fail(CLTTT_ERROR_NOT_FINITE,
                    "layer %d (%s) output is not finite: %d values, the first at position %d (channel %zu)", layer,
                    block, nonfinite, session->position + (int)(first / d), first % d);
}

/* The logits of `rows` rows starting at `position`: the first position whose
 * row holds a NaN or an infinity is an error. */
static clttt_status check_logits(const float *logits, int rows, size_t vocab, int position) {
  for (int r = 0; r < rows; r++)
    for (size_t v = 0; v < vocab; v++)
      if (!isfinite(logits[(size_t)r * vocab + v]))
        return clttt_fail(CLTTT_ERROR_NOT_FINITE,
                          "the logits at position %d are not finite (token %zu: %g); --check-finite names the "
                          "layer where it starts",
                          position + r, v, (double)logits[(size_t)r * vocab + v]);
  return CLTTT_SUCCESS;
}

/* Whether a TTT layer from `first_layer` on learns from the input
 * embeddings, which must then travel with the residual stream. */
static int embeddings_needed_from(const clttt_session *session, int first_layer) {
  const clttt_config *config = &session->model->config;
  if (!session->uses_ttt || config->ttt_target != CLTTT_TARGET_INPUT_EMBED)
    return 0;
  /* From the config: a slice has not loaded the layers after it. */
  for (int i = first_layer; i < config->num_hidden_layers; i++)
    if (clttt_config_is_ttt_layer(config, i))
      return 1;
  return 0;
}

int clttt_session_activation_width(const clttt_session *session, int layer) {
  if (!session || layer <= 0 || layer >= session->model->config.num_hidden_layers)
    return 0;
  return session->model->config.hidden_size * (1 + embeddings_needed_from(session, layer));
}

/* A slice's activations between host rows (n x width: x, then the
 * embeddings when width is 2d) and the first or last part's buffers, where
 * each is its own n x d matrix: one transfer each, through the staging
 * buffer when the host rows interleave the two. */
static clttt_status exchange_activations(clttt_session *session, int part_index, int layer, int n, const float *in,
                                         float *out) {
  const clttt_device *device = session->model->parts[part_index].placement.device;
  session_part *part = &session->parts[part_index];
  const size_t d = (size_t)session->model->config.hidden_size, bytes = (size_t)n * d * sizeof(float);
  const size_t width = (size_t)clttt_session_activation_width(session, layer);
  const cl_mem buffers[2] = {part->x, part->embeddings};
  const int interleaved = width != d;
  for (size_t b = 0; b * d < width; b++) {
    if (in) {
      for (int row = 0; interleaved && row < n; row++)
        memcpy(session->staging + (size_t)row * d, in + (size_t)row * width + b * d, d * sizeof(float));
      CLTTT_TRY(runtime_upload(device, buffers[b], 0, bytes, interleaved ? session->staging : in,
                               "activations into the slice"));
    } else {
      CLTTT_TRY(runtime_download(device, buffers[b], 0, bytes, interleaved ? session->staging : out,
                                 "activations out of the slice"));
      for (int row = 0; interleaved && row < n; row++)
        memcpy(out + (size_t)row * width + b * d, session->staging + (size_t)row * d, d * sizeof(float));
    }
  }
  return CLTTT_SUCCESS;
}

/* One n x d buffer of part `from` into the same buffer of part `to`. Two
 * devices may share no context (other platforms, other vendors), so the
 * rows go through host memory: a blocking download, which also waits for
 * every command of `from` before it, then an upload. */
static clttt_status move_rows(clttt_session *session, int from, int to, size_t field, int n, const char *what) {
  const size_t bytes = (size_t)n * (size_t)session->model->config.hidden_size * sizeof(float);
  const cl_mem source = *(cl_mem *)((char *)&session->parts[from] + field);
  const cl_mem target = *(cl_mem *)((char *)&session->parts[to] + field);
  CLTTT_TRY(runtime_download(session->model->parts[from].placement.device, source, 0, bytes, session->staging, what));
  CLTTT_TRY(runtime_upload(session->model->parts[to].placement.device, target, 0, bytes, session->staging, what));
  session->bytes_moved += bytes;
  return CLTTT_SUCCESS;
}

/* The activations the layers of part `to` read, from part to - 1. */
static clttt_status cross_to_part(clttt_session *session, int to, int n) {
  CLTTT_TRY(move_rows(session, to - 1, to, offsetof(session_part, x), n, "residual stream between devices"));
  if (embeddings_needed_from(session, session->model->parts[to].placement.first_layer))
    CLTTT_TRY(move_rows(session, to - 1, to, offsetof(session_part, embeddings), n,
                        "input embeddings between devices"));
  return CLTTT_SUCCESS;
}

/* One batch of n rows through the model's layers: from the tokens, or in a
 * slice not starting at layer 0 from activations_in (n rows); into logits,
 * or in a slice not ending at the last layer into activations_out. */
static clttt_status feed_batch(clttt_session *session, const int32_t *tokens, int n, const float *activations_in,
                               float *activations_out, float *logits, int last_row_only) {
  const clttt_model *model = session->model;
  const int first_layer = model_first_layer(model), end_layer = model_end_layer(model);
  CLTTT_TRY(check_tokens(session, tokens, n));
  if (model->parts[0].placement.has_embedding)
    CLTTT_TRY(embed(session, tokens, n));
  else
    CLTTT_TRY(exchange_activations(session, 0, first_layer, n, activations_in, NULL));
  for (int layer = first_layer; layer < end_layer; layer++) {
    if (layer > first_layer && model->layers[layer].part != model->layers[layer - 1].part)
      CLTTT_TRY(cross_to_part(session, model->layers[layer].part, n));
    CLTTT_TRY(attention_block(session, layer, n));
    CLTTT_TRY(check_stream(session, n, layer, "attention"));
    CLTTT_TRY(mlp_block(session, layer, n));
    CLTTT_TRY(check_stream(session, n, layer, "MLP"));
  }
  if (session->uses_ttt)
    ttt_state_advance(&session->ttt, n);
  /* Room was reserved by feed_rows. */
  memcpy(session->history + session->position, tokens, (size_t)n * sizeof *tokens);
  session->position += n;
  if (!model->parts[model->part_count - 1].placement.has_head)
    return exchange_activations(session, model->part_count - 1, end_layer, n, NULL, activations_out);
  /* Each crossing waited for the parts before it: only the last can still be busy. */
  if (!logits)
    return runtime_finish(head_device(model));
  const size_t vocab = (size_t)model->config.vocab_size;
  int first = last_row_only ? n - 1 : 0;
  int rows = n - first;
  CLTTT_TRY(compute_logits(session, first, rows));
  CLTTT_TRY(runtime_download(head_device(model), session->parts[session->part_count - 1].logits, 0,
                             (size_t)rows * vocab * sizeof(float), logits, "logits"));
  return check_logits(logits, rows, vocab, session->position - n + first);
}

/* n tokens in batches of at most batch_capacity rows. */
static clttt_status feed_rows(clttt_session *session, const int32_t *tokens, int n, const float *activations_in,
                              float *activations_out, float *logits, int logits_last_only, const char *caller) {
  if (!session || n < 0 || (n > 0 && !tokens))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: bad arguments", caller);
  if (n == 0)
    return CLTTT_SUCCESS;
  if (logits && !logits_last_only && session->params.logits == CLTTT_LOGITS_LAST)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: all rows of logits asked of a session created with CLTTT_LOGITS_LAST", caller);
  const clttt_model *model = session->model;
  const int in_width = model->parts[0].placement.has_embedding
                           ? 0
                           : clttt_session_activation_width(session, model_first_layer(model));
  const int out_width = model->parts[model->part_count - 1].placement.has_head
                            ? 0
                            : clttt_session_activation_width(session, model_end_layer(model));
  if ((in_width && !activations_in) || (out_width && !activations_out))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: a slice of layers %d..%d needs activations %s (rows of %d floats): "
                      "clttt_session_feed_slice",
                      caller, model_first_layer(model), model_end_layer(model) - 1,
                      in_width && !activations_in ? "in" : "out", in_width && !activations_in ? in_width : out_width);
  if (n > session->params.context - session->position)
    return clttt_fail(CLTTT_ERROR_CONTEXT_FULL,
                      "%d tokens at position %d exceed the session's context of %d tokens", n,
                      session->position, session->params.context);
  CLTTT_TRY(session_reserve_history(session, n));
  /* What the caller did since its last feed (clttt ppl scoring the logits)
   * is no op's time: without this the feed's first upload was charged
   * with it. */
  for (int p = 0; p < model->part_count; p++)
    if (model->parts[p].placement.device->profile)
      profile_restart(model->parts[p].placement.device->profile);
  const size_t vocab = (size_t)model->config.vocab_size;
  for (int done = 0; done < n;) {
    int batch = n - done < session->batch_capacity ? n - done : session->batch_capacity;
    int is_last = done + batch == n;
    float *batch_logits = NULL;
    if (logits && !logits_last_only)
      batch_logits = logits + (size_t)done * vocab;
    else if (logits && is_last)
      batch_logits = logits;
    CLTTT_TRY(feed_batch(session, tokens + done, batch,
                         in_width ? activations_in + (size_t)done * (size_t)in_width : NULL,
                         out_width ? activations_out + (size_t)done * (size_t)out_width : NULL, batch_logits,
                         logits_last_only));
    done += batch;
  }
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_feed(clttt_session *session, const int32_t *tokens, int n, float *logits,
                                int logits_last_only) {
  return feed_rows(session, tokens, n, NULL, NULL, logits, logits_last_only, "clttt_session_feed");
}

clttt_status clttt_session_feed_slice(clttt_session *session, const int32_t *tokens, int n,
                                      const float *activations_in, float *activations_out, float *logits,
                                      int logits_last_only) {
  return feed_rows(session, tokens, n, activations_in, activations_out, logits, logits_last_only,
                   "clttt_session_feed_slice");
}
