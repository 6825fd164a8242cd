/* The forward pass on OpenCL: against HuggingFace goldens, the C reference,
 * and its own streaming semantics (pieces, decode, sessions). */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "golden.h"
#include "safetensors.h"
#include "test_model.h"
#include "test_util.h"

/* Logits against goldens computed by transformers in float64. Our fp32
 * forward pass rounds at every product (unit roundoff 6e-8) and accumulates
 * dot products of up to 256 terms through 2-3 layers, attention softmax and
 * RMSNorm; with logits of magnitude up to ~10 that gives errors of order
 * 1e-5. 2e-4 leaves a margin for reduction order on any device, while every
 * real mistake we have seen (a RoPE frequency off, a missing bias, GQA head
 * mapping, the wrong norm weight) moves logits by 1e-2 or more. */
#define GOLDEN_TOLERANCE 2e-4
/* The same computation in a different batching (pieces, decode) changes only
 * the order of floating-point sums inside GEMMs: a few fp32 ulps of ~10. */
#define STREAMING_TOLERANCE 5e-5

static void check_golden(const char *name) {
  golden g;
  test_golden_load(&g, name);
  const fixture_spec *spec = fixture_find(g.fixture);
  ck_assert_msg(spec != NULL, "golden %s names unknown fixture %s", name, g.fixture);
  test_fixture_model fixture;
  test_fixture_open(&fixture, g.fixture);
  ck_assert_int_eq(clttt_model_get_config(fixture.model)->vocab_size, g.vocab);
  test_run_options options = test_run_default;
  options.ttt = g.ttt;
  float *logits = test_run(fixture.model, g.tokens, g.n, options);
  double error = test_max_abs_difference(logits, g.logits, (size_t)g.n * (size_t)g.vocab);
  printf("%-28s max |OpenCL - golden| = %.3g (largest logit %.3g)\n", name, error,
         test_max_abs(g.logits, (size_t)g.n * (size_t)g.vocab));
  ck_assert_msg(error <= GOLDEN_TOLERANCE, "%s: max abs error %g > %g", name, error, GOLDEN_TOLERANCE);
  free(logits);
  test_fixture_close(&fixture);
  golden_free(&g);
}

/* Every golden of a base (non-TTT) fixture; TTT goldens are check_ttt's. */
START_TEST(test_base_models_match_transformers) {
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
    int base = spec && !spec->config.ttt_mode;
    golden_free(&g);
    if (base) {
      check_golden(names[i]);
      checked++;
    }
  }
  ck_assert_int_ge(checked, 4); /* qwen3-tied, qwen3-yarn, llama-bias, llama3-scaled */
  golden_free_names(names, count);
}
END_TEST

/* The C reference is the second, independent oracle. */
START_TEST(test_matches_c_reference) {
  static const char *const names[] = {"qwen3-yarn", "llama-bias"};
  for (int k = 0; k < 2; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    int n = 40;
    int vocab = clttt_model_get_config(fixture.model)->vocab_size;
    int32_t tokens[40];
    for (int i = 0; i < n; i++)
      tokens[i] = (int32_t)((i * 97 + 13) % vocab);
    float *logits = test_run(fixture.model, tokens, n, test_run_default);
    float *expected = test_reference_logits(fixture.dir, tokens, n, 0, 0, 0.0f);
    double error = test_max_abs_difference(logits, expected, (size_t)n * (size_t)vocab);
    ck_assert_msg(error <= GOLDEN_TOLERANCE, "%s: OpenCL vs C reference %g", names[k], error);
    free(expected);
    free(logits);
    test_fixture_close(&fixture);
  }
}
END_TEST

/* A prefill longer than one batch (512 rows) and than many attention tiles,
 * past the YaRN original context, against the C reference's plain n x n
 * attention; then decode continues from the cache. */
