/* Layer split benchmark: prefill and decode tokens/s of one synthetic model
 * on one device and split over two (--devices A,B), the bytes of
 * activations moved per token, and the cost of moving them (the crossing
 * itself, timed alone: a download and an upload of n x d floats, as
 * forward.c does it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "session.h"

static void help(void) {
  printf("usage: bench_split [--quick] [--devices A,B] [--context N] [--decode N] [--repeats N]\n"
         "Prefill and decode tokens/s of a synthetic Qwen3-style model (TTT on) on device A\n"
         "alone and split half and half over A and B; bytes moved per token and the time the\n"
         "crossings take. With PoCL: POCL_DEVICES=\"pthread pthread\" gives two CPU devices.\n"
         "  --quick        d=256, f=768, 12 layers (TTT layers 0, 4, 8), context 512\n"
         "                 (default: d=512, f=1536, 24 layers (0, 4, ..., 20), context 1024)\n"
         "  --devices A,B  device selectors (default 0,1; 0,0 opens device 0 twice)\n"
         "  --context N    prefill tokens\n"
         "  --decode N     decode steps (default 32)\n"
         "  --repeats N    runs per setting; the fastest counts (default 3)\n");
}

typedef struct {
  double prefill_seconds, decode_seconds;
  uint64_t prefill_bytes_moved, decode_bytes_moved;
} run_result;

static int fail(const char *what, int status) {
  fprintf(stderr, "bench_split: %s: %s: %s\n", what, clttt_status_name(status), clttt_last_error());
  return 0;
}

static int run(clttt_model *model, int n, int decode_steps, run_result *result) {
  const clttt_config *config = clttt_model_get_config(model);
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  float *logits = malloc((size_t)config->vocab_size * sizeof *logits);
  if (!tokens || !logits)
    return 0;
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 7919 + 17) % config->vocab_size);
  clttt_session_params params = clttt_session_default_params();
  params.context = n + decode_steps;
  params.logits = CLTTT_LOGITS_LAST;
  clttt_session *session = NULL;
  int status = clttt_session_create(&session, model, &params);
  double start = now_seconds();
  if (status == CLTTT_SUCCESS)
    status = clttt_session_feed(session, tokens, n, logits, 1);
  result->prefill_seconds = now_seconds() - start;
  result->prefill_bytes_moved = clttt_session_bytes_moved(session);
  start = now_seconds();
  for (int i = 0; i < decode_steps && status == CLTTT_SUCCESS; i++)
    status = clttt_session_feed(session, &tokens[i], 1, logits, 1);
  result->decode_seconds = now_seconds() - start;
  result->decode_bytes_moved = clttt_session_bytes_moved(session) - result->prefill_bytes_moved;
  clttt_session_free(session);
  free(tokens);
  free(logits);
  return status == CLTTT_SUCCESS || fail("running", status);
}

/* Seconds of one crossing of `rows` x d floats from a to b, best of 20. */
static double crossing_seconds(clttt_device *a, clttt_device *b, size_t rows, size_t d) {
  const size_t bytes = rows * d * sizeof(float);
  float *host = calloc(rows * d, sizeof *host);
  cl_mem source = NULL, target = NULL;
  double best = 1e30;
  if (host && runtime_alloc(a, bytes, "crossing source", &source) == CLTTT_SUCCESS &&
      runtime_alloc(b, bytes, "crossing target", &target) == CLTTT_SUCCESS &&
      runtime_zero(a, source, 0, bytes, "crossing source") == CLTTT_SUCCESS)
    for (int repeat = 0; repeat < 20; repeat++) {
      double start = now_seconds();
      if (runtime_download(a, source, 0, bytes, host, "crossing") != CLTTT_SUCCESS ||
          runtime_upload(b, target, 0, bytes, host, "crossing") != CLTTT_SUCCESS)
        break;
      double seconds = now_seconds() - start;
      best = seconds < best ? seconds : best;
    }
  runtime_release(&source);
  runtime_release(&target);
  free(host);
  return best;
}

static void keep_best(run_result *best, const run_result *r) {
  if (r->prefill_seconds < best->prefill_seconds)
    best->prefill_seconds = r->prefill_seconds;
  if (r->decode_seconds < best->decode_seconds)
    best->decode_seconds = r->decode_seconds;
  best->prefill_bytes_moved = r->prefill_bytes_moved;
  best->decode_bytes_moved = r->decode_bytes_moved;
}

