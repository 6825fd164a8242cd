/* In-Place TTT on the device (SPEC.md sections 3-4): the fast weight W of a
 * layer's down-projection is applied to each chunk of C tokens, then moved by
 * W += eta * V^T h, with V = conv(t) P the LM-aligned target. */
#ifndef CLTTT_TTT_H
#define CLTTT_TTT_H

#include "gemm.h"

/* What a TTT layer needs from the checkpoint, and the step parameters. */
typedef struct {
  int d, f;          /* hidden and intermediate sizes */
  int C;             /* chunk size */
  float eta;         /* step size */
  cl_mem conv;       /* d x 5: ttt_conv.weight */
  cl_mem projection; /* d x d: ttt_proj.weight, or NULL without ttt_proj */
} ttt_layer;

/* Device scratch for one update: two C x d matrices. */
typedef struct {
  cl_mem conv_out; /* tc: C x d */
  cl_mem targets;  /* V:  C x d */
  int C, d;
} ttt_workspace;

clttt_status ttt_workspace_create(clttt_device *device, ttt_workspace *workspace, int C, int d);
void ttt_workspace_free(ttt_workspace *workspace);

/* out (rows x d) = h (rows x f) W^T: the chunk's output with the weights
 * before its own update. */
clttt_status ttt_apply(clttt_device *device, const ttt_layer *layer, cl_mem W, size_t rows,
                       matrix_view h, matrix_view out);

/* W (d x f) += eta * V^T h over one full chunk: h is C x f, t is C x d. */
clttt_status ttt_update(clttt_device *device, const ttt_layer *layer, ttt_workspace *workspace,
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
clttt_status ttt_prefix_form(clttt_device *device, const ttt_layer *layer, cl_mem W0, int n,
                             cl_mem h, cl_mem t, int chunks_per_range, cl_mem out, cl_mem W_final);

/* The sequential form over a whole sequence (the reference for the prefix
 * form and the benchmarks): one running W, updated after every full chunk.
 * W is modified in place. */
clttt_status ttt_sequential_form(clttt_device *device, const ttt_layer *layer, cl_mem W, int n,
                                 cl_mem h, cl_mem t, cl_mem out);

#endif