START_TEST(test_long_prefill_matches_reference) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "qwen3-yarn");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size, n = 700;
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 7919 + 11) % vocab);
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, fixture.model, n), CLTTT_SUCCESS);
  float *logits = malloc((size_t)n * (size_t)vocab * sizeof *logits);
  ck_assert_int_eq(clttt_session_feed(session, tokens, n - 3, logits, 0), CLTTT_SUCCESS);
  for (int i = n - 3; i < n; i++)
    ck_assert_int_eq(clttt_session_feed(session, tokens + i, 1, logits + (size_t)i * (size_t)vocab, 0), CLTTT_SUCCESS);
  float *expected = test_reference_logits(fixture.dir, tokens, n, 0, 0, 0.0f);
  double error = test_max_abs_difference(logits, expected, (size_t)n * (size_t)vocab);
  printf("700-token prefill + decode: max |OpenCL - C reference| = %.3g\n", error);
  ck_assert_msg(error <= GOLDEN_TOLERANCE, "max abs error %g", error);
  free(expected);
  free(logits);
  free(tokens);
  clttt_session_free(session);
  test_fixture_close(&fixture);
}
END_TEST

/* Prefill in one call, in pieces, and token by token: the same logits. */
START_TEST(test_pieces_and_decode_equal_one_shot) {
  static const char *const names[] = {"qwen3-tied", "llama3-scaled"};
  for (int k = 0; k < 2; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    int vocab = clttt_model_get_config(fixture.model)->vocab_size;
    enum { N = 70 };
    int32_t tokens[N];
    for (int i = 0; i < N; i++)
      tokens[i] = (int32_t)((i * 31 + 7) % vocab);
    float *one_shot = test_run(fixture.model, tokens, N, test_run_default);
    static const int pieces[] = {1, 7, 64};
    for (int p = 0; p < 3; p++) {
      test_run_options options = test_run_default;
      options.piece = pieces[p];
      float *streamed = test_run(fixture.model, tokens, N, options);
      double error = test_rows_difference(one_shot, streamed, vocab, 0, N);
      ck_assert_msg(error <= STREAMING_TOLERANCE, "%s pieces of %d: %g", names[k], pieces[p], error);
      free(streamed);
    }
    free(one_shot);
    test_fixture_close(&fixture);
  }
}
END_TEST

START_TEST(test_last_row_only_and_reset) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "qwen3-tied");
  int vocab = clttt_model_get_config(fixture.model)->vocab_size;
  int32_t tokens[20];
  for (int i = 0; i < 20; i++)
    tokens[i] = (int32_t)(i * 11 % vocab);
  float *all = test_run(fixture.model, tokens, 20, test_run_default);
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, fixture.model, 32), CLTTT_SUCCESS);
  float *last = malloc((size_t)vocab * sizeof *last);
  for (int round = 0; round < 2; round++) {
    ck_assert_int_eq(clttt_session_feed(session, tokens, 20, last, 1), CLTTT_SUCCESS);
    ck_assert_double_le(test_max_abs_difference(last, all + (size_t)19 * vocab, (size_t)vocab),
                        STREAMING_TOLERANCE);
    /* After a reset the session is as new. */
    ck_assert_int_eq(clttt_session_reset(session), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_position(session), 0);
  }
  free(last);
  free(all);
  clttt_session_free(session);
  test_fixture_close(&fixture);
}
END_TEST

/* Two sessions on one model, fed alternately, each match their own run. */
START_TEST(test_sessions_are_independent) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "llama-bias");
  int vocab = clttt_model_get_config(fixture.model)->vocab_size;
  enum { N = 24 };
  int32_t a[N], b[N];
  for (int i = 0; i < N; i++) {
    a[i] = (int32_t)((i * 5 + 1) % vocab);
    b[i] = (int32_t)((i * 17 + 100) % vocab);
  }
  float *expected_a = test_run(fixture.model, a, N, test_run_default);
  float *expected_b = test_run(fixture.model, b, N, test_run_default);
  clttt_session *first = NULL, *second = NULL;
  ck_assert_int_eq(test_session_create(&first, fixture.model, N), CLTTT_SUCCESS);
  ck_assert_int_eq(test_session_create(&second, fixture.model, N), CLTTT_SUCCESS);
  float *got_a = malloc((size_t)N * vocab * sizeof(float)), *got_b = malloc((size_t)N * vocab * sizeof(float));
  test_feed_interleaved(first, second, a, b, N, 4, vocab, got_a, got_b);
  ck_assert_double_le(test_rows_difference(got_a, expected_a, vocab, 0, N), STREAMING_TOLERANCE);
  ck_assert_double_le(test_rows_difference(got_b, expected_b, vocab, 0, N), STREAMING_TOLERANCE);
  free(got_a);
  free(got_b);
  free(expected_a);
  free(expected_b);
  clttt_session_free(first);
  clttt_session_free(second);
  test_fixture_close(&fixture);
}
END_TEST

