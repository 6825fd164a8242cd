/* GEMM benchmark: our packed-weight kernel (cl/gemm.cl) with fp32, bf16 and
 * fp16 weights against CLBlast's SGEMM as the forward pass calls it today
 * (gemm_linear: x W^T with W row-major, CLBlast's NT path), at the
 * projection shapes of Qwen3-0.6B and -4B; and the TTT update
 * W += eta V^T h (cl/gemm_update.cl) against CLBlast's TN SGEMM.
 *
 * The same run measures the device's FMA peak with a kernel of independent
 * float16 FMA chains, one work-item per compute unit, so every rate comes with
 * its ratio to the peak of that moment: on a shared machine the ratio is the
 * number that survives the noise. Each product is timed per call (clFinish
 * around it) after one warm-up call that also builds the kernels; we report
 * the best call, the median and the range. Our results are compared with
 * CLBlast's (max |difference| / max |value|), so a fast wrong kernel shows. */
#define _DEFAULT_SOURCE /* getloadavg, clock_gettime */
#include "runtime.h" /* first: it fixes the OpenCL version the other headers see */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "error.h"
#include "fma_peak.h"
#include "gemm.h"
#include "packed_gemm.h"

#define MAX_SHAPES 16
#define MAX_REPS 64

typedef struct {
  int rows, n, k;
  const char *what;
} shape;

static const shape full_shapes[] = {
    {512, 3072, 1024, "0.6B gate or up"},   {1024, 3072, 1024, "0.6B gate or up"},
    {512, 2048, 1024, "0.6B q"},            {1024, 2048, 1024, "0.6B q"},
    {512, 6144, 1024, "0.6B gate+up"},      {1024, 6144, 1024, "0.6B gate+up"},
    {512, 9728, 2560, "4B gate or up"},
};
static const shape quick_shapes[] = {
    {512, 3072, 1024, "0.6B gate or up"},
    {1024, 6144, 1024, "0.6B gate+up"},
    {512, 9728, 2560, "4B gate or up"},
};

typedef struct {
  shape shapes[MAX_SHAPES];
  int shape_count;
  int reps;
  int quick, json, clblast, update, linear;
  int types[3];
  const char *device;
  packed_gemm_params gemm;
  packed_gemm_update_params upd;
  const char *gemm_overrides, *update_overrides;
  packed_gemm_kernels kernels; /* built with gemm and upd */
  kernel_set set;              /* the device's own kernels, for the GEMV of gemm_linear */
} options;

typedef struct {
  char kernel[32];
  int rows, n, k;
  double best_ms, median_ms, worst_ms;
  double cpu_ms; /* least process CPU time of a call (every thread) */
  double difference; /* vs CLBlast, relative to the largest |value|; < 0 when not compared */
} result;

/* CPU time of the whole process, all threads: on a machine shared with other
 * work, FLOPs per CPU-second measure the cores while they ran our code, where
 * wall time also counts the time slices others took. */
static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void fill_uniform(float *data, size_t count, float scale, unsigned long long seed) {
  unsigned long long state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < count; i++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    data[i] = (float)(((double)(state >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0) * scale);
  }
}

static clttt_status upload_floats(clttt_device *device, const float *host, size_t count, const char *what,
                                  cl_mem *buffer) {
  CLTTT_TRY(runtime_alloc(device, count * sizeof(float), what, buffer));
  return runtime_upload(device, *buffer, 0, count * sizeof(float), host, what);
}

/* max |a - b| / max |b| over two device buffers of `count` floats. */
static clttt_status relative_difference(clttt_device *device, cl_mem a, cl_mem b, size_t count, double *difference) {
  float *ha = malloc(count * sizeof(float)), *hb = malloc(count * sizeof(float));
  if (!ha || !hb) {
    free(ha);
    free(hb);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "bench: %zu floats to compare", count);
  }
  clttt_status status = runtime_download(device, a, 0, count * sizeof(float), ha, "bench result");
  if (status == CLTTT_SUCCESS)
    status = runtime_download(device, b, 0, count * sizeof(float), hb, "bench result");
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; status == CLTTT_SUCCESS && i < count; i++) {
    double d = fabs((double)ha[i] - (double)hb[i]);
    if (!(d <= worst)) /* NaN counts as the worst */
      worst = isnan(d) ? INFINITY : d;
    if (fabs((double)hb[i]) > largest)
      largest = fabs((double)hb[i]);
  }
  *difference = largest > 0.0 ? worst / largest : worst;
  free(ha);
  free(hb);
  return status;
}


