/* The sampler on fixed logits: greedy, each filter, the repetition penalty,
 * seeding and option checks. Statistical checks draw 20000 tokens with a
 * fixed seed and accept each frequency within 4 standard errors of the
 * renormalised probability (a false failure would be a 1-in-15000 event per
 * id, and with a fixed seed the outcome never changes anyway). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clttt.h"

#define DRAWS 20000
#define TOLERANCE_STANDARD_ERRORS 4.0

static clttt_sampler *make_sampler(float temperature, int top_k, float top_p, float min_p, uint64_t seed,
                             int vocab_size) {
  clttt_sampler_params options;
  options = clttt_sampler_default_params();
  options.temperature = temperature;
  options.top_k = top_k;
  options.top_p = top_p;
  options.min_p = min_p;
  options.seed = seed;
  clttt_sampler *s = NULL;
  ck_assert_msg(clttt_sampler_create(&s, &options, vocab_size) == CLTTT_SUCCESS, "%s", clttt_last_error());
  return s;
}

static int32_t sample_once(clttt_sampler *s, const float *logits, const int32_t *recent, int recent_count) {
  int32_t token = -1;
  ck_assert_msg(clttt_sampler_sample(s, logits, recent, recent_count, &token) == CLTTT_SUCCESS, "%s", clttt_last_error());
  return token;
}

/* Logits whose softmax is `probabilities` (zero -> -inf). */
static void logits_from(const double *probabilities, int count, float *logits) {
  for (int i = 0; i < count; i++)
    logits[i] = probabilities[i] > 0 ? (float)log(probabilities[i]) + 3.0f : -INFINITY;
}

/* Draws DRAWS tokens; ids with expected probability 0 must never appear,
 * the others within the tolerance of `expected` (which sums to 1). */
static void check_frequencies(clttt_sampler *s, const float *logits, const double *expected, int count, const char *what) {
  int histogram[64] = {0};
  ck_assert_int_le(count, 64);
  for (int draw = 0; draw < DRAWS; draw++) {
    int32_t token = sample_once(s, logits, NULL, 0);
    ck_assert_msg(token >= 0 && token < count, "%s: token %d out of range", what, token);
    ck_assert_msg(expected[token] > 0, "%s: token %d was filtered out but drawn", what, token);
    histogram[token]++;
  }
  for (int id = 0; id < count; id++) {
    if (expected[id] == 0)
      continue;
    double frequency = (double)histogram[id] / DRAWS;
    double standard_error = sqrt(expected[id] * (1 - expected[id]) / DRAWS);
    ck_assert_msg(fabs(frequency - expected[id]) <= TOLERANCE_STANDARD_ERRORS * standard_error,
                  "%s: token %d drawn with frequency %.4f, expected %.4f +- %.4f", what, id, frequency, expected[id],
                  TOLERANCE_STANDARD_ERRORS * standard_error);
  }
}

static void normalise(double *values, int count) {
  double total = 0;
  for (int i = 0; i < count; i++)
    total += values[i];
  for (int i = 0; i < count; i++)
    values[i] /= total;
}

START_TEST(test_greedy_argmax) {
  const float logits[] = {0.1f, 2.0f, -1.0f, 2.5f, 1.5f, -INFINITY};
  clttt_sampler *s = make_sampler(0.0f, 0, 1.0f, 0.0f, 1, 6);
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(sample_once(s, logits, NULL, 0), 3);
  /* Ties go to the lowest id. */
  const float tied[] = {-INFINITY, 1.0f, 4.0f, 4.0f, 4.0f, 0.0f};
  ck_assert_int_eq(sample_once(s, tied, NULL, 0), 2);
  /* Only negative logits, the maximum last. */
  const float negative[] = {-9.0f, -8.0f, -7.0f, -6.0f, -5.0f, -4.0f};
  ck_assert_int_eq(sample_once(s, negative, NULL, 0), 5);
  clttt_sampler_free(s);
}
END_TEST

START_TEST(test_top_k_one_is_greedy) {
  const float logits[] = {0.3f, -2.0f, 1.1f, 0.9f, 1.05f, -0.5f, 0.0f, 1.0f};
  const float temperatures[] = {0.1f, 0.7f, 1.0f, 3.0f, 100.0f};
  for (size_t t = 0; t < sizeof temperatures / sizeof temperatures[0]; t++) {
    clttt_sampler *s = make_sampler(temperatures[t], 1, 1.0f, 0.0f, 7 + t, 8);
    for (int draw = 0; draw < 500; draw++)
      ck_assert_int_eq(sample_once(s, logits, NULL, 0), 2);
    clttt_sampler_free(s);
  }
}
END_TEST

