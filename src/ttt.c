/* In-Place TTT: conv target, projection, apply, update, the two forms, and
 * the streaming state a session carries from batch to batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "config.h"
#include "ttt.h"

/* The larger of the apply's packed W and the update's packed V and h:
 * they take turns in one buffer. */
static uint64_t scratch_bytes(int C, int d, int f) {
  const uint64_t apply = ((uint64_t)d + 256) * ((uint64_t)f + 256) * sizeof(float);
  const uint64_t update = packed_gemm_update_scratch_bytes((size_t)d, (size_t)f, (size_t)C);
  return apply > update ? apply : update;
}

uint64_t ttt_workspace_bytes(int C, int d, int f, int clipping) {
  uint64_t bytes = 2 * (uint64_t)C * (uint64_t)d * sizeof(float);
  bytes += scratch_bytes(C, d, f);
  if (clipping)
    bytes += ((uint64_t)d * (uint64_t)f + (uint64_t)d + 1) * sizeof(float);
  return bytes;
}

clttt_status ttt_workspace_create(const clttt_device *device, ttt_workspace *workspace, int C, int d, int f,
                                  int clipping) {
  memset(workspace, 0, sizeof *workspace);
  workspace->C = C;
  workspace->d = d;
  size_t bytes = (size_t)C * d * sizeof(float);
  clttt_status status = runtime_alloc(device, bytes, "TTT conv output (C x d)", &workspace->conv_out);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, bytes, "TTT targets V (C x d)", &workspace->targets);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, (size_t)scratch_bytes(C, d, f),
                           "TTT scratch (W packed for the apply, V and h for the update)", &workspace->scratch);
  if (status == CLTTT_SUCCESS && clipping)
    status = runtime_alloc(device, (size_t)d * (size_t)f * sizeof(float), "TTT clipped update U (d x f)",
                           &workspace->update);
  if (status == CLTTT_SUCCESS && clipping)
    status = runtime_alloc(device, (size_t)d * sizeof(float), "TTT update row norms (d)", &workspace->row_sums);
  if (status == CLTTT_SUCCESS && clipping)
    status = runtime_alloc(device, sizeof(float), "TTT update scale", &workspace->scale);
  if (status != CLTTT_SUCCESS)
    ttt_workspace_free(workspace);
  return status;
}

void ttt_workspace_free(ttt_workspace *workspace) {
  runtime_release(&workspace->conv_out);
  runtime_release(&workspace->targets);
  runtime_release(&workspace->update);
  runtime_release(&workspace->row_sums);
  runtime_release(&workspace->scale);
  runtime_release(&workspace->scratch);
}

int ttt_fast_weight_in_panels(const tuning_params *params, int d) {
  return params->gemm_packed && params->update_own && params->gemm.variant == PACKED_GEMM_CPU && params->gemm.nr > 0 &&
         d > 0 && d % params->gemm.nr == 0;
}

int ttt_fast_weight_panels(const kernel_set *kernels, int d, int f, packed_gemm_layout *layout) {
  if (!kernels->has_packed || !kernels->packed.update_panels || f < 1 || !ttt_fast_weight_in_panels(&kernels->params, d))
    return 0;
  if (packed_gemm_layout_for(&kernels->packed.params, PACKED_GEMM_F32, (size_t)d, (size_t)f, layout) !=
      CLTTT_SUCCESS)
    return 0;
  return layout->panels * layout->panel_width == (size_t)d && layout->k_padded == (size_t)f;
}

