/* Our own kernels against plain C computations of the same math, in every
 * variant a device's parameter set can select. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "attention.h"
#include "packed_gemm.h"
#include "gemm.h"
#include "ops.h"
#include "test_util.h"
#include "weights.h"

static cl_mem upload_bytes(clttt_device *device, const void *host, size_t bytes) {
  cl_mem buffer = NULL;
  ck_assert_int_eq(runtime_alloc(device, bytes, "test data", &buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, buffer, 0, bytes, host, "test data"), CLTTT_SUCCESS);
  return buffer;
}

static cl_mem upload(clttt_device *device, const float *host, size_t count) {
  return upload_bytes(device, host, count * sizeof(float));
}

/* Half values as their bits (a half KV cache). */
static cl_mem upload_halves(clttt_device *device, const uint16_t *host, size_t count) {
  return upload_bytes(device, host, count * sizeof(uint16_t));
}

/* gemv.cl in both access patterns, with offsets, a leading dimension wider
 * than the row, lengths that are not multiples of the vector width, and beta.
 * fp32 sums of up to 301 products of values below 1: error ~ 301 * 6e-8 of
 * the row's absolute sum, so 1e-5 relative to that sum is a safe bound. */
START_TEST(test_gemv_variants_match_plain_c) {
  clttt_device *device = test_open_device();
  const int out = 37, in = 301, ld = 305, W_offset = 3, x_offset = 2, y_offset = 5;
  float *W = malloc((size_t)(W_offset + out * ld) * sizeof *W), *x = malloc((size_t)(x_offset + in) * sizeof *x);
  float *y0 = malloc((size_t)(y_offset + out) * sizeof *y0), *y = malloc((size_t)(y_offset + out) * sizeof *y);
  fixture_fill(W, W_offset + out * ld, 1, "W", 1.0f, 0.0f);
  fixture_fill(x, x_offset + in, 2, "x", 1.0f, 0.0f);
  fixture_fill(y0, y_offset + out, 3, "y", 1.0f, 0.0f);
  cl_mem W_buffer = upload(device, W, (size_t)(W_offset + out * ld));
  cl_mem x_buffer = upload(device, x, (size_t)(x_offset + in));
  static const struct { int row_per_item, work_group_size; } variants[] = {{1, 16}, {1, 1}, {0, 64}, {0, 128}, {0, 8}, {0, 512}};
  const float betas[] = {0.0f, 0.5f};
  for (int v = 0; v < 6; v++) {
    for (int b = 0; b < 2; b++) {
      cl_mem y_buffer = upload(device, y0, (size_t)(y_offset + out));
      /* Kernels built with the variant's parameters, as a tuning cache would give them. */
      tuning_params params = device->tuning;
      params.gemv_row_per_item = variants[v].row_per_item;
      params.gemv_work_group_size = variants[v].work_group_size;
      char options[64];
      snprintf(options, sizeof options, "GEMV_ROW_PER_ITEM=%d GEMV_WGS=%d", variants[v].row_per_item,
               variants[v].work_group_size);
      kernel_set kernels;
      int status = kernel_set_create(&kernels, device, &params, 128, 0);
      ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", options, clttt_last_error());
      float beta = betas[b];
      status = op_gemv(&kernels, "test gemv", (size_t)out, (size_t)in, view(x_buffer, (size_t)x_offset, (size_t)in),
                       view(W_buffer, (size_t)W_offset, (size_t)ld), beta, view(y_buffer, (size_t)y_offset, 1));
      ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", options, clttt_last_error());
      kernel_set_release(&kernels);
      ck_assert_int_eq(runtime_download(device, y_buffer, 0, (size_t)(y_offset + out) * sizeof(float), y, "y"),
                       CLTTT_SUCCESS);
      for (int i = 0; i < y_offset; i++)
        ck_assert_msg(y[i] == y0[i], "%s: wrote before the offset", options);
      for (int row = 0; row < out; row++) {
        double expected = beta * (double)y0[y_offset + row], magnitude = fabs(expected);
        for (int c = 0; c < in; c++) {
          double term = (double)W[W_offset + row * ld + c] * (double)x[x_offset + c];
          expected += term;
          magnitude += fabs(term);
        }
        ck_assert_msg(fabs(y[y_offset + row] - expected) <= 1e-5 * magnitude, "%s beta %g row %d: %g vs %g", options,
                      (double)beta, row, (double)y[y_offset + row], expected);
      }
      runtime_release(&y_buffer);
    }
  }
  /* The dispatcher: gemm_linear with one row takes this path on any device. */
  cl_mem y_buffer = upload(device, y0, (size_t)(y_offset + out));
  kernel_set kernels;
  ck_assert_int_eq(kernel_set_create(&kernels, device, &device->tuning, 128, 0), CLTTT_SUCCESS);
  ck_assert_int_eq(gemm_linear(&kernels, "one row", 1, (size_t)out, (size_t)in, view(x_buffer, (size_t)x_offset, (size_t)in),
                               view(W_buffer, (size_t)W_offset, (size_t)ld), 0.0f, view(y_buffer, (size_t)y_offset, 1)),
                   CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_download(device, y_buffer, 0, (size_t)(y_offset + out) * sizeof(float), y, "y"), CLTTT_SUCCESS);
  double expected = 0;
  for (int c = 0; c < in; c++)
    expected += (double)W[W_offset + c] * (double)x[x_offset + c];
  ck_assert_double_eq_tol(y[y_offset], expected, 1e-4);
  kernel_set_release(&kernels);
  runtime_release(&y_buffer);
  runtime_release(&W_buffer);
  runtime_release(&x_buffer);
  free(W);
  free(x);
  free(y0);
  free(y);
  clttt_device_close(device);
}
END_TEST


/* Plain C attention in double, as HuggingFace defines it, for the problem's
 * host copies: q (n x q_ld), caches (context x kv_dim). */
