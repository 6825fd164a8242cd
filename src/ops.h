/* The op layer: one typed function per kernel of cl/. Each op is the only
 * place that knows its kernel's file, name, argument order and launch
 * geometry; the forward pass, TTT, the tuner and the benchmarks call only
 * these. Kernels are resolved once into a kernel_set, built for one
 * parameter set and head size, so nothing is formatted or looked up by name
 * per launch.
 *
 * A kernel_set belongs to one thread at a time: OpenCL keeps a kernel's
 * arguments in the kernel object, so two sessions fed from two threads each
 * have their own set (the programs behind them are shared). */
#ifndef CLTTT_OPS_H
#define CLTTT_OPS_H

#include "packed_gemm.h"
#include "runtime.h"

struct linear_weight;

typedef enum {
  KERNEL_RMSNORM,
  KERNEL_EMBEDDING_GATHER,
  KERNEL_EMBEDDING_GATHER_PACKED,
  KERNEL_WIDEN_TO_FLOAT,
  KERNEL_ADD_IN_PLACE,
  KERNEL_COPY_FLOATS,
  KERNEL_COUNT_NONFINITE,
  KERNEL_COUNT_NONFINITE_HALF,
  KERNEL_ADD_BIAS_ROWS,
  KERNEL_SWIGLU,
  KERNEL_QK_NORM_ROPE,
  KERNEL_ATTENTION,
  KERNEL_ATTENTION_DECODE_PARTIAL,
  KERNEL_ATTENTION_DECODE_COMBINE,
  KERNEL_CAUSAL_SOFTMAX_ROWS,
  KERNEL_ATTENTION_TILES_PACK_KEYS,
  KERNEL_ATTENTION_PACK_HEAD_ROWS,
  KERNEL_ATTENTION_TILES,
  KERNEL_TTT_CONV,
  KERNEL_ROW_SUM_OF_SQUARES,
  KERNEL_CLIP_SCALE,
  KERNEL_ADD_SCALED,
  KERNEL_GEMV,
  KERNEL_COUNT
} kernel_id;

typedef struct {
  clttt_device *device;
  tuning_params params; /* what the kernels were built with; geometry follows it */
  int head_dim;         /* HEAD_DIM of the attention and RoPE kernels */
  int kv_half;          /* KV_HALF: the KV cache they read and write holds half */
  cl_kernel kernel[KERNEL_COUNT];
  /* The packed GEMM and update kernels of params->gemm / params->update,
   * when params->gemm_packed or update_own asks for them. */
  packed_gemm_kernels packed;
  int has_packed;
} kernel_set;

/* Builds (or finds in the device's cache) every program with `params`,
 * HEAD_DIM = head_dim and KV_HALF = kv_half, and creates this set's own
 * kernel objects. */
clttt_status kernel_set_create(kernel_set *kernels, clttt_device *device, const tuning_params *params,
                               int head_dim, int kv_half);
/* Adds our packed GEMM kernels to a set whose parameters left them out
 * (GPUs with CLBlast for fp32): bf16 and fp16 weights need them anyway. */
clttt_status kernel_set_add_packed(kernel_set *kernels);
/* The build options kernel_set_create gives every program of the set, and
 * the set's program files (`count` receives how many; up to `capacity` are
 * written), so that a tool can build them for a device it does not have
 * (bench/kernel_options.c). */
void kernel_set_options(const tuning_params *params, int head_dim, int kv_half, char *buffer, size_t capacity);
void kernel_set_files(const char **files, int capacity, int *count);
void kernel_set_release(kernel_set *kernels);

/* out (rows x width, stride out_ld) = x / rms(x) * weight, row by row. */
clttt_status op_rmsnorm(const kernel_set *kernels, cl_mem out, int out_ld, cl_mem x, int x_ld, cl_mem weight,
                        int rows, int width, float eps);
/* out (n x d) = table[tokens[i]] rows. */
/* out (n x d) = table[tokens]: the embedding as weights.c stores it,
 * row-major fp32 or packed bf16/fp16. */
clttt_status op_embedding_gather(const kernel_set *kernels, cl_mem out, const struct linear_weight *table,
                                 cl_mem tokens, int n, int d);
/* out (n x k fp32, row-major) = a packed weight of any element type,
 * unpacked and widened (a row-major one is copied instead). */
clttt_status op_widen_to_float(const kernel_set *kernels, cl_mem out, const struct linear_weight *weight);
/* x[0..count) += y[0..count) */
clttt_status op_add_in_place(const kernel_set *kernels, cl_mem x, cl_mem y, size_t count);
/* out[0..count) = in[0..count): a streaming copy, the bandwidth yardstick of the benchmarks */
clttt_status op_copy_floats(const kernel_set *kernels, cl_mem out, cl_mem in, size_t count);
/* *count = how many of x[offset .. offset + n) are NaN or infinite, using
 * `counter` (one int of device memory) and waiting for the answer. */
clttt_status op_count_nonfinite(const kernel_set *kernels, cl_mem x, size_t offset, size_t n, cl_mem counter,
                                int *count);
/* The same over `n` half values (a half KV cache) from element `offset`. */
clttt_status op_count_nonfinite_half(const kernel_set *kernels, cl_mem x, size_t offset, size_t n, cl_mem counter,
                                     int *count);
/* Values each work-item of the two counts checks (the kernels get it as
 * NONFINITE_SPAN). */
