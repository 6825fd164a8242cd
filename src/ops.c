/* The op layer: each function below is the only place that knows its
 * kernel's argument order and launch geometry; the table is the only place
 * that knows which file and name each kernel has. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attention.h"
#include "error.h"
#include "ops.h"
#include "profile.h"
#include "weights.h"

static const struct {
  const char *file;
  const char *name;
  int argument_count; /* checked against the built kernel at creation */
} kernel_table[KERNEL_COUNT] = {
    [KERNEL_RMSNORM] = {"rmsnorm.cl", "rmsnorm", 8},
    [KERNEL_EMBEDDING_GATHER] = {"elementwise.cl", "embedding_gather", 5},
    [KERNEL_EMBEDDING_GATHER_PACKED] = {"elementwise.cl", "embedding_gather_packed", 8},
    [KERNEL_WIDEN_TO_FLOAT] = {"elementwise.cl", "widen_to_float", 7},
    [KERNEL_ADD_IN_PLACE] = {"elementwise.cl", "add_in_place", 3},
    [KERNEL_COPY_FLOATS] = {"elementwise.cl", "copy_floats", 3},
    [KERNEL_COUNT_NONFINITE] = {"elementwise.cl", "count_nonfinite", 4},
    [KERNEL_COUNT_NONFINITE_HALF] = {"elementwise.cl", "count_nonfinite_half", 4},
    [KERNEL_ADD_BIAS_ROWS] = {"elementwise.cl", "add_bias_rows", 5},
    [KERNEL_SWIGLU] = {"elementwise.cl", "swiglu", 4},
    [KERNEL_QK_NORM_ROPE] = {"rope.cl", "qk_norm_rope", 15},
    [KERNEL_ATTENTION] = {"attention.cl", "attention", 11},
    [KERNEL_ATTENTION_DECODE_PARTIAL] = {"attention.cl", "attention_decode_partial", 13},
    [KERNEL_ATTENTION_DECODE_COMBINE] = {"attention.cl", "attention_decode_combine", 5},
    [KERNEL_CAUSAL_SOFTMAX_ROWS] = {"attention.cl", "causal_softmax_rows", 6},
    [KERNEL_ATTENTION_TILES_PACK_KEYS] = {"attention_tiles.cl", "attention_tiles_pack_keys", 6},
    [KERNEL_ATTENTION_PACK_HEAD_ROWS] = {"attention_tiles.cl", "attention_pack_head_rows", 5},
    [KERNEL_ATTENTION_TILES] = {"attention_tiles.cl", "attention_tiles", 10},
    [KERNEL_TTT_CONV] = {"ttt.cl", "ttt_conv", 7},
    [KERNEL_ROW_SUM_OF_SQUARES] = {"ttt.cl", "row_sum_of_squares", 4},
    [KERNEL_CLIP_SCALE] = {"ttt.cl", "clip_scale", 4},
    [KERNEL_ADD_SCALED] = {"ttt.cl", "add_scaled", 4},
    [KERNEL_GEMV] = {"gemv.cl", "gemv", 10},
};

clttt_status kernel_set_create(kernel_set *kernels, clttt_device *device, const tuning_params *params,
                               int head_dim, int kv_half) {
  memset(kernels, 0, sizeof *kernels);
  if (head_dim < 2 || head_dim % 2 != 0 || head_dim > 512)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "head_dim %d: even sizes up to 512 are supported", head_dim);
  kernels->device = device;
  kernels->params = *params;
  kernels->head_dim = head_dim;
  kernels->kv_half = kv_half != 0;
  char options[1152];
  kernel_set_options(params, head_dim, kernels->kv_half, options, sizeof options);
  for (int k = 0; k < KERNEL_COUNT; k++) {
    cl_program program = NULL;
    clttt_status status = runtime_program(device, kernel_table[k].file, options, &program);
    if (status == CLTTT_SUCCESS)
      status = runtime_create_kernel(device, program, kernel_table[k].file, kernel_table[k].name,
                                     &kernels->kernel[k]);
    cl_uint arguments = 0;
    if (status == CLTTT_SUCCESS &&
        clGetKernelInfo(kernels->kernel[k], CL_KERNEL_NUM_ARGS, sizeof arguments, &arguments, NULL) == CL_SUCCESS &&
        (int)arguments != kernel_table[k].argument_count)
      status = clttt_fail(CLTTT_ERROR_KERNEL_BUILD, "kernel %s of %s takes %u arguments; its op passes %d",
                          kernel_table[k].name, kernel_table[k].file, arguments, kernel_table[k].argument_count);
    if (status != CLTTT_SUCCESS) {
      kernel_set_release(kernels);
      return status;
    }
  }
  if (params->gemm_packed || params->update_own) {
    clttt_status status = kernel_set_add_packed(kernels);
    if (status != CLTTT_SUCCESS) {
      kernel_set_release(kernels);
      return status;
    }
  }
  return CLTTT_SUCCESS;
}

