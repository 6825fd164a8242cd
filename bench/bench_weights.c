/* Weight element types (issue: bf16/fp16 weights on the device):
 *   decode   tokens/s at batch 1 for each type, against the roofline of the
 *            bytes a token actually reads (every matrix once, one row of an
 *            untied embedding, the KV cache so far) at this run's read
 *            bandwidth;
 *   prefill  tokens/s of one n-token feed for each type;
 *   memory   device bytes of weights + session against the cost model, and
 *            the process's peak resident memory (getrusage) against them.
 * Types run interleaved (f32, bf16, f16, f32, ...), the fastest of each
 * counts: a shared machine drifts more than the differences measured.
 *
 * The model: a checkpoint directory (--model), or a synthetic one of a
 * named shape: "bench" is the plain 8-layer Qwen3 of the GEMM issue (d 1024,
 * f 3072, 16 / 8 heads of 128, vocab 32000, untied), "4b" Qwen3-4B's shape
 * (d 2560, f 9728, 36 layers, 32 / 8 heads of 128, vocab 151936, tied) with
 * 7 TTT layers (0, 5, ..., 30). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_clock.h"
#include "stream_bandwidth.h"
#include "ops.h"
#include "weights.h"

static double peak_resident_bytes(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_maxrss * 1024.0; /* Linux: kilobytes */
}

static void help(void) {
  printf("usage: bench_weights [--model DIR | --shape bench|4b] [--types f32,bf16,f16] [--prefill N]\n"
         "                     [--decode N] [--repeats N] [--ttt on|off] [--device SEL]\n"
         "Decode and prefill tokens/s per weight element type on one model, decode against\n"
         "the roofline of the bytes each token reads, and memory: device bytes of weights\n"
         "and session against the cost model, peak resident memory against those bytes.\n"
         "  --model DIR     a HuggingFace checkpoint (default: a synthetic model, --shape)\n"
         "  --shape S       bench: 8-layer Qwen3, d 1024, f 3072, vocab 32000, untied (default)\n"
         "                  4b: Qwen3-4B's shape, 36 layers, d 2560, 7 TTT layers, tied\n"
         "  --types L       weight types, run interleaved (default f32,bf16)\n"
         "  --prefill N     prefill length (default 512; 0 skips prefill)\n"
         "  --decode N      decode steps after the prefill (default 64)\n"
         "  --repeats N     rounds over the types; the fastest counts (default 3)\n"
         "  --ttt on|off    TTT in the sessions (default: the model's)\n"
         "  --device SEL    OpenCL device (index or name substring)\n"
         "Peak resident memory is the whole process's after the first round: run one type\n"
         "(--types bf16) to read it for that type alone.\n");
}

typedef struct {
  clttt_weight_type type;
  double load_seconds, prefill_seconds, decode_seconds;
  uint64_t weight_bytes, estimated_weight_bytes, session_bytes, estimated_session_bytes;
  double read_per_token; /* bytes a decoded token reads */
} type_result;

typedef struct {
  const char *model_dir;
  clttt_config config; /* synthetic */
  int prefill, decode, ttt;
} workload;

static int fail(const char *what, int status) {
  fprintf(stderr, "bench_weights: %s: %s: %s\n", what, clttt_status_name(status), clttt_last_error());
  return 0;
}

/* Loads the model with weights of `r->type`, prefills, decodes; the best
 * times so far are kept in r. */
