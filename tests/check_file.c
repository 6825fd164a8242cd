/* What every loader does when a path names something other than a normal,
 * reasonably sized file: a FIFO must not block the loader, a character
 * device such as /dev/zero must not be read until memory runs out, and a
 * JSON file over its size cap is refused before it is read. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "file.h"
#include "safetensors.h"
#include "test_util.h"
#include "clttt.h"
#include "tuning.h"

/* Long enough for a loaded CI machine, short enough that a loader which
 * blocks on a FIFO fails here instead of stalling the suite. */
#define BLOCKING_TIMEOUT_SECONDS 20

static char directory[4096];

static void setup(void) { test_make_temporary_directory(directory, sizeof directory); }
static void teardown(void) { test_remove_directory(directory); }

static void path_of(char *path, size_t capacity, const char *name) {
  int written = snprintf(path, capacity, "%s/%s", directory, name);
  ck_assert(written > 0 && (size_t)written < capacity);
}

static void make_fifo(const char *name) {
  char path[4096];
  path_of(path, sizeof path, name);
  ck_assert_msg(mkfifo(path, 0600) == 0, "mkfifo %s failed", path);
}

static void link_to(const char *name, const char *target) {
  char path[4096];
  path_of(path, sizeof path, name);
  ck_assert_msg(symlink(target, path) == 0, "symlink %s -> %s failed", path, target);
}

/* A file of `size` bytes that occupies no disk: only its length matters. */
static void make_sparse(const char *name, off_t size) {
  char path[4096];
  path_of(path, sizeof path, name);
  test_write_text(directory, name, "");
  ck_assert_int_eq(truncate(path, size), 0);
}

static void assert_message_has(const char *text) {
  ck_assert_msg(strstr(clttt_last_error(), text) != NULL, "message lacks \"%s\": %s", text, clttt_last_error());
}

static void copy_data_file(const char *relative, const char *name) {
  const char *data = test_environment("CLTTT_TEST_DATA", NULL);
  ck_assert_msg(data != NULL, "CLTTT_TEST_DATA is not set (make check sets it)");
  char source[4096];
  snprintf(source, sizeof source, "%s/%s", data, relative);
  size_t size = 0;
  char *text = test_read_file(source, &size);
  ck_assert_msg(text != NULL, "cannot read %s", source);
  test_write_text(directory, name, text);
  free(text);
}

static void expect_config_failure(const char *what) {
  char path[4096];
  path_of(path, sizeof path, "config.json");
  clttt_config config;
  int status = config_load(&config, path);
  ck_assert_msg(status == CLTTT_ERROR_IO, "config.json as %s: %s (%s)", what, clttt_status_name(status),
                clttt_last_error());
  assert_message_has(path);
}

static void expect_tokenizer_failure(const char *what) {
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, directory);
  ck_assert_msg(status != CLTTT_SUCCESS, "tokenizer with %s loaded", what);
  ck_assert_ptr_null(tok);
  assert_message_has(directory);
}

/* ------------------------------------------------------------------ */
/* FIFOs                                                                */

START_TEST(test_fifo_config) {
  make_fifo("config.json");
  expect_config_failure("a FIFO");
  assert_message_has("not a regular file");
}
END_TEST

START_TEST(test_fifo_safetensors) {
  make_fifo("model.safetensors");
  char path[4096];
  path_of(path, sizeof path, "model.safetensors");
  safetensors_file file;
  ck_assert_int_eq(safetensors_open(&file, path), CLTTT_ERROR_IO);
  assert_message_has(path);
  assert_message_has("not a regular file");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_IO);
  assert_message_has("model.safetensors");
}
END_TEST

START_TEST(test_fifo_index) {
  make_fifo("model.safetensors.index.json");
  checkpoint ckpt;
  int status = checkpoint_open(&ckpt, directory);
  ck_assert_msg(status == CLTTT_ERROR_IO, "%s (%s)", clttt_status_name(status), clttt_last_error());
  assert_message_has("model.safetensors.index.json");
  assert_message_has("not a regular file");
}
END_TEST

START_TEST(test_fifo_tokenizer_files) {
  make_fifo("tokenizer.json");
  expect_tokenizer_failure("a FIFO tokenizer.json");
  assert_message_has("not a regular file");
  test_remove_directory(directory);
  setup();

  make_fifo("tok512.bin");
  expect_tokenizer_failure("a FIFO tok512.bin");
  assert_message_has("not a regular file");
  test_remove_directory(directory);
  setup();

  copy_data_file("tokenizer/qwen-like/tokenizer.json", "tokenizer.json");
  make_fifo("tokenizer_config.json");
  expect_tokenizer_failure("a FIFO tokenizer_config.json");
  assert_message_has("tokenizer_config.json");
  assert_message_has("not a regular file");
}
END_TEST