void kernel_set_options(const tuning_params *params, int head_dim, int kv_half, char *buffer, size_t capacity) {
  /* One option string for every file: a program's identity in the device's
   * cache is (file, options), and files ignore defines they do not use. */
  char defines[1024];
  tuning_defines(params, defines, sizeof defines);
  snprintf(buffer, capacity,
           "-cl-std=CL1.2 %s -DHEAD_DIM=%d -DKV_HALF=%d -DDECODE_TILE=%d -DDECODE_LANES=%d -DNONFINITE_SPAN=%d",
           defines, head_dim, kv_half != 0, ATTENTION_DECODE_TILE, attention_decode_lanes(head_dim), NONFINITE_SPAN);
}

void kernel_set_files(const char **files, int capacity, int *count) {
  *count = 0;
  for (int k = 0; k < KERNEL_COUNT; k++) {
    int seen = 0;
    for (int earlier = 0; earlier < k && !seen; earlier++)
      seen = strcmp(kernel_table[earlier].file, kernel_table[k].file) == 0;
    if (seen)
      continue;
    if (*count < capacity)
      files[*count] = kernel_table[k].file;
    (*count)++;
  }
}

clttt_status kernel_set_add_packed(kernel_set *kernels) {
  if (kernels->has_packed)
    return CLTTT_SUCCESS;
  CLTTT_TRY(packed_gemm_kernels_create(&kernels->packed, kernels->device, &kernels->params.gemm,
                                       &kernels->params.update));
  kernels->has_packed = 1;
  return CLTTT_SUCCESS;
}

void kernel_set_release(kernel_set *kernels) {
  for (int k = 0; k < KERNEL_COUNT; k++)
    if (kernels->kernel[k])
      clReleaseKernel(kernels->kernel[k]);
  if (kernels->has_packed)
    packed_gemm_kernels_release(&kernels->packed);
  memset(kernels, 0, sizeof *kernels);
}

/* ---------------------------------------------------------------- */
/* Arguments and launches                                             */

/* An argument as (size, address): the size always comes from the value
 * itself, so a value and its size cannot disagree. */
#define ARG(value) sizeof(value), (const void *)&(value)

/* Sets the kernel's arguments, `count` (size, address) pairs; count must be
 * the kernel's own argument count. */
static clttt_status set_arguments(const kernel_set *kernels, kernel_id id, int count, ...) {
  if (count != kernel_table[id].argument_count)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "kernel %s takes %d arguments, given %d", kernel_table[id].name,
                      kernel_table[id].argument_count, count);
  va_list arguments;
  va_start(arguments, count);
  for (int i = 0; i < count; i++) {
    size_t size = va_arg(arguments, size_t);
    const void *value = va_arg(arguments, const void *);
    cl_int error = clSetKernelArg(kernels->kernel[id], (cl_uint)i, size, value);
    if (error != CL_SUCCESS) {
      va_end(arguments);
      char what[160];
      snprintf(what, sizeof what, "setting argument %d of kernel %s", i, kernel_table[id].name);
      return runtime_check(kernels->device, error, what);
    }
  }
  va_end(arguments);
  return CLTTT_SUCCESS;
}

/* How many work-items a launch needs and in what groups. `global` is what
 * the kernel must cover; runtime_launch rounds it up to whole groups and the
 * kernels check their bounds. */
typedef struct {
  unsigned dimensions;
  size_t global[2];
  size_t local[2];
} geometry;

static clttt_status launch(const kernel_set *kernels, kernel_id id, geometry shape) {
  return runtime_launch(kernels->device, kernels->kernel[id], kernel_table[id].name, shape.dimensions,
                        shape.global, shape.local);
}