clttt_status ttt_apply(const kernel_set *kernels, const ttt_layer *layer, cl_mem W, size_t rows,
                       matrix_view h, float beta, matrix_view out) {
  const size_t d = (size_t)layer->d, f = (size_t)layer->f;
  if (layer->fast_weight_panels)
    /* out (rows x d) = beta out + h (rows x f) W^T, W in the GEMM's panels */
    return packed_gemm_run(&kernels->packed, "TTT apply (h W^T)", layer->fast_weight_panels, rows, h, W, 0, beta,
                           out);
  if (layer->scratch && rows >= TTT_APPLY_PACKED_ROWS && kernels->params.gemm_packed && kernels->has_packed) {
    /* W changes every chunk: packed again on the device for each batch. */
    packed_gemm_layout layout;
    CLTTT_TRY(packed_gemm_layout_for(&kernels->packed.params, PACKED_GEMM_F32, d, f, &layout));
    CLTTT_TRY(packed_gemm_pack_device(&kernels->packed, "TTT apply (h W^T)", &layout, layer->scratch, 0, W,
                                      PACKED_GEMM_F32, 0, f, 1, 1.0f));
    /* out (rows x d) = beta out + h (rows x f) W^T */
    return packed_gemm_run(&kernels->packed, "TTT apply (h W^T)", &layout, rows, h, layer->scratch, 0, beta,
                           out);
  }
  /* out (rows x d) = beta out + h (rows x f) W^T, W: d x f */
  return gemm_linear(kernels, "TTT apply (h W^T)", rows, d, f, h, view(W, 0, f), beta, out);
}

/* tc (C x d) = conv(t) inside the chunk; V (C x d) = tc P, or tc without P. */
static clttt_status compute_targets(const kernel_set *kernels, const ttt_layer *layer,
                                    ttt_workspace *workspace, matrix_view t, cl_mem *targets) {
  const int rows = layer->C, d = layer->d;
  CLTTT_TRY(op_ttt_conv(kernels, workspace->conv_out, t, layer->conv, rows, d));
  if (!layer->projection) {
    *targets = workspace->conv_out;
    return CLTTT_SUCCESS;
  }
  if (layer->projection_packed) {
    if (!kernels->has_packed)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "TTT target projection: packed P, no packed GEMM kernels");
    /* V (C x d) = tc (C x d) (P^T)^T, P^T in panels: P used as stored */
    CLTTT_TRY(packed_gemm_run(&kernels->packed, "TTT target projection (tc P)", layer->projection_packed,
                              (size_t)rows, view(workspace->conv_out, 0, (size_t)d), layer->projection, 0, 0.0f,
                              view(workspace->targets, 0, (size_t)d)));
    *targets = workspace->targets;
    return CLTTT_SUCCESS;
  }
  /* V (C x d) = tc (C x d) P (d x d), P used as stored (SPEC.md section 3.5) */
  CLTTT_TRY(gemm(kernels->device, "TTT target projection (tc P)", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE,
                 (size_t)rows, (size_t)d, (size_t)d, 1.0f, view(workspace->conv_out, 0, (size_t)d),
                 view(layer->projection, 0, (size_t)d), 0.0f, view(workspace->targets, 0, (size_t)d)));
  *targets = workspace->targets;
  return CLTTT_SUCCESS;
}

clttt_status ttt_update_product(const kernel_set *kernels, const char *what, size_t d, size_t f, size_t C, float eta,
                                matrix_view V, matrix_view h, matrix_view W, cl_mem scratch) {
  if (kernels->params.update_own && kernels->has_packed)
    return packed_gemm_update(&kernels->packed, what, d, f, C, eta, V, h, W, scratch);
  return gemm(kernels->device, what, GEMM_TRANSPOSE, GEMM_NO_TRANSPOSE, d, f, C, eta, V, h, 1.0f, W);
}

static clttt_status accumulate_update(const kernel_set *kernels, const char *what, const ttt_layer *layer,
                                      const ttt_workspace *workspace, cl_mem targets, matrix_view h, matrix_view W) {
  if (layer->fast_weight_panels) {
    /* W (d x f, in panels) += eta * V^T (d x C) h (C x f) */
    if (W.offset != 0)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: a fast weight in panels starts its buffer", what);
    return packed_gemm_update_panels(&kernels->packed, what, layer->fast_weight_panels, (size_t)layer->C,
                                     layer->eta, view(targets, 0, (size_t)layer->d), h, W.buffer,
                                     workspace->scratch);
  }
  return ttt_update_product(kernels, what, (size_t)layer->d, (size_t)layer->f, (size_t)layer->C, layer->eta,
                            view(targets, 0, (size_t)layer->d), h, W, workspace->scratch);
}

