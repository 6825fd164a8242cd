/* Our own GEMM kernels (src/packed_gemm.c, cl/gemm.cl, cl/gemm_update.cl)
 * against plain C in double precision: every variant (with the per-device
 * defaults and with small odd tiles, so ragged edges occur inside tiles too)
 * x every weight type, at ragged shapes, with offsets, leading dimensions
 * wider than the rows, beta 0 and 1, outputs NaN-filled before each call; and
 * the host-side packing and its conversions on their own.
 *
 * Tolerance. The kernels accumulate in fp32 with fma, in some order (one
 * sequential sum per work-item, or slices of GEMM_LOCAL_K added into out). For
 * a sum of K products accumulated with at most K + s + 1 roundings (s slices
 * plus beta), the rounding error is bounded by gamma_{K+s+1} times
 * sum_j |x_j w_j| (+ |beta out|), with gamma_n ~ n * 2^-24. s <= K, so
 *     |got - reference| <= 2 (K + 2) 2^-24 (sum_j |x_j w_j| + |beta out|)
 * holds whatever the order. bf16/fp16 weights are compared with a reference
 * computed from the same rounded weights (the values the packing stored,
 * widened exactly), so the same fp32-accumulation bound applies: the test
 * checks the kernels, not the precision of the formats. Typical errors are far
 * below the bound (about sqrt(K) 2^-24 relative). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packed_gemm.h"
#include "test_util.h"

static const double unit_roundoff = 1.0 / 16777216.0; /* 2^-24 */

static double uniform(unsigned long long *state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*state >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
}

static void fill(float *data, size_t count, unsigned long long seed) {
  unsigned long long state = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < count; i++)
    data[i] = (float)uniform(&state);
}

static void fill_nan(float *data, size_t count) {
  for (size_t i = 0; i < count; i++)
    data[i] = NAN;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static cl_mem upload_bytes(clttt_device *device, const void *host, size_t bytes) {
  cl_mem buffer = NULL;
  ck_assert_int_eq(runtime_alloc(device, bytes, "test data", &buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, buffer, 0, bytes, host, "test data"), CLTTT_SUCCESS);
  return buffer;
}

static void download(clttt_device *device, cl_mem buffer, void *host, size_t bytes) {
  ck_assert_int_eq(runtime_download(device, buffer, 0, bytes, host, "test result"), CLTTT_SUCCESS);
}

static const packed_gemm_type types[] = {PACKED_GEMM_F32, PACKED_GEMM_BF16, PACKED_GEMM_F16};

/* The parameter sets every device runs: its defaults (on a CPU: bf16/fp16
 * converted into local memory 256 k at a time), the CPU variant converting
 * in the inner loop (and one panel per one-row work-item; three in the next
 * set, so the last work-item repeats panels past the end), both variants with small odd tiles so that ragged rows
 * and columns also fall inside tiles (and the local-memory conversion runs in
 * many slices of 7), and the GPU variant with its usual tiles. The two CPU
 * sets sweep fp32 panels in slices of k (16 and 5: several slices, a
 * short last one, and k = 5 in exactly one), and prefetch the one-row
 * kernel's panels 3 and 1 k ahead (the CPU defaults 16), past the end of
 * k = 1 and 5: a prefetch must change no result. The AVX-512 CPU tiles
 * both run wherever the suite does: AMD's 8 x 32 above and Intel's 6 x 64
 * (four float16 per row) below, with row blocks of 100 (not a multiple of
 * 6, so each block ends in a short tile) and bf16/fp16 staged 32 k at a
 * time. */
static int parameter_sets(const clttt_device *device, packed_gemm_params *sets) {
  int count = 0;
  packed_gemm_defaults(&device->info, &sets[count++]);
  sets[count++] = (packed_gemm_params){.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 8, .row_block = 128,
                                       .local_k = 0, .gemv_panels = 1, .gemv_prefetch = 3, .k_slice = 16, .prefetch = 3,
                                       .tile_m = 64, .tile_k = 16,
                                       .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_params){.variant = PACKED_GEMM_CPU, .nr = 16, .mr = 3, .row_block = 5,
                                       .local_k = 7, .gemv_panels = 3, .gemv_prefetch = 1, .k_slice = 5, .prefetch = 1,
                                       .tile_m = 64, .tile_k = 16,
                                       .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_params){.variant = PACKED_GEMM_GPU, .nr = 64, .mr = 8, .row_block = 128,
                                       .local_k = 0, .tile_m = 64, .tile_k = 16, .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_params){.variant = PACKED_GEMM_CPU, .nr = 64, .mr = 6, .row_block = 100,
                                       .local_k = 32, .gemv_panels = 2, .gemv_prefetch = 16, .k_slice = 0,
                                       .prefetch = 16, .tile_m = 64, .tile_k = 16, .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_params){.variant = PACKED_GEMM_GPU, .nr = 24, .mr = 8, .row_block = 128,
                                       .local_k = 0, .tile_m = 12, .tile_k = 8, .item_m = 3, .item_n = 2};
  return count;
}

static void describe(const packed_gemm_params *p, packed_gemm_type type, char *text, size_t capacity) {
  packed_gemm_defines(p, type, text, capacity);
}

/* The float value the packing stores for a source element, widened exactly. */
static float stored_value(float source, packed_gemm_type type) {
  switch (type) {
    case PACKED_GEMM_BF16: return packed_gemm_bf16_to_float(packed_gemm_float_to_bf16(source));
    case PACKED_GEMM_F16: return packed_gemm_half_to_float(packed_gemm_float_to_half(source));
    default: return source;
  }
}

/* A source tensor of `rows` x k elements of `type` (row stride ld), made from
 * fp32 values; *values receives what each element means as a float. */
static void *make_source(const float *values, size_t rows, size_t k, size_t ld, packed_gemm_type type) {
  size_t size = packed_gemm_element_size(type);
  unsigned char *data = calloc(rows * ld, size);
  ck_assert_ptr_nonnull(data);
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < k; j++) {
      float value = values[r * k + j];
      if (type == PACKED_GEMM_F32) {
        memcpy(data + (r * ld + j) * 4, &value, 4);
      } else {
        uint16_t raw = type == PACKED_GEMM_BF16 ? packed_gemm_float_to_bf16(value) : packed_gemm_float_to_half(value);
        memcpy(data + (r * ld + j) * 2, &raw, 2);
      }
    }
  return data;
}