int main(int argc, char **argv) {
  int quick = 0, context = 0, decode_steps = 32, repeats = 3;
  const char *selectors = "0,1";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help();
      return 0;
    } else if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc) {
      selectors = argv[++i];
    } else if (strcmp(argv[i], "--context") == 0 && i + 1 < argc) {
      context = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--decode") == 0 && i + 1 < argc) {
      decode_steps = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = atoi(argv[++i]);
    } else {
      fprintf(stderr, "bench_split: unknown or incomplete option '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  char first[128], second[128];
  const char *comma = strchr(selectors, ',');
  if (!comma || comma == selectors || (size_t)(comma - selectors) >= sizeof first || strlen(comma + 1) >= sizeof second ||
      !comma[1] || repeats < 1 || decode_steps < 1 || context < 0) {
    fprintf(stderr, "bench_split: --devices expects two selectors A,B; counts must be positive\n");
    return 2;
  }
  snprintf(first, sizeof first, "%.*s", (int)(comma - selectors), selectors);
  snprintf(second, sizeof second, "%s", comma + 1);
  if (context == 0)
    context = quick ? 512 : 1024;
  const int d = quick ? 256 : 512, f = 3 * d, layers = quick ? 12 : 24;

  /* One device for the single run, two more for the split: each model has
   * its devices' memory to itself. */
  clttt_device *alone = NULL, *pair[2] = {NULL, NULL};
  int status = clttt_device_open(&alone, first);
  if (status == CLTTT_SUCCESS)
    status = clttt_device_open(&pair[0], first);
  if (status == CLTTT_SUCCESS)
    status = clttt_device_open(&pair[1], second);
  if (status != CLTTT_SUCCESS)
    return !fail("opening the devices", status);
  clttt_config config;
  clttt_synthetic_config(&config, d, f, layers, d / 64, d / 128, 64, 8192, context + decode_steps + 8, 4, 256, 1e-3f);
  clttt_model *single = NULL, *split = NULL;
  clttt_model_params params = clttt_model_default_params();
  params.devices = pair;
  params.device_count = 2;
  const int halves[2] = {layers / 2, layers - layers / 2};
  params.split = halves;
  status = clttt_model_synthetic(&single, alone, &config, NULL, 7);
  if (status == CLTTT_SUCCESS)
    status = clttt_model_synthetic(&split, NULL, &config, &params, 7);
  if (status != CLTTT_SUCCESS)
    return !fail("building the models", status);

  const clttt_device_info *a = clttt_device_get_info(pair[0]), *b = clttt_device_get_info(pair[1]);
  fprintf(stderr, "bench_split: d=%d f=%d, %d layers (TTT every 4th), prefill %d, decode %d; warming up...\n", d, f,
          layers, context, decode_steps);
  run_result warm;
  if (!run(single, 300, 4, &warm) || !run(split, 300, 4, &warm))
    return 1;
  run_result best[2] = {{1e30, 1e30, 0, 0}, {1e30, 1e30, 0, 0}};
  for (int repeat = 0; repeat < repeats; repeat++)
    for (int k = 0; k < 2; k++) {
      /* Alternate which goes first. */
      int which = (repeat + k) % 2;
      run_result r;
      if (!run(which ? split : single, context, decode_steps, &r))
        return 1;
      keep_best(&best[which], &r);
    }
  /* The crossings of the prefill (batches of 512 rows at most) and of one
   * decoded token, timed alone. */
  const int batch = context < 512 ? context : 512, batches = (context + batch - 1) / batch;
  const double prefill_crossing = crossing_seconds(pair[0], pair[1], (size_t)batch, (size_t)d) * batches;
  const double decode_crossing = crossing_seconds(pair[0], pair[1], 1, (size_t)d);

  printf("devices: A = %s (%s), B = %s (%s)\n", a->name, a->platform, b->name, b->platform);
  printf("model: synthetic Qwen3-style d=%d f=%d, %d layers, TTT layers every 4th, C=256; split %d + %d\n\n", d, f,
         layers, halves[0], halves[1]);
  printf("%-12s %16s %16s %18s\n", "", "prefill tok/s", "decode tok/s", "bytes moved/token");
  printf("%-12s %16.1f %16.2f %18d\n", "A alone", context / best[0].prefill_seconds,
         decode_steps / best[0].decode_seconds, 0);
  printf("%-12s %16.1f %16.2f %18.0f\n", "A + B split", context / best[1].prefill_seconds,
         decode_steps / best[1].decode_seconds, (double)best[1].prefill_bytes_moved / context);
  printf("\ncrossings timed alone: prefill %.3f ms (%.2f%% of the split prefill), decode %.1f us per token "
         "(%.2f%% of a split decode step)\n",
         1e3 * prefill_crossing, 100.0 * prefill_crossing / best[1].prefill_seconds, 1e6 * decode_crossing,
         100.0 * decode_crossing / (best[1].decode_seconds / decode_steps));
  printf("decode moved %.0f bytes per token\n", (double)best[1].decode_bytes_moved / decode_steps);
  clttt_model_free(single);
  clttt_model_free(split);
  clttt_config_free(&config);
  clttt_device_close(alone);
  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
  return 0;
}