START_TEST(test_temperature_scales_distribution) {
  const double probabilities[] = {0.5, 0.3, 0.15, 0.05};
  float logits[4];
  logits_from(probabilities, 4, logits);
  double expected[4];
  /* softmax(logits / 2) is proportional to sqrt(p). */
  for (int i = 0; i < 4; i++)
    expected[i] = sqrt(probabilities[i]);
  normalise(expected, 4);
  clttt_sampler *s = make_sampler(2.0f, 0, 1.0f, 0.0f, 11, 4);
  check_frequencies(s, logits, expected, 4, "temperature 2");
  clttt_sampler_free(s);

  double plain[4];
  memcpy(plain, probabilities, sizeof plain);
  s = make_sampler(1.0f, 0, 1.0f, 0.0f, 12, 4);
  check_frequencies(s, logits, plain, 4, "temperature 1");
  clttt_sampler_free(s);
}
END_TEST

START_TEST(test_top_k) {
  /* Ids shuffled so that the most likely are not simply the first. */
  const double probabilities[] = {0.06, 0.25, 0.04, 0.4, 0.1, 0.15};
  float logits[6];
  logits_from(probabilities, 6, logits);
  double expected[] = {0, 0.25, 0, 0.4, 0, 0.15};
  normalise(expected, 6);
  clttt_sampler *s = make_sampler(1.0f, 3, 1.0f, 0.0f, 21, 6);
  check_frequencies(s, logits, expected, 6, "top_k 3");
  clttt_sampler_free(s);
}
END_TEST

START_TEST(test_top_p) {
  /* Sorted: 0.4, 0.25, 0.15, 0.1, 0.06, 0.04. With top_p 0.75 the first
   * two reach 0.65 < 0.75 and the first three 0.80: exactly those three
   * stay, renormalised to 0.5, 0.3125, 0.1875. */
  const double probabilities[] = {0.06, 0.25, 0.04, 0.4, 0.1, 0.15};
  float logits[6];
  logits_from(probabilities, 6, logits);
  double expected[] = {0, 0.3125, 0, 0.5, 0, 0.1875};
  clttt_sampler *s = make_sampler(1.0f, 0, 0.75f, 0.0f, 31, 6);
  check_frequencies(s, logits, expected, 6, "top_p 0.75");
  clttt_sampler_free(s);

  /* A top_p below the largest probability keeps only the argmax. */
  double only[] = {0, 0, 0, 1, 0, 0};
  s = make_sampler(1.0f, 0, 0.3f, 0.0f, 32, 6);
  check_frequencies(s, logits, only, 6, "top_p 0.3");
  clttt_sampler_free(s);

  /* top_p after top_k: top_k 2 leaves 0.4 and 0.25 (renormalised 0.615,
   * 0.385); top_p 0.5 then keeps only the first. */
  s = make_sampler(1.0f, 2, 0.5f, 0.0f, 33, 6);
  check_frequencies(s, logits, only, 6, "top_k 2 + top_p 0.5");
  clttt_sampler_free(s);
}
END_TEST

START_TEST(test_min_p) {
  /* min_p 0.15 of the largest 0.5 is 0.075: 0.5, 0.2, 0.1 and 0.09 stay,
   * 0.06 and 0.05 go. */
  const double probabilities[] = {0.05, 0.2, 0.5, 0.09, 0.06, 0.1};
  float logits[6];
  logits_from(probabilities, 6, logits);
  double expected[] = {0, 0.2, 0.5, 0.09, 0, 0.1};
  normalise(expected, 6);
  clttt_sampler *s = make_sampler(1.0f, 0, 1.0f, 0.15f, 41, 6);
  check_frequencies(s, logits, expected, 6, "min_p 0.15");
  clttt_sampler_free(s);

  /* Relative to the top probability after temperature: at temperature 2
   * probabilities go as sqrt(p), so relative to the top they are
   * sqrt(p / 0.5): 0.316 for 0.05 (dropped by min_p 0.33), 0.346 for 0.06
   * (kept), more for the rest. */
  double warmed[6];
  for (int i = 0; i < 6; i++)
    warmed[i] = sqrt(probabilities[i]);
  warmed[0] = 0;
  normalise(warmed, 6);
  s = make_sampler(2.0f, 0, 1.0f, 0.33f, 42, 6);
  check_frequencies(s, logits, warmed, 6, "temperature 2 + min_p 0.33");
  clttt_sampler_free(s);
}
END_TEST

