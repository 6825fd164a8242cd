/* In-Place TTT (SPEC.md sections 2-5) on OpenCL: against goldens from an
 * independent PyTorch implementation, the C reference, the streaming
 * semantics, the prefix form, and the session controls. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "golden.h"
#include "test_model.h"
#include "test_util.h"
#include "reference.h"
#include "ttt.h"
#ifndef CLIP_TAU
#define CLIP_TAU 0.05f
#endif

/* As in check_model.c: fp32 against float64 goldens, logits up to ~10. The
 * TTT update adds one more fp32 product (V^T h over C rows) per chunk whose
 * rounding carries into every later chunk, so the margin is doubled. */
#define GOLDEN_TOLERANCE 4e-4
/* Same computation, different batching: only the order of sums changes. */
#define STREAMING_TOLERANCE 1e-4

static void sequence(int32_t *tokens, int n, int vocab, int seed) {
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 37 + seed * 101 + 3) % vocab);
}

START_TEST(test_ttt_models_match_goldens) {
  char golden_dir[1024];
  snprintf(golden_dir, sizeof golden_dir, "%s/golden", test_environment("CLTTT_TEST_DATA", "tests"));
  int count = 0;
  char **names = golden_list(golden_dir, &count);
  ck_assert_msg(names != NULL && count > 0, "no goldens in %s", golden_dir);
  int checked = 0;
  for (int i = 0; i < count; i++) {
    golden g;
    test_golden_load(&g, names[i]);
    const fixture_spec *spec = fixture_find(g.fixture);
    ck_assert_msg(spec != NULL, "golden %s: unknown fixture %s", names[i], g.fixture);
    if (spec->config.ttt_mode) {
      test_fixture_model fixture;
      test_fixture_open(&fixture, g.fixture);
      test_run_options options = test_run_default;
      options.ttt = g.ttt;
      float *logits = test_run(fixture.model, g.tokens, g.n, options);
      double error = test_max_abs_difference(logits, g.logits, (size_t)g.n * (size_t)g.vocab);
      printf("%-28s C=%-4d max |OpenCL - golden| = %.3g\n", names[i], spec->config.ttt_chunk, error);
      ck_assert_msg(error <= GOLDEN_TOLERANCE, "%s: max abs error %g", names[i], error);
      free(logits);
      test_fixture_close(&fixture);
      checked++;
    }
    golden_free(&g);
  }
  ck_assert_int_ge(checked, 5);
  golden_free_names(names, count);
}
END_TEST

/* Apply-then-update: rows of the first chunk see W_down (identical to TTT
 * off); from the second chunk on the moved weights change the logits. */
START_TEST(test_update_happens_after_first_chunk) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const int C = config->ttt_chunk, vocab = config->vocab_size, n = 3 * C;
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  sequence(tokens, n, vocab, 1);
  test_run_options on = test_run_default, off = test_run_default;
  on.ttt = 1;
  off.ttt = 0;
  float *with_ttt = test_run(fixture.model, tokens, n, on);
  float *without = test_run(fixture.model, tokens, n, off);
  double before = test_rows_difference(with_ttt, without, vocab, 0, C);
  double after = test_rows_difference(with_ttt, without, vocab, C, n);
  printf("TTT on vs off: first chunk %.3g, later chunks %.3g\n", before, after);
  ck_assert_msg(before <= 1e-5, "first chunk differs by %g", before);
  ck_assert_msg(after >= 1e-3, "later chunks differ only by %g: no update happened", after);
  /* The row right after the first update already differs. */
  ck_assert_double_ge(test_rows_difference(with_ttt, without, vocab, C, C + 1), 1e-4);
  free(with_ttt);
  free(without);
  free(tokens);
  test_fixture_close(&fixture);
}
END_TEST

/* One call, pieces of any size, token-by-token decode: the same logits,
 * including pieces that end inside and exactly at chunk boundaries. */
