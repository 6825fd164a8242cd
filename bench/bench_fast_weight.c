/* Fast-weight microbenchmark: one In-Place TTT layer's MLP over a sequence of
 * chunks (SPEC.md sections 3 and 7), on one OpenCL device.
 *
 * Per chunk of C tokens, in the order the model runs them, through the
 * products the forward pass uses (our packed GEMM and update kernel where
 * the device's parameters choose them, else CLBlast):
 *   gate_up  (C x 2f) = x (C x d) [Wg; Wu]^T         gemm_weight
 *   swiglu   h (C x f) = silu(gate) * up              cl/elementwise.cl
 *   apply    out (C x d) = h W^T                      ttt_apply
 *   update   tc = conv(t), V = tc P, W += eta V^T h   ttt_update (conv + proj + update)
 * with t = x (ttt_target = hidden_states). FLOPs per token as SPEC.md
 * section 7: MLP 6df + update 2df + projection 2d^2 + conv 10d.
 *
 * Every repetition runs a whole sequence of chunks with a host timer and a
 * clFinish after each step, which gives the per-step breakdown; the update's
 * split into conv / projection / update product is measured separately by
 * issuing the same calls ttt_update makes (a probe on a scratch copy of W).
 * In full mode one more sequence runs without intermediate synchronisation
 * ("pipelined") to show what the per-step synchronisation costs. The same run
 * times the device's FMA peak (before and after; the better counts) and a
 * plain CLBlast SGEMM (C x f x d, no transposes): the ratios to them are the
 * numbers that survive a noisy machine. With --peer (or --quick), PyTorch
 * runs the same layer (bench/torch_fast_weight.py) right after each chunk
 * size, when python3 can import torch; otherwise a note says why not.
 * --rounds N alternates the two N times per chunk size and reports each
 * side's median round: one round each let a single slow minute decide the
 * ratio (PyTorch read 6000-8500 tokens/s in this harness where it ran
 * 9700-10300 alone, and not in every run). */
#define _DEFAULT_SOURCE /* getloadavg, clock_gettime */
#include "runtime.h" /* first: it fixes the OpenCL version the other headers see */

#include <clblast_c.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "error.h"
#include "fma_peak.h"
#include "gemm.h"
#include "ttt.h"

/* Where bench/torch_fast_weight.py is (Makefile.am sets it). */
#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "bench"
#endif

#define MAX_CHUNK_SIZES 32
#define MAX_OVERRIDES 8
#define MAX_REPS 16
#define MAX_ROUNDS 9
#define MIN_SEQUENCE_CHUNKS 16

enum {
  STEP_GATE_UP,
  STEP_SWIGLU,
  STEP_APPLY,
  STEP_UPDATE, /* ttt_update as a whole: conv + projection + update product */
  STEP_CONV,   /* the three parts of the update, from the probe */
  STEP_PROJ,
  STEP_UPDATE_GEMM,
  STEP_COUNT
};
static const char *const step_names[STEP_COUNT] = {"gate_up", "swiglu", "apply", "update",
                                                   "conv", "proj", "update_gemm"};

typedef struct {
  const char *kernel;          /* "Xgemm", "XgemmDirect", ... */
  int count;
  char names[24][32];
  size_t values[24];
  const char *name_pointers[24];
} clblast_override;

typedef struct {
  const char *shape;
  int d, f;
  int chunks[MAX_CHUNK_SIZES];
  int chunk_count;
  int sequence_chunks; /* chunks per timed sequence */
  int reps;            /* timed sequences per chunk size */
  int pipelined;       /* one more sequence without per-step synchronisation */
  int sgemm_reps;
  int quick, json;
  const char *device;
  const char *plot;
  float eta;
  float clip_tau;      /* > 0: every update clipped to this Frobenius norm (costs what clipping costs) */
  clblast_override overrides[MAX_OVERRIDES];
  int override_count;
  int peer;            /* PyTorch after each chunk size: 1 on, 0 off, -1 unset */
  int rounds;          /* clttt and PyTorch alternated this many times per chunk size */
  const char *python;  /* the interpreter that runs the peer */
} options;

typedef struct {
  int C;
  double ms_per_chunk;          /* median over repetitions of sequence time / chunks */
  double ms_min, ms_max;        /* range over repetitions */
  double pipelined_ms;          /* < 0 when not measured */
  double step_ms[STEP_COUNT];   /* median per chunk */
  double flops_per_chunk;
  double sgemm_gflops;          /* best of sgemm_reps, C x f x d */
  double sgemm_ms;
  int finite;                   /* outputs and W finite after the sequence */
  int fast_weight_panels;       /* 1: W in the GEMM's panels (ttt_fast_weight_panels), 0: row-major */
  double peer_tokens_per_s;     /* PyTorch's median round, same chunk size; 0: not run */
  double peer_min, peer_max;    /* PyTorch's range over the rounds */
  int rounds;                   /* rounds this result is the median of */
} result;

/* ---------------------------------------------------------------- */

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *values, int count) {
  if (count <= 0)
    return 0.0;
  qsort(values, (size_t)count, sizeof *values, compare_doubles);
  return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

static void note(const options *opt, const char *format, ...) CLTTT_PRINTF(2, 3);
static void note(const options *opt, const char *format, ...) {
  (void)opt;
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fflush(stderr);
}

/* Deterministic uniform numbers in [-scale, scale). */
static void fill_uniform(float *data, size_t count, float scale, unsigned long long *state) {
  for (size_t i = 0; i < count; i++) {
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(*state >> 11) * (1.0 / 9007199254740992.0);
    data[i] = (float)((2.0 * u - 1.0) * scale);
  }
}

static clttt_status upload_uniform(clttt_device *device, size_t count, float scale,
                                   unsigned long long seed, const char *what, cl_mem *buffer) {
  CLTTT_TRY(runtime_alloc(device, count * sizeof(float), what, buffer));
  float *host = malloc(count * sizeof(float));
  if (!host)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: %zu floats of host memory", what, count);
  fill_uniform(host, count, scale, &seed);
  clttt_status status = runtime_upload(device, *buffer, 0, count * sizeof(float), host, what);
  free(host);
  return status;
}

/* A rows x columns weight of uniform values laid out as the forward pass
 * lays it (weights.c): packed into our GEMM's panels where the device's
 * parameters choose it (GEMM_PACKED), row-major for CLBlast otherwise.
 * `transposed`: packed, the weight is the transpose of the generated
 * matrix (the TTT projection, held as P^T); row-major it is the matrix. */
static clttt_status weight_uniform(clttt_device *device, size_t rows, size_t columns, float scale,
                                   unsigned long long seed, int transposed, const char *what,
                                   linear_weight *weight) {
  memset(weight, 0, sizeof *weight);
  weight->out_features = rows;
  weight->in_features = columns;
  weight->packed = device->tuning.gemm_packed != 0;
  float *host = malloc(rows * columns * sizeof(float)), *ordered = malloc(rows * columns * sizeof(float));
  if (!host || !ordered) {
    free(host);
    free(ordered);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: %zu floats of host memory", what, rows * columns);
  }
  fill_uniform(host, rows * columns, scale, &seed);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < columns; c++)
      ordered[r * columns + c] = transposed && weight->packed ? host[c * rows + r] : host[r * columns + c];
  clttt_status status = weight->packed
                            ? packed_gemm_layout_for(&device->tuning.gemm, PACKED_GEMM_F32, rows, columns, &weight->layout)
                            : packed_gemm_row_major_layout(PACKED_GEMM_F32, rows, columns, &weight->layout);
  const size_t bytes = packed_gemm_bytes(&weight->layout);
  unsigned char *packed = status == CLTTT_SUCCESS ? malloc(bytes) : NULL;
  if (status == CLTTT_SUCCESS && !packed)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: packing", what);
  if (status == CLTTT_SUCCESS)
    status = packed_gemm_pack(&weight->layout, packed, 0, rows, ordered, PACKED_GEMM_F32, columns);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, bytes, what, &weight->buffer);
  if (status == CLTTT_SUCCESS)
    status = runtime_upload(device, weight->buffer, 0, bytes, packed, what);
  free(packed);
  free(host);
  free(ordered);
  return status;
}