static size_t divide_rounding_up(size_t value, size_t divisor) { return (value + divisor - 1) / divisor; }

/* One work-item per element of a rows x columns block. */
static geometry elementwise_rows(const tuning_params *params, size_t columns, size_t rows) {
  return (geometry){2, {columns, rows}, {(size_t)params->elementwise_work_group_size, 1}};
}

/* One work-item per VECTOR_WIDTH consecutive floats. */
static geometry elementwise_vectors(const tuning_params *params, size_t count) {
  return (geometry){1,
                    {divide_rounding_up(count, (size_t)params->vector_width), 1},
                    {(size_t)params->elementwise_work_group_size, 1}};
}

/* ---------------------------------------------------------------- */
/* The ops                                                            */

clttt_status op_rmsnorm(const kernel_set *kernels, cl_mem out, int out_ld, cl_mem x, int x_ld, cl_mem weight,
                        int rows, int width, float eps) {
  CLTTT_TRY(set_arguments(kernels, KERNEL_RMSNORM, 8, ARG(out), ARG(out_ld), ARG(x), ARG(x_ld), ARG(weight),
                          ARG(rows), ARG(width), ARG(eps)));
  /* A work-group reduces one row. */
  size_t group = (size_t)kernels->params.rmsnorm_work_group_size;
  return launch(kernels, KERNEL_RMSNORM, (geometry){1, {(size_t)rows * group, 1}, {group, 1}});
}

clttt_status op_embedding_gather(const kernel_set *kernels, cl_mem out, const linear_weight *table, cl_mem tokens,
                                 int n, int d) {
  const geometry shape = elementwise_rows(&kernels->params, (size_t)d, (size_t)n);
  if (!table->packed && table->layout.type == PACKED_GEMM_F32) {
    CLTTT_TRY(set_arguments(kernels, KERNEL_EMBEDDING_GATHER, 5, ARG(out), ARG(table->buffer), ARG(tokens), ARG(n),
                            ARG(d)));
    return launch(kernels, KERNEL_EMBEDDING_GATHER, shape);
  }
  if (table->layout.type == PACKED_GEMM_F32 || table->layout.panel_width > 0x7fffffff ||
      table->layout.k_padded > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "embedding gather: a packed fp32 table is not a layout we store");
  const int panel_width = (int)table->layout.panel_width, k_padded = (int)table->layout.k_padded;
  const int is_bf16 = table->layout.type == PACKED_GEMM_BF16;
  CLTTT_TRY(set_arguments(kernels, KERNEL_EMBEDDING_GATHER_PACKED, 8, ARG(out), ARG(table->buffer), ARG(tokens),
                          ARG(n), ARG(d), ARG(panel_width), ARG(k_padded), ARG(is_bf16)));
  return launch(kernels, KERNEL_EMBEDDING_GATHER_PACKED, shape);
}

clttt_status op_widen_to_float(const kernel_set *kernels, cl_mem out, const linear_weight *weight) {
  const packed_gemm_layout *layout = &weight->layout;
  if (!weight->packed || layout->n > 0x7fffffff || layout->k > 0x7fffffff || layout->panel_width > 0x7fffffff ||
      layout->k_padded > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "widen_to_float: a %zu x %zu %s matrix (packed ones only, each "
                      "size below 2^31)", layout->n, layout->k, weight->packed ? "oversized" : "row-major");
  const int rows = (int)layout->n, columns = (int)layout->k, panel_width = (int)layout->panel_width,
            k_padded = (int)layout->k_padded, type = (int)layout->type;
  CLTTT_TRY(set_arguments(kernels, KERNEL_WIDEN_TO_FLOAT, 7, ARG(out), ARG(weight->buffer), ARG(rows), ARG(columns),
                          ARG(panel_width), ARG(k_padded), ARG(type)));
  /* A work-item per 16 columns of a row (cl/elementwise.cl). */
  return launch(kernels, KERNEL_WIDEN_TO_FLOAT,
                elementwise_rows(&kernels->params, divide_rounding_up(layout->k, 16), layout->n));
}

