/* End-to-end benchmarks on a synthetic model (issue: chunk size, TTT
 * overhead, roofline):
 *   prefill  tokens/s with TTT on vs off at several context lengths;
 *   decode   tokens/s at batch 1 against the memory-bandwidth roofline
 *            (weight bytes read per token / copy bandwidth of this run);
 *   memory   peak device memory of each run against the cost model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_clock.h"
#include "ops.h"
#include "stream_bandwidth.h"

static void help(void) {
  printf("usage: bench_model [--quick] [--device SEL] [--contexts N,N,...] [--decode N] [--json]\n"
         "Prefill tokens/s with TTT on vs off, decode tokens/s against the bandwidth\n"
         "roofline, and peak device memory against the cost model, on a synthetic\n"
         "Qwen3-style model of 36 layers, 7 of them TTT layers (0, 5, ..., 30).\n"
         "  --quick         d=256, f=768, contexts 512,1024 (under two minutes on 2 CPU cores)\n"
         "                  (default: d=512, f=1536, contexts 1024,2048,4096)\n"
         "  --device SEL    OpenCL device (index or name substring)\n"
         "  --contexts L    prefill lengths\n"
         "  --decode N      decode steps (default 32)\n"
         "  --repeats N     prefill runs per setting, interleaved (1-64; default 3): the fastest of\n"
         "                  each, and the median of the pairs' ratios\n"
         "  --kv f16|f32    KV cache element type (default f16, the library's)\n"
         "  --weights T     weight matrices' element type: f32 (default), bf16, f16\n"
         "  --profile       after the timed runs, one prefill of the first context with TTT on and\n"
         "                  one with TTT off under the device's per-op profile, both tables on stderr\n"
         "  --json          one JSON object on stdout instead of the table\n");
}

typedef struct {
  int context;
  double seconds_on, seconds_off;   /* the fastest run of each */
  double pair_overhead;             /* the median over pairs of on / off - 1 */
  double flop_overhead;             /* the cost model's extra FLOPs of TTT on */
  uint64_t peak_on, peak_off, model_on, model_off;
} prefill_result;