START_TEST(test_streaming_equals_one_shot) {
  static const char *const names[] = {"ttt-proj-hidden", "ttt-noproj-embed", "ttt-llama-embed"};
  for (int k = 0; k < 3; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    const clttt_config *config = clttt_model_get_config(fixture.model);
    const int C = config->ttt_chunk, vocab = config->vocab_size;
    const int n = 2 * C + C / 2 + 1;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    sequence(tokens, n, vocab, 2 + k);
    float *one_shot = test_run(fixture.model, tokens, n, test_run_default);
    const int pieces[] = {1, 5, C, C + 3};
    for (int p = 0; p < 4; p++) {
      test_run_options options = test_run_default;
      options.piece = pieces[p];
      float *streamed = test_run(fixture.model, tokens, n, options);
      double error = test_rows_difference(one_shot, streamed, vocab, 0, n);
      ck_assert_msg(error <= STREAMING_TOLERANCE, "%s, pieces of %d: %g", names[k], pieces[p], error);
      free(streamed);
    }
    free(one_shot);
    free(tokens);
    test_fixture_close(&fixture);
  }
}
END_TEST

/* The C reference, with chunk and eta overridden as an experimenter would. */
START_TEST(test_matches_reference_with_overrides) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-noproj-embed");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const int vocab = config->vocab_size, n = 50;
  int32_t tokens[50];
  sequence(tokens, n, vocab, 7);

  const struct { int ttt, chunk; float eta; } cases[] = {{1, 0, 0.0f}, {1, 8, 0.0f}, {1, 7, 0.25f}, {0, 0, 0.0f}};
  for (int c = 0; c < 4; c++) {
    test_run_options options = test_run_default;
    options.ttt = cases[c].ttt;
    options.chunk = cases[c].chunk;
    options.eta = cases[c].eta;
    float *logits = test_run(fixture.model, tokens, n, options);
    float *expected = test_reference_logits(fixture.dir, tokens, n, cases[c].ttt, cases[c].chunk, cases[c].eta);
    double error = test_rows_difference(logits, expected, vocab, 0, n);
    ck_assert_msg(error <= GOLDEN_TOLERANCE, "case %d (ttt %d chunk %d eta %g): %g", c, cases[c].ttt,
                  cases[c].chunk, (double)cases[c].eta, error);
    free(expected);
    free(logits);
  }
  test_fixture_close(&fixture);
}
END_TEST

/* Update clipping (ttt_clip_tau) against the C reference, which clips the
 * same way in double precision: the OpenCL sum of squares in fp32 over
 * d x f = 8192 terms moves the scale by ~1e-6 relative, far inside the
 * golden tolerance. Clipping must be active (logits move), a tau above
 * every update's norm must change nothing, and streaming in any split must
 * equal one-shot. */
START_TEST(test_clipping_matches_reference) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const int vocab = config->vocab_size, n = 90, C = config->ttt_chunk;
  int32_t tokens[90];
  sequence(tokens, n, vocab, 11);
  reference_model *reference = NULL;
  ck_assert_int_eq(reference_load(&reference, fixture.dir), CLTTT_SUCCESS);
  float *expected = malloc((size_t)n * vocab * sizeof *expected);
  float *unclipped = test_run(fixture.model, tokens, n, test_run_default);
  const float tau = CLIP_TAU;
  ck_assert_int_eq(reference_forward_clipped(reference, tokens, n, 1, 0, 0.0f, tau, expected), CLTTT_SUCCESS);
  test_run_options options = test_run_default;
  options.clip_tau = tau;
  float *clipped = test_run(fixture.model, tokens, n, options);
  double error = test_rows_difference(clipped, expected, vocab, 0, n);
  ck_assert_msg(error <= GOLDEN_TOLERANCE, "clipped vs reference: %g", error);
  double moved = test_rows_difference(clipped, unclipped, vocab, C, n);
  ck_assert_msg(moved >= 1e-3, "tau %g changed the logits by only %g: no clipping happened", (double)tau, moved);
  ck_assert_double_le(test_rows_difference(clipped, unclipped, vocab, 0, C), 0.0);
  const int pieces[] = {1, 5, C, C + 3};
  for (int p = 0; p < 4; p++) {
    options.piece = pieces[p];
    float *streamed = test_run(fixture.model, tokens, n, options);
    double difference = test_rows_difference(streamed, clipped, vocab, 0, n);
    ck_assert_msg(difference <= STREAMING_TOLERANCE, "pieces of %d: %g", pieces[p], difference);
    free(streamed);
  }
  /* A tau no update reaches: exactly the unclipped computation's numbers,
   * up to the extra rounding of adding U separately. */
  options.piece = 0;
  options.clip_tau = 1e30f;
  float *loose = test_run(fixture.model, tokens, n, options);
  ck_assert_double_le(test_rows_difference(loose, unclipped, vocab, 0, n), STREAMING_TOLERANCE);
  free(loose);
  free(clipped);
  free(unclipped);
  free(expected);
  reference_free(reference);
  test_fixture_close(&fixture);
}
END_TEST

