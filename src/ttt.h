/* In-Place TTT on the device (SPEC.md sections 3-4): the fast weight W of a
 * layer's down-projection is applied to each chunk of C tokens, then moved by
 * W += eta * V^T h, with V = conv(t) P the LM-aligned target. */
#ifndef CLTTT_TTT_H
#define CLTTT_TTT_H

#include "gemm.h"
#include "weights.h"

/* What a TTT layer needs from the checkpoint, and the step parameters. */
typedef struct {
  int d, f;          /* hidden and intermediate sizes */
  int C;             /* chunk size */
  float eta;         /* step size */
  cl_mem conv;       /* d x 5: ttt_conv.weight */
  cl_mem projection; /* d x d: ttt_proj.weight, or NULL without ttt_proj */
  float clip_tau;    /* > 0: each update scaled to Frobenius norm at most tau; 0: off */
  /* NULL: projection holds P row-major (CLBlast's tc P); else it holds P^T
   * in these panels of our GEMM (weights.c, load_projection). */
  const packed_gemm_layout *projection_packed;
  /* A ttt_workspace's scratch, or NULL. With it and a row-major W, the
   * apply of batches of at least TTT_APPLY_PACKED_ROWS rows packs W there
   * and multiplies through our GEMM where the device's parameters choose
   * it (GEMM_PACKED), and the update packs V and h there for our one-pass
   * update kernel (UPDATE_PACKED); with W in panels, only the update packs
   * its operands there. The apply's GEMM is enqueued before the update
   * reuses the room, and the queue is in order. */
  cl_mem scratch;
  /* NULL: the fast weight W is d x f row-major. Else W lies in these fp32
   * panels of the kernel set's GEMM (ttt_fast_weight_panels): the apply
   * multiplies by it as it is and the update adds into it there, with no
   * copy of W per chunk (scratch must be set). */
  const packed_gemm_layout *fast_weight_panels;
} ttt_layer;

/* Rows from which packing W (d x f reads and writes) costs less than the
 * GEMM it speeds up: about 30 on PoCL, where CLBlast's NT product ran at a
 * quarter of our kernel's rate. */
#define TTT_APPLY_PACKED_ROWS 64

/* Device scratch for one update: two C x d matrices and, with clipping,
 * the update itself (it must be whole before its norm is known), its row
 * sums of squares and the scale. */
typedef struct {
  cl_mem conv_out; /* tc: C x d */
  cl_mem targets;  /* V:  C x d */
  cl_mem update;   /* U = eta V^T h: d x f, only with clipping */
  cl_mem row_sums; /* d, only with clipping */
  cl_mem scale;    /* 1 float, only with clipping */
  cl_mem scratch;  /* the larger of W packed for the apply ((d + 256) x (f + 256) floats, room for
                      any panel width and k padding) and the update's packed V and h
                      (packed_gemm_update_scratch_bytes) */
  int C, d;
} ttt_workspace;

/* Bytes ttt_workspace_create allocates. */
uint64_t ttt_workspace_bytes(int C, int d, int f, int clipping);
clttt_status ttt_workspace_create(const clttt_device *device, ttt_workspace *workspace, int C, int d, int f,
                                  int clipping);
void ttt_workspace_free(ttt_workspace *workspace);

/* out (rows x d) = beta * out + h (rows x f) W^T: the chunk's output with
 * the weights before its own update (beta 1 adds it into a residual
 * stream; beta 0 never reads out). */
clttt_status ttt_apply(const kernel_set *kernels, const ttt_layer *layer, cl_mem W, size_t rows,
                       matrix_view h, float beta, matrix_view out);

/* W (d x f) += eta * V^T (d x C) h (C x f): the update's product alone,
 * through our update kernel where UPDATE_OWN chooses it (and the kernel set
 * has the packed kernels), else CLBlast. `scratch` (NULL, or at least
 * packed_gemm_update_scratch_bytes) lets that kernel pack V and h first. */
clttt_status ttt_update_product(const kernel_set *kernels, const char *what, size_t d, size_t f, size_t C, float eta,
                                matrix_view V, matrix_view h, matrix_view W, cl_mem scratch);

/* W (d x f) += eta * V^T h over one full chunk: h is C x f, t is C x d.
 * With layer->clip_tau > 0 the update is scaled by min(1, tau / ||U||_F)
 * first (the workspace must have been created with clipping). */
clttt_status ttt_update(const kernel_set *kernels, const ttt_layer *layer, ttt_workspace *workspace,
                        cl_mem W, matrix_view h, matrix_view t);

