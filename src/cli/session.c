/* clttt session info: what a saved session file holds, read without a
 * model or a device. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf("usage: clttt session info FILE\n"
         "Checks every checksum of a session file (written by --session-out or\n"
         "clttt_session_save) and describes it: position, session parameters,\n"
         "sizes, and the model it belongs to (configuration and weights hash).\n"
         "Exit status 1 when the file is unreadable or malformed.\n");
}

static const char *on_off(int value) { return value ? "on" : "off"; }

static void print_info(const char *path, const clttt_session_file_info *info) {
  const clttt_session_params *p = &info->params;
  printf("session file: %s\n", path);
  printf("format:       version %d, %llu bytes, %d sections, checksums (%s) ok\n", info->version,
         (unsigned long long)info->file_bytes, info->section_count, info->version >= 2 ? "XXH3-64" : "crc32");
  printf("position:     %d tokens", info->position);
  if (info->ttt_state)
    printf(" (%d of them pending in the unfinished TTT chunk)", info->pending);
  printf("\n");
  printf("state:        %llu bytes (tokens, KV cache %s%s)\n", (unsigned long long)info->state_bytes,
         info->kv_dtype == 0 ? "float32" : info->kv_dtype == 1 ? "float16" : "of unknown dtype", info->ttt_state ? ", TTT fast weights" : "");
  printf("params:       context %d, TTT %s, chunk %d, eta %g, ttt_clip_tau ", p->context, on_off(p->ttt), p->chunk,
         (double)p->eta);
  if (p->ttt_clip_tau > 0.0f)
    printf("%g", (double)p->ttt_clip_tau);
  else
    printf("off");
  printf(", logits %s\n", p->logits == CLTTT_LOGITS_LAST ? "last row" : "all rows");
  printf("model:        %s, d=%d f=%d, %d layers, %d heads (%d KV) x %d, vocab %d, max positions %d\n",
         info->arch == CLTTT_ARCH_QWEN3 ? "Qwen3" : "LLaMA", info->hidden_size, info->intermediate_size,
         info->num_hidden_layers, info->num_attention_heads, info->num_key_value_heads, info->head_dim,
         info->vocab_size, info->max_position_embeddings);
  if (info->ttt_mode) {
    printf("TTT layers:   ");
    for (int i = 0; i < info->ttt_layer_count && i < CLTTT_SESSION_INFO_TTT_LAYERS; i++)
      printf("%s%d", i ? ", " : "", info->ttt_layers[i]);
    if (info->ttt_layer_count > CLTTT_SESSION_INFO_TTT_LAYERS)
      printf(", ... (%d in all)", info->ttt_layer_count);
    printf("; C=%d, lr %g, %s, target %s\n", info->ttt_chunk, (double)info->ttt_lr,
           info->ttt_proj ? "ttt_proj" : "no ttt_proj",
           info->ttt_target == CLTTT_TARGET_INPUT_EMBED ? "input_embed" : "hidden_states");
  } else {
    printf("TTT layers:   none (ttt_mode false)\n");
  }
  printf("weights:      %llu bytes, hash %016llx\n", (unsigned long long)info->weight_bytes,
         (unsigned long long)info->weights_hash);
}

int command_session(int argc, char **argv) {
  if (argc < 2 || cli_is_help(argv[1])) {
    if (argc < 2) {
      fprintf(stderr, "clttt session: expected 'info FILE' (see --help)\n");
      return 2;
    }
    help();
    return 0;
  }
  if (strcmp(argv[1], "info") != 0) {
    fprintf(stderr, "clttt session: unknown subcommand '%s': expected 'info FILE' (see --help)\n", argv[1]);
    return 2;
  }
  if (argc == 3 && cli_is_help(argv[2])) {
    help();
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "clttt session info: expected one FILE (see --help)\n");
    return 2;
  }
  clttt_session_file_info info;
  int status = clttt_session_read_info(argv[2], &info);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the session file", status);
    return 1;
  }
  print_info(argv[2], &info);
  return 0;
}