static clttt_status vector_op(const kernel_set *kernels, kernel_id id, cl_mem x, cl_mem y, size_t count) {
  if (count > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s of %zu floats: at most 2^31 - 1 per call",
                      kernel_table[id].name, count);
  int n = (int)count;
  CLTTT_TRY(set_arguments(kernels, id, 3, ARG(x), ARG(y), ARG(n)));
  return launch(kernels, id, elementwise_vectors(&kernels->params, count));
}

clttt_status op_add_in_place(const kernel_set *kernels, cl_mem x, cl_mem y, size_t count) {
  return vector_op(kernels, KERNEL_ADD_IN_PLACE, x, y, count);
}

clttt_status op_copy_floats(const kernel_set *kernels, cl_mem out, cl_mem in, size_t count) {
  return vector_op(kernels, KERNEL_COPY_FLOATS, out, in, count);
}

static clttt_status count_nonfinite(const kernel_set *kernels, int kernel, const char *what, cl_mem x, size_t offset,
                                    size_t n, cl_mem counter, int *count) {
  *count = 0;
  if (n == 0)
    return CLTTT_SUCCESS;
  if (n > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s of %zu values: at most 2^31 - 1", what, n);
  CLTTT_TRY(runtime_zero(kernels->device, counter, 0, sizeof(int), "non-finite counter"));
  cl_ulong first = (cl_ulong)offset;
  int length = (int)n;
  CLTTT_TRY(set_arguments(kernels, kernel, 4, ARG(x), ARG(first), ARG(length), ARG(counter)));
  CLTTT_TRY(launch(kernels, kernel, elementwise_rows(&kernels->params, divide_rounding_up(n, NONFINITE_SPAN), 1)));
  int32_t found = 0;
  CLTTT_TRY(runtime_download(kernels->device, counter, 0, sizeof found, &found, "non-finite count"));
  *count = found;
  return CLTTT_SUCCESS;
}

clttt_status op_count_nonfinite(const kernel_set *kernels, cl_mem x, size_t offset, size_t n, cl_mem counter,
                                int *count) {
  return count_nonfinite(kernels, KERNEL_COUNT_NONFINITE, "count_nonfinite", x, offset, n, counter, count);
}

clttt_status op_count_nonfinite_half(const kernel_set *kernels, cl_mem x, size_t offset, size_t n, cl_mem counter,
                                     int *count) {
  return count_nonfinite(kernels, KERNEL_COUNT_NONFINITE_HALF, "count_nonfinite_half", x, offset, n, counter,
                         count);
}

clttt_status op_add_bias_rows(const kernel_set *kernels, cl_mem y, cl_mem bias, int rows, int width, int ld) {
  if (!bias)
    return CLTTT_SUCCESS;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ADD_BIAS_ROWS, 5, ARG(y), ARG(bias), ARG(rows), ARG(width), ARG(ld)));
  return launch(kernels, KERNEL_ADD_BIAS_ROWS, elementwise_rows(&kernels->params, (size_t)width, (size_t)rows));
}

clttt_status op_swiglu(const kernel_set *kernels, cl_mem h, cl_mem gate_up, int rows, int f) {
  CLTTT_TRY(set_arguments(kernels, KERNEL_SWIGLU, 4, ARG(h), ARG(gate_up), ARG(rows), ARG(f)));
  /* Each work-item handles VECTOR_WIDTH columns of one row. */
  size_t columns = divide_rounding_up((size_t)f, (size_t)kernels->params.vector_width);
  return launch(kernels, KERNEL_SWIGLU, elementwise_rows(&kernels->params, columns, (size_t)rows));
}