static int compare_doubles(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Matrix FLOPs of a prefill of n tokens by SPEC.md section 7: per token and
 * layer the attention projections, the scores and values over the causal
 * half of the context on average, and the MLP; a TTT layer adds its update,
 * projection and conv for the tokens of whole chunks (a partial chunk waits)
 * when TTT is on; the LM head runs once (last logit). */
static double prefill_flops(const clttt_config *c, int n, int ttt) {
  const double d = c->hidden_size, f = c->intermediate_size, tokens = n;
  const double q = (double)c->num_attention_heads * c->head_dim, kv = (double)c->num_key_value_heads * c->head_dim;
  double per_layer = 2.0 * d * (q + 2.0 * kv) + 2.0 * q * d + 2.0 * q * tokens + 6.0 * d * f;
  double flops = tokens * c->num_hidden_layers * per_layer + 2.0 * d * c->vocab_size;
  if (ttt) {
    int layers = 0;
    for (int i = 0; i < c->ttt_layer_count; i++)
      layers += c->ttt_layers[i] < c->num_hidden_layers;
    const double learned = c->ttt_chunk > 0 ? (double)(n / c->ttt_chunk * c->ttt_chunk) : 0.0;
    flops += learned * layers * (2.0 * d * f + (c->ttt_proj ? 2.0 * d * d : 0.0) + 10.0 * d);
  }
  return flops;
}

static clttt_kv_type kv_type = CLTTT_KV_F16;
static clttt_weight_type weight_type = CLTTT_WEIGHTS_F32;

static int run_prefill(clttt_device *device, clttt_model *model, int ttt, int n, double *seconds, uint64_t *peak,
                       uint64_t *predicted) {
  const clttt_config *config = clttt_model_get_config(model);
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  float *logits = malloc((size_t)config->vocab_size * sizeof *logits);
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 7919 + 17) % config->vocab_size);
  clttt_session *session = NULL;
  uint64_t before = 0;
  clttt_device_memory(device, &before, NULL, 1);
  clttt_session_params params = clttt_session_default_params();
  params.context = n;
  params.ttt = ttt;
  params.logits = CLTTT_LOGITS_LAST;
  params.kv_type = kv_type;
  int status = clttt_session_create(&session, model, &params);
  double start = now_seconds();
  if (status == CLTTT_SUCCESS)
    status = clttt_session_feed(session, tokens, n, logits, 1);
  *seconds = now_seconds() - start;
  clttt_device_memory(device, NULL, peak, 0);
  *predicted = clttt_model_weight_bytes(model) + clttt_estimate_session_bytes(config, &params);
  clttt_session_free(session);
  free(tokens);
  free(logits);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_model: prefill failed: %s: %s\n", clttt_status_name(status), clttt_last_error());
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  int quick = 0, json = 0, profile = 0, decode_steps = 32, repeats = 3;
  const char *selector = NULL, *contexts_text = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help();
      return 0;
    } else if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
      if (clttt_weight_type_parse(argv[++i], &weight_type) != CLTTT_SUCCESS || weight_type == CLTTT_WEIGHTS_AUTO) {
        fprintf(stderr, "bench_model: --weights expects f32, bf16 or f16\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--kv") == 0 && i + 1 < argc) {
      i++;
      if (strcmp(argv[i], "f32") != 0 && strcmp(argv[i], "f16") != 0) {
        fprintf(stderr, "bench_model: --kv expects f16 or f32\n");
        return 2;
      }
      kv_type = strcmp(argv[i], "f32") == 0 ? CLTTT_KV_F32 : CLTTT_KV_F16;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--profile") == 0) {
      profile = 1;
    } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      selector = argv[++i];
    } else if (strcmp(argv[i], "--contexts") == 0 && i + 1 < argc) {
      contexts_text = argv[++i];
    } else if (strcmp(argv[i], "--decode") == 0 && i + 1 < argc) {
      decode_steps = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = atoi(argv[++i]);
      if (repeats < 1 || repeats > 64) {
        fprintf(stderr, "bench_model: --repeats expects a count from 1 to 64\n");
        return 2;
      }
    } else {
      fprintf(stderr, "bench_model: unknown or incomplete option '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  int contexts[16], context_count = 0;
  const char *text = contexts_text ? contexts_text : quick ? "512,1024" : "1024,2048,4096";
  for (const char *c = text; *c && context_count < 16;) {
    char *end = NULL;
    long value = strtol(c, &end, 10);
    if (end == c || value < 1) {
      fprintf(stderr, "bench_model: bad --contexts '%s'\n", text);
      return 2;
    }
    contexts[context_count++] = (int)value;
    c = *end == ',' ? end + 1 : end;
  }
  int longest = 0;
  for (int i = 0; i < context_count; i++)
    longest = contexts[i] > longest ? contexts[i] : longest;

  clttt_device *device = NULL;
  int status = clttt_device_open(&device, selector);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_model: %s: %s\n", clttt_status_name(status), clttt_last_error());
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  const int d = quick ? 256 : 512, f = 3 * d, chunk = quick ? 256 : 512;
  clttt_config config;
  /* TTT in 7 of the 36 layers (0, 5, ..., 30), as in the paper's models. */
  static int ttt_layers[] = {0, 5, 10, 15, 20, 25, 30};
  clttt_synthetic_config(&config, d, f, 36, d / 64, d / 128, 64, 8192, longest + decode_steps + 8, 0, chunk, 1e-3f);
  config.ttt_mode = 1;
  config.ttt_layers = ttt_layers;
  config.ttt_layer_count = 7;
  clttt_model *model = NULL;
  clttt_model_params model_params = clttt_model_default_params();
  model_params.weights = weight_type;
  status = clttt_model_synthetic(&model, device, &config, &model_params, 7);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_model: building the model: %s: %s\n", clttt_status_name(status), clttt_last_error());
    clttt_device_close(device);
    return 1;
  }
  fprintf(stderr, "bench_model on %s (%s): d=%d f=%d, 36 layers, 7 TTT layers, C=%d; warming up...\n", info->name,
          info->platform, d, f, chunk);
  double warmup = 0;
  uint64_t peak = 0, predicted = 0;
  if (!run_prefill(device, model, 1, chunk + 8, &warmup, &peak, &predicted) ||
      !run_prefill(device, model, 0, 16, &warmup, &peak, &predicted))
    return 1;

  prefill_result results[16];
  for (int i = 0; i < context_count; i++) {
    prefill_result *r = &results[i];
    r->context = contexts[i];
    fprintf(stderr, "  prefill %d tokens (%d x TTT on and off, alternating which goes first; the fastest counts)...\n", r->context,
            repeats);
    r->seconds_on = r->seconds_off = 1e30;
    double pairs[64];
    for (int repeat = 0; repeat < repeats; repeat++) {
      double on = 0, off = 0;
      /* Alternate which goes first: on a shared machine the order alone
       * biased the overhead by several percent. */
      int ok = repeat % 2 == 0
                   ? run_prefill(device, model, 1, r->context, &on, &r->peak_on, &r->model_on) &&
                         run_prefill(device, model, 0, r->context, &off, &r->peak_off, &r->model_off)
                   : run_prefill(device, model, 0, r->context, &off, &r->peak_off, &r->model_off) &&
                         run_prefill(device, model, 1, r->context, &on, &r->peak_on, &r->model_on);
      if (!ok)
        return 1;
      r->seconds_on = on < r->seconds_on ? on : r->seconds_on;
      r->seconds_off = off < r->seconds_off ? off : r->seconds_off;
      pairs[repeat] = on / off - 1.0;
    }
    /* Each pair ran in the same minute, so its ratio cancels the machine's
     * slow drift that the two fastest runs, taken from different minutes,
     * do not. */
    qsort(pairs, (size_t)repeats, sizeof *pairs, compare_doubles);
    r->pair_overhead = repeats % 2 ? pairs[repeats / 2] : 0.5 * (pairs[repeats / 2 - 1] + pairs[repeats / 2]);
    r->flop_overhead = prefill_flops(&config, r->context, 1) / prefill_flops(&config, r->context, 0) - 1.0;
  }

  /* Where TTT on spends its extra time: the same prefill under the
   * profile (which waits for every op, so slower than the runs above). */
  for (int ttt = 1; profile && ttt >= 0; ttt--) {
    static char table[16384];
    double seconds = 0;
    uint64_t peak_bytes = 0, predicted_bytes = 0;
    if (clttt_device_set_profiling(device, 1) != CLTTT_SUCCESS ||
        !run_prefill(device, model, ttt, contexts[0], &seconds, &peak_bytes, &predicted_bytes) ||
        clttt_device_profile_report(device, table, sizeof table, 1) != CLTTT_SUCCESS) {
      fprintf(stderr, "bench_model: the profiled prefill failed: %s\n", clttt_last_error());
      return 1;
    }
    clttt_device_set_profiling(device, 0);
    fprintf(stderr, "\nprofile of a %d-token prefill with TTT %s (%.3f s under the profile):\n%s", contexts[0],
            ttt ? "on" : "off", seconds, table);
  }

  /* Decode at batch 1 after a short prompt, TTT on. */
  clttt_session *session = NULL;
  float *logits = malloc((size_t)config.vocab_size * sizeof *logits);
  int32_t token = 1;
  clttt_session_params decode_params = clttt_session_default_params();
  decode_params.context = decode_steps + 8;
  decode_params.logits = CLTTT_LOGITS_LAST;
  decode_params.kv_type = kv_type;
  status = clttt_session_create(&session, model, &decode_params);
  for (int i = 0; i < 4 && status == CLTTT_SUCCESS; i++) /* warm the decode path */
    status = clttt_session_feed(session, &token, 1, logits, 1);
  double start = now_seconds();
  for (int i = 0; i < decode_steps && status == CLTTT_SUCCESS; i++)
    status = clttt_session_feed(session, &token, 1, logits, 1);
  double decode_seconds = now_seconds() - start;
  clttt_session_free(session);
  free(logits);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "bench_model: decode failed: %s: %s\n", clttt_status_name(status), clttt_last_error());
    return 1;
  }
  /* The roofline is our copy kernel's rate (cl/elementwise.cl copy_floats,
   * the device's tuned vector width and group size: read + write of each
   * byte, best of five); the read stream is measured alongside. */
  double bandwidth = 0, read_rate = 0;
  if (!stream_bandwidths(device, &bandwidth, &read_rate)) {
    fprintf(stderr, "bench_model: measuring copy bandwidth failed: %s\n", clttt_last_error());
    return 1;
  }
  /* Per decoded token every weight is read once, except that only one row of
   * an untied embedding table is (ours is tied: it is the LM head too). */
  double bytes_per_token = (double)clttt_model_weight_bytes(model);
  double decode_rate = decode_steps / decode_seconds, roofline = bandwidth / bytes_per_token;

  if (json) {
    printf("{\"device\": \"%s\", \"platform\": \"%s\", \"d\": %d, \"f\": %d, \"layers\": 36, \"ttt_layers\": 7, "
           "\"chunk\": %d, \"prefill\": [",
           info->name, info->platform, d, f, chunk);
    for (int i = 0; i < context_count; i++)
      printf("%s{\"context\": %d, \"tokens_per_second_ttt_on\": %.1f, \"tokens_per_second_ttt_off\": %.1f, "
             "\"overhead\": %.4f, \"overhead_median_pair\": %.4f, \"flop_overhead\": %.4f, "
             "\"peak_bytes_ttt_on\": %llu, \"model_bytes_ttt_on\": %llu, "
             "\"peak_bytes_ttt_off\": %llu, \"model_bytes_ttt_off\": %llu}",
             i ? ", " : "", results[i].context, results[i].context / results[i].seconds_on,
             results[i].context / results[i].seconds_off, results[i].seconds_on / results[i].seconds_off - 1.0,
             results[i].pair_overhead, results[i].flop_overhead, (unsigned long long)results[i].peak_on,
             (unsigned long long)results[i].model_on,
             (unsigned long long)results[i].peak_off, (unsigned long long)results[i].model_off);
    printf("], \"decode\": {\"tokens_per_second\": %.2f, \"copy_bandwidth_bytes_per_second\": %.4g, "
           "\"weight_bytes_per_token\": %.0f, \"roofline_tokens_per_second\": %.2f, \"fraction_of_roofline\": %.4f}}\n",
           decode_rate, bandwidth, bytes_per_token, roofline, decode_rate / roofline);
  } else {
    printf("device: %s (%s)\nmodel: synthetic Qwen3-style d=%d f=%d, 36 layers, TTT layers 0,5,...,30 (7), C=%d\n\n",
           info->name, info->platform, d, f, chunk);
    printf("%8s %14s %14s %10s %12s %11s %14s %14s\n", "context", "TTT on tok/s", "TTT off tok/s", "overhead",
           "median pair", "FLOP ratio", "peak MiB (on)", "model MiB (on)");
    for (int i = 0; i < context_count; i++)
      printf("%8d %14.1f %14.1f %9.1f%% %11.1f%% %10.1f%% %14.1f %14.1f\n", results[i].context,
             results[i].context / results[i].seconds_on, results[i].context / results[i].seconds_off,
             100.0 * (results[i].seconds_on / results[i].seconds_off - 1.0), 100.0 * results[i].pair_overhead,
             100.0 * results[i].flop_overhead, results[i].peak_on / 1048576.0, results[i].model_on / 1048576.0);
    printf("\noverhead: the fastest TTT-on run against the fastest TTT-off run (of %d each); median pair: the\n"
           "median of on / off over the %d alternated pairs; FLOP ratio: the extra matrix FLOPs of TTT on by\n"
           "SPEC.md section 7 (update, projection, conv; attention over the causal half of the context)\n",
           repeats, repeats);
    const uint64_t estimated = clttt_estimate_weight_bytes(&config, weight_type, device);
    printf("\nweights: %.1f MiB of %s matrices; the cost model says %.1f MiB: %s\n",
           clttt_model_weight_bytes(model) / 1048576.0, clttt_weight_type_name(weight_type), estimated / 1048576.0,
           estimated == clttt_model_weight_bytes(model) ? "equal" : "DIFFERENT");
    printf("\ndecode (batch 1, TTT on): %.2f tokens/s; roofline %.2f tokens/s (%.1f MiB of weights per token at a\n"
           "copy bandwidth of %.2f GB/s measured in this run): %.0f%% of the roofline\n",
           decode_rate, roofline, bytes_per_token / 1048576.0, bandwidth / 1e9, 100.0 * decode_rate / roofline);
  }
  clttt_model_free(model);
  clttt_device_close(device);
  return 0;
}