static clttt_sampler *make_penalty_sampler(float penalty, int window) {
  clttt_sampler_params options;
  options = clttt_sampler_default_params();
  options.repetition_penalty = penalty;
  options.repetition_window = window;
  clttt_sampler *s = NULL;
  ck_assert_int_eq(clttt_sampler_create(&s, &options, 8), CLTTT_SUCCESS);
  return s;
}

START_TEST(test_repetition_penalty) {
  float logits[] = {2.0f, 1.8f, -0.5f, -0.4f, 0.0f, -3.0f, -3.0f, -3.0f};
  const float original[] = {2.0f, 1.8f, -0.5f, -0.4f, 0.0f, -3.0f, -3.0f, -3.0f};
  clttt_sampler *s = make_penalty_sampler(1.5f, 4);
  ck_assert_int_eq(sample_once(s, logits, NULL, 0), 0);
  /* Positive logit divided: 2.0 / 1.5 = 1.33 < 1.8. */
  const int32_t saw_zero[] = {0};
  ck_assert_int_eq(sample_once(s, logits, saw_zero, 1), 1);
  /* The caller's logits are left alone. */
  ck_assert_mem_eq(logits, original, sizeof logits);
  /* Repeats are penalised once: 2.0 / 1.5 still beats 1.8 / 1.5. */
  const int32_t both[] = {0, 1, 0, 0};
  ck_assert_int_eq(sample_once(s, logits, both, 4), 0);
  /* Outside the window of 4 the penalty no longer applies. */
  const int32_t long_ago[] = {0, 5, 6, 7, 5};
  ck_assert_int_eq(sample_once(s, logits, long_ago, 5), 0);
  clttt_sampler_free(s);

  /* Negative logits are multiplied: -0.4 * 2 = -0.8 < -0.5. */
  float negative[] = {-1.0f, -3.0f, -0.5f, -0.4f, -2.0f, -3.0f, -3.0f, -3.0f};
  s = make_penalty_sampler(2.0f, 0);
  ck_assert_int_eq(sample_once(s, negative, NULL, 0), 3);
  const int32_t saw_three[] = {3, 3, 3};
  ck_assert_int_eq(sample_once(s, negative, saw_three, 3), 2);
  /* Window 0 looks at everything given. */
  const int32_t early[] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  ck_assert_int_eq(sample_once(s, negative, early, 10), 2);
  /* Ids outside the vocabulary are an error, not a silent skip. */
  const int32_t bad[] = {1, 8};
  int32_t token = -1;
  ck_assert_int_eq(clttt_sampler_sample(s, negative, bad, 2, &token), CLTTT_ERROR_INVALID_ARGUMENT);
  clttt_sampler_free(s);
}
END_TEST

static void draw_sequence(uint64_t seed, int32_t *tokens, int count) {
  float logits[16];
  for (int i = 0; i < 16; i++)
    logits[i] = 0.1f * (float)i;
  clttt_sampler *s = make_sampler(1.0f, 0, 1.0f, 0.0f, seed, 16);
  for (int i = 0; i < count; i++)
    tokens[i] = sample_once(s, logits, NULL, 0);
  clttt_sampler_free(s);
}

START_TEST(test_seeds) {
  int32_t first[200], second[200], other[200];
  draw_sequence(1234, first, 200);
  draw_sequence(1234, second, 200);
  draw_sequence(1235, other, 200);
  ck_assert_mem_eq(first, second, sizeof first);
  int differences = 0;
  for (int i = 0; i < 200; i++)
    differences += first[i] != other[i];
  ck_assert_int_gt(differences, 100); /* 16 similar choices: ~94% of draws differ */

  /* Reseeding restarts the sequence. */
  float logits[16];
  for (int i = 0; i < 16; i++)
    logits[i] = 0.1f * (float)i;
  clttt_sampler *s = make_sampler(1.0f, 0, 1.0f, 0.0f, 99, 16);
  for (int i = 0; i < 37; i++)
    sample_once(s, logits, NULL, 0);
  clttt_sampler_reseed(s, 1234);
  ck_assert_uint_eq(clttt_sampler_get_params(s)->seed, 1234);
  for (int i = 0; i < 200; i++)
    ck_assert_int_eq(sample_once(s, logits, NULL, 0), first[i]);
  clttt_sampler_free(s);

  /* The generator is integer-only and fully specified, so these draws are
   * the same on every machine; a change here changes every seeded run. */
  const int32_t pinned[12] = {1, 14, 13, 14, 3, 15, 10, 5, 11, 12, 10, 6};
  ck_assert_mem_eq(first, pinned, sizeof pinned);
}
END_TEST

