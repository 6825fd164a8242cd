/* clttt demo: the main job on built-in defaults, with nothing to download.
 * First the trained stories260K model (shipped with clttt) tells a story;
 * then a synthetic Qwen3-style model with TTT layers, at a shape where the
 * cost of TTT is representative, reads a long prompt with TTT on and off,
 * and the measured overhead is printed next to the cost model's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build-config.h"
#include "cli.h"

/* Where the shipped stories260K lives: installed, or in the source tree
 * when run from a build directory. */
#ifndef CLTTT_MODELS_DIR
#define CLTTT_MODELS_DIR ""
#endif
#ifndef CLTTT_SOURCE_MODELS_DIR
#define CLTTT_SOURCE_MODELS_DIR ""
#endif

static void help(void) {
  printf("usage: clttt demo [--device SEL] [--story-model DIR] [--tokens N] [--decode N] [--chunk C]\n"
         "                  [--hidden D]\n"
         "1. The trained stories260K model (a 260K-parameter TinyStories LLaMA shipped with\n"
         "   clttt) continues \"Once upon a time\" greedily.\n"
         "2. A Qwen3-style model with 8 layers, In-Place TTT in layers 0 and 4, and\n"
         "   SYNTHETIC seeded random weights (its text means nothing; its speed is that of\n"
         "   a real model of this shape) prefills N random tokens with TTT on and off. The\n"
         "   two must agree on the first chunk and differ after it; the measured cost of\n"
         "   TTT is printed next to the cost model's prediction (SPEC.md section 7).\n"
         "3. It decodes a few tokens with TTT on and reports the speed.\n\n"
         "  --device SEL        OpenCL device: index or name substring (see 'clttt devices')\n"
         "  --story-model DIR   stories260K directory (default: the installed copy, then\n"
         "                      $CLTTT_DATA_DIR/models/stories260K, then the source tree's)\n"
         "  --tokens N          prefill length of part 2 (default 1024)\n"
         "  --decode N          tokens to decode in part 3 (default 16)\n"
         "  --chunk C           TTT chunk size (default 512)\n"
         "  --hidden D          d of the synthetic model, f = 3d (default 1024; 256 is quick)\n");
}

static int is_directory(const char *path) {
  struct stat about;
  return path && *path && stat(path, &about) == 0 && S_ISDIR(about.st_mode);
}

/* The first stories260K directory that exists, or NULL. */
static const char *find_story_model(const char *given, char *buffer, size_t capacity) {
  if (given)
    return given;
  const char *data = getenv("CLTTT_DATA_DIR");
  const char *roots[] = {CLTTT_MODELS_DIR, NULL, CLTTT_SOURCE_MODELS_DIR};
  char from_environment[4096] = "";
  if (data && *data) {
    snprintf(from_environment, sizeof from_environment, "%s/models", data);
    roots[1] = from_environment;
  }
  for (int i = 0; i < 3; i++) {
    if (!roots[i] || !*roots[i])
      continue;
    snprintf(buffer, capacity, "%s/stories260K", roots[i]);
    if (is_directory(buffer))
      return buffer;
  }
  return NULL;
}

static int argmax(const float *values, int count) {
  int best = 0;
  for (int i = 1; i < count; i++)
    if (values[i] > values[best])
      best = i;
  return best;
}