clttt_status ttt_update(const kernel_set *kernels, const ttt_layer *layer, ttt_workspace *workspace,
                        cl_mem W, matrix_view h, matrix_view t) {
  cl_mem targets = NULL;
  CLTTT_TRY(compute_targets(kernels, layer, workspace, t, &targets));
  const size_t d = (size_t)layer->d, f = (size_t)layer->f;
  if (!(layer->clip_tau > 0.0f))
    /* W (d x f) += eta * V^T (d x C) h (C x f) */
    return accumulate_update(kernels, "TTT update (W += eta V^T h)", layer, workspace, targets, h, view(W, 0, f));
  if (!workspace->update)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "TTT update clipping without a clipping workspace");
  /* U (d x f) = eta * V^T (d x C) h (C x f); W += min(1, tau / ||U||_F) U */
  CLTTT_TRY(runtime_zero(kernels->device, workspace->update, 0, d * f * sizeof(float), "TTT update U"));
  CLTTT_TRY(accumulate_update(kernels, "TTT update (U = eta V^T h)", layer, workspace, targets, h,
                              view(workspace->update, 0, f)));
  CLTTT_TRY(op_row_sum_of_squares(kernels, workspace->update, (int)d, (int)f, workspace->row_sums));
  CLTTT_TRY(op_clip_scale(kernels, workspace->row_sums, (int)d, layer->clip_tau, workspace->scale));
  return op_add_scaled(kernels, W, workspace->update, workspace->scale, d * f);
}

clttt_status ttt_sequential_form(const kernel_set *kernels, const ttt_layer *layer, cl_mem W, int n,
                                 cl_mem h, cl_mem t, cl_mem out) {
  const clttt_device *device = kernels->device;
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  ttt_workspace workspace;
  CLTTT_TRY(ttt_workspace_create(device, &workspace, layer->C, layer->d, layer->f, layer->clip_tau > 0.0f));
  clttt_status status = CLTTT_SUCCESS;
  for (size_t row = 0; row < (size_t)n && status == CLTTT_SUCCESS; row += C) {
    size_t rows = (size_t)n - row < C ? (size_t)n - row : C;
    status = ttt_apply(kernels, layer, W, rows, view(h, row * f, f), 0.0f, view(out, row * d, d));
    if (status == CLTTT_SUCCESS && rows == C)
      status = ttt_update(kernels, layer, &workspace, W, view(h, row * f, f), view(t, row * d, d));
  }
  ttt_workspace_free(&workspace);
  return status;
}

/* The update sum of one range of whole chunks: delta (d x f) = eta * sum_k V_k^T h_k.
 * The conv must not cross chunk boundaries, so targets are built chunk by
 * chunk, but the sum over the range is accumulated with beta = 1. */
static clttt_status range_update_sum(const kernel_set *kernels, const ttt_layer *layer,
                                     ttt_workspace *workspace, size_t first_row, size_t chunks,
                                     cl_mem h, cl_mem t, cl_mem delta) {
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  CLTTT_TRY(runtime_zero(kernels->device, delta, 0, d * f * sizeof(float), "TTT range update sum"));
  for (size_t k = 0; k < chunks; k++)
    CLTTT_TRY(ttt_update(kernels, layer, workspace, delta, view(h, (first_row + k * C) * f, f),
                         view(t, (first_row + k * C) * d, d)));
  return CLTTT_SUCCESS;
}