clttt_status op_qk_norm_rope(const kernel_set *kernels, const rope_problem *p) {
  int use_qk_norm = p->q_norm != NULL;
  /* Without q/k norm weights the kernel never reads them; any buffer will do. */
  cl_mem q_norm = p->q_norm ? p->q_norm : p->inverse_frequency;
  cl_mem k_norm = p->k_norm ? p->k_norm : p->inverse_frequency;
  CLTTT_TRY(set_arguments(kernels, KERNEL_QK_NORM_ROPE, 15, ARG(p->qkv), ARG(p->qkv_ld), ARG(p->n),
                          ARG(p->position0), ARG(p->heads), ARG(p->kv_heads), ARG(p->inverse_frequency),
                          ARG(p->attention_scaling), ARG(use_qk_norm), ARG(q_norm), ARG(k_norm), ARG(p->eps),
                          ARG(p->k_cache), ARG(p->v_cache), ARG(p->kv_dim)));
  size_t slots = (size_t)(p->heads + p->kv_heads), group = (size_t)kernels->params.rope_work_group_size;
  /* ROPE_HEAD_LANES: a group of head_dim / 2 lanes per (slot, token). */
  if (kernels->params.rope_head_lanes) {
    const size_t lanes = (size_t)kernels->head_dim / 2;
    return launch(kernels, KERNEL_QK_NORM_ROPE, (geometry){2, {slots * lanes, (size_t)p->n}, {lanes, 1}});
  }
  /* Otherwise a work-group per token, of at most ROPE_WGS items over its head slots. */
  if (group > slots)
    group = slots;
  return launch(kernels, KERNEL_QK_NORM_ROPE, (geometry){1, {(size_t)p->n * group, 1}, {group, 1}});
}

clttt_status op_attention(const kernel_set *kernels, const attention_problem *p) {
  if (p->head_dim != kernels->head_dim)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "attention of head_dim %d with kernels built for %d",
                      p->head_dim, kernels->head_dim);
  float scale = 1.0f / sqrtf((float)p->head_dim);
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION, 11, ARG(p->out), ARG(p->q), ARG(p->q_ld), ARG(p->k_cache),
                          ARG(p->v_cache), ARG(p->kv_dim), ARG(p->n), ARG(p->position0), ARG(p->heads),
                          ARG(p->kv_heads), ARG(scale)));
  /* Queries along the first dimension in groups of ATTENTION_BLOCK_Q, heads
   * along the second. */
  size_t block = (size_t)kernels->params.attention_block_q;
  return launch(kernels, KERNEL_ATTENTION, (geometry){2, {(size_t)p->n, (size_t)p->heads}, {block, 1}});
}

clttt_status op_attention_decode(const kernel_set *kernels, const attention_problem *p, cl_mem partials,
                                 int split_keys, int splits) {
  if (p->head_dim != kernels->head_dim || p->n < 1 || split_keys < 1 || splits < 1 ||
      (int64_t)p->n * splits > ATTENTION_DECODE_SPLITS ||
      (int64_t)split_keys * splits < (int64_t)p->position0 + p->n)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "split attention: head_dim %d (kernels %d), %d queries, %d ranges of %d keys for %d keys "
                      "(at most %d queries x ranges)",
                      p->head_dim, kernels->head_dim, p->n, splits, split_keys, p->position0 + p->n,
                      ATTENTION_DECODE_SPLITS);
  const float scale = 1.0f / sqrtf((float)p->head_dim);
  const int first_keys = p->position0 + 1;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION_DECODE_PARTIAL, 13, ARG(partials), ARG(p->q), ARG(p->q_ld),
                          ARG(p->n), ARG(first_keys), ARG(p->k_cache), ARG(p->v_cache), ARG(p->kv_dim),
                          ARG(split_keys), ARG(splits), ARG(p->heads), ARG(p->kv_heads), ARG(scale)));
  /* Queries along the last dimension used. ATTENTION_DECODE_ROWS 0: a work-item
   * per (range, head), each independent: single work-item groups on CPUs
   * (PoCL then runs each as straight vector code), the driver's choice
   * elsewhere. 1: a work-item per range covers every head. 2: a group of
   * attention_decode_lanes work-items per (range, head), its lanes along
   * the head. */
  const int cpu = strcmp(kernels->device->info.type, "CPU") == 0;
  const int rows = kernels->params.attention_decode_rows;
  const size_t lanes = (size_t)attention_decode_lanes(p->head_dim);
  const size_t partial_global[3] = {rows == 2 ? (size_t)splits * lanes : (size_t)splits,
                                    rows == 1 ? (size_t)p->n : (size_t)p->heads, rows == 1 ? 1 : (size_t)p->n},
               single[3] = {1, 1, 1}, lane_group[3] = {lanes, 1, 1};
  CLTTT_TRY(runtime_launch(kernels->device, kernels->kernel[KERNEL_ATTENTION_DECODE_PARTIAL],
                           "attention_decode_partial", 3, partial_global,
                           rows == 2 ? lane_group : cpu ? single : NULL));
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION_DECODE_COMBINE, 5, ARG(p->out), ARG(partials), ARG(splits),
                          ARG(p->heads), ARG(p->n)));
  /* A work-item per (head, query), or with ATTENTION_DECODE_ROWS 2 per
   * (element, head, query). */
  const size_t combine_global[3] = {rows == 2 ? (size_t)p->head_dim : (size_t)p->heads,
                                    rows == 2 ? (size_t)p->heads : (size_t)p->n, rows == 2 ? (size_t)p->n : 1};
  return runtime_launch(kernels->device, kernels->kernel[KERNEL_ATTENTION_DECODE_COMBINE],
                        "attention_decode_combine", 3, combine_global, cpu ? single : NULL);
}