static clttt_status all_finite(clttt_device *device, cl_mem buffer, size_t count, const char *what,
                               int *finite) {
  float *host = malloc(count * sizeof(float));
  if (!host)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: %zu floats of host memory", what, count);
  clttt_status status = runtime_download(device, buffer, 0, count * sizeof(float), host, what);
  for (size_t i = 0; status == CLTTT_SUCCESS && i < count; i++)
    if (!isfinite(host[i])) {
      *finite = 0;
      break;
    }
  free(host);
  return status;
}

/* ---------------------------------------------------------------- */
/* One configuration: device buffers for one chunk size. */

typedef struct {
  int C, d, f;
  cl_mem x;         /* 2 chunks of inputs (C x d each), alternated along the sequence */
  linear_weight gate_up_w; /* 2f x d: [Wg; Wu], laid out as the forward pass lays it */
  cl_mem gate_up;   /* C x 2f */
  cl_mem h;         /* C x f */
  cl_mem W;         /* d x f: the fast weight */
  cl_mem W_probe;   /* d x f: scratch for the update split probe */
  cl_mem conv;      /* d x 5 */
  linear_weight P;  /* d x d: P row-major, or P^T packed (as weights.c holds ttt_proj) */
  cl_mem out;       /* C x d */
  ttt_layer layer;
  packed_gemm_layout panels; /* W's, where the device keeps a fast weight in panels (as a session does) */
  ttt_workspace workspace;
  int workspace_ready;
  kernel_set kernels; /* built with the device's parameters, as a session's are */
} config_buffers;

static void config_free(config_buffers *b) {
  runtime_release(&b->x);
  runtime_release(&b->gate_up_w.buffer);
  runtime_release(&b->gate_up);
  runtime_release(&b->h);
  runtime_release(&b->W);
  runtime_release(&b->W_probe);
  runtime_release(&b->conv);
  runtime_release(&b->P.buffer);
  runtime_release(&b->out);
  if (b->workspace_ready)
    ttt_workspace_free(&b->workspace);
  b->workspace_ready = 0;
  kernel_set_release(&b->kernels);
}