static void expect_rejected(clttt_sampler_params options, int vocab_size, const char *name) {
  clttt_sampler *s = (clttt_sampler *)&options; /* any non-NULL value: must be reset to NULL */
  ck_assert_int_eq(clttt_sampler_create(&s, &options, vocab_size), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_null(s);
  ck_assert_msg(strstr(clttt_last_error(), name) != NULL, "message does not name %s: %s", name, clttt_last_error());
}

START_TEST(test_invalid_options) {
  clttt_sampler_params base;
  base = clttt_sampler_default_params();
  clttt_sampler_params options;
  options = base, options.temperature = -0.5f, expect_rejected(options, 8, "temperature");
  options = base, options.temperature = NAN, expect_rejected(options, 8, "temperature");
  options = base, options.temperature = INFINITY, expect_rejected(options, 8, "temperature");
  options = base, options.top_k = -1, expect_rejected(options, 8, "top_k");
  options = base, options.top_p = 0.0f, expect_rejected(options, 8, "top_p");
  options = base, options.top_p = 1.01f, expect_rejected(options, 8, "top_p");
  options = base, options.top_p = -0.2f, expect_rejected(options, 8, "top_p");
  options = base, options.top_p = NAN, expect_rejected(options, 8, "top_p");
  options = base, options.min_p = -0.1f, expect_rejected(options, 8, "min_p");
  options = base, options.min_p = 1.5f, expect_rejected(options, 8, "min_p");
  options = base, options.repetition_penalty = 0.0f, expect_rejected(options, 8, "repetition_penalty");
  options = base, options.repetition_penalty = -1.2f, expect_rejected(options, 8, "repetition_penalty");
  options = base, options.repetition_window = -3, expect_rejected(options, 8, "repetition_window");
  expect_rejected(base, 0, "vocab_size");

  /* The edges of the ranges are accepted. */
  options = base, options.top_p = 1.0f, options.min_p = 1.0f, options.temperature = 1e-6f;
  clttt_sampler *s = NULL;
  ck_assert_int_eq(clttt_sampler_create(&s, &options, 4), CLTTT_SUCCESS);
  /* A temperature this small behaves as greedy without overflowing. */
  const float logits[] = {0.0f, 1.0f, 0.999f, -INFINITY};
  ck_assert_int_eq(sample_once(s, logits, NULL, 0), 1);
  clttt_sampler_free(s);
  ck_assert_int_eq(clttt_sampler_create(&s, NULL, 4), CLTTT_SUCCESS); /* NULL options: the defaults */
  ck_assert_int_eq(sample_once(s, logits, NULL, 0), 1);

  /* Bad logits. */
  int32_t token;
  const float with_nan[] = {0.0f, NAN, 1.0f, 2.0f};
  ck_assert_int_eq(clttt_sampler_sample(s, with_nan, NULL, 0, &token), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "NaN"));
  const float masked[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
  ck_assert_int_eq(clttt_sampler_sample(s, masked, NULL, 0, &token), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_int_eq(clttt_sampler_sample(s, NULL, NULL, 0, &token), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_int_eq(clttt_sampler_sample(s, logits, NULL, 2, &token), CLTTT_ERROR_INVALID_ARGUMENT);
  clttt_sampler_free(s);
}
END_TEST

static Suite *sampler_suite(void) {
  Suite *suite = suite_create("sampler");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_greedy_argmax);
  tcase_add_test(core, test_top_k_one_is_greedy);
  tcase_add_test(core, test_temperature_scales_distribution);
  tcase_add_test(core, test_top_k);
  tcase_add_test(core, test_top_p);
  tcase_add_test(core, test_min_p);
  tcase_add_test(core, test_repetition_penalty);
  tcase_add_test(core, test_seeds);
  tcase_add_test(core, test_invalid_options);
  suite_add_tcase(suite, core);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(sampler_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