/* A prefill longer than one batch (512 rows) whose chunks (C = 12, and an
 * override of 100) straddle the batch boundary, against the C reference. */
START_TEST(test_long_prefill_across_batches) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-noproj-embed");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size, n = 700;
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  sequence(tokens, n, vocab, 9);
  const int chunks[] = {0, 100};
  for (int c = 0; c < 2; c++) {
    test_run_options options = test_run_default;
    options.chunk = chunks[c];
    float *logits = test_run(fixture.model, tokens, n, options);
    float *expected = test_reference_logits(fixture.dir, tokens, n, 1, chunks[c], 0.0f);
    double error = test_max_abs_difference(logits, expected, (size_t)n * (size_t)vocab);
    printf("700-token TTT prefill, chunk %d: max |OpenCL - C reference| = %.3g\n", chunks[c] ? chunks[c] : 12, error);
    ck_assert_msg(error <= GOLDEN_TOLERANCE, "chunk %d: max abs error %g", chunks[c], error);
    free(expected);
    free(logits);
  }
  free(tokens);
  test_fixture_close(&fixture);
}
END_TEST

/* Two sessions, fed alternately across chunk boundaries: neither's fast
 * weights leak into the other's logits. */
START_TEST(test_fast_weights_do_not_leak_between_sessions) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const int C = config->ttt_chunk, vocab = config->vocab_size, n = 3 * C;
  int32_t *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
  sequence(a, n, vocab, 3);
  sequence(b, n, vocab, 11);
  float *expected_a = test_run(fixture.model, a, n, test_run_default);
  float *expected_b = test_run(fixture.model, b, n, test_run_default);
  clttt_session *first = NULL, *second = NULL;
  ck_assert_int_eq(test_session_create(&first, fixture.model, n), CLTTT_SUCCESS);
  ck_assert_int_eq(test_session_create(&second, fixture.model, n), CLTTT_SUCCESS);
  float *got_a = malloc((size_t)n * vocab * sizeof(float)), *got_b = malloc((size_t)n * vocab * sizeof(float));
  test_feed_interleaved(first, second, a, b, n, C / 2 + 1, vocab, got_a, got_b);
  ck_assert_double_le(test_rows_difference(got_a, expected_a, vocab, 0, n), STREAMING_TOLERANCE);
  ck_assert_double_le(test_rows_difference(got_b, expected_b, vocab, 0, n), STREAMING_TOLERANCE);

  /* Resetting the fast weights (a document boundary) and starting over gives
   * the first run again: reset really restores W_down. */
  ck_assert_int_eq(clttt_session_reset(first), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(first, a, n, got_a, 0), CLTTT_SUCCESS);
  ck_assert_double_le(test_rows_difference(got_a, expected_a, vocab, 0, n), STREAMING_TOLERANCE);
  free(got_a);
  free(got_b);
  free(expected_a);
  free(expected_b);
  free(a);
  free(b);
  clttt_session_free(first);
  clttt_session_free(second);
  test_fixture_close(&fixture);
}
END_TEST