static clttt_status config_create(clttt_device *device, const options *opt, int C, config_buffers *b) {
  memset(b, 0, sizeof *b);
  const size_t d = (size_t)opt->d, f = (size_t)opt->f, c = (size_t)C;
  b->C = C;
  b->d = opt->d;
  b->f = opt->f;
  /* Scales keep every value O(1) over many chunks: no overflow, no denormals. */
  const float inv_sqrt_d = 1.0f / sqrtf((float)d);
  CLTTT_TRY(upload_uniform(device, 2 * c * d, 1.0f, 1, "bench inputs x (2 x C x d)", &b->x));
  CLTTT_TRY(weight_uniform(device, 2 * f, d, 1.7f * inv_sqrt_d, 2, 0, "bench [Wg; Wu] (2f x d)", &b->gate_up_w));
  CLTTT_TRY(upload_uniform(device, d * f, 1.7f / sqrtf((float)f), 3, "bench W_down (d x f)", &b->W));
  CLTTT_TRY(upload_uniform(device, d * 5, 0.3f, 4, "bench ttt_conv (d x 5)", &b->conv));
  CLTTT_TRY(weight_uniform(device, d, d, 1.7f * inv_sqrt_d, 5, 1, "bench ttt_proj (d x d)", &b->P));
  CLTTT_TRY(runtime_alloc(device, c * 2 * f * sizeof(float), "bench gate_up (C x 2f)", &b->gate_up));
  CLTTT_TRY(runtime_alloc(device, c * f * sizeof(float), "bench h (C x f)", &b->h));
  CLTTT_TRY(runtime_alloc(device, d * f * sizeof(float), "bench W probe (d x f)", &b->W_probe));
  CLTTT_TRY(runtime_alloc(device, c * d * sizeof(float), "bench out (C x d)", &b->out));
  CLTTT_TRY(runtime_copy(device, b->W_probe, 0, b->W, 0, d * f * sizeof(float), "bench W probe"));
  CLTTT_TRY(ttt_workspace_create(device, &b->workspace, C, opt->d, opt->f, opt->clip_tau > 0.0f));
  b->workspace_ready = 1;
  b->layer.scratch = b->workspace.scratch; /* as a session's TTT state does */
  CLTTT_TRY(kernel_set_create(&b->kernels, device, &device->tuning, 128, 0));
  b->layer.d = opt->d;
  b->layer.f = opt->f;
  b->layer.C = C;
  /* A small step: the benchmark runs many chunks on random data and W must
   * stay O(1) (denormals or infinities would distort CPU timings). */
  b->layer.eta = opt->eta / (float)C;
  b->layer.clip_tau = opt->clip_tau;
  b->layer.conv = b->conv;
  b->layer.projection = b->P.buffer;
  /* Packed: the buffer holds P^T in panels, as weights.c's load_projection does. */
  b->layer.projection_packed = b->P.packed ? &b->P.layout : NULL;
  /* W where a session's TTT state keeps it on this device (src/ttt.h). */
  if (ttt_fast_weight_panels(&b->kernels, b->d, b->f, &b->panels)) {
    cl_mem rows = NULL;
    CLTTT_TRY(runtime_alloc(device, d * f * sizeof(float), "bench W_down rows (d x f)", &rows));
    clttt_status status = runtime_copy(device, rows, 0, b->W, 0, d * f * sizeof(float), "bench W_down rows");
    if (status == CLTTT_SUCCESS)
      status = packed_gemm_pack_device(&b->kernels.packed, "bench W into panels", &b->panels, b->W, 0, rows,
                                       PACKED_GEMM_F32, 0, f, 1, 1.0f);
    if (status == CLTTT_SUCCESS)
      status = runtime_copy(device, b->W_probe, 0, b->W, 0, d * f * sizeof(float), "bench W probe");
    runtime_release(&rows);
    CLTTT_TRY(status);
    b->layer.fast_weight_panels = &b->panels;
  }
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* The steps. */

static clttt_status step_gate_up(clttt_device *device, config_buffers *b, int chunk) {
  const size_t d = (size_t)b->d, f = (size_t)b->f, c = (size_t)b->C;
  (void)device;
  /* gate_up (C x 2f) = x (C x d) [Wg; Wu]^T, as the forward pass runs it */
  return gemm_weight(&b->kernels, "bench gate and up projections", c, view(b->x, (size_t)(chunk % 2) * c * d, d),
                     &b->gate_up_w, 0.0f, view(b->gate_up, 0, 2 * f));
}

static clttt_status step_swiglu(clttt_device *device, config_buffers *b) {
  (void)device;
  /* The op the forward pass calls (src/forward.c). */
  return op_swiglu(&b->kernels, b->h, b->gate_up, b->C, b->f);
}

static clttt_status step_apply(clttt_device *device, config_buffers *b) {
  (void)device;
  return ttt_apply(&b->kernels, &b->layer, b->W, (size_t)b->C, view(b->h, 0, (size_t)b->f), 0.0f,
                   view(b->out, 0, (size_t)b->d));
}

static clttt_status step_update(clttt_device *device, config_buffers *b, int chunk) {
  const size_t d = (size_t)b->d, c = (size_t)b->C;
  (void)device;
  return ttt_update(&b->kernels, &b->layer, &b->workspace, b->W, view(b->h, 0, (size_t)b->f),
                    view(b->x, (size_t)(chunk % 2) * c * d, d));
}

/* The update's parts, issued as ttt_update issues them (src/ttt.c), each
 * timed on its own; W_probe takes the update so the sequence's W is untouched. */
static clttt_status update_probe(clttt_device *device, config_buffers *b, double *conv_ms,
                                 double *proj_ms, double *update_ms) {
  const size_t d = (size_t)b->d, f = (size_t)b->f, c = (size_t)b->C;
  CLTTT_TRY(runtime_finish(device));
  double t0 = now_ms();
  CLTTT_TRY(op_ttt_conv(&b->kernels, b->workspace.conv_out, view(b->x, 0, d), b->conv, (int)c, (int)d));
  CLTTT_TRY(runtime_finish(device));
  double t1 = now_ms();
  if (b->layer.projection_packed)
    /* V (C x d) = tc (C x d) (P^T)^T, as ttt_update runs it */
    CLTTT_TRY(packed_gemm_run(&b->kernels.packed, "bench target projection (tc P)", b->layer.projection_packed, c,
                              view(b->workspace.conv_out, 0, d), b->P.buffer, 0, 0.0f,
                              view(b->workspace.targets, 0, d)));
  else
    CLTTT_TRY(gemm(device, "bench target projection (tc P)", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE, c, d, d, 1.0f,
                   view(b->workspace.conv_out, 0, d), view(b->P.buffer, 0, d), 0.0f,
                   view(b->workspace.targets, 0, d)));
  CLTTT_TRY(runtime_finish(device));
  double t2 = now_ms();
  if (b->layer.fast_weight_panels)
    /* W (d x f, in panels) += eta V^T h, as ttt_update runs it */
    CLTTT_TRY(packed_gemm_update_panels(&b->kernels.packed, "bench update (W += eta V^T h)", b->layer.fast_weight_panels,
                                        c, b->layer.eta, view(b->workspace.targets, 0, d), view(b->h, 0, f),
                                        b->W_probe, b->workspace.scratch));
  else if (b->kernels.params.update_own && b->kernels.has_packed)
    /* W (d x f) += eta V^T h through our update kernel, as ttt_update runs it */
    CLTTT_TRY(packed_gemm_update(&b->kernels.packed, "bench update (W += eta V^T h)", d, f, c, b->layer.eta,
                                 view(b->workspace.targets, 0, d), view(b->h, 0, f), view(b->W_probe, 0, f),
                                 b->workspace.scratch));
  else
    CLTTT_TRY(gemm(device, "bench update (W += eta V^T h)", GEMM_TRANSPOSE, GEMM_NO_TRANSPOSE, d, f, c, b->layer.eta,
                   view(b->workspace.targets, 0, d), view(b->h, 0, f), 1.0f, view(b->W_probe, 0, f)));
  CLTTT_TRY(runtime_finish(device));
  double t3 = now_ms();
  *conv_ms = t1 - t0;
  *proj_ms = t2 - t1;
  *update_ms = t3 - t2;
  return CLTTT_SUCCESS;
}

/* One chunk; with `stepped`, a clFinish after each step and its time into step_ms. */
static clttt_status run_chunk(clttt_device *device, config_buffers *b, int chunk, int stepped,
                              double *step_ms) {
  double t = stepped ? now_ms() : 0.0;
#define STEP(index, call)                          \
  do {                                             \
    CLTTT_TRY(call);                               \
    if (stepped) {                                 \
      CLTTT_TRY(runtime_finish(device));           \
      double t_next_ = now_ms();                   \
      step_ms[index] += t_next_ - t;               \
      t = t_next_;                                 \
    }                                              \
  } while (0)
  STEP(STEP_GATE_UP, step_gate_up(device, b, chunk));
  STEP(STEP_SWIGLU, step_swiglu(device, b));
  STEP(STEP_APPLY, step_apply(device, b));
  STEP(STEP_UPDATE, step_update(device, b, chunk));
#undef STEP
  return CLTTT_SUCCESS;
}

/* The reference: a plain row-major SGEMM, m = C, n = f, k = d, no transposes,
 * x (C x d) times W (d x f) into the gate_up buffer. Best of reps. */
static clttt_status sgemm_reference(clttt_device *device, const options *opt, config_buffers *b,
                                    double *gflops, double *best_ms) {
  const size_t d = (size_t)b->d, f = (size_t)b->f, c = (size_t)b->C;
  double best = 0.0;
  for (int r = 0; r <= opt->sgemm_reps; r++) { /* r = 0: warm-up */
    CLTTT_TRY(runtime_finish(device));
    double t0 = now_ms();
    CLTTT_TRY(gemm(device, "bench reference SGEMM (C x f x d)", GEMM_NO_TRANSPOSE, GEMM_NO_TRANSPOSE,
                   c, f, d, 1.0f, view(b->x, 0, d), view(b->W_probe, 0, f), 0.0f,
                   view(b->gate_up, 0, f)));
    CLTTT_TRY(runtime_finish(device));
    double elapsed = now_ms() - t0;
    if (r > 0 && (best == 0.0 || elapsed < best))
      best = elapsed;
  }
  *best_ms = best;
  *gflops = 2.0 * (double)c * (double)f * (double)d / (best * 1e6);
  return CLTTT_SUCCESS;
}

static double step_flops(int step, double C, double d, double f) {
  switch (step) {
    case STEP_GATE_UP: return 4.0 * C * d * f;
    case STEP_APPLY: return 2.0 * C * d * f;
    case STEP_UPDATE: return C * (2.0 * d * f + 2.0 * d * d + 10.0 * d);
    case STEP_CONV: return 10.0 * C * d;
    case STEP_PROJ: return 2.0 * C * d * d;
    case STEP_UPDATE_GEMM: return 2.0 * C * d * f;
    default: return 0.0;
  }
}

static clttt_status bench_chunk_size(clttt_device *device, const options *opt, int C, result *res) {
  config_buffers b;
  memset(res, 0, sizeof *res);
  res->C = C;
  res->pipelined_ms = -1.0;
  res->finite = 1;
  const double d = opt->d, f = opt->f;
  res->flops_per_chunk = (double)C * (6.0 * d * f + 2.0 * d * f + 2.0 * d * d + 10.0 * d);

  clttt_status status = config_create(device, opt, C, &b);
  res->fast_weight_panels = b.layer.fast_weight_panels != NULL;
  /* Warm-up: one chunk of every step (CLBlast compiles its kernels on first
   * use of a routine and layout; PoCL builds or loads from its disk cache). */
  double t0 = now_ms();
  double dummy[STEP_COUNT] = {0};
  double conv_ms = 0, proj_ms = 0, upd_ms = 0;
  if (status == CLTTT_SUCCESS)
    status = run_chunk(device, &b, 0, 1, dummy);
  if (status == CLTTT_SUCCESS)
    status = update_probe(device, &b, &conv_ms, &proj_ms, &upd_ms);
  if (status == CLTTT_SUCCESS)
    note(opt, "  C=%d: warm-up %.0f ms\n", C, now_ms() - t0);

  if (status == CLTTT_SUCCESS)
    status = sgemm_reference(device, opt, &b, &res->sgemm_gflops, &res->sgemm_ms);
  if (status == CLTTT_SUCCESS)
    note(opt, "  C=%d: reference SGEMM %dx%dx%d: %.1f ms, %.1f GFLOP/s\n", C, C, opt->f, opt->d,
         res->sgemm_ms, res->sgemm_gflops);

  double per_chunk[MAX_REPS];
  double steps[STEP_COUNT][MAX_REPS];
  for (int r = 0; r < opt->reps && status == CLTTT_SUCCESS; r++) {
    double step_ms[STEP_COUNT] = {0};
    status = runtime_finish(device);
    double start = now_ms();
    for (int k = 0; k < opt->sequence_chunks && status == CLTTT_SUCCESS; k++)
      status = run_chunk(device, &b, k, 1, step_ms);
    if (status == CLTTT_SUCCESS)
      status = runtime_finish(device);
    double total = now_ms() - start;
    /* The split of the update: best of two probes (single calls are noisy). */
    for (int probe = 0; probe < 2 && status == CLTTT_SUCCESS; probe++) {
      double parts[3] = {0, 0, 0};
      status = update_probe(device, &b, &parts[0], &parts[1], &parts[2]);
      for (int p = 0; p < 3; p++)
        if (probe == 0 || parts[p] < step_ms[STEP_CONV + p])
          step_ms[STEP_CONV + p] = parts[p];
    }
    if (status != CLTTT_SUCCESS)
      break;
    per_chunk[r] = total / opt->sequence_chunks;
    for (int s = 0; s < STEP_COUNT; s++)
      steps[s][r] = s < STEP_CONV ? step_ms[s] / opt->sequence_chunks : step_ms[s];
    note(opt, "  C=%d: sequence %d/%d: %d chunks in %.0f ms (%.1f ms/chunk)\n", C, r + 1, opt->reps,
         opt->sequence_chunks, total, per_chunk[r]);
  }
  if (status == CLTTT_SUCCESS) {
    res->ms_min = res->ms_max = per_chunk[0];
    for (int r = 1; r < opt->reps; r++) {
      if (per_chunk[r] < res->ms_min)
        res->ms_min = per_chunk[r];
      if (per_chunk[r] > res->ms_max)
        res->ms_max = per_chunk[r];
    }
    res->ms_per_chunk = median(per_chunk, opt->reps);
    for (int s = 0; s < STEP_COUNT; s++)
      res->step_ms[s] = median(steps[s], opt->reps);
  }

  if (status == CLTTT_SUCCESS && opt->pipelined) {
    double start = now_ms();
    for (int k = 0; k < opt->sequence_chunks && status == CLTTT_SUCCESS; k++)
      status = run_chunk(device, &b, k, 0, NULL);
    if (status == CLTTT_SUCCESS)
      status = runtime_finish(device);
    res->pipelined_ms = (now_ms() - start) / opt->sequence_chunks;
    if (status == CLTTT_SUCCESS)
      note(opt, "  C=%d: pipelined sequence: %.1f ms/chunk\n", C, res->pipelined_ms);
  }

  if (status == CLTTT_SUCCESS)
    note(opt, "  C=%d: %.1f ms/chunk, %.0f tokens/s, %.2f GFLOP/s, %.2f x the reference SGEMM\n", C,
         res->ms_per_chunk, C / (res->ms_per_chunk * 1e-3), res->flops_per_chunk / (res->ms_per_chunk * 1e6),
         res->flops_per_chunk / (res->ms_per_chunk * 1e6) / res->sgemm_gflops);
  if (status == CLTTT_SUCCESS)
    status = all_finite(device, b.W, (size_t)opt->d * opt->f, "bench W after the sequence", &res->finite);
  if (status == CLTTT_SUCCESS)
    status = all_finite(device, b.out, (size_t)C * opt->d, "bench outputs", &res->finite);
  config_free(&b);
  return status;
}

/* ---------------------------------------------------------------- */
/* The PyTorch peer: bench/torch_fast_weight.py on the same shape, chunk
 * size, chunks per sequence and sequences, its tokens/s read from its
 * table. 0 when it did not run; `why` then says what happened. */
static double run_peer(const options *opt, int C, char *why, size_t capacity) {
  char command[1024];
  const char *shape = opt->d == 1024 && opt->f == 3072 ? "0.6b" : opt->d == 2560 && opt->f == 9728 ? "4b" : NULL;
  if (!shape) {
    snprintf(why, capacity, "the PyTorch script runs the 0.6b and 4b shapes only");
    return 0.0;
  }
  /* glibc's defaults give each chunk's freed tensors (12 MiB at C 1024)
   * back to the kernel, so the next chunk faults in fresh pages: PyTorch's
   * rounds here spread from 5660 to 10660 tokens/s at C 1024. With the
   * mmap threshold at its 32 MiB ceiling and the heap never trimmed, as a
   * long-running process's allocator settles, they held at 10700-11700:
   * the faster and steadier peer (RESULTS.md section 17). */
  snprintf(command, sizeof command,
           "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 '%s' '%s/torch_fast_weight.py' "
           "--shape %s --chunks %d --reps %d --sequence %d 2>&1",
           opt->python, BENCH_SOURCE_DIR, shape, C, opt->reps, opt->sequence_chunks);
  FILE *pipe = popen(command, "r");
  if (!pipe) {
    snprintf(why, capacity, "could not start %s: %s", opt->python, strerror(errno));
    return 0.0;
  }
  char line[512], last[512] = "";
  double tokens = 0.0;
  while (fgets(line, sizeof line, pipe)) {
    int chunk = 0;
    double ms = 0.0, rate = 0.0;
    line[strcspn(line, "\n")] = '\0';
    if (sscanf(line, "%d %lf %lf", &chunk, &ms, &rate) == 3 && chunk == C)
      tokens = rate;
    else if (!strncmp(line, "torch ", 6))
      note(opt, "  C=%d: peer: %s\n", C, line);
    if (line[0])
      snprintf(last, sizeof last, "%s", line);
  }
  if (tokens <= 0.0)
    snprintf(why, capacity, "%s/torch_fast_weight.py gave no result for C=%d (%s)", BENCH_SOURCE_DIR, C,
             last[0] ? last : "no output");
  pclose(pipe);
  return tokens;
}

static int compare_ms_per_chunk(const void *a, const void *b) {
  return compare_doubles(&((const result *)a)->ms_per_chunk, &((const result *)b)->ms_per_chunk);
}

/* One chunk size: `rounds` times ours, then PyTorch's (when --peer), so
 * that both sides meet the same minutes of a shared machine. The result
 * is our median round (its per-step figures with it; of an even count the
 * faster of the middle two), with the range widened to every round's;
 * PyTorch's figure is its median round, chosen the same way. */
static clttt_status bench_rounds(clttt_device *device, const options *opt, int C, result *res, char *peer_note,
                                 size_t capacity) {
  result rounds[MAX_ROUNDS];
  double peer[MAX_ROUNDS];
  int peer_count = 0;
  for (int r = 0; r < opt->rounds; r++) {
    if (opt->rounds > 1)
      note(opt, "  C=%d: round %d/%d\n", C, r + 1, opt->rounds);
    CLTTT_TRY(bench_chunk_size(device, opt, C, &rounds[r]));
    if (!opt->peer)
      continue;
    char why[512] = "";
    double tokens = run_peer(opt, C, why, sizeof why);
    if (tokens > 0) {
      peer[peer_count++] = tokens;
      note(opt, "  C=%d: PyTorch %.0f tokens/s\n", C, tokens);
    } else if (!peer_note[0]) {
      snprintf(peer_note, capacity, "PyTorch skipped: %s", why);
    }
  }
  /* Our median round: the one whose ms/chunk sorts into the middle. */
  qsort(rounds, (size_t)opt->rounds, sizeof *rounds, compare_ms_per_chunk);
  *res = rounds[(opt->rounds - 1) / 2];
  for (int r = 0; r < opt->rounds; r++) {
    res->ms_min = fmin(res->ms_min, rounds[r].ms_min);
    res->ms_max = fmax(res->ms_max, rounds[r].ms_max);
    res->finite = res->finite && rounds[r].finite;
  }
  res->rounds = opt->rounds;
  res->peer_tokens_per_s = 0.0;
  if (peer_count > 0) {
    res->peer_min = res->peer_max = peer[0];
    for (int r = 1; r < peer_count; r++) {
      res->peer_min = fmin(res->peer_min, peer[r]);
      res->peer_max = fmax(res->peer_max, peer[r]);
    }
    /* The same statistic as ours: with an even count, the faster middle round. */
    qsort(peer, (size_t)peer_count, sizeof *peer, compare_doubles);
    res->peer_tokens_per_s = peer[peer_count / 2];
  }
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Output. */

static double tokens_per_s(const result *r) { return r->C / (r->ms_per_chunk * 1e-3); }
static double gflops(const result *r) { return r->flops_per_chunk / (r->ms_per_chunk * 1e6); }

static void print_table(const options *opt, const clttt_device_info *info, const result *results,
                        int count, const double load[2], double peak, const char *peer_note) {
  printf("clttt fast-weight benchmark: shape %s (d=%d, f=%d), %d chunks per sequence, %d sequence%s per "
         "chunk size\n",
         opt->shape, opt->d, opt->f, opt->sequence_chunks, opt->reps, opt->reps == 1 ? "" : "s");
  printf("device: %s | %s | driver %s | %u compute units\n", info->name, info->platform,
         info->driver_version, info->compute_units);
  if (count > 0)
    printf("fast weight W: %s, as a session keeps it on this device\n",
           results[0].fast_weight_panels ? "in our GEMM's panels (applied as it is, updated there)"
                                         : "row-major (packed for each apply)");
  if (opt->rounds > 1)
    printf("%d rounds per chunk size (ours and PyTorch's alternated); each figure is the median round, the "
           "range covers all\n", opt->rounds);
  printf("load average (1 min) before / after: %.2f / %.2f\n", load[0], load[1]);
  printf("FLOPs per token: 6df + 2df + 2d^2 + 10d = %.1f MFLOP (SPEC.md section 7)\n",
         (8.0 * opt->d * opt->f + 2.0 * opt->d * opt->d + 10.0 * opt->d) * 1e-6);
  printf("FMA peak in this run: %.1f GFLOP/s (the better of before and after)\n\n", peak);
  printf("%6s  %10s  %17s  %9s  %9s  %8s  %7s  %9s  %6s%s\n", "C", "ms/chunk", "range (ms)", "us/token",
         "tokens/s", "GFLOP/s", "of peak", "SGEMM GF", "ratio", opt->pipelined ? "  pipelined ms/chunk" : "");
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    char range[32];
    snprintf(range, sizeof range, "%.1f-%.1f", r->ms_min, r->ms_max);
    printf("%6d  %10.1f  %17s  %9.1f  %9.0f  %8.2f  %7.2f  %9.2f  %6.2f", r->C, r->ms_per_chunk, range,
           r->ms_per_chunk * 1e3 / r->C, tokens_per_s(r), gflops(r), peak > 0 ? gflops(r) / peak : 0.0,
           r->sgemm_gflops, gflops(r) / r->sgemm_gflops);
    if (r->pipelined_ms >= 0)
      printf("  %19.1f", r->pipelined_ms);
    printf("%s\n", r->finite ? "" : "  (NON-FINITE VALUES)");
  }
  printf("\nper step, ms per chunk (GFLOP/s, fraction of the FMA peak); conv/proj/update_gemm split "
         "ttt_update, measured by a probe:\n");
  printf("%6s", "C");
  for (int s = 0; s < STEP_COUNT; s++)
    printf("  %17s", step_names[s]);
  printf("\n");
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    printf("%6d", r->C);
    for (int s = 0; s < STEP_COUNT; s++) {
      double fl = step_flops(s, r->C, opt->d, opt->f);
      char cell[40];
      if (fl > 0 && r->step_ms[s] > 0 && peak > 0)
        snprintf(cell, sizeof cell, "%.1f (%.0f, %.2f)", r->step_ms[s], fl / (r->step_ms[s] * 1e6),
                 fl / (r->step_ms[s] * 1e6) / peak);
      else if (fl > 0 && r->step_ms[s] > 0)
        snprintf(cell, sizeof cell, "%.1f (%.1f)", r->step_ms[s], fl / (r->step_ms[s] * 1e6));
      else
        snprintf(cell, sizeof cell, "%.1f", r->step_ms[s]);
      printf("  %17s", cell);
    }
    printf("\n");
  }
  if (!opt->peer)
    return;
  printf("\nthe same layer in PyTorch (bench/torch_fast_weight.py, glibc's mmap threshold 32 MiB, no heap trim), "
         "run right after each chunk size%s:\n",
         opt->rounds > 1 ? " in every round" : "");
  if (peer_note && peer_note[0])
    printf("  %s\n", peer_note);
  printf("%6s  %15s  %17s  %17s  %15s\n", "C", "clttt tokens/s", "PyTorch tokens/s", "PyTorch range",
         "clttt/PyTorch");
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    if (r->peer_tokens_per_s > 0) {
      char range[40];
      snprintf(range, sizeof range, "%.0f-%.0f", r->peer_min, r->peer_max);
      printf("%6d  %15.0f  %17.0f  %17s  %14.2fx\n", r->C, tokens_per_s(r), r->peer_tokens_per_s, range,
             tokens_per_s(r) / r->peer_tokens_per_s);
    } else {
      printf("%6d  %15.0f  %17s  %17s  %15s\n", r->C, tokens_per_s(r), "-", "-", "-");
    }
  }
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void print_json(const options *opt, const clttt_device_info *info, const result *results,
                       int count, const double load[2], double peak) {
  printf("{\n  \"benchmark\": \"fast_weight\",\n  \"device\": {\"name\": ");
  json_string(info->name);
  printf(", \"platform\": ");
  json_string(info->platform);
  printf(", \"vendor\": ");
  json_string(info->vendor);
  printf(", \"driver_version\": ");
  json_string(info->driver_version);
  printf(", \"type\": ");
  json_string(info->type);
  printf(", \"compute_units\": %u},\n", info->compute_units);
  printf("  \"shape\": ");
  json_string(opt->shape);
  printf(", \"d\": %d, \"f\": %d, \"sequence_chunks\": %d, \"repetitions\": %d, \"quick\": %s,\n",
         opt->d, opt->f, opt->sequence_chunks, opt->reps, opt->quick ? "true" : "false");
  printf("  \"load_average_before\": %.2f, \"load_average_after\": %.2f,\n", load[0], load[1]);
  printf("  \"fma_peak_gflops\": %.1f,\n", peak);
  printf("  \"flops_per_token\": %.0f,\n  \"results\": [\n",
         8.0 * opt->d * opt->f + 2.0 * opt->d * opt->d + 10.0 * opt->d);
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    printf("    {\"chunk\": %d, \"ms_per_chunk\": %.3f, \"ms_per_chunk_min\": %.3f, "
           "\"ms_per_chunk_max\": %.3f, \"us_per_token\": %.3f, \"tokens_per_s\": %.1f, "
           "\"gflops\": %.3f, \"sgemm_gflops\": %.3f, \"ratio_to_sgemm\": %.4f, ",
           r->C, r->ms_per_chunk, r->ms_min, r->ms_max, r->ms_per_chunk * 1e3 / r->C, tokens_per_s(r),
           gflops(r), r->sgemm_gflops, gflops(r) / r->sgemm_gflops);
    if (r->pipelined_ms >= 0)
      printf("\"pipelined_ms_per_chunk\": %.3f, ", r->pipelined_ms);
    else
      printf("\"pipelined_ms_per_chunk\": null, ");
    if (r->peer_tokens_per_s > 0)
      printf("\"pytorch_tokens_per_s\": %.1f, \"pytorch_tokens_per_s_min\": %.1f, "
             "\"pytorch_tokens_per_s_max\": %.1f, ", r->peer_tokens_per_s, r->peer_min, r->peer_max);
    printf("\"rounds\": %d, ", r->rounds);
    printf("\"finite\": %s, \"fast_weight_panels\": %s, \"steps_ms\": {", r->finite ? "true" : "false",
           r->fast_weight_panels ? "true" : "false");
    for (int s = 0; s < STEP_COUNT; s++)
      printf("%s\"%s\": %.3f", s ? ", " : "", step_names[s], r->step_ms[s]);
    printf("}}%s\n", i + 1 < count ? "," : "");
  }
  printf("  ]\n}\n");
}