clttt_status op_causal_softmax_rows(const kernel_set *kernels, cl_mem scores, int rows, int columns, int ld,
                                    int queries, int first_position) {
  CLTTT_TRY(set_arguments(kernels, KERNEL_CAUSAL_SOFTMAX_ROWS, 6, ARG(scores), ARG(rows), ARG(columns), ARG(ld),
                          ARG(queries), ARG(first_position)));
  /* A work-group per score row. */
  size_t group = (size_t)kernels->params.softmax_work_group_size;
  return launch(kernels, KERNEL_CAUSAL_SOFTMAX_ROWS, (geometry){1, {(size_t)rows * group, 1}, {group, 1}});
}

clttt_status op_attention_tiles_pack_keys(const kernel_set *kernels, cl_mem packed, const attention_problem *p,
                                          int kv_head, int keys) {
  const float scale = 1.0f / sqrtf((float)p->head_dim);
  const int column0 = kv_head * p->head_dim;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION_TILES_PACK_KEYS, 6, ARG(packed), ARG(p->k_cache), ARG(p->kv_dim),
                          ARG(column0), ARG(keys), ARG(scale)));
  /* A work-group of one per key block. */
  const size_t block = (size_t)kernels->params.attention_tile_keys;
  const size_t global[1] = {((size_t)keys + block - 1) / block}, local[1] = {1};
  return runtime_launch(kernels->device, kernels->kernel[KERNEL_ATTENTION_TILES_PACK_KEYS], "attention keys (packing)",
                        1, global, local);
}

clttt_status op_attention_pack_head_rows(const kernel_set *kernels, cl_mem packed, cl_mem cache,
                                         const attention_problem *p, int kv_head, int keys) {
  const int column0 = kv_head * p->head_dim;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION_PACK_HEAD_ROWS, 5, ARG(packed), ARG(cache), ARG(p->kv_dim),
                          ARG(column0), ARG(keys)));
  const size_t global[2] = {(size_t)keys, 1}; /* a work-item per row */
  return runtime_launch(kernels->device, kernels->kernel[KERNEL_ATTENTION_PACK_HEAD_ROWS],
                        cache == p->k_cache ? "attention keys (packing)" : "attention values (packing)", 2, global,
                        NULL);
}

clttt_status op_attention_tiles(const kernel_set *kernels, const attention_problem *p, cl_mem packed_keys,
                                cl_mem packed_values, int kv_head) {
  if (p->head_dim != kernels->head_dim || p->head_dim % 16 != 0 || p->heads % p->kv_heads != 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "attention tiles: head_dim %d (kernels %d; a multiple of 16 needed), %d heads over %d kv heads",
                      p->head_dim, kernels->head_dim, p->heads, p->kv_heads);
  const int group = p->heads / p->kv_heads;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ATTENTION_TILES, 10, ARG(p->out), ARG(p->q), ARG(p->q_ld),
                          ARG(packed_keys), ARG(packed_values), ARG(kv_head), ARG(p->n), ARG(p->position0),
                          ARG(p->heads), ARG(group)));
  /* Single work-item groups: PoCL runs each as straight vector code. */
  const size_t rows = (size_t)kernels->params.attention_tile_rows * (size_t)kernels->params.attention_tile_share;
  const size_t global[2] = {((size_t)p->n + rows - 1) / rows, (size_t)group}, single[2] = {1, 1};
  profile_expect_flops(kernels->device, 4.0 * (double)group * (double)p->head_dim * (double)p->n *
                                            ((double)p->position0 + 0.5 * (double)(p->n + 1)));
  return runtime_launch(kernels->device, kernels->kernel[KERNEL_ATTENTION_TILES], "attention (register tiles)", 2,
                        global, single);
}

