/* The C reference (tests/reference.c) against independent numbers: the
 * committed goldens (HuggingFace transformers and an independent PyTorch TTT,
 * float64) and the real trained stories260K checkpoint (greedy ids from an
 * independent numpy forward pass). Every other suite trusts this reference,
 * so it is checked here against nothing of the library's own math. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fixture.h"
#include "golden.h"
#include "reference.h"
#include "test_util.h"

/* Tolerance on logits against the goldens, absolute.
 *
 * The goldens are computed in float64 by HuggingFace / PyTorch from the very
 * same float32 (or F16 / BF16, widened exactly) weights, then stored as
 * float32. The reference uses those same weights and accumulates every sum in
 * double, so the two computations differ only by
 *   - the float32 rounding of the stored golden and of our output: half an ulp
 *     each, about 6e-8 relative, i.e. < 1e-6 absolute for logits of a few
 *     units;
 *   - the few places where transformers itself computes in float32 even for a
 *     float64 model (RoPE angles and inverse frequencies, the RMSNorm body):
 *     relative errors ~1e-7 that pass through a handful of layers with O(1)
 *     gain, and through the TTT updates (eta times a sum over C rows), so
 *     ~1e-6 relative at worst on these tiny d = 64 models.
 * So agreement is expected around 1e-6 to 1e-5. 1e-4 leaves an order of
 * magnitude of margin for that, while any real semantic mistake (a wrong RoPE
 * convention, a transposed P, a conv crossing a chunk boundary, a missing
 * bias, one update too many or too few) moves logits by 1e-2 or more. Logits
 * larger than 10 in magnitude get the same relative margin (1e-5 relative). */
#define GOLDEN_ABSOLUTE_TOLERANCE 1e-4

static const char *golden_directory(char *buffer, size_t capacity) {
  const char *data = test_environment("CLTTT_TEST_DATA", NULL);
  ck_assert_msg(data != NULL, "CLTTT_TEST_DATA is not set (make check sets it)");
  snprintf(buffer, capacity, "%s/golden", data);
  return buffer;
}

/* Writes fixture `name` into a fresh temporary directory (returned in dir). */
static void write_fixture(const char *name, char *dir, size_t capacity) {
  const fixture_spec *spec = fixture_find(name);
  ck_assert_msg(spec != NULL, "no fixture named %s", name);
  test_make_temporary_directory(dir, capacity);
  int status = fixture_write(spec, dir);
  ck_assert_msg(status == CLTTT_SUCCESS, "fixture_write %s: %s: %s", name,
                clttt_status_name(status), clttt_last_error());
}

static reference_model *load_reference(const char *dir) {
  reference_model *model = NULL;
  int status = reference_load(&model, dir);
  ck_assert_msg(status == CLTTT_SUCCESS, "reference_load %s: %s: %s", dir,
                clttt_status_name(status), clttt_last_error());
  return model;
}

static float *forward(const reference_model *model, const int32_t *tokens, int n, int ttt,
                      int chunk, float eta) {
  size_t count = (size_t)n * (size_t)reference_config(model)->vocab_size;
  float *logits = malloc(count * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  int status = reference_forward(model, tokens, n, ttt, chunk, eta, logits);
  ck_assert_msg(status == CLTTT_SUCCESS, "reference_forward: %s: %s", clttt_status_name(status),
                clttt_last_error());
  return logits;
}

/* Every committed golden, each against its fixture written afresh. */
START_TEST(test_goldens) {
  char golden_dir[4096];
  golden_directory(golden_dir, sizeof golden_dir);
  int count = 0;
  char **names = golden_list(golden_dir, &count);
  ck_assert_msg(names != NULL && count > 0, "no goldens listed in %s/index.txt", golden_dir);

  int failures = 0;
  char report[8192] = "";
  for (int i = 0; i < count; i++) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.bin", golden_dir, names[i]);
    golden g;
    ck_assert_msg(golden_read(&g, path) == 0, "cannot read golden %s", path);

    char dir[4096];
    write_fixture(g.fixture, dir, sizeof dir);
    reference_model *model = load_reference(dir);
    ck_assert_int_eq(reference_config(model)->vocab_size, g.vocab);
    float *logits = forward(model, g.tokens, g.n, g.ttt, 0, 0.0f);

    size_t total = (size_t)g.n * (size_t)g.vocab;
    double error = test_max_abs_difference(logits, g.logits, total);
    double magnitude = test_max_abs(g.logits, total);
    double tolerance = GOLDEN_ABSOLUTE_TOLERANCE * (magnitude > 10.0 ? magnitude / 10.0 : 1.0);
    int ok = error <= tolerance;
    printf("check_reference: golden %-28s fixture %-18s n %3d ttt %d  max |logit| %8.4f  "
           "max error %.3e (tolerance %.1e)%s\n",
           names[i], g.fixture, g.n, g.ttt, magnitude, error, tolerance, ok ? "" : "  FAIL");
    if (!ok) {
      failures++;
      size_t used = strlen(report);
      snprintf(report + used, sizeof report - used, " %s (%.3e > %.1e)", names[i], error,
               tolerance);
    }
    free(logits);
    reference_free(model);
    test_remove_directory(dir);
    golden_free(&g);
  }
  golden_free_names(names, count);
  ck_assert_msg(failures == 0, "%d golden(s) disagree with the reference:%s", failures, report);
}
END_TEST