/* gnuplot data and script beside FILE.svg; runs gnuplot when it is there. */
static void write_plot(const options *opt, const clttt_device_info *info, const result *results,
                       int count) {
  size_t length = strlen(opt->plot);
  char *base = malloc(length + 8);
  char *data = malloc(length + 8);
  char *script = malloc(length + 8);
  if (!base || !data || !script) {
    fprintf(stderr, "plot: out of host memory; no plot written\n");
    free(base), free(data), free(script);
    return;
  }
  strcpy(base, opt->plot);
  if (length > 4 && strcmp(base + length - 4, ".svg") == 0)
    base[length - 4] = '\0';
  snprintf(data, length + 8, "%s.dat", base);
  snprintf(script, length + 8, "%s.gp", base);
  FILE *file = fopen(data, "w");
  if (!file) {
    fprintf(stderr, "plot: cannot write %s: %s\n", data, strerror(errno));
    goto done;
  }
  fprintf(file, "# chunk ms_per_chunk tokens_per_s gflops sgemm_gflops ratio");
  for (int s = 0; s < STEP_COUNT; s++)
    fprintf(file, " %s_ms", step_names[s]);
  fprintf(file, "\n");
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    fprintf(file, "%d %.3f %.1f %.3f %.3f %.4f", r->C, r->ms_per_chunk, tokens_per_s(r), gflops(r),
            r->sgemm_gflops, gflops(r) / r->sgemm_gflops);
    for (int s = 0; s < STEP_COUNT; s++)
      fprintf(file, " %.3f", r->step_ms[s]);
    fprintf(file, "\n");
  }
  fclose(file);
  file = fopen(script, "w");
  if (!file) {
    fprintf(stderr, "plot: cannot write %s: %s\n", script, strerror(errno));
    goto done;
  }
  fprintf(file,
          "set terminal svg size 900,500 dynamic\n"
          "set output '%s'\n"
          "set title 'TTT fast-weight layer, shape %s (d=%d, f=%d), %s'\n"
          "set logscale x 2\nset xlabel 'chunk size C'\n"
          "set ylabel 'tokens/s'\nset y2label 'GFLOP/s'\nset ytics nomirror\nset y2tics\n"
          "set key top left\nset grid\n"
          "plot '%s' using 1:3 with linespoints title 'tokens/s', \\\n"
          "     '' using 1:4 axes x1y2 with linespoints title 'layer GFLOP/s', \\\n"
          "     '' using 1:5 axes x1y2 with linespoints title 'reference SGEMM GFLOP/s'\n",
          opt->plot, opt->shape, opt->d, opt->f, info->name, data);
  fclose(file);
  if (system("command -v gnuplot > /dev/null 2>&1") != 0) {
    fprintf(stderr, "plot: gnuplot not found; wrote %s and %s, no SVG\n", data, script);
    goto done;
  }
  char command[4096];
  snprintf(command, sizeof command, "gnuplot '%s'", script);
  if (strchr(script, '\'') || system(command) != 0)
    fprintf(stderr, "plot: gnuplot failed on %s\n", script);
  else
    fprintf(stderr, "plot: wrote %s (data %s, script %s)\n", opt->plot, data, script);
