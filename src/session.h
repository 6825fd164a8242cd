/* A session (struct clttt_session): the state of one sequence on one model.
 * Its buffers are sized once, at creation, from its parameters, and the
 * memory cost model (clttt_estimate_session_bytes) is the sum of the same
 * sizes. */
#ifndef CLTTT_SESSION_H
#define CLTTT_SESSION_H

#include "ops.h"
#include "ttt.h"
#include "weights.h"

struct clttt_session {
  clttt_model *model;
  clttt_session_params params; /* as given, with the checkpoint's values filled in */
  int uses_ttt;                /* TTT on and the model has TTT layers */
  kernel_set kernels;          /* this session's own kernel objects */
  int position;
  /* The tokens fed so far (position of them), for session files and
   * clttt_session_tokens; grown before a feed touches the device, so that
   * appending never fails half-way. */
  int32_t *history;
  int history_capacity;
  int batch_capacity;          /* rows per batch of the forward pass */
  int logits_rows;             /* rows the logits buffer holds */
  cl_mem *k_cache;             /* per layer: context x kv_dim */
  cl_mem *v_cache;
  ttt_state ttt;               /* the TTT layers' fast weights and pending rows */
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
  cl_mem logits;      /* logits_rows x vocab */
  cl_mem counter;     /* one int: the non-finite count of op_count_nonfinite */
};

/* Room for `more` tokens after the position in the history. */
clttt_status session_reserve_history(clttt_session *session, int more);
/* A new session of `model` with parameters already resolved by another
 * session (clttt_session_get_params): the same buffers, the same batching,
 * hence the same logits. */
clttt_status session_create_resolved(clttt_session **session, clttt_model *model,
                                     const clttt_session_params *resolved);

#endif