/* ---------------------------------------------------------------- */

typedef clttt_status (*product_fn)(clttt_device *device, void *context);

static clttt_status time_product(clttt_device *device, const options *opt, product_fn call, void *context,
                                 result *res) {
  double times[MAX_REPS];
  CLTTT_TRY(call(device, context)); /* warm-up: builds kernels, touches memory */
  CLTTT_TRY(runtime_finish(device));
  res->cpu_ms = 0.0;
  for (int r = 0; r < opt->reps; r++) {
    double t0 = now_ms(), c0 = cpu_ms();
    CLTTT_TRY(call(device, context));
    CLTTT_TRY(runtime_finish(device));
    times[r] = now_ms() - t0;
    double used = cpu_ms() - c0;
    if (r == 0 || used < res->cpu_ms)
      res->cpu_ms = used;
  }
  qsort(times, (size_t)opt->reps, sizeof times[0], compare_doubles);
  res->best_ms = times[0];
  res->worst_ms = times[opt->reps - 1];
  res->median_ms = opt->reps % 2 ? times[opt->reps / 2] : 0.5 * (times[opt->reps / 2 - 1] + times[opt->reps / 2]);
  return CLTTT_SUCCESS;
}

typedef struct {
  const options *opt;
  int rows, n, k;
  cl_mem x, w, out, packed;
  packed_gemm_layout layout;
} linear_context;

static clttt_status call_clblast(clttt_device *device, void *context) {
  linear_context *c = context;
  (void)device;
  return gemm_linear(&c->opt->set, "bench CLBlast x W^T", (size_t)c->rows, (size_t)c->n, (size_t)c->k,
                     view(c->x, 0, (size_t)c->k), view(c->w, 0, (size_t)c->k), 0.0f, view(c->out, 0, (size_t)c->n));
}

static clttt_status call_packed(clttt_device *device, void *context) {
  linear_context *c = context;
  (void)device;
  return packed_gemm_run(&c->opt->kernels, "bench packed x W^T", &c->layout, (size_t)c->rows,
                         view(c->x, 0, (size_t)c->k), c->packed, 0, 0.0f, view(c->out, 0, (size_t)c->n));
}

static const char *const type_names[3] = {"fp32", "bf16", "fp16"};