#define NONFINITE_SPAN 256
/* y (rows x width, stride ld) += bias (width) on every row; nothing when bias is NULL. */
clttt_status op_add_bias_rows(const kernel_set *kernels, cl_mem y, cl_mem bias, int rows, int width, int ld);
/* h (rows x f) = silu(gate) * up, gate_up rows being [gate | up] (2f). */
clttt_status op_swiglu(const kernel_set *kernels, cl_mem h, cl_mem gate_up, int rows, int f);

/* Qwen3's per-head q/k RMSNorm (when q_norm is not NULL) and RoPE at
 * positions position0.., in place in the q, k, v rows, and k, v rows copied
 * into the caches at those positions. */
typedef struct {
  cl_mem qkv;                /* n rows of stride qkv_ld: q heads, k heads, v heads */
  int qkv_ld;
  int n, position0, heads, kv_heads;
  cl_mem inverse_frequency;  /* head_dim / 2 */
  float attention_scaling;
  cl_mem q_norm, k_norm;     /* head_dim each, or NULL */
  float eps;
  cl_mem k_cache, v_cache;   /* positions x kv_dim, float or half as the kernel set says */
  int kv_dim;
} rope_problem;
clttt_status op_qk_norm_rope(const kernel_set *kernels, const rope_problem *problem);

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
/* The flash kernel of cl/attention.cl: one work-item per (query, head),
 * online softmax over tiles of keys. */
clttt_status op_attention(const kernel_set *kernels, const attention_problem *problem);
/* Keys scored per step of a decode range before its running state is
 * rescaled (the kernels get it as DECODE_TILE). */
#define ATTENTION_DECODE_TILE 16
/* Work-items a head gets in decode attention's GPU form
 * (ATTENTION_DECODE_ROWS 2, the kernels' DECODE_LANES): four floats of the
 * head each, two where 4 does not divide head_dim (it is always even). */
static inline int attention_decode_lanes(int head_dim) { return head_dim % 4 == 0 ? head_dim / 4 : head_dim / 2; }
/* op_attention for decode's one query or another short batch (n x splits
 * <= ATTENTION_DECODE_SPLITS): the batch's keys 0 .. position0 + n - 1 in
 * `splits` ranges of split_keys (splits * split_keys >= position0 + n),
 * each query's range states into `partials` (n x heads x splits x
 * (head_dim + 2) floats), then merged into out. */
clttt_status op_attention_decode(const kernel_set *kernels, const attention_problem *problem, cl_mem partials,
                                 int split_keys, int splits);
/* Softmax of `rows` score rows (stride ld, `columns` keys each), row r being
 * query (r mod queries) at position first_position + (r mod queries): keys
 * after it are masked out. */
clttt_status op_causal_softmax_rows(const kernel_set *kernels, cl_mem scores, int rows, int columns, int ld,
                                    int queries, int first_position);

/* Kv head `kv_head`'s keys 0 .. keys - 1, scaled by 1/sqrt(head_dim), into
 * `packed` as cl/attention_tiles.cl's key-block panels (keys rounded up to
 * ATTENTION_TILE_KEYS, times head_dim floats). */
clttt_status op_attention_tiles_pack_keys(const kernel_set *kernels, cl_mem packed, const attention_problem *problem,
                                          int kv_head, int keys);
/* Rows 0 .. keys - 1 of kv head `kv_head` of `cache` (problem->k_cache or
 * v_cache, float or half as the kernels were built) into `packed` as float
 * rows of head_dim: the register tiles' V, and a half cache's K and V for
 * CLBlast. */
clttt_status op_attention_pack_head_rows(const kernel_set *kernels, cl_mem packed, cl_mem cache,
                                         const attention_problem *problem, int kv_head, int keys);
/* The batch's attention for the query heads of kv head `kv_head`, its keys
 * packed by op_attention_tiles_pack_keys, its values by
 * op_attention_pack_head_rows. The batch's V rows must be finite (a masked
 * key is multiplied by zero). head_dim must be a multiple of 16. */
clttt_status op_attention_tiles(const kernel_set *kernels, const attention_problem *problem, cl_mem packed_keys,
                                cl_mem packed_values, int kv_head);

/* tc (rows x d) = the TTT target's causal depthwise conv of t (rows of
 * stride t.ld from t.offset), zero outside the rows. */
clttt_status op_ttt_conv(const kernel_set *kernels, cl_mem tc, matrix_view t, cl_mem weight, int rows, int d);

/* sums[r] = sum of squares of row r of x (rows x width, contiguous). */
clttt_status op_row_sum_of_squares(const kernel_set *kernels, cl_mem x, int rows, int width, cl_mem sums);
/* scale[0] = min(1, tau / sqrt(sum of the `count` sums)): the clipping factor. */
clttt_status op_clip_scale(const kernel_set *kernels, cl_mem sums, int count, float tau, cl_mem scale);
/* W[0..count) += scale[0] * U[0..count) */
clttt_status op_add_scaled(const kernel_set *kernels, cl_mem W, cl_mem U, cl_mem scale, size_t count);

/* y (out) = beta y + W (out x in) x (in): the decode matrix-vector product. */
clttt_status op_gemv(const kernel_set *kernels, const char *what, size_t out_features, size_t in_features,
                     matrix_view x, matrix_view weight, float beta, matrix_view y);

#endif