START_TEST(test_bad_input_is_an_error) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "qwen3-tied");
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, fixture.model, 8), CLTTT_SUCCESS);
  int32_t tokens[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  ck_assert_int_eq(clttt_session_feed(session, tokens, 9, NULL, 0), CLTTT_ERROR_CONTEXT_FULL);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "context"));
  int32_t outside[2] = {1, 100000};
  ck_assert_int_eq(clttt_session_feed(session, outside, 2, NULL, 0), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "100000"));
  ck_assert_int_eq(clttt_session_feed(session, NULL, 3, NULL, 0), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_int_eq(clttt_session_feed(session, tokens, 8, NULL, 0), CLTTT_SUCCESS);
  clttt_session_free(session);
  test_fixture_close(&fixture);
}
END_TEST

START_TEST(test_load_errors_name_the_problem) {
  clttt_device *device = test_open_device();
  clttt_model *model = (clttt_model *)0x1;
  ck_assert_int_eq(clttt_model_load(&model, device, "/nonexistent/model-dir", NULL), CLTTT_ERROR_IO);
  ck_assert_ptr_null(model);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "/nonexistent/model-dir"));

  /* A valid checkpoint whose config names an architecture we do not run. */
  char dir[512], path[600];
  test_make_temporary_directory(dir, sizeof dir);
  ck_assert_int_eq(fixture_write(fixture_find("qwen3-tied"), dir), CLTTT_SUCCESS);
  snprintf(path, sizeof path, "%s/config.json", dir);
  json_error_t error;
  json_t *config = json_load_file(path, 0, &error);
  ck_assert_ptr_nonnull(config);
  json_object_set_new(config, "architectures", json_pack("[s]", "MambaForCausalLM"));
  ck_assert_int_eq(json_dump_file(config, path, JSON_INDENT(2)), 0);
  ck_assert_int_eq(clttt_model_load(&model, device, dir, NULL), CLTTT_ERROR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "MambaForCausalLM"));

  /* A hidden size the tensors do not have: the shape error names the tensor. */
  json_object_set_new(config, "architectures", json_pack("[s]", "Qwen3ForCausalLM"));
  json_object_set_new(config, "intermediate_size", json_integer(96));
  ck_assert_int_eq(json_dump_file(config, path, JSON_INDENT(2)), 0);
  ck_assert_int_eq(clttt_model_load(&model, device, dir, NULL), CLTTT_ERROR_SHAPE_MISMATCH);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "gate_proj"));
  json_decref(config);
  test_remove_directory(dir);
  clttt_device_close(device);
}
END_TEST

/* The trained stories260K model, decoded greedily token by token from BOS,
 * tells the story an independent numpy forward pass told. */
START_TEST(test_stories260k_greedy_story) {
  const char *stories = test_environment("CLTTT_STORIES_DIR", "../shared/models/stories260K");
  char path[1024];
  snprintf(path, sizeof path, "%s/tokenizer/stories260K-greedy.txt", test_environment("CLTTT_TEST_DATA", "tests"));
  size_t size = 0;
  char *text = test_read_file(path, &size);
  ck_assert_msg(text != NULL, "missing %s", path);
  int32_t expected[64];
  int count = 0;
  for (char *cursor = text; count < 64 && *cursor && *cursor != '\n';) {
    char *end = NULL;
    long id = strtol(cursor, &end, 10);
    if (end == cursor)
      break;
    expected[count++] = (int32_t)id;
    cursor = end;
  }
  free(text);
  ck_assert_int_eq(count, 61);

  clttt_device *device = test_open_device();
  clttt_model *model = NULL;
  int status = clttt_model_load(&model, device, stories, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "loading %s: %s", stories, clttt_last_error());
  int vocab = clttt_model_get_config(model)->vocab_size;
  clttt_session *session = NULL;
  ck_assert_int_eq(test_session_create(&session, model, 64), CLTTT_SUCCESS);
  float *logits = malloc((size_t)vocab * sizeof *logits);
  int32_t token = expected[0];
  for (int i = 1; i < count; i++) {
    ck_assert_int_eq(clttt_session_feed(session, &token, 1, logits, 1), CLTTT_SUCCESS);
    int best = 0;
    for (int v = 1; v < vocab; v++)
      if (logits[v] > logits[best])
        best = v;
    ck_assert_msg(best == expected[i], "token %d: got %d, expected %d", i, best, expected[i]);
    token = best;
  }
  free(logits);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_device_close(device);
}
END_TEST