clttt_status ttt_prefix_form(const kernel_set *kernels, const ttt_layer *layer, cl_mem W0, int n,
                             cl_mem h, cl_mem t, int chunks_per_range, cl_mem out, cl_mem W_final) {
  const clttt_device *device = kernels->device;
  if (chunks_per_range < 1 || n < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "TTT prefix form: chunks_per_range %d, n %d",
                      chunks_per_range, n);
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  const size_t full_chunks = (size_t)n / C;
  const size_t ranges = (full_chunks + (size_t)chunks_per_range - 1) / (size_t)chunks_per_range;
  const size_t matrix_bytes = d * f * sizeof(float);

  ttt_workspace workspace;
  CLTTT_TRY(ttt_workspace_create(device, &workspace, layer->C, layer->d, layer->f, layer->clip_tau > 0.0f));
  cl_mem *deltas = calloc(ranges ? ranges : 1, sizeof *deltas);
  cl_mem running = NULL;
  clttt_status status = deltas ? CLTTT_SUCCESS
                               : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "TTT prefix form");
  /* 1. Independent per-range update sums (what separate devices would do). */
  for (size_t r = 0; r < ranges && status == CLTTT_SUCCESS; r++) {
    size_t first_chunk = r * (size_t)chunks_per_range;
    size_t chunks = full_chunks - first_chunk < (size_t)chunks_per_range ? full_chunks - first_chunk
                                                                         : (size_t)chunks_per_range;
    status = runtime_alloc(device, matrix_bytes, "TTT range update sum (d x f)", &deltas[r]);
    if (status == CLTTT_SUCCESS)
      status = range_update_sum(kernels, layer, &workspace, first_chunk * C, chunks, h, t, deltas[r]);
  }
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, matrix_bytes, "TTT running weights (d x f)", &running);
  /* 2. Exclusive prefix over ranges: the weights entering range r are
   * W0 + sum_{r' < r} delta_r'; inside the range, chunks go in order. */
  if (status == CLTTT_SUCCESS)
    status = runtime_copy(device, running, 0, W0, 0, matrix_bytes, "TTT W0");
  for (size_t r = 0; r < ranges && status == CLTTT_SUCCESS; r++) {
    size_t first_chunk = r * (size_t)chunks_per_range;
    size_t chunks = full_chunks - first_chunk < (size_t)chunks_per_range ? full_chunks - first_chunk
                                                                         : (size_t)chunks_per_range;
    /* Outputs of the range: each chunk sees the range's entry weights plus
     * the updates of the range's earlier chunks. Those partial sums are
     * rebuilt on a copy so that `running` stays the exact prefix. */
    cl_mem inside = NULL;
    status = runtime_alloc(device, matrix_bytes, "TTT in-range weights (d x f)", &inside);
    if (status == CLTTT_SUCCESS)
      status = runtime_copy(device, inside, 0, running, 0, matrix_bytes, "TTT range entry weights");
    for (size_t k = 0; k < chunks && status == CLTTT_SUCCESS; k++) {
      size_t row = (first_chunk + k) * C;
      status = ttt_apply(kernels, layer, inside, C, view(h, row * f, f), 0.0f, view(out, row * d, d));
      if (status == CLTTT_SUCCESS && k + 1 < chunks)
        status = ttt_update(kernels, layer, &workspace, inside, view(h, row * f, f), view(t, row * d, d));
    }
    runtime_release(&inside);
    if (status == CLTTT_SUCCESS)
      status = op_add_in_place(kernels, running, deltas[r], d * f);
  }
  /* 3. Rows of a final partial chunk: applied with the final weights, no update. */
  size_t tail_row = full_chunks * C;
  if (status == CLTTT_SUCCESS && tail_row < (size_t)n)
    status = ttt_apply(kernels, layer, running, (size_t)n - tail_row, view(h, tail_row * f, f), 0.0f,
                       view(out, tail_row * d, d));
  if (status == CLTTT_SUCCESS && W_final)
    status = runtime_copy(device, W_final, 0, running, 0, matrix_bytes, "TTT final weights");
  if (status == CLTTT_SUCCESS)
    status = runtime_finish(device);
  for (size_t r = 0; deltas && r < ranges; r++)
    runtime_release(&deltas[r]);
  free(deltas);
  runtime_release(&running);
  ttt_workspace_free(&workspace);
  return status;
}

/* ---------------------------------------------------------------- */
/* The streaming state of a session                                   */

uint64_t ttt_state_bytes(const clttt_config *config, int C, float clip_tau) {
  return ttt_state_range_bytes(config, C, clip_tau, 0, config->num_hidden_layers);
}

