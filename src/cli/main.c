/* clttt: the command-line front end of the library. */
#include "build-config.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} subcommand;

static const subcommand subcommands[] = {
    {"demo", command_demo, "run a synthetic TTT model: long prefill with TTT on/off, decode"},
    {"devices", command_devices, "list OpenCL platforms and devices"},
    {"generate", command_generate, "generate text from a prompt, streaming tokens"},
    {"info", command_info, "describe a model directory and the memory it needs"},
    {"logits", command_logits, "write the logits of a token sequence (float32 rows)"},
    {"ppl", command_ppl, "perplexity of a text, per position bucket, TTT on/off/both"},
    {"ruler", command_ruler, "RULER's synthetic long-context tasks, scored, TTT on vs off"},
    {"serve", command_serve, "an OpenAI-compatible HTTP server whose sessions keep learning"},
    {"session", command_session, "describe a saved session file (session info F)"},
    {"tune", command_tune, "measure kernel parameters for a device and cache the fastest"},
};
static const int subcommand_count = (int)(sizeof subcommands / sizeof subcommands[0]);

static void usage(FILE *stream) {
  fprintf(stream,
          "usage: clttt <command> [options]\n"
          "In-Place Test-Time Training for Qwen3 / LLaMA-3 models on any OpenCL device.\n\n"
          "commands:\n");
  for (int i = 0; i < subcommand_count; i++)
    fprintf(stream, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
  fprintf(stream,
          "\n'clttt <command> --help' describes each command.\n"
          "Environment: CLTTT_DEVICE selects the device (index or name substring),\n"
          "CLTTT_KERNEL_DIR reads kernels from a directory instead of the embedded copies,\n"
          "CLTTT_TUNING_FILE names the tuning cache written by 'clttt tune',\n"
          "CLTTT_CLBLAST_TUNING=off keeps CLBlast's own GEMM parameters.\n");
}

void cli_report(const char *what, int status) {
  const char *message = clttt_last_error();
  fprintf(stderr, "clttt: %s failed (%s)%s%s\n", what, clttt_status_name(status),
          message[0] ? ": " : "", message);
}

double cli_now_seconds(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return (double)time.tv_sec + 1e-9 * (double)time.tv_nsec;
}

int cli_is_help(const char *argument) {
  return strcmp(argument, "--help") == 0 || strcmp(argument, "-h") == 0;
}

int cli_option_value(int argc, char **argv, int *index, const char *name, const char **value,
                     int *missing) {
  if (strcmp(argv[*index], name) != 0)
    return 0;
  if (*index + 1 >= argc) {
    fprintf(stderr, "clttt: option %s needs a value\n", name);
    *missing = 1;
    return 1;
  }
  *value = argv[++*index];
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("clttt " PACKAGE_VERSION "\n");
    return 0;
  }
  if (!pipeline_start(&argc, &argv))
    return 1;
  if (pipeline_size() > 1) {
    /* Every rank sees the same command line: all refuse, or all run. */
    if (strcmp(argv[1], "logits") != 0 && strcmp(argv[1], "generate") != 0 && strcmp(argv[1], "ppl") != 0) {
      if (pipeline_rank() == 0)
        fprintf(stderr, "clttt: under mpirun only logits, generate and ppl run (as a pipeline), not '%s'\n", argv[1]);
      pipeline_refuse();
      return 2;
    }
    if (pipeline_rank() > 0) {
      int code = pipeline_serve();
      pipeline_stop();
      return code;
    }
  }
  for (int i = 0; i < subcommand_count; i++)
    if (strcmp(argv[1], subcommands[i].name) == 0) {
      int code = subcommands[i].run(argc - 1, argv + 1);
      pipeline_stop();
      return code;
    }
  fprintf(stderr, "clttt: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
