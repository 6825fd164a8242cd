/* clttt tune: measures our kernels' parameters on one device and stores the
 * winners in the per-user tuning cache that device open reads. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *stream) {
  fprintf(stream,
          "usage: clttt tune [--device SEL] [--kernels LIST] [--quick] [--out FILE]\n"
          "Tries candidate work-group sizes, tile sizes and vector widths of clttt's own\n"
          "OpenCL kernels on one device at Qwen3-0.6B shapes (d 1024, f 3072, 16 query and\n"
          "8 KV heads of 128, prefill of 2048 tokens, attention over 1024; gemm_slices at\n"
          "Qwen3-8B's down projection, 4096 x 12288). Every candidate's\n"
          "output is checked against a host computation before it is timed (median of\n"
          "several runs); the fastest correct one per kernel family is written to the\n"
          "tuning cache, which clttt reads whenever it opens that device.\n\n"
          "options:\n"
          "  --device SEL     device index or name/vendor/platform substring\n"
          "                   (default: CLTTT_DEVICE, else the first GPU, else device 0)\n"
          "  --kernels LIST   families to tune, comma-separated: rmsnorm, attention,\n"
          "                   attention_tiles, attention_values, attention_share,\n"
          "                   attention_prefetch, attention_choice, attention_decode,\n"
          "                   attention_short, rope, rope_lanes,\n"
          "                   elementwise, conv, gemv,\n"
          "                   gemm, gemm_blocks, gemm_gpu, gemm_choice,\n"
          "                   gemm_decode, gemm_slices, gemm_prefetch, update,\n"
          "                   update_blocks, update_gpu, update_choice\n"
          "                   (default: all; the GEMM tiles of the variant the device uses;\n"
          "                   update and update_blocks only where the TTT fast weight\n"
          "                   stays row-major: on CPUs it lives in the GEMM's panels and\n"
          "                   its update runs with the GEMM's tiles, so they are skipped);\n"
          "                   the others keep their values\n"
          "  --quick          shorter sequences and fewer candidates (under 2 minutes on\n"
          "                   two CPU cores)\n"
          "  --out FILE       write the results to FILE instead of the tuning cache\n\n"
          "The cache is $CLTTT_TUNING_FILE, else $XDG_CACHE_HOME/clttt/tuning.json, else\n"
          "~/.cache/clttt/tuning.json; one entry per (platform, device, driver version),\n"
          "entries of other devices are kept. GEMMs are CLBlast's: see README 'Tuning'.\n");
}

static const char *state_text(const clttt_tune_candidate *candidate) {
  switch (candidate->state) {
  case CLTTT_TUNE_MEASURED:
    return "ok";
  case CLTTT_TUNE_MISMATCH:
    return "WRONG";
  default:
    return "failed";
  }
}

/* Each family's defaults are measured first; later rows compare with them. */
typedef struct {
  double default_ms;
} progress_state;

static void print_candidate(const clttt_tune_candidate *candidate, void *context) {
  progress_state *state = context;
  if (candidate->is_default)
    state->default_ms = candidate->median_ms;
  char speedup[32] = "";
  if (candidate->state == CLTTT_TUNE_MEASURED && state->default_ms > 0 && candidate->median_ms > 0)
    snprintf(speedup, sizeof speedup, "%.2fx", state->default_ms / candidate->median_ms);
  printf("%-12s %-44s %-7s", candidate->family, candidate->label, state_text(candidate));
  if (candidate->state == CLTTT_TUNE_MEASURED)
    printf(" %10.3f %8s%s\n", candidate->median_ms, speedup, candidate->is_default ? "  (default)" : "");
  else
    printf("  %s\n", candidate->failure);
  fflush(stdout);
}

/* The library's notes during the search (a family it does not search on
 * this device, and why) go in the table's stream, where they explain a
 * family that is missing from it. */
static void print_note(clttt_log_level level, const char *message, void *user_data) {
  (void)user_data;
  if (level == CLTTT_LOG_WARNING)
    fprintf(stderr, "clttt: warning: %s\n", message);
  else
    printf("note: %s\n", message);
  fflush(stdout);
}

int command_tune(int argc, char **argv) {
  const char *device_selector = NULL, *kernels = NULL, *out = NULL;
  int quick = 0, missing = 0;
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      usage(stdout);
      return 0;
    }
    if (cli_option_value(argc, argv, &i, "--device", &device_selector, &missing) ||
        cli_option_value(argc, argv, &i, "--kernels", &kernels, &missing) ||
        cli_option_value(argc, argv, &i, "--out", &out, &missing)) {
      if (missing)
        return 2;
      continue;
    }
    if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
      continue;
    }
    fprintf(stderr, "clttt tune: unknown argument '%s' (see --help)\n", argv[i]);
    return 2;
  }

  clttt_tune_params params = clttt_tune_default_params();
  params.families = kernels;
  params.quick = quick;
  char shapes[512];
  int status = clttt_tune_describe(&params, shapes, sizeof shapes);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "clttt tune: %s\n", clttt_last_error());
    return 2;
  }
  clttt_device *device = NULL;
  status = clttt_device_open(&device, device_selector);
  if (status != CLTTT_SUCCESS) {
    cli_report("opening the device", status);
    return 1;
  }
  const clttt_device_info *info = clttt_device_get_info(device);
  printf("device [%d] %s\n  platform %s, driver %s\n  parameters in use: %s\n", info->index, info->name,
         info->platform, info->driver_version, clttt_device_parameter_source(device));
  printf("shapes: %s\n\n", shapes);
  printf("%-12s %-44s %-7s %10s %8s\n", "family", "candidate", "check", "ms", "speedup");

  clttt_tune_result *result = NULL;
  progress_state progress = {0.0};
  params.progress = print_candidate;
  params.user_data = &progress;
  clttt_set_log_callback(print_note, NULL);
  status = clttt_tune(&result, device, &params);
  clttt_set_log_callback(NULL, NULL);
  if (status != CLTTT_SUCCESS) {
    cli_report("tuning", status);
    clttt_device_close(device);
    return 1;
  }

  printf("\n%-12s %-44s %10s %10s %8s\n", "family", "winner", "default ms", "tuned ms", "speedup");
  for (int c = 0; c < clttt_tune_candidate_count(result); c++) {
    const clttt_tune_candidate *candidate = clttt_tune_get_candidate(result, c);
    if (!candidate->is_winner)
      continue;
    double default_ms = clttt_tune_default_ms(result, candidate->family);
    double best_ms = clttt_tune_best_ms(result, candidate->family);
    printf("%-12s %-44s %10.3f %10.3f %7.2fx\n", candidate->family, candidate->label, default_ms, best_ms,
           best_ms > 0 ? default_ms / best_ms : 0.0);
  }
  char defines[512];
  clttt_tune_describe_best(result, defines, sizeof defines);
  printf("\nparameter set: %s\n", defines);

  char path[4096];
  status = clttt_tune_store(result, out, path, sizeof path);
  clttt_tune_result_free(result);
  clttt_device_close(device);
  if (status != CLTTT_SUCCESS) {
    cli_report("writing the tuning cache", status);
    return 1;
  }
  printf("wrote %s\n", path);
  return 0;
}