done:
  free(base);
  free(data);
  free(script);
}

/* ---------------------------------------------------------------- */
/* Options. */

static void usage(FILE *out) {
  fprintf(out,
          "usage: bench_fast_weight [options]\n"
          "One In-Place TTT layer's MLP over a sequence of chunks: gate/up SGEMM, SwiGLU, apply\n"
          "(ttt_apply) and update (ttt_update: conv, projection, W += eta V^T h), timed per chunk\n"
          "size, with the device's FMA peak and a plain CLBlast SGEMM (C x f x d) timed in the same\n"
          "run as references.\n"
          "  --shape 0.6b|4b|D,F  0.6b: d=1024, f=3072 (default); 4b: d=2560, f=9728; or any d,f\n"
          "  --chunks LIST        chunk sizes, comma-separated (default 256,512,1024,2048,4096)\n"
          "  --sequence N         chunks per timed sequence, at least %d (default %d)\n"
          "  --reps N             timed sequences per chunk size (default 2; 1 with --quick)\n"
          "  --no-pipelined       skip the extra sequence without per-step synchronisation\n"
          "  --quick              0.6b, chunks 512,1024, one sequence each (under 2 minutes on 2 cores)\n"
          "  --device SEL         device index or name/vendor/platform substring (default: CLTTT_DEVICE,\n"
          "                       else the first GPU, else device 0)\n"
          "  --json               JSON on stdout instead of the table (progress goes to stderr)\n"
          "  --plot FILE.svg      also write FILE.dat and FILE.gp and, when gnuplot is there, the SVG\n"
          "  --eta X              step size times C (default 0.01: eta = X / C keeps W bounded)\n"
          "  --clip TAU           clip every update to Frobenius norm TAU (ttt_clip_tau; default off)\n"
          "  --peer / --no-peer   PyTorch on the same layer after each chunk size\n"
          "                       (bench/torch_fast_weight.py; default on with --quick, off otherwise;\n"
          "                       skipped with a note when python3 cannot import torch; run with glibc's\n"
          "                       mmap threshold at 32 MiB and no heap trimming, its faster, steadier setting)\n"
          "  --python PATH        the interpreter for --peer (default python3)\n"
          "  --rounds N           alternate ours and PyTorch N times per chunk size, report each side's\n"
          "                       median round (1-%d; default 1, 3 with --quick)\n"
          "  --clblast KERNEL:NAME=VALUE,...\n"
          "                       experimental: CLBlastOverrideParameters for KERNEL (e.g. Xgemm,\n"
          "                       XgemmDirect) in single precision before anything runs; all of the\n"
          "                       kernel's parameters must be given (repeatable)\n"
          "  --help               this text\n",
          MIN_SEQUENCE_CHUNKS, MIN_SEQUENCE_CHUNKS, MAX_ROUNDS);
}

