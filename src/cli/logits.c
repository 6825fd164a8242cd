/* clttt logits: the logits of every position of a token sequence, as raw
 * little-endian float32 rows (n x vocab_size). A stable interface for
 * comparing clttt with other implementations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void help(void) {
  printf("usage: clttt logits -m DIR --tokens ID,ID,... [--out FILE] [--pieces N] [options]\n"
         "Runs the token sequence through the model and writes the logits of every\n"
         "position as little-endian float32 rows, n x vocab_size, row i being the\n"
         "distribution after token i. Nothing else is written to the output.\n\n"
         "  --tokens LIST      comma-separated token ids\n"
         "  --out FILE         write to FILE instead of standard output\n"
         "  --pieces N         feed the tokens in pieces of N (1 = token-by-token decode);\n"
         "                     the output must not depend on N\n"
         "%s",
         model_options_help);
}

/* "1,2,3" -> ids; returns 0 with a message on bad input. */
static int parse_tokens(const char *text, int32_t **ids, int *count) {
  int capacity = 1;
  for (const char *c = text; *c; c++)
    capacity += *c == ',';
  *ids = malloc((size_t)capacity * sizeof **ids);
  *count = 0;
  if (!*ids)
    return 0;
  const char *cursor = text;
  while (*cursor) {
    char *end = NULL;
    long value = strtol(cursor, &end, 10);
    if (end == cursor || value < 0 || value > 0x7fffffffL || (*end && *end != ',')) {
      fprintf(stderr, "clttt logits: bad token list near '%s' (expected ids like 1,42,7)\n", cursor);
      free(*ids);
      *ids = NULL;
      return 0;
    }
    (*ids)[(*count)++] = (int32_t)value;
    cursor = *end == ',' ? end + 1 : end;
  }
  if (*count == 0) {
    fprintf(stderr, "clttt logits: --tokens is empty\n");
    free(*ids);
    *ids = NULL;
    return 0;
  }
  return 1;
}

int command_logits(int argc, char **argv) {
  model_options options;
  model_options_init(&options);
  const char *tokens_text = NULL, *out_path = NULL;
  int pieces = 0, error = 0;
  for (int i = 1; i < argc && !error; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (model_options_parse(argc, argv, &i, &options, &error)) {
    } else if (cli_option_value(argc, argv, &i, "--tokens", &value, &missing)) {
      tokens_text = value;
    } else if (cli_option_value(argc, argv, &i, "--out", &value, &missing)) {
      out_path = value;
    } else if (cli_option_value(argc, argv, &i, "--pieces", &value, &missing)) {
      if (!missing && !parse_int(value, "--pieces", 1, &pieces))
        error = 1;
    } else {
      fprintf(stderr, "clttt logits: unknown option '%s' (see --help)\n", argv[i]);
      error = 1;
    }
    error |= missing;
  }
  if (error)
    return 2;
  if (!tokens_text) {
    fprintf(stderr, "clttt logits: --tokens is required (see --help)\n");
    return 2;
  }
  if (!out_path && isatty(STDOUT_FILENO)) {
    fprintf(stderr, "clttt logits: refusing to write binary logits to a terminal: use --out FILE or a pipe\n");
    return 2;
  }
  int32_t *tokens = NULL;
  int count = 0;
  if (!parse_tokens(tokens_text, &tokens, &count))
    return 2;
  loaded_model loaded;
  if (!model_open(&options, count, &loaded)) {
    free(tokens);
    return 1;
  }
  const int vocab = clttt_model_get_config(loaded.model)->vocab_size;
  float *logits = malloc((size_t)count * (size_t)vocab * sizeof *logits);
  int status = logits ? CLTTT_SUCCESS : CLTTT_ERROR_OUT_OF_HOST_MEMORY;
  int piece = pieces ? pieces : count;
  for (int done = 0; done < count && status == CLTTT_SUCCESS; done += piece) {
    int n = count - done < piece ? count - done : piece;
    status = model_feed(&loaded, tokens + done, n, logits + (size_t)done * vocab, 0);
  }
  int exit_code = 0;
  if (status != CLTTT_SUCCESS) {
    cli_report("running the model", status);
    exit_code = 1;
  } else {
    FILE *out = out_path ? fopen(out_path, "wb") : stdout;
    if (!out) {
      perror(out_path);
      exit_code = 1;
    } else {
      /* float32 on every platform we build for is IEEE little-endian in memory
       * except big-endian hosts, which we reject at configure time. */
      if (fwrite(logits, sizeof *logits, (size_t)count * vocab, out) != (size_t)count * vocab) {
        fprintf(stderr, "clttt logits: writing %s failed\n", out_path ? out_path : "standard output");
        exit_code = 1;
      }
      if (out_path && fclose(out) != 0) {
        perror(out_path);
        exit_code = 1;
      }
    }
  }
  free(logits);
  free(tokens);
  return model_finish(&loaded, exit_code);
}
