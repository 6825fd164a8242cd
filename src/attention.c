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
 * from the cache with its leading dimension, so no reordered copy of Q, K or
 * V is made. One CLBlastSgemmBatched per product (offset arrays over the
 * heads) measured 1.1-1.3x slower than this loop of plain GEMMs on PoCL (512
 * queries over 1536-4096 keys, 8 heads of 64), so the loop stays. A block of
 * queries only needs the keys up to its last query, so the products shrink
 * with the causal mask instead of covering the whole context every time. */
clttt_status attention_gemm(const kernel_set *kernels, const attention_problem *problem, cl_mem scores,
                            int block_rows) {
  if (block_rows < 1 || problem->heads < 1 || problem->kv_heads < 1 || problem->heads % problem->kv_heads != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention: %d block rows, %d heads, %d kv heads", block_rows,
                      problem->heads, problem->kv_heads);
  clttt_device *device = kernels->device;
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
    CLTTT_TRY(op_causal_softmax_rows(kernels, scores, rows * problem->heads, keys, keys, rows, first_position));
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

clttt_status attention_forward(const kernel_set *kernels, const attention_problem *problem,
                               const attention_workspace *workspace) {
  /* The flash kernel walks all keys serially per query: fine for decode and
   * short batches, while long prefills run far faster as GEMMs (README,
   * Tuning: ATTENTION_GEMM_MIN_QUERIES). */
  if (problem->n == 1 && workspace->decode_partials) {
    const int keys = problem->position0 + 1;
    int split_keys = (keys + ATTENTION_DECODE_SPLITS - 1) / ATTENTION_DECODE_SPLITS;
    if (split_keys < ATTENTION_DECODE_MIN_KEYS)
      split_keys = ATTENTION_DECODE_MIN_KEYS;
    return op_attention_decode(kernels, problem, workspace->decode_partials, split_keys,
                               (keys + split_keys - 1) / split_keys);
  }
  int threshold = kernels->params.attention_gemm_min_queries;
  if (threshold <= 0 || problem->n < threshold)
    return op_attention(kernels, problem);
  attention_problem widened = *problem;
  if (kernels->kv_half) {
    /* CLBlast multiplies floats: the keys this batch sees, widened once per
     * layer (O(context x kv_dim), small next to the products). */
    const size_t count = (size_t)(problem->position0 + problem->n) * (size_t)problem->kv_dim;
    CLTTT_TRY(op_half_to_float(kernels, workspace->k_float, problem->k_cache, 0, count));
    CLTTT_TRY(op_half_to_float(kernels, workspace->v_float, problem->v_cache, 0, count));
    widened.k_cache = workspace->k_float;
    widened.v_cache = workspace->v_float;
  }
  /* The batch's own value rows: earlier ones are visible to every query of
   * the batch, so a NaN there reaches them all on either path. */
  int nonfinite = 0;
  CLTTT_TRY(op_count_nonfinite(kernels, widened.v_cache, (size_t)problem->position0 * (size_t)problem->kv_dim,
                               (size_t)problem->n * (size_t)problem->kv_dim, workspace->counter, &nonfinite));
  if (nonfinite == 0)
    return attention_gemm(kernels, &widened, workspace->scores, workspace->block_rows);
  return op_attention(kernels, problem);
}
