/* The kernel parameter search of `clttt tune`.
 *
 * Each family owns a workload: buffers at the tuning shape filled with
 * seeded random values, and the expected output computed on the host in
 * double precision. A candidate is a copy of the parameter set with the
 * family's parameters changed; a kernel_set is built with its -D options,
 * and the family's kernels run through the same ops the forward pass calls,
 * so what is timed is what the model runs. The first run of a
 * candidate doubles as the warm-up (PoCL and some GPU drivers compile on
 * first launch) and is the one checked against the reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autotune.h"
#include "attention.h"
#include "error.h"
#include "gemm.h"
#include "log.h"
#include "ops.h"
#include "ttt.h"
#include "weights.h"

/* fp32 kernels against a double host computation: reductions over 1024
 * values, exp, cos/sin and online softmax stay far inside this, while a
 * wrong tile, a missed row or a race is off by O(1). */
#define TOLERANCE 1e-4
#define MAX_BUFFERS 8
#define MAX_FAMILY_PARAMETERS 2
#define ATTENTION_SAMPLED_ROWS 8
#define RMS_NORM_EPS 1e-6f

static const char *const family_names[AUTOTUNE_FAMILY_COUNT] = {
    "rmsnorm", "attention", "attention_tiles", "attention_values", "attention_share", "attention_prefetch", "attention_choice", "attention_decode", "attention_short", "rope", "rope_lanes",   "elementwise",   "conv",       "gemv",         "gemm",
    "gemm_blocks", "gemm_gpu", "gemm_choice", "gemm_decode", "gemm_slices", "gemm_prefetch", "update", "update_blocks", "update_gpu",
    "update_choice"};

const char *autotune_family_name(autotune_family family) {
  return family >= 0 && family < AUTOTUNE_FAMILY_COUNT ? family_names[family] : "?";
}

clttt_status autotune_parse_families(const char *list, unsigned *families) {
  *families = 0;
  if (!list || strcmp(list, "all") == 0 || !*list) {
    *families = AUTOTUNE_ALL_FAMILIES;
    return CLTTT_SUCCESS;
  }
  const char *at = list;
  while (*at) {
    const char *end = strchr(at, ',');
    size_t length = end ? (size_t)(end - at) : strlen(at);
    int known = 0;
    for (int f = 0; f < AUTOTUNE_FAMILY_COUNT; f++)
      if (length == strlen(family_names[f]) && strncmp(at, family_names[f], length) == 0) {
        *families |= 1u << f;
        known = 1;
      }
    if (!known) {
      /* The names from the table, so a new family cannot be left out. */
      char names[512] = "";
      size_t used = 0;
      for (int f = 0; f < AUTOTUNE_FAMILY_COUNT && used < sizeof names; f++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s, ", family_names[f]);
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "unknown kernel family '%.*s' (known: %sall)", (int)length, at,
                        names);
    }
    at += length;
    if (*at == ',')
      at++;
  }
  return CLTTT_SUCCESS;
}

void autotune_options_init(autotune_options *options, int quick) {
  memset(options, 0, sizeof *options);
  options->shape = (autotune_shape){.tokens = quick ? 512 : 2048,
                                    .attention_tokens = quick ? 256 : 1024,
                                    .attention_context = quick ? 2048 : 4096,
                                    .hidden = 1024,
                                    .intermediate = 3072,
                                    .heads = 16,
                                    .kv_heads = 8,
                                    .head_dim = 128,
                                    .chunk = quick ? 512 : 1024,
                                    /* At the 0.6B shape's k (3072) every slice length
                                     * from 4096 up is the same kernel, and at d 1024 the
                                     * whole weight (48 MiB) stayed in a large L3, where
                                     * slicing made no difference. */
                                    .slices_n = 4096,
                                    .slices_k = 12288};
  options->families = AUTOTUNE_ALL_FAMILIES;
  options->repetitions = quick ? 3 : 5;
  options->quick = quick;
}

/* ---------------------------------------------------------------- */
/* Workloads                                                          */

typedef struct {
  clttt_device *device;
  const kernel_set *kernels;   /* built with the candidate being measured */
  autotune_shape shape;
  cl_mem buffers[MAX_BUFFERS];
  float *inputs[MAX_BUFFERS];  /* initial contents, re-uploaded before a checked run */
  size_t floats[MAX_BUFFERS];
  float *expected;             /* host reference of what check compares */
  size_t expected_floats;
  float *downloaded;
  int sampled_rows[ATTENTION_SAMPLED_ROWS];
  /* The attention families' batch: queries at positions position0 ..
   * position0 + queries - 1. */
  int attention_queries, attention_position0;
  /* The GEMM families: the weight as the candidate's layout wants it,
   * packed again when a candidate changes the layout. */
  linear_weight weight;
  int weight_ready;
  packed_gemm_type weight_type;
  size_t gemm_rows, gemm_n, gemm_k; /* out (gemm_rows x gemm_n) = x (gemm_rows x gemm_k) W^T */
} workload;

typedef struct {
  autotune_family family;
  const char *parameters[MAX_FAMILY_PARAMETERS]; /* NULL-terminated when fewer */
  /* Each list ends at its first value below the parameter's minimum (the
   * zeros an initializer leaves, or an explicit -1 where 0 is allowed). */
  int full_values[MAX_FAMILY_PARAMETERS][8];
  int quick_values[MAX_FAMILY_PARAMETERS][8];
  clttt_status (*prepare)(workload *work);
  clttt_status (*run)(workload *work);
  /* Largest relative deviation of what the last run wrote from work->expected. */
  clttt_status (*check)(workload *work, double *error);
  /* The buffer the kernels update in place (-1: none): timed runs leave it
   * changed, so it is restored before each checked run. */
  int in_place_buffer;
  /* -1: any device; 0 or 1: only where the GEMM variant (GEMM_VARIANT, or
   * UPDATE_VARIANT for an update family) is that one, since the other
   * variant ignores these parameters. */
  int variant;
  int of_update; /* 1: `variant` is UPDATE_VARIANT's */
} family_spec;

