/* tests/write-fixtures DIR [NAME...]: writes the test fixture models
 * (fixture.h) as HuggingFace directories DIR/NAME/, for
 * tests/golden/generate.py and for looking at them by hand. */
#include <stdio.h>
#include <string.h>

#include "fixture.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: write-fixtures DIR [NAME...]\n"
          "       write-fixtures --list\n"
          "Writes the tiny test models (config.json + safetensors) into DIR/NAME/:\n"
          "all of them, or only those named.\n"
          "  --list   print the fixtures' names and what each covers\n"
          "  --help   this text\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < fixture_count(); i++)
      printf("%-18s %s\n", fixture_get(i)->name, fixture_get(i)->about);
    return 0;
  }
  if (argv[1][0] == '-') {
    fprintf(stderr, "write-fixtures: unknown option %s\n", argv[1]);
    usage(stderr);
    return 2;
  }
  const char *dir = argv[1];
  for (int i = 2; i < argc; i++)
    if (!fixture_find(argv[i])) {
      fprintf(stderr, "write-fixtures: no fixture named '%s' (see --list)\n", argv[i]);
      return 2;
    }
  const int named = argc > 2;
  const int count = named ? argc - 2 : fixture_count();
  for (int i = 0; i < count; i++) {
    const fixture_spec *spec = named ? fixture_find(argv[i + 2]) : fixture_get(i);
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, spec->name) >= (int)sizeof path) {
      fprintf(stderr, "write-fixtures: path too long\n");
      return 1;
    }
    if (fixture_write(spec, path) != CLTTT_SUCCESS) {
      fprintf(stderr, "write-fixtures: writing %s failed\n", path);
      return 1;
    }
    printf("%s\n", path);
  }
  return 0;
}