static int parse_int(const char *text, int *value) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < 1 || v > 1 << 20)
    return 0;
  *value = (int)v;
  return 1;
}

static int parse_chunks(const char *text, options *opt) {
  char buffer[512];
  if (strlen(text) >= sizeof buffer)
    return 0;
  strcpy(buffer, text);
  opt->chunk_count = 0;
  for (char *token = strtok(buffer, ","); token; token = strtok(NULL, ",")) {
    if (opt->chunk_count == MAX_CHUNK_SIZES || !parse_int(token, &opt->chunks[opt->chunk_count]))
      return 0;
    opt->chunk_count++;
  }
  return opt->chunk_count > 0;
}

static int parse_override(const char *text, clblast_override *o) {
  const char *colon = strchr(text, ':');
  if (!colon || colon == text)
    return 0;
  static char kernels[MAX_OVERRIDES][32];
  static int used = 0;
  if (used == MAX_OVERRIDES || (size_t)(colon - text) >= sizeof kernels[0])
    return 0;
  memcpy(kernels[used], text, (size_t)(colon - text));
  kernels[used][colon - text] = '\0';
  o->kernel = kernels[used++];
  o->count = 0;
  const char *p = colon + 1;
  while (*p) {
    const char *eq = strchr(p, '=');
    if (!eq || eq == p || (size_t)(eq - p) >= sizeof o->names[0] || o->count == 24)
      return 0;
    memcpy(o->names[o->count], p, (size_t)(eq - p));
    o->names[o->count][eq - p] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(eq + 1, &end, 10);
    if (errno || end == eq + 1 || (*end && *end != ','))
      return 0;
    o->values[o->count] = v;
    o->name_pointers[o->count] = o->names[o->count];
    o->count++;
    p = *end ? end + 1 : end;
  }
  return o->count > 0;
}

