/* Where a prefill's time goes (issue: own GEMM kernels): one n-token feed
 * with the device's per-op profile on, each product's GFLOP/s against an
 * FMA-peak kernel measured in the same run and, when python3 can import
 * torch, against PyTorch's torch.nn.functional.linear on the same shapes
 * (bench/torch_gemm.py --shape), run right after each profiled feed.
 * Rounds alternate (clttt, PyTorch, clttt, ...) and the best of each side
 * counts, per product: a shared machine drifts more than the differences
 * measured. The profile waits for every op, so the feed is also timed
 * without it: that is the prefill's tokens/s.
 *
 * The model: a checkpoint directory (--model), or the synthetic plain
 * 8-layer Qwen3 of the GEMM issue (d 1024, f 3072, 16 / 8 heads of 128,
 * vocab 32000, untied). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "clttt.h"
#include "fma_peak.h"

/* Where bench/torch_gemm.py is (Makefile.am sets it). */
#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "bench"
#endif

#define MAX_OPS 64
#define REPORT_BYTES 16384

static void help(void) {
  printf("usage: bench_prefill [--model DIR] [--weights f32|bf16|f16|auto] [--prefill N] [--logits last|all]\n"
         "                     [--repeats N] [--ttt on|off] [--kv f16|f32] [--no-peer] [--python PATH]\n"
         "                     [--device SEL]\n"
         "One prefill, op by op: each product's GFLOP/s, its fraction of an FMA-peak kernel\n"
         "measured in the same run and, when python3 imports torch, PyTorch's GFLOP/s on the\n"
         "same shapes (bench/torch_gemm.py), rounds alternated, the best of each counting.\n"
         "  --model DIR     a HuggingFace checkpoint (default: a synthetic 8-layer Qwen3, d 1024,\n"
         "                  f 3072, 16 / 8 heads of 128, vocab 32000, untied, fp32)\n"
         "  --weights T     weight element type on the device (default auto: as stored)\n"
         "  --prefill N     tokens fed (default 2048)\n"
         "  --logits L      logits of the last position (default, as llama-bench) or of all\n"
         "                  (as a transformers forward and clttt ppl)\n"
         "  --repeats N     rounds (default 2)\n"
         "  --ttt on|off    TTT in the session (default: the model's)\n"
         "  --kv T          KV cache element type (default f16, the library's)\n"
         "  --no-peer       skip PyTorch\n"
         "  --python PATH   the interpreter that runs bench/torch_gemm.py (default python3)\n"
         "  --device SEL    OpenCL device (index or name substring)\n");
}

typedef struct {
  char label[96];
  long calls;
  double ms;           /* best round */
  double gflops;       /* best round; 0: not a product */
  size_t rows, n, k;   /* the product per call, when known (rows 0: unknown) */
  double peer_gflops;  /* PyTorch's best at that shape; 0: not run */
} op_row;

typedef struct {
  op_row ops[MAX_OPS];
  int count;
  double total_ms;
} profile_table;

static int fail(const char *what, int status) {
  fprintf(stderr, "bench_prefill: %s: %s: %s\n", what, clttt_status_name(status), clttt_last_error());
  return 0;
}

/* One line of clttt_device_profile_report: "<label> <calls> <ms> <share>% [<GFLOP/s>]". */
static int parse_profile_line(const char *line, op_row *op) {
  char copy[256];
  snprintf(copy, sizeof copy, "%s", line);
  char *fields[64];
  int count = 0;
  for (char *field = strtok(copy, " \n"); field && count < 64; field = strtok(NULL, " \n"))
    fields[count++] = field;
  if (count < 4)
    return 0;
  int last = count - 1;
  double gflops = 0.0;
  if (fields[last][strlen(fields[last]) - 1] != '%') {
    gflops = atof(fields[last]);
    last--;
  }
  if (last < 3 || fields[last][strlen(fields[last]) - 1] != '%')
    return 0;
  memset(op, 0, sizeof *op);
  op->gflops = gflops;
  op->ms = atof(fields[last - 1]);
  op->calls = atol(fields[last - 2]);
  size_t used = 0;
  for (int i = 0; i < last - 2; i++)
    used += (size_t)snprintf(op->label + used, sizeof op->label - used, "%s%s", i ? " " : "", fields[i]);
  return op->calls > 0;
}

static int starts_with(const char *text, const char *prefix) { return strncmp(text, prefix, strlen(prefix)) == 0; }

/* The shape of a weight product from its label and the model: rows per call
 * from the calls (one per layer per piece of the feed). */