typedef struct {
  size_t rows, n, k;
  float beta;
  unsigned long long seed;
  packed_gemm_type type;
  /* Host inputs in the views' layout, and the double-precision reference
   * (rows x n) with the magnitude each element's error bound scales with. */
  float *x, *w, *out0;
  double *expected, *magnitude;
} gemm_problem;

enum { X_OFFSET = 3, X_PAD = 5, OUT_OFFSET = 7, OUT_PAD = 3, PACKED_OFFSET = 6 };

static size_t x_count(const gemm_problem *p) { return X_OFFSET + p->rows * (p->k + X_PAD); }
static size_t out_count(const gemm_problem *p) { return OUT_OFFSET + p->rows * (p->n + OUT_PAD); }

/* W is packed as two stacked tensors (rows [0, split) and [split, n), as
 * q/k/v or gate/up are), the first from an fp32 source, the second from a
 * source of the weight type itself (bf16 for fp32 weights: the widening
 * path). The value each weight element has once packed: */
static float packed_value(const gemm_problem *p, size_t row, float value) {
  packed_gemm_type second = p->type == PACKED_GEMM_F32 ? PACKED_GEMM_BF16 : p->type;
  if (row >= p->n / 2 && second != p->type)
    value = stored_value(value, second);
  return stored_value(value, p->type);
}

/* Inputs and the reference, computed once and checked against every
 * parameter set. */
static void problem_create(gemm_problem *p, size_t rows, size_t n, size_t k, float beta, unsigned long long seed,
                           packed_gemm_type type) {
  *p = (gemm_problem){.rows = rows, .n = n, .k = k, .beta = beta, .seed = seed, .type = type};
  const size_t x_ld = k + X_PAD, out_ld = n + OUT_PAD;
  p->x = malloc(x_count(p) * sizeof *p->x);
  p->w = malloc(n * k * sizeof *p->w);
  p->out0 = malloc(out_count(p) * sizeof *p->out0);
  p->expected = malloc(rows * n * sizeof *p->expected);
  p->magnitude = malloc(rows * n * sizeof *p->magnitude);
  float *w_packed = malloc(n * k * sizeof *w_packed);
  ck_assert(p->x && p->w && p->out0 && p->expected && p->magnitude && w_packed);
  fill(p->x, x_count(p), seed);
  fill(p->w, n * k, seed + 1);
  if (beta == 0.0f)
    fill_nan(p->out0, out_count(p)); /* beta 0 must not read out: NaN would show */
  else
    fill(p->out0, out_count(p), seed + 2);
  for (size_t row = 0; row < n; row++)
    for (size_t j = 0; j < k; j++)
      w_packed[row * k + j] = packed_value(p, row, p->w[row * k + j]);
  for (size_t r = 0; r < rows; r++)
    for (size_t col = 0; col < n; col++) {
      double initial = beta != 0.0f ? (double)beta * p->out0[OUT_OFFSET + r * out_ld + col] : 0.0;
      double sum = initial, magnitude = fabs(initial);
      const float *xr = p->x + X_OFFSET + r * x_ld, *wr = w_packed + col * k;
      for (size_t j = 0; j < k; j++) {
        double term = (double)xr[j] * (double)wr[j];
        sum += term;
        magnitude += fabs(term);
      }
      p->expected[r * n + col] = sum;
      p->magnitude[r * n + col] = magnitude;
    }
  free(w_packed);
}

static void problem_free(gemm_problem *p) {
  free(p->x);
  free(p->w);
  free(p->out0);
  free(p->expected);
  free(p->magnitude);
}

/* Packs the problem's weight for these params (the second tensor first: the
 * order of the calls must not matter), into garbage-filled memory, so the
 * padding must be written by the packing. */
static void *pack_weight(const gemm_problem *p, const packed_gemm_layout *layout) {
  const size_t n = p->n, k = p->k, split = n / 2;
  void *packed = malloc(packed_gemm_bytes(layout));
  ck_assert_ptr_nonnull(packed);
  memset(packed, 0xA5, packed_gemm_bytes(layout));
  packed_gemm_type second = p->type == PACKED_GEMM_F32 ? PACKED_GEMM_BF16 : p->type;
  void *first_source = make_source(p->w, split, k, k + 3, PACKED_GEMM_F32);
  void *second_source = make_source(p->w + split * k, n - split, k, k + 1, second);
  ck_assert_int_eq(packed_gemm_pack(layout, packed, split, n - split, second_source, second, k + 1), CLTTT_SUCCESS);
  ck_assert_int_eq(packed_gemm_pack(layout, packed, 0, split, first_source, PACKED_GEMM_F32, k + 3), CLTTT_SUCCESS);
  free(first_source);
  free(second_source);
  return packed;
}