uint64_t ttt_state_range_bytes(const clttt_config *config, int C, float clip_tau, int first_layer, int layer_count) {
  const uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
  uint64_t layers = 0;
  for (int i = first_layer; i < first_layer + layer_count; i++)
    layers += config->ttt_mode && clttt_config_is_ttt_layer(config, i);
  if (layers == 0)
    return 0;
  /* Per layer W, pending h and t; once, the update's workspace. */
  return layers * (d * f + (uint64_t)C * (f + d)) * sizeof(float) +
         ttt_workspace_bytes(C, (int)d, (int)f, clip_tau > 0.0f);
}

void ttt_state_free(ttt_state *state) {
  for (int i = 0; state->layers && i < state->layer_count; i++) {
    runtime_release(&state->layers[i].fast_weight);
    runtime_release(&state->layers[i].pending_h);
    runtime_release(&state->layers[i].pending_t);
  }
  free(state->layers);
  for (int p = 0; state->workspaces && p < state->workspace_count; p++)
    ttt_workspace_free(&state->workspaces[p]);
  free(state->workspaces);
  memset(state, 0, sizeof *state);
}

clttt_status ttt_state_create(ttt_state *state, const kernel_set *kernels, const clttt_model *model, int C,
                              float eta, float clip_tau) {
  memset(state, 0, sizeof *state);
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  state->C = C;
  state->eta = eta;
  state->clip_tau = clip_tau;
  state->layer_count = model->config.num_hidden_layers;
  state->layers = calloc((size_t)state->layer_count, sizeof *state->layers);
  state->workspace_count = model->part_count;
  state->workspaces = calloc((size_t)model->part_count, sizeof *state->workspaces);
  if (!state->layers || !state->workspaces) {
    ttt_state_free(state);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the TTT state of %d layers", model->config.num_hidden_layers);
  }
  clttt_status status = CLTTT_SUCCESS;
  for (int i = 0; i < state->layer_count && status == CLTTT_SUCCESS; i++) {
    if (!model->layers[i].is_ttt)
      continue;
    const clttt_device *device = layer_device(model, i);
    ttt_workspace *workspace = &state->workspaces[model->layers[i].part];
    if (!workspace->conv_out)
      status = ttt_workspace_create(device, workspace, C, (int)d, (int)f, clip_tau > 0.0f);
    ttt_layer_state *layer = &state->layers[i];
    if (status != CLTTT_SUCCESS)
      break;
    layer->in_panels = ttt_fast_weight_panels(&kernels[model->layers[i].part], (int)d, (int)f, &layer->panels);
    status = runtime_alloc(device, d * f * sizeof(float),
                           layer->in_panels ? "TTT fast weight W (d x f, in the GEMM's panels)"
                                            : "TTT fast weight W (d x f)",
                           &layer->fast_weight);
    if (status == CLTTT_SUCCESS)
      status = runtime_alloc(device, (size_t)C * f * sizeof(float), "TTT pending h (C x f)", &layer->pending_h);
    if (status == CLTTT_SUCCESS)
      status = runtime_alloc(device, (size_t)C * d * sizeof(float), "TTT pending t (C x d)", &layer->pending_t);
  }
  if (status == CLTTT_SUCCESS)
    status = ttt_state_reset(state, kernels, model);
  if (status != CLTTT_SUCCESS)
    ttt_state_free(state);
  return status;
}

/* W = W_down in the fast weight's layout: copied where the two share it;
 * else W_down as fp32 rows (widened into the scratch when it is packed),
 * then packed into the fast weight's panels. */