/* An f16 KV cache against f32. K and V are rounded to half (unit
 * roundoff 2^-11 = 4.9e-4 relative) and that error runs through every later
 * layer; measured max |f16 - f32| / max(1, max |logit|): 1.0e-4..1.6e-4 on
 * the fixtures, 1.8e-3 on the trained stories260K (500 tokens), 3.3e-5 at
 * 4096 tokens on a synthetic model (bench/RESULTS.md). 5e-3 of the logit
 * range keeps a 2.7x margin over the worst; a bug that reads the cache at
 * the wrong stride or type moves logits by O(1). The difference must not
 * be zero (the cache really is half), and the flash path (token by token,
 * reading half) must agree with the GEMM path (one batch, widened to float). */
START_TEST(test_kv_f16_close_to_f32) {
  static const char *const names[] = {"qwen3-tied", "llama-bias", "ttt-proj-hidden", "ttt-llama-embed", NULL};
  for (int k = 0; k < 5; k++) {
    test_fixture_model fixture;
    clttt_device *device = NULL;
    clttt_model *model = NULL;
    int n = 200;
    if (names[k]) {
      test_fixture_open(&fixture, names[k]);
      model = fixture.model;
    } else {
      device = test_open_device();
      ck_assert_int_eq(clttt_model_load(&model, device, test_environment("CLTTT_STORIES_DIR", "tests/models/stories260K"),
                                        NULL),
                       CLTTT_SUCCESS);
      n = 500;
    }
    const int vocab = clttt_model_get_config(model)->vocab_size;
    int32_t *tokens = malloc((size_t)n * sizeof *tokens);
    for (int i = 0; i < n; i++)
      tokens[i] = (int32_t)((i * 37 + 11) % vocab);
    test_run_options half = test_run_default;
    half.kv_half = 1;
    float *f32 = test_run(model, tokens, n, test_run_default);
    float *f16 = test_run(model, tokens, n, half);
    half.piece = 1;
    float *f16_decode = test_run(model, tokens, n, half);
    double range = test_max_abs(f32, (size_t)n * vocab);
    double error = test_rows_difference(f16, f32, vocab, 0, n);
    const char *name = names[k] ? names[k] : "stories260K";
    ck_assert_msg(error <= 5e-3 * (range > 1.0 ? range : 1.0), "%s: |f16 - f32| = %g, logits up to %g", name, error,
                  range);
    ck_assert_msg(error > 0.0, "%s: an f16 cache gave exactly the f32 logits", name);
    /* Batching changes fp32 sums by ulps, and a K or V value that lands on
     * the other side of a half rounding boundary moves by one half ulp
     * (4.9e-4 relative): the batching tolerance of an f16 cache is that of
     * its rounding, 1e-3 of the logit range. */
    double batching = test_rows_difference(f16_decode, f16, vocab, 0, n);
    ck_assert_msg(batching <= 1e-3 * (range > 1.0 ? range : 1.0), "%s: token by token vs one batch: %g", name,
                  batching);
    free(tokens);
    free(f32);
    free(f16);
    free(f16_decode);
    if (names[k])
      test_fixture_close(&fixture);
    else {
      clttt_model_free(model);
      clttt_device_close(device);
    }
  }
}
END_TEST

/* Writes NaN over row `token` of the embedding in dir/model.safetensors. */
static void poison_embedding(const char *dir, int token, int d) {
  char path[1100];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  safetensors_file file;
  ck_assert_int_eq(safetensors_open(&file, path), CLTTT_SUCCESS);
  const safetensors_tensor *embedding = safetensors_find(&file, "model.embed_tokens.weight");
  ck_assert_ptr_nonnull(embedding);
  ck_assert_int_eq(embedding->dtype, SAFETENSORS_F32);
  long offset = (long)(embedding->data - (const unsigned char *)file.map) + (long)token * d * (long)sizeof(float);
  safetensors_close(&file);
  FILE *stream = fopen(path, "r+b");
  ck_assert_ptr_nonnull(stream);
  ck_assert_int_eq(fseek(stream, offset, SEEK_SET), 0);
  for (int c = 0; c < d; c++) {
    float nan = NAN;
    ck_assert_int_eq(fwrite(&nan, sizeof nan, 1, stream), 1);
  }
  fclose(stream);
}

