/* clttt demo: the main job on a built-in default, with no files. A small
 * Qwen3-style model with TTT layers and synthetic (seeded random) weights
 * reads a long random prompt with TTT on and off, then decodes a few tokens,
 * and says what it did and how fast. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf("usage: clttt demo [--device SEL] [--tokens N] [--decode N] [--chunk C]\n"
         "Builds a small Qwen3-style model with In-Place TTT layers in memory, with\n"
         "SYNTHETIC seeded random weights (its text means nothing; its speed is that\n"
         "of a real model of this shape), prefills N random tokens with TTT on and\n"
         "with TTT off, checks that the two agree on the first chunk and differ after\n"
         "it, and decodes a few tokens greedily with TTT on.\n\n"
         "  --device SEL   OpenCL device: index or name substring (see 'clttt devices')\n"
         "  --tokens N     prefill length (default 2048)\n"
         "  --decode N     tokens to decode after the prefill (default 16)\n"
         "  --chunk C      TTT chunk size (default 256)\n");
}

static int argmax(const float *values, int count) {
  int best = 0;
  for (int i = 1; i < count; i++)
    if (values[i] > values[best])
      best = i;
  return best;
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
  const char *device_selector = NULL;
  int n = 2048, decode = 16, chunk = 256;
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (cli_option_value(argc, argv, &i, "--device", &value, &missing)) {
      device_selector = value;
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
  printf("clttt demo on %s (%s, %s)\n", info->name, info->platform, info->type);

  /* Qwen3-style, 8 layers of which 0 and 4 learn while reading. */
  clttt_config config;
  status = clttt_synthetic_config(&config, 256, 768, 8, 8, 4, 32, 4096, n + 64, 4, chunk, 1e-3f);
  if (status != CLTTT_SUCCESS) {
    cli_report("configuring the synthetic model", status);
    clttt_device_close(device);
    return 1;
  }
  printf("model: SYNTHETIC Qwen3-style weights (seeded random, not a trained model): d=%d f=%d, %d layers,\n"
         "       %d heads / %d kv heads of %d, vocab %d, TTT layers 0 and 4 (chunk C=%d, eta=%g)\n",
         config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
         config.num_key_value_heads, config.head_dim, config.vocab_size, chunk, (double)config.ttt_lr);
  clttt_model *model = NULL;
  status = clttt_model_synthetic(&model, device, &config, 2026);
  if (status != CLTTT_SUCCESS) {
    cli_report("building the synthetic model", status);
    clttt_config_free(&config);
    clttt_device_close(device);
    return 1;
  }
  clttt_session_params session_params = clttt_session_default_params();
  session_params.context = n + 64;
  session_params.chunk = chunk;
  printf("memory: %.1f MiB of weights, %.1f MiB per session of %d tokens with TTT state\n",
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
  if (!prefill(model, 1, tokens, n, chunk, with_ttt, &seconds_on, &ttt_session) ||
      !prefill(model, 0, tokens, n, chunk, without, &seconds_off, &base_session))
    goto done;

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
  printf("prefill of %d tokens: TTT on %.0f tokens/s, TTT off %.0f tokens/s (TTT costs %+.1f%% wall time)\n", n,
         n / seconds_on, n / seconds_off, 100.0 * (seconds_on - seconds_off) / seconds_off);
  printf("apply-then-update: logits with TTT on vs off differ by at most %.2g in the first chunk\n"
         "                   (same weights) and by up to %.2g after it (the fast weights moved)\n",
         first_chunk, later);

  if (decode > 0) {
    int32_t token = (int32_t)argmax(with_ttt + (size_t)(n - 1) * vocab, (int)vocab);
    float *last = malloc(vocab * sizeof *last);
    printf("greedy decode with TTT on, %d tokens:", decode);
    double start = cli_now_seconds();
    for (int i = 0; i < decode && last; i++) {
      printf(" %d", token);
      fflush(stdout);
      status = clttt_session_feed(ttt_session, &token, 1, last, 1);
      if (status != CLTTT_SUCCESS) {
        printf("\n");
        cli_report("decoding", status);
        free(last);
        goto done;
      }
      token = (int32_t)argmax(last, (int)vocab);
    }
    double seconds = cli_now_seconds() - start;
    printf("\ndecode: %.1f tokens/s at a context of %d tokens\n", decode / seconds, n);
    free(last);
  }
  printf("done. Run a real checkpoint with 'clttt generate -m DIR -p TEXT' (see clttt --help).\n");
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