/* Random device data for the form tests. */
static cl_mem random_buffer(clttt_device *device, size_t count, unsigned long long seed, float scale,
                            const char *name) {
  float *host = malloc(count * sizeof *host);
  fixture_fill(host, (long)count, seed, name, scale, 0.0f);
  cl_mem buffer = NULL;
  ck_assert_int_eq(runtime_alloc(device, count * sizeof(float), name, &buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, buffer, 0, count * sizeof(float), host, name), CLTTT_SUCCESS);
  free(host);
  return buffer;
}

static float *download(clttt_device *device, cl_mem buffer, size_t count) {
  float *host = malloc(count * sizeof *host);
  ck_assert_int_eq(runtime_download(device, buffer, 0, count * sizeof(float), host, "result"), CLTTT_SUCCESS);
  return host;
}

/* The parallel (prefix) form equals the sequential form, for ranges of
 * several chunk counts and a final partial chunk. */
START_TEST(test_prefix_form_equals_sequential) {
  clttt_device *device = test_open_device();
  const int d = 48, f = 96, C = 8, n = 8 * 11 + 5;
  cl_mem conv = random_buffer(device, (size_t)d * 5, 1, 0.5f, "conv");
  cl_mem projection = random_buffer(device, (size_t)d * d, 2, 0.3f, "projection");
  cl_mem h = random_buffer(device, (size_t)n * f, 3, 1.0f, "h");
  cl_mem t = random_buffer(device, (size_t)n * d, 4, 1.0f, "t");
  cl_mem W0 = random_buffer(device, (size_t)d * f, 5, 0.2f, "W0");
  ttt_layer layer = {.d = d, .f = f, .C = C, .eta = 0.05f, .conv = conv, .projection = projection};
  kernel_set kernels;
  ck_assert_int_eq(kernel_set_create(&kernels, device, &device->tuning, 128, 0), CLTTT_SUCCESS);
  for (int with_projection = 0; with_projection < 2; with_projection++) {
    layer.projection = with_projection ? projection : NULL;
    cl_mem W = NULL, out_sequential = NULL, out_prefix = NULL, W_final = NULL;
    ck_assert_int_eq(runtime_alloc(device, (size_t)d * f * sizeof(float), "W", &W), CLTTT_SUCCESS);
    ck_assert_int_eq(runtime_copy(device, W, 0, W0, 0, (size_t)d * f * sizeof(float), "W"), CLTTT_SUCCESS);
    ck_assert_int_eq(runtime_alloc(device, (size_t)n * d * sizeof(float), "out", &out_sequential), CLTTT_SUCCESS);
    ck_assert_int_eq(runtime_alloc(device, (size_t)n * d * sizeof(float), "out", &out_prefix), CLTTT_SUCCESS);
    ck_assert_int_eq(runtime_alloc(device, (size_t)d * f * sizeof(float), "W_final", &W_final), CLTTT_SUCCESS);
    int status = ttt_sequential_form(&kernels, &layer, W, n, h, t, out_sequential);
    ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
    float *sequential = download(device, out_sequential, (size_t)n * d);
    float *W_sequential = download(device, W, (size_t)d * f);
    double scale = test_max_abs(sequential, (size_t)n * d);
    const int ranges[] = {1, 3, 4, 11, 20};
    for (int r = 0; r < 5; r++) {
      status = ttt_prefix_form(&kernels, &layer, W0, n, h, t, ranges[r], out_prefix, W_final);
      ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
      float *prefix = download(device, out_prefix, (size_t)n * d);
      float *W_prefix = download(device, W_final, (size_t)d * f);
      /* Summing per-range updates first reorders fp32 additions. */
      double error = test_max_abs_difference(prefix, sequential, (size_t)n * d);
      double W_error = test_max_abs_difference(W_prefix, W_sequential, (size_t)d * f);
      ck_assert_msg(error <= 1e-5 * (1.0 + scale), "ranges of %d chunks: outputs differ by %g", ranges[r], error);
      ck_assert_msg(W_error <= 1e-5, "ranges of %d chunks: final W differs by %g", ranges[r], W_error);
      free(prefix);
      free(W_prefix);
    }
    /* The update really moved W. */
    float *W_start = download(device, W0, (size_t)d * f);
    ck_assert_double_ge(test_max_abs_difference(W_start, W_sequential, (size_t)d * f), 1e-3);
    free(W_start);
    free(sequential);
    free(W_sequential);
    runtime_release(&W);
    runtime_release(&out_sequential);
    runtime_release(&out_prefix);
    runtime_release(&W_final);
  }
  cl_mem *buffers[] = {&conv, &projection, &h, &t, &W0};
  for (int i = 0; i < 5; i++)
    runtime_release(buffers[i]);
  kernel_set_release(&kernels);
  clttt_device_close(device);
}
END_TEST

