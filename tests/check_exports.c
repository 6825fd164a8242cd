/* The library's boundary: the installed libclttt exports clttt_* symbols and
 * nothing else, and the version it reports is the header's. This suite
 * links the shared library itself, as a user's program does. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "clttt.h"

START_TEST(test_only_clttt_symbols_are_exported) {
  const char *build = getenv("CLTTT_BUILD_DIR");
  ck_assert_msg(build && *build, "CLTTT_BUILD_DIR is not set (run through make check)");
  char command[4200];
  snprintf(command, sizeof command, "nm -D --defined-only '%s/.libs/libclttt.so' 2>&1", build);
  FILE *pipe = popen(command, "r");
  ck_assert_msg(pipe != NULL, "cannot run: %s", command);
  char line[1024], foreign[4096] = "";
  int exported = 0, others = 0;
  while (fgets(line, sizeof line, pipe)) {
    char address[64], type[8], name[512];
    if (sscanf(line, "%63s %7s %511s", address, type, name) != 3)
      continue;
    /* Data and text symbols are the API; the linker's own markers are not. */
    if (strcmp(type, "A") == 0)
      continue;
    if (strncmp(name, "clttt_", 6) == 0) {
      exported++;
      continue;
    }
    others++;
    if (strlen(foreign) + strlen(name) + 3 < sizeof foreign) {
      strcat(foreign, name);
      strcat(foreign, " ");
    }
  }
  int status = pclose(pipe);
  ck_assert_msg(status == 0, "nm failed (%d) on %s/.libs/libclttt.so", status, build);
  ck_assert_msg(others == 0, "%d exported symbols without the clttt_ prefix: %s", others, foreign);
  /* The public API is a few dozen functions; far fewer means the library
   * exported nothing at all and the check above proved nothing. */
  ck_assert_msg(exported >= 40, "only %d clttt_ symbols exported", exported);
}
END_TEST

START_TEST(test_version) {
  ck_assert_str_eq(clttt_version(), CLTTT_VERSION_STRING);
  ck_assert_str_eq(CLTTT_VERSION_STRING, PACKAGE_VERSION);
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", CLTTT_VERSION_MAJOR, CLTTT_VERSION_MINOR, CLTTT_VERSION_PATCH);
  ck_assert_str_eq(expected, CLTTT_VERSION_STRING);
}
END_TEST

/* Warnings reach the callback, and the default comes back with NULL. */
static int warnings;
static void count_warnings(clttt_log_level level, const char *message, void *user_data) {
  (void)message;
  if (level == CLTTT_LOG_WARNING)
    (*(int *)user_data)++;
}

START_TEST(test_log_callback) {
  char directory[] = "/tmp/clttt-exports-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(directory));
  char path[256];
  snprintf(path, sizeof path, "%s/config.json", directory);
  FILE *file = fopen(path, "w");
  ck_assert_ptr_nonnull(file);
  /* A TTT layer past the last layer: ignored with one warning. */
  fputs("{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128,"
        " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100,"
        " \"ttt_mode\": true, \"ttt_layers\": [0, 6]}",
        file);
  fclose(file);
  warnings = 0;
  clttt_set_log_callback(count_warnings, &warnings);
  clttt_config config;
  ck_assert_int_eq(clttt_config_load(&config, directory), CLTTT_SUCCESS);
  ck_assert_int_eq(warnings, 1);
  ck_assert_int_eq(config.ttt_layer_count, 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 0), 1);
  clttt_config_free(&config);
  clttt_set_log_callback(NULL, NULL);
  ck_assert_int_eq(clttt_config_load(&config, directory), CLTTT_SUCCESS);
  ck_assert_int_eq(warnings, 1);
  clttt_config_free(&config);
  remove(path);
  remove(directory);
}
END_TEST

static Suite *exports_suite(void) {
  Suite *suite = suite_create("exports");
  TCase *boundary = tcase_create("boundary");
  tcase_add_test(boundary, test_only_clttt_symbols_are_exported);
  tcase_add_test(boundary, test_version);
  tcase_add_test(boundary, test_log_callback);
  suite_add_tcase(suite, boundary);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(exports_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