/* All kernels at one shape; appends to results. */
static clttt_status bench_shape(clttt_device *device, const options *opt, const shape *s, result *results,
                                int *count) {
  const size_t rows = (size_t)s->rows, n = (size_t)s->n, k = (size_t)s->k;
  linear_context c = {.opt = opt, .rows = s->rows, .n = s->n, .k = s->k};
  float *x = malloc(rows * k * sizeof(float)), *w = malloc(n * k * sizeof(float));
  clttt_status status = x && w ? CLTTT_SUCCESS
                               : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "bench: inputs of %zux%zux%zu", rows, n, k);
  cl_mem reference = NULL;
  if (status == CLTTT_SUCCESS) {
    fill_uniform(x, rows * k, 1.0f, 1);
    fill_uniform(w, n * k, 1.7f / sqrtf((float)k), 2);
    status = upload_floats(device, x, rows * k, "bench x", &c.x);
  }
  if (status == CLTTT_SUCCESS)
    status = upload_floats(device, w, n * k, "bench W (row-major)", &c.w);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, rows * n * sizeof(float), "bench out", &c.out);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, rows * n * sizeof(float), "bench CLBlast out", &reference);
  if (status == CLTTT_SUCCESS && opt->clblast) {
    result *r = &results[(*count)];
    memset(r, 0, sizeof *r);
    snprintf(r->kernel, sizeof r->kernel, "CLBlast NT");
    r->rows = s->rows, r->n = s->n, r->k = s->k, r->difference = -1.0;
    status = time_product(device, opt, call_clblast, &c, r);
    if (status == CLTTT_SUCCESS) {
      (*count)++;
      status = runtime_copy(device, reference, 0, c.out, 0, rows * n * sizeof(float), "bench CLBlast out");
    }
  }
  for (int t = 0; t < 3 && status == CLTTT_SUCCESS; t++) {
    if (!opt->types[t])
      continue;
    packed_gemm_type type = (packed_gemm_type)t;
    status = packed_gemm_layout_for(&opt->gemm, type, n, k, &c.layout);
    void *packed = status == CLTTT_SUCCESS ? malloc(packed_gemm_bytes(&c.layout)) : NULL;
    if (status == CLTTT_SUCCESS && !packed)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "bench: packed weight");
    double t0 = now_ms();
    if (status == CLTTT_SUCCESS)
      status = packed_gemm_pack(&c.layout, packed, 0, n, w, PACKED_GEMM_F32, k);
    double pack_ms = now_ms() - t0;
    if (status == CLTTT_SUCCESS)
      status = runtime_alloc(device, packed_gemm_bytes(&c.layout), "bench packed W", &c.packed);
    if (status == CLTTT_SUCCESS)
      status = runtime_upload(device, c.packed, 0, packed_gemm_bytes(&c.layout), packed, "bench packed W");
    free(packed);
    result *r = &results[(*count)];
    memset(r, 0, sizeof *r);
    snprintf(r->kernel, sizeof r->kernel, "packed %s", type_names[t]);
    r->rows = s->rows, r->n = s->n, r->k = s->k, r->difference = -1.0;
    if (status == CLTTT_SUCCESS) {
      fprintf(stderr, "  %dx%dx%d %s: packed in %.0f ms\n", s->rows, s->n, s->k, type_names[t], pack_ms);
      status = time_product(device, opt, call_packed, &c, r);
    }
    if (status == CLTTT_SUCCESS && opt->clblast)
      status = relative_difference(device, c.out, reference, rows * n, &r->difference);
    if (status == CLTTT_SUCCESS)
      (*count)++;
    runtime_release(&c.packed);
  }
  runtime_release(&c.x);
  runtime_release(&c.w);
  runtime_release(&c.out);
  runtime_release(&reference);
  free(x);
  free(w);
  return status;
}

/* ---------------------------------------------------------------- */

typedef struct {
  const options *opt;
  size_t d, f, c;
  float eta;
  cl_mem v, h, w;
  cl_mem scratch; /* the one-pass kernel's packed V and h (UPDATE_PACKED) */
  packed_gemm_layout panels; /* W in the GEMM's fp32 panels (a TTT fast weight on a CPU) */
  cl_mem w_panels;
} update_context;

static clttt_status call_update_clblast(clttt_device *device, void *context) {
  update_context *u = context;
  return gemm(device, "bench CLBlast update", GEMM_TRANSPOSE, GEMM_NO_TRANSPOSE, u->d, u->f, u->c, u->eta,
              view(u->v, 0, u->d), view(u->h, 0, u->f), 1.0f, view(u->w, 0, u->f));
}

static clttt_status call_update_ours(clttt_device *device, void *context) {
  update_context *u = context;
  (void)device;
  return packed_gemm_update(&u->opt->kernels, "bench update", u->d, u->f, u->c, u->eta, view(u->v, 0, u->d),
                            view(u->h, 0, u->f), view(u->w, 0, u->f), u->scratch);
}

static clttt_status call_update_panels(clttt_device *device, void *context) {
  update_context *u = context;
  (void)device;
  return packed_gemm_update_panels(&u->opt->kernels, "bench update into panels", &u->panels, u->c, u->eta,
                                   view(u->v, 0, u->d), view(u->h, 0, u->f), u->w_panels, u->scratch);
}

/* The largest |a - b| over the largest |b - w0|: an update's error relative
 * to the update itself (W - W0), not to W. a may be in panels. */