static void reference_attention(const attention_problem *p, const float *q, const float *k_cache,
                                const float *v_cache, double *out) {
  const int group = p->heads / p->kv_heads, q_width = p->heads * p->head_dim;
  const double scale = 1.0 / sqrt((double)p->head_dim);
  double *weights = malloc((size_t)(p->position0 + p->n) * sizeof *weights);
  for (int i = 0; i < p->n; i++) {
    const int last = p->position0 + i;
    for (int h = 0; h < p->heads; h++) {
      const int kv_column = (h / group) * p->head_dim;
      double top = -INFINITY, sum = 0.0;
      for (int key = 0; key <= last; key++) {
        double dot = 0.0;
        for (int c = 0; c < p->head_dim; c++)
          dot += (double)q[(size_t)i * p->q_ld + h * p->head_dim + c] * k_cache[(size_t)key * p->kv_dim + kv_column + c];
        weights[key] = dot * scale;
        top = weights[key] > top ? weights[key] : top;
      }
      for (int key = 0; key <= last; key++)
        sum += weights[key] = exp(weights[key] - top);
      for (int c = 0; c < p->head_dim; c++) {
        double value = 0.0;
        for (int key = 0; key <= last; key++)
          value += weights[key] * v_cache[(size_t)key * p->kv_dim + kv_column + c];
        out[(size_t)i * q_width + h * p->head_dim + c] = value / sum;
      }
    }
  }
  free(weights);
}

/* The GEMM + softmax prefill path and the flash kernel against plain C, for
 * grouped (3 query heads per kv head) and plain multi-head shapes, a cache
 * already holding earlier tokens (position0 > 0), q rows wider than the
 * query heads (as in the fused qkv buffer), and blocks that do not divide n
 * (several full blocks and a short one), under several softmax group sizes,
 * including groups wider than a row. Outputs are convex combinations of V
 * values in [-1, 1] from fp32 sums of at most ~100 terms: 2e-5 is a wide
 * margin over rounding, while a wrong head mapping, mask or block offset is
 * off by 1e-2 or more. */