/* One product on the device with one parameter set, compared with the
 * reference; every element outside the output view must keep its bits. */
static void problem_check(clttt_device *device, const packed_gemm_params *params, const gemm_problem *p) {
  char label[256];
  describe(params, p->type, label, sizeof label);
  const size_t rows = p->rows, n = p->n, k = p->k, x_ld = k + X_PAD, out_ld = n + OUT_PAD;
  packed_gemm_layout layout;
  ck_assert_int_eq(packed_gemm_layout_for(params, p->type, n, k, &layout), CLTTT_SUCCESS);
  void *packed = pack_weight(p, &layout);
  /* The packed weight starts PACKED_OFFSET elements into its buffer. */
  size_t element = packed_gemm_element_size(p->type), packed_bytes = packed_gemm_bytes(&layout);
  unsigned char *staged = calloc(PACKED_OFFSET * element + packed_bytes, 1);
  float *out = malloc(out_count(p) * sizeof *out);
  ck_assert(staged && out);
  memcpy(staged + PACKED_OFFSET * element, packed, packed_bytes);
  cl_mem x_buffer = upload_bytes(device, p->x, x_count(p) * sizeof *p->x);
  cl_mem w_buffer = upload_bytes(device, staged, PACKED_OFFSET * element + packed_bytes);
  cl_mem out_buffer = upload_bytes(device, p->out0, out_count(p) * sizeof *p->out0);
  packed_gemm_kernels kernels;
  int status = packed_gemm_kernels_create(&kernels, device, params, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  status = packed_gemm_run(&kernels, "check_gemm", &layout, rows, view(x_buffer, X_OFFSET, x_ld), w_buffer,
                           PACKED_OFFSET, p->beta, view(out_buffer, OUT_OFFSET, out_ld));
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  packed_gemm_kernels_release(&kernels);
  download(device, out_buffer, out, out_count(p) * sizeof *out);
  for (size_t i = 0; i < out_count(p); i++) {
    size_t r = i < OUT_OFFSET ? 0 : (i - OUT_OFFSET) / out_ld, col = i < OUT_OFFSET ? 0 : (i - OUT_OFFSET) % out_ld;
    if (i < OUT_OFFSET || r >= rows || col >= n) {
      if (!same_bits(out[i], p->out0[i]))
        ck_abort_msg("%s %zux%zux%zu beta %g: element %zu outside the output changed", label, rows, n, k,
                     (double)p->beta, i);
      continue;
    }
    double expected = p->expected[r * n + col];
    double tolerance = 2.0 * (double)(k + 2) * unit_roundoff * p->magnitude[r * n + col] + 1e-30;
    if (!(fabs((double)out[i] - expected) <= tolerance))
      ck_abort_msg("%s %zux%zux%zu beta %g: out[%zu][%zu] = %.9g, expected %.9g (tolerance %.3g)", label, rows, n, k,
                   (double)p->beta, r, col, (double)out[i], expected, tolerance);
  }
  runtime_release(&x_buffer);
  runtime_release(&w_buffer);
  runtime_release(&out_buffer);
  free(staged);
  free(packed);
  free(out);
}

START_TEST(test_packed_gemm_ragged_shapes) {
  clttt_device *device = test_open_device();
  packed_gemm_params sets[8];
  int set_count = parameter_sets(device, sets);
  static const size_t rows_list[] = {1, 7, 8, 33, 130}, n_list[] = {1, 31, 33, 100}, k_list[] = {1, 5, 64, 129};
  unsigned long long seed = 1;
  for (int t = 0; t < 3; t++)
    for (size_t a = 0; a < 5; a++)
      for (size_t b = 0; b < 4; b++)
        for (size_t e = 0; e < 4; e++) {
          /* beta alternates over the shapes, so each (rows, n) and each k sees both. */
          gemm_problem p;
          problem_create(&p, rows_list[a], n_list[b], k_list[e], (a + b + e) % 2 ? 1.0f : 0.0f, seed++, types[t]);
          for (int s = 0; s < set_count; s++)
            problem_check(device, &sets[s], &p);
          problem_free(&p);
        }
  clttt_device_close(device);
}
END_TEST

/* A Qwen3-0.6B-sized product (64 tokens through a 3072 x 1024 projection)
 * with every weight type, in both variants with their usual tiles (the
 * device's defaults among them), beta 0 and 1. */
/* A row through the one-row kernel (decode) gives the bits the same row
 * gets inside a batch (prefill), fp32 panels swept in one pass and in
 * slices of k (the one-row kernel stores each slice as the batch kernel
 * does), with beta 0 and beta 0.75 (the residual adds). */
START_TEST(test_one_row_matches_the_batch_bit_for_bit) {
  clttt_device *device = test_open_device();
  const size_t rows = 9, n = 70, k = 131, x_ld = k + X_PAD, out_ld = n + OUT_PAD;
  static const int slices[] = {0, 16, 5};
  static const float betas[] = {0.0f, 0.75f};
  for (int s = 0; s < 3; s++)
    for (int b = 0; b < 2; b++) {
      packed_gemm_params params = {.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 8, .row_block = 4, .local_k = 0,
                                   .gemv_panels = 2, .gemv_prefetch = 4 * s, .k_slice = slices[s]};
      gemm_problem p;
      problem_create(&p, rows, n, k, betas[b], 900 + (unsigned long long)(3 * s + b), PACKED_GEMM_F32);
      packed_gemm_layout layout;
      ck_assert_int_eq(packed_gemm_layout_for(&params, PACKED_GEMM_F32, n, k, &layout), CLTTT_SUCCESS);
      void *packed = pack_weight(&p, &layout);
      cl_mem x_buffer = upload_bytes(device, p.x, x_count(&p) * sizeof *p.x);
      cl_mem w_buffer = upload_bytes(device, packed, packed_gemm_bytes(&layout));
      cl_mem batch_buffer = upload_bytes(device, p.out0, out_count(&p) * sizeof *p.out0);
      cl_mem single_buffer = upload_bytes(device, p.out0, out_count(&p) * sizeof *p.out0);
      packed_gemm_kernels kernels;
      ck_assert_msg(packed_gemm_kernels_create(&kernels, device, &params, NULL) == CLTTT_SUCCESS, "%s",
                    clttt_last_error());
      ck_assert_int_eq(packed_gemm_run(&kernels, "batch", &layout, rows, view(x_buffer, X_OFFSET, x_ld), w_buffer, 0,
                                       p.beta, view(batch_buffer, OUT_OFFSET, out_ld)),
                       CLTTT_SUCCESS);
      for (size_t r = 0; r < rows; r++)
        ck_assert_int_eq(packed_gemm_run(&kernels, "one row", &layout, 1, view(x_buffer, X_OFFSET + r * x_ld, x_ld),
                                         w_buffer, 0, p.beta, view(single_buffer, OUT_OFFSET + r * out_ld, out_ld)),
                         CLTTT_SUCCESS);
      packed_gemm_kernels_release(&kernels);
      float *batch = malloc(out_count(&p) * sizeof *batch), *single = malloc(out_count(&p) * sizeof *single);
      ck_assert(batch && single);
      download(device, batch_buffer, batch, out_count(&p) * sizeof *batch);
      download(device, single_buffer, single, out_count(&p) * sizeof *single);
      for (size_t i = 0; i < out_count(&p); i++)
        ck_assert_msg(same_bits(batch[i], single[i]), "K_SLICE %d beta %g: element %zu: batch %.9g, one row %.9g",
                      slices[s], (double)p.beta, i, (double)batch[i], (double)single[i]);
      free(batch);
      free(single);
      free(packed);
      runtime_release(&x_buffer);
      runtime_release(&w_buffer);
      runtime_release(&batch_buffer);
      runtime_release(&single_buffer);
      problem_free(&p);
    }
  clttt_device_close(device);
}
END_TEST

START_TEST(test_packed_gemm_model_shape) {
  clttt_device *device = test_open_device();
  packed_gemm_params sets[8];
  parameter_sets(device, sets);
  const int picks[] = {0, 1, 3}; /* defaults, CPU converting in the inner loop, GPU */
  for (int t = 0; t < 3; t++) {
    gemm_problem p;
    problem_create(&p, 64, 3072, 1024, t == 1 ? 1.0f : 0.0f, 1000 + (unsigned long long)t, types[t]);
    for (int s = 0; s < 3; s++)
      problem_check(device, &sets[picks[s]], &p);
    problem_free(&p);
  }
  clttt_device_close(device);
}
END_TEST

/* ---------------------------------------------------------------- */

static int update_sets(const clttt_device *device, packed_gemm_update_params *sets) {
  int count = 0;
  packed_gemm_update_defaults(&device->info, &sets[count++]);
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 8, .row_block = 128,
                                              .panels = 1, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                                              .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 8, .row_block = 64,
                                              .local_t = 128, .panels = 2, .tile_m = 64, .tile_n = 64,
                                              .tile_k = 16, .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_CPU, .nr = 16, .mr = 3, .row_block = 5,
                                              .local_t = 7, .panels = 3, .tile_m = 64, .tile_n = 64, .tile_k = 16, .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_GPU, .nr = 32, .mr = 8, .row_block = 128,
                                              .panels = 1, .tile_m = 64, .tile_n = 64, .tile_k = 16, .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_GPU, .nr = 32, .mr = 8, .row_block = 128,
                                              .panels = 1, .tile_m = 20, .tile_n = 12, .tile_k = 6, .item_m = 5, .item_n = 2};
  /* The one-pass form (V and h packed first), at a plain and a ragged tile. */
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 8, .row_block = 128,
                                              .panels = 1, .packed = 1, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                                              .item_m = 4, .item_n = 4};
  sets[count++] = (packed_gemm_update_params){.variant = PACKED_GEMM_CPU, .nr = 48, .mr = 5, .row_block = 7,
                                              .panels = 3, .packed = 1, .tile_m = 64, .tile_n = 64, .tile_k = 16,
                                              .item_m = 4, .item_n = 4};
  return count;
}