static double update_difference(const float *a, const packed_gemm_layout *a_panels, const float *b, const float *w0,
                                size_t d, size_t f) {
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < f; j++) {
      const size_t in_a = a_panels ? packed_gemm_index(a_panels, i, j) : i * f + j;
      double diff = fabs((double)a[in_a] - (double)b[i * f + j]), delta = fabs((double)b[i * f + j] - (double)w0[i * f + j]);
      worst = diff > worst || isnan(diff) ? (isnan(diff) ? INFINITY : diff) : worst;
      largest = delta > largest ? delta : largest;
    }
  return largest > 0.0 ? worst / largest : worst;
}

static clttt_status bench_update(clttt_device *device, const options *opt, int C, result *results, int *count) {
  const size_t d = 1024, f = 3072, c = (size_t)C;
  update_context u = {.opt = opt, .d = d, .f = f, .c = c, .eta = 1e-3f / (float)C};
  float *host = malloc(d * f * sizeof(float));
  if (!host)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "bench: update inputs");
  clttt_status status = CLTTT_SUCCESS;
  cl_mem w0 = NULL, w_clblast = NULL;
  fill_uniform(host, c * d, 1.0f, 3);
  status = upload_floats(device, host, c * d, "bench V", &u.v);
  fill_uniform(host, c * f, 1.0f, 4);
  if (status == CLTTT_SUCCESS)
    status = upload_floats(device, host, c * f, "bench h", &u.h);
  fill_uniform(host, d * f, 0.03f, 5);
  if (status == CLTTT_SUCCESS)
    status = upload_floats(device, host, d * f, "bench W0", &w0);
  free(host);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, d * f * sizeof(float), "bench W", &u.w);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, d * f * sizeof(float), "bench W (CLBlast)", &w_clblast);
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, (size_t)packed_gemm_update_scratch_bytes(d, f, c), "bench update scratch",
                           &u.scratch);
  /* One update each from the same W0, compared; then the timings. */
  double difference = -1.0;
  if (status == CLTTT_SUCCESS)
    status = runtime_copy(device, u.w, 0, w0, 0, d * f * sizeof(float), "bench W");
  if (status == CLTTT_SUCCESS)
    status = call_update_clblast(device, &u);
  if (status == CLTTT_SUCCESS)
    status = runtime_copy(device, w_clblast, 0, u.w, 0, d * f * sizeof(float), "bench W");
  if (status == CLTTT_SUCCESS)
    status = runtime_copy(device, u.w, 0, w0, 0, d * f * sizeof(float), "bench W");
  if (status == CLTTT_SUCCESS)
    status = call_update_ours(device, &u);
  /* The same update into W0 packed in the GEMM's panels, where the
   * device's GEMM is the CPU variant (a TTT fast weight there). */
  const int panels = opt->kernels.update_panels != NULL;
  if (status == CLTTT_SUCCESS && panels)
    status = packed_gemm_layout_for(&opt->kernels.params, PACKED_GEMM_F32, d, f, &u.panels);
  if (status == CLTTT_SUCCESS && panels)
    status = runtime_alloc(device, packed_gemm_bytes(&u.panels), "bench W in panels", &u.w_panels);
  if (status == CLTTT_SUCCESS && panels)
    status = packed_gemm_pack_device(&opt->kernels, "bench W0 into panels", &u.panels, u.w_panels, 0, w0,
                                     PACKED_GEMM_F32, 0, f, 1, 1.0f);
  if (status == CLTTT_SUCCESS && panels)
    status = call_update_panels(device, &u);
  double panels_difference = -1.0;
  if (status == CLTTT_SUCCESS) {
    const size_t panel_floats = panels ? packed_gemm_bytes(&u.panels) / sizeof(float) : 1;
    float *a = malloc(d * f * sizeof(float)), *b = malloc(d * f * sizeof(float)), *z = malloc(d * f * sizeof(float));
    float *p = malloc(panel_floats * sizeof(float));
    if (a && b && z && p) {
      status = runtime_download(device, u.w, 0, d * f * sizeof(float), a, "bench W");
      if (status == CLTTT_SUCCESS)
        status = runtime_download(device, w_clblast, 0, d * f * sizeof(float), b, "bench W");
      if (status == CLTTT_SUCCESS)
        status = runtime_download(device, w0, 0, d * f * sizeof(float), z, "bench W0");
      if (status == CLTTT_SUCCESS && panels)
        status = runtime_download(device, u.w_panels, 0, panel_floats * sizeof(float), p, "bench W in panels");
      if (status == CLTTT_SUCCESS) {
        difference = update_difference(a, NULL, b, z, d, f);
        if (panels)
          panels_difference = update_difference(p, &u.panels, b, z, d, f);
      }
    }
    free(a);
    free(b);
    free(z);
    free(p);
  }
  static const char *const names[3] = {"CLBlast TN update", "our update", "our update into panels"};
  clttt_status (*const calls[3])(clttt_device *, void *) = {call_update_clblast, call_update_ours,
                                                            call_update_panels};
  for (int which = 0; which < 3 && status == CLTTT_SUCCESS; which++) {
    if ((which == 0 && !opt->clblast) || (which == 2 && !panels))
      continue;
    result *r = &results[*count];
    memset(r, 0, sizeof *r);
    snprintf(r->kernel, sizeof r->kernel, "%s", names[which]);
    r->rows = (int)d, r->n = (int)f, r->k = C;
    r->difference = !opt->clblast ? -1.0 : which == 1 ? difference : which == 2 ? panels_difference : -1.0;
    status = time_product(device, opt, calls[which], &u, r);
    if (status == CLTTT_SUCCESS)
      (*count)++;
  }
  runtime_release(&u.v);
  runtime_release(&u.h);
  runtime_release(&u.w);
  runtime_release(&u.scratch);
  runtime_release(&u.w_panels);
  runtime_release(&w0);
  runtime_release(&w_clblast);
  return status;
}