/* The parallel (prefix) form over a whole sequence of n rows, for splitting a
 * long prefill across devices: chunks are grouped into ranges of
 * chunks_per_range; each range's update sum eta * V_range^T h_range is one
 * product, the weights entering range r are W0 plus the exclusive prefix
 * sum over earlier ranges, and inside a range chunks go in order. Rows of a
 * final partial chunk are applied without an update, as in the sequential
 * form. W0 is not modified; W_final (d x f, may be NULL) receives the weights
 * after the sequence. out: n x d, h: n x f, t: n x d. Memory: one d x f matrix
 * per range. */
clttt_status ttt_prefix_form(const kernel_set *kernels, const ttt_layer *layer, cl_mem W0, int n,
                             cl_mem h, cl_mem t, int chunks_per_range, cl_mem out, cl_mem W_final);

/* The sequential form over a whole sequence (the reference for the prefix
 * form and the benchmarks): one running W, updated after every full chunk.
 * W is modified in place. */
clttt_status ttt_sequential_form(const kernel_set *kernels, const ttt_layer *layer, cl_mem W, int n,
                                 cl_mem h, cl_mem t, cl_mem out);

/* The layout of a fast weight on this kernel set's device, in the layout
 * its apply and update kernels need: 1 and the GEMM's fp32 panels where the
 * device runs our CPU GEMM and update kernels (GEMM_PACKED, UPDATE_OWN) and
 * d fills whole panels (every Qwen3 and LLaMA shape: W then takes d x f
 * floats either way, and no padding lanes exist); 0 (row-major, packed by
 * the apply per chunk) elsewhere, GPUs included, whose update kernel writes
 * rows. */
int ttt_fast_weight_panels(const kernel_set *kernels, int d, int f, packed_gemm_layout *layout);
/* The same choice from a device's parameters alone (the tuner's). */
int ttt_fast_weight_in_panels(const tuning_params *params, int d);

/* ---- The streaming state of one session (SPEC.md section 4) -----------
 * Per TTT layer: the fast weight W (d x f floats, in the layout
 * ttt_fast_weight_panels chooses for the layer's device: the GEMM's panels
 * or row-major) and the h and t rows of the chunk not yet complete. Every
 * TTT layer has seen the same tokens, so one count of pending rows serves
 * them all. Session files store W row-major whatever its layout here. */
typedef struct {
  cl_mem fast_weight; /* W: d x f, starts as W_down */
  int in_panels;      /* 1: W is in `panels`; 0: row-major */
  packed_gemm_layout panels;
  cl_mem pending_h;   /* C x f: h rows of the unfinished chunk */
  cl_mem pending_t;   /* C x d: target rows of the unfinished chunk */
} ttt_layer_state;

typedef struct {
  int layer_count;          /* the model's layers; buffers only in TTT layers, on the layer's device */
  ttt_layer_state *layers;
  ttt_workspace *workspaces; /* one per model part (device); allocated only in parts with TTT layers */
  int workspace_count;
  int C;
  float eta;
  float clip_tau;           /* 0: no clipping */
  int pending;              /* rows of the unfinished chunk */
} ttt_state;

/* Device bytes ttt_state_create allocates for `config` with chunk C. */
uint64_t ttt_state_bytes(const clttt_config *config, int C, float clip_tau);
/* The share of the layers first_layer .. first_layer + layer_count - 1 (one
 * device of a split): their fast weights and pending rows, and a workspace
 * when they include a TTT layer. */
uint64_t ttt_state_range_bytes(const clttt_config *config, int C, float clip_tau, int first_layer, int layer_count);
/* Allocates the state of every TTT layer of `model` on that layer's device
 * and sets W = W_down. kernels: one set per model part, in part order (the
 * session's); so in ttt_state_reset. */
clttt_status ttt_state_create(ttt_state *state, const kernel_set *kernels, const clttt_model *model, int C,
                              float eta, float clip_tau);
void ttt_state_free(ttt_state *state);
/* W = W_down in every TTT layer, no pending rows (a document boundary). */
clttt_status ttt_state_reset(ttt_state *state, const kernel_set *kernels, const clttt_model *model);

/* The down-projection of TTT layer `index` over n rows (h: n x f, targets:
 * n x d), added into out (n x d, the residual stream), cut at chunk boundaries: each piece is applied
 * with the current W, appended to the pending rows, and a completed chunk
 * updates W before the next piece. Leaves state->pending as it was: every
 * TTT layer of the batch starts from the same count (ttt_state_advance). */
clttt_status ttt_down_projection(ttt_state *state, const kernel_set *kernels, const clttt_model *model,
                                 int index, int n, matrix_view h, matrix_view targets, matrix_view out);
/* After a batch of n rows has gone through every layer. */
void ttt_state_advance(ttt_state *state, int n);

#endif