enum { V_OFFSET = 5, V_PAD = 2, H_OFFSET = 1, H_PAD = 7, W_OFFSET = 4, W_PAD = 3 };

typedef struct {
  size_t d, f, c;
  float eta;
  float *v, *h, *w0;            /* in the views' layout; W is NaN outside its view */
  double *expected, *magnitude; /* d x f */
} update_problem;

static size_t w_count(const update_problem *u) { return W_OFFSET + u->d * (u->f + W_PAD); }

static void update_create(update_problem *u, size_t d, size_t f, size_t c, unsigned long long seed) {
  *u = (update_problem){.d = d, .f = f, .c = c, .eta = 0.37f};
  const size_t v_ld = d + V_PAD, h_ld = f + H_PAD, w_ld = f + W_PAD;
  const size_t v_count = V_OFFSET + c * v_ld, h_count = H_OFFSET + c * h_ld;
  u->v = malloc(v_count * sizeof *u->v);
  u->h = malloc(h_count * sizeof *u->h);
  u->w0 = malloc(w_count(u) * sizeof *u->w0);
  u->expected = calloc(d * f, sizeof *u->expected);
  u->magnitude = calloc(d * f, sizeof *u->magnitude);
  ck_assert(u->v && u->h && u->w0 && u->expected && u->magnitude);
  fill(u->v, v_count, seed);
  fill(u->h, h_count, seed + 1);
  fill(u->w0, w_count(u), seed + 2);
  /* Outside the view W reads as NaN: touching it would show. */
  for (size_t i = 0; i < w_count(u); i++)
    if (i < W_OFFSET || (i - W_OFFSET) % w_ld >= f)
      u->w0[i] = NAN;
  /* sum_t V[t][i] h[t][j], t outermost so both operands are read in order. */
  for (size_t t = 0; t < c; t++)
    for (size_t i = 0; i < d; i++) {
      const double vi = u->v[V_OFFSET + t * v_ld + i];
      const float *ht = u->h + H_OFFSET + t * h_ld;
      double *sum = u->expected + i * f, *magnitude = u->magnitude + i * f;
      for (size_t j = 0; j < f; j++) {
        sum[j] += vi * ht[j];
        magnitude[j] += fabs(vi * ht[j]);
      }
    }
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < f; j++) {
      double w = u->w0[W_OFFSET + i * w_ld + j];
      u->expected[i * f + j] = w + (double)u->eta * u->expected[i * f + j];
      u->magnitude[i * f + j] = fabs(w) + (double)u->eta * u->magnitude[i * f + j];
    }
}

