/* A model's weights on the device (struct clttt_model): loaded from a
 * checkpoint or from any other tensor source, stacked where one GEMM can
 * serve several projections. */
#ifndef CLTTT_WEIGHTS_H
#define CLTTT_WEIGHTS_H

#include "runtime.h"

/* One decoder layer's weights. */
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
  clttt_config config;       /* owns its TTT layer list */
  int q_dim, kv_dim, qkv_width;
  cl_mem token_embedding;    /* vocab x d */
  cl_mem lm_head;            /* vocab x d; the same buffer as token_embedding when tied */
  cl_mem final_norm;         /* d */
  cl_mem rope_inverse_frequency; /* head_dim / 2 */
  float rope_attention_scaling;
  layer_weights *layers;
  uint64_t weight_bytes;
  /* The weights' hash that session files carry (session_file.c): computed
   * at the first save or load, under the lock, since sessions of one model
   * may be saved from several threads. */
  pthread_mutex_t fingerprint_lock;
  int fingerprint_ready;
  uint32_t weights_crc32, weights_adler32;
};

/* Where weights come from: `tensor(name, shape, ndim, out, context)` fills
 * out (float32) or returns an error. The checkpoint loader and the
 * synthetic models of the demo and benchmarks are the two sources. */
typedef clttt_status (*tensor_source)(const char *name, const int64_t *shape, int ndim, float *out,
                                      void *context);

/* Allocates and uploads every weight `config` calls for, tensor by tensor
 * (params may be NULL: the defaults). */
clttt_status model_create(clttt_model **model, clttt_device *device, const clttt_config *config,
                          const clttt_model_params *params, tensor_source source, void *context);

#endif
