/* The transformer on the device: weights (model) and per-sequence state
 * (session). Internal layout shared by model.c and the benchmarks. */
#ifndef CLTTT_MODEL_H
#define CLTTT_MODEL_H

#include "runtime.h"
#include "ttt.h"

/* One decoder layer's weights, stacked where one GEMM can serve several. */
typedef struct {
  cl_mem input_norm;         /* d */
  cl_mem qkv;                /* (q_dim + 2 kv_dim) x d: q_proj, k_proj, v_proj rows */
  cl_mem qkv_bias;           /* q_dim + 2 kv_dim, or NULL */
  cl_mem o;                  /* d x q_dim */
  cl_mem o_bias;             /* d, or NULL */
  cl_mem q_norm, k_norm;     /* head_dim each (Qwen3), or NULL */
  cl_mem post_norm;          /* d */
  cl_mem gate_up;            /* 2f x d: gate_proj rows, then up_proj rows */
  cl_mem gate_up_bias;       /* 2f, or NULL */
  cl_mem down;               /* W_down, d x f: the checkpoint's, never modified */
  cl_mem down_bias;          /* d, or NULL */
  int is_ttt;                /* a TTT layer of a ttt_mode checkpoint */
  cl_mem ttt_conv;           /* d x 5 */
  cl_mem ttt_proj;           /* d x d, or NULL without ttt_proj */
} layer_weights;

struct clttt_model {
  clttt_device *device;
  clttt_config config;
  int q_dim, kv_dim, qkv_width;
  cl_mem token_embedding;    /* vocab x d */
  cl_mem lm_head;            /* vocab x d; the same buffer as token_embedding when tied */
  cl_mem final_norm;         /* d */
  cl_mem rope_inverse_frequency; /* head_dim / 2 */
  float rope_attention_scaling;
  layer_weights *layers;
  uint64_t weight_bytes;
  char kernel_options[64];   /* "-DHEAD_DIM=128" */
};

/* Builds a model from weights already in host memory: `tensor(name, shape,
 * ndim, out, context)` fills out (float32) or returns an error. Used by the
 * checkpoint loader and by the synthetic models of the demo and benchmarks. */
typedef clttt_status (*tensor_source)(const char *name, const int64_t *shape, int ndim, float *out,
                                      void *context);
clttt_status model_create(clttt_model **model, clttt_device *device, const clttt_config *config,
                          tensor_source source, void *context);

/* Causal grouped-query attention of n queries at positions position0 ..
 * position0 + n - 1 against one layer's K/V cache, as HuggingFace computes
 * it: scale 1/sqrt(head_dim), each query sees every earlier token and itself.
 * Query head h reads kv head h / (heads / kv_heads). */
typedef struct {
  cl_mem out;               /* n x (heads * head_dim), row = token, head h at h * head_dim */
  cl_mem q;                 /* n rows of stride q_ld, query head h at h * head_dim */
  int q_ld;
  cl_mem k_cache, v_cache;  /* positions x kv_dim, kv head g at g * head_dim */
  int kv_dim;
  int n, position0, heads, kv_heads, head_dim;
} attention_problem;

/* The flash kernel of cl/attention.cl: one work-item per (query, head). */
clttt_status attention_flash(clttt_device *device, const attention_problem *problem);
/* Queries in blocks of at most block_rows: per head scores = scale Q K^T and
 * out = P V by CLBlast, the causal softmax between them by
 * causal_softmax_rows. `scores` holds heads * block_rows * (position0 + n)
 * floats. */
clttt_status attention_gemm(clttt_device *device, const attention_problem *problem, cl_mem scores,
                            int block_rows);


#endif