static int run_type(clttt_device *device, const workload *work, type_result *r) {
  clttt_model_params model_params = clttt_model_default_params();
  model_params.weights = r->type;
  clttt_model *model = NULL;
  double start = now_seconds();
  int status = work->model_dir ? clttt_model_load(&model, device, work->model_dir, &model_params)
                               : clttt_model_synthetic(&model, device, &work->config, &model_params, 7);
  if (status != CLTTT_SUCCESS)
    return fail("loading the model", status);
  double load = now_seconds() - start;
  r->load_seconds = r->load_seconds == 0 || load < r->load_seconds ? load : r->load_seconds;
  const clttt_config *config = clttt_model_get_config(model);
  r->weight_bytes = clttt_model_weight_bytes(model);
  r->estimated_weight_bytes = clttt_estimate_weight_bytes(config, r->type, device);

  const int n = work->prefill > 0 ? work->prefill : 1;
  clttt_session_params params = clttt_session_default_params();
  params.context = n + work->decode + 8;
  params.logits = CLTTT_LOGITS_LAST;
  if (work->ttt >= 0)
    params.ttt = work->ttt;
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  float *logits = malloc((size_t)config->vocab_size * sizeof *logits);
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 7919 + 17) % config->vocab_size);
  uint64_t before = 0, peak = 0;
  clttt_device_memory(device, &before, NULL, 1);
  clttt_session *session = NULL;
  status = clttt_session_create(&session, model, &params);
  if (status == CLTTT_SUCCESS) {
    clttt_device_memory(device, NULL, &peak, 0);
    r->session_bytes = peak - before;
    r->estimated_session_bytes = clttt_estimate_session_bytes(config, &params);
    start = now_seconds();
    status = clttt_session_feed(session, tokens, n, logits, 1);
    double seconds = now_seconds() - start;
    if (work->prefill > 0 && (r->prefill_seconds == 0 || seconds < r->prefill_seconds))
      r->prefill_seconds = seconds;
  }
  int32_t token = 1;
  for (int i = 0; i < 2 && status == CLTTT_SUCCESS; i++) /* the decode path's first launches */
    status = clttt_session_feed(session, &token, 1, logits, 1);
  start = now_seconds();
  for (int i = 0; i < work->decode && status == CLTTT_SUCCESS; i++) {
    token = (int32_t)((i * 31 + 5) % config->vocab_size);
    status = clttt_session_feed(session, &token, 1, logits, 1);
  }
  double seconds = now_seconds() - start;
  if (status == CLTTT_SUCCESS && (r->decode_seconds == 0 || seconds < r->decode_seconds))
    r->decode_seconds = seconds;
  /* Per decoded token: every matrix once, but of an untied embedding only
   * the one row gathered, and in a TTT layer the fp32 fast weight instead
   * of the stored W_down; the KV cache up to the middle of the decode. */
  const int ttt_layers = session && clttt_session_ttt_enabled(session) ? config->ttt_layer_count : 0;
  const double d = config->hidden_size, vocab = config->vocab_size;
  const double element = r->type == CLTTT_WEIGHTS_F32 ? 4.0 : 2.0;
  const double kv_element = params.kv_type == CLTTT_KV_F16 ? 2.0 : 4.0;
  const double kv_rows = n + work->decode / 2.0;
  r->read_per_token = (double)r->weight_bytes - (config->tie_word_embeddings ? 0.0 : vocab * d * element) +
                      2.0 * config->num_hidden_layers * kv_rows * config->num_key_value_heads * config->head_dim *
                          kv_element +
                      ttt_layers * (double)config->hidden_size * config->intermediate_size * (4.0 - element);
  clttt_session_free(session);
  free(tokens);
  free(logits);
  clttt_model_free(model);
  if (status != CLTTT_SUCCESS)
    return fail("prefill or decode", status);
  return 1;
}