/* Rewrites keys of a fixture's config.json. */
static void edit_config(const char *dir, const char *key, json_t *value) {
  char path[700];
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_error_t error;
  json_t *config = json_load_file(path, 0, &error);
  ck_assert_msg(config != NULL, "%s: %s", path, error.text);
  json_object_set_new(config, key, value);
  ck_assert_int_eq(json_dump_file(config, path, JSON_INDENT(2)), 0);
  json_decref(config);
}

START_TEST(test_checkpoint_without_ttt_tensors) {
  clttt_device *device = test_open_device();
  char dir[512];
  test_make_temporary_directory(dir, sizeof dir);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-noproj-embed"), dir), CLTTT_SUCCESS);
  clttt_model *model = NULL;

  /* ttt_mode with a TTT layer that has no ttt_conv: an error naming it. */
  edit_config(dir, "ttt_layers", json_pack("[i, i]", 0, 1));
  ck_assert_int_eq(clttt_model_load(&model, device, dir, NULL), CLTTT_ERROR_MISSING_TENSOR);
  ck_assert_msg(strstr(clttt_last_error(), "model.layers.0.mlp.ttt_conv.weight") != NULL, "%s",
                clttt_last_error());
  /* ttt_proj claimed but not stored. */
  edit_config(dir, "ttt_layers", json_pack("[i]", 1));
  edit_config(dir, "ttt_proj", json_true());
  ck_assert_int_eq(clttt_model_load(&model, device, dir, NULL), CLTTT_ERROR_MISSING_TENSOR);
  ck_assert_msg(strstr(clttt_last_error(), "model.layers.1.mlp.ttt_proj.weight") != NULL, "%s",
                clttt_last_error());

  /* Without ttt_mode the same files are a plain model: base logits. */
  edit_config(dir, "ttt_proj", json_false());
  edit_config(dir, "ttt_mode", json_false());
  ck_assert_int_eq(clttt_model_load(&model, device, dir, NULL), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_model_get_config(model)->ttt_mode, 0);
  const int vocab = clttt_model_get_config(model)->vocab_size, n = 40;
  int32_t tokens[40];
  sequence(tokens, n, vocab, 5);
  float *plain = test_run(model, tokens, n, test_run_default);
  float *expected = test_reference_logits(dir, tokens, n, 0, 0, 0.0f);
  ck_assert_double_le(test_rows_difference(plain, expected, vocab, 0, n), GOLDEN_TOLERANCE);
  free(expected);
  free(plain);
  clttt_model_free(model);
  test_remove_directory(dir);
  clttt_device_close(device);
}
END_TEST

/* A TTT model whose vocab, d, f and q_dim are all under 5: its ttt_conv
 * (d x 1 x 5) is its largest tensor, which the loader's staging buffer once
 * ignored (a heap overflow under ASan). It loads and runs. */