/* Part 1: a trained model telling its story. */
static int tell_story(clttt_device *device, const char *dir) {
  clttt_tokenizer *tok = NULL;
  clttt_model *model = NULL;
  clttt_session *session = NULL;
  clttt_tokenizer_stream *stream = NULL;
  int32_t *ids = NULL;
  float *logits = NULL;
  int count = 0, ok = 0;
  int status = clttt_tokenizer_load(&tok, dir);
  if (status == CLTTT_SUCCESS)
    status = clttt_model_load(&model, device, dir, NULL);
  if (status == CLTTT_SUCCESS)
    status = clttt_tokenizer_encode(tok, "Once upon a time", 1, &ids, &count);
  const int story_tokens = 80;
  clttt_session_params params = clttt_session_default_params();
  params.context = count + story_tokens;
  params.logits = CLTTT_LOGITS_LAST;
  if (status == CLTTT_SUCCESS)
    status = clttt_session_create(&session, model, &params);
  if (status == CLTTT_SUCCESS)
    status = clttt_tokenizer_stream_create(&stream, tok);
  const int vocab = model ? clttt_model_get_config(model)->vocab_size : 0;
  logits = malloc((size_t)(vocab > 0 ? vocab : 1) * sizeof *logits);
  if (status != CLTTT_SUCCESS || !logits) {
    cli_report("loading stories260K", status ? status : CLTTT_ERROR_OUT_OF_HOST_MEMORY);
    goto done;
  }
  printf("1. stories260K (a trained 260K-parameter TinyStories model, MIT), greedy:\n   ");
  const char *text = NULL;
  for (int i = 0; i < count; i++)
    if (clttt_tokenizer_stream_put(stream, ids[i], &text) == CLTTT_SUCCESS)
      fputs(text, stdout);
  status = clttt_session_feed(session, ids, count, logits, 1);
  for (int produced = 0; status == CLTTT_SUCCESS && produced < story_tokens - 1; produced++) {
    int32_t token = (int32_t)argmax(logits, vocab);
    if (token == clttt_tokenizer_eos(tok))
      break;
    if (clttt_tokenizer_stream_put(stream, token, &text) == CLTTT_SUCCESS)
      fputs(text, stdout);
    fflush(stdout);
    status = clttt_session_feed(session, &token, 1, logits, 1);
  }
  if (clttt_tokenizer_stream_flush(stream, &text) == CLTTT_SUCCESS)
    fputs(text, stdout);
  printf("\n");
  if (status != CLTTT_SUCCESS) {
    cli_report("telling the story", status);
    goto done;
  }
  ok = 1;
done:
  free(logits);
  free(ids);
  clttt_tokenizer_stream_free(stream);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_tokenizer_free(tok);
  return ok;
}

/* SPEC.md section 7: matrix FLOPs per token of a causal prefill of n tokens,
 * for the whole model, and what its TTT layers add. */
static void cost_model(const clttt_config *c, int n, double *base, double *extra) {
  const double d = c->hidden_size, f = c->intermediate_size;
  const double q_dim = (double)c->num_attention_heads * c->head_dim;
  const double kv_dim = (double)c->num_key_value_heads * c->head_dim;
  const double layer = 2 * d * (q_dim + 2 * kv_dim) + 2 * q_dim * d + 4 * q_dim * (n / 2.0) + 6 * d * f;
  *base = c->num_hidden_layers * layer + 2 * d * c->vocab_size;
  *extra = c->ttt_layer_count * (2 * d * f + (c->ttt_proj ? 2 * d * d : 0) + 10 * d);
}


/* Prefills `tokens` in a new session; logits of every row into `logits`. */
static int prefill(clttt_model *model, int ttt, const int32_t *tokens, int n, int chunk, float *logits,
                   double *seconds, clttt_session **session_out) {
  clttt_session *session = NULL;
  clttt_session_params params = clttt_session_default_params();
  params.context = n + 64;
  params.ttt = ttt;
  params.chunk = chunk;
  int status = clttt_session_create(&session, model, &params);
  double start = cli_now_seconds();
  /* Pieces of 512 tokens so the user sees progress on slow devices. */
  for (int done = 0; done < n && status == CLTTT_SUCCESS; done += 512) {
    int piece = n - done < 512 ? n - done : 512;
    status = clttt_session_feed(session, tokens + done, piece, logits + (size_t)done * (size_t)clttt_model_get_config(model)->vocab_size, 0);
    fprintf(stderr, "\r  prefill with TTT %-3s %6d / %d tokens", ttt ? "on" : "off", done + piece, n);
  }
  fprintf(stderr, "\n");
  *seconds = cli_now_seconds() - start;
  if (status != CLTTT_SUCCESS) {
    cli_report("prefill", status);
    clttt_session_free(session);
    return 0;
  }
  *session_out = session;
  return 1;
}

