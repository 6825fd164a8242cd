/* config.json of a HuggingFace Qwen3 / LLaMA model, with SPEC.md's TTT keys. */
#ifndef CLTTT_CONFIG_H
#define CLTTT_CONFIG_H

#include "clttt.h"

/* More layers than any model has: a config asking for more is malformed. */
#define CONFIG_MAX_LAYERS 4096

/* Parses `path` (a config.json); the result owns its TTT layer list
 * (clttt_config_free). Defaults are HuggingFace's for the
 * architecture, and SPEC.md section 2's for the TTT keys. Unknown
 * architecture: CLTTT_ERROR_UNSUPPORTED naming it; malformed JSON, wrong
 * types or inconsistent sizes: CLTTT_ERROR_BAD_CONFIG naming file and key. */
clttt_status config_load(clttt_config *config, const char *path);
/* The same from a JSON text already in memory (`origin` names it in errors). */
clttt_status config_parse(clttt_config *config, const char *json_text, const char *origin);
/* q_dim = heads * head_dim, kv_dim = kv_heads * head_dim */
int config_q_dim(const clttt_config *config);
int config_kv_dim(const clttt_config *config);
/* TTT layers in use: 0 without ttt_mode. */
int config_ttt_layer_count(const clttt_config *config);
/* A deep copy (the TTT layer list included), after checking that the list
 * is ascending and inside the model: the library keeps its own copy of any
 * config it is given. */
clttt_status config_copy(clttt_config *copy, const clttt_config *config);

#endif