static int parse_options(int argc, char **argv, options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->shape = "0.6b";
  opt->d = 1024;
  opt->f = 3072;
  parse_chunks("256,512,1024,2048,4096", opt);
  opt->sequence_chunks = MIN_SEQUENCE_CHUNKS;
  opt->reps = 0;
  opt->pipelined = -1;
  opt->peer = -1;
  opt->python = "python3";
  opt->eta = 0.01f;
  int chunks_given = 0, shape_given = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS_VALUE()                                               \
  do {                                                              \
    if (!value) {                                                   \
      fprintf(stderr, "bench_fast_weight: %s needs a value\n", arg); \
      return 0;                                                     \
    }                                                               \
    i++;                                                            \
  } while (0)
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(arg, "--shape")) {
      NEEDS_VALUE();
      shape_given = 1;
      if (!strcmp(value, "0.6b") || !strcmp(value, "0.6B")) {
        opt->shape = "0.6b", opt->d = 1024, opt->f = 3072;
      } else if (!strcmp(value, "4b") || !strcmp(value, "4B")) {
        opt->shape = "4b", opt->d = 2560, opt->f = 9728;
      } else if (sscanf(value, "%d,%d", &opt->d, &opt->f) == 2 && opt->d > 0 && opt->f > 0) {
        opt->shape = value; /* "d,f": e.g. the bench_model shape 512,1536 */
      } else {
        fprintf(stderr, "bench_fast_weight: unknown shape '%s' (0.6b or 4b)\n", value);
        return 0;
      }
    } else if (!strcmp(arg, "--chunks")) {
      NEEDS_VALUE();
      chunks_given = 1;
      if (!parse_chunks(value, opt)) {
        fprintf(stderr, "bench_fast_weight: bad chunk list '%s' (positive integers, comma-separated)\n",
                value);
        return 0;
      }
    } else if (!strcmp(arg, "--sequence")) {
      NEEDS_VALUE();
      if (!parse_int(value, &opt->sequence_chunks) || opt->sequence_chunks < MIN_SEQUENCE_CHUNKS) {
        fprintf(stderr, "bench_fast_weight: --sequence needs an integer >= %d\n", MIN_SEQUENCE_CHUNKS);
        return 0;
      }
    } else if (!strcmp(arg, "--reps")) {
      NEEDS_VALUE();
      if (!parse_int(value, &opt->reps) || opt->reps > MAX_REPS) {
        fprintf(stderr, "bench_fast_weight: --reps needs an integer from 1 to %d\n", MAX_REPS);
        return 0;
      }
    } else if (!strcmp(arg, "--no-pipelined")) {
      opt->pipelined = 0;
    } else if (!strcmp(arg, "--quick")) {
      opt->quick = 1;
    } else if (!strcmp(arg, "--peer")) {
      opt->peer = 1;
    } else if (!strcmp(arg, "--no-peer")) {
      opt->peer = 0;
    } else if (!strcmp(arg, "--rounds")) {
      NEEDS_VALUE();
      if (!parse_int(value, &opt->rounds) || opt->rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_fast_weight: --rounds needs an integer from 1 to %d\n", MAX_ROUNDS);
        return 0;
      }
    } else if (!strcmp(arg, "--python")) {
      NEEDS_VALUE();
      opt->python = value;
    } else if (!strcmp(arg, "--device")) {
      NEEDS_VALUE();
      opt->device = value;
    } else if (!strcmp(arg, "--json")) {
      opt->json = 1;
    } else if (!strcmp(arg, "--plot")) {
      NEEDS_VALUE();
      opt->plot = value;
    } else if (!strcmp(arg, "--eta")) {
      NEEDS_VALUE();
      char *end = NULL;
      opt->eta = strtof(value, &end);
      if (end == value || *end || !(opt->eta >= 0.0f) || !isfinite(opt->eta)) {
        fprintf(stderr, "bench_fast_weight: bad --eta '%s'\n", value);
        return 0;
      }
    } else if (!strcmp(arg, "--clip")) {
      NEEDS_VALUE();
      char *end = NULL;
      opt->clip_tau = strtof(value, &end);
      if (end == value || *end || !(opt->clip_tau > 0.0f) || !isfinite(opt->clip_tau)) {
        fprintf(stderr, "bench_fast_weight: bad --clip '%s' (a positive number)\n", value);
        return 0;
      }
    } else if (!strcmp(arg, "--clblast")) {
      NEEDS_VALUE();
      if (opt->override_count == MAX_OVERRIDES ||
          !parse_override(value, &opt->overrides[opt->override_count])) {
        fprintf(stderr, "bench_fast_weight: bad --clblast '%s' (KERNEL:NAME=VALUE,...)\n", value);
        return 0;
      }
      opt->override_count++;
    } else {
      fprintf(stderr, "bench_fast_weight: unknown option '%s' (see --help)\n", arg);
      return 0;
    }
