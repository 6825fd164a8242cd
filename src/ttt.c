/* In-Place TTT: conv target, projection, apply, update, and the two forms. */
#include <stdio.h>
#include <stdlib.h>

#include "error.h"
#include "ttt.h"

clttt_status ttt_workspace_create(clttt_device *device, ttt_workspace *workspace, int C, int d) {
  workspace->C = C;
  workspace->d = d;
  workspace->conv_out = workspace->targets = NULL;
  size_t bytes = (size_t)C * d * sizeof(float);
  clttt_status status = runtime_alloc(device, bytes, "TTT conv output (C x d)", &workspace->conv_out);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, bytes, "TTT targets V (C x d)", &workspace->targets);
  if (status != CLTTT_SUCCESS)
    ttt_workspace_free(workspace);
  return status;
}

void ttt_workspace_free(ttt_workspace *workspace) {
  runtime_release(&workspace->conv_out);
  runtime_release(&workspace->targets);
}

clttt_status ttt_apply(clttt_device *device, const ttt_layer *layer, cl_mem W, size_t rows,
                       matrix_view h, matrix_view out) {
  /* out (rows x d) = h (rows x f) W^T, W: d x f */
  return gemm_linear(device, "TTT apply (h W^T)", rows, (size_t)layer->d, (size_t)layer->f, h,
                     view(W, 0, (size_t)layer->f), 0.0f, out);
}

/* tc (C x d) = conv(t) inside the chunk; V (C x d) = tc P, or tc without P. */
static clttt_status compute_targets(clttt_device *device, const ttt_layer *layer,
                                    ttt_workspace *workspace, matrix_view t, cl_mem *targets) {
  cl_kernel kernel = NULL;
  CLTTT_TRY(runtime_kernel(device, "ttt.cl", "ttt_conv", NULL, &kernel));
  /* A 64-bit offset: over a whole sequence (the two forms) row * d passes 2^31
   * floats after some 800k tokens at d = 2560. */
  cl_ulong t_offset = (cl_ulong)t.offset;
  int t_ld = (int)t.ld, rows = layer->C, d = layer->d;
  CLTTT_TRY(runtime_set_args(device, kernel, "ttt_conv", 7, sizeof(cl_mem), &workspace->conv_out,
                             sizeof(cl_mem), &t.buffer, sizeof(cl_ulong), &t_offset, sizeof(int), &t_ld,
                             sizeof(cl_mem), &layer->conv, sizeof(int), &rows, sizeof(int), &d));
  tuning_launch launch = tuning_launch_conv(&device->tuning, (size_t)d, (size_t)rows);
  CLTTT_TRY(runtime_launch(device, kernel, "ttt_conv", launch.dimensions, launch.global, launch.local));
  if (!layer->projection) {
    *targets = workspace->conv_out;
    return CLTTT_SUCCESS;
  }
  /* V (C x d) = tc (C x d) P (d x d), P used as stored (SPEC.md section 3.5) */
  CLTTT_TRY(gemm(device, "TTT target projection (tc P)", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE,
                 (size_t)rows, (size_t)d, (size_t)d, 1.0f, view(workspace->conv_out, 0, (size_t)d),
                 view(layer->projection, 0, (size_t)d), 0.0f, view(workspace->targets, 0, (size_t)d)));
  *targets = workspace->targets;
  return CLTTT_SUCCESS;
}

clttt_status ttt_update(clttt_device *device, const ttt_layer *layer, ttt_workspace *workspace,
                        cl_mem W, matrix_view h, matrix_view t) {
  cl_mem targets = NULL;
  CLTTT_TRY(compute_targets(device, layer, workspace, t, &targets));
  /* W (d x f) += eta * V^T (d x C) h (C x f) */
  return gemm(device, "TTT update (W += eta V^T h)", GEMM_TRANSPOSE, GEMM_NO_TRANSPOSE,
              (size_t)layer->d, (size_t)layer->f, (size_t)layer->C, layer->eta,
              view(targets, 0, (size_t)layer->d), h, 1.0f, view(W, 0, (size_t)layer->f));
}

