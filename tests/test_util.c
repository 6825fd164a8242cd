/* Small helpers shared by the Check suites. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

clttt_device *test_open_device(void) {
  clttt_device *device = NULL;
  int status = clttt_device_open(&device, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "no OpenCL device (%s): %s", clttt_status_name(status),
                clttt_last_error());
  return device;
}

void test_make_temporary_directory(char *path, size_t capacity) {
  const char *base = test_environment("TMPDIR", "/tmp");
  snprintf(path, capacity, "%s/clttt-test-XXXXXX", base);
  ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s failed", path);
}

static void remove_tree(const char *path, int depth) {
  DIR *dir = opendir(path);
  if (!dir)
    return;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    char child[4096];
    snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
    struct stat info;
    if (lstat(child, &info) == 0 && S_ISDIR(info.st_mode)) {
      if (depth < 4)
        remove_tree(child, depth + 1);
    } else {
      unlink(child);
    }
  }
  closedir(dir);
  rmdir(path);
}

void test_remove_directory(const char *path) { remove_tree(path, 0); }

double test_max_abs_difference(const float *a, const float *b, size_t count) {
  double worst = 0.0;
  for (size_t i = 0; i < count; i++) {
    double difference = fabs((double)a[i] - (double)b[i]);
    if (difference != difference)
      return INFINITY;
    if (difference > worst)
      worst = difference;
  }
  return worst;
}

double test_max_abs(const float *a, size_t count) {
  double worst = 0.0;
  for (size_t i = 0; i < count; i++)
    if (fabs((double)a[i]) > worst)
      worst = fabs((double)a[i]);
  return worst;
}

const char *test_environment(const char *name, const char *fallback) {
  const char *value = getenv(name);
  return value && *value ? value : fallback;
}

void test_write_text(const char *dir, const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *file = fopen(path, "wb");
  ck_assert_msg(file != NULL, "cannot write %s", path);
  fputs(text, file);
  fclose(file);
}

char *test_read_file(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  fseek(file, 0, SEEK_END);
  long length = ftell(file);
  fseek(file, 0, SEEK_SET);
  char *data = malloc((size_t)length + 1);
  if (data && fread(data, 1, (size_t)length, file) != (size_t)length) {
    free(data);
    data = NULL;
  }
  fclose(file);
  if (data) {
    data[length] = '\0';
    if (size)
      *size = (size_t)length;
  }
  return data;
}

void test_write_small_tokenizer(const char *dir) { test_write_tokenizer_of(dir, 256); }

void test_write_tokenizer_of(const char *dir, int size) {
  char path[800];
  snprintf(path, sizeof path, "%s/tok256.bin", dir);
  FILE *file = fopen(path, "wb");
  ck_assert_ptr_nonnull(file);
  int32_t max_length = 8;
  fwrite(&max_length, 4, 1, file);
  char pieces[256][8];
  int count = 0;
  strcpy(pieces[count++], "<unk>");
  strcpy(pieces[count++], "\n<s>\n");
  strcpy(pieces[count++], "\n</s>\n");
  for (int c = 32; c < 127; c++)
    snprintf(pieces[count++], 8, "%c", c);
  for (int a = 'a'; a <= 'z' && count < size && count < 256; a++)
    for (int b = 'a'; b <= 'z' && count < size && count < 256; b++)
      snprintf(pieces[count++], 8, "%c%c", a, b);
  for (int i = 0; i < count; i++) {
    float score = (float)-i;
    int32_t length = (int32_t)strlen(pieces[i]);
    fwrite(&score, 4, 1, file);
    fwrite(&length, 4, 1, file);
    fwrite(pieces[i], 1, (size_t)length, file);
  }
  ck_assert_int_eq(fclose(file), 0);
}

test_command test_run_clttt(const char *scratch, const char *format, ...) {
  char arguments[4096], command[6000], out_path[700], err_path[700];
  va_list list;
  va_start(list, format);
  vsnprintf(arguments, sizeof arguments, format, list);
  va_end(list);
  snprintf(out_path, sizeof out_path, "%s/stdout", scratch);
  snprintf(err_path, sizeof err_path, "%s/stderr", scratch);
  snprintf(command, sizeof command, "'%s/clttt' %s > '%s' 2> '%s' < /dev/null",
           test_environment("CLTTT_BUILD_DIR", "."), arguments, out_path, err_path);
  int status = system(command);
  test_command result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  size_t err_size = 0;
  result.out = test_read_file(out_path, &result.out_size);
  result.err = test_read_file(err_path, &err_size);
  ck_assert_ptr_nonnull(result.out);
  ck_assert_ptr_nonnull(result.err);
  return result;
}

void test_command_free(test_command *command) {
  free(command->out);
  free(command->err);
}