static clttt_status load_fast_weight(const kernel_set *kernels, ttt_layer_state *layer, const linear_weight *down,
                                     cl_mem scratch, size_t d, size_t f) {
  const size_t bytes = d * f * sizeof(float);
  if (!layer->in_panels) {
    if (!down->packed)
      return runtime_copy(kernels->device, layer->fast_weight, 0, down->buffer, 0, bytes,
                          "W_down into the fast weight");
    return op_widen_to_float(kernels, layer->fast_weight, down);
  }
  const packed_gemm_layout *panels = &layer->panels;
  if (down->packed && down->layout.type == PACKED_GEMM_F32 && down->layout.variant == panels->variant &&
      down->layout.panel_width == panels->panel_width && down->layout.k_padded == panels->k_padded &&
      packed_gemm_bytes(&down->layout) == bytes)
    return runtime_copy(kernels->device, layer->fast_weight, 0, down->buffer, 0, bytes,
                        "W_down into the fast weight (the same panels)");
  cl_mem rows = down->buffer;
  if (down->packed) {
    CLTTT_TRY(op_widen_to_float(kernels, scratch, down));
    rows = scratch;
  }
  /* element (i, j) of W_down at i * f + j */
  return packed_gemm_pack_device(&kernels->packed, "W_down into the fast weight's panels", panels, layer->fast_weight,
                                 0, rows, PACKED_GEMM_F32, 0, f, 1, 1.0f);
}

clttt_status ttt_state_reset(ttt_state *state, const kernel_set *kernels, const clttt_model *model) {
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  for (int i = 0; i < state->layer_count; i++) {
    if (!state->layers[i].fast_weight)
      continue;
    /* The layer's own device, through its part's kernels. */
    const int part = model->layers[i].part;
    CLTTT_TRY(load_fast_weight(&kernels[part], &state->layers[i], &model->layers[i].down,
                               state->workspaces[part].scratch, d, f));
  }
  state->pending = 0;
  return CLTTT_SUCCESS;
}

clttt_status ttt_down_projection(ttt_state *state, const kernel_set *kernels, const clttt_model *model,
                                 int index, int n, matrix_view h, matrix_view targets, matrix_view out) {
  const layer_weights *weights = &model->layers[index];
  ttt_layer_state *layer_state = &state->layers[index];
  ttt_workspace *workspace = &state->workspaces[weights->part];
  const size_t d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  const int C = state->C;
  const ttt_layer layer = {(int)d,
                           (int)f,
                           C,
                           state->eta,
                           weights->ttt_conv,
                           weights->ttt_proj,
                           state->clip_tau,
                           weights->ttt_proj_packed ? &weights->ttt_proj_layout : NULL,
                           workspace->scratch,
                           layer_state->in_panels ? &layer_state->panels : NULL};
  const clttt_device *device = kernels->device;

  int pending = state->pending;
  for (int row = 0; row < n;) {
    int piece = n - row < C - pending ? n - row : C - pending;
    matrix_view piece_h = view(h.buffer, h.offset + (size_t)row * h.ld, h.ld);
    matrix_view piece_t = view(targets.buffer, targets.offset + (size_t)row * targets.ld, targets.ld);
    /* out (piece x d) += h (piece x f) W^T with W before this chunk's update */
    CLTTT_TRY(ttt_apply(kernels, &layer, layer_state->fast_weight, (size_t)piece, piece_h, 1.0f,
                        view(out.buffer, out.offset + (size_t)row * out.ld, out.ld)));
    if (pending == 0 && piece == C) {
      /* A whole chunk inside this batch: update straight from its rows. */
      CLTTT_TRY(ttt_update(kernels, &layer, workspace, layer_state->fast_weight, piece_h, piece_t));
    } else {
      /* Rows are contiguous (ld = width) in every caller: one copy each. */
      CLTTT_TRY(runtime_copy(device, layer_state->pending_h, (size_t)pending * f * sizeof(float), piece_h.buffer,
                             piece_h.offset * sizeof(float), (size_t)piece * f * sizeof(float), "pending h rows"));
      CLTTT_TRY(runtime_copy(device, layer_state->pending_t, (size_t)pending * d * sizeof(float), piece_t.buffer,
                             piece_t.offset * sizeof(float), (size_t)piece * d * sizeof(float), "pending t rows"));
      if (pending + piece == C)
        CLTTT_TRY(ttt_update(kernels, &layer, workspace, layer_state->fast_weight,
                             view(layer_state->pending_h, 0, f), view(layer_state->pending_t, 0, d)));
    }
    pending = (pending + piece) % C;
    row += piece;
  }
  return CLTTT_SUCCESS;
}

void ttt_state_advance(ttt_state *state, int n) {
  if (state->C > 0)
    state->pending = (state->pending + n) % state->C;
}
