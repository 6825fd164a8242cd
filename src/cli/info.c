/* clttt info: what a model directory holds and what running it costs. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf("usage: clttt info -m DIR [--weights auto|f32|f16|bf16] [--ctx N] [--kv f16|f32]\n"
         "                  [--devices SEL,... [--split auto|N,...]]\n"
         "Prints the architecture, sizes, TTT layers, chunk and eta of a HuggingFace model\n"
         "directory, and the device memory the weights and a session need (KV cache, TTT\n"
         "state). Reads config.json and the safetensors headers only; no device is used\n"
         "unless --devices asks, so the figures leave out the padding of a device's GEMM\n"
         "panels (under 1%% on real models).\n\n"
         "  -m, --model DIR  model directory\n"
         "  --ctx N          context length for the memory estimate (default: the model's\n"
         "                   max_position_embeddings)\n"
         "  --kv f16|f32     KV cache element type of the estimate (default f16)\n"
         "  --weights T      weight matrices' element type: auto (default: as the checkpoint\n"
         "                   stores them; f32 without safetensors files), f32, f16, bf16\n"
         "  --devices SEL,...  also the placement of a layer split over these devices\n"
         "                   (opens them): layers, weights and session memory per device\n"
         "  --split auto|N,... layers per device (default auto)\n");
}

static double mebibytes(uint64_t bytes) { return (double)bytes / 1048576.0; }

int command_info(int argc, char **argv) {
  const char *dir = NULL, *devices = NULL, *split = NULL;
  int context = 0, kv_f32 = 0;
  clttt_weight_type weights = CLTTT_WEIGHTS_AUTO;
  for (int i = 1; i < argc; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (cli_option_value(argc, argv, &i, "-m", &value, &missing) ||
               cli_option_value(argc, argv, &i, "--model", &value, &missing)) {
      dir = value;
    } else if (cli_option_value(argc, argv, &i, "--devices", &value, &missing)) {
      devices = value;
    } else if (cli_option_value(argc, argv, &i, "--split", &value, &missing)) {
      split = value;
    } else if (cli_option_value(argc, argv, &i, "--ctx", &value, &missing)) {
      if (!missing && !parse_int(value, "--ctx", 1, &context))
        return 2;
    } else if (cli_option_value(argc, argv, &i, "--kv", &value, &missing)) {
      if (!missing && strcmp(value, "f32") != 0 && strcmp(value, "f16") != 0) {
        fprintf(stderr, "clttt info: --kv expects f32 or f16, got '%s'\n", value);
        return 2;
      }
      kv_f32 = !missing && strcmp(value, "f32") == 0;
    } else if (cli_option_value(argc, argv, &i, "--weights", &value, &missing)) {
      if (!missing && clttt_weight_type_parse(value, &weights) != CLTTT_SUCCESS) {
        fprintf(stderr, "clttt info: --weights expects auto, f32, f16 or bf16, got '%s'\n", value);
        return 2;
      }
    } else {
      fprintf(stderr, "clttt info: unknown option '%s' (see --help)\n", argv[i]);
      return 2;
    }
    if (missing)
      return 2;
  }
  if (!dir) {
    fprintf(stderr, "clttt info: no model given: use -m DIR (see --help)\n");
    return 2;
  }
  clttt_config config;
  int status = clttt_config_load(&config, dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the model's config.json", status);
    return 1;
  }
  if (context == 0)
    context = config.max_position_embeddings;
  static const char *const rope_names[] = {"default", "llama3", "yarn"};
  printf("model:        %s\n", dir);
  printf("architecture: %s\n", config.arch == CLTTT_ARCH_QWEN3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
  printf("sizes:        d=%d, f=%d, %d layers, %d heads / %d kv heads of %d, vocab %d\n", config.hidden_size,
         config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
         config.num_key_value_heads, config.head_dim, config.vocab_size);
  printf("positions:    %d max, RoPE %s, theta %g\n", config.max_position_embeddings, rope_names[config.rope_type],
         (double)config.rope_theta);
  printf("embeddings:   %s\n", config.tie_word_embeddings ? "tied" : "untied");
  if (config.ttt_mode) {
    printf("TTT layers:   ");
    for (int i = 0; i < config.ttt_layer_count; i++)
      printf("%s%d", i ? ", " : "", config.ttt_layers[i]);
    printf(" (%d of %d)\n", config.ttt_layer_count, config.num_hidden_layers);
    printf("TTT:          chunk C=%d, eta=%g, projection %s, target %s\n", config.ttt_chunk,
           (double)config.ttt_lr, config.ttt_proj ? "yes" : "no",
           config.ttt_target == CLTTT_TARGET_INPUT_EMBED ? "input_embed" : "hidden_states");
  } else {
    printf("TTT:          off (no ttt_mode): runs as the plain base model\n");
  }
  const char *weights_origin = "";
  if (weights == CLTTT_WEIGHTS_AUTO) {
    weights_origin = ", as stored";
    if (clttt_checkpoint_weight_type(dir, &weights) != CLTTT_SUCCESS) {
      weights = CLTTT_WEIGHTS_F32;
      weights_origin = ", no checkpoint read";
    }
  }
  uint64_t weight_bytes = clttt_estimate_weight_bytes(&config, weights, NULL);
  clttt_session_params params = clttt_session_default_params();
  params.context = context;
  params.kv_type = kv_f32 ? CLTTT_KV_F32 : CLTTT_KV_F16;
  uint64_t session_on = clttt_estimate_session_bytes(&config, &params);
  params.ttt = 0;
  uint64_t session_off = clttt_estimate_session_bytes(&config, &params);
  if (weight_bytes == UINT64_MAX || session_on == UINT64_MAX || session_off == UINT64_MAX) {
    /* 64-bit byte counts overflow: no device holds such a model. */
    printf("memory:       more than 16 EiB: these sizes cannot run on any device\n");
  } else {
    uint64_t session = config.ttt_mode ? session_on : session_off;
    printf("memory:       %.1f MiB weights (%s%s) + %.1f MiB per session of %d tokens (%s KV cache)",
           mebibytes(weight_bytes), clttt_weight_type_name(weights), weights_origin, mebibytes(session), context,
           kv_f32 ? "f32" : "f16");
    if (config.ttt_mode)
      printf(" (%.1f MiB of it TTT state)", mebibytes(session_on - session_off));
    printf("\n");
    printf("total:        %.2f GiB for the weights and one session\n",
           (double)(weight_bytes + session) / 1073741824.0);
  }
  int code = devices ? split_info(&config, weights, devices, split, context, kv_f32 ? CLTTT_KV_F32 : CLTTT_KV_F16) : 0;
  clttt_config_free(&config);
  return code;
}