clttt_status op_ttt_conv(const kernel_set *kernels, cl_mem tc, matrix_view t, cl_mem weight, int rows, int d) {
  /* A 64-bit offset: over a whole sequence (the two forms) row * d passes 2^31
   * floats after some 800k tokens at d = 2560. */
  cl_ulong t_offset = (cl_ulong)t.offset;
  int t_ld = (int)t.ld;
  CLTTT_TRY(set_arguments(kernels, KERNEL_TTT_CONV, 7, ARG(tc), ARG(t.buffer), ARG(t_offset), ARG(t_ld),
                          ARG(weight), ARG(rows), ARG(d)));
  /* Each work-item runs TTT_CONV_ROWS consecutive rows of TTT_CONV_CHANNELS channels. */
  size_t row_groups = divide_rounding_up((size_t)rows, (size_t)kernels->params.conv_rows);
  size_t channel_groups = divide_rounding_up((size_t)d, (size_t)kernels->params.conv_channels);
  return launch(kernels, KERNEL_TTT_CONV, elementwise_rows(&kernels->params, channel_groups, row_groups));
}

clttt_status op_row_sum_of_squares(const kernel_set *kernels, cl_mem x, int rows, int width, cl_mem sums) {
  CLTTT_TRY(set_arguments(kernels, KERNEL_ROW_SUM_OF_SQUARES, 4, ARG(x), ARG(rows), ARG(width), ARG(sums)));
  /* A work-group reduces one row, as rmsnorm does. */
  size_t group = (size_t)kernels->params.rmsnorm_work_group_size;
  return launch(kernels, KERNEL_ROW_SUM_OF_SQUARES, (geometry){1, {(size_t)rows * group, 1}, {group, 1}});
}

clttt_status op_clip_scale(const kernel_set *kernels, cl_mem sums, int count, float tau, cl_mem scale) {
  CLTTT_TRY(set_arguments(kernels, KERNEL_CLIP_SCALE, 4, ARG(sums), ARG(count), ARG(tau), ARG(scale)));
  /* One work-group for the whole sum. */
  size_t group = (size_t)kernels->params.rmsnorm_work_group_size;
  return launch(kernels, KERNEL_CLIP_SCALE, (geometry){1, {group, 1}, {group, 1}});
}

clttt_status op_add_scaled(const kernel_set *kernels, cl_mem W, cl_mem U, cl_mem scale, size_t count) {
  if (count > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "add_scaled of %zu floats: at most 2^31 - 1", count);
  int n = (int)count;
  CLTTT_TRY(set_arguments(kernels, KERNEL_ADD_SCALED, 4, ARG(W), ARG(U), ARG(scale), ARG(n)));
  return launch(kernels, KERNEL_ADD_SCALED, elementwise_rows(&kernels->params, count, 1));
}

clttt_status op_gemv(const kernel_set *kernels, const char *what, size_t out_features, size_t in_features,
                     matrix_view x, matrix_view weight, float beta, matrix_view y) {
  if (in_features > 0x7fffffff || out_features > 0x7fffffff || weight.offset > 0x7fffffff ||
      x.offset > 0x7fffffff || y.offset > 0x7fffffff || weight.ld > 0x7fffffff)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: GEMV of %zu x %zu at offset %zu: sizes past 2^31",
                      what, out_features, in_features, weight.offset);
  int y_offset = (int)y.offset, x_offset = (int)x.offset, W_offset = (int)weight.offset, ld = (int)weight.ld;
  int out = (int)out_features, in = (int)in_features;
  CLTTT_TRY(set_arguments(kernels, KERNEL_GEMV, 10, ARG(y.buffer), ARG(y_offset), ARG(x.buffer), ARG(x_offset),
                          ARG(weight.buffer), ARG(W_offset), ARG(ld), ARG(out), ARG(in), ARG(beta)));
  /* A row per work-item (CPUs) or a work-group per row (GPUs). */
  size_t group = (size_t)kernels->params.gemv_work_group_size;
  size_t items = kernels->params.gemv_row_per_item ? out_features : out_features * group;
  return launch(kernels, KERNEL_GEMV, (geometry){1, {items, 1}, {group, 1}});
}
