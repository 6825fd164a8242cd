/* What the libFuzzer targets share: the loaders read paths, not memory, so
 * each input is written to a file in a per-process scratch directory first. */
#ifndef CLTTT_FUZZ_COMMON_H
#define CLTTT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The scratch directory (created on first use, removed at exit). */
const char *fuzz_directory(void);
/* Writes `size` bytes to fuzz_directory()/name, replacing the file; the
 * path is written into `path`. Aborts on failure: a target that cannot
 * write its input tests nothing. */
void fuzz_write_file(const char *name, const uint8_t *data, size_t size, char *path, size_t capacity);
/* A NUL-terminated copy of the input (free() it). */
char *fuzz_string(const uint8_t *data, size_t size);

/* Encodes, decodes and stream-decodes with a loaded tokenizer (fuzz_tokenize.c). */
struct clttt_tokenizer;
void fuzz_exercise_tokenizer(const struct clttt_tokenizer *tok, const uint8_t *data, size_t size);

#endif