START_TEST(test_attention_paths_match_plain_c) {
  clttt_device *device = test_open_device();
  static const struct { int heads, kv_heads, head_dim, position0, n, block_rows; } shapes[] = {
      {6, 2, 16, 13, 30, 7},   /* GQA, 5 blocks: 4 x 7 rows + 2 */
      {4, 4, 64, 0, 50, 16},   /* MHA from position 0, 4 blocks */
      {8, 2, 32, 37, 9, 64},   /* one block, short n after a long cache */
      {4, 2, 128, 100, 26, 32}, /* the models' head size (8 float16 of output per query), 2 key blocks of 64 */
  };
  static const int softmax_groups[] = {1, 16, 64, 128};
  const tuning_params original = device->tuning;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    attention_problem p = {0};
    p.heads = shapes[s].heads;
    p.kv_heads = shapes[s].kv_heads;
    p.head_dim = shapes[s].head_dim;
    p.position0 = shapes[s].position0;
    p.n = shapes[s].n;
    p.kv_dim = p.kv_heads * p.head_dim;
    const int q_width = p.heads * p.head_dim, context = p.position0 + p.n + 5;
    p.q_ld = q_width + 2 * p.kv_dim;
    const size_t q_floats = (size_t)p.n * (size_t)p.q_ld, cache_floats = (size_t)context * (size_t)p.kv_dim;
    const size_t out_floats = (size_t)p.n * (size_t)q_width;
    float *q = malloc(q_floats * sizeof *q), *k = malloc(cache_floats * sizeof *k);
    float *v = malloc(cache_floats * sizeof *v), *out = malloc(out_floats * sizeof *out);
    double *expected = malloc(out_floats * sizeof *expected);
    /* Scores of a few units: a softmax that is neither flat nor one-hot. */
    fixture_fill(q, (long)q_floats, 11 + s, "q", 2.0f, 0.0f);
    fixture_fill(k, (long)cache_floats, 12 + s, "k", 2.0f, 0.0f);
    fixture_fill(v, (long)cache_floats, 13 + s, "v", 1.0f, 0.0f);
    reference_attention(&p, q, k, v, expected);
    p.q = upload(device, q, q_floats);
    p.k_cache = upload(device, k, cache_floats);
    p.v_cache = upload(device, v, cache_floats);
    cl_mem scores = NULL;
    const size_t score_floats = (size_t)p.heads * (size_t)shapes[s].block_rows * (size_t)(p.position0 + p.n);
    ck_assert_int_eq(runtime_alloc(device, score_floats * sizeof(float), "scores", &scores), CLTTT_SUCCESS);
    /* Our packed-GEMM path reads K and V through panels of the workspace,
     * from a float cache and from a half one (against a reference on the
     * half values). */
    attention_workspace workspace = {0};
    workspace.scores = scores;
    workspace.block_rows = shapes[s].block_rows;
    const size_t panel_bytes = (size_t)attention_panel_floats(context, p.head_dim) * sizeof(float);
    ck_assert_int_eq(runtime_alloc(device, panel_bytes, "K panels", &workspace.packed_keys), CLTTT_SUCCESS);
    ck_assert_int_eq(runtime_alloc(device, panel_bytes, "V panels", &workspace.packed_values), CLTTT_SUCCESS);
    double *expected_half = malloc(out_floats * sizeof *expected_half);
    float *k_rounded = malloc(cache_floats * sizeof *k_rounded), *v_rounded = malloc(cache_floats * sizeof *v_rounded);
    uint16_t *k_half = malloc(cache_floats * sizeof *k_half), *v_half = malloc(cache_floats * sizeof *v_half);
    for (size_t i = 0; i < cache_floats; i++) {
      k_half[i] = packed_gemm_float_to_half(k[i]);
      v_half[i] = packed_gemm_float_to_half(v[i]);
      k_rounded[i] = packed_gemm_half_to_float(k_half[i]);
      v_rounded[i] = packed_gemm_half_to_float(v_half[i]);
    }
    reference_attention(&p, q, k_rounded, v_rounded, expected_half);
    cl_mem k_half_cache = upload_halves(device, k_half, cache_floats);
    cl_mem v_half_cache = upload_halves(device, v_half, cache_floats);
    /* 0-3: GEMM path (CLBlast) per softmax group; 4: flash; 5-6: packed
     * GEMM, float and half cache; 7-10: register tiles, float and half
     * cache, with 6 x 64 tiles two to a work-item and 5 x 16 tiles three to
     * a work-item (rows that do not divide n, work-items whose last tiles
     * are short or empty, blocks the diagonal crosses at every offset;
     * the second pair prefetching 3 rows ahead, past its buffers' ends;
     * the first pair's P V with ATTENTION_TILE_VALUES 8, which the head
     * sizes cut to 1, 4, 2 and 8 float16 a pass, the second's with 1); 11:
     * CLBlast on a half cache,
     * each kv head widened into the workspace. */
    for (int variant = 0; variant < 12; variant++) {
      const int flash = variant == 4, packed = variant >= 5 && variant <= 6, tiles = variant >= 7 && variant <= 10;
      const int half = variant == 6 || variant == 8 || variant == 10 || variant == 11;
      tuning_params params = original;
      if (!flash && !packed && !tiles)
        params.softmax_work_group_size = softmax_groups[variant % 4];
      params.attention_tile_rows = variant >= 9 ? 5 : 6;
      params.attention_tile_keys = variant >= 9 ? 16 : 64;
      params.attention_tile_share = variant >= 9 ? 3 : 2;
      params.attention_tile_prefetch = variant >= 9 ? 3 : 0;
      params.attention_tile_values = variant >= 9 ? 1 : 8;
      kernel_set kernels;
      ck_assert_msg(kernel_set_create(&kernels, device, &params, p.head_dim, half) == CLTTT_SUCCESS, "%s",
                    clttt_last_error());
      if (packed)
        ck_assert_int_eq(kernel_set_add_packed(&kernels), CLTTT_SUCCESS);
      char label[96];
      snprintf(label, sizeof label, "heads %d/%d dim %d from %d, n %d: %s %d", p.heads, p.kv_heads, p.head_dim,
               p.position0, p.n,
               flash    ? "flash"
               : packed ? (half ? "packed GEMM, half cache" : "packed GEMM")
               : tiles  ? (half ? "tiles, half cache, rows" : "tiles, rows")
                        : (half ? "GEMM, half cache, SOFTMAX_WGS" : "GEMM, SOFTMAX_WGS"),
               tiles ? params.attention_tile_rows : flash || packed ? 0 : softmax_groups[variant % 4]);
      for (size_t i = 0; i < out_floats; i++)
        out[i] = NAN;
      p.out = upload(device, out, out_floats);
      attention_problem problem = p;
      if (half) {
        problem.k_cache = k_half_cache;
        problem.v_cache = v_half_cache;
      }
      int status = flash    ? op_attention(&kernels, &p)
                   : packed ? attention_packed(&kernels, &problem, &workspace)
                   : tiles  ? attention_tiles(&kernels, &problem, &workspace)
                   : half   ? attention_gemm(&kernels, &problem, scores, shapes[s].block_rows, workspace.packed_keys,
                                             workspace.packed_values)
                            : attention_gemm(&kernels, &p, scores, shapes[s].block_rows, NULL, NULL);
      ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", label, clttt_last_error());
      ck_assert_int_eq(runtime_download(device, p.out, 0, out_floats * sizeof(float), out, "out"), CLTTT_SUCCESS);
      double worst = 0.0;
      for (size_t i = 0; i < out_floats; i++) {
        double error = fabs((double)out[i] - (half ? expected_half[i] : expected[i]));
        ck_assert_msg(error == error, "%s: element %zu is %g", label, i, (double)out[i]);
        worst = error > worst ? error : worst;
      }
      ck_assert_msg(worst <= 2e-5, "%s: max |OpenCL - C| = %g", label, worst);
      runtime_release(&p.out);
      kernel_set_release(&kernels);
    }
    runtime_release(&scores);
    runtime_release(&workspace.packed_keys);
    runtime_release(&workspace.packed_values);
    runtime_release(&k_half_cache);
    runtime_release(&v_half_cache);
    free(expected_half);
    free(k_rounded);
    free(v_rounded);
    free(k_half);
    free(v_half);
    runtime_release(&p.q);
    runtime_release(&p.k_cache);
    runtime_release(&p.v_cache);
    free(q);
    free(k);
    free(v);
    free(out);
    free(expected);
  }
  clttt_device_close(device);
}
END_TEST

/* Decode's one query and short batches through attention_forward (the
 * split kernels) against plain C: head sizes giving every vector width (16,
 * 8, 4... 6 takes 2), grouped and plain heads, one key, keys just under and
 * over a range, and contexts long enough for all 64 ranges with ragged last
 * ones; 1, 3, 13 and 64 queries (64 / n ranges each: 64, 21, 4 and 1, so
 * later queries' last ranges are short or empty); float and half caches
 * (the reference reads the half values); the three layouts of the work
 * (ATTENTION_DECODE_ROWS 0, 1 and 2: the GPU form's groups, run by PoCL as
 * work-item loops around their barriers), each in ranges of at least 32
 * and of at least 128 keys (ATTENTION_DECODE_KEYS: the GPUs' and the
 * CPUs' default). The cache rows past the batch are NaN, so a key read
 * past a query's last shows. Tolerance as above; over 5001 keys the online
 * sums run longer, 1e-4. */
