/* Scratch files for the fuzz targets. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"

static char scratch[4096];

static void remove_scratch(void) {
  DIR *dir = opendir(scratch);
  if (!dir)
    return;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
      continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", scratch, entry->d_name);
    unlink(path);
  }
  closedir(dir);
  rmdir(scratch);
}

const char *fuzz_directory(void) {
  if (scratch[0])
    return scratch;
  const char *base = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/clttt-fuzz-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(scratch)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(remove_scratch);
  return scratch;
}

void fuzz_write_file(const char *name, const uint8_t *data, size_t size, char *path, size_t capacity) {
  snprintf(path, capacity, "%s/%s", fuzz_directory(), name);
  /* A fresh file each time: truncating in place costs a flush on some
   * file systems, and a crash reproducer is easier to read this way. */
  unlink(path);
  FILE *file = fopen(path, "wb");
  if (!file || (size && fwrite(data, 1, size, file) != size) || fclose(file) != 0) {
    perror(path);
    abort();
  }
}

char *fuzz_string(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text)
    abort();
  if (size)
    memcpy(text, data, size);
  text[size] = '\0';
  return text;
}