static void update_free(update_problem *u) {
  free(u->v);
  free(u->h);
  free(u->w0);
  free(u->expected);
  free(u->magnitude);
}

/* Scratch for either update of a d x f W over c rows, all NaN. */
static cl_mem upload_nan_scratch(clttt_device *device, size_t d, size_t f, size_t c) {
  const size_t floats = (size_t)packed_gemm_update_scratch_bytes(d, f, c) / sizeof(float);
  float *nans = malloc(floats * sizeof *nans);
  ck_assert_ptr_nonnull(nans);
  fill_nan(nans, floats);
  cl_mem scratch = upload_bytes(device, nans, floats * sizeof *nans);
  free(nans);
  return scratch;
}

/* W[row][col] after the update against the double reference: c products
 * and the add to W, with `roundings` more than c per element (2 rounding
 * errors per step, as for the GEMM above). */
static void assert_updated_element(const char *label, const update_problem *u, size_t row, size_t col, float got,
                                   int roundings) {
  const double expected = u->expected[row * u->f + col];
  const double tolerance =
      2.0 * (double)(u->c + (size_t)roundings) * unit_roundoff * u->magnitude[row * u->f + col] + 1e-30;
  if (!(fabs((double)got - expected) <= tolerance))
    ck_abort_msg("%s d %zu f %zu c %zu: W[%zu][%zu] = %.9g, expected %.9g (tolerance %.3g)", label, u->d, u->f, u->c,
                 row, col, (double)got, expected, tolerance);
}

static void update_check(clttt_device *device, const packed_gemm_update_params *params, const update_problem *u) {
  char label[256], defines[224];
  packed_gemm_update_defines(params, defines, sizeof defines);
  snprintf(label, sizeof label, "%s, UPDATE_PACKED %d", defines, params->packed);
  const size_t d = u->d, f = u->f, c = u->c, v_ld = d + V_PAD, h_ld = f + H_PAD, w_ld = f + W_PAD;
  float *w = malloc(w_count(u) * sizeof *w);
  ck_assert_ptr_nonnull(w);
  cl_mem v_buffer = upload_bytes(device, u->v, (V_OFFSET + c * v_ld) * sizeof *u->v);
  cl_mem h_buffer = upload_bytes(device, u->h, (H_OFFSET + c * h_ld) * sizeof *u->h);
  cl_mem w_buffer = upload_bytes(device, u->w0, w_count(u) * sizeof *u->w0);
  /* The one-pass form's scratch, NaN first: its packing must write every
   * value the kernel reads (the zero columns past f included). */
  cl_mem scratch = upload_nan_scratch(device, d, f, c);
  packed_gemm_kernels kernels;
  packed_gemm_params gemm_params;
  packed_gemm_defaults(&device->info, &gemm_params);
  int status = packed_gemm_kernels_create(&kernels, device, &gemm_params, params);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  status = packed_gemm_update(&kernels, "check_gemm update", d, f, c, u->eta, view(v_buffer, V_OFFSET, v_ld),
                              view(h_buffer, H_OFFSET, h_ld), view(w_buffer, W_OFFSET, w_ld), scratch);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  packed_gemm_kernels_release(&kernels);
  download(device, w_buffer, w, w_count(u) * sizeof *w);
  for (size_t i = 0; i < w_count(u); i++) {
    size_t row = i < W_OFFSET ? 0 : (i - W_OFFSET) / w_ld, col = i < W_OFFSET ? 0 : (i - W_OFFSET) % w_ld;
    if (i < W_OFFSET || col >= f) {
      if (!same_bits(w[i], u->w0[i]))
        ck_abort_msg("%s %zux%zux%zu: element %zu outside W changed", label, d, f, c, i);
      continue;
    }
    /* the scaling by eta and the add to W */
    assert_updated_element(label, u, row, col, w[i], 3);
  }
  runtime_release(&v_buffer);
  runtime_release(&h_buffer);
  runtime_release(&w_buffer);
  runtime_release(&scratch);
  free(w);
}