/* ---------------------------------------------------------------- */

static void usage(FILE *stream) {
  fprintf(stream,
          "usage: bench_gemm [--quick] [--json] [--device SEL] [--reps N] [--shape RxNxK ...]\n"
          "                  [--types fp32,bf16,fp16] [--no-clblast] [--no-update] [--no-linear]\n"
          "                  [--gemm NAME=V,...] [--update NAME=V,...]\n"
          "  GFLOP/s of out = x W^T (rows x n x k) with our packed-weight kernel (fp32, bf16, fp16\n"
          "  weights) and CLBlast's SGEMM (W row-major, as gemm_linear calls it), and of the TTT\n"
          "  update W += eta V^T h (d 1024, f 3072, C 512 and 1024) against CLBlast's TN SGEMM,\n"
          "  row-major and, on CPUs, into W kept in our GEMM's panels (a TTT fast weight there);\n"
          "  each with its ratio to a same-run FMA peak.\n"
          "  --quick        3 shapes, 3 calls each (default: 7 shapes, 5 calls)\n"
          "  --shape RxNxK  benchmark this shape instead (repeatable)\n"
          "  --gemm         override our kernel's parameters: VARIANT (0 CPU, 1 GPU), NR, MR, ROW_BLOCK,\n"
          "                 LOCAL_K, GEMV_PANELS, GEMV_PREFETCH, K_SLICE, PREFETCH, TILE_M, TILE_K,\n"
          "                 ITEM_M, ITEM_N (default: the device's, its tuning cache entry or\n"
          "                 CLTTT_TUNING_FILE included)\n"
          "  --update       the same for the update kernel: VARIANT, NR, MR, ROW_BLOCK, LOCAL_T, PANELS,\n"
          "                 PACKED, TILE_M, TILE_N, TILE_K, ITEM_M, ITEM_N\n");
}