int main(int argc, char **argv) {
  const char *selector = NULL, *shape = "bench", *types_text = "f32,bf16";
  workload work = {NULL, {0}, 512, 64, -1};
  int repeats = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help();
      return 0;
    } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
      work.model_dir = argv[++i];
    } else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
      shape = argv[++i];
    } else if (strcmp(argv[i], "--types") == 0 && i + 1 < argc) {
      types_text = argv[++i];
    } else if (strcmp(argv[i], "--prefill") == 0 && i + 1 < argc) {
      work.prefill = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--decode") == 0 && i + 1 < argc) {
      work.decode = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
      repeats = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--ttt") == 0 && i + 1 < argc) {
      i++;
      work.ttt = strcmp(argv[i], "on") == 0 ? 1 : strcmp(argv[i], "off") == 0 ? 0 : -2;
    } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
      selector = argv[++i];
    } else {
      fprintf(stderr, "bench_weights: unknown or incomplete option '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (work.prefill < 0 || work.decode < 1 || repeats < 1 || work.ttt == -2) {
    fprintf(stderr, "bench_weights: --prefill >= 0, --decode >= 1, --repeats >= 1, --ttt on|off\n");
    return 2;
  }
  type_result results[8];
  int type_count = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", types_text);
  for (char *name = strtok(list, ","); name && type_count < 8; name = strtok(NULL, ",")) {
    memset(&results[type_count], 0, sizeof results[type_count]);
    if (clttt_weight_type_parse(name, &results[type_count].type) != CLTTT_SUCCESS ||
        results[type_count].type == CLTTT_WEIGHTS_AUTO) {
      fprintf(stderr, "bench_weights: --types: '%s' is not f32, bf16 or f16\n", name);
      return 2;
    }
    type_count++;
  }

  static int ttt_layers[] = {0, 5, 10, 15, 20, 25, 30};
  if (!work.model_dir) {
    const int context = work.prefill + work.decode + 16;
    if (strcmp(shape, "bench") == 0) {
      clttt_synthetic_config(&work.config, 1024, 3072, 8, 16, 8, 128, 32000, context, 0, 512, 1e-3f);
      work.config.tie_word_embeddings = 0;
    } else if (strcmp(shape, "4b") == 0) {
      clttt_synthetic_config(&work.config, 2560, 9728, 36, 32, 8, 128, 151936, context, 0, 1024, 1e-3f);
      work.config.ttt_mode = 1;
      work.config.ttt_layers = ttt_layers;
      work.config.ttt_layer_count = 7;
    } else {
      fprintf(stderr, "bench_weights: --shape expects bench or 4b, got '%s'\n", shape);
      return 2;
    }
  }
  clttt_device *device = NULL;
  int status = clttt_device_open(&device, selector);
  if (status != CLTTT_SUCCESS)
    return fail("opening the device", status) ? 0 : 1;
  const clttt_device_info *info = clttt_device_get_info(device);
  fprintf(stderr, "bench_weights on %s (%s): %s, prefill %d, decode %d, %d rounds\n", info->name, info->platform,
          work.model_dir ? work.model_dir : shape, work.prefill, work.decode, repeats);
  double resident = 0, copy_rate = 0, bandwidth = 0;
  for (int round = 0; round < repeats; round++) {
    for (int t = 0; t < type_count; t++) {
      fprintf(stderr, "  round %d: %s weights...\n", round + 1, clttt_weight_type_name(results[t].type));
      if (!run_type(device, &work, &results[t])) {
        clttt_device_close(device);
        return 1;
      }
    }
    if (round == 0)
      resident = peak_resident_bytes(); /* before the bandwidth runs' own 512 MiB */
    /* Every round, the best counting: the machine's bandwidth drifts with
     * its neighbours' load, as the decode rates do. */
    double copy = 0, read = 0;
    if (!stream_bandwidths(device, &copy, &read)) {
      clttt_device_close(device);
      return fail("measuring the memory bandwidth", CLTTT_ERROR_INVALID_ARGUMENT) ? 0 : 1;
    }
    copy_rate = copy > copy_rate ? copy : copy_rate;
    bandwidth = read > bandwidth ? read : bandwidth;
  }
  printf("device: %s (%s); in this run (best of the rounds): read bandwidth %.2f GB/s (the roofline's), copy %.2f GB/s\n",
         info->name, info->platform, bandwidth / 1e9, copy_rate / 1e9);
  printf("%-5s %8s %10s %10s %9s %10s %10s %12s %12s\n", "type", "load s", "prefill/s", "decode/s", "vs f32",
         "roofline", "of roof", "weights MiB", "session MiB");
  const type_result *f32 = NULL;
  for (int t = 0; t < type_count; t++)
    if (results[t].type == CLTTT_WEIGHTS_F32)
      f32 = &results[t];
  double largest_device = 0;
  for (int t = 0; t < type_count; t++) {
    const type_result *r = &results[t];
    double decode = work.decode / r->decode_seconds, roofline = bandwidth / r->read_per_token;
    double prefill = work.prefill > 0 ? work.prefill / r->prefill_seconds : 0;
    char ratio[16] = "-"; /* against f32, when it ran */
    if (f32)
      snprintf(ratio, sizeof ratio, "%.2fx", decode / (work.decode / f32->decode_seconds));
    printf("%-5s %8.2f %10.1f %10.2f %9s %10.2f %9.0f%% %12.1f %12.1f\n", clttt_weight_type_name(r->type),
           r->load_seconds, prefill, decode, ratio, roofline, 100.0 * decode / roofline,
           (double)r->weight_bytes / 1048576.0, (double)r->session_bytes / 1048576.0);
    if (r->weight_bytes != r->estimated_weight_bytes || r->session_bytes != r->estimated_session_bytes)
      printf("      cost model: weights %llu (allocated %llu), session %llu (allocated %llu): DIFFERENT\n",
             (unsigned long long)r->estimated_weight_bytes, (unsigned long long)r->weight_bytes,
             (unsigned long long)r->estimated_session_bytes, (unsigned long long)r->session_bytes);
    double total = (double)(r->weight_bytes + r->session_bytes);
    largest_device = total > largest_device ? total : largest_device;
  }
  printf("cost model: every allocation above equals clttt_estimate_*_bytes unless marked DIFFERENT\n");
  printf("peak resident memory %.1f MiB = %.2f x the largest device bytes of one type (%.1f MiB of weights +\n"
         "session; on a CPU device these are host memory too)\n",
         resident / 1048576.0, resident / largest_device, largest_device / 1048576.0);
  clttt_device_close(device);
  return 0;
}