START_TEST(test_update_ragged_shapes) {
  clttt_device *device = test_open_device();
  packed_gemm_update_params sets[8];
  int set_count = update_sets(device, sets);
  static const size_t d_list[] = {1, 7, 33, 130}, f_list[] = {1, 31, 33, 100}, c_list[] = {1, 5, 64, 129};
  unsigned long long seed = 500;
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (size_t e = 0; e < 4; e++) {
        update_problem u;
        update_create(&u, d_list[a], f_list[b], c_list[e], seed++);
        for (int s = 0; s < set_count; s++)
          update_check(device, &sets[s], &u);
        update_free(&u);
      }
  /* A TTT layer's shape (d 1024, f 3072) over a short chunk, both variants. */
  update_problem u;
  update_create(&u, 1024, 3072, 48, 900);
  update_check(device, &sets[0], &u);
  update_check(device, &sets[2], &u); /* CPU with local slices */
  update_check(device, &sets[4], &u); /* GPU */
  update_check(device, &sets[6], &u); /* CPU, one pass */
  update_free(&u);
  clttt_device_close(device);
}
END_TEST

/* The update of a W kept in the GEMM's fp32 panels (a TTT fast weight on a
 * CPU), for each CPU parameter set of the GEMM (the panel width and row
 * tiles are its): against the same double reference as above. The scratch
 * starts as NaN (the packing must write all it reads), W's padding lanes must
 * stay exactly zero and the floats after W's panels untouched. */