START_TEST(test_decode_attention_matches_plain_c) {
  clttt_device *device = test_open_device();
  static const int query_counts[] = {1, 3, 13, 64};
  for (int layout = 0; layout < 6; layout++) {
  const int rows = layout / 2;
  tuning_params params = device->tuning;
  params.attention_decode_rows = rows;
  params.attention_decode_keys = layout % 2 ? 128 : 32;
  params.attention_short_split = 1;
  params.attention_gemm_min_queries = 0; /* every batch a short one */
  static const struct { int heads, kv_heads, head_dim, position0; } shapes[] = {
      {6, 2, 16, 0},  {6, 2, 16, 31}, {4, 4, 64, 32},  {8, 2, 128, 100},
      {4, 1, 6, 700}, {2, 2, 8, 45},  {4, 2, 32, 5000}, {2, 1, 12, 2047},
  };
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int half = 0; half < 2; half++) {
      kernel_set kernels;
      ck_assert_msg(kernel_set_create(&kernels, device, &params, shapes[s].head_dim, half) == CLTTT_SUCCESS, "%s",
                    clttt_last_error());
      for (size_t count = 0; count < sizeof query_counts / sizeof query_counts[0]; count++) {
      attention_problem p = {0};
      p.heads = shapes[s].heads;
      p.kv_heads = shapes[s].kv_heads;
      p.head_dim = shapes[s].head_dim;
      p.position0 = shapes[s].position0;
      p.n = query_counts[count];
      p.kv_dim = p.kv_heads * p.head_dim;
      const int q_width = p.heads * p.head_dim, context = p.position0 + p.n + 2;
      p.q_ld = q_width + 2 * p.kv_dim;
      const size_t q_floats = (size_t)p.n * (size_t)p.q_ld, cache_floats = (size_t)context * (size_t)p.kv_dim;
      const size_t visible = (size_t)(p.position0 + p.n) * (size_t)p.kv_dim, out_floats = (size_t)p.n * q_width;
      float *q = malloc(q_floats * sizeof *q), *k = malloc(cache_floats * sizeof *k);
      float *v = malloc(cache_floats * sizeof *v), *out = malloc(out_floats * sizeof *out);
      double *expected = malloc(out_floats * sizeof *expected);
      uint16_t *k_half = malloc(cache_floats * sizeof *k_half), *v_half = malloc(cache_floats * sizeof *v_half);
      fixture_fill(q, (long)q_floats, 21 + s, "q", 2.0f, 0.0f);
      fixture_fill(k, (long)cache_floats, 22 + s, "k", 2.0f, 0.0f);
      fixture_fill(v, (long)cache_floats, 23 + s, "v", 1.0f, 0.0f);
      for (size_t i = visible; i < cache_floats; i++)
        k[i] = v[i] = NAN;
      for (size_t i = 0; i < cache_floats && half; i++) {
        k_half[i] = packed_gemm_float_to_half(k[i]);
        v_half[i] = packed_gemm_float_to_half(v[i]);
        k[i] = packed_gemm_half_to_float(k_half[i]);
        v[i] = packed_gemm_half_to_float(v_half[i]);
      }
      reference_attention(&p, q, k, v, expected);
      p.q = upload(device, q, q_floats);
      if (half) {
        p.k_cache = upload_halves(device, k_half, cache_floats);
        p.v_cache = upload_halves(device, v_half, cache_floats);
      } else {
        p.k_cache = upload(device, k, cache_floats);
        p.v_cache = upload(device, v, cache_floats);
      }
      for (size_t i = 0; i < out_floats; i++)
        out[i] = NAN;
      p.out = upload(device, out, out_floats);
      attention_workspace workspace = {0};
      ck_assert_int_eq(runtime_alloc(device, (size_t)ATTENTION_DECODE_FLOATS(p.heads, p.head_dim) * 4, "partials",
                                     &workspace.decode_partials),
                       CLTTT_SUCCESS);
      int status = attention_forward(&kernels, &p, &workspace);
      ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
      ck_assert_int_eq(runtime_download(device, p.out, 0, out_floats * sizeof(float), out, "out"), CLTTT_SUCCESS);
      double worst = 0.0;
      for (size_t i = 0; i < out_floats; i++) {
        double error = fabs((double)out[i] - expected[i]);
        ck_assert_msg(error == error, "shape %zu, %d queries, rows %d, keys %d: element %zu is %g", s, p.n, rows,
                      params.attention_decode_keys, i,
                      (double)out[i]);
        worst = error > worst ? error : worst;
      }
      const double tolerance = p.position0 > 4000 ? 1e-4 : 2e-5;
      ck_assert_msg(worst <= tolerance,
                    "heads %d/%d dim %d at %d, %d queries (%s cache, rows %d, keys %d): max |OpenCL - C| = %g", p.heads,
                    p.kv_heads, p.head_dim, p.position0, p.n, half ? "half" : "float", rows,
                    params.attention_decode_keys, worst);
      runtime_release(&workspace.decode_partials);
      runtime_release(&p.out);
      runtime_release(&p.q);
      runtime_release(&p.k_cache);
      runtime_release(&p.v_cache);
      free(q);
      free(k);
      free(v);
      free(k_half);
      free(v_half);
      free(out);
      free(expected);
      }
      kernel_set_release(&kernels);
    }
  }
  clttt_device_close(device);
}
END_TEST

/* The non-finite counts (float and half) against a count on the host:
 * NaNs and infinities of both signs at the first and last element, on
 * either side of a work-item's span, outside the counted range (must not
 * count), in ragged lengths and at offsets. */