int command_demo(int argc, char **argv) {
  const char *device_selector = NULL, *story_model = NULL;
  int n = 1024, decode = 16, chunk = 512, hidden = 1024;
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (cli_option_value(argc, argv, &i, "--device", &value, &missing)) {
      device_selector = value;
    } else if (cli_option_value(argc, argv, &i, "--story-model", &value, &missing)) {
      story_model = value;
    } else if (cli_option_value(argc, argv, &i, "--hidden", &value, &missing)) {
      if (!missing && (!parse_int(value, "--hidden", 128, &hidden) || hidden % 128 != 0 || hidden > 8192)) {
        fprintf(stderr, "clttt demo: --hidden must be a multiple of 128 up to 8192\n");
        return 2;
      }
    } else if (cli_option_value(argc, argv, &i, "--tokens", &value, &missing)) {
      if (!missing && !parse_int(value, "--tokens", 1, &n))
        return 2;
    } else if (cli_option_value(argc, argv, &i, "--decode", &value, &missing)) {
      if (!missing && !parse_int(value, "--decode", 0, &decode))
        return 2;
    } else if (cli_option_value(argc, argv, &i, "--chunk", &value, &missing)) {
      if (!missing && !parse_int(value, "--chunk", 1, &chunk))
        return 2;
    } else {
      fprintf(stderr, "clttt demo: unknown option '%s' (see --help)\n", argv[i]);
      return 2;
    }
    if (missing)
      return 2;
  }

  clttt_device *device = NULL;
  int status = clttt_device_open(&device, device_selector);
  if (status != CLTTT_SUCCESS) {
    cli_report("opening an OpenCL device", status);
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  printf("clttt demo on %s (%s, %s)\n\n", info->name, info->platform, info->type);

  char story_buffer[4200];
  const char *story_dir = find_story_model(story_model, story_buffer, sizeof story_buffer);
  if (!story_dir)
    printf("1. (stories260K not found: give --story-model DIR or set CLTTT_DATA_DIR)\n");
  else if (!tell_story(device, story_dir)) {
    clttt_device_close(device);
    return 1;
  }
  printf("\n");

  /* Qwen3-style, 8 layers of which 0 and 4 learn while reading, heads of
   * 128 as in Qwen3 and LLaMA-3. */
  clttt_config config;
  status = clttt_synthetic_config(&config, hidden, 3 * hidden, 8, hidden / 128, hidden / 256 > 0 ? hidden / 256 : 1,
                                  128, 4096, n + 64, 4, chunk, 1e-3f);
  if (status != CLTTT_SUCCESS) {
    cli_report("configuring the synthetic model", status);
    clttt_device_close(device);
    return 1;
  }
  printf("2. a SYNTHETIC Qwen3-style model (seeded random weights, not a trained model): d=%d f=%d,\n"
         "   %d layers, %d heads / %d kv heads of %d, vocab %d, TTT layers 0 and 4 (chunk C=%d, eta=%g)\n",
         config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
         config.num_key_value_heads, config.head_dim, config.vocab_size, chunk, (double)config.ttt_lr);
  clttt_model *model = NULL;
  status = clttt_model_synthetic(&model, device, &config, NULL, 2026);
  if (status != CLTTT_SUCCESS) {
    cli_report("building the synthetic model", status);
    clttt_config_free(&config);
    clttt_device_close(device);
    return 1;
  }
  clttt_session_params session_params = clttt_session_default_params();
  session_params.context = n + 64;
  session_params.chunk = chunk;
  printf("   memory: %.1f MiB of weights, %.1f MiB per session of %d tokens with TTT state\n",
         (double)clttt_model_weight_bytes(model) / 1048576.0,
         (double)clttt_estimate_session_bytes(&config, &session_params) / 1048576.0, n + 64);

  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  const size_t vocab = (size_t)config.vocab_size;
  float *with_ttt = malloc((size_t)n * vocab * sizeof(float)), *without = malloc((size_t)n * vocab * sizeof(float));
  int exit_code = 1;
  clttt_session *ttt_session = NULL, *base_session = NULL;
  if (!tokens || !with_ttt || !without) {
    fprintf(stderr, "clttt demo: out of host memory for %d tokens\n", n);
    goto done;
  }
  uint64_t state = 42;
  for (int i = 0; i < n; i++) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    tokens[i] = (int32_t)((state >> 33) % vocab);
  }
  fflush(stdout);
  /* The first run also builds kernels (and CLBlast's), so warm up first. */
  fprintf(stderr, "  building kernels for this device (cached after the first run)...\n");
  double seconds_warmup = 0, seconds_on = 0, seconds_off = 0;
  clttt_session *warmup = NULL;
  if (!prefill(model, 1, tokens, n < chunk + 8 ? n : chunk + 8, chunk, with_ttt, &seconds_warmup, &warmup))
    goto done;
  clttt_session_free(warmup);
  /* On, off, on, off, the faster of each pair counting: a shared machine
   * drifts by more than TTT costs, and alternating cancels the drift. */
  for (int round = 0; round < 2; round++) {
    double on = 0, off = 0;
    clttt_session_free(ttt_session);
    clttt_session_free(base_session);
    ttt_session = base_session = NULL;
    if (!prefill(model, 1, tokens, n, chunk, with_ttt, &on, &ttt_session) ||
        !prefill(model, 0, tokens, n, chunk, without, &off, &base_session))
      goto done;
    seconds_on = round == 0 || on < seconds_on ? on : seconds_on;
    seconds_off = round == 0 || off < seconds_off ? off : seconds_off;
  }

  double first_chunk = 0, later = 0;
  for (size_t i = 0; i < (size_t)n * vocab; i++) {
    double difference = fabs((double)with_ttt[i] - (double)without[i]);
    if (!(difference == difference)) {
      fprintf(stderr, "clttt demo: NaN in the logits at row %zu\n", i / vocab);
      goto done;
    }
    if (i < (size_t)chunk * vocab)
      first_chunk = difference > first_chunk ? difference : first_chunk;
    else
      later = difference > later ? difference : later;
  }
  double base_flops = 0, extra_flops = 0;
  cost_model(&config, n, &base_flops, &extra_flops);
  printf("   prefill of %d tokens: TTT on %.0f tokens/s, off %.0f tokens/s: TTT costs %+.1f%% wall time;\n"
         "   the cost model (SPEC.md section 7) predicts %+.1f%% FLOPs: the update (2df per token) and the\n"
         "   target projection (2d^2) in 2 of 8 layers, against attention, MLP and LM head in all of them\n",
         n, n / seconds_on, n / seconds_off, 100.0 * (seconds_on - seconds_off) / seconds_off,
         100.0 * extra_flops / base_flops);
  printf("   apply-then-update: logits with TTT on vs off differ by at most %.2g in the first chunk\n"
         "   (same weights) and by up to %.2g after it (the fast weights moved)\n",
         first_chunk, later);

  if (decode > 0) {
    int32_t token = (int32_t)argmax(with_ttt + (size_t)(n - 1) * vocab, (int)vocab);
    float *last = malloc(vocab * sizeof *last);
    double start = cli_now_seconds();
    for (int i = 0; i < decode && last; i++) {
      status = clttt_session_feed(ttt_session, &token, 1, last, 1);
      if (status != CLTTT_SUCCESS) {
        cli_report("decoding", status);
        free(last);
        goto done;
      }
      token = (int32_t)argmax(last, (int)vocab);
    }
    double seconds = cli_now_seconds() - start;
    /* Synthetic weights produce meaningless tokens, so only the speed is shown. */
    printf("\n3. decode with TTT on: %d tokens at %.1f tokens/s at a context of %d tokens\n", decode,
           decode / seconds, n);
    free(last);
  }
  printf("\ndone. Run a real checkpoint with 'clttt generate -m DIR -p TEXT' (see clttt --help).\n");
  exit_code = 0;
done:
  clttt_session_free(ttt_session);
  clttt_session_free(base_session);
  free(tokens);
  free(with_ttt);
  free(without);
  clttt_model_free(model);
  clttt_config_free(&config);
  clttt_device_close(device);
  return exit_code;
}
