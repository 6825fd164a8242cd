/* Decode attention alone: one query against a KV cache of each context
 * length, through the split kernels (attention_short_batch, as a decode step
 * runs them) in each layout of the work (ATTENTION_DECODE_ROWS), against the
 * read roofline of the same run (bench/stream_bandwidth.c).
 *
 * A decode step reads every layer's cache once, so the caches of --layers
 * layers are run back to back and timed together: after the first layer the
 * next one's cache is not in any cache level, as in a model. Layouts are
 * alternated round by round, so a noisy machine moves them alike; the best
 * round and the median are reported. Every layout's output is compared with
 * a plain C computation in double precision (max |difference|), so a fast
 * wrong kernel shows. */
#define _DEFAULT_SOURCE /* clock_gettime */
#include "runtime.h" /* first: it fixes the OpenCL version the other headers see */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "bench_clock.h"
#include "error.h"
#include "ops.h"
#include "packed_gemm.h"
#include "stream_bandwidth.h"

#define MAX_CONTEXTS 16
#define MAX_LAYOUTS 3
#define MAX_ROUNDS 101
#define MAX_LAYERS 64

typedef struct {
  int contexts[MAX_CONTEXTS], context_count;
  int layouts[MAX_LAYOUTS], layout_count;
  int layers, rounds, heads, kv_heads, head_dim, kv_half;
  const char *device;
} options;

static void usage(FILE *out) {
  fprintf(out,
          "usage: bench_decode_attention [--contexts LIST] [--rows LIST] [--layers N] [--rounds N]\n"
          "                              [--heads H/KV] [--head-dim D] [--kv f16|f32] [--device SEL]\n"
          "Decode attention alone (one query over the whole cache, the split kernels) in each\n"
          "layout of the work, its time per layer and read rate against a same-run read stream.\n"
          "  --contexts LIST  cached keys, comma-separated (default 512,4096,16384)\n"
          "  --rows LIST      ATTENTION_DECODE_ROWS layouts: 0 a work-item per (range, head),\n"
          "                   1 a work-item per range for every head (CPUs), 2 a work-group per\n"
          "                   (range, head) (GPUs) (default 0,1 on CPUs, 0,1,2 elsewhere)\n"
          "  --layers N       layers' caches run back to back per round (default 8)\n"
          "  --rounds N       rounds over the layouts (default 15)\n"
          "  --heads H/KV     query and KV heads (default 16/8, Qwen3-0.6B's)\n"
          "  --head-dim D     (default 128)\n"
          "  --kv T           cache element type (default f16, the library's)\n"
          "  --device SEL     OpenCL device (index or name substring)\n");
}

static int parse_list(const char *text, int *values, int capacity, int low, int high, int *count) {
  *count = 0;
  while (*text) {
    char *end;
    long value = strtol(text, &end, 10);
    if (end == text || value < low || value > high || *count == capacity || (*end && *end != ','))
      return 0;
    values[(*count)++] = (int)value;
    text = *end ? end + 1 : end;
  }
  return *count > 0;
}

static int parse_int(const char *text, int low, int high, int *value) {
  char *end;
  long parsed = strtol(text, &end, 10);
  if (end == text || *end || parsed < low || parsed > high)
    return 0;
  *value = (int)parsed;
  return 1;
}

static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.contexts = {512, 4096, 16384}, .context_count = 3, .layout_count = 0, .layers = 8,
                 .rounds = 15, .heads = 16, .kv_heads = 8, .head_dim = 128, .kv_half = 1};
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout);
      exit(0);
    }
    if (!value) {
      fprintf(stderr, "bench_decode_attention: %s needs a value\n", arg);
      return 0;
    }
    int ok = 1;
    if (!strcmp(arg, "--contexts"))
      ok = parse_list(value, o->contexts, MAX_CONTEXTS, 1, 1 << 20, &o->context_count);
    else if (!strcmp(arg, "--rows"))
      ok = parse_list(value, o->layouts, MAX_LAYOUTS, 0, 2, &o->layout_count);
    else if (!strcmp(arg, "--layers"))
      ok = parse_int(value, 1, MAX_LAYERS, &o->layers);
    else if (!strcmp(arg, "--rounds"))
      ok = parse_int(value, 1, MAX_ROUNDS, &o->rounds);
    else if (!strcmp(arg, "--heads"))
      ok = sscanf(value, "%d/%d", &o->heads, &o->kv_heads) == 2 && o->heads > 0 && o->kv_heads > 0 &&
           o->heads <= 256 && o->heads % o->kv_heads == 0;
    else if (!strcmp(arg, "--head-dim"))
      ok = parse_int(value, 2, 512, &o->head_dim) && o->head_dim % 2 == 0;
    else if (!strcmp(arg, "--kv"))
      ok = (o->kv_half = !strcmp(value, "f16")) || !strcmp(value, "f32");
    else if (!strcmp(arg, "--device"))
      o->device = value;
    else {
      fprintf(stderr, "bench_decode_attention: unknown option %s (--help lists them)\n", arg);
      return 0;
    }
    if (!ok) {
      fprintf(stderr, "bench_decode_attention: bad value for %s: %s\n", arg, value);
      return 0;
    }
    i++;
  }
  return 1;
}