START_TEST(test_tiny_ttt_model_loads) {
  clttt_device *device = test_open_device();
  clttt_config config;
  ck_assert_int_eq(clttt_synthetic_config(&config, 4, 4, 1, 1, 1, 2, 4, 16, 1, 4, 0.01f), CLTTT_SUCCESS);
  ck_assert_int_eq(config.ttt_layer_count, 1);
  clttt_model *model = NULL;
  int status = clttt_model_synthetic(&model, device, &config, NULL, 3);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, model, 16), CLTTT_SUCCESS);
  int32_t tokens[9] = {0, 1, 2, 3, 3, 2, 1, 0, 1};
  float logits[9 * 4];
  ck_assert_int_eq(clttt_session_feed(session, tokens, 9, logits, 0), CLTTT_SUCCESS);
  for (int i = 0; i < 9 * 4; i++)
    ck_assert_msg(isfinite(logits[i]), "logit %d is %g", i, (double)logits[i]);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_config_free(&config);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_session_params_at_creation) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, fixture.model, 64), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_ttt_enabled(session), 1);
  clttt_session_params resolved = clttt_session_get_params(session);
  ck_assert_int_eq(resolved.context, 64);
  ck_assert_int_eq(resolved.chunk, config->ttt_chunk);
  ck_assert(resolved.eta == config->ttt_lr);
  clttt_session_free(session);

  clttt_session_params params = clttt_session_default_params();
  params.context = 64;
  params.ttt = 0;
  ck_assert_int_eq(clttt_session_create(&session, fixture.model, &params), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_ttt_enabled(session), 0);
  clttt_session_free(session);

  /* Each bad parameter fails before anything is allocated. */
  uint64_t before = 0, after = 0;
  ck_assert_int_eq(clttt_device_memory(fixture.device, &before, NULL, 0), CLTTT_SUCCESS);
  clttt_session_params bad[6];
  for (int i = 0; i < 6; i++)
    bad[i] = params;
  bad[0].chunk = -1;
  bad[1].eta = INFINITY;
  bad[2].eta = NAN;
  bad[3].context = -1;
  bad[4].ttt = 2;
  bad[5].logits = (clttt_logits_mode)7;
  for (int i = 0; i < 6; i++) {
    session = (clttt_session *)&params; /* must come back NULL */
    ck_assert_int_eq(clttt_session_create(&session, fixture.model, &bad[i]), CLTTT_ERROR_INVALID_ARGUMENT);
    ck_assert_ptr_null(session);
    ck_assert_msg(strlen(clttt_last_error()) > 0, "case %d: no message", i);
  }
  ck_assert_int_eq(clttt_device_memory(fixture.device, &after, NULL, 0), CLTTT_SUCCESS);
  ck_assert_uint_eq(after, before);

  /* A session larger than the device: refused up front with the sizes
   * (once, only per-buffer limits were checked and PoCL aborted under
   * memory pressure), nothing allocated. */
  clttt_session_params huge = params;
  huge.context = 1 << 28;
  session = NULL;
  ck_assert_int_eq(clttt_session_create(&session, fixture.model, &huge), CL_MEM_OBJECT_ALLOCATION_FAILURE);
  ck_assert_ptr_null(session);
  ck_assert_msg(strstr(clttt_last_error(), "does not fit on device") != NULL &&
                    strstr(clttt_last_error(), clttt_device_get_info(fixture.device)->name) != NULL &&
                    strstr(clttt_last_error(), "MiB") != NULL,
                "%s", clttt_last_error());
  ck_assert_int_eq(clttt_device_memory(fixture.device, &after, NULL, 0), CLTTT_SUCCESS);
  ck_assert_uint_eq(after, before);
  test_fixture_close(&fixture);
}
END_TEST

/* The cost model is the allocation: what a session takes from the device
 * equals clttt_estimate_session_bytes for chunks below, at and above the
 * batch, TTT on and off, and both logits modes. */
