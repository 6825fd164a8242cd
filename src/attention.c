/* The two attention paths and the rule between them. */
#include <math.h>

#include "attention.h"
#include "error.h"
#include "gemm.h"

/* What bounds the GEMM attention path's score workspace (heads x block rows
 * x context floats): a fixed 64 MiB per session, so the block shrinks as the
 * context grows; 64 MiB holds a full 512-row batch of 8 heads at 4096
 * tokens. A single row over the budget (heads x context > 16 Mi floats) is
 * still allocated: one row is the least the path can work with. */
#define ATTENTION_SCORE_BUDGET_BYTES ((uint64_t)64 << 20)

int attention_block_rows(int heads, int context, int batch) {
  uint64_t row_bytes = (uint64_t)heads * (uint64_t)(context > 0 ? context : 1) * sizeof(float);
  uint64_t rows = ATTENTION_SCORE_BUDGET_BYTES / row_bytes;
  if (rows > (uint64_t)batch)
    rows = (uint64_t)batch;
  return rows < 1 ? 1 : (int)rows;
}

uint64_t attention_score_floats(int heads, int context, int batch) {
  return (uint64_t)heads * (uint64_t)attention_block_rows(heads, context, batch) * (uint64_t)context;
}

/* GQA by offsets: query head h's products read kv head h / group straight
 * from a float cache with its leading dimension, so no reordered copy of Q,
 * K or V is made. One CLBlastSgemmBatched per product (offset arrays over
 * the heads) measured 1.1-1.3x slower than this loop of plain GEMMs on PoCL
 * (512 queries over 1536-4096 keys, 8 heads of 64), so the loop stays. A
 * block of queries only needs the keys up to its last query, so the products
 * shrink with the causal mask instead of covering the whole context every
 * time. CLBlast multiplies floats: a half cache's kv head is widened into
 * `keys_float` / `values_float` (keys x head_dim each) before its group's
 * products, O(keys x head_dim) next to their O(rows x keys x head_dim). */
clttt_status attention_gemm(const kernel_set *kernels, const attention_problem *problem, cl_mem scores,
                            int block_rows, cl_mem keys_float, cl_mem values_float) {
  if (block_rows < 1 || problem->heads < 1 || problem->kv_heads < 1 || problem->heads % problem->kv_heads != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention: %d block rows, %d heads, %d kv heads", block_rows,
                      problem->heads, problem->kv_heads);
  if (kernels->kv_half && (!keys_float || !values_float))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention: a half cache through CLBlast needs float buffers");
  clttt_device *device = kernels->device;
  const int group = problem->heads / problem->kv_heads, half = kernels->kv_half;
  const size_t head_dim = (size_t)problem->head_dim, q_width = (size_t)problem->heads * head_dim;
  const size_t cache_ld = half ? head_dim : (size_t)problem->kv_dim;
  const float scale = 1.0f / sqrtf((float)problem->head_dim);
  for (int row0 = 0; row0 < problem->n; row0 += block_rows) {
    const int rows = problem->n - row0 < block_rows ? problem->n - row0 : block_rows;
    const int first_position = problem->position0 + row0;
    const int keys = first_position + rows;
    const size_t head_scores = (size_t)rows * (size_t)keys;
    for (int g = 0; g < problem->kv_heads; g++) {
      /* K_g (keys x head_dim): the float cache's columns, or the widened copy */
      matrix_view k_g = view(problem->k_cache, (size_t)g * head_dim, cache_ld);
      if (half) {
        CLTTT_TRY(op_attention_pack_head_rows(kernels, keys_float, problem->k_cache, problem, g, keys));
        k_g = view(keys_float, 0, head_dim);
      }
      for (int h = g * group; h < (g + 1) * group; h++)
        /* scores_h (rows x keys) = scale Q_h (rows x head_dim) K_g^T */
        CLTTT_TRY(gemm(device, "attention scores", GEMM_NO_TRANSPOSE, GEMM_TRANSPOSE, (size_t)rows, (size_t)keys,
                       head_dim, scale,
                       view(problem->q, (size_t)row0 * (size_t)problem->q_ld + (size_t)h * head_dim,
                            (size_t)problem->q_ld),
                       k_g, 0.0f, view(scores, (size_t)h * head_scores, (size_t)keys)));
    }
    CLTTT_TRY(op_causal_softmax_rows(kernels, scores, rows * problem->heads, keys, keys, rows, first_position));
    for (int g = 0; g < problem->kv_heads; g++) {
      matrix_view v_g = view(problem->v_cache, (size_t)g * head_dim, cache_ld);
      if (half) {
        CLTTT_TRY(op_attention_pack_head_rows(kernels, values_float, problem->v_cache, problem, g, keys));
        v_g = view(values_float, 0, head_dim);
      }
      for (int h = g * group; h < (g + 1) * group; h++)
        /* out_h (rows x head_dim) = P_h (rows x keys) V_g (keys x head_dim) */
        CLTTT_TRY(gemm(device, "attention values", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE, (size_t)rows, head_dim,
                       (size_t)keys, 1.0f, view(scores, (size_t)h * head_scores, (size_t)keys), v_g, 0.0f,
                       view(problem->out, (size_t)row0 * q_width + (size_t)h * head_dim, q_width)));
    }
  }
  return CLTTT_SUCCESS;
}