static int set_field(const char *list, int is_update, options *opt) {
  char copy[512];
  snprintf(copy, sizeof copy, "%s", list);
  for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
    char *equals = strchr(item, '=');
    if (!equals)
      return 0;
    *equals = '\0';
    int value = atoi(equals + 1);
    int *field = NULL;
    if (!is_update) {
      packed_gemm_params *p = &opt->gemm;
      if (strcmp(item, "VARIANT") == 0) {
        p->variant = (packed_gemm_variant)value;
        continue;
      }
      field = strcmp(item, "NR") == 0 ? &p->nr : strcmp(item, "MR") == 0 ? &p->mr
            : strcmp(item, "ROW_BLOCK") == 0 ? &p->row_block : strcmp(item, "LOCAL_K") == 0 ? &p->local_k
            : strcmp(item, "GEMV_PANELS") == 0 ? &p->gemv_panels
            : strcmp(item, "GEMV_PREFETCH") == 0 ? &p->gemv_prefetch : strcmp(item, "K_SLICE") == 0 ? &p->k_slice
            : strcmp(item, "PREFETCH") == 0 ? &p->prefetch
            : strcmp(item, "TILE_M") == 0 ? &p->tile_m : strcmp(item, "TILE_K") == 0 ? &p->tile_k
            : strcmp(item, "ITEM_M") == 0 ? &p->item_m : strcmp(item, "ITEM_N") == 0 ? &p->item_n : NULL;
    } else {
      packed_gemm_update_params *p = &opt->upd;
      if (strcmp(item, "VARIANT") == 0) {
        p->variant = (packed_gemm_variant)value;
        continue;
      }
      field = strcmp(item, "NR") == 0 ? &p->nr : strcmp(item, "MR") == 0 ? &p->mr
            : strcmp(item, "ROW_BLOCK") == 0 ? &p->row_block : strcmp(item, "TILE_M") == 0 ? &p->tile_m
            : strcmp(item, "LOCAL_T") == 0 ? &p->local_t : strcmp(item, "PANELS") == 0 ? &p->panels
            : strcmp(item, "PACKED") == 0 ? &p->packed
            : strcmp(item, "TILE_N") == 0 ? &p->tile_n : strcmp(item, "TILE_K") == 0 ? &p->tile_k
            : strcmp(item, "ITEM_M") == 0 ? &p->item_m : strcmp(item, "ITEM_N") == 0 ? &p->item_n : NULL;
    }
    if (!field)
      return 0;
    *field = value;
  }
  return 1;
}

static int parse_options(int argc, char **argv, options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->clblast = opt->update = opt->linear = 1;
  opt->types[0] = opt->types[1] = opt->types[2] = 1;
  int reps = 0, custom = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(arg, "--quick") == 0) {
      opt->quick = 1;
    } else if (strcmp(arg, "--json") == 0) {
      opt->json = 1;
    } else if (strcmp(arg, "--no-clblast") == 0) {
      opt->clblast = 0;
    } else if (strcmp(arg, "--no-update") == 0) {
      opt->update = 0;
    } else if (strcmp(arg, "--no-linear") == 0) {
      opt->linear = 0;
    } else if (strcmp(arg, "--device") == 0 && i + 1 < argc) {
      opt->device = argv[++i];
    } else if (strcmp(arg, "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
      if (reps < 1 || reps > MAX_REPS)
        return 0;
    } else if (strcmp(arg, "--shape") == 0 && i + 1 < argc) {
      shape s = {0, 0, 0, "custom"};
      if (custom >= MAX_SHAPES || sscanf(argv[++i], "%dx%dx%d", &s.rows, &s.n, &s.k) != 3 || s.rows < 1 ||
          s.n < 1 || s.k < 1)
        return 0;
      opt->shapes[custom++] = s;
    } else if (strcmp(arg, "--types") == 0 && i + 1 < argc) {
      const char *list = argv[++i];
      for (int t = 0; t < 3; t++)
        opt->types[t] = strstr(list, type_names[t]) != NULL;
    } else if (strcmp(arg, "--gemm") == 0 && i + 1 < argc) {
      opt->gemm_overrides = argv[++i];
    } else if (strcmp(arg, "--update") == 0 && i + 1 < argc) {
      opt->update_overrides = argv[++i];
    } else {
      return 0;
    }
  }
  if (custom) {
    opt->shape_count = custom;
  } else {
    const shape *list = opt->quick ? quick_shapes : full_shapes;
    opt->shape_count = opt->quick ? (int)(sizeof quick_shapes / sizeof quick_shapes[0])
                                  : (int)(sizeof full_shapes / sizeof full_shapes[0]);
    memcpy(opt->shapes, list, (size_t)opt->shape_count * sizeof *list);
  }
  opt->reps = reps ? reps : opt->quick ? 3 : 5;
  return 1;
}

