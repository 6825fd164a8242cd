#include "test_model.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"
#include "reference.h"
#include "test_util.h"

const test_run_options test_run_default = {0, -1, 0, 0.0f, 0.0f, 0};

void test_fixture_open(test_fixture_model *fixture, const char *name) {
  const fixture_spec *spec = fixture_find(name);
  ck_assert_msg(spec != NULL, "no fixture named %s", name);
  test_make_temporary_directory(fixture->dir, sizeof fixture->dir);
  ck_assert_int_eq(fixture_write(spec, fixture->dir), CLTTT_SUCCESS);
  fixture->device = test_open_device();
  int status = clttt_model_load(&fixture->model, fixture->device, fixture->dir, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "loading fixture %s: %s: %s", name, clttt_status_name(status),
                clttt_last_error());
}

void test_fixture_close(test_fixture_model *fixture) {
  clttt_model_free(fixture->model);
  clttt_device_close(fixture->device);
  test_remove_directory(fixture->dir);
  fixture->model = NULL;
  fixture->device = NULL;
}

int test_session_create(clttt_session **session, clttt_model *model, int context) {
  clttt_session_params params = clttt_session_default_params();
  params.context = context;
  params.kv_type = CLTTT_KV_F32;
  return clttt_session_create(session, model, &params);
}

float *test_run(clttt_model *model, const int32_t *tokens, int n, test_run_options options) {
  const int vocab = clttt_model_get_config(model)->vocab_size;
  float *logits = malloc((size_t)n * (size_t)vocab * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  clttt_session *session = NULL;
  clttt_session_params params = clttt_session_default_params();
  params.context = n;
  params.ttt = options.ttt != 0;
  params.chunk = options.chunk;
  params.eta = options.eta;
  params.ttt_clip_tau = options.clip_tau;
  params.kv_type = options.kv_half ? CLTTT_KV_F16 : CLTTT_KV_F32;
  int status = clttt_session_create(&session, model, &params);
  ck_assert_msg(status == CLTTT_SUCCESS, "session: %s", clttt_last_error());
  int piece = options.piece > 0 ? options.piece : n;
  for (int done = 0; done < n; done += piece) {
    int count = n - done < piece ? n - done : piece;
    status = clttt_session_feed(session, tokens + done, count, logits + (size_t)done * (size_t)vocab, 0);
    ck_assert_msg(status == CLTTT_SUCCESS, "feed at %d: %s: %s", done, clttt_status_name(status),
                  clttt_last_error());
  }
  ck_assert_int_eq(clttt_session_position(session), n);
  clttt_session_free(session);
  return logits;
}

float *test_reference_logits(const char *dir, const int32_t *tokens, int n, int ttt, int chunk, float eta) {
  reference_model *reference = NULL;
  int status = reference_load(&reference, dir);
  ck_assert_msg(status == CLTTT_SUCCESS, "reference for %s: %s", dir, clttt_last_error());
  const int vocab = reference_config(reference)->vocab_size;
  float *logits = malloc((size_t)n * (size_t)vocab * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  status = reference_forward(reference, tokens, n, ttt, chunk, eta, logits);
  ck_assert_msg(status == CLTTT_SUCCESS, "reference forward on %s: %s", dir, clttt_last_error());
  reference_free(reference);
  return logits;
}

void test_feed_interleaved(clttt_session *first, clttt_session *second, const int32_t *a, const int32_t *b, int n,
                           int piece, int vocab, float *got_a, float *got_b) {
  for (int i = 0; i < n; i += piece) {
    int count = n - i < piece ? n - i : piece;
    ck_assert_int_eq(clttt_session_feed(first, a + i, count, got_a + (size_t)i * (size_t)vocab, 0), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_feed(second, b + i, count, got_b + (size_t)i * (size_t)vocab, 0), CLTTT_SUCCESS);
  }
}

void test_golden_load(golden *g, const char *name) {
  char path[1024];
  snprintf(path, sizeof path, "%s/golden/%s.bin", test_environment("CLTTT_TEST_DATA", "tests"), name);
  ck_assert_msg(golden_read(g, path) == 0, "cannot read golden %s", path);
}

double test_rows_difference(const float *a, const float *b, int vocab, int first_row, int last_row) {
  if (last_row <= first_row)
    return 0.0;
  return test_max_abs_difference(a + (size_t)first_row * (size_t)vocab, b + (size_t)first_row * (size_t)vocab,
                                 (size_t)(last_row - first_row) * (size_t)vocab);
}