clttt_status ttt_sequential_form(clttt_device *device, const ttt_layer *layer, cl_mem W, int n,
                                 cl_mem h, cl_mem t, cl_mem out) {
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  ttt_workspace workspace;
  CLTTT_TRY(ttt_workspace_create(device, &workspace, layer->C, layer->d));
  clttt_status status = CLTTT_SUCCESS;
  for (size_t row = 0; row < (size_t)n && status == CLTTT_SUCCESS; row += C) {
    size_t rows = (size_t)n - row < C ? (size_t)n - row : C;
    status = ttt_apply(device, layer, W, rows, view(h, row * f, f), view(out, row * d, d));
    if (status == CLTTT_SUCCESS && rows == C)
      status = ttt_update(device, layer, &workspace, W, view(h, row * f, f), view(t, row * d, d));
  }
  ttt_workspace_free(&workspace);
  return status;
}

/* The update sum of one range of whole chunks: delta (d x f) = eta * sum_k V_k^T h_k.
 * The conv must not cross chunk boundaries, so targets are built chunk by
 * chunk, but the sum over the range is accumulated with beta = 1. */
static clttt_status range_update_sum(clttt_device *device, const ttt_layer *layer,
                                     ttt_workspace *workspace, size_t first_row, size_t chunks,
                                     cl_mem h, cl_mem t, cl_mem delta) {
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  CLTTT_TRY(runtime_zero(device, delta, 0, d * f * sizeof(float), "TTT range update sum"));
  for (size_t k = 0; k < chunks; k++)
    CLTTT_TRY(ttt_update(device, layer, workspace, delta, view(h, (first_row + k * C) * f, f),
                         view(t, (first_row + k * C) * d, d)));
  return CLTTT_SUCCESS;
}

clttt_status ttt_prefix_form(clttt_device *device, const ttt_layer *layer, cl_mem W0, int n,
                             cl_mem h, cl_mem t, int chunks_per_range, cl_mem out, cl_mem W_final) {
  if (chunks_per_range < 1 || n < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "TTT prefix form: chunks_per_range %d, n %d",
                      chunks_per_range, n);
  const size_t C = (size_t)layer->C, d = (size_t)layer->d, f = (size_t)layer->f;
  const size_t full_chunks = (size_t)n / C;
  const size_t ranges = (full_chunks + (size_t)chunks_per_range - 1) / (size_t)chunks_per_range;
  const size_t matrix_bytes = d * f * sizeof(float);

  ttt_workspace workspace;
  CLTTT_TRY(ttt_workspace_create(device, &workspace, layer->C, layer->d));
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
      status = range_update_sum(device, layer, &workspace, first_chunk * C, chunks, h, t, deltas[r]);
  }
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, matrix_bytes, "TTT running weights (d x f)", &running);
  /* 2. Exclusive prefix over ranges: the weights entering range r are
   * W0 + sum_{r' < r} delta_r'; inside the range, chunks go in order. */
  if (status == CLTTT_SUCCESS)
    status = runtime_copy(device, running, 0, W0, 0, matrix_bytes, "TTT W0");
  cl_kernel add = NULL;
  if (status == CLTTT_SUCCESS)
    status = runtime_kernel(device, "elementwise.cl", "add_in_place", NULL, &add);
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
      status = ttt_apply(device, layer, inside, C, view(h, row * f, f), view(out, row * d, d));
      if (status == CLTTT_SUCCESS && k + 1 < chunks)
        status = ttt_update(device, layer, &workspace, inside, view(h, row * f, f), view(t, row * d, d));
    }
    runtime_release(&inside);
    int count = (int)(d * f);
    if (status == CLTTT_SUCCESS)
      status = runtime_set_args(device, add, "add_in_place", 3, sizeof(cl_mem), &running,
                                sizeof(cl_mem), &deltas[r], sizeof(int), &count);
    tuning_launch launch = tuning_launch_add(&device->tuning, d * f);
    if (status == CLTTT_SUCCESS)
      status = runtime_launch(device, add, "add_in_place", launch.dimensions, launch.global, launch.local);
  }
  /* 3. Rows of a final partial chunk: applied with the final weights, no update. */
  size_t tail_row = full_chunks * C;
  if (status == CLTTT_SUCCESS && tail_row < (size_t)n)
    status = ttt_apply(device, layer, running, (size_t)n - tail_row, view(h, tail_row * f, f),
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