/* A NaN entering at position p (a poisoned embedding row) must stay at p
 * and after: positions before it are computed as if p had never come, on
 * the GEMM attention path of a whole batch as on the flash path of token by
 * token; the feed names p, and with check_finite the layer. Before masked
 * keys were skipped, 0 * NaN in P V spread it to every earlier query. */
START_TEST(test_nonfinite_stays_at_its_position) {
  static const char *const names[] = {"llama3-scaled", "ttt-llama-embed"};
  enum { N = 96, P = 50, POISON = 7 };
  for (int f = 0; f < 2; f++) {
    char dir[1024];
    test_make_temporary_directory(dir, sizeof dir);
    const fixture_spec *spec = fixture_find(names[f]);
    ck_assert_int_eq(fixture_write(spec, dir), CLTTT_SUCCESS);
    const int d = spec->config.hidden_size, vocab = spec->config.vocab_size;
    poison_embedding(dir, POISON, d);
    clttt_device *device = test_open_device();
    clttt_model *model = NULL;
    /* Asked to, the loader refuses the poisoned tensor, naming it. */
    clttt_model_params checked = clttt_model_default_params();
    checked.check_weights = 1;
    ck_assert_int_eq(clttt_model_load(&model, device, dir, &checked), CLTTT_ERROR_NOT_FINITE);
    ck_assert_ptr_null(model);
    char element[64];
    snprintf(element, sizeof element, "element %d ", POISON * d);
    ck_assert_msg(strstr(clttt_last_error(), "model.embed_tokens.weight") != NULL &&
                      strstr(clttt_last_error(), element) != NULL,
                  "%s", clttt_last_error());
    ck_assert_msg(clttt_model_load(&model, device, dir, NULL) == CLTTT_SUCCESS, "%s", clttt_last_error());
    int32_t tokens[N];
    for (int i = 0; i < N; i++)
      tokens[i] = (int32_t)(POISON + 1 + (i * 13) % (vocab - POISON - 1));
    tokens[P] = POISON;
    float *prefix = test_run(model, tokens, P, test_run_default);
    float *logits = malloc((size_t)N * vocab * sizeof *logits);
    const int pieces[] = {N, 1};
    for (int k = 0; k < 2; k++) {
      for (size_t i = 0; i < (size_t)N * vocab; i++)
        logits[i] = 0.0f;
      clttt_session *session = NULL;
      ck_assert_int_eq(test_session_create(&session, model, N), CLTTT_SUCCESS);
      int status = CLTTT_SUCCESS;
      for (int done = 0; done < N && status == CLTTT_SUCCESS; done += pieces[k]) {
        int count = N - done < pieces[k] ? N - done : pieces[k];
        status = clttt_session_feed(session, tokens + done, count, logits + (size_t)done * vocab, 0);
      }
      ck_assert_msg(status == CLTTT_ERROR_NOT_FINITE, "%s, pieces of %d: %s", names[f], pieces[k],
                    clttt_status_name(status));
      ck_assert_msg(strstr(clttt_last_error(), "position 50") != NULL, "%s", clttt_last_error());
      double error = test_rows_difference(logits, prefix, vocab, 0, P);
      ck_assert_msg(error <= STREAMING_TOLERANCE, "%s, pieces of %d: rows before the NaN moved by %g", names[f],
                    pieces[k], error);
      ck_assert(!isfinite(logits[(size_t)P * vocab]));
      clttt_session_free(session);
    }
    /* check_finite names the layer: the embedding is already NaN, so the
     * first layer's attention output is where it shows. */
    clttt_session_params params = clttt_session_default_params();
    params.context = N;
    params.check_finite = 1;
    clttt_session *session = NULL;
    ck_assert_int_eq(clttt_session_create(&session, model, &params), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_feed(session, tokens, N, logits, 0), CLTTT_ERROR_NOT_FINITE);
    ck_assert_msg(strstr(clttt_last_error(), "layer 0 (attention)") != NULL &&
                      strstr(clttt_last_error(), "position 50") != NULL,
                  "%s", clttt_last_error());
    clttt_session_free(session);
    free(logits);
    free(prefix);
    clttt_model_free(model);
    clttt_device_close(device);
    test_remove_directory(dir);
  }
}
END_TEST

