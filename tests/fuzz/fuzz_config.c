/* libFuzzer target: config_parse (config.json text) on arbitrary bytes. */
#include <stdlib.h>

#include "config.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_string(data, size);
  clttt_config config;
  if (config_parse(&config, text, "fuzz/config.json") == CLTTT_SUCCESS) {
    config_q_dim(&config);
    config_kv_dim(&config);
    config_ttt_layer_count(&config);
    for (int layer = 0; layer < config.num_hidden_layers && layer < 64; layer++)
      clttt_config_is_ttt_layer(&config, layer);
    clttt_config_free(&config);
  }
  free(text);
  return 0;
}