uint64_t attention_panel_floats(int context, int head_dim) {
  return ((uint64_t)context + 256) * ((uint64_t)head_dim + 256);
}

clttt_status attention_packed(const kernel_set *kernels, const attention_problem *problem,
                              const attention_workspace *workspace) {
  if (!kernels->has_packed || !workspace->packed_keys || !workspace->packed_values)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention: the packed path without its kernels or panels");
  const int group = problem->heads / problem->kv_heads, block_rows = workspace->block_rows;
  const size_t head_dim = (size_t)problem->head_dim, q_width = (size_t)problem->heads * head_dim;
  const size_t kv_dim = (size_t)problem->kv_dim;
  const packed_gemm_type cache_type = kernels->kv_half ? PACKED_GEMM_F16 : PACKED_GEMM_F32;
  const float scale = 1.0f / sqrtf((float)problem->head_dim);
  const packed_gemm_kernels *packed = &kernels->packed;
  for (int row0 = 0; row0 < problem->n; row0 += block_rows) {
    const int rows = problem->n - row0 < block_rows ? problem->n - row0 : block_rows;
    const int first_position = problem->position0 + row0;
    const size_t keys = (size_t)first_position + (size_t)rows, head_scores = (size_t)rows * keys;
    packed_gemm_layout key_layout, value_layout;
    CLTTT_TRY(packed_gemm_layout_for(&packed->params, PACKED_GEMM_F32, keys, head_dim, &key_layout));
    CLTTT_TRY(packed_gemm_layout_for(&packed->params, PACKED_GEMM_F32, head_dim, keys, &value_layout));
    for (int g = 0; g < problem->kv_heads; g++) {
      /* K_g (keys x head_dim) scaled, as the weight of scores = Q_h K_g^T */
      CLTTT_TRY(packed_gemm_pack_device(packed, "attention keys", &key_layout, workspace->packed_keys, 0,
                                        problem->k_cache, cache_type, (size_t)g * head_dim, kv_dim, 1, scale));
      for (int h = g * group; h < (g + 1) * group; h++)
        /* scores_h (rows x keys) = Q_h (rows x head_dim) (scale K_g)^T */
        CLTTT_TRY(packed_gemm_run(packed, "attention scores", &key_layout, (size_t)rows,
                                  view(problem->q, (size_t)row0 * (size_t)problem->q_ld + (size_t)h * head_dim,
                                       (size_t)problem->q_ld),
                                  workspace->packed_keys, 0, 0.0f,
                                  view(workspace->scores, (size_t)h * head_scores, keys)));
    }
    CLTTT_TRY(op_causal_softmax_rows(kernels, workspace->scores, rows * problem->heads, (int)keys, (int)keys, rows,
                                     first_position));
    for (int g = 0; g < problem->kv_heads; g++) {
      /* V_g^T (head_dim x keys): element (c, key) = V[key][g * head_dim + c] */
      CLTTT_TRY(packed_gemm_pack_device(packed, "attention values", &value_layout, workspace->packed_values, 0,
                                        problem->v_cache, cache_type, (size_t)g * head_dim, 1, kv_dim, 1.0f));
      for (int h = g * group; h < (g + 1) * group; h++)
        /* out_h (rows x head_dim) = P_h (rows x keys) (V_g^T)^T */
        CLTTT_TRY(packed_gemm_run(packed, "attention values", &value_layout, (size_t)rows,
                                  view(workspace->scores, (size_t)h * head_scores, keys), workspace->packed_values, 0,
                                  0.0f, view(problem->out, (size_t)row0 * q_width + (size_t)h * head_dim, q_width)));
    }
  }
  return CLTTT_SUCCESS;
}