/* Two threads feeding two sessions of one model at once (what a server's
 * slots do): each thread's logits must be exactly what the same feeds give
 * serially, since the same kernels run on the same data in the same order;
 * a race on kernel arguments or on the program cache would mix them up. */
typedef struct {
  clttt_model *model;
  const int32_t *tokens;
  int n, piece, rounds;
  const float *expected;
  int vocab;
  int mismatches;
  int status;
  char message[512];
} feeder;

static void *feed_in_thread(void *argument) {
  feeder *job = argument;
  float *logits = malloc((size_t)job->n * (size_t)job->vocab * sizeof *logits);
  if (!logits) {
    job->status = CLTTT_ERROR_OUT_OF_HOST_MEMORY;
    return NULL;
  }
  for (int round = 0; round < job->rounds && job->status == CLTTT_SUCCESS; round++) {
    clttt_session *session = NULL;
    job->status = test_session_create(&session, job->model, job->n);
    for (int done = 0; done < job->n && job->status == CLTTT_SUCCESS; done += job->piece) {
      int count = job->n - done < job->piece ? job->n - done : job->piece;
      job->status = clttt_session_feed(session, job->tokens + done, count, logits + (size_t)done * job->vocab, 0);
    }
    if (job->status != CLTTT_SUCCESS)
      snprintf(job->message, sizeof job->message, "%s", clttt_last_error());
    for (size_t i = 0; job->status == CLTTT_SUCCESS && i < (size_t)job->n * (size_t)job->vocab; i++)
      job->mismatches += logits[i] != job->expected[i];
    clttt_session_free(session);
  }
  free(logits);
  return NULL;
}

START_TEST(test_two_threads_two_sessions) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size;
  enum { N = 70 };
  int32_t a[N], b[N];
  for (int i = 0; i < N; i++) {
    a[i] = (int32_t)((i * 5 + 1) % vocab);
    b[i] = (int32_t)((i * 17 + 100) % vocab);
  }
  /* Different prompts, different piece sizes (decode-like and batched). */
  test_run_options pieces_a = test_run_default, pieces_b = test_run_default;
  pieces_a.piece = 1;
  pieces_b.piece = 23;
  float *expected_a = test_run(fixture.model, a, N, pieces_a);
  float *expected_b = test_run(fixture.model, b, N, pieces_b);
  feeder jobs[2] = {{fixture.model, a, N, 1, 10, expected_a, vocab, 0, CLTTT_SUCCESS, ""},
                    {fixture.model, b, N, 23, 10, expected_b, vocab, 0, CLTTT_SUCCESS, ""}};
  pthread_t threads[2];
  for (int t = 0; t < 2; t++)
    ck_assert_int_eq(pthread_create(&threads[t], NULL, feed_in_thread, &jobs[t]), 0);
  for (int t = 0; t < 2; t++)
    ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
  for (int t = 0; t < 2; t++) {
    ck_assert_msg(jobs[t].status == CLTTT_SUCCESS, "thread %d: %s: %s", t, clttt_status_name(jobs[t].status),
                  jobs[t].message);
    ck_assert_msg(jobs[t].mismatches == 0, "thread %d: %d logits differ from the serial run", t,
                  jobs[t].mismatches);
  }
  free(expected_a);
  free(expected_b);
  test_fixture_close(&fixture);
}
END_TEST

static Suite *model_suite(void) {
  Suite *suite = suite_create("model");
  TCase *golden = tcase_create("golden");
  tcase_add_test(golden, test_base_models_match_transformers);
  tcase_add_test(golden, test_matches_c_reference);
  tcase_add_test(golden, test_long_prefill_matches_reference);
  tcase_add_test(golden, test_stories260k_greedy_story);
  suite_add_tcase(suite, golden);
  TCase *streaming = tcase_create("streaming");
  tcase_add_test(streaming, test_pieces_and_decode_equal_one_shot);
  tcase_add_test(streaming, test_last_row_only_and_reset);
  tcase_add_test(streaming, test_sessions_are_independent);
  tcase_add_test(streaming, test_two_threads_two_sessions);
  tcase_add_test(streaming, test_kv_f16_close_to_f32);
  suite_add_tcase(suite, streaming);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_bad_input_is_an_error);
  tcase_add_test(errors, test_nonfinite_stays_at_its_position);
  tcase_add_test(errors, test_load_errors_name_the_problem);
  suite_add_tcase(suite, errors);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(model_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
