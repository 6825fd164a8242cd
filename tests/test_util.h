/* Small helpers shared by the Check suites. */
#ifndef CLTTT_TEST_UTIL_H
#define CLTTT_TEST_UTIL_H

#include <stddef.h>

#include "clttt.h"

/* Opens the default device or fails the test: in CI an OpenCL device (PoCL)
 * always exists, so a missing one is an error, never a skip. */
clttt_device *test_open_device(void);
/* mkdtemp under $TMPDIR (or /tmp); the path is written into `path`. */
void test_make_temporary_directory(char *path, size_t capacity);
/* rm -r of a directory this test created (files one level deep, and
 * subdirectories one level below that). */
void test_remove_directory(const char *path);
/* Largest |a[i] - b[i]|; NaN anywhere counts as infinity. */
double test_max_abs_difference(const float *a, const float *b, size_t count);
double test_max_abs(const float *a, size_t count);
/* $name, else `fallback`. */
const char *test_environment(const char *name, const char *fallback);
/* Writes `text` to dir/name. */
void test_write_text(const char *dir, const char *name, const char *text);
/* Reads a whole file (NUL-terminated); NULL when missing. */
char *test_read_file(const char *path, size_t *size);

/* What `clttt <arguments>` did: its exit code and everything it wrote. */
typedef struct {
  int exit_code;
  char *out, *err;
  size_t out_size;
} test_command;

/* Runs $CLTTT_BUILD_DIR/clttt with `format`'s arguments (already
 * shell-quoted where needed), standard output and error captured in files
 * of `scratch`, standard input empty. */
test_command test_run_clttt(const char *scratch, const char *format, ...) __attribute__((format(printf, 2, 3)));
void test_command_free(test_command *command);

/* Writes dir/tok256.bin, a llama2.c-format tokenizer of exactly 256 pieces
 * (the fixtures' vocabulary): <unk>, <s>, </s>, printable ASCII, then
 * letter pairs. */
void test_write_small_tokenizer(const char *dir);
/* The same with `size` pieces (at most 256): fewer than a model's rows
 * make a padded vocabulary. */
void test_write_tokenizer_of(const char *dir, int size);

#endif