/* peaks: wall-time GFLOP/s before and after, and per CPU-second (best of both). */
static void print_results(const options *opt, const clttt_device_info *info, const result *results, int count,
                          const double peaks[3], const double load[2], const char *date) {
  const double peak_before = peaks[0], peak_after = peaks[1], cpu_peak = peaks[2];
  double peak = peak_before > peak_after ? peak_before : peak_after;
  char gemm_defines[256], update_defines[256];
  packed_gemm_defines(&opt->gemm, PACKED_GEMM_F32, gemm_defines, sizeof gemm_defines);
  packed_gemm_update_defines(&opt->upd, update_defines, sizeof update_defines);
  if (opt->json) {
    printf("{\n  \"benchmark\": \"bench_gemm\",\n  \"date\": \"%s\",\n  \"device\": \"%s\",\n  \"platform\": \"%s\",\n"
           "  \"driver\": \"%s\",\n  \"gemm_parameters\": \"%s\",\n  \"update_parameters\": \"%s\",\n"
           "  \"fma_peak_gflops\": [%.1f, %.1f],\n  \"fma_peak_gflops_per_cpu_second\": %.1f,\n"
           "  \"load_average\": [%.2f, %.2f],\n  \"results\": [\n",
           date, info->name, info->platform, info->driver_version, gemm_defines, update_defines, peak_before,
           peak_after, cpu_peak, load[0], load[1]);
    for (int i = 0; i < count; i++) {
      const result *r = &results[i];
      double flops = 2.0 * r->rows * (double)r->n * r->k;
      printf("    {\"kernel\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"best_ms\": %.3f, \"median_ms\": %.3f, "
             "\"worst_ms\": %.3f, \"gflops\": %.1f, \"gflops_median\": %.1f, \"gflops_worst\": %.1f, "
             "\"ratio_to_peak\": %.3f, \"cpu_ms\": %.3f, \"cpu_time_ratio_to_peak\": %.3f, "
             "\"difference_vs_clblast\": %.3g}%s\n",
             r->kernel, r->rows, r->n, r->k, r->best_ms, r->median_ms, r->worst_ms, flops / (r->best_ms * 1e6),
             flops / (r->median_ms * 1e6), flops / (r->worst_ms * 1e6), flops / (r->best_ms * 1e6) / peak,
             r->cpu_ms, flops / (r->cpu_ms * 1e6) / cpu_peak, r->difference, i + 1 < count ? "," : "");
    }
    printf("  ]\n}\n");
    return;
  }
  printf("device: %s (%s, driver %s); %s\n", info->name, info->platform, info->driver_version, date);
  printf("our GEMM: %s\nour update: %s\n", gemm_defines, update_defines);
  printf("FMA peak: %.1f GFLOP/s before, %.1f after (ratios use %.1f), %.1f per CPU-second; load average %.2f -> "
         "%.2f; %d calls each\n", peak_before, peak_after, peak, cpu_peak, load[0], load[1], opt->reps);
  printf("\n| m x n x k | kernel | best ms | GFLOP/s best (median, worst) | ratio to peak | CPU-time ratio | diff vs "
         "CLBlast |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- |\n");
  for (int i = 0; i < count; i++) {
    const result *r = &results[i];
    double flops = 2.0 * r->rows * (double)r->n * r->k;
    char difference[32] = "";
    if (r->difference >= 0.0)
      snprintf(difference, sizeof difference, "%.1e", r->difference);
    printf("| %dx%dx%d | %s | %.2f | %.1f (%.1f, %.1f) | %.2f | %.2f | %s |\n", r->rows, r->n, r->k, r->kernel,
           r->best_ms, flops / (r->best_ms * 1e6), flops / (r->median_ms * 1e6), flops / (r->worst_ms * 1e6),
           flops / (r->best_ms * 1e6) / peak, flops / (r->cpu_ms * 1e6) / cpu_peak, difference);
  }
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
    fprintf(stderr, "bench_gemm: %s: %s\n", clttt_status_name(status), clttt_last_error());
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  /* The set a session on this device runs: the defaults with its tuning
   * cache entry (or CLTTT_TUNING_FILE) applied. */
  opt.gemm = device->tuning.gemm;
  opt.upd = device->tuning.update;
  if ((opt.gemm_overrides && !set_field(opt.gemm_overrides, 0, &opt)) ||
      (opt.update_overrides && !set_field(opt.update_overrides, 1, &opt))) {
    fprintf(stderr, "bench_gemm: cannot parse the parameter overrides\n");
    usage(stderr);
    clttt_device_close(device);
    return 2;
  }
  char why[256];
  if (!packed_gemm_params_valid(info, &opt.gemm, why, sizeof why) ||
      !packed_gemm_update_params_valid(info, &opt.upd, why, sizeof why)) {
    fprintf(stderr, "bench_gemm: %s\n", why);
    clttt_device_close(device);
    return 2;
  }
  status = packed_gemm_kernels_create(&opt.kernels, device, &opt.gemm, &opt.upd);
  if (status == CLTTT_SUCCESS)
    status = kernel_set_create(&opt.set, device, &device->tuning, 128, 0);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_gemm: %s: %s\n", clttt_status_name(status), clttt_last_error());
    packed_gemm_kernels_release(&opt.kernels);
    clttt_device_close(device);
    return 1;
  }
  time_t now = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  double load[2] = {0.0, 0.0}, sample[3];
  if (getloadavg(sample, 3) > 0)
    load[0] = sample[0];
  fprintf(stderr, "device: %s; %s\n", info->name, device->clblast_tuned ? "CLBlast with clttt's Xgemm parameters"
                                                                          : "CLBlast with its own parameters");
  double start = now_ms();
  double peaks[3] = {0.0, 0.0, 0.0}, cpu_peak_after = 0.0;
  status = bench_fma_peak(device, 3, &peaks[0], &peaks[2]);
  if (status == CLTTT_SUCCESS)
    fprintf(stderr, "FMA peak %.1f GFLOP/s, %.1f per CPU-second\n", peaks[0], peaks[2]);
  result results[MAX_SHAPES * 4 + 8];
  int count = 0;
  for (int i = 0; i < opt.shape_count && opt.linear && status == CLTTT_SUCCESS; i++) {
    fprintf(stderr, "%dx%dx%d (%s)\n", opt.shapes[i].rows, opt.shapes[i].n, opt.shapes[i].k, opt.shapes[i].what);
    status = bench_shape(device, &opt, &opt.shapes[i], results, &count);
  }
  const int update_chunks[2] = {512, 1024};
  for (int i = 0; i < 2 && opt.update && status == CLTTT_SUCCESS; i++) {
    if (opt.quick && i == 1)
      break;
    fprintf(stderr, "update d 1024, f 3072, C %d\n", update_chunks[i]);
    status = bench_update(device, &opt, update_chunks[i], results, &count);
  }
  if (status == CLTTT_SUCCESS)
    status = bench_fma_peak(device, 3, &peaks[1], &cpu_peak_after);
  if (cpu_peak_after > peaks[2])
    peaks[2] = cpu_peak_after;
  if (peaks[1] <= 0.0)
    peaks[1] = peaks[0];
  if (getloadavg(sample, 3) > 0)
    load[1] = sample[0];
  fprintf(stderr, "total %.1f s\n", (now_ms() - start) * 1e-3);
  if (status != CLTTT_SUCCESS)
    fprintf(stderr, "bench_gemm: %s: %s\n", clttt_status_name(status), clttt_last_error());
  if (count)
    print_results(&opt, info, results, count, peaks, load, date);
  packed_gemm_kernels_release(&opt.kernels);
  kernel_set_release(&opt.set);
  clttt_device_close(device);
  return status == CLTTT_SUCCESS ? 0 : 1;
}
