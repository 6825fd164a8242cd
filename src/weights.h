/* A model's weights on the device (struct clttt_model): loaded from a
 * checkpoint or from any other tensor source, stacked where one GEMM can
 * serve several projections. */
#ifndef CLTTT_WEIGHTS_H
#define CLTTT_WEIGHTS_H

#include "packed_gemm.h"
#include "runtime.h"

/* The weight of an nn.Linear product y = x W^T, W (out x in): packed into
 * our GEMM's panels (`layout`) when the device's parameters choose that
 * kernel (GEMM_PACKED) and always when its elements are bf16 or fp16, which
 * only our kernels read; otherwise row-major, and then `layout` is the
 * row-major one (panels of one row, packed_gemm_row_major_layout), so that
 * layout.type is the element type in both cases. */
typedef struct linear_weight {
  cl_mem buffer;
  size_t out_features, in_features;
  int packed;                /* 1: `layout`'s panels; 0: row-major */
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
  linear_weight down;        /* W_down, d x f: the checkpoint's, never modified; laid out like the
                                other weights also in a TTT layer, whose fp32 fast weights start as
                                its row-major fp32 copy (op_widen_to_float unpacks the panels) */
  cl_mem down_bias;          /* d, or NULL */
  int is_ttt;                /* a TTT layer of a ttt_mode checkpoint */
  cl_mem ttt_conv;           /* d x 5 */
  cl_mem ttt_proj;           /* d x d fp32, or NULL without ttt_proj: P row-major, or P^T in our
                                GEMM's panels when ttt_proj_packed (V = tc P = tc (P^T)^T) */
  int ttt_proj_packed;
  packed_gemm_layout ttt_proj_layout;
  int part;                  /* the model part (device) holding this layer */
} layer_weights;

/* One device's share of the model: a consecutive range of layers, and what
 * every layer on the device needs beside its own weights. */
typedef struct {
  clttt_split_part placement; /* device, layers, the plan's sizes */
  cl_mem rope_inverse_frequency; /* head_dim / 2 on this device; part 0's is the model's */
  uint64_t weight_bytes;      /* allocated here, second copies (tied head, RoPE) included */
} model_part;

struct clttt_model {
  clttt_device *device;      /* the first part's: the embedding's */
  model_part *parts;         /* in layer order; one without a split */
  int part_count;
  clttt_config config;       /* owns its TTT layer list */
  int q_dim, kv_dim, qkv_width;
  packed_gemm_type weight_type; /* of every linear_weight and the embedding */
  linear_weight embedding;   /* vocab x d: row-major fp32, or packed like the matrices when bf16/fp16
                                (the gather reads either) */
  linear_weight lm_head;     /* vocab x d, on the last part; the embedding itself (same buffer and
                                layout) when tied on one device, a copy of it when split */
  cl_mem final_norm;         /* d, on the last part */
  cl_mem rope_inverse_frequency; /* head_dim / 2, the first part's */
  float rope_attention_scaling;
  layer_weights *layers;
  uint64_t weight_bytes;     /* the model's own: a split's second copies (tied head, RoPE) not counted */
  /* The weights' hash that session files carry (session_file.c): computed
   * at the first save or load, under the lock, since sessions of one model
   * may be saved from several threads. */
  pthread_mutex_t fingerprint_lock;
  /* [0]: version 1's crc32 and adler32, [1]: XXH3-64 (low, high word). */
  int weights_hash_ready[2];
  uint32_t weights_hash[2][2];
};

/* One tensor's elements as the source holds them: `count` values of
 * `type`, little-endian, possibly unaligned, valid until the next read. */
typedef struct {
  const void *data;
  packed_gemm_type type;
} tensor_data;

/* Where weights come from: the checkpoint (elements straight from the
 * file's mapping) or the synthetic models of the demo and benchmarks. */
typedef struct {
  /* Checks that tensor `name` has exactly `shape` and points `out` at it;
   * the previous tensor's data may become invalid. */
  clttt_status (*read)(void *context, const char *name, const int64_t *shape, int ndim, tensor_data *out);
  /* The element type `name` is stored in, without reading it; -1 when the
   * source does not have it. */
  int (*stored_type)(void *context, const char *name);
  void *context;
} tensor_source;

/* The weight type that `requested` (AUTO: as the source stores the
 * embedding) gives for this source. */
clttt_status weights_resolve_type(clttt_weight_type requested, const tensor_source *source,
                                  packed_gemm_type *type);
/* Device bytes of the weights of `config` with matrices of `type`, laid out
 * as `device`'s parameters lay them (NULL: no panel padding): what
 * model_create allocates; *largest_buffer (may be NULL) the largest single
 * buffer of them. */
uint64_t weights_bytes(const clttt_config *config, packed_gemm_type type, const clttt_device *device,
                       uint64_t *largest_buffer);
/* The share of one part (device) holding layers first_layer ..
 * first_layer + layer_count - 1, with the embedding and / or the final norm
 * and LM head; a tied head costs a copy unless head_beside_embedding. */
uint64_t weights_part_bytes(const clttt_config *config, packed_gemm_type type, const clttt_device *device,
                            int first_layer, int layer_count, int has_embedding, int has_head,
                            int head_beside_embedding, uint64_t *largest_buffer);
/* The public weight type as the element type it stores (AUTO: fp32). */
packed_gemm_type weights_element_type(clttt_weight_type type);

/* The device of layer `index` and of the last part. */
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
                          const clttt_model_params *params, const tensor_source *source);

#endif
