/* A model's weights on the device (struct clttt_model): loaded from a
 * checkpoint or from any other tensor source, stacked where one GEMM can
 * serve several projections. */
#ifndef CLTTT_WEIGHTS_H
#define CLTTT_WEIGHTS_H

#include "packed_gemm.h"
#include "runtime.h"

/* The weight of an nn.Linear product y = x W^T: W (out x in) row-major, or
 * packed into our GEMM's panels when the device's parameters choose that
 * kernel (GEMM_PACKED). */
typedef struct linear_weight {
  cl_mem buffer;
  size_t out_features, in_features;
  int packed;                /* 1: `layout`'s panels; 0: row-major floats */
  packed_gemm_layout layout;
} linear_weight;

/* One decoder layer's weights. */
typedef struct {
  cl_mem input_norm;         /* d */
  linear_weight qkv;         /* (q_dim + 2 kv_dim) x d: q_proj, k_proj, v_proj rows */
  cl_mem qkv_bias;           /* q_dim + 2 kv_dim, or NULL */
  linear_weight o;           /* d x q_dim */
  cl_mem o_bias;             /* d, or NULL */
  cl_mem q_norm, k_norm;     /* head_dim each (Qwen3), or NULL */
  cl_mem post_norm;          /* d */
  linear_weight gate_up;     /* 2f x d: gate_proj rows, then up_proj rows */
  cl_mem gate_up_bias;       /* 2f, or NULL */
  linear_weight down;        /* W_down, d x f: the checkpoint's, never modified; row-major in a TTT
                                layer, whose fast weights start as a copy of it */
  cl_mem down_bias;          /* d, or NULL */
  int is_ttt;                /* a TTT layer of a ttt_mode checkpoint */
  cl_mem ttt_conv;           /* d x 5 */
  cl_mem ttt_proj;           /* d x d, or NULL without ttt_proj */
  int part;                  /* the model part (device) holding this layer */
} layer_weights;

/* One device's share of the model: a consecutive range of layers, and what
 * every layer on the device needs beside its own weights. */
typedef struct {
  clttt_split_part placement; /* device, layers, the plan's sizes */
  cl_mem rope_inverse_frequency; /* head_dim / 2 on this device; part 0's is the model's */
  uint64_t weight_bytes;      /* allocated here, a tied head's second copy included */
} model_part;

struct clttt_model {
  clttt_device *device;      /* the first part's: the embedding's */
  model_part *parts;         /* in layer order; one without a split */
  int part_count;
  clttt_config config;       /* owns its TTT layer list */
  int q_dim, kv_dim, qkv_width;
  cl_mem token_embedding;    /* vocab x d */
  linear_weight lm_head;     /* vocab x d, on the last part; row-major in token_embedding's own buffer
                                when tied on one device, a row-major copy of it when split */
  cl_mem final_norm;         /* d, on the last part */
  cl_mem rope_inverse_frequency; /* head_dim / 2 */
  float rope_attention_scaling;
  layer_weights *layers;
  uint64_t weight_bytes;     /* the model's own: a split's second copy of a tied head is not counted */
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

/* The device of layer `index` and of the first and last parts. */
static inline clttt_device *layer_device(const clttt_model *model, int index) {
  return model->parts[model->layers[index].part].placement.device;
}
static inline clttt_device *head_device(const clttt_model *model) {
  return model->parts[model->part_count - 1].placement.device;
}

/* The layers the model holds: all of them, or its slice's. */
static inline int model_first_layer(const clttt_model *model) { return model->parts[0].placement.first_layer; }
static inline int model_end_layer(const clttt_model *model) {
  const clttt_split_part *last = &model->parts[model->part_count - 1].placement;
  return last->first_layer + last->layer_count;
}
/* 1 when the model is a slice: some layers live elsewhere. */
static inline int model_is_slice(const clttt_model *model) {
  return model_first_layer(model) > 0 || model_end_layer(model) < model->config.num_hidden_layers;
}

/* Allocates and uploads every weight `config` calls for, tensor by tensor,
 * on `device` or split as params says (params may be NULL: the defaults). */
clttt_status model_create(clttt_model **model, clttt_device *device, const clttt_config *config,
                          const clttt_model_params *params, tensor_source source, void *context);

#endif