START_TEST(test_nonfinite_counts_match_plain_c) {
  clttt_device *device = test_open_device();
  kernel_set kernels;
  ck_assert_msg(kernel_set_create(&kernels, device, &device->tuning, 64, 1) == CLTTT_SUCCESS, "%s",
                clttt_last_error());
  enum { TOTAL = 5 * NONFINITE_SPAN + 77 };
  float *values = malloc(TOTAL * sizeof *values);
  uint16_t *halves = malloc(TOTAL * sizeof *halves);
  fixture_fill(values, TOTAL, 91, "values", 3.0f, 0.0f);
  const size_t poisoned[] = {0, 5, NONFINITE_SPAN - 1, NONFINITE_SPAN, 3 * NONFINITE_SPAN + 1, TOTAL - 1};
  for (size_t i = 0; i < sizeof poisoned / sizeof poisoned[0]; i++)
    values[poisoned[i]] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY;
  values[17] = 65504.0f; /* the largest half: finite */
  for (size_t i = 0; i < TOTAL; i++)
    halves[i] = packed_gemm_float_to_half(values[i]);
  cl_mem floats = upload(device, values, TOTAL), half_buffer = upload_halves(device, halves, TOTAL), counter = NULL;
  ck_assert_int_eq(runtime_alloc(device, sizeof(int), "counter", &counter), CLTTT_SUCCESS);
  static const size_t ranges[][2] = {{0, TOTAL}, {1, TOTAL - 2}, {6, NONFINITE_SPAN - 6}, {NONFINITE_SPAN, 1},
                                     {NONFINITE_SPAN + 1, 2 * NONFINITE_SPAN}, {TOTAL - 1, 1}, {0, 0}};
  for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
    int expected = 0;
    for (size_t i = ranges[r][0]; i < ranges[r][0] + ranges[r][1]; i++)
      expected += !isfinite(values[i]);
    int got_float = -1, got_half = -1;
    ck_assert_int_eq(op_count_nonfinite(&kernels, floats, ranges[r][0], ranges[r][1], counter, &got_float),
                     CLTTT_SUCCESS);
    ck_assert_int_eq(op_count_nonfinite_half(&kernels, half_buffer, ranges[r][0], ranges[r][1], counter, &got_half),
                     CLTTT_SUCCESS);
    ck_assert_msg(got_float == expected && got_half == expected, "range %zu+%zu: float %d, half %d, expected %d",
                  ranges[r][0], ranges[r][1], got_float, got_half, expected);
  }
  runtime_release(&floats);
  runtime_release(&half_buffer);
  runtime_release(&counter);
  kernel_set_release(&kernels);
  free(values);
  free(halves);
  clttt_device_close(device);
}
END_TEST

/* widen_to_float (a TTT layer's fast weight starting from its stored
 * W_down) against plain C: each element type's panels, from the CPU
 * variant's layout (k unpadded) and the GPU variant's (k padded to 16), at a
 * ragged 37 x 19 with a half-full last panel, into an output filled with NaN
 * first. fp32 panels must come back bit for bit and bf16/fp16 as the exact
 * widening of the packed value, so the comparison is exact. A row-major
 * weight is refused (the fast weight copies it instead). */
START_TEST(test_widen_to_float_matches_plain_c) {
  clttt_device *device = test_open_device();
  kernel_set kernels;
  ck_assert_msg(kernel_set_create(&kernels, device, &device->tuning, 64, 0) == CLTTT_SUCCESS, "%s",
                clttt_last_error());
  enum { ROWS = 37, COLUMNS = 19 };
  float source[ROWS * COLUMNS], got[ROWS * COLUMNS];
  fixture_fill(source, ROWS * COLUMNS, 57, "W_down", 2.0f, 0.0f);
  packed_gemm_params gpu = device->tuning.gemm;
  gpu.variant = PACKED_GEMM_GPU;
  gpu.nr = 16;
  gpu.tile_k = 16;
  const packed_gemm_params *variants[] = {&device->tuning.gemm, &gpu};
  for (int v = 0; v < 2; v++) {
    for (int type = PACKED_GEMM_F32; type <= PACKED_GEMM_F16; type++) {
      linear_weight weight = {NULL, ROWS, COLUMNS, 1, {0}};
      ck_assert_msg(packed_gemm_layout_for(variants[v], (packed_gemm_type)type, ROWS, COLUMNS, &weight.layout) ==
                        CLTTT_SUCCESS, "%s", clttt_last_error());
      const size_t bytes = packed_gemm_bytes(&weight.layout);
      unsigned char *host = malloc(bytes);
      ck_assert_int_eq(packed_gemm_pack(&weight.layout, host, 0, ROWS, source, PACKED_GEMM_F32, COLUMNS),
                       CLTTT_SUCCESS);
      weight.buffer = upload_bytes(device, host, bytes);
      for (int i = 0; i < ROWS * COLUMNS; i++)
        got[i] = NAN;
      cl_mem out = upload(device, got, ROWS * COLUMNS);
      ck_assert_msg(op_widen_to_float(&kernels, out, &weight) == CLTTT_SUCCESS, "%s", clttt_last_error());
      ck_assert_int_eq(runtime_download(device, out, 0, sizeof got, got, "out"), CLTTT_SUCCESS);
      for (int i = 0; i < ROWS * COLUMNS; i++) {
        const float bf16 = packed_gemm_bf16_to_float(packed_gemm_float_to_bf16(source[i]));
        const float half = packed_gemm_half_to_float(packed_gemm_float_to_half(source[i]));
        const float expected = type == PACKED_GEMM_F32 ? source[i] : type == PACKED_GEMM_BF16 ? bf16 : half;
        ck_assert_msg(got[i] == expected, "variant %d, type %d, element (%d, %d): %.9g, expected %.9g", v, type,
                      i / COLUMNS, i % COLUMNS, got[i], expected);
      }
      runtime_release(&out);
      runtime_release(&weight.buffer);
      free(host);
    }
  }
  linear_weight row_major = {NULL, ROWS, COLUMNS, 0, {0}};
  ck_assert_int_eq(packed_gemm_row_major_layout(PACKED_GEMM_F32, ROWS, COLUMNS, &row_major.layout), CLTTT_SUCCESS);
  row_major.buffer = upload(device, source, ROWS * COLUMNS);
  cl_mem out = upload(device, got, ROWS * COLUMNS);
  ck_assert_int_eq(op_widen_to_float(&kernels, out, &row_major), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(clttt_last_error(), "row-major") != NULL, "%s", clttt_last_error());
  runtime_release(&out);
  runtime_release(&row_major.buffer);
  kernel_set_release(&kernels);
  clttt_device_close(device);
}
END_TEST