static int32_t *test_tokens(int n, int vocab) {
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  ck_assert_ptr_nonnull(tokens);
  unsigned state = 12345u;
  for (int i = 0; i < n; i++) {
    state = state * 1103515245u + 12345u;
    tokens[i] = (int32_t)((state >> 16) % (unsigned)vocab);
  }
  return tokens;
}

/* A TTT checkpoint with TTT off is the base model: the same fixture written
 * with ttt_mode false, and a chunk longer than the sequence (never a full
 * chunk, so never an update), all give the same numbers. */
START_TEST(test_ttt_off_is_base) {
  const char *name = "ttt-proj-hidden";
  const fixture_spec *spec = fixture_find(name);
  ck_assert_msg(spec != NULL, "no fixture named %s", name);
  ck_assert_msg(spec->config.ttt_mode, "%s is expected to be a TTT fixture", name);

  char ttt_dir[4096], base_dir[4096];
  write_fixture(name, ttt_dir, sizeof ttt_dir);
  fixture_spec base_spec = *spec;
  base_spec.config.ttt_mode = 0;
  test_make_temporary_directory(base_dir, sizeof base_dir);
  ck_assert_int_eq(fixture_write(&base_spec, base_dir), CLTTT_SUCCESS);

  reference_model *ttt_model = load_reference(ttt_dir);
  reference_model *base_model = load_reference(base_dir);
  int vocab = reference_config(ttt_model)->vocab_size;
  int n = 3 * reference_config(ttt_model)->ttt_chunk + 5;
  int32_t *tokens = test_tokens(n, vocab);
  size_t total = (size_t)n * (size_t)vocab;

  float *off = forward(ttt_model, tokens, n, 0, 0, 0.0f);
  float *base = forward(base_model, tokens, n, 1, 0, 0.0f);
  float *long_chunk = forward(ttt_model, tokens, n, 1, n + 1, 0.0f);
  ck_assert_msg(test_max_abs_difference(off, base, total) == 0.0,
                "TTT off differs from the ttt_mode=false model by %g",
                test_max_abs_difference(off, base, total));
  ck_assert_msg(test_max_abs_difference(off, long_chunk, total) == 0.0,
                "a chunk longer than the sequence differs from TTT off by %g",
                test_max_abs_difference(off, long_chunk, total));

  free(off);
  free(base);
  free(long_chunk);
  free(tokens);
  reference_free(ttt_model);
  reference_free(base_model);
  test_remove_directory(ttt_dir);
  test_remove_directory(base_dir);
}
END_TEST

/* Sequential TTT: the first chunk is computed with W_down itself, so it
 * equals TTT off exactly; every later chunk sees updated weights and
 * differs. */
START_TEST(test_ttt_differs_after_first_chunk) {
  char dir[4096];
  write_fixture("ttt-proj-hidden", dir, sizeof dir);
  reference_model *model = load_reference(dir);
  const clttt_config *config = reference_config(model);
  int vocab = config->vocab_size, chunk = config->ttt_chunk;
  ck_assert_int_gt(chunk, 0);
  int n = 3 * chunk + 2;
  int32_t *tokens = test_tokens(n, vocab);
  float *off = forward(model, tokens, n, 0, 0, 0.0f);
  float *on = forward(model, tokens, n, 1, 0, 0.0f);

  double first = test_max_abs_difference(on, off, (size_t)chunk * vocab);
  ck_assert_msg(first == 0.0, "the first chunk differs from TTT off by %g", first);
  for (int k = 1; k * chunk < n; k++) {
    int rows = n - k * chunk < chunk ? n - k * chunk : chunk;
    size_t offset = (size_t)k * chunk * vocab;
    double later = test_max_abs_difference(on + offset, off + offset, (size_t)rows * vocab);
    printf("check_reference: ttt-proj-hidden chunk %d: max |TTT on - off| = %.3e\n", k, later);
    ck_assert_msg(later > 1e-3, "chunk %d with TTT equals TTT off (difference %g)", k, later);
  }
  free(off);
  free(on);
  free(tokens);
  reference_free(model);
  test_remove_directory(dir);
}
END_TEST