START_TEST(test_fifo_tuning_cache) {
  make_fifo("tuning.json");
  char path[4096];
  path_of(path, sizeof path, "tuning.json");
  clttt_device_info info;
  memset(&info, 0, sizeof info);
  strcpy(info.platform, "platform");
  strcpy(info.name, "device");
  strcpy(info.driver_version, "driver");
  tuning_params params;
  memset(&params, 0, sizeof params);
  int found = 1;
  int status = tuning_cache_lookup(path, &info, &params, &found);
  ck_assert_msg(status == CLTTT_ERROR_BAD_TUNING_FILE, "%s (%s)", clttt_status_name(status), clttt_last_error());
  ck_assert_int_eq(found, 0);
  assert_message_has(path);
  assert_message_has("not a regular file");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Endless character devices                                            */

START_TEST(test_dev_zero) {
  link_to("config.json", "/dev/zero");
  expect_config_failure("/dev/zero");
  assert_message_has("not a regular file");

  link_to("tokenizer.json", "/dev/zero");
  expect_tokenizer_failure("/dev/zero as tokenizer.json");
  assert_message_has("not a regular file");
  test_remove_directory(directory);
  setup();

  link_to("tok512.bin", "/dev/zero");
  expect_tokenizer_failure("/dev/zero as tok512.bin");
  assert_message_has("not a regular file");
  test_remove_directory(directory);
  setup();

  copy_data_file("tokenizer/qwen-like/tokenizer.json", "tokenizer.json");
  link_to("tokenizer_config.json", "/dev/zero");
  expect_tokenizer_failure("/dev/zero as tokenizer_config.json");
  assert_message_has("not a regular file");

  link_to("model.safetensors.index.json", "/dev/zero");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_IO);
  assert_message_has("not a regular file");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Size caps                                                            */

START_TEST(test_config_over_cap) {
  make_sparse("config.json", (off_t)16 * 1024 * 1024 + 1);
  expect_config_failure("a 16 MiB + 1 file");
  assert_message_has("16 MiB");
}
END_TEST

START_TEST(test_tokenizer_over_cap) {
  make_sparse("tokenizer.json", (off_t)256 * 1024 * 1024 + 1);
  expect_tokenizer_failure("a 256 MiB + 1 tokenizer.json");
  assert_message_has("256 MiB");
  test_remove_directory(directory);
  setup();

  copy_data_file("tokenizer/qwen-like/tokenizer.json", "tokenizer.json");
  make_sparse("tokenizer_config.json", (off_t)16 * 1024 * 1024 + 1);
  expect_tokenizer_failure("a 16 MiB + 1 tokenizer_config.json");
  assert_message_has("tokenizer_config.json");
  assert_message_has("16 MiB");
}
END_TEST

START_TEST(test_index_over_cap) {
  make_sparse("model.safetensors.index.json", (off_t)64 * 1024 * 1024 + 1);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_IO);
  assert_message_has("model.safetensors.index.json");
  assert_message_has("64 MiB");
}
END_TEST

/* ------------------------------------------------------------------ */
/* file_read_all itself                                                 */

START_TEST(test_read_all_within_cap) {
  char path[4096];
  path_of(path, sizeof path, "data.bin");
  FILE *stream = fopen(path, "wb");
  ck_assert_ptr_nonnull(stream);
  ck_assert_uint_eq(fwrite("ab\0cd", 1, 5, stream), 5);
  fclose(stream);
  char *text = NULL;
  size_t size = 0;
  ck_assert_int_eq(file_read_all(path, 5, "a test file", &text, &size), CLTTT_SUCCESS);
  ck_assert_uint_eq(size, 5);
  ck_assert(memcmp(text, "ab\0cd", 6) == 0); /* the NUL after the end included */
  free(text);
  ck_assert_int_eq(file_read_all(path, 4, "a test file", &text, &size), CLTTT_ERROR_IO);
  ck_assert_ptr_null(text);
  assert_message_has(path);
  assert_message_has("4-byte cap for a test file");

  test_write_text(directory, "empty.txt", "");
  path_of(path, sizeof path, "empty.txt");
  ck_assert_int_eq(file_read_all(path, 0, "a test file", &text, &size), CLTTT_SUCCESS);
  ck_assert_uint_eq(size, 0);
  ck_assert_str_eq(text, "");
  free(text);
}
END_TEST

START_TEST(test_read_all_refuses_non_files) {
  char *text = NULL;
  size_t size = 0;
  ck_assert_int_eq(file_read_all(directory, FILE_MIB, "a test file", &text, &size), CLTTT_ERROR_IO);
  assert_message_has("not a regular file (a directory)");
  char path[4096];
  path_of(path, sizeof path, "absent.json");
  ck_assert_int_eq(file_read_all(path, FILE_MIB, "a test file", &text, &size), CLTTT_ERROR_IO);
  assert_message_has(path);
  assert_message_has("cannot open");
  ck_assert_ptr_null(text);
}
END_TEST

static Suite *file_suite(void) {
  Suite *suite = suite_create("file");
  TCase *helper = tcase_create("file_read_all");
  tcase_add_checked_fixture(helper, setup, teardown);
  tcase_add_test(helper, test_read_all_within_cap);
  tcase_add_test(helper, test_read_all_refuses_non_files);
  suite_add_tcase(suite, helper);

  TCase *fifo = tcase_create("fifo");
  tcase_add_checked_fixture(fifo, setup, teardown);
  tcase_set_timeout(fifo, BLOCKING_TIMEOUT_SECONDS);
  tcase_add_test(fifo, test_fifo_config);
  tcase_add_test(fifo, test_fifo_safetensors);
  tcase_add_test(fifo, test_fifo_index);
  tcase_add_test(fifo, test_fifo_tokenizer_files);
  tcase_add_test(fifo, test_fifo_tuning_cache);
  suite_add_tcase(suite, fifo);

  TCase *devices = tcase_create("character devices");
  tcase_add_checked_fixture(devices, setup, teardown);
  tcase_set_timeout(devices, BLOCKING_TIMEOUT_SECONDS);
  tcase_add_test(devices, test_dev_zero);
  suite_add_tcase(suite, devices);

  TCase *caps = tcase_create("size caps");
  tcase_add_checked_fixture(caps, setup, teardown);
  tcase_set_timeout(caps, BLOCKING_TIMEOUT_SECONDS);
  tcase_add_test(caps, test_config_over_cap);
  tcase_add_test(caps, test_tokenizer_over_cap);
  tcase_add_test(caps, test_index_over_cap);
  suite_add_tcase(suite, caps);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(file_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