clttt_status attention_tiles(const kernel_set *kernels, const attention_problem *problem,
                             const attention_workspace *workspace) {
  if (!workspace->packed_keys || !workspace->packed_values || problem->head_dim % 16 != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "attention: the tile path needs K and V panels and head_dim %d %% 16 == 0", problem->head_dim);
  const int keys = problem->position0 + problem->n;
  for (int g = 0; g < problem->kv_heads; g++) {
    CLTTT_TRY(op_attention_tiles_pack_keys(kernels, workspace->packed_keys, problem, g, keys));
    CLTTT_TRY(op_attention_pack_head_rows(kernels, workspace->packed_values, problem->v_cache, problem, g, keys));
    CLTTT_TRY(op_attention_tiles(kernels, problem, workspace->packed_keys, workspace->packed_values, g));
  }
  return CLTTT_SUCCESS;
}

clttt_status attention_long_batch(const kernel_set *kernels, const attention_problem *problem,
                                  const attention_workspace *workspace) {
  /* The register tiles where the device's parameters choose them
   * (ATTENTION_TILES), else our GEMM where they choose it for weights too
   * (GEMM_PACKED: measured faster than CLBlast there), else CLBlast; all on
   * the cache as it is. */
  if (kernels->params.attention_tiles && problem->head_dim % 16 == 0 && workspace->packed_keys &&
      workspace->packed_values)
    return attention_tiles(kernels, problem, workspace);
  if (kernels->params.gemm_packed && kernels->has_packed && workspace->packed_keys)
    return attention_packed(kernels, problem, workspace);
  return attention_gemm(kernels, problem, workspace->scores, workspace->block_rows, workspace->packed_keys,
                        workspace->packed_values);
}

/* The split kernels' ranges for n queries: at most ATTENTION_DECODE_SPLITS
 * / n of at least the device's ATTENTION_DECODE_KEYS keys each, so that the
 * states of every (query, range, head) fit the decode workspace. */
static clttt_status split_attention(const kernel_set *kernels, const attention_problem *problem,
                                    const attention_workspace *workspace) {
  const int keys = problem->position0 + problem->n, most = ATTENTION_DECODE_SPLITS / problem->n;
  int split_keys = (keys + most - 1) / most;
  if (split_keys < kernels->params.attention_decode_keys)
    split_keys = kernels->params.attention_decode_keys;
  return op_attention_decode(kernels, problem, workspace->decode_partials, split_keys,
                             (keys + split_keys - 1) / split_keys);
}

clttt_status attention_short_batch(const kernel_set *kernels, const attention_problem *problem,
                                   const attention_workspace *workspace) {
  if (workspace->decode_partials &&
      (problem->n == 1 || (kernels->params.attention_short_split && problem->n <= ATTENTION_DECODE_SPLITS)))
    return split_attention(kernels, problem, workspace);
  return op_attention(kernels, problem);
}

clttt_status attention_forward(const kernel_set *kernels, const attention_problem *problem,
                               const attention_workspace *workspace) {
  /* The flash kernel or the split ones walk all keys of a query serially:
   * fine for decode and short batches, while long prefills run far faster
   * as GEMMs or register tiles (README, Tuning: ATTENTION_GEMM_MIN_QUERIES). */
  int threshold = kernels->params.attention_gemm_min_queries;
  if (problem->n == 1 || threshold <= 0 || problem->n < threshold)
    return attention_short_batch(kernels, problem, workspace);
  /* The batch's own value rows decide first: earlier ones are visible to
   * every query of the batch, so a NaN there reaches them all on any
   * long-batch path, while a masked key past a query would carry a NaN back
   * to it as 0 * NaN. */
  const size_t first = (size_t)problem->position0 * (size_t)problem->kv_dim;
  const size_t count = (size_t)problem->n * (size_t)problem->kv_dim;
  int nonfinite = 0;
  CLTTT_TRY(kernels->kv_half
                ? op_count_nonfinite_half(kernels, problem->v_cache, first, count, workspace->counter, &nonfinite)
                : op_count_nonfinite(kernels, problem->v_cache, first, count, workspace->counter, &nonfinite));
  if (nonfinite != 0)
    return attention_short_batch(kernels, problem, workspace);
  return attention_long_batch(kernels, problem, workspace);
}
