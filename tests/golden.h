/* Golden logits written by tests/golden/generate.py from HuggingFace
 * transformers (base model) and an independent PyTorch implementation of
 * SPEC.md sections 3-4 (TTT layers).
 *
 * File format (little endian), tests/golden/<name>.bin:
 *   char     magic[8]   "CLTTTGLD"
 *   uint32   version    1
 *   uint32   n          tokens in the sequence
 *   uint32   vocab      logits per row
 *   uint32   ttt        1 when computed with TTT on (the fixture's ttt_mode)
 *   int32    tokens[n]
 *   float32  logits[n][vocab]
 *   char     fixture[]  rest of the file: the fixture's name (no NUL) */
#ifndef CLTTT_TEST_GOLDEN_H
#define CLTTT_TEST_GOLDEN_H

#include <stdint.h>

typedef struct {
  char fixture[64];
  int n, vocab, ttt;
  int32_t *tokens;
  float *logits;
} golden;

/* Reads `path`; returns 0 on success, -1 (with a message on stderr) when the
 * file is missing or malformed. */
int golden_read(golden *g, const char *path);
void golden_free(golden *g);

/* Names of all committed goldens, from tests/golden/index.txt (one name per
 * line, without .bin); *count receives how many. The array and strings are
 * malloc'ed: free with golden_free_names. */
char **golden_list(const char *golden_dir, int *count);
void golden_free_names(char **names, int count);

#endif
