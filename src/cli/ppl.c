/* clttt ppl: perplexity of a text, overall and per position bucket, the
 * paper's long-context metric; with --ttt both, TTT on and off side by side. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "clttt.h"

/* Tokens per feed. 512 is the session's default batch, so a feed is one
 * batch of the forward pass; with 256 every product ran at half the rows
 * and each batch re-packed all earlier keys for attention. The host holds
 * PIECE x vocab floats of logits: 62.5 MiB at vocab 32000, 297 MiB at
 * Qwen3's 151936, small next to the weights of such a model. */
#define PIECE 512
#define MAX_BUCKETS 32

static void help(void) {
  printf("usage: clttt ppl -m DIR -f FILE [--ctx N] [--ttt on|off|both] [--bucket N] [--json]\n"
         "Runs the text of FILE (with the tokenizer's BOS first) through the model and\n"
         "reports the perplexity of predicting each next token: overall and per position\n"
         "bucket (0-1k, 1k-2k, 2k-4k, ...: each bucket after the first doubles). Input\n"
         "longer than the context is cut to its first N tokens, with a note. With\n"
         "--session-in the text continues the saved session (no BOS), positions\n"
         "counted from the start of the text.\n\n"
         "  -f, --file FILE    the text\n"
         "  --ttt on|off|both  both: two runs on the same tokens, TTT on and off\n"
         "  --bucket N         size of the first bucket in tokens (default 1024)\n"
         "  --json             machine-readable output on standard output\n"
         "%s",
         model_options_help);
}

typedef struct {
  int from, to;        /* positions of the predicted tokens: [from, to) */
  double nll;          /* summed negative log-likelihood */
  long count;
} bucket;

static int make_buckets(bucket *buckets, int first, int predictions) {
  int count = 0, from = 0, to = first;
  while (from < predictions && count < MAX_BUCKETS) {
    buckets[count].from = from;
    buckets[count].to = to < predictions ? to : predictions;
    buckets[count].nll = 0;
    buckets[count].count = 0;
    count++;
    from = to;
    to *= 2;
  }
  return count;
}

/* -log softmax(row)[target]. The exponentials are float (expf: the
 * arguments are <= 0 after subtracting the maximum, and each term's relative
 * error of ~1e-7 is far below what a perplexity reports); their sum and the
 * logarithm are double, for long texts' sums. Double exp() per logit made
 * the scoring a tenth of a 1024-token run at vocab 32000. */
static double negative_log_likelihood(const float *row, int vocab, int target) {
  float highest = row[0];
  for (int v = 1; v < vocab; v++)
    highest = row[v] > highest ? row[v] : highest;
  double sum = 0;
  for (int v = 0; v < vocab; v++)
    sum += (double)expf(row[v] - highest);
  return log(sum) + (double)highest - (double)row[target];
}

/* One pass over the tokens; fills the buckets. `seconds` is the whole pass,
 * `feed_seconds` the model's part of it (the forward pass and the logits
 * reaching the host) without the scoring of those logits here. Returns 0 on
 * failure. */
static int run(loaded_model *loaded, const int32_t *tokens, int n, int vocab, bucket *buckets, int bucket_count,
               const char *label, double *seconds, double *feed_seconds) {
  float *logits = malloc((size_t)PIECE * (size_t)vocab * sizeof *logits);
  if (!logits) {
    fprintf(stderr, "clttt ppl: out of host memory for %d x %d logits\n", PIECE, vocab);
    return 0;
  }
  const int show_progress = n > PIECE;
  double start = cli_now_seconds();
  *feed_seconds = 0;
  for (int done = 0; done < n; done += PIECE) {
    int piece = n - done < PIECE ? n - done : PIECE;
    double feed_start = cli_now_seconds();
    int status = model_feed(loaded, tokens + done, piece, logits, 0);
    *feed_seconds += cli_now_seconds() - feed_start;
    if (status != CLTTT_SUCCESS) {
      if (show_progress)
        fprintf(stderr, "\n");
      cli_report("running the model", status);
      free(logits);
      return 0;
    }
    /* Row i predicts token done + i + 1. */
    for (int i = 0; i < piece && done + i + 1 < n; i++) {
      int position = done + i;
      double nll = negative_log_likelihood(logits + (size_t)i * (size_t)vocab, vocab, tokens[position + 1]);
      for (int b = 0; b < bucket_count; b++)
        if (position >= buckets[b].from && position < buckets[b].to) {
          buckets[b].nll += nll;
          buckets[b].count++;
        }
    }
    if (show_progress) {
      double elapsed = cli_now_seconds() - start;
      int filled = (int)(30.0 * (done + piece) / n);
      fprintf(stderr, "\r%-8s [%.*s%*s] %d/%d tokens, %.1f tokens/s", label, filled,
              "==============================", 30 - filled, "", done + piece, n, (done + piece) / elapsed);
    }
  }
  if (show_progress)
    fprintf(stderr, "\n");
  *seconds = cli_now_seconds() - start;
  free(logits);
  return 1;
}