START_TEST(test_estimate_equals_allocation) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  static const int chunks[] = {0, 1, 7, 600, 1500, 3000};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
    for (int ttt = 0; ttt <= 1; ttt++)
      for (int mode = 0; mode <= 3; mode++) {
        clttt_session_params params = clttt_session_default_params();
        params.context = 2000;
        params.chunk = chunks[c];
        params.ttt = ttt;
        params.logits = mode % 2 ? CLTTT_LOGITS_LAST : CLTTT_LOGITS_ALL;
        params.kv_type = mode / 2 ? CLTTT_KV_F32 : CLTTT_KV_F16;
        params.ttt_clip_tau = c % 2 ? 0.5f : 0.0f;
        uint64_t before = 0, after = 0;
        ck_assert_int_eq(clttt_device_memory(fixture.device, &before, NULL, 0), CLTTT_SUCCESS);
        clttt_session *session = NULL;
        ck_assert_msg(clttt_session_create(&session, fixture.model, &params) == CLTTT_SUCCESS, "%s",
                      clttt_last_error());
        ck_assert_int_eq(clttt_device_memory(fixture.device, &after, NULL, 0), CLTTT_SUCCESS);
        ck_assert_msg(after - before == clttt_estimate_session_bytes(config, &params),
                      "chunk %d, ttt %d, mode %d: allocated %llu, estimated %llu", chunks[c], ttt, mode,
                      (unsigned long long)(after - before),
                      (unsigned long long)clttt_estimate_session_bytes(config, &params));
        clttt_session_free(session);
      }
  test_fixture_close(&fixture);
}
END_TEST

START_TEST(test_last_row_session) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size;
  int32_t tokens[40];
  for (int i = 0; i < 40; i++)
    tokens[i] = (int32_t)((i * 7 + 3) % vocab);
  float *all = test_run(fixture.model, tokens, 40, test_run_default);
  clttt_session_params params = clttt_session_default_params();
  params.context = 40;
  params.logits = CLTTT_LOGITS_LAST;
  params.kv_type = CLTTT_KV_F32;
  clttt_session *session = NULL;
  ck_assert_int_eq(clttt_session_create(&session, fixture.model, &params), CLTTT_SUCCESS);
  float *last = malloc((size_t)vocab * sizeof *last);
  float *rows = malloc(40 * (size_t)vocab * sizeof *rows);
  ck_assert_int_eq(clttt_session_feed(session, tokens, 20, rows, 0), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_int_eq(clttt_session_position(session), 0);
  ck_assert_int_eq(clttt_session_feed(session, tokens, 20, last, 1), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(session, tokens + 20, 20, last, 1), CLTTT_SUCCESS);
  /* Row 39 of the all-rows run: the same tokens, streamed in two pieces,
   * and a one-row LM head (GEMV) instead of a GEMM, so fp32 rounding only. */
  double worst = 0.0;
  for (int v = 0; v < vocab; v++) {
    double error = fabs((double)last[v] - (double)all[(size_t)39 * vocab + (size_t)v]);
    worst = error > worst ? error : worst;
  }
  ck_assert_msg(worst <= STREAMING_TOLERANCE, "last row differs from the all-rows session by %g", worst);
  clttt_session_free(session);
  free(last);
  free(rows);
  free(all);
  test_fixture_close(&fixture);
}
END_TEST

static Suite *ttt_suite(void) {
  Suite *suite = suite_create("ttt");
  TCase *golden = tcase_create("golden");
  tcase_add_test(golden, test_ttt_models_match_goldens);
  tcase_add_test(golden, test_matches_reference_with_overrides);
  tcase_add_test(golden, test_update_happens_after_first_chunk);
  tcase_add_test(golden, test_clipping_matches_reference);
  suite_add_tcase(suite, golden);
  TCase *streaming = tcase_create("streaming");
  tcase_add_test(streaming, test_streaming_equals_one_shot);
  tcase_add_test(streaming, test_fast_weights_do_not_leak_between_sessions);
  tcase_add_test(streaming, test_long_prefill_across_batches);
  suite_add_tcase(suite, streaming);
  TCase *forms = tcase_create("forms");
  tcase_add_test(forms, test_prefix_form_equals_sequential);
  suite_add_tcase(suite, forms);
  TCase *controls = tcase_create("controls");
  tcase_add_test(controls, test_checkpoint_without_ttt_tensors);
  tcase_add_test(controls, test_tiny_ttt_model_loads);
  tcase_add_test(controls, test_session_params_at_creation);
  tcase_add_test(controls, test_estimate_equals_allocation);
  tcase_add_test(controls, test_last_row_session);
  suite_add_tcase(suite, controls);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(ttt_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