/* Uniform in [-1, 1), reproducible (a 64-bit LCG's high bits). */
static float next_value(uint64_t *state) {
  *state = *state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(*state >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* out (heads x head_dim) = softmax(q K^T / sqrt(head_dim)) V per head, in
 * double, from the cache's own values (rounded to half when the cache is). */
static void reference(const options *o, int keys, const float *q, const float *k, const float *v, double *out) {
  const int kv_dim = o->kv_heads * o->head_dim, group = o->heads / o->kv_heads;
  double *scores = malloc((size_t)keys * sizeof *scores);
  if (!scores)
    return;
  for (int head = 0; head < o->heads; head++) {
    const int column = head / group * o->head_dim;
    double largest = -INFINITY, sum = 0.0;
    for (int key = 0; key < keys; key++) {
      double dot = 0.0;
      for (int c = 0; c < o->head_dim; c++)
        dot += (double)q[head * o->head_dim + c] * k[(size_t)key * kv_dim + column + c];
      scores[key] = dot / sqrt((double)o->head_dim);
      largest = scores[key] > largest ? scores[key] : largest;
    }
    for (int key = 0; key < keys; key++)
      sum += scores[key] = exp(scores[key] - largest);
    for (int c = 0; c < o->head_dim; c++) {
      double value = 0.0;
      for (int key = 0; key < keys; key++)
        value += scores[key] * v[(size_t)key * kv_dim + column + c];
      out[head * o->head_dim + c] = value / sum;
    }
  }
  free(scores);
}

static int compare(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The caches of every layer hold the same values (one upload each); only
 * their addresses differ, which is what the memory system sees. */
typedef struct {
  cl_mem k[MAX_LAYERS], v[MAX_LAYERS], q, out, partials;
} buffers;

static void release_buffers(buffers *b, int layers) {
  for (int l = 0; l < layers; l++) {
    runtime_release(&b->k[l]);
    runtime_release(&b->v[l]);
  }
  runtime_release(&b->q);
  runtime_release(&b->out);
  runtime_release(&b->partials);
}

static int run_context(clttt_device *device, const options *o, kernel_set *sets, int keys, double read_rate) {
  const int kv_dim = o->kv_heads * o->head_dim, q_width = o->heads * o->head_dim;
  const size_t cache = (size_t)keys * (size_t)kv_dim, element = o->kv_half ? 2 : sizeof(float);
  float *k = malloc(cache * sizeof *k), *v = malloc(cache * sizeof *v), *q = malloc((size_t)q_width * sizeof *q);
  float *out = malloc((size_t)q_width * sizeof *out);
  double *expected = malloc((size_t)q_width * sizeof *expected);
  void *staged_k = malloc(cache * element), *staged_v = malloc(cache * element);
  buffers b = {0};
  int ok = k && v && q && out && expected && staged_k && staged_v;
  if (!ok)
    fprintf(stderr, "bench_decode_attention: no host memory for %d keys\n", keys);
  uint64_t state = 7;
  for (size_t i = 0; ok && i < cache; i++) {
    k[i] = 2.0f * next_value(&state);
    v[i] = next_value(&state);
    if (o->kv_half) {
      uint16_t hk = packed_gemm_float_to_half(k[i]), hv = packed_gemm_float_to_half(v[i]);
      ((uint16_t *)staged_k)[i] = hk;
      ((uint16_t *)staged_v)[i] = hv;
      k[i] = packed_gemm_half_to_float(hk);
      v[i] = packed_gemm_half_to_float(hv);
    }
  }
  for (int i = 0; ok && i < q_width; i++)
    q[i] = 2.0f * next_value(&state);
  if (ok && !o->kv_half) {
    memcpy(staged_k, k, cache * element);
    memcpy(staged_v, v, cache * element);
  }
  for (int l = 0; ok && l < o->layers; l++)
    ok = runtime_alloc(device, cache * element, "K cache", &b.k[l]) == CLTTT_SUCCESS &&
         runtime_alloc(device, cache * element, "V cache", &b.v[l]) == CLTTT_SUCCESS &&
         runtime_upload(device, b.k[l], 0, cache * element, staged_k, "K cache") == CLTTT_SUCCESS &&
         runtime_upload(device, b.v[l], 0, cache * element, staged_v, "V cache") == CLTTT_SUCCESS;
  ok = ok && runtime_alloc(device, (size_t)q_width * sizeof(float), "query", &b.q) == CLTTT_SUCCESS &&
       runtime_upload(device, b.q, 0, (size_t)q_width * sizeof(float), q, "query") == CLTTT_SUCCESS &&
       runtime_alloc(device, (size_t)q_width * sizeof(float), "attention output", &b.out) == CLTTT_SUCCESS &&
       runtime_alloc(device, (size_t)ATTENTION_DECODE_FLOATS(o->heads, o->head_dim) * sizeof(float),
                     "decode partials", &b.partials) == CLTTT_SUCCESS;
  if (ok)
    reference(o, keys, q, k, v, expected);
  attention_problem p = {.q = b.q, .q_ld = q_width, .out = b.out, .kv_dim = kv_dim, .n = 1,
                         .position0 = keys - 1, .heads = o->heads, .kv_heads = o->kv_heads, .head_dim = o->head_dim};
  const attention_workspace workspace = {.decode_partials = b.partials};
  static double times[MAX_LAYOUTS][MAX_ROUNDS];
  double worst[MAX_LAYOUTS] = {0};
  /* The first round builds nothing (the sets are built) but touches every
   * page of the caches; it is not counted. */
  for (int round = 0; ok && round <= o->rounds; round++)
    for (int layout = 0; ok && layout < o->layout_count; layout++) {
      const int last = round == o->rounds;
      if (last) { /* NaN first, so an element the kernels miss shows */
        for (int i = 0; i < q_width; i++)
          out[i] = NAN;
        ok = runtime_upload(device, b.out, 0, (size_t)q_width * sizeof(float), out, "attention output") ==
             CLTTT_SUCCESS;
      }
      ok = ok && runtime_finish(device) == CLTTT_SUCCESS;
      const double start = now_seconds();
      for (int l = 0; ok && l < o->layers; l++) {
        p.k_cache = b.k[l];
        p.v_cache = b.v[l];
        ok = attention_short_batch(&sets[layout], &p, &workspace) == CLTTT_SUCCESS;
      }
      ok = ok && runtime_finish(device) == CLTTT_SUCCESS;
      if (round > 0)
        times[layout][round - 1] = (now_seconds() - start) / o->layers;
      if (ok && last) {
        ok = runtime_download(device, b.out, 0, (size_t)q_width * sizeof(float), out, "attention output") ==
             CLTTT_SUCCESS;
        for (int i = 0; ok && i < q_width; i++) {
          const double error = fabs((double)out[i] - expected[i]);
          if (error != error || error > worst[layout]) /* a NaN stays: nothing compares greater */
            worst[layout] = error;
        }
      }
    }
  if (!ok)
    fprintf(stderr, "bench_decode_attention: %d keys: %s\n", keys, clttt_last_error());
  for (int layout = 0; ok && layout < o->layout_count; layout++) {
    double *t = times[layout];
    qsort(t, (size_t)o->rounds, sizeof *t, compare);
    const double median = t[o->rounds / 2], bytes = 2.0 * (double)cache * (double)element;
    printf("| %d | %d | %.3f | %.3f | %.1f | %.2f | %.1e |\n", keys, sets[layout].params.attention_decode_rows,
           1e3 * t[0], 1e3 * median, bytes / median / 1e9, read_rate > 0 ? bytes / median / read_rate : 0.0,
           worst[layout]);
  }
  release_buffers(&b, o->layers);
  free(k);
  free(v);
  free(q);
  free(out);
  free(expected);
  free(staged_k);
  free(staged_v);
  return ok;
}

int main(int argc, char **argv) {
  options o;
  if (!parse_options(argc, argv, &o))
    return 2;
  clttt_device *device = NULL;
  if (clttt_device_open(&device, o.device) != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_decode_attention: %s\n", clttt_last_error());
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  if (o.layout_count == 0) {
    o.layout_count = strcmp(info->type, "CPU") == 0 ? 2 : 3;
    for (int i = 0; i < o.layout_count; i++)
      o.layouts[i] = i;
  }
  kernel_set sets[MAX_LAYOUTS];
  int built = 0, ok = 1;
  for (; ok && built < o.layout_count; built++) {
    tuning_params params = device->tuning;
    params.attention_decode_rows = o.layouts[built];
    ok = kernel_set_create(&sets[built], device, &params, o.head_dim, o.kv_half) == CLTTT_SUCCESS;
    if (!ok) {
      fprintf(stderr, "bench_decode_attention: ATTENTION_DECODE_ROWS=%d: %s\n", o.layouts[built], clttt_last_error());
      break;
    }
  }
  double copy_rate = 0, read_rate = 0;
  if (ok && !stream_bandwidths(device, &copy_rate, &read_rate))
    fprintf(stderr, "bench_decode_attention: no read roofline: %s\n", clttt_last_error());
  if (ok) {
    printf("device: %s (%s, driver %s); read stream %.1f GB/s; %d / %d heads of %d, %s cache, %d layers "
           "back to back, %d rounds\n\n",
           info->name, info->platform, info->driver_version, read_rate / 1e9, o.heads, o.kv_heads, o.head_dim,
           o.kv_half ? "f16" : "f32", o.layers, o.rounds);
    printf("| keys | ATTENTION_DECODE_ROWS | best ms | median ms | GB/s (median) | of read stream | max |error| |\n"
           "| --- | --- | --- | --- | --- | --- | --- |\n");
  }
  for (int c = 0; ok && c < o.context_count; c++)
    ok = run_context(device, &o, sets, o.contexts[c], read_rate);
  for (int i = 0; i < built; i++)
    kernel_set_release(&sets[i]);
  clttt_device_close(device);
  return ok ? 0 : 1;
}