static void product_shape(op_row *op, const clttt_config *config, int prefill, int all_logits) {
  const size_t d = (size_t)config->hidden_size, f = (size_t)config->intermediate_size;
  const size_t q_dim = (size_t)config->num_attention_heads * (size_t)config->head_dim;
  const size_t kv_dim = (size_t)config->num_key_value_heads * (size_t)config->head_dim;
  const long layers = config->num_hidden_layers;
  long pieces = op->calls / layers;
  if (starts_with(op->label, "LM head")) {
    pieces = op->calls;
    op->n = (size_t)config->vocab_size;
    op->k = d;
    op->rows = all_logits ? (size_t)((prefill + pieces - 1) / pieces) : 1;
    return;
  }
  if (pieces < 1 || op->calls % layers != 0)
    return;
  op->rows = (size_t)((prefill + pieces - 1) / pieces);
  if (starts_with(op->label, "q, k, v projections"))
    op->n = q_dim + 2 * kv_dim, op->k = d;
  else if (starts_with(op->label, "attention output projection"))
    op->n = d, op->k = q_dim;
  else if (starts_with(op->label, "MLP gate and up projections"))
    op->n = 2 * f, op->k = d;
  else if (starts_with(op->label, "MLP down projection"))
    op->n = d, op->k = f;
  else
    op->rows = 0;
}

/* One profiled feed of `prefill` tokens into a fresh session; the rows are
 * merged into `table` keeping each op's best. Also times one feed without
 * the profile into *seconds (best so far). */
static int profiled_prefill(clttt_device *device, clttt_model *model, const clttt_session_params *params,
                            int prefill, profile_table *table, double *seconds) {
  const clttt_config *config = clttt_model_get_config(model);
  const int all_logits = params->logits == CLTTT_LOGITS_ALL;
  /* The logits come back to the host, as a forward pass's would. */
  const size_t logit_floats = (size_t)(all_logits ? prefill : 1) * (size_t)config->vocab_size;
  int32_t *tokens = malloc((size_t)prefill * sizeof *tokens);
  float *logits = malloc(logit_floats * sizeof *logits);
  char *report = malloc(REPORT_BYTES);
  if (!tokens || !report || !logits) {
    free(tokens);
    free(logits);
    free(report);
    fprintf(stderr, "bench_prefill: out of host memory\n");
    return 0;
  }
  for (int i = 0; i < prefill; i++)
    tokens[i] = (int32_t)((i * 7919 + 17) % config->vocab_size);
  clttt_session *session = NULL;
  int status = clttt_session_create(&session, model, params);
  for (int pass = 0; pass < 2 && status == CLTTT_SUCCESS; pass++) {
    /* Pass 0 unprofiled (the tokens/s), pass 1 profiled (the table). */
    status = clttt_session_reset(session);
    if (status == CLTTT_SUCCESS && pass == 1)
      status = clttt_device_set_profiling(device, 1);
    double start = now_seconds();
    if (status == CLTTT_SUCCESS)
      status = clttt_session_feed(session, tokens, prefill, logits, !all_logits);
    double elapsed = now_seconds() - start;
    if (status == CLTTT_SUCCESS && pass == 0 && (*seconds == 0 || elapsed < *seconds))
      *seconds = elapsed;
  }
  if (status == CLTTT_SUCCESS)
    status = clttt_device_profile_report(device, report, REPORT_BYTES, 1);
  clttt_device_set_profiling(device, 0);
  clttt_session_free(session);
  free(tokens);
  free(logits);
  if (status != CLTTT_SUCCESS) {
    free(report);
    return fail("the profiled prefill", status);
  }
  /* Line by line by hand: parse_profile_line's strtok would lose our place. */
  for (char *line = report, *end; line && *line; line = end ? end + 1 : NULL) {
    end = strchr(line, '\n');
    if (end)
      *end = '\0';
    if (starts_with(line, "total")) {
      double total = atof(line + 5);
      table->total_ms = table->total_ms == 0 || total < table->total_ms ? total : table->total_ms;
      continue;
    }
    op_row op;
    if (!parse_profile_line(line, &op))
      continue;
    op_row *existing = NULL;
    for (int i = 0; i < table->count; i++)
      if (strcmp(table->ops[i].label, op.label) == 0)
        existing = &table->ops[i];
    if (!existing && table->count < MAX_OPS) {
      existing = &table->ops[table->count++];
      *existing = op;
      existing->ms = 0;
      existing->gflops = 0;
    }
    if (existing) {
      existing->ms = existing->ms == 0 || op.ms < existing->ms ? op.ms : existing->ms;
      existing->gflops = op.gflops > existing->gflops ? op.gflops : existing->gflops;
    }
  }
  free(report);
  return 1;
}

/* bench/torch_gemm.py on every product of known shape; each op's best
 * GFLOP/s so far kept. 0 with `why` when it could not run. */