static double perplexity(double nll, long count) { return count > 0 ? exp(nll / (double)count) : NAN; }

static void totals(const bucket *buckets, int count, double *nll, long *tokens) {
  *nll = 0;
  *tokens = 0;
  for (int b = 0; b < count; b++) {
    *nll += buckets[b].nll;
    *tokens += buckets[b].count;
  }
}

static void format_position(char *out, size_t size, int position) {
  if (position >= 1024 && position % 1024 == 0)
    snprintf(out, size, "%dk", position / 1024);
  else
    snprintf(out, size, "%d", position);
}

int command_ppl(int argc, char **argv) {
  model_options options;
  model_options_init(&options);
  options.allow_ttt_both = 1;
  const char *file = NULL;
  int json = 0, first_bucket = 1024, error = 0;
  for (int i = 1; i < argc && !error; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (model_options_parse(argc, argv, &i, &options, &error)) {
    } else if (cli_option_value(argc, argv, &i, "-f", &value, &missing) ||
               cli_option_value(argc, argv, &i, "--file", &value, &missing)) {
      file = value;
    } else if (cli_option_value(argc, argv, &i, "--bucket", &value, &missing)) {
      error = !missing && !parse_int(value, "--bucket", 1, &first_bucket);
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else {
      fprintf(stderr, "clttt ppl: unknown option '%s' (see --help)\n", argv[i]);
      error = 1;
    }
    error |= missing;
  }
  if (error)
    return 2;
  if (!file || !options.model_dir) {
    fprintf(stderr, "clttt ppl: %s (see --help)\n", !file ? "no text given: use -f FILE" : "no model given: use -m DIR");
    return 2;
  }
  if (options.ttt == 2 && options.session_out) {
    fprintf(stderr, "clttt ppl: --session-out saves one session; --ttt both runs two (choose on or off)\n");
    return 2;
  }
  FILE *input = fopen(file, "rb");
  if (!input) {
    fprintf(stderr, "clttt ppl: cannot open %s: %s\n", file, strerror(errno));
    return 1;
  }
  /* A directory opens on Linux and reads as an error; a FIFO would block. */
  struct stat about;
  if (fstat(fileno(input), &about) != 0 || !S_ISREG(about.st_mode)) {
    fprintf(stderr, "clttt ppl: %s is not a regular file\n", file);
    fclose(input);
    return 1;
  }
  size_t capacity = 1 << 16, size = 0;
  char *text = malloc(capacity);
  for (size_t got; text && (got = fread(text + size, 1, capacity - size - 1, input)) > 0;) {
    size += got;
    if (size + 1 == capacity) {
      char *bigger = realloc(text, capacity *= 2);
      if (!bigger)
        free(text);
      text = bigger;
    }
  }
  int read_failed = ferror(input);
  fclose(input);
  if (!text) {
    fprintf(stderr, "clttt ppl: out of host memory reading %s\n", file);
    return 1;
  }
  if (read_failed) {
    fprintf(stderr, "clttt ppl: error reading %s\n", file);
    free(text);
    return 1;
  }
  text[size] = '\0';
  if (strlen(text) != size) {
    fprintf(stderr, "clttt ppl: %s contains NUL bytes: not a text file\n", file);
    free(text);
    return 1;
  }

  clttt_tokenizer *tok = NULL;
  int32_t *tokens = NULL;
  int n = 0, exit_code = 1;
  loaded_model loaded = {0};
  int status = clttt_tokenizer_load(&tok, options.model_dir);
  if (status == CLTTT_SUCCESS)
    status = clttt_tokenizer_encode(tok, text, !options.session_in, &tokens, &n);
  free(text);
  if (status != CLTTT_SUCCESS) {
    cli_report("tokenizing the text", status);
    goto done;
  }
  if (n < 2) {
    fprintf(stderr, "clttt ppl: %s gives %d token%s: nothing to predict\n", file, n, n == 1 ? "" : "s");
    goto done;
  }
  clttt_config config;
  status = clttt_config_load(&config, options.model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the model's config.json", status);
    goto done;
  }
  int limit = options.context ? options.context : config.max_position_embeddings;
  clttt_config_free(&config);
  if (limit < 2) {
    fprintf(stderr, "clttt ppl: a context of %d token cannot predict anything: --ctx must be at least 2\n", limit);
    goto done;
  }
  /* A saved session's room is known once it is loaded. */
  if (n > limit && !options.session_in) {
    fprintf(stderr, "clttt ppl: the text has %d tokens; using the first %d (%s)\n", n, limit,
            options.context ? "--ctx" : "max_position_embeddings");
    n = limit;
  }
  model_options open_options = options;
  if (open_options.ttt == 2 && pipeline_size() > 1) {
    fprintf(stderr, "clttt ppl: --ttt both is not available under mpirun: run --ttt on and --ttt off\n");
    goto done;
  }
  if (open_options.ttt == 2)
    open_options.ttt = -1;
  if (!options.session_in)
    open_options.context = n;
  /* A saved session grows to hold the whole text unless --ctx says otherwise. */
  if (!model_open(&open_options, options.session_in && options.context ? 2 : n, &loaded))
    goto done;
  if (options.session_in) {
    int room = clttt_session_get_params(loaded.session).context - clttt_session_position(loaded.session);
    if (n > room) {
      fprintf(stderr, "clttt ppl: the text has %d tokens; using the first %d (the room left in %s)\n", n, room,
              options.session_in);
      n = room;
    }
  }
  const int vocab = clttt_model_get_config(loaded.model)->vocab_size;
  for (int i = 0; i < n; i++)
    if (tokens[i] >= vocab) {
      fprintf(stderr, "clttt ppl: the tokenizer produced id %d but the model's vocabulary has %d entries\n", tokens[i],
              vocab);
      goto done;
    }

  const int both = options.ttt == 2;
  bucket results[2][MAX_BUCKETS];
  double seconds[2] = {0, 0}, feed_seconds[2] = {0, 0};
  int bucket_count = 0;
  const int run_count = both ? 2 : 1;
  for (int r = 0; r < run_count; r++) {
    bucket_count = make_buckets(results[r], first_bucket, n - 1);
    if (both && r == 1) {
      /* TTT is fixed at session creation: the second run gets a new session,
       * made after the first one's memory is given back. */
      clttt_session_params params = clttt_session_get_params(loaded.session);
      params.ttt = 0;
      clttt_session_free(loaded.session);
      loaded.session = NULL;
      status = clttt_session_create(&loaded.session, loaded.model, &params);
      if (status != CLTTT_SUCCESS) {
        cli_report("creating the session with TTT off", status);
        goto done;
      }
    }
    const char *label = clttt_session_ttt_enabled(loaded.session) ? "TTT on" : "TTT off";
    if (!run(&loaded, tokens, n, vocab, results[r], bucket_count, label, &seconds[r], &feed_seconds[r]))
      goto done;
  }

  const char *names[2];
  for (int r = 0; r < run_count; r++)
    names[r] = both ? (r == 0 ? "on" : "off") : (clttt_session_ttt_enabled(loaded.session) ? "on" : "off");
  if (json) {
    printf("{\"model\": \"%s\", \"file\": \"%s\", \"tokens\": %d, \"runs\": [", options.model_dir, file, n);
    for (int r = 0; r < run_count; r++) {
      double nll;
      long count;
      totals(results[r], bucket_count, &nll, &count);
      printf("%s{\"ttt\": \"%s\", \"perplexity\": %.6f, \"predicted_tokens\": %ld, \"seconds\": %.3f, "
             "\"feed_seconds\": %.3f, \"buckets\": [",
             r ? ", " : "", names[r], perplexity(nll, count), count, seconds[r], feed_seconds[r]);
      for (int b = 0; b < bucket_count; b++)
        printf("%s{\"from\": %d, \"to\": %d, \"tokens\": %ld, \"perplexity\": %.6f}", b ? ", " : "", results[r][b].from,
               results[r][b].to, results[r][b].count, perplexity(results[r][b].nll, results[r][b].count));
      printf("]}");
    }
    printf("]}\n");
  } else {
    printf("perplexity of %s: %d tokens, %s\n", file, n, options.model_dir);
    printf("%-14s %8s", "positions", "tokens");
    for (int r = 0; r < run_count; r++)
      printf("   ppl TTT %-4s", names[r]);
    printf("\n");
    for (int b = 0; b <= bucket_count; b++) {
      char range[48], from[16], to[16];
      long count = 0;
      if (b < bucket_count) {
        format_position(from, sizeof from, results[0][b].from);
        format_position(to, sizeof to, results[0][b].to);
        snprintf(range, sizeof range, "%s-%s", from, to);
        count = results[0][b].count;
      } else {
        snprintf(range, sizeof range, "all");
      }
      printf("%-14s", range);
      for (int r = 0; r < run_count; r++) {
        double nll = results[r][b < bucket_count ? b : 0].nll;
        long tokens_in = count;
        if (b == bucket_count)
          totals(results[r], bucket_count, &nll, &tokens_in);
        if (r == 0)
          printf(" %8ld", tokens_in);
        printf("   %12.4f", perplexity(nll, tokens_in));
      }
      printf("\n");
    }
    for (int r = 0; r < run_count; r++)
      fprintf(stderr, "TTT %s: %.1f tokens/s\n", names[r], n / seconds[r]);
  }
  exit_code = 0;
done:
  exit_code = model_finish(&loaded, exit_code);
  free(tokens);
  clttt_tokenizer_free(tok);
  return exit_code;
}