/* ttt.cl's depthwise conv against plain C in double: channel counts that
 * are multiples of its 16-channel vectors and ones with a ragged last
 * block (d 37, and d 5 below one block), chunk lengths of 1 (every tap
 * but the centre outside), 7 and 19, a row stride wider than d at an
 * offset, TTT_CONV_ROWS 1, 3 and 8 (blocks that end inside and past the
 * chunk) and TTT_CONV_CHANNELS 16 (vectors), 1 and 5 (channel by channel,
 * the last block ragged); the output is NaN first. Five products of values below 1 per
 * output: fp32 error below 5 * 6e-8 of their absolute sum, so 1e-6 of that
 * sum is safe, and a wrong tap, row or channel is off by O(0.1). */
START_TEST(test_ttt_conv_matches_plain_c) {
  clttt_device *device = test_open_device();
  static const int widths[] = {5, 16, 37, 64}, lengths[] = {1, 7, 19}, rows_per_item[] = {1, 3, 8};
  static const int channels[] = {16, 1, 5};
  enum { OFFSET = 3, PAD = 5 };
  for (int w = 0; w < 4; w++)
    for (int l = 0; l < 3; l++)
      for (int p = 0; p < 9; p++) {
        const int d = widths[w], rows = lengths[l], ld = d + PAD;
        tuning_params params = device->tuning;
        params.conv_rows = rows_per_item[p % 3];
        params.conv_channels = channels[p / 3];
        kernel_set kernels;
        ck_assert_msg(kernel_set_create(&kernels, device, &params, 64, 0) == CLTTT_SUCCESS, "%s", clttt_last_error());
        float *t = malloc((size_t)(OFFSET + rows * ld) * sizeof *t), *weight = malloc((size_t)d * 5 * sizeof *weight);
        float *got = malloc((size_t)rows * d * sizeof *got);
        fixture_fill(t, OFFSET + rows * ld, 70 + (unsigned long long)w, "t", 1.0f, 0.0f);
        fixture_fill(weight, d * 5, 80 + (unsigned long long)l, "conv", 1.0f, 0.0f);
        for (int i = 0; i < rows * d; i++)
          got[i] = NAN;
        cl_mem t_buffer = upload(device, t, (size_t)(OFFSET + rows * ld));
        cl_mem w_buffer = upload(device, weight, (size_t)d * 5);
        cl_mem out = upload(device, got, (size_t)rows * d);
        const int status = op_ttt_conv(&kernels, out, view(t_buffer, OFFSET, (size_t)ld), w_buffer, rows, d);
        ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
        ck_assert_int_eq(runtime_download(device, out, 0, (size_t)rows * d * sizeof *got, got, "tc"), CLTTT_SUCCESS);
        for (int i = 0; i < rows; i++)
          for (int c = 0; c < d; c++) {
            double sum = 0.0, magnitude = 0.0;
            for (int tap = 0; tap < 5; tap++) {
              const int source = i - 2 + tap;
              if (source < 0 || source >= rows)
                continue;
              const double term = (double)weight[c * 5 + tap] * t[OFFSET + source * ld + c];
              sum += term;
              magnitude += fabs(term);
            }
            ck_assert_msg(fabs(got[i * d + c] - sum) <= 1e-6 * magnitude + 1e-30,
                          "d %d, %d rows, TTT_CONV_ROWS %d, TTT_CONV_CHANNELS %d: tc[%d][%d] = %.9g, expected "
                          "%.9g", d, rows, params.conv_rows, params.conv_channels, i, c, got[i * d + c], sum);
          }
        runtime_release(&t_buffer);
        runtime_release(&w_buffer);
        runtime_release(&out);
        free(t);
        free(weight);
        free(got);
        kernel_set_release(&kernels);
      }
  clttt_device_close(device);
}
END_TEST

/* rmsnorm.cl in its CPU form (RMSNORM_WGS 1: one work-item per row, 16-wide
 * vector sums) and its work-group forms, against plain C in double, with
 * row strides wider than the rows, widths that are and are not multiples of
 * 16 (and one below 16), and outputs filled with NaN first so that a missed
 * or misplaced element shows. A sum of at most 1024 positive fp32 squares
 * has relative error below 1024 * 6e-8 = 6e-5, halved by the square root,
 * and rsqrt adds a few ulp: 4e-5 of each value is a safe bound, while a
 * wrong stride, tail or scale is off by 1e-2 or more. */
START_TEST(test_rmsnorm_variants_match_plain_c) {
  clttt_device *device = test_open_device();
  const int rows = 5, widths[] = {1024, 1000, 7}, groups[] = {1, 64, 16};
  const float eps = 1e-6f;
  for (int w = 0; w < 3; w++) {
    const int width = widths[w], x_ld = width + 3, out_ld = width + 5;
    float *x = malloc((size_t)rows * x_ld * sizeof *x), *weight = malloc((size_t)width * sizeof *weight);
    float *out = malloc((size_t)rows * out_ld * sizeof *out), *nans = malloc((size_t)rows * out_ld * sizeof *nans);
    fixture_fill(x, (size_t)rows * x_ld, 11, "rmsnorm x", 2.0f, 0.0f);
    fixture_fill(weight, (size_t)width, 12, "rmsnorm weight", 0.5f, 1.0f);
    for (int i = 0; i < rows * out_ld; i++)
      nans[i] = NAN;
    cl_mem x_buffer = upload(device, x, (size_t)rows * x_ld), weight_buffer = upload(device, weight, (size_t)width);
    for (int g = 0; g < 3; g++) {
      tuning_params params = device->tuning;
      params.rmsnorm_work_group_size = groups[g];
      kernel_set kernels;
      ck_assert_msg(kernel_set_create(&kernels, device, &params, 128, 0) == CLTTT_SUCCESS, "%s", clttt_last_error());
      cl_mem out_buffer = upload(device, nans, (size_t)rows * out_ld);
      ck_assert_msg(op_rmsnorm(&kernels, out_buffer, out_ld, x_buffer, x_ld, weight_buffer, rows, width, eps) ==
                        CLTTT_SUCCESS,
                    "%s", clttt_last_error());
      ck_assert_int_eq(runtime_download(device, out_buffer, 0, (size_t)rows * out_ld * sizeof(float), out, "out"),
                       CLTTT_SUCCESS);
      for (int r = 0; r < rows; r++) {
        double sum = 0.0;
        for (int c = 0; c < width; c++)
          sum += (double)x[r * x_ld + c] * x[r * x_ld + c];
        const double scale = 1.0 / sqrt(sum / width + eps);
        for (int c = 0; c < out_ld; c++) {
          const float got = out[r * out_ld + c];
          if (c >= width) {
            ck_assert_msg(isnan(got), "RMSNORM_WGS %d width %d: wrote past row %d's end", groups[g], width, r);
            continue;
          }
          const double expected = x[r * x_ld + c] * scale * weight[c];
          ck_assert_msg(fabs(got - expected) <= 4e-5 * fabs(expected) + 1e-7,
                        "RMSNORM_WGS %d width %d row %d column %d: %.8g vs %.8g", groups[g], width, r, c, (double)got,
                        expected);
        }
      }
      runtime_release(&out_buffer);
      kernel_set_release(&kernels);
    }
    runtime_release(&x_buffer);
    runtime_release(&weight_buffer);
    free(x);
    free(weight);
    free(out);
    free(nans);
  }
  clttt_device_close(device);
}
END_TEST

