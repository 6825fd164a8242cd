/* Encoding throughput of a tokenizer on about a megabyte of text. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "clttt.h"

static void usage(FILE *out, const char *program) {
  fprintf(out,
          "usage: %s [options] TOKENIZER_DIR\n"
          "Encodes about 1 MB of text with the tokenizer in TOKENIZER_DIR (tokenizer.json\n"
          "or tok*.bin) and prints MB/s and tokens/s.\n"
          "\n"
          "options:\n"
          "  --text FILE       text to repeat up to the size (default: TOKENIZER_DIR/../training.txt,\n"
          "                    which is tests/tokenizer/training.txt for the test tokenizers)\n"
          "  --megabytes N     amount of text to encode per run (default 1)\n"
          "  --runs N          timed runs; the fastest is reported (default 5)\n"
          "  --help            this message\n"
          "\n"
          "example: %s tests/tokenizer/qwen-like\n",
          program, program);
}

static char *read_text(const char *path, size_t *length) {
  FILE *file = fopen(path, "rb");
  if (!file)
    return NULL;
  size_t capacity = 1 << 16, used = 0;
  char *text = malloc(capacity);
  size_t got;
  while (text && (got = fread(text + used, 1, capacity - used - 1, file)) > 0) {
    used += got;
    if (capacity - used - 1 == 0) {
      char *bigger = realloc(text, capacity * 2);
      if (!bigger)
        free(text);
      text = bigger;
      capacity *= 2;
    }
  }
  fclose(file);
  if (text) {
    text[used] = '\0';
    *length = strlen(text); /* a NUL inside would end the text for the encoder anyway */
  }
  return text;
}

/* Whole copies of the sample, so no character is cut at the end. */
static char *repeat_text(const char *sample, size_t sample_length, size_t target, size_t *length) {
  size_t copies = (target + sample_length - 1) / sample_length;
  char *text = malloc(copies * sample_length + 1);
  if (!text)
    return NULL;
  for (size_t i = 0; i < copies; i++)
    memcpy(text + i * sample_length, sample, sample_length);
  *length = copies * sample_length;
  text[*length] = '\0';
  return text;
}

int main(int argc, char **argv) {
  const char *directory = NULL, *text_path = NULL;
  double megabytes = 1.0;
  int runs = 5;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    } else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
      text_path = argv[++i];
    } else if (strcmp(argv[i], "--megabytes") == 0 && i + 1 < argc) {
      megabytes = atof(argv[++i]);
    } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
      runs = atoi(argv[++i]);
    } else if (argv[i][0] == '-' || directory) {
      usage(stderr, argv[0]);
      return 2;
    } else {
      directory = argv[i];
    }
  }
  if (!directory || megabytes <= 0 || runs < 1) {
    usage(stderr, argv[0]);
    return 2;
  }

  char default_text[4096];
  if (!text_path) {
    snprintf(default_text, sizeof default_text, "%s/../training.txt", directory);
    text_path = default_text;
  }
  size_t sample_length = 0;
  char *sample = read_text(text_path, &sample_length);
  if (!sample || sample_length == 0) {
    fprintf(stderr, "%s: cannot read text from %s (use --text FILE)\n", argv[0], text_path);
    free(sample);
    return 1;
  }
  size_t length = 0;
  char *text = repeat_text(sample, sample_length, (size_t)(megabytes * 1e6), &length);
  free(sample);
  if (!text) {
    fprintf(stderr, "%s: out of memory\n", argv[0]);
    return 1;
  }

  clttt_tokenizer *tok = NULL;
  double load_start = now_seconds();
  if (clttt_tokenizer_load(&tok, directory) != CLTTT_SUCCESS) {
    fprintf(stderr, "%s: %s\n", argv[0], clttt_last_error());
    free(text);
    return 1;
  }
  double load_seconds = now_seconds() - load_start;

  /* llama2.c decoding drops the encoder's dummy-prefix space only after a
   * BOS, so only with one do the ids decode to exactly the text. */
  int add_bos = strcmp(clttt_tokenizer_kind_name(tok), "llama2c") == 0;
  double best = 1e30;
  int token_count = 0;
  for (int run = 0; run < runs; run++) {
    int32_t *ids = NULL;
    double start = now_seconds();
    if (clttt_tokenizer_encode(tok, text, add_bos, &ids, &token_count) != CLTTT_SUCCESS) {
      fprintf(stderr, "%s: %s\n", argv[0], clttt_last_error());
      clttt_tokenizer_free(tok);
      free(text);
      return 1;
    }
    double elapsed = now_seconds() - start;
    if (elapsed < best)
      best = elapsed;
    /* A fast wrong answer is no result: the ids must decode to the text. */
    if (run == 0) {
      char *decoded = NULL;
      int round_trip = clttt_tokenizer_decode(tok, ids, token_count, &decoded) == CLTTT_SUCCESS &&
                       strcmp(decoded, text) == 0;
      free(decoded);
      if (!round_trip) {
        fprintf(stderr, "%s: decoding the ids did not give the text back\n", argv[0]);
        free(ids);
        clttt_tokenizer_free(tok);
        free(text);
        return 1;
      }
    }
    free(ids);
  }

  printf("tokenizer  %s (%s, vocabulary %d), loaded in %.1f ms\n", directory, clttt_tokenizer_kind_name(tok),
         clttt_tokenizer_vocab_size(tok), load_seconds * 1e3);
  printf("text       %zu bytes from %s\n", length, text_path);
  printf("encode     %d tokens in %.1f ms (best of %d)\n", token_count, best * 1e3, runs);
  printf("throughput %.2f MB/s, %.0f tokens/s\n", (double)length / best / 1e6, (double)token_count / best);
  clttt_tokenizer_free(tok);
  free(text);
  return 0;
}