static float uniform(uint64_t *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* Buffer `index` of `floats` values; random in [-scale, scale] unless zero. */
static clttt_status add_buffer(workload *work, int index, size_t floats, float scale, uint64_t seed,
                               const char *what) {
  work->floats[index] = floats;
  work->inputs[index] = malloc(floats * sizeof(float));
  if (!work->inputs[index])
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: %s", what);
  uint64_t state = seed;
  for (size_t i = 0; i < floats; i++)
    work->inputs[index][i] = scale == 0.0f ? 0.0f : scale * uniform(&state);
  CLTTT_TRY(runtime_alloc(work->device, floats * sizeof(float), what, &work->buffers[index]));
  return runtime_upload(work->device, work->buffers[index], 0, floats * sizeof(float),
                        work->inputs[index], what);
}

static clttt_status allocate_expected(workload *work, size_t floats) {
  work->expected_floats = floats;
  work->expected = calloc(floats, sizeof(float));
  work->downloaded = calloc(floats, sizeof(float));
  if (!work->expected || !work->downloaded)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: reference output");
  return CLTTT_SUCCESS;
}

static clttt_status reupload(workload *work, int index) {
  return runtime_upload(work->device, work->buffers[index], 0, work->floats[index] * sizeof(float),
                        work->inputs[index], "tuner input");
}

static void workload_free(workload *work) {
  for (int i = 0; i < MAX_BUFFERS; i++) {
    runtime_release(&work->buffers[i]);
    free(work->inputs[i]);
  }
  free(work->expected);
  free(work->downloaded);
  runtime_release(&work->weight.buffer);
  memset(work, 0, sizeof *work);
}

static double deviation(const float *got, const float *expected, size_t count) {
  double worst = 0.0;
  for (size_t i = 0; i < count; i++) {
    double scale = fabs((double)expected[i]) > 1.0 ? fabs((double)expected[i]) : 1.0;
    double error = fabs((double)got[i] - (double)expected[i]) / scale;
    if (error != error)
      return INFINITY;
    if (error > worst)
      worst = error;
  }
  return worst;
}

/* The check of the families whose reference is a few sampled rows
 * (attention, GEMM, update): rows work->sampled_rows of buffer 0, each
 * expected_floats / ATTENTION_SAMPLED_ROWS wide, against work->expected. */
static clttt_status sampled_rows_check(workload *work, double *error) {
  const size_t width = work->expected_floats / ATTENTION_SAMPLED_ROWS;
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS; s++)
    CLTTT_TRY(runtime_download(work->device, work->buffers[0], (size_t)work->sampled_rows[s] * width * sizeof(float),
                               width * sizeof(float), work->downloaded + (size_t)s * width,
                               "the tuner's sampled output rows"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* rmsnorm: out (tokens x d) = rmsnorm(x) * weight ------------------ */

static clttt_status rmsnorm_prepare(workload *work) {
  const size_t rows = (size_t)work->shape.tokens, d = (size_t)work->shape.hidden;
  CLTTT_TRY(add_buffer(work, 0, rows * d, 0.0f, 1, "tuner rmsnorm output"));
  CLTTT_TRY(add_buffer(work, 1, rows * d, 2.0f, 2, "tuner rmsnorm input"));
  CLTTT_TRY(add_buffer(work, 2, d, 1.0f, 3, "tuner rmsnorm weight"));
  CLTTT_TRY(allocate_expected(work, rows * d));
  for (size_t r = 0; r < rows; r++) {
    const float *x = work->inputs[1] + r * d;
    double sum = 0.0;
    for (size_t c = 0; c < d; c++)
      sum += (double)x[c] * x[c];
    double scale = 1.0 / sqrt(sum / (double)d + RMS_NORM_EPS);
    for (size_t c = 0; c < d; c++)
      work->expected[r * d + c] = (float)(x[c] * scale * work->inputs[2][c]);
  }
  return CLTTT_SUCCESS;
}

static clttt_status rmsnorm_run(workload *work) {
  int rows = work->shape.tokens, d = work->shape.hidden;
  return op_rmsnorm(work->kernels, work->buffers[0], d, work->buffers[1], d, work->buffers[2], rows, d,
                    RMS_NORM_EPS);
}

static clttt_status rmsnorm_check(workload *work, double *error) {
  CLTTT_TRY(runtime_download(work->device, work->buffers[0], 0, work->expected_floats * sizeof(float),
                             work->downloaded, "tuner rmsnorm output"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* attention: causal GQA prefill over attention_tokens ---------------- */

static size_t qkv_width(const autotune_shape *shape) {
  return (size_t)(shape->heads + 2 * shape->kv_heads) * (size_t)shape->head_dim;
}

/* A batch of `queries` queries after `position0` cached keys. */
static clttt_status attention_batch_prepare(workload *work, int queries, int position0) {
  const autotune_shape *shape = &work->shape;
  work->attention_queries = queries;
  work->attention_position0 = position0;
  const size_t n = (size_t)queries, keys = (size_t)position0 + n, hd = (size_t)shape->head_dim;
  const size_t q_dim = (size_t)shape->heads * hd, kv_dim = (size_t)shape->kv_heads * hd;
  const size_t width = qkv_width(shape);
  CLTTT_TRY(add_buffer(work, 0, n * q_dim, 0.0f, 1, "tuner attention output"));
  CLTTT_TRY(add_buffer(work, 1, n * width, 1.0f, 4, "tuner attention q"));
  CLTTT_TRY(add_buffer(work, 2, keys * kv_dim, 1.0f, 5, "tuner K cache"));
  CLTTT_TRY(add_buffer(work, 3, keys * kv_dim, 1.0f, 6, "tuner V cache"));
  /* The full product is O(n^2) on the host; rows spread over the sequence
   * (the first and last tiles included) catch any tiling mistake. */
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS; s++)
    work->sampled_rows[s] = (int)((n - 1) * (size_t)s / (ATTENTION_SAMPLED_ROWS - 1));
  CLTTT_TRY(allocate_expected(work, ATTENTION_SAMPLED_ROWS * q_dim));
  double *scores = malloc(keys * sizeof *scores);
  if (!scores)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: attention reference");
  const double scale = 1.0 / sqrt((double)hd);
  const int group = shape->heads / shape->kv_heads;
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS; s++) {
    const size_t row = (size_t)work->sampled_rows[s], last_key = (size_t)position0 + row;
    for (int head = 0; head < shape->heads; head++) {
      const float *q = work->inputs[1] + row * width + (size_t)head * hd;
      size_t kv_offset = (size_t)(head / group) * hd;
      double largest = -INFINITY, sum = 0.0;
      for (size_t key = 0; key <= last_key; key++) {
        const float *k = work->inputs[2] + key * kv_dim + kv_offset;
        double dot = 0.0;
        for (size_t c = 0; c < hd; c++)
          dot += (double)q[c] * k[c];
        scores[key] = dot * scale;
        if (scores[key] > largest)
          largest = scores[key];
      }
      for (size_t key = 0; key <= last_key; key++) {
        scores[key] = exp(scores[key] - largest);
        sum += scores[key];
      }
      float *out = work->expected + (size_t)s * q_dim + (size_t)head * hd;
      for (size_t c = 0; c < hd; c++) {
        double value = 0.0;
        for (size_t key = 0; key <= last_key; key++)
          value += scores[key] * work->inputs[3][key * kv_dim + kv_offset + c];
        out[c] = (float)(value / sum);
      }
    }
  }
  free(scores);
  return CLTTT_SUCCESS;
}

static clttt_status attention_prepare(workload *work) {
  return attention_batch_prepare(work, work->shape.attention_tokens, 0);
}

static attention_problem attention_batch(const workload *work) {
  const autotune_shape *shape = &work->shape;
  return (attention_problem){work->buffers[0],
                             work->buffers[1],
                             (int)qkv_width(shape),
                             work->buffers[2],
                             work->buffers[3],
                             shape->kv_heads * shape->head_dim,
                             work->attention_queries,
                             work->attention_position0,
                             shape->heads,
                             shape->kv_heads,
                             shape->head_dim};
}

static clttt_status attention_run(workload *work) {
  const attention_problem problem = attention_batch(work);
  return op_attention(work->kernels, &problem);
}

/* attention_tiles, attention_values, attention_share, attention_prefetch, attention_choice: a prefill batch
 * through attention_long_batch (register tiles, or two
 * GEMMs per head with the softmax between them), with the workspace a
 * session gives it: K and V panels, scores of every row. */

/* The score blocks are a session's: as many rows as its budget allows. */
static clttt_status long_batch_prepare(workload *work, int queries, int position0) {
  CLTTT_TRY(attention_batch_prepare(work, queries, position0));
  const autotune_shape *shape = &work->shape;
  const int keys = position0 + queries;
  const size_t panel_bytes = (size_t)attention_panel_floats(keys, shape->head_dim) * sizeof(float);
  CLTTT_TRY(runtime_alloc(work->device, attention_score_floats(shape->heads, keys, queries) * sizeof(float),
                          "tuner attention scores", &work->buffers[4]));
  CLTTT_TRY(runtime_alloc(work->device, panel_bytes, "tuner attention K panels", &work->buffers[5]));
  return runtime_alloc(work->device, panel_bytes, "tuner attention V panels", &work->buffers[6]);
}

static clttt_status prefill_attention_prepare(workload *work) {
  return long_batch_prepare(work, work->shape.attention_tokens, 0);
}

/* attention_share, attention_prefetch: the batch at the end of
 * attention_context, where what they save (K and V streamed from beyond
 * the core's caches) is most of attention's time. */
static clttt_status late_batch_prepare(workload *work) {
  const autotune_shape *shape = &work->shape;
  return long_batch_prepare(work, shape->attention_tokens, shape->attention_context - shape->attention_tokens);
}

static clttt_status prefill_attention_run(workload *work) {
  const attention_problem problem = attention_batch(work);
  const attention_workspace workspace = {.scores = work->buffers[4],
                                         .block_rows = attention_block_rows(problem.heads, problem.position0 + problem.n,
                                                                            problem.n),
                                         .packed_keys = work->buffers[5],
                                         .packed_values = work->buffers[6]};
  return attention_long_batch(work->kernels, &problem, &workspace);
}

/* attention_decode and attention_short: a batch at the end of
 * attention_context through attention_short_batch (the split kernels or the
 * flash kernel) with a session's partials buffer, whatever the device's
 * long-batch threshold. */
static clttt_status late_short_batch_prepare(workload *work, int queries) {
  const autotune_shape *shape = &work->shape;
  CLTTT_TRY(attention_batch_prepare(work, queries, shape->attention_context - queries));
  return runtime_alloc(work->device, (size_t)ATTENTION_DECODE_FLOATS(shape->heads, shape->head_dim) * sizeof(float),
                       "tuner split attention partials", &work->buffers[4]);
}

/* attention_decode: one query after attention_context - 1 cached keys. */
static clttt_status decode_attention_prepare(workload *work) { return late_short_batch_prepare(work, 1); }

/* attention_short: 8 queries, a chat turn's few tokens. */
static clttt_status short_attention_prepare(workload *work) { return late_short_batch_prepare(work, 8); }

static clttt_status short_batch_run(workload *work) {
  const attention_problem problem = attention_batch(work);
  const attention_workspace workspace = {.decode_partials = work->buffers[4]};
  return attention_short_batch(work->kernels, &problem, &workspace);
}

/* rope: q/k norm, rotation and the KV-cache write over tokens ------- */

static clttt_status rope_prepare(workload *work) {
  const autotune_shape *shape = &work->shape;
  const size_t n = (size_t)shape->tokens, hd = (size_t)shape->head_dim, half = hd / 2;
  const size_t width = qkv_width(shape), kv_dim = (size_t)shape->kv_heads * hd;
  const size_t q_dim = (size_t)shape->heads * hd;
  CLTTT_TRY(add_buffer(work, 0, n * width, 1.0f, 7, "tuner q, k, v"));
  CLTTT_TRY(add_buffer(work, 1, half, 0.0f, 0, "tuner RoPE frequencies"));
  CLTTT_TRY(add_buffer(work, 2, hd, 1.0f, 8, "tuner q norm"));
  CLTTT_TRY(add_buffer(work, 3, hd, 1.0f, 9, "tuner k norm"));
  CLTTT_TRY(add_buffer(work, 4, n * kv_dim, 0.0f, 0, "tuner K cache"));
  CLTTT_TRY(add_buffer(work, 5, n * kv_dim, 0.0f, 0, "tuner V cache"));
  float *frequency = work->inputs[1];
  for (size_t i = 0; i < half; i++)
    frequency[i] = (float)pow(1000000.0, -(double)(2 * i) / (double)hd);
  CLTTT_TRY(reupload(work, 1));
  /* Expected: q part of every row, then the K cache, then the V cache. */
  CLTTT_TRY(allocate_expected(work, n * q_dim + 2 * n * kv_dim));
  float *expected_q = work->expected, *expected_k = expected_q + n * q_dim, *expected_v = expected_k + n * kv_dim;
  const int slots = shape->heads + shape->kv_heads;
  for (size_t token = 0; token < n; token++)
    for (int slot = 0; slot < slots; slot++) {
      int is_key = slot >= shape->heads;
      size_t column = is_key ? q_dim + (size_t)(slot - shape->heads) * hd : (size_t)slot * hd;
      const float *x = work->inputs[0] + token * width + column;
      const float *weight = is_key ? work->inputs[3] : work->inputs[2];
      double sum = 0.0;
      for (size_t c = 0; c < hd; c++)
        sum += (double)x[c] * x[c];
      double scale = 1.0 / sqrt(sum / (double)hd + RMS_NORM_EPS);
      float *out = is_key ? expected_k + token * kv_dim + (size_t)(slot - shape->heads) * hd
                          : expected_q + token * q_dim + (size_t)slot * hd;
      for (size_t i = 0; i < half; i++) {
        /* The device forms the angle in float; so does the reference. */
        double angle = (double)((float)token * frequency[i]);
        double a = x[i] * scale * weight[i], b = x[i + half] * scale * weight[i + half];
        out[i] = (float)(a * cos(angle) - b * sin(angle));
        out[i + half] = (float)(b * cos(angle) + a * sin(angle));
      }
      if (is_key)
        memcpy(expected_v + token * kv_dim + (size_t)(slot - shape->heads) * hd, x + kv_dim,
               hd * sizeof(float));
    }
  return CLTTT_SUCCESS;
}

static clttt_status rope_run(workload *work) {
  const autotune_shape *shape = &work->shape;
  const rope_problem problem = {work->buffers[0], (int)qkv_width(shape), shape->tokens, 0, shape->heads,
                                shape->kv_heads, work->buffers[1], 1.0f, work->buffers[2], work->buffers[3],
                                RMS_NORM_EPS, work->buffers[4], work->buffers[5],
                                shape->kv_heads * shape->head_dim};
  return op_qk_norm_rope(work->kernels, &problem);
}

static clttt_status rope_check(workload *work, double *error) {
  const autotune_shape *shape = &work->shape;
  const size_t n = (size_t)shape->tokens, hd = (size_t)shape->head_dim;
  const size_t width = qkv_width(shape), q_dim = (size_t)shape->heads * hd;
  const size_t kv_dim = (size_t)shape->kv_heads * hd;
  float *rows = malloc(n * width * sizeof(float));
  if (!rows)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: rope output");
  clttt_status status = runtime_download(work->device, work->buffers[0], 0, n * width * sizeof(float), rows,
                                         "tuner q, k, v");
  for (size_t token = 0; token < n && status == CLTTT_SUCCESS; token++)
    memcpy(work->downloaded + token * q_dim, rows + token * width, q_dim * sizeof(float));
  free(rows);
  CLTTT_TRY(status);
  CLTTT_TRY(runtime_download(work->device, work->buffers[4], 0, n * kv_dim * sizeof(float),
                             work->downloaded + n * q_dim, "tuner K cache"));
  CLTTT_TRY(runtime_download(work->device, work->buffers[5], 0, n * kv_dim * sizeof(float),
                             work->downloaded + n * q_dim + n * kv_dim, "tuner V cache"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* elementwise: swiglu (tokens x f) and the residual add (tokens x d) -- */

static clttt_status elementwise_prepare(workload *work) {
  const size_t n = (size_t)work->shape.tokens, d = (size_t)work->shape.hidden;
  const size_t f = (size_t)work->shape.intermediate;
  CLTTT_TRY(add_buffer(work, 0, n * f, 0.0f, 0, "tuner h"));
  CLTTT_TRY(add_buffer(work, 1, n * 2 * f, 4.0f, 10, "tuner gate and up"));
  CLTTT_TRY(add_buffer(work, 2, n * d, 1.0f, 11, "tuner residual"));
  CLTTT_TRY(add_buffer(work, 3, n * d, 1.0f, 12, "tuner delta"));
  CLTTT_TRY(allocate_expected(work, n * f + n * d));
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < f; j++) {
      double gate = work->inputs[1][i * 2 * f + j], up = work->inputs[1][i * 2 * f + f + j];
      work->expected[i * f + j] = (float)(gate / (1.0 + exp(-gate)) * up);
    }
  for (size_t i = 0; i < n * d; i++)
    work->expected[n * f + i] = work->inputs[2][i] + work->inputs[3][i];
  return CLTTT_SUCCESS;
}

static clttt_status elementwise_run(workload *work) {
  const size_t n = (size_t)work->shape.tokens, d = (size_t)work->shape.hidden;
  CLTTT_TRY(op_swiglu(work->kernels, work->buffers[0], work->buffers[1], (int)n, work->shape.intermediate));
  return op_add_in_place(work->kernels, work->buffers[2], work->buffers[3], n * d);
}

static clttt_status elementwise_check(workload *work, double *error) {
  const size_t n = (size_t)work->shape.tokens, d = (size_t)work->shape.hidden;
  const size_t f = (size_t)work->shape.intermediate;
  CLTTT_TRY(runtime_download(work->device, work->buffers[0], 0, n * f * sizeof(float), work->downloaded,
                             "tuner h"));
  CLTTT_TRY(runtime_download(work->device, work->buffers[2], 0, n * d * sizeof(float),
                             work->downloaded + n * f, "tuner residual"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* conv: the TTT target convolution over one chunk -------------------- */

static clttt_status conv_prepare(workload *work) {
  const size_t rows = (size_t)work->shape.chunk, d = (size_t)work->shape.hidden;
  CLTTT_TRY(add_buffer(work, 0, rows * d, 0.0f, 0, "tuner conv output"));
  CLTTT_TRY(add_buffer(work, 1, rows * d, 1.0f, 13, "tuner conv input"));
  CLTTT_TRY(add_buffer(work, 2, d * 5, 0.5f, 14, "tuner conv weight"));
  CLTTT_TRY(allocate_expected(work, rows * d));
  for (size_t i = 0; i < rows; i++)
    for (size_t channel = 0; channel < d; channel++) {
      double sum = 0.0;
      for (int tap = 0; tap < 5; tap++) {
        long source = (long)i + tap - 2;
        if (source >= 0 && source < (long)rows)
          sum += (double)work->inputs[2][channel * 5 + (size_t)tap] * work->inputs[1][(size_t)source * d + channel];
      }
      work->expected[i * d + channel] = (float)sum;
    }
  return CLTTT_SUCCESS;
}

static clttt_status conv_run(workload *work) {
  int d = work->shape.hidden, rows = work->shape.chunk;
  return op_ttt_conv(work->kernels, work->buffers[0], view(work->buffers[1], 0, (size_t)d), work->buffers[2], rows,
                     d);
}

static clttt_status conv_check(workload *work, double *error) {
  CLTTT_TRY(runtime_download(work->device, work->buffers[0], 0, work->expected_floats * sizeof(float),
                             work->downloaded, "tuner conv output"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* gemv: one decode matrix-vector product, W (f x d) x (d) --------------- */

static clttt_status gemv_prepare(workload *work) {
  const size_t rows = (size_t)work->shape.intermediate, columns = (size_t)work->shape.hidden;
  CLTTT_TRY(add_buffer(work, 0, rows, 0.0f, 0, "tuner gemv output"));
  CLTTT_TRY(add_buffer(work, 1, columns, 1.0f, 15, "tuner gemv input"));
  CLTTT_TRY(add_buffer(work, 2, rows * columns, 1.0f, 16, "tuner gemv matrix"));
  CLTTT_TRY(allocate_expected(work, rows));
  for (size_t row = 0; row < rows; row++) {
    double sum = 0.0;
    for (size_t c = 0; c < columns; c++)
      sum += (double)work->inputs[2][row * columns + c] * work->inputs[1][c];
    work->expected[row] = (float)sum;
  }
  return CLTTT_SUCCESS;
}

static clttt_status gemv_run(workload *work) {
  const size_t rows = (size_t)work->shape.intermediate, columns = (size_t)work->shape.hidden;
  /* y (f) = W (f x d) x (d), as gemm_linear runs it for one token */
  return gemm_linear(work->kernels, "tuner gemv", 1, rows, columns, view(work->buffers[1], 0, columns),
                     view(work->buffers[2], 0, columns), 0.0f, view(work->buffers[0], 0, rows));
}

static clttt_status gemv_check(workload *work, double *error) {
  CLTTT_TRY(runtime_download(work->device, work->buffers[0], 0, work->expected_floats * sizeof(float),
                             work->downloaded, "tuner gemv output"));
  *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return CLTTT_SUCCESS;
}

/* gemm*: out (tokens x f) = x (tokens x d) W^T, W f x d, through
 * gemm_weight as the forward pass calls it. The layout families run bf16
 * weights (what real checkpoints hold; GEMM_LOCAL_K only matters for
 * 16-bit ones), the choice family fp32 (the only type CLBlast can take).
 * gemm_decode times one row (a decode step: panels per work-item and the
 * prefetch distance) against a bf16 weight of d columns and at least the 2f
 * rows of the stacked gate/up weight, grown to four times the device's
 * global memory cache (autotune_decode_weight_rows): decode streams its weights
 * from memory, and the 12 MiB of the 0.6B gate/up weight alone sat in a
 * Zen 4's 32 MiB L3: 0.1-0.2 ms a call at up to 119 GB/s, twice the
 * memory's rate, so the ranking was the cache's (bench/RESULTS.md section
 * 26). gemm_slices runs the shape's slices_n x slices_k product in fp32
 * (Qwen3-8B's down projection unless the caller says otherwise). Sampled rows are checked against a double host product
 * of the rounded weights. --------------------------------------------- */

/* out (rows x f) = x (rows x d) W^T: here f and d name the output and input
 * widths, whichever of the shape's they are. */
static clttt_status gemm_prepare_type(workload *work, packed_gemm_type type, size_t rows, size_t f, size_t d) {
  work->gemm_rows = rows;
  work->gemm_n = f;
  work->gemm_k = d;
  CLTTT_TRY(add_buffer(work, 0, rows * f, 0.0f, 0, "tuner GEMM output"));
  CLTTT_TRY(add_buffer(work, 1, rows * d, 1.0f, 31, "tuner GEMM input"));
  work->inputs[2] = malloc(f * d * sizeof(float));
  if (!work->inputs[2])
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: GEMM weight");
  work->floats[2] = f * d;
  uint64_t state = 32;
  const float scale = 1.0f / sqrtf((float)d);
  for (size_t i = 0; i < f * d; i++) {
    float value = scale * uniform(&state);
    work->inputs[2][i] = type == PACKED_GEMM_BF16 ? packed_gemm_bf16_to_float(packed_gemm_float_to_bf16(value)) : value;
  }
  work->weight_type = type;
  CLTTT_TRY(allocate_expected(work, ATTENTION_SAMPLED_ROWS * f));
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS; s++) {
    const size_t row = (rows - 1) * (size_t)s / (ATTENTION_SAMPLED_ROWS - 1);
    work->sampled_rows[s] = (int)row;
    if (s > 0 && work->sampled_rows[s - 1] == (int)row) {
      /* one row (gemm_decode): every sample is that row, and its weight is large */
      memcpy(work->expected + (size_t)s * f, work->expected + (size_t)(s - 1) * f, f * sizeof *work->expected);
      continue;
    }
    for (size_t c = 0; c < f; c++) {
      double sum = 0.0;
      for (size_t j = 0; j < d; j++)
        sum += (double)work->inputs[1][row * d + j] * work->inputs[2][c * d + j];
      work->expected[(size_t)s * f + c] = (float)sum;
    }
  }
  return CLTTT_SUCCESS;
}

static clttt_status gemm_prepare_bf16(workload *work) {
  return gemm_prepare_type(work, PACKED_GEMM_BF16, (size_t)work->shape.tokens, (size_t)work->shape.intermediate,
                           (size_t)work->shape.hidden);
}
static clttt_status gemm_prepare_f32(workload *work) {
  return gemm_prepare_type(work, PACKED_GEMM_F32, (size_t)work->shape.tokens, (size_t)work->shape.intermediate,
                           (size_t)work->shape.hidden);
}
size_t autotune_decode_weight_rows(uint64_t cache, uint64_t global_memory, uint64_t max_allocation, size_t columns,
                                   size_t minimum_rows) {
  uint64_t bytes = 4 * cache, cap = (uint64_t)512 << 20;
  if (global_memory > 0 && global_memory / 16 < cap)
    cap = global_memory / 16;
  if (max_allocation > 0 && max_allocation < cap)
    cap = max_allocation;
  if (bytes > cap)
    bytes = cap;
  const size_t row_bytes = columns * sizeof(uint16_t), rows = columns > 0 ? (size_t)(bytes / row_bytes) : 0;
  return rows > minimum_rows ? rows : minimum_rows;
}

static clttt_status gemm_prepare_decode(workload *work) {
  const size_t columns = (size_t)work->shape.hidden;
  cl_ulong cache = 0;
  if (clGetDeviceInfo(work->device->id, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof cache, &cache, NULL) != CL_SUCCESS)
    cache = 0;
  const size_t rows = autotune_decode_weight_rows(cache, work->device->info.global_memory,
                                                  work->device->info.max_allocation, columns,
                                                  2 * (size_t)work->shape.intermediate);
  return gemm_prepare_type(work, PACKED_GEMM_BF16, 1, rows, columns);
}
static clttt_status gemm_prepare_down(workload *work) {
  return gemm_prepare_type(work, PACKED_GEMM_F32, (size_t)work->shape.tokens, (size_t)work->shape.slices_n,
                           (size_t)work->shape.slices_k);
}

/* The weight in the layout the current candidate's kernels read: packed
 * with its GEMM parameters, or row-major for CLBlast. */
static clttt_status gemm_weight_for_candidate(workload *work) {
  const packed_gemm_params *params = &work->kernels->params.gemm;
  const int packed = work->weight_type != PACKED_GEMM_F32 || work->kernels->params.gemm_packed;
  const size_t f = work->gemm_n, d = work->gemm_k;
  packed_gemm_layout layout;
  if (packed)
    CLTTT_TRY(packed_gemm_layout_for(params, work->weight_type, f, d, &layout));
  else
    CLTTT_TRY(packed_gemm_row_major_layout(PACKED_GEMM_F32, f, d, &layout));
  if (work->weight_ready && work->weight.packed == packed && memcmp(&layout, &work->weight.layout, sizeof layout) == 0)
    return CLTTT_SUCCESS;
  runtime_release(&work->weight.buffer);
  work->weight_ready = 0;
  const size_t bytes = packed_gemm_bytes(&layout);
  unsigned char *host = malloc(bytes);
  if (!host)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: packing the GEMM weight");
  clttt_status status = packed_gemm_pack(&layout, host, 0, f, work->inputs[2], PACKED_GEMM_F32, d);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(work->device, bytes, "tuner GEMM weight", &work->weight.buffer);
  if (status == CLTTT_SUCCESS)
    status = runtime_upload(work->device, work->weight.buffer, 0, bytes, host, "tuner GEMM weight");
  free(host);
  CLTTT_TRY(status);
  work->weight.out_features = f;
  work->weight.in_features = d;
  work->weight.packed = packed;
  work->weight.layout = layout;
  work->weight_ready = 1;
  return CLTTT_SUCCESS;
}

static clttt_status gemm_run(workload *work) {
  CLTTT_TRY(gemm_weight_for_candidate(work));
  if (work->weight.packed && !work->kernels->has_packed)
    CLTTT_TRY(kernel_set_add_packed((kernel_set *)work->kernels));
  const size_t rows = work->gemm_rows, f = work->gemm_n, d = work->gemm_k;
  /* out (rows x f) = x (rows x d) W^T */
  return gemm_weight(work->kernels, "tuner GEMM", rows, view(work->buffers[1], 0, d), &work->weight, 0.0f,
                     view(work->buffers[0], 0, f));
}

/* update*: the TTT update's product W (d x f) += eta V^T (d x C) h (C x f)
 * as ttt_update runs it (our update kernel or CLBlast, by UPDATE_OWN), at
 * the shape's d, f and C. W starts random, so a missed or doubled term is
 * off by O(eta V^T h) = O(1) relative to it; sampled rows of W are checked
 * against a double host product. W changes in place: restored before the
 * checked run. Where a session keeps the fast weight in the GEMM's panels
 * (ttt_fast_weight_panels: the CPU variant with GEMM_PACKED and UPDATE_OWN,
 * d a multiple of GEMM_NR), the update goes into a
 * panel copy of W, packed from the row-major W in every run (a tenth of
 * the update's time at the 0.6B shape, counted in), and the check reads its
 * rows from there; the CPU variant's UPDATE_* tiles (update,
 * update_blocks) then do not apply (autotune_family_applies). -------- */

static float update_eta(const autotune_shape *shape) { return 1.0f / sqrtf((float)shape->chunk); }

static clttt_status update_prepare(workload *work) {
  const size_t d = (size_t)work->shape.hidden, f = (size_t)work->shape.intermediate, C = (size_t)work->shape.chunk;
  CLTTT_TRY(add_buffer(work, 0, d * f, 1.0f, 41, "tuner update W"));
  CLTTT_TRY(add_buffer(work, 1, C * d, 1.0f, 42, "tuner update V"));
  CLTTT_TRY(add_buffer(work, 2, C * f, 1.0f, 43, "tuner update h"));
  /* The one-pass kernel's packed V and h; NaN, so that a value it read
   * before writing would show in the check. */
  CLTTT_TRY(add_buffer(work, 3, (size_t)packed_gemm_update_scratch_bytes(d, f, C) / sizeof(float), NAN, 44,
                       "tuner update scratch"));
  CLTTT_TRY(add_buffer(work, 4, d * f, NAN, 45, "tuner update W in panels"));
  CLTTT_TRY(allocate_expected(work, ATTENTION_SAMPLED_ROWS * f));
  const double eta = update_eta(&work->shape);
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS; s++) {
    const size_t row = (d - 1) * (size_t)s / (ATTENTION_SAMPLED_ROWS - 1);
    work->sampled_rows[s] = (int)row;
    for (size_t column = 0; column < f; column++) {
      double sum = 0.0;
      for (size_t c = 0; c < C; c++)
        sum += (double)work->inputs[1][c * d + row] * work->inputs[2][c * f + column];
      work->expected[(size_t)s * f + column] = (float)(work->inputs[0][row * f + column] + eta * sum);
    }
  }
  return CLTTT_SUCCESS;
}

static clttt_status update_run(workload *work) {
  if (work->kernels->params.update_own && !work->kernels->has_packed)
    CLTTT_TRY(kernel_set_add_packed((kernel_set *)work->kernels));
  const size_t d = (size_t)work->shape.hidden, f = (size_t)work->shape.intermediate, C = (size_t)work->shape.chunk;
  packed_gemm_layout panels;
  if (ttt_fast_weight_panels(work->kernels, (int)d, (int)f, &panels)) {
    /* W (d x f, in panels) = W0; W += eta * V^T (d x C) h (C x f) */
    CLTTT_TRY(packed_gemm_pack_device(&work->kernels->packed, "tuner update W into panels", &panels, work->buffers[4],
                                      0, work->buffers[0], PACKED_GEMM_F32, 0, f, 1, 1.0f));
    return packed_gemm_update_panels(&work->kernels->packed, "tuner update", &panels, C, update_eta(&work->shape),
                                     view(work->buffers[1], 0, d), view(work->buffers[2], 0, f), work->buffers[4],
                                     work->buffers[3]);
  }
  /* W (d x f) += eta * V^T (d x C) h (C x f) */
  return ttt_update_product(work->kernels, "tuner update", d, f, C, update_eta(&work->shape),
                            view(work->buffers[1], 0, d), view(work->buffers[2], 0, f), view(work->buffers[0], 0, f),
                            work->buffers[3]);
}

/* The sampled rows of W, from its panels where update_run put it there. */
static clttt_status update_check(workload *work, double *error) {
  const size_t d = (size_t)work->shape.hidden, f = (size_t)work->shape.intermediate;
  packed_gemm_layout panels;
  if (!ttt_fast_weight_panels(work->kernels, (int)d, (int)f, &panels))
    return sampled_rows_check(work, error);
  float *all = malloc(d * f * sizeof *all);
  if (!all)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "the tuner's update check (%zu x %zu floats)", d, f);
  clttt_status status =
      runtime_download(work->device, work->buffers[4], 0, d * f * sizeof(float), all, "the tuner's W in panels");
  for (int s = 0; s < ATTENTION_SAMPLED_ROWS && status == CLTTT_SUCCESS; s++)
    for (size_t j = 0; j < f; j++)
      work->downloaded[(size_t)s * f + j] = all[packed_gemm_index(&panels, (size_t)work->sampled_rows[s], j)];
  free(all);
  if (status == CLTTT_SUCCESS)
    *error = deviation(work->downloaded, work->expected, work->expected_floats);
  return status;
}

static const family_spec families[AUTOTUNE_FAMILY_COUNT] = {
    {AUTOTUNE_RMSNORM,
     {"RMSNORM_WGS", NULL},
     {{1, 16, 32, 64, 128, 256, 512, 1024}},
     {{1, 32, 64, 128, 256}},
     rmsnorm_prepare,
     rmsnorm_run,
     rmsnorm_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION,
     {"ATTENTION_BLOCK_Q", "ATTENTION_BLOCK_K"},
     {{8, 16, 32, 64, 128}, {16, 32, 64, 128}},
     {{8, 16, 32}, {32, 64}},
     attention_prepare,
     attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_TILES,
     {"ATTENTION_TILE_ROWS", "ATTENTION_TILE_KEYS"},
     {{4, 6, 8, 12}, {16, 32, 64, 128}},
     {{4, 6, 8}, {32, 64}},
     prefill_attention_prepare,
     prefill_attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_VALUES,
     {"ATTENTION_TILE_VALUES", NULL},
     {{1, 2, 4, 8}},
     {{1, 2, 4}},
     prefill_attention_prepare,
     prefill_attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_SHARE,
     {"ATTENTION_TILE_SHARE", NULL},
     {{1, 2, 4, 8, 16}},
     {{2, 4, 8}},
     late_batch_prepare,
     prefill_attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_PREFETCH,
     {"ATTENTION_TILE_PREFETCH", NULL},
     {{0, 2, 4, 8, 16}},
     {{0, 4, 8}},
     late_batch_prepare,
     prefill_attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_CHOICE,
     {"ATTENTION_TILES", NULL},
     {{0, 1, -1}},
     {{0, 1, -1}},
     prefill_attention_prepare,
     prefill_attention_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_DECODE,
     {"ATTENTION_DECODE_ROWS", "ATTENTION_DECODE_KEYS"},
     {{0, 1, 2, -1}, {32, 64, 128, 256, 512}},
     {{0, 1, 2, -1}, {32, 128}},
     decode_attention_prepare,
     short_batch_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ATTENTION_SHORT,
     {"ATTENTION_SHORT_SPLIT", NULL},
     {{0, 1, -1}},
     {{0, 1, -1}},
     short_attention_prepare,
     short_batch_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_ROPE,
     {"ROPE_WGS", NULL},
     {{1, 8, 16, 32, 64, 128, 256}},
     {{1, 16, 64, 256}},
     rope_prepare,
     rope_run,
     rope_check,
     0,
     -1,
     0},
    {AUTOTUNE_ROPE_LANES,
     {"ROPE_HEAD_LANES", NULL},
     {{0, 1, -1}},
     {{0, 1, -1}},
     rope_prepare,
     rope_run,
     rope_check,
     0,
     -1,
     0},
    {AUTOTUNE_ELEMENTWISE,
     {"ELEMENTWISE_WGS", "VECTOR_WIDTH"},
     {{32, 64, 128, 256, 512}, {1, 2, 4, 8}},
     {{64, 256}, {1, 4}},
     elementwise_prepare,
     elementwise_run,
     elementwise_check,
     2,
     -1,
     0},
    {AUTOTUNE_CONV,
     {"TTT_CONV_ROWS", "TTT_CONV_CHANNELS"},
     {{1, 2, 4, 8, 16, 32}, {1, 4, 16}},
     {{1, 8, 16}, {1, 16}},
     conv_prepare,
     conv_run,
     conv_check,
     -1,
     -1,
     0},
    {AUTOTUNE_GEMV,
     {"GEMV_ROW_PER_ITEM", "GEMV_WGS"},
     {{0, 1, -1}, {1, 4, 16, 64, 128, 256}},
     {{0, 1, -1}, {16, 64, 256}},
     gemv_prepare,
     gemv_run,
     gemv_check,
     -1,
     -1,
     0},
    {AUTOTUNE_GEMM,
     {"GEMM_NR", "GEMM_MR"},
     {{16, 32, 48, 64}, {4, 6, 8, 12}},
     {{32, 64}, {6, 8}},
     gemm_prepare_bf16,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_CPU,
     0},
    {AUTOTUNE_GEMM_BLOCKS,
     {"GEMM_ROW_BLOCK", "GEMM_LOCAL_K"},
     {{32, 64, 128, 256, 512}, {0, 64, 128, 256, 512, -1}},
     {{64, 128, 256}, {0, 256, -1}},
     gemm_prepare_bf16,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_CPU,
     0},
    {AUTOTUNE_GEMM_GPU,
     {"GEMM_TILE_M", "GEMM_TILE_K"},
     {{16, 32, 64, 128}, {8, 16, 32}},
     {{32, 64}, {16, 32}},
     gemm_prepare_bf16,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_GPU,
     0},
    {AUTOTUNE_GEMM_CHOICE,
     {"GEMM_PACKED", NULL},
     {{0, 1, -1}},
     {{0, 1, -1}},
     gemm_prepare_f32,
     gemm_run,
     sampled_rows_check,
     -1,
     -1,
     0},
    {AUTOTUNE_GEMM_DECODE,
     {"GEMM_GEMV_PANELS", "GEMM_GEMV_PREFETCH"},
     {{1, 2, 4, 8}, {0, 8, 16, 32, 64, -1}},
     {{1, 2, 4, 8}, {0, 16, -1}},
     gemm_prepare_decode,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_CPU,
     0},
    {AUTOTUNE_GEMM_SLICES,
     {"GEMM_K_SLICE", NULL},
     {{0, 1024, 2048, 4096, 8192, -1}},
     {{0, 1024, 4096, -1}},
     gemm_prepare_down,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_CPU,
     0},
    {AUTOTUNE_GEMM_PREFETCH,
     {"GEMM_PREFETCH", NULL},
     {{0, 4, 8, 16, 32, 64, -1}},
     {{0, 16, -1}},
     gemm_prepare_f32,
     gemm_run,
     sampled_rows_check,
     -1,
     PACKED_GEMM_CPU,
     0},
    {AUTOTUNE_UPDATE,
     {"UPDATE_NR", "UPDATE_MR"},
     {{16, 32, 48, 64}, {4, 6, 8, 12}},
     {{32, 64}, {6, 8}},
     update_prepare,
     update_run,
     update_check,
     0,
     PACKED_GEMM_CPU,
     1},
    /* The row block with the form of the update: one pass over packed
     * operands, or slices staged per work-item (UPDATE_LOCAL_T, the staged
     * form's slice, is not searched: the one-pass form ignores it, so a
     * search of it there would pick by noise). */
    {AUTOTUNE_UPDATE_BLOCKS,
     {"UPDATE_ROW_BLOCK", "UPDATE_PACKED"},
     {{32, 64, 96, 128, 256, 512}, {0, 1, -1}},
     {{64, 96, 128}, {0, 1, -1}},
     update_prepare,
     update_run,
     update_check,
     0,
     PACKED_GEMM_CPU,
     1},
    {AUTOTUNE_UPDATE_GPU,
     {"UPDATE_TILE_M", "UPDATE_TILE_N"},
     {{16, 32, 64, 128}, {16, 32, 64, 128}},
     {{32, 64}, {32, 64}},
     update_prepare,
     update_run,
     update_check,
     0,
     PACKED_GEMM_GPU,
     1},
    {AUTOTUNE_UPDATE_CHOICE,
     {"UPDATE_OWN", NULL},
     {{0, 1, -1}},
     {{0, 1, -1}},
     update_prepare,
     update_run,
     update_check,
     0,
     -1,
     0},
};

/* ---------------------------------------------------------------- */
/* The search                                                         */

static const tuning_parameter *find_parameter(const char *name) {
  for (int i = 0; i < tuning_parameter_count; i++)
    if (strcmp(tuning_parameters[i].name, name) == 0)
      return &tuning_parameters[i];
  return NULL;
}

static double now_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void describe(const family_spec *spec, const tuning_params *params, char *label, size_t capacity) {
  size_t used = 0;
  label[0] = '\0';
  for (int p = 0; p < MAX_FAMILY_PARAMETERS && spec->parameters[p] && used < capacity; p++) {
    int written = snprintf(label + used, capacity - used, "%s%s=%d", p ? " " : "", spec->parameters[p],
                           tuning_get(params, find_parameter(spec->parameters[p])));
    if (written < 0)
      break;
    used += (size_t)written;
  }
}

static int same_family_values(const family_spec *spec, const tuning_params *a, const tuning_params *b) {
  for (int p = 0; p < MAX_FAMILY_PARAMETERS && spec->parameters[p]; p++) {
    const tuning_parameter *parameter = find_parameter(spec->parameters[p]);
    if (tuning_get(a, parameter) != tuning_get(b, parameter))
      return 0;
  }
  return 1;
}

/* Values the device can run; the attention tile must also fit local memory
 * at the shape's own head size. */
static int runnable(const clttt_device_info *info, const autotune_shape *shape, const tuning_params *params) {
  char why[256];
  if (!tuning_valid(info, params, why, sizeof why))
    return 0;
  size_t tile_bytes = 2 * (size_t)params->attention_block_k * (size_t)shape->head_dim * sizeof(float);
  return info->local_memory == 0 || tile_bytes <= info->local_memory;
}

static clttt_status add_candidate(autotune_result *result, const autotune_candidate *candidate) {
  if (result->candidate_count == result->candidate_capacity) {
    int capacity = result->candidate_capacity ? 2 * result->candidate_capacity : 32;
    autotune_candidate *grown = realloc(result->candidates, (size_t)capacity * sizeof *grown);
    if (!grown)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tuner: candidate list");
    result->candidates = grown;
    result->candidate_capacity = capacity;
  }
  result->candidates[result->candidate_count++] = *candidate;
  return CLTTT_SUCCESS;
}

/* The family's candidate sets, the built-in defaults first (they calibrate
 * how many launches one timed run needs). */
static int value_count(const tuning_parameter *parameter, const int *values) {
  int count = 0;
  while (count < 8 && values[count] >= parameter->minimum)
    count++;
  return count;
}

static clttt_status list_candidates(const clttt_device_info *info, const autotune_options *options,
                                    const family_spec *spec, const tuning_params *current,
                                    const tuning_params *defaults, autotune_result *result, int *first) {
  *first = result->candidate_count;
  autotune_candidate candidate;
  memset(&candidate, 0, sizeof candidate);
  candidate.family = spec->family;
  candidate.params = *current;
  for (int p = 0; p < MAX_FAMILY_PARAMETERS && spec->parameters[p]; p++) {
    const tuning_parameter *parameter = find_parameter(spec->parameters[p]);
    tuning_set(&candidate.params, parameter, tuning_get(defaults, parameter));
  }
  candidate.is_default = 1;
  describe(spec, &candidate.params, candidate.label, sizeof candidate.label);
  CLTTT_TRY(add_candidate(result, &candidate));
  candidate.is_default = 0;

  const int(*values)[8] = options->quick ? spec->quick_values : spec->full_values;
  int first_count = value_count(find_parameter(spec->parameters[0]), values[0]);
  int second_count = spec->parameters[1] ? value_count(find_parameter(spec->parameters[1]), values[1]) : 1;
  for (int a = 0; a < first_count; a++)
    for (int b = 0; b < second_count; b++) {
      tuning_params params = *current;
      tuning_set(&params, find_parameter(spec->parameters[0]), values[0][a]);
      if (spec->parameters[1])
        tuning_set(&params, find_parameter(spec->parameters[1]), values[1][b]);
      if (same_family_values(spec, &params, &result->candidates[*first].params) ||
          !runnable(info, &options->shape, &params))
        continue;
      candidate.params = params;
      describe(spec, &params, candidate.label, sizeof candidate.label);
      CLTTT_TRY(add_candidate(result, &candidate));
    }
  return CLTTT_SUCCESS;
}

static clttt_status time_candidate(workload *work, const family_spec *spec, autotune_candidate *candidate,
                                   int repetitions, int *launches_per_run);

/* Runs, checks and times one candidate. Problems of the candidate itself
 * (build, launch, wrong output) are recorded in it; only the tuner's own
 * failures (host memory, uploads) come back as errors. */
static clttt_status measure(workload *work, const family_spec *spec, autotune_candidate *candidate,
                            int repetitions, int *launches_per_run) {
  clttt_device *device = work->device;
  if (spec->in_place_buffer >= 0)
    CLTTT_TRY(reupload(work, spec->in_place_buffer));
  kernel_set kernels;
  clttt_status status = kernel_set_create(&kernels, device, &candidate->params, work->shape.head_dim, 0);
  work->kernels = &kernels;
  if (status == CLTTT_SUCCESS)
    status = spec->run(work);
  if (status == CLTTT_SUCCESS)
    status = runtime_finish(device);
  if (status != CLTTT_SUCCESS) {
    candidate->state = AUTOTUNE_FAILED;
    snprintf(candidate->failure, sizeof candidate->failure, "%s", clttt_last_error());
    clttt_clear_error();
    kernel_set_release(&kernels);
    return CLTTT_SUCCESS;
  }
  status = time_candidate(work, spec, candidate, repetitions, launches_per_run);
  kernel_set_release(&kernels);
  work->kernels = NULL;
  return status;
}

/* Checks the run that measure() made, then times the candidate. */
static clttt_status time_candidate(workload *work, const family_spec *spec, autotune_candidate *candidate,
                                   int repetitions, int *launches_per_run) {
  clttt_device *device = work->device;
  CLTTT_TRY(spec->check(work, &candidate->error));
  if (!(candidate->error <= TOLERANCE)) {
    candidate->state = AUTOTUNE_MISMATCH;
    snprintf(candidate->failure, sizeof candidate->failure, "output differs from the reference by %.3g",
             candidate->error);
    return CLTTT_SUCCESS;
  }
  if (*launches_per_run == 0) {
    /* Short kernels are repeated inside a run so that launch overhead and
     * timer resolution stay small against what is measured. */
    double start = now_ms();
    CLTTT_TRY(spec->run(work));
    CLTTT_TRY(runtime_finish(device));
    double once = now_ms() - start;
    const double wanted_ms = 20.0;
    *launches_per_run = once >= wanted_ms ? 1 : once <= 0.2 ? 100 : (int)ceil(wanted_ms / once);
  }
  double times[32];
  if (repetitions > 32)
    repetitions = 32;
  for (int r = 0; r < repetitions; r++) {
    double start = now_ms();
    for (int l = 0; l < *launches_per_run; l++)
      CLTTT_TRY(spec->run(work));
    CLTTT_TRY(runtime_finish(device));
    times[r] = (now_ms() - start) / *launches_per_run;
  }
  qsort(times, (size_t)repetitions, sizeof times[0], compare_doubles);
  candidate->median_ms = repetitions % 2 ? times[repetitions / 2]
                                         : 0.5 * (times[repetitions / 2 - 1] + times[repetitions / 2]);
  candidate->state = AUTOTUNE_MEASURED;
  return CLTTT_SUCCESS;
}

static clttt_status tune_family(clttt_device *device, const autotune_options *options, const family_spec *spec,
                                const tuning_params *defaults, autotune_result *result) {
  workload work;
  memset(&work, 0, sizeof work);
  work.device = device;
  work.shape = options->shape;
  clttt_status status = spec->prepare(&work);
  int first = 0;
  if (status == CLTTT_SUCCESS)
    status = list_candidates(&device->info, options, spec, &result->best, defaults, result, &first);
  int launches_per_run = 0, winner = -1;
  for (int c = first; c < result->candidate_count && status == CLTTT_SUCCESS; c++) {
    status = measure(&work, spec, &result->candidates[c], options->repetitions > 0 ? options->repetitions : 1,
                     &launches_per_run);
    if (status != CLTTT_SUCCESS)
      break;
    autotune_candidate *candidate = &result->candidates[c];
    if (candidate->is_default && candidate->state != AUTOTUNE_MEASURED) {
      status = clttt_fail(CLTTT_ERROR_KERNEL_BUILD, "tuning %s: the built-in defaults (%s) fail on device '%s': %s",
                          autotune_family_name(spec->family), candidate->label, device->info.name,
                          candidate->failure);
      break;
    }
    if (candidate->is_default)
      result->default_ms[spec->family] = candidate->median_ms;
    if (candidate->state == AUTOTUNE_MEASURED &&
        (winner < 0 || candidate->median_ms < result->candidates[winner].median_ms))
      winner = c;
    if (options->progress)
      options->progress(candidate, options->progress_context);
  }
  if (status == CLTTT_SUCCESS && winner >= 0) {
    result->candidates[winner].is_winner = 1;
    result->best = result->candidates[winner].params;
    result->best_ms[spec->family] = result->candidates[winner].median_ms;
  }
  workload_free(&work);
  return status;
}

/* Why `family` is not searched with these parameters, or NULL. */
static const char *family_skip_reason(autotune_family family, const tuning_params *params, int hidden) {
  if (family < 0 || family >= AUTOTUNE_FAMILY_COUNT)
    return "no such family";
  const family_spec *spec = &families[family];
  const int variant = spec->of_update ? (int)params->update.variant : (int)params->gemm.variant;
  if (spec->of_update && spec->variant == PACKED_GEMM_CPU && ttt_fast_weight_in_panels(params, hidden))
    return "the TTT fast weight lives in the GEMM's panels on this device and its update runs with the GEMM's "
           "tiles (update_choice times that)";
  if ((family == AUTOTUNE_ATTENTION_PREFETCH || family == AUTOTUNE_ATTENTION_VALUES) && !params->attention_tiles)
    return "its parameter is only the register-tile attention's, and ATTENTION_TILES is 0 on this device";
  if (family == AUTOTUNE_ROPE && params->rope_head_lanes)
    return "ROPE_WGS is only the per-token form's, and ROPE_HEAD_LANES is 1 on this device";
  if (spec->variant >= 0 && variant != spec->variant)
    return spec->variant == PACKED_GEMM_CPU ? "its parameters are the CPU variant's, and this device runs the GPU one"
                                            : "its parameters are the GPU variant's, and this device runs the CPU one";
  return NULL;
}

int autotune_family_applies(autotune_family family, const tuning_params *params, int hidden) {
  return family_skip_reason(family, params, hidden) == NULL;
}

clttt_status autotune_run(clttt_device *device, const autotune_options *options, autotune_result *result) {
  memset(result, 0, sizeof *result);
  if (!device || !options)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "autotune_run: NULL argument");
  const autotune_shape *shape = &options->shape;
  if (shape->tokens < 1 || shape->attention_tokens < 1 || shape->attention_context < shape->attention_tokens ||
      shape->hidden < 1 || shape->intermediate < 1 ||
      shape->heads < 1 || shape->kv_heads < 1 || shape->heads % shape->kv_heads != 0 || shape->head_dim < 2 ||
      shape->head_dim % 2 != 0 || shape->head_dim > 512 || shape->chunk < 1)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "autotune_run: inconsistent shape");
  tuning_params defaults;
  tuning_defaults(&device->info, &defaults);
  result->start = device->tuning;
  result->best = device->tuning;
  clttt_status status = CLTTT_SUCCESS;
  /* Candidates run through kernel sets of their own; the device's set is
   * never touched (programs built for candidates stay cached under their
   * own options). */
  for (int f = 0; f < AUTOTUNE_FAMILY_COUNT && status == CLTTT_SUCCESS; f++) {
    if (!(options->families & (1u << f)))
      continue;
    const char *skipped = family_skip_reason((autotune_family)f, &result->best, shape->hidden);
    if (skipped)
      log_info("tuning: %s not searched: %s", family_names[f], skipped);
    else
      status = tune_family(device, options, &families[f], &defaults, result);
  }
  return status;
}

clttt_status autotune_list(const clttt_device_info *info, const autotune_options *options, autotune_result *result) {
  memset(result, 0, sizeof *result);
  if (!info || !options)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "autotune_list: NULL argument");
  tuning_params defaults;
  tuning_defaults(info, &defaults);
  result->start = defaults;
  result->best = defaults;
  for (int f = 0; f < AUTOTUNE_FAMILY_COUNT; f++) {
    if (!(options->families & (1u << f)) || family_skip_reason((autotune_family)f, &defaults, options->shape.hidden))
      continue;
    int first = 0;
    CLTTT_TRY(list_candidates(info, options, &families[f], &defaults, &defaults, result, &first));
  }
  return CLTTT_SUCCESS;
}

void autotune_result_free(autotune_result *result) {
  free(result->candidates);
  memset(result, 0, sizeof *result);
}

/* ---------------------------------------------------------------- */
/* The public face (clttt.h)                                          */

struct clttt_tune_result {
  clttt_device *device;
  autotune_result result;
  clttt_tune_candidate *public_candidates;
};

/* What a progress callback of the public API needs from a candidate. */
static clttt_tune_candidate public_candidate(const autotune_candidate *candidate) {
  clttt_tune_candidate out = {autotune_family_name(candidate->family),
                              candidate->label,
                              candidate->state == AUTOTUNE_MEASURED   ? CLTTT_TUNE_MEASURED
                              : candidate->state == AUTOTUNE_MISMATCH ? CLTTT_TUNE_MISMATCH
                                                                      : CLTTT_TUNE_FAILED,
                              candidate->median_ms,
                              candidate->error,
                              candidate->is_default,
                              candidate->is_winner,
                              candidate->failure};
  return out;
}

typedef struct {
  const clttt_tune_params *params;
} progress_relay;

static void relay_progress(const autotune_candidate *candidate, void *context) {
  const progress_relay *relay = context;
  clttt_tune_candidate shown = public_candidate(candidate);
  relay->params->progress(&shown, relay->params->user_data);
}

clttt_tune_params clttt_tune_default_params(void) {
  clttt_tune_params params;
  memset(&params, 0, sizeof params);
  return params;
}

clttt_status clttt_tune_describe(const clttt_tune_params *params, char *text, size_t capacity) {
  if (!text || capacity == 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tune_describe: no text buffer");
  autotune_options options;
  autotune_options_init(&options, params && params->quick);
  CLTTT_TRY(autotune_parse_families(params ? params->families : NULL, &options.families));
  const autotune_shape *shape = &options.shape;
  snprintf(text, capacity,
           "d %d, f %d, %d query / %d KV heads of %d, %d tokens (attention %d; attention_share and "
           "attention_prefetch the last %d of %d), conv chunk %d; median of %d runs per candidate",
           shape->hidden, shape->intermediate, shape->heads, shape->kv_heads, shape->head_dim, shape->tokens,
           shape->attention_tokens, shape->attention_tokens, shape->attention_context, shape->chunk,
           options.repetitions);
  return CLTTT_SUCCESS;
}

clttt_status clttt_tune(clttt_tune_result **result_out, clttt_device *device, const clttt_tune_params *params) {
  if (!result_out || !device)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tune: NULL argument");
  *result_out = NULL;
  clttt_tune_params given = params ? *params : clttt_tune_default_params();
  autotune_options options;
  autotune_options_init(&options, given.quick);
  CLTTT_TRY(autotune_parse_families(given.families, &options.families));
  progress_relay relay = {&given};
  if (given.progress) {
    options.progress = relay_progress;
    options.progress_context = &relay;
  }
  clttt_tune_result *result = calloc(1, sizeof *result);
  if (!result)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "clttt_tune: result");
  result->device = device;
  clttt_status status = autotune_run(device, &options, &result->result);
  if (status == CLTTT_SUCCESS && result->result.candidate_count > 0) {
    result->public_candidates = calloc((size_t)result->result.candidate_count, sizeof *result->public_candidates);
    if (!result->public_candidates)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "clttt_tune: result");
    for (int c = 0; result->public_candidates && c < result->result.candidate_count; c++)
      result->public_candidates[c] = public_candidate(&result->result.candidates[c]);
  }
  if (status != CLTTT_SUCCESS) {
    clttt_tune_result_free(result);
    return status;
  }
  *result_out = result;
  return CLTTT_SUCCESS;
}

int clttt_tune_candidate_count(const clttt_tune_result *result) {
  return result ? result->result.candidate_count : 0;
}

const clttt_tune_candidate *clttt_tune_get_candidate(const clttt_tune_result *result, int index) {
  if (!result || index < 0 || index >= result->result.candidate_count)
    return NULL;
  return &result->public_candidates[index];
}

static int family_index(const char *family) {
  for (int f = 0; family && f < AUTOTUNE_FAMILY_COUNT; f++)
    if (strcmp(family, family_names[f]) == 0)
      return f;
  return -1;
}

double clttt_tune_default_ms(const clttt_tune_result *result, const char *family) {
  int f = family_index(family);
  return result && f >= 0 ? result->result.default_ms[f] : 0.0;
}

double clttt_tune_best_ms(const clttt_tune_result *result, const char *family) {
  int f = family_index(family);
  return result && f >= 0 ? result->result.best_ms[f] : 0.0;
}

void clttt_tune_describe_best(const clttt_tune_result *result, char *text, size_t capacity) {
  if (!text || capacity == 0)
    return;
  text[0] = '\0';
  if (result)
    tuning_defines(&result->result.best, text, capacity);
}

clttt_status clttt_tune_store(const clttt_tune_result *result, const char *path, char *written, size_t capacity) {
  if (!result)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tune_store: result is NULL");
  char cache_path[4096];
  if (path)
    snprintf(cache_path, sizeof cache_path, "%s", path);
  else
    CLTTT_TRY(tuning_cache_path(cache_path, sizeof cache_path));
  CLTTT_TRY(tuning_cache_store(cache_path, &result->device->info, &result->result.best));
  if (written && capacity > 0)
    snprintf(written, capacity, "%s", cache_path);
  return CLTTT_SUCCESS;
}

void clttt_tune_result_free(clttt_tune_result *result) {
  if (!result)
    return;
  autotune_result_free(&result->result);
  free(result->public_candidates);
  free(result);
}