static int run_peer(const char *python, profile_table *table, char *why, size_t capacity) {
  char command[4096];
  size_t used = (size_t)snprintf(command, sizeof command, "'%s' '%s/torch_gemm.py' --reps 3", python, BENCH_SOURCE_DIR);
  int shapes = 0;
  for (int i = 0; i < table->count; i++)
    if (table->ops[i].rows > 0 && used + 64 < sizeof command) {
      used += (size_t)snprintf(command + used, sizeof command - used, " --shape %zux%zux%zu", table->ops[i].rows,
                               table->ops[i].n, table->ops[i].k);
      shapes++;
    }
  if (shapes == 0) {
    snprintf(why, capacity, "no product of a known shape in the profile");
    return 0;
  }
  snprintf(command + used, sizeof command - used, " 2>&1");
  FILE *pipe = popen(command, "r");
  if (!pipe) {
    snprintf(why, capacity, "could not start %s: %s", python, strerror(errno));
    return 0;
  }
  char line[512], last[512] = "";
  int results = 0;
  while (fgets(line, sizeof line, pipe)) {
    size_t rows = 0, n = 0, k = 0;
    double ms = 0, gflops = 0;
    if (sscanf(line, "| %zux%zux%zu | torch fp32 linear | %lf | %lf", &rows, &n, &k, &ms, &gflops) == 5) {
      for (int i = 0; i < table->count; i++) {
        op_row *op = &table->ops[i];
        if (op->rows == rows && op->n == n && op->k == k && gflops > op->peer_gflops)
          op->peer_gflops = gflops;
      }
      results++;
    }
    line[strcspn(line, "\n")] = '\0';
    if (line[0])
      snprintf(last, sizeof last, "%s", line);
  }
  pclose(pipe);
  if (results == 0) {
    snprintf(why, capacity, "%s/torch_gemm.py gave no result (%s)", BENCH_SOURCE_DIR, last[0] ? last : "no output");
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  const char *selector = NULL, *model_dir = NULL, *python = "python3";
  int prefill = 2048, repeats = 2, peer = 1, all_logits = 0, ttt = -1;
  clttt_weight_type weights = CLTTT_WEIGHTS_AUTO;
  clttt_kv_type kv = CLTTT_KV_F16;
  for (int i = 1; i < argc; i++) {
    const int more = i + 1 < argc;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help();
      return 0;
    } else if (strcmp(argv[i], "--model") == 0 && more) {
      model_dir = argv[++i];
    } else if (strcmp(argv[i], "--weights") == 0 && more) {
      if (clttt_weight_type_parse(argv[++i], &weights) != CLTTT_SUCCESS) {
        fprintf(stderr, "bench_prefill: --weights expects auto, f32, bf16 or f16, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--prefill") == 0 && more) {
      prefill = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--logits") == 0 && more) {
      i++;
      all_logits = strcmp(argv[i], "all") == 0 ? 1 : strcmp(argv[i], "last") == 0 ? 0 : -1;
    } else if (strcmp(argv[i], "--repeats") == 0 && more) {
      repeats = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--ttt") == 0 && more) {
      i++;
      ttt = strcmp(argv[i], "on") == 0 ? 1 : strcmp(argv[i], "off") == 0 ? 0 : -2;
    } else if (strcmp(argv[i], "--kv") == 0 && more) {
      i++;
      if (strcmp(argv[i], "f32") != 0 && strcmp(argv[i], "f16") != 0) {
        fprintf(stderr, "bench_prefill: --kv expects f16 or f32, got '%s'\n", argv[i]);
        return 2;
      }
      kv = strcmp(argv[i], "f32") == 0 ? CLTTT_KV_F32 : CLTTT_KV_F16;
    } else if (strcmp(argv[i], "--no-peer") == 0) {
      peer = 0;
    } else if (strcmp(argv[i], "--python") == 0 && more) {
      python = argv[++i];
    } else if (strcmp(argv[i], "--device") == 0 && more) {
      selector = argv[++i];
    } else {
      fprintf(stderr, "bench_prefill: unknown or incomplete option '%s' (see --help)\n", argv[i]);
      return 2;
    }
  }
  if (prefill < 1 || repeats < 1 || all_logits < 0 || ttt == -2) {
    fprintf(stderr, "bench_prefill: --prefill >= 1, --repeats >= 1, --logits last|all, --ttt on|off\n");
    return 2;
  }

  clttt_device *device = NULL;
  int status = clttt_device_open(&device, selector);
  if (status != CLTTT_SUCCESS)
    return fail("opening the device", status) ? 0 : 1;
  clttt_model_params model_params = clttt_model_default_params();
  model_params.weights = weights;
  clttt_model *model = NULL;
  if (model_dir) {
    status = clttt_model_load(&model, device, model_dir, &model_params);
  } else {
    clttt_config config;
    clttt_synthetic_config(&config, 1024, 3072, 8, 16, 8, 128, 32000, prefill + 16, 0, 512, 1e-3f);
    config.tie_word_embeddings = 0;
    status = clttt_model_synthetic(&model, device, &config, &model_params, 7);
  }
  if (status != CLTTT_SUCCESS) {
    fail("loading the model", status);
    clttt_device_close(device);
    return 1;
  }
  const clttt_config *config = clttt_model_get_config(model);
  clttt_session_params params = clttt_session_default_params();
  params.context = prefill + 8;
  params.logits = all_logits ? CLTTT_LOGITS_ALL : CLTTT_LOGITS_LAST;
  params.kv_type = kv;
  if (ttt >= 0)
    params.ttt = ttt;
  const clttt_device_info *info = clttt_device_get_info(device);
  fprintf(stderr, "bench_prefill on %s: %s, %d tokens, %d rounds\n", info->name, model_dir ? model_dir : "synthetic",
          prefill, repeats);

  profile_table table = {0};
  double seconds = 0, peak = 0, cpu_peak = 0;
  char peer_note[512] = "";
  int peer_ran = 0;
  for (int round = 0; round < repeats && status == CLTTT_SUCCESS; round++) {
    double gflops = 0;
    status = bench_fma_peak(device, 3, &gflops, &cpu_peak);
    peak = gflops > peak ? gflops : peak;
    fprintf(stderr, "  round %d: clttt...\n", round + 1);
    if (status != CLTTT_SUCCESS || !profiled_prefill(device, model, &params, prefill, &table, &seconds)) {
      status = status != CLTTT_SUCCESS ? status : CLTTT_ERROR_INVALID_ARGUMENT;
      break;
    }
    if (round == 0)
      for (int i = 0; i < table.count; i++)
        product_shape(&table.ops[i], config, prefill, all_logits);
    if (peer) {
      fprintf(stderr, "  round %d: PyTorch...\n", round + 1);
      peer_ran |= run_peer(python, &table, peer_note, sizeof peer_note);
    }
  }
  if (status == CLTTT_SUCCESS) {
    double gflops = 0;
    status = bench_fma_peak(device, 3, &gflops, &cpu_peak);
    peak = gflops > peak ? gflops : peak;
  }
  if (status != CLTTT_SUCCESS) {
    fail("the rounds", status);
    clttt_model_free(model);
    clttt_device_close(device);
    return 1;
  }

  printf("device: %s (%s); FMA peak in this run %.1f GFLOP/s\n", info->name, info->platform, peak);
  printf("model: %s, %d layers, d %d, f %d; prefill of %d tokens (logits of %s), KV %s: %.1f tokens/s "
         "without the profile\n",
         model_dir ? model_dir : "synthetic 8-layer Qwen3", config->num_hidden_layers, config->hidden_size,
         config->intermediate_size, prefill, all_logits ? "every position" : "the last", kv == CLTTT_KV_F16 ? "f16" : "f32",
         prefill / seconds);
  printf("%-48s %6s %9s %6s %8s %8s %16s %9s %8s\n", "op (profiled: each op waits)", "calls", "ms", "share",
         "GFLOP/s", "of peak", "rows x n x k", "PyTorch", "ratio");
  for (int i = 0; i < table.count; i++) {
    const op_row *op = &table.ops[i];
    char shape[48] = "", rate[16] = "", fraction[16] = "", peer_rate[16] = "", ratio[16] = "";
    if (op->rows > 0)
      snprintf(shape, sizeof shape, "%zux%zux%zu", op->rows, op->n, op->k);
    if (op->gflops > 0) {
      snprintf(rate, sizeof rate, "%.1f", op->gflops);
      snprintf(fraction, sizeof fraction, "%.2f", op->gflops / peak);
    }
    if (op->peer_gflops > 0) {
      snprintf(peer_rate, sizeof peer_rate, "%.1f", op->peer_gflops);
      snprintf(ratio, sizeof ratio, "%.2fx", op->gflops / op->peer_gflops);
    }
    printf("%-48s %6ld %9.2f %5.1f%% %8s %8s %16s %9s %8s\n", op->label, op->calls, op->ms,
           table.total_ms > 0 ? 100.0 * op->ms / table.total_ms : 0.0, rate, fraction, shape, peer_rate, ratio);
  }
  printf("%-48s %6s %9.2f\n", "total (profiled)", "", table.total_ms);
  if (!peer)
    printf("PyTorch: not run (--no-peer)\n");
  else if (!peer_ran)
    printf("PyTorch: not run: %s\n", peer_note);
  else
    printf("PyTorch: torch.nn.functional.linear, fp32, best of 3 calls per round (bench/torch_gemm.py)\n");
  clttt_model_free(model);
  clttt_device_close(device);
  return 0;
}