/* Plain C of op_qk_norm_rope for one token's head vector in double: the
 * optional per-head RMSNorm, then HuggingFace's rotate_half RoPE at
 * `position`, cos and sin times `scaling`. */
static void reference_norm_rope(double *v, int head_dim, const float *norm, double eps, const float *inverse_frequency,
                                int position, double scaling) {
  if (norm) {
    double sum = 0.0;
    for (int c = 0; c < head_dim; c++)
      sum += v[c] * v[c];
    const double scale = 1.0 / sqrt(sum / head_dim + eps);
    for (int c = 0; c < head_dim; c++)
      v[c] = v[c] * scale * norm[c];
  }
  const int half = head_dim / 2;
  for (int i = 0; i < half; i++) {
    const double angle = (double)position * (double)inverse_frequency[i];
    const double cosine = cos(angle) * scaling, sine = sin(angle) * scaling;
    const double first = v[i], second = v[i + half];
    v[i] = first * cosine - second * sine;
    v[i + half] = second * cosine + first * sine;
  }
}

/* rope.cl's fused q/k norm + RoPE + cache write in its CPU form (ROPE_WGS 1,
 * vector code for head sizes that are multiples of 32), its work-group
 * forms over a token's slots and its GPU form along the head
 * (ROPE_HEAD_LANES: reported as ROPE_WGS 0), with and without q/k norm weights, float and half caches, head
 * sizes 128, 64 and 48 (48 takes the work-group code in every variant),
 * grouped heads, a first position past 0 and rows wider than q|k|v.
 * Checked: the rotated query heads in place, the rotated keys and the
 * values in the cache rows of the batch's positions, and that nothing else
 * in the cache changed (filled with NaN). Values are below 4 and angles
 * below 40 radians: the kernel's fp32 angle is within half an ulp of 40
 * (2e-6 rad, so 8e-6 in a value), and fp32 sin/cos (4 ulp) and the norm's
 * sum of 128 squares add less: 3e-5 holds. A half cache adds its rounding,
 * at most 2^-11 of the value. A wrong pairing, position or head offset is
 * off by 1e-1 or more. */