static void update_panels_check(clttt_device *device, const packed_gemm_params *params, const update_problem *u) {
  char label[256];
  describe(params, PACKED_GEMM_F32, label, sizeof label);
  const size_t d = u->d, f = u->f, c = u->c, v_ld = d + V_PAD, h_ld = f + H_PAD, w_ld = f + W_PAD;
  packed_gemm_layout layout;
  ck_assert_int_eq(packed_gemm_layout_for(params, PACKED_GEMM_F32, d, f, &layout), CLTTT_SUCCESS);
  const size_t w_floats = packed_gemm_bytes(&layout) / sizeof(float), tail = 16;
  float *w = malloc((w_floats + tail) * sizeof *w);
  ck_assert_ptr_nonnull(w);
  ck_assert_int_eq(packed_gemm_pack(&layout, w, 0, d, u->w0 + W_OFFSET, PACKED_GEMM_F32, w_ld), CLTTT_SUCCESS);
  fill_nan(w + w_floats, tail);
  cl_mem v_buffer = upload_bytes(device, u->v, (V_OFFSET + c * v_ld) * sizeof *u->v);
  cl_mem h_buffer = upload_bytes(device, u->h, (H_OFFSET + c * h_ld) * sizeof *u->h);
  cl_mem w_buffer = upload_bytes(device, w, (w_floats + tail) * sizeof *w);
  cl_mem scratch = upload_nan_scratch(device, d, f, c);
  packed_gemm_kernels kernels;
  int status = packed_gemm_kernels_create(&kernels, device, params, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  status = packed_gemm_update_panels(&kernels, "check_gemm update into panels", &layout, c, u->eta,
                                     view(v_buffer, V_OFFSET, v_ld), view(h_buffer, H_OFFSET, h_ld), w_buffer,
                                     scratch);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
  packed_gemm_kernels_release(&kernels);
  download(device, w_buffer, w, (w_floats + tail) * sizeof *w);
  const size_t nr = layout.panel_width;
  for (size_t e = 0; e < w_floats + tail; e++) {
    if (e >= w_floats) {
      ck_assert_msg(isnan(w[e]), "%s: float %zu after W's panels changed", label, e - w_floats);
      continue;
    }
    const size_t panel = e / (f * nr), j = e / nr % f, row = panel * nr + e % nr;
    if (row >= d) {
      ck_assert_msg(same_bits(w[e], 0.0f), "%s d %zu f %zu c %zu: padding lane of row %zu = %g", label, d, f, c,
                    row, (double)w[e]);
      continue;
    }
    /* eta scales V before the products here: one rounding more */
    assert_updated_element(label, u, row, j, w[e], 4);
  }
  runtime_release(&v_buffer);
  runtime_release(&h_buffer);
  runtime_release(&w_buffer);
  runtime_release(&scratch);
  free(w);
}

START_TEST(test_update_into_panels_ragged_shapes) {
  clttt_device *device = test_open_device();
  packed_gemm_params sets[10];
  int set_count = parameter_sets(device, sets);
  /* h^T's groups copied as float4 and float16 vectors (the sets above take
   * 8 and 3 rows), with row blocks that are no multiple of them. */
  sets[set_count++] = (packed_gemm_params){.variant = PACKED_GEMM_CPU, .nr = 16, .mr = 4, .row_block = 6,
                                           .gemv_panels = 1, .prefetch = 2};
  sets[set_count++] = (packed_gemm_params){.variant = PACKED_GEMM_CPU, .nr = 32, .mr = 16, .row_block = 40,
                                           .gemv_panels = 1};
  static const size_t d_list[] = {1, 7, 33, 130}, f_list[] = {1, 31, 33, 100}, c_list[] = {1, 5, 64, 129};
  unsigned long long seed = 700;
  int cpu_sets = 0;
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (size_t e = 0; e < 4; e++) {
        update_problem u;
        update_create(&u, d_list[a], f_list[b], c_list[e], seed++);
        cpu_sets = 0;
        for (int s = 0; s < set_count; s++)
          if (sets[s].variant == PACKED_GEMM_CPU) {
            update_panels_check(device, &sets[s], &u);
            cpu_sets++;
          }
        update_free(&u);
      }
  ck_assert_int_ge(cpu_sets, 2);
  /* A TTT layer's shape (d 1024, f 3072) over a short chunk, the second set
   * (the CPU defaults on PoCL are the first). */
  update_problem u;
  update_create(&u, 1024, 3072, 48, 950);
  update_panels_check(device, &sets[1], &u);
  update_free(&u);
  clttt_device_close(device);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Host side alone. */

START_TEST(test_conversions_round_to_nearest_even) {
  /* bf16: 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1). */
  ck_assert_uint_eq(packed_gemm_float_to_bf16(1.0f), 0x3f80);
  ck_assert_uint_eq(packed_gemm_float_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  ck_assert_uint_eq(packed_gemm_float_to_bf16(1.0f + 0x1p-7f + 0x1p-8f), 0x3f82);
  ck_assert_uint_eq(packed_gemm_float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  ck_assert_uint_eq(packed_gemm_float_to_bf16(-2.0f), 0xc000);
  ck_assert_uint_eq(packed_gemm_float_to_bf16(3.4028235e38f), 0x7f80); /* rounds up to infinity */
  ck_assert_uint_eq(packed_gemm_float_to_bf16(INFINITY), 0x7f80);
  ck_assert(isnan(packed_gemm_bf16_to_float(packed_gemm_float_to_bf16(NAN))));
  /* fp16: normal rounding, ties to even, overflow, subnormals, underflow. */
  ck_assert_uint_eq(packed_gemm_float_to_half(1.0f), 0x3c00);
  ck_assert_uint_eq(packed_gemm_float_to_half(1.0f + 0x1p-11f), 0x3c00);
  ck_assert_uint_eq(packed_gemm_float_to_half(1.0f + 0x1p-10f + 0x1p-11f), 0x3c02);
  ck_assert_uint_eq(packed_gemm_float_to_half(-65504.0f), 0xfbff);
  ck_assert_uint_eq(packed_gemm_float_to_half(65519.0f), 0x7bff);
  ck_assert_uint_eq(packed_gemm_float_to_half(65520.0f), 0x7c00);
  ck_assert_uint_eq(packed_gemm_float_to_half(0x1p-24f), 0x0001);
  ck_assert_uint_eq(packed_gemm_float_to_half(0x1p-25f), 0x0000);           /* tie to even: zero */
  ck_assert_uint_eq(packed_gemm_float_to_half(0x1p-25f * 1.5f), 0x0001);
  ck_assert_uint_eq(packed_gemm_float_to_half(0x1p-24f * 2.5f), 0x0002);    /* tie to even */
  ck_assert_uint_eq(packed_gemm_float_to_half(0x1p-14f - 0x1p-25f), 0x0400); /* rounds up to the smallest normal */
  ck_assert_uint_eq(packed_gemm_float_to_half(1e-30f), 0x0000);
  ck_assert(isnan(packed_gemm_half_to_float(packed_gemm_float_to_half(NAN))));
  /* Every half and every bf16 widens exactly and narrows back to itself. */
  for (uint32_t raw = 0; raw < 65536; raw++) {
    float half = packed_gemm_half_to_float((uint16_t)raw), brain = packed_gemm_bf16_to_float((uint16_t)raw);
    if (!isnan(half) && packed_gemm_float_to_half(half) != raw)
      ck_abort_msg("half %#x -> %.9g -> %#x", raw, (double)half, packed_gemm_float_to_half(half));
    if (!isnan(brain) && packed_gemm_float_to_bf16(brain) != raw)
      ck_abort_msg("bf16 %#x -> %.9g -> %#x", raw, (double)brain, packed_gemm_float_to_bf16(brain));
  }
  ck_assert(packed_gemm_half_to_float(0x0001) == 0x1p-24f);
  ck_assert(packed_gemm_half_to_float(0x3555) == 0x1.554p-2f);
  /* fp16 rounding against the double-rounding-free reference: float -> half
   * is exact to nearest, so the nearer of the two neighbours must be chosen. */
  unsigned long long state = 7;
  for (int i = 0; i < 200000; i++) {
    float value = (float)(uniform(&state) * ldexp(1.0, (int)(uniform(&state) * 17.5 - 2.5)));
    uint16_t raw = packed_gemm_float_to_half(value);
    double got = packed_gemm_half_to_float(raw);
    double below = packed_gemm_half_to_float((uint16_t)(raw - ((raw & 0x7fff) ? 1 : 0)));
    double above = packed_gemm_half_to_float((uint16_t)(raw + 1));
    if (!(fabs(got - value) <= fabs(below - value) && fabs(got - value) <= fabs(above - value)))
      ck_abort_msg("%.9g -> %#x is not the nearest half", (double)value, raw);
  }
}
END_TEST

START_TEST(test_pack_layout_and_errors) {
  clttt_device *device = test_open_device();
  packed_gemm_params cpu = {.variant = PACKED_GEMM_CPU, .nr = 16, .mr = 4, .row_block = 8, .gemv_panels = 4};
  packed_gemm_layout layout;
  ck_assert_int_eq(packed_gemm_layout_for(&cpu, PACKED_GEMM_BF16, 20, 3, &layout), CLTTT_SUCCESS);
  ck_assert_uint_eq(layout.panels, 2);
  ck_assert_uint_eq(layout.k_padded, 3);
  ck_assert_uint_eq(packed_gemm_bytes(&layout), 2 * 3 * 16 * 2);
  float w[20 * 3];
  for (int i = 0; i < 60; i++)
    w[i] = (float)(i + 1);
  uint16_t packed[2 * 3 * 16];
  memset(packed, 0xff, sizeof packed);
  ck_assert_int_eq(packed_gemm_pack(&layout, packed, 0, 20, w, PACKED_GEMM_F32, 3), CLTTT_SUCCESS);
  /* W[row][j] at ((row / 16) * 3 + j) * 16 + row % 16; rows 20..31 are zero. */
  for (int row = 0; row < 32; row++)
    for (int j = 0; j < 3; j++) {
      float value = packed_gemm_bf16_to_float(packed[((row / 16) * 3 + j) * 16 + row % 16]);
      ck_assert(value == (row < 20 ? (float)(row * 3 + j + 1) : 0.0f));
    }
  packed_gemm_params gpu = {.variant = PACKED_GEMM_GPU, .nr = 32, .tile_m = 32, .tile_k = 16, .item_m = 4, .item_n = 4};
  ck_assert_int_eq(packed_gemm_layout_for(&gpu, PACKED_GEMM_F32, 33, 17, &layout), CLTTT_SUCCESS);
  ck_assert_uint_eq(layout.k_padded, 32);
  ck_assert_uint_eq(layout.panels, 2);
  /* Errors name what is wrong. */
  ck_assert_int_eq(packed_gemm_layout_for(&cpu, PACKED_GEMM_F32, 0, 3, &layout), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_int_eq(packed_gemm_layout_for(&cpu, PACKED_GEMM_F32, 20, 3, &layout), CLTTT_SUCCESS);
  float out[64];
  ck_assert_int_eq(packed_gemm_pack(&layout, out, 15, 6, w, PACKED_GEMM_F32, 3), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "rows 15..21 of a 20 x 3 weight"));
  char why[256];
  packed_gemm_params bad = cpu;
  bad.nr = 24;
  ck_assert_int_eq(packed_gemm_params_valid(&device->info, &bad, why, sizeof why), 0);
  ck_assert_ptr_nonnull(strstr(why, "GEMM_NR=24"));
  /* A launch with a too-small output buffer fails before running and names the product. */
  cl_mem small = NULL, weights = NULL;
  ck_assert_int_eq(runtime_alloc(device, 64 * sizeof(float), "small", &small), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_alloc(device, packed_gemm_bytes(&layout), "weights", &weights), CLTTT_SUCCESS);
  packed_gemm_kernels kernels;
  ck_assert_int_eq(packed_gemm_kernels_create(&kernels, device, &cpu, NULL), CLTTT_SUCCESS);
  int status = packed_gemm_run(&kernels, "undersized", &layout, 4, view(small, 0, 3), weights, 0, 0.0f,
                               view(small, 0, 20));
  packed_gemm_kernels_release(&kernels);
  ck_assert_int_eq(status, CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "packed GEMM 4x20x3"));
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), device->info.name));
  /* Parameters other than the layout's. */
  packed_gemm_params other = cpu;
  other.nr = 32;
  ck_assert_int_eq(packed_gemm_kernels_create(&kernels, device, &other, NULL), CLTTT_SUCCESS);
  status = packed_gemm_run(&kernels, "mismatch", &layout, 1, view(small, 0, 3), weights, 0, 0.0f,
                           view(small, 0, 20));
  packed_gemm_kernels_release(&kernels);
  ck_assert_int_eq(status, CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "packed for other parameters"));
  runtime_release(&small);
  runtime_release(&weights);
  clttt_device_close(device);
}
END_TEST

static Suite *gemm_suite(void) {
  Suite *suite = suite_create("gemm");
  TCase *host = tcase_create("host");
  tcase_add_test(host, test_conversions_round_to_nearest_even);
  tcase_add_test(host, test_pack_layout_and_errors);
  suite_add_tcase(suite, host);
  TCase *linear = tcase_create("packed_gemm");
  tcase_add_test(linear, test_packed_gemm_ragged_shapes);
  tcase_add_test(linear, test_packed_gemm_model_shape);
  tcase_add_test(linear, test_one_row_matches_the_batch_bit_for_bit);
  suite_add_tcase(suite, linear);
  TCase *update = tcase_create("update");
  tcase_add_test(update, test_update_ragged_shapes);
  tcase_add_test(update, test_update_into_panels_ragged_shapes);
  suite_add_tcase(suite, update);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(gemm_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