/* Errors come back as statuses with messages, never aborts. */
START_TEST(test_errors) {
  reference_model *model = NULL;
  int status = reference_load(&model, "/nonexistent/clttt-reference");
  ck_assert_int_ne(status, CLTTT_SUCCESS);
  ck_assert_ptr_null(model);
  ck_assert_msg(strlen(clttt_last_error()) > 0, "no message for a missing directory");

  char dir[4096];
  write_fixture("qwen3-tied", dir, sizeof dir);
  model = load_reference(dir);
  int vocab = reference_config(model)->vocab_size;
  int32_t tokens[2] = {0, vocab};
  float *logits = malloc(2 * (size_t)vocab * sizeof *logits);
  ck_assert_int_eq(reference_forward(model, tokens, 2, 1, 0, 0.0f, logits),
                   CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(clttt_last_error(), "token") != NULL, "message: %s", clttt_last_error());
  ck_assert_int_eq(reference_forward(model, tokens, -1, 1, 0, 0.0f, logits),
                   CLTTT_ERROR_INVALID_ARGUMENT);
  free(logits);
  reference_free(model);
  test_remove_directory(dir);
}
END_TEST

/* Reads line 1 of the greedy file: whitespace-separated ids. */
static int read_expected_ids(const char *path, int32_t *ids, int capacity) {
  size_t size = 0;
  char *text = test_read_file(path, &size);
  ck_assert_msg(text != NULL, "cannot read %s", path);
  char *end_of_line = strchr(text, '\n');
  if (end_of_line)
    *end_of_line = '\0';
  int count = 0;
  char *cursor = text;
  for (;;) {
    char *next = NULL;
    long value = strtol(cursor, &next, 10);
    if (next == cursor)
      break;
    ck_assert_msg(count < capacity, "%s: more than %d ids on line 1", path, capacity);
    ids[count++] = (int32_t)value;
    cursor = next;
  }
  free(text);
  return count;
}

/* The real trained stories260K (a tiny LLaMA): 60 greedy tokens from BOS,
 * each by a full forward over the growing sequence, equal the ids of an
 * independent numpy forward pass. */
START_TEST(test_stories260k_greedy) {
  const char *stories = test_environment("CLTTT_STORIES_DIR", NULL);
  ck_assert_msg(stories != NULL, "CLTTT_STORIES_DIR is not set (make check sets it)");
  struct stat info;
  ck_assert_msg(stat(stories, &info) == 0 && S_ISDIR(info.st_mode),
                "stories260K directory %s is missing", stories);
  const char *data = test_environment("CLTTT_TEST_DATA", NULL);
  ck_assert_msg(data != NULL, "CLTTT_TEST_DATA is not set (make check sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer/stories260K-greedy.txt", data);

  enum { STEPS = 60 };
  int32_t expected[STEPS + 1];
  int count = read_expected_ids(path, expected, STEPS + 1);
  ck_assert_int_eq(count, STEPS + 1);
  ck_assert_int_eq(expected[0], 1);

  reference_model *model = load_reference(stories);
  int vocab = reference_config(model)->vocab_size;
  int32_t sequence[STEPS + 1] = {1};
  int n = 1;
  float *logits = malloc((size_t)(STEPS + 1) * vocab * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  for (int step = 0; step < STEPS; step++) {
    int status = reference_forward(model, sequence, n, 1, 0, 0.0f, logits);
    ck_assert_msg(status == CLTTT_SUCCESS, "reference_forward: %s", clttt_last_error());
    const float *last = logits + (size_t)(n - 1) * vocab;
    int best = 0;
    for (int v = 1; v < vocab; v++)
      if (last[v] > last[best])
        best = v;
    sequence[n++] = best;
  }
  for (int i = 0; i <= STEPS; i++)
    ck_assert_msg(sequence[i] == expected[i], "greedy id %d: reference %d, numpy %d", i,
                  (int)sequence[i], (int)expected[i]);
  printf("check_reference: stories260K greedy 60 tokens match\n");
  free(logits);
  reference_free(model);
}
END_TEST

static Suite *reference_suite(void) {
  Suite *suite = suite_create("reference");
  TCase *core = tcase_create("core");
  tcase_set_timeout(core, 600);
  tcase_add_test(core, test_goldens);
  tcase_add_test(core, test_ttt_off_is_base);
  tcase_add_test(core, test_ttt_differs_after_first_chunk);
  tcase_add_test(core, test_errors);
  tcase_add_test(core, test_stories260k_greedy);
  suite_add_tcase(suite, core);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(reference_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
