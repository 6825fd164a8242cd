/* Attention over a layer's K/V cache: the flash kernel (op_attention: short
 * pieces), the split decode kernels (one query, or a short piece where the
 * device chooses them) or, for long prefill
 * batches, register tiles (cl/attention_tiles.cl) or products through GEMMs
 * with a causal softmax between them. The rule that picks one lives here,
 * and so do the sizes of the long-batch workspace, which the session's
 * memory cost model counts. */
#ifndef CLTTT_ATTENTION_H
#define CLTTT_ATTENTION_H

#include "ops.h"

/* Queries in blocks of at most block_rows: per head scores = scale Q K^T and
 * out = P V by CLBlast, the causal softmax between them by
 * op_causal_softmax_rows. `scores` holds heads * block_rows * (position0 + n)
 * floats. With a half cache (kernels->kv_half) each kv head's K and V are
 * widened into keys_float / values_float first (position0 + n rows of
 * head_dim floats each); with a float cache those may be NULL. */
clttt_status attention_gemm(const kernel_set *kernels, const attention_problem *problem, cl_mem scores,
                            int block_rows, cl_mem keys_float, cl_mem values_float);

/* Decode's one query: its keys in at most this many ranges of at least the
 * device's ATTENTION_DECODE_KEYS (tuning.h), a workspace of heads x 64 x
 * (head_dim + 2) floats whatever the context. A short batch of n queries
 * through the same kernels gets at most 64 / n ranges each, in the same
 * workspace. */
#define ATTENTION_DECODE_SPLITS 64
/* Floats of the decode workspace: heads x ranges x (head_dim + 2) states
 * (queries x ranges at most ATTENTION_DECODE_SPLITS). */
#define ATTENTION_DECODE_FLOATS(heads, head_dim) \
  ((uint64_t)(heads) * ATTENTION_DECODE_SPLITS * ((uint64_t)(head_dim) + 2))

/* What one session's attention needs besides the problem. */
typedef struct {
  cl_mem decode_partials; /* ATTENTION_DECODE_FLOATS(heads, head_dim) */
  cl_mem scores;    /* the GEMM path's heads x block_rows x context scores */
  int block_rows;
  cl_mem counter;   /* one int: op_count_nonfinite's */
  /* One kv head's K and V for the long-batch paths, attention_panel_floats
   * each: panels of our packed GEMM (GEMM_PACKED), the register tiles' K
   * blocks and V rows, or a half cache's head widened for CLBlast. */
  cl_mem packed_keys, packed_values;
} attention_workspace;

/* Floats of one packed K (or V^T) of one kv head for `context` keys: room
 * for any panel width and k padding a parameter set allows (<= 256). */
uint64_t attention_panel_floats(int context, int head_dim);

/* The same products through our packed GEMM: per kv head its K (scaled)
 * and V^T packed on the device into the workspace's panels, reading a half
 * cache as it is. */
clttt_status attention_packed(const kernel_set *kernels, const attention_problem *problem,
                              const attention_workspace *workspace);

/* The same attention in one pass (cl/attention_tiles.cl, ATTENTION_TILES):
 * per kv head its K (scaled) and V packed into the workspace's panels, then a
 * work-item per ATTENTION_TILE_SHARE register tiles of ATTENTION_TILE_ROWS
 * queries of a head, sharing each key block, with the scores in registers;
 * no score matrix. head_dim must be a multiple of 16. */
clttt_status attention_tiles(const kernel_set *kernels, const attention_problem *problem,
                             const attention_workspace *workspace);

/* A long batch (ATTENTION_GEMM_MIN_QUERIES or more queries) by the path the
 * device's parameters choose: the register tiles (ATTENTION_TILES), our
 * packed GEMM (GEMM_PACKED) or CLBlast. The batch's V rows must be finite;
 * attention_forward checks. */
clttt_status attention_long_batch(const kernel_set *kernels, const attention_problem *problem,
                                  const attention_workspace *workspace);

/* A short batch: decode's one query, and where the device's parameters
 * choose it (ATTENTION_SHORT_SPLIT) up to ATTENTION_DECODE_SPLITS queries,
 * through the split kernels (op_attention_decode, into the workspace's
 * decode_partials); otherwise the flash kernel (op_attention). Both read
 * only the keys a query sees. */
clttt_status attention_short_batch(const kernel_set *kernels, const attention_problem *problem,
                                   const attention_workspace *workspace);

/* A short batch (below the device's ATTENTION_GEMM_MIN_QUERIES queries, 0:
 * always) by attention_short_batch, a long one by attention_long_batch,
 * except when a value row of the batch is not finite: the GEMM path
 * multiplies masked keys by zero, and 0 * NaN would reach queries before
 * it, so the short-batch kernels, which skip masked keys, take that
 * batch. */
clttt_status attention_forward(const kernel_set *kernels, const attention_problem *problem,
                               const attention_workspace *workspace);

/* Queries per block of the GEMM path for a session of `context` tokens and
 * batches of `batch` rows, and the floats of its score workspace. */
int attention_block_rows(int heads, int context, int batch);
uint64_t attention_score_floats(int heads, int context, int batch);

#endif
