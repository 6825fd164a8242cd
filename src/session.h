/* A session (struct clttt_session): the state of one sequence on one model.
 * Its buffers are sized once, at creation, from its parameters, and the
 * memory cost model (clttt_estimate_session_bytes) is the sum of the same
 * sizes. */
#ifndef CLTTT_SESSION_H
#define CLTTT_SESSION_H

#include "attention.h"
#include "ops.h"
#include "ttt.h"
#include "weights.h"

/* What a session holds on one device of the model's split, batch_capacity
 * rows each. */
typedef struct {
  cl_mem tokens;      /* int32, the first part only */
  cl_mem x;           /* residual stream, n x d */
  cl_mem xn;          /* normalised, n x d */
  cl_mem embeddings;  /* input embeddings kept for ttt_target = input_embed, n x d */
  cl_mem qkv;         /* n x (q_dim + 2 kv_dim) */
  cl_mem attention;   /* n x q_dim */
  attention_workspace attention_work; /* the GEMM attention path's scores, widened K and V, counter */
  cl_mem gate_up;     /* n x 2f */
  cl_mem h;           /* n x f */
  cl_mem delta;       /* attention or MLP output before the residual add, n x d */
  cl_mem logits;      /* logits_rows x vocab, the last part only */
} session_part;

struct clttt_session {
  clttt_model *model;
  clttt_session_params params; /* as given, with the checkpoint's values filled in */
  int uses_ttt;                /* TTT on and the model has TTT layers */
  /* Per model part (device), in layer order: this session's own kernel
   * objects, made from that device's tuned parameters, and its buffers. */
  kernel_set *kernels;
  session_part *parts;
  int part_count;
  int position;
  /* The tokens fed so far (position of them), for session files and
   * clttt_session_tokens; grown before a feed touches the device, so that
   * appending never fails half-way. */
  int32_t *history;
  int history_capacity;
  int batch_capacity;          /* rows per batch of the forward pass */
  int logits_rows;             /* rows the logits buffer holds */
  cl_mem *k_cache;             /* per layer, on the layer's device: context x kv_dim */
  cl_mem *v_cache;
  ttt_state ttt;               /* the TTT layers' fast weights and pending rows */
  /* Host memory the activations cross between devices through, and a
   * slice's rows are rearranged in (batch x d floats; NULL on one device of
   * a whole model), and how many bytes have crossed between devices. */
  float *staging;
  uint64_t bytes_moved;
};

/* Device memory of a session with resolved `params` on one device of a
 * split holding layers first_layer .. first_layer + layer_count - 1 (and
 * the token ids with has_embedding, the logits with has_head); over one
 * part of all layers, what clttt_estimate_session_bytes gives. */
uint64_t session_part_bytes(const clttt_config *config, const clttt_session_params *resolved, int first_layer,
                            int layer_count, int has_embedding, int has_head);
/* `given` (NULL: the defaults) with every "0 = the checkpoint's" filled in, checked. */
clttt_status session_resolve_params(const clttt_config *config, const clttt_session_params *given,
                                    clttt_session_params *resolved);
/* Waits for every part's queue. */
clttt_status session_finish(const clttt_session *session);

/* Room for `more` tokens after the position in the history. */
clttt_status session_reserve_history(clttt_session *session, int more);
/* A new session of `model` with parameters already resolved by another
 * session (clttt_session_get_params): the same buffers, the same batching,
 * hence the same logits. */
clttt_status session_create_resolved(clttt_session **session, clttt_model *model,
                                     const clttt_session_params *resolved);

#endif