START_TEST(test_qk_norm_rope_variants_match_plain_c) {
  clttt_device *device = test_open_device();
  /* ROPE_WGS 1, 64 and 8, then 0 for ROPE_HEAD_LANES 1 (the GPU form) */
  const int head_dims[] = {128, 64, 48}, groups[] = {1, 64, 8, 0};
  const int heads = 4, kv_heads = 2, n = 5, position0 = 35, context = position0 + n + 2;
  const float eps = 1e-6f, scaling = 0.875f;
  for (int h = 0; h < 3; h++) {
    const int head_dim = head_dims[h], kv_dim = kv_heads * head_dim;
    const int qkv_ld = (heads + 2 * kv_heads) * head_dim + 4;
    float *qkv = malloc((size_t)n * qkv_ld * sizeof *qkv), *result = malloc((size_t)n * qkv_ld * sizeof *result);
    float *q_norm = malloc((size_t)head_dim * sizeof *q_norm), *k_norm = malloc((size_t)head_dim * sizeof *k_norm);
    float *inverse_frequency = malloc((size_t)(head_dim / 2) * sizeof *inverse_frequency);
    float *cache_nans = malloc((size_t)context * kv_dim * sizeof *cache_nans);
    float *k_got = malloc((size_t)context * kv_dim * sizeof *k_got), *v_got = malloc((size_t)context * kv_dim * sizeof *v_got);
    uint16_t *half_nans = malloc((size_t)context * kv_dim * sizeof *half_nans);
    uint16_t *k_bits = malloc((size_t)context * kv_dim * sizeof *k_bits), *v_bits = malloc((size_t)context * kv_dim * sizeof *v_bits);
    double *v = malloc((size_t)head_dim * sizeof *v);
    fixture_fill(qkv, (size_t)n * qkv_ld, 21, "qkv", 2.0f, 0.0f);
    fixture_fill(q_norm, (size_t)head_dim, 22, "q_norm", 0.5f, 1.0f);
    fixture_fill(k_norm, (size_t)head_dim, 23, "k_norm", 0.5f, 1.0f);
    for (int i = 0; i < head_dim / 2; i++)
      inverse_frequency[i] = (float)(1.0 / pow(10000.0, 2.0 * i / head_dim));
    for (int i = 0; i < context * kv_dim; i++) {
      cache_nans[i] = NAN;
      half_nans[i] = 0x7e00; /* a half NaN */
    }
    cl_mem q_norm_buffer = upload(device, q_norm, (size_t)head_dim), k_norm_buffer = upload(device, k_norm, (size_t)head_dim);
    cl_mem frequency_buffer = upload(device, inverse_frequency, (size_t)(head_dim / 2));
    for (int variant = 0; variant < 16; variant++) {
      const int group = groups[variant % 4], normed = (variant / 4) % 2, half = variant / 8;
      tuning_params params = device->tuning;
      params.rope_work_group_size = group > 0 ? group : 64;
      params.rope_head_lanes = group == 0;
      kernel_set kernels;
      ck_assert_msg(kernel_set_create(&kernels, device, &params, head_dim, half) == CLTTT_SUCCESS, "%s",
                    clttt_last_error());
      cl_mem qkv_buffer = upload(device, qkv, (size_t)n * qkv_ld);
      cl_mem k_cache = half ? upload_halves(device, half_nans, (size_t)context * kv_dim)
                            : upload(device, cache_nans, (size_t)context * kv_dim);
      cl_mem v_cache = half ? upload_halves(device, half_nans, (size_t)context * kv_dim)
                            : upload(device, cache_nans, (size_t)context * kv_dim);
      const rope_problem problem = {qkv_buffer, qkv_ld, n, position0, heads, kv_heads, frequency_buffer, scaling,
                                    normed ? q_norm_buffer : NULL, normed ? k_norm_buffer : NULL, eps,
                                    k_cache, v_cache, kv_dim};
      ck_assert_msg(op_qk_norm_rope(&kernels, &problem) == CLTTT_SUCCESS, "%s", clttt_last_error());
      ck_assert_int_eq(runtime_download(device, qkv_buffer, 0, (size_t)n * qkv_ld * sizeof(float), result, "qkv"),
                       CLTTT_SUCCESS);
      const size_t element = half ? sizeof(uint16_t) : sizeof(float);
      ck_assert_int_eq(runtime_download(device, k_cache, 0, (size_t)context * kv_dim * element,
                                        half ? (void *)k_bits : (void *)k_got, "k cache"),
                       CLTTT_SUCCESS);
      ck_assert_int_eq(runtime_download(device, v_cache, 0, (size_t)context * kv_dim * element,
                                        half ? (void *)v_bits : (void *)v_got, "v cache"),
                       CLTTT_SUCCESS);
      if (half)
        for (int i = 0; i < context * kv_dim; i++) {
          k_got[i] = packed_gemm_half_to_float(k_bits[i]);
          v_got[i] = packed_gemm_half_to_float(v_bits[i]);
        }
      const double cache_tolerance = half ? 1.0 / 2048 : 0.0;
      for (int t = 0; t < n; t++)
        for (int slot = 0; slot < heads + 2 * kv_heads; slot++) {
          const int is_query = slot < heads, is_key = !is_query && slot < heads + kv_heads;
          for (int c = 0; c < head_dim; c++)
            v[c] = qkv[(size_t)t * qkv_ld + slot * head_dim + c];
          if (is_query || is_key)
            reference_norm_rope(v, head_dim, normed ? (is_query ? q_norm : k_norm) : NULL, eps, inverse_frequency,
                                position0 + t, scaling);
          const int kv_head = is_query ? 0 : (slot - heads) % kv_heads;
          for (int c = 0; c < head_dim; c++) {
            const size_t cache_index = (size_t)(position0 + t) * kv_dim + (size_t)kv_head * head_dim + c;
            const double got = is_query ? result[(size_t)t * qkv_ld + slot * head_dim + c]
                                        : is_key ? k_got[cache_index] : v_got[cache_index];
            const double tolerance = 3e-5 + (is_query ? 0.0 : cache_tolerance * fabs(v[c]));
            ck_assert_msg(fabs(got - v[c]) <= tolerance,
                          "head_dim %d ROPE_WGS %d%s%s: token %d slot %d column %d: %.8g vs %.8g", head_dim, group,
                          normed ? ", q/k norm" : "", half ? ", half cache" : "", t, slot, c, got, v[c]);
          }
        }
      for (int position = 0; position < context; position++) {
        if (position >= position0 && position < position0 + n)
          continue;
        for (int c = 0; c < kv_dim; c++)
          ck_assert_msg(isnan(k_got[(size_t)position * kv_dim + c]) && isnan(v_got[(size_t)position * kv_dim + c]),
                        "head_dim %d ROPE_WGS %d: wrote cache position %d", head_dim, group, position);
      }
      runtime_release(&qkv_buffer);
      runtime_release(&k_cache);
      runtime_release(&v_cache);
      kernel_set_release(&kernels);
    }
    runtime_release(&q_norm_buffer);
    runtime_release(&k_norm_buffer);
    runtime_release(&frequency_buffer);
    free(qkv);
    free(result);
    free(q_norm);
    free(k_norm);
    free(inverse_frequency);
    free(cache_nans);
    free(k_got);
    free(v_got);
    free(half_nans);
    free(k_bits);
    free(v_bits);
    free(v);
  }
  clttt_device_close(device);
}
END_TEST

static Suite *kernels_suite(void) {
  Suite *suite = suite_create("kernels");
  TCase *gemv = tcase_create("gemv");
  tcase_add_test(gemv, test_gemv_variants_match_plain_c);
  suite_add_tcase(suite, gemv);
  TCase *widen = tcase_create("ttt");
  tcase_add_test(widen, test_widen_to_float_matches_plain_c);
  tcase_add_test(widen, test_ttt_conv_matches_plain_c);
  suite_add_tcase(suite, widen);
  TCase *norms = tcase_create("norms");
  tcase_add_test(norms, test_rmsnorm_variants_match_plain_c);
  tcase_add_test(norms, test_qk_norm_rope_variants_match_plain_c);
  suite_add_tcase(suite, norms);
  TCase *attention = tcase_create("attention");
  tcase_add_test(attention, test_attention_paths_match_plain_c);
  tcase_add_test(attention, test_decode_attention_matches_plain_c);
  tcase_add_test(attention, test_nonfinite_counts_match_plain_c);
  suite_add_tcase(suite, attention);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(kernels_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