#undef NEEDS_VALUE
  }
  if (opt->quick) {
    if (shape_given && opt->d != 1024) {
      fprintf(stderr, "bench_fast_weight: --quick runs the 0.6b shape only\n");
      return 0;
    }
    if (!chunks_given)
      parse_chunks("512,1024", opt);
    if (!opt->reps)
      opt->reps = 1;
    if (opt->pipelined < 0)
      opt->pipelined = 0;
    if (opt->peer < 0)
      opt->peer = 1;
    if (!opt->rounds)
      opt->rounds = 3;
    opt->sgemm_reps = 2;
  } else {
    if (!opt->reps)
      opt->reps = 2;
    if (opt->pipelined < 0)
      opt->pipelined = 1;
    if (opt->peer < 0)
      opt->peer = 0;
    if (!opt->rounds)
      opt->rounds = 1;
    opt->sgemm_reps = 3;
  }
  return 1;
}

static clttt_status apply_overrides(clttt_device *device, const options *opt) {
  for (int i = 0; i < opt->override_count; i++) {
    const clblast_override *o = &opt->overrides[i];
    CLBlastStatusCode code =
        CLBlastOverrideParameters(device->id, o->kernel, CLBlastPrecisionSingle, (size_t)o->count,
                                  (const char **)o->name_pointers, o->values);
    if (code != CLBlastSuccess)
      return clttt_fail(CLTTT_ERROR_CLBLAST,
                        "CLBlastOverrideParameters for kernel '%s' (%d parameters) failed with code %d "
                        "(all of the kernel's parameters must be given, with valid values)",
                        o->kernel, o->count, (int)code);
    note(opt, "CLBlast: overrode %d parameters of %s\n", o->count, o->kernel);
  }
  return CLTTT_SUCCESS;
}

int main(int argc, char **argv) {
  options opt;
  if (!parse_options(argc, argv, &opt)) {
    usage(stderr);
    return 2;
  }
  clttt_device *device = NULL;
  clttt_status status = clttt_device_open(&device, opt.device);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_fast_weight: %s: %s\n", clttt_status_name(status), clttt_last_error());
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  note(&opt, "device: %s (%s, driver %s); shape %s d=%d f=%d; %d chunks per sequence\n", info->name,
       info->platform, info->driver_version, opt.shape, opt.d, opt.f, opt.sequence_chunks);
  status = apply_overrides(device, &opt);

  double load[2] = {0.0, 0.0}, sample[3];
  if (getloadavg(sample, 3) > 0)
    load[0] = sample[0];
  result results[MAX_CHUNK_SIZES];
  int done = 0;
  double start = now_ms();
  double peaks[2] = {0.0, 0.0}, cpu_peak = 0.0;
  if (status == CLTTT_SUCCESS)
    status = bench_fma_peak(device, 3, &peaks[0], &cpu_peak);
  if (status == CLTTT_SUCCESS)
    note(&opt, "FMA peak before: %.1f GFLOP/s\n", peaks[0]);
  char peer_note[512] = "";
  for (int i = 0; i < opt.chunk_count && status == CLTTT_SUCCESS; i++) {
    status = bench_rounds(device, &opt, opt.chunks[i], &results[i], peer_note, sizeof peer_note);
    if (status == CLTTT_SUCCESS)
      done++;
  }
  if (status == CLTTT_SUCCESS && bench_fma_peak(device, 3, &peaks[1], &cpu_peak) == CLTTT_SUCCESS)
    note(&opt, "FMA peak after: %.1f GFLOP/s\n", peaks[1]);
  const double peak = peaks[0] > peaks[1] ? peaks[0] : peaks[1];
  if (getloadavg(sample, 3) > 0)
    load[1] = sample[0];
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_fast_weight: %s: %s\n", clttt_status_name(status), clttt_last_error());
    if (done)
      fprintf(stderr, "bench_fast_weight: results of the %d chunk size%s before the failure follow\n",
              done, done == 1 ? "" : "s");
  }
  note(&opt, "total %.1f s\n", (now_ms() - start) * 1e-3);
  if (done) {
    if (opt.json)
      print_json(&opt, info, results, done, load, peak);
    else
      print_table(&opt, info, results, done, load, peak, peer_note);
    if (opt.plot)
      write_plot(&opt, info, results, done);
  }
  for (int i = 0; i < done; i++)
    if (!results[i].finite)
      fprintf(stderr, "bench_fast_weight: non-finite values after the sequence at C=%d\n",
              results[i].C);
  clttt_device_close(device);
  return status == CLTTT_SUCCESS ? 0 : 1;
}
