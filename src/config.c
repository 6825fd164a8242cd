/* config.json parsing. Defaults follow transformers' LlamaConfig and
 * Qwen3Config (5.x), so that a config read here means what it means there. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "file.h"

/* SPEC.md section 2: the reference code's defaults. */
static const int default_ttt_layers[] = {0, 6, 12, 18, 24, 30};
#define DEFAULT_TTT_CHUNK 8192
#define DEFAULT_TTT_LR 0.3f

typedef struct {
  const char *origin;
  const json_t *root;
} parser;

static const char *json_type_name(const json_t *value) {
  switch (json_typeof(value)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
  }
  return "unknown";
}

/* HuggingFace writes None as null; for an optional key that means "use the
 * default", exactly as an absent key does. */
static const json_t *lookup(const json_t *object, const char *key) {
  const json_t *value = json_object_get(object, key);
  return json_is_null(value) ? NULL : value;
}

/* Integers sometimes arrive as 4096.0 from tools that write every number as a
 * float; a whole real is accepted, a fractional one is not. */
static int integer_value(const json_t *value, long long *out) {
  if (json_is_integer(value)) {
    *out = json_integer_value(value);
    return 1;
  }
  if (json_is_real(value)) {
    double real = json_real_value(value);
    if (real == floor(real) && fabs(real) < 9e15) {
      *out = (long long)real;
      return 1;
    }
  }
  return 0;
}

static clttt_status get_int(const parser *p, const json_t *object, const char *key, int required,
                            int fallback, int minimum, int *out) {
  const json_t *value = lookup(object, key);
  if (!value) {
    if (required)
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: required key \"%s\" missing", p->origin, key);
    *out = fallback;
    return CLTTT_SUCCESS;
  }
  long long number = 0;
  if (!integer_value(value, &number))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" must be an integer, found %s",
                      p->origin, key, json_type_name(value));
  if (number < minimum || number > INT_MAX)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" is %lld, must be in %d..%d",
                      p->origin, key, number, minimum, INT_MAX);
  *out = (int)number;
  return CLTTT_SUCCESS;
}

static clttt_status get_float(const parser *p, const json_t *object, const char *key,
                              float fallback, float *out) {
  const json_t *value = lookup(object, key);
  if (!value) {
    *out = fallback;
    return CLTTT_SUCCESS;
  }
  if (!json_is_number(value))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" must be a number, found %s",
                      p->origin, key, json_type_name(value));
  double number = json_number_value(value);
  if (!isfinite((float)number))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" is %g, not a finite float",
                      p->origin, key, number);
  *out = (float)number;
  return CLTTT_SUCCESS;
}

static clttt_status get_positive_float(const parser *p, const json_t *object, const char *key,
                                       float fallback, float *out) {
  CLTTT_TRY(get_float(p, object, key, fallback, out));
  if (!(*out > 0.0f))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" is %g, must be positive", p->origin,
                      key, (double)*out);
  return CLTTT_SUCCESS;
}

static clttt_status get_bool(const parser *p, const json_t *object, const char *key, int fallback,
                             int *out) {
  const json_t *value = lookup(object, key);
  if (!value) {
    *out = fallback;
    return CLTTT_SUCCESS;
  }
  if (!json_is_boolean(value))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" must be true or false, found %s",
                      p->origin, key, json_type_name(value));
  *out = json_is_true(value);
  return CLTTT_SUCCESS;
}

/* bos/eos: an integer, a list of integers (the first one counts), or null. */
static clttt_status get_token_id(const parser *p, const char *key, int fallback, int *out) {
  const json_t *raw = json_object_get(p->root, key);
  if (!raw) {
    *out = fallback;
    return CLTTT_SUCCESS;
  }
  if (json_is_null(raw)) {
    *out = -1;
    return CLTTT_SUCCESS;
  }
  const json_t *value = raw;
  if (json_is_array(raw)) {
    if (json_array_size(raw) == 0) {
      *out = -1;
      return CLTTT_SUCCESS;
    }
    value = json_array_get(raw, 0);
  }
  long long number = 0;
  if (!integer_value(value, &number) || number < 0 || number > INT_MAX)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                      "%s: key \"%s\" must be a token id, a list of token ids or null", p->origin,
                      key);
  *out = (int)number;
  return CLTTT_SUCCESS;
}

static clttt_status read_architecture(const parser *p, clttt_arch *arch) {
  const json_t *architectures = lookup(p->root, "architectures");
  if (architectures && !json_is_array(architectures))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"architectures\" must be a list, found %s",
                      p->origin, json_type_name(architectures));
  if (architectures && json_array_size(architectures) > 0) {
    const json_t *first = json_array_get(architectures, 0);
    if (!json_is_string(first))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                        "%s: key \"architectures\" must list strings, found %s", p->origin,
                        json_type_name(first));
    const char *name = json_string_value(first);
    if (strcmp(name, "Qwen3ForCausalLM") == 0)
      *arch = CLTTT_ARCH_QWEN3;
    else if (strcmp(name, "LlamaForCausalLM") == 0)
      *arch = CLTTT_ARCH_LLAMA;
    else
      return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                        "%s: architecture %s is not supported (Qwen3ForCausalLM or LlamaForCausalLM)",
                        p->origin, name);
    return CLTTT_SUCCESS;
  }
  const json_t *model_type = lookup(p->root, "model_type");
  if (!model_type)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                      "%s: neither \"architectures\" nor \"model_type\" names the architecture",
                      p->origin);
  if (!json_is_string(model_type))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"model_type\" must be a string, found %s",
                      p->origin, json_type_name(model_type));
  const char *name = json_string_value(model_type);
  if (strcmp(name, "qwen3") == 0)
    *arch = CLTTT_ARCH_QWEN3;
  else if (strcmp(name, "llama") == 0)
    *arch = CLTTT_ARCH_LLAMA;
  else
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                      "%s: model_type %s is not supported (qwen3 or llama)", p->origin, name);
  return CLTTT_SUCCESS;
}

/* YaRN's attention factor as transformers derives it from mscale pairs. */
static double yarn_mscale(double scale, double mscale) {
  return scale <= 1.0 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* RoPE parameters live in "rope_parameters" (transformers 5) or the legacy
 * "rope_scaling" beside a top-level "rope_theta"; both forms are read. */
static clttt_status read_rope(const parser *p, clttt_config *config) {
  const char *section_key = "rope_parameters";
  const json_t *section = lookup(p->root, section_key);
  if (!section) {
    section_key = "rope_scaling";
    section = lookup(p->root, section_key);
  }
  if (section && !json_is_object(section))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s\" must be an object, found %s",
                      p->origin, section_key, json_type_name(section));

  float top_level_theta = 0.0f;
  CLTTT_TRY(get_positive_float(p, p->root, "rope_theta", 10000.0f, &top_level_theta));
  config->rope_theta = top_level_theta;
  config->rope_type = CLTTT_ROPE_DEFAULT;
  config->rope_factor = 1.0f;
  config->rope_original_max_position_embeddings = config->max_position_embeddings;
  config->rope_beta_fast = 32.0f;
  config->rope_beta_slow = 1.0f;
  config->rope_attention_factor = 0.0f;
  config->rope_truncate = 1;
  if (!section)
    return CLTTT_SUCCESS;

  CLTTT_TRY(get_positive_float(p, section, "rope_theta", top_level_theta, &config->rope_theta));
  const char *type_key = "rope_type";
  const json_t *type = lookup(section, type_key);
  if (!type) {
    type_key = "type";
    type = lookup(section, type_key);
  }
  const char *type_name = "default";
  if (type) {
    if (!json_is_string(type))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s.%s\" must be a string, found %s",
                        p->origin, section_key, type_key, json_type_name(type));
    type_name = json_string_value(type);
  }

  if (strcmp(type_name, "default") == 0)
    return CLTTT_SUCCESS;

  CLTTT_TRY(get_int(p, section, "original_max_position_embeddings", 0,
                    config->max_position_embeddings, 1,
                    &config->rope_original_max_position_embeddings));
  if (strcmp(type_name, "llama3") == 0) {
    config->rope_type = CLTTT_ROPE_LLAMA3;
    static const char *const required[] = {"factor", "low_freq_factor", "high_freq_factor"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
      if (!lookup(section, required[i]))
        return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: llama3 RoPE needs key \"%s.%s\"",
                          p->origin, section_key, required[i]);
    CLTTT_TRY(get_positive_float(p, section, "factor", 1.0f, &config->rope_factor));
    CLTTT_TRY(get_positive_float(p, section, "low_freq_factor", 1.0f,
                                 &config->rope_low_freq_factor));
    CLTTT_TRY(get_positive_float(p, section, "high_freq_factor", 1.0f,
                                 &config->rope_high_freq_factor));
    /* The frequency ramp divides by their difference. */
    if (!(config->rope_high_freq_factor > config->rope_low_freq_factor))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                        "%s: key \"%s.high_freq_factor\" (%g) must exceed low_freq_factor (%g)",
                        p->origin, section_key, (double)config->rope_high_freq_factor,
                        (double)config->rope_low_freq_factor);
    return CLTTT_SUCCESS;
  }
  if (strcmp(type_name, "yarn") == 0) {
    config->rope_type = CLTTT_ROPE_YARN;
    /* transformers: without a factor, the ratio of the two context lengths. */
    float implicit_factor = (float)config->max_position_embeddings /
                            (float)config->rope_original_max_position_embeddings;
    CLTTT_TRY(get_positive_float(p, section, "factor", implicit_factor, &config->rope_factor));
    /* transformers uses `value or default`, so 0 also means the default. */
    CLTTT_TRY(get_float(p, section, "beta_fast", 32.0f, &config->rope_beta_fast));
    if (config->rope_beta_fast == 0.0f)
      config->rope_beta_fast = 32.0f;
    CLTTT_TRY(get_float(p, section, "beta_slow", 1.0f, &config->rope_beta_slow));
    if (config->rope_beta_slow == 0.0f)
      config->rope_beta_slow = 1.0f;
    CLTTT_TRY(get_bool(p, section, "truncate", 1, &config->rope_truncate));
    CLTTT_TRY(get_float(p, section, "attention_factor", 0.0f, &config->rope_attention_factor));
    if (config->rope_attention_factor < 0.0f)
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"%s.attention_factor\" is negative",
                        p->origin, section_key);
    float mscale = 0.0f, mscale_all_dim = 0.0f;
    CLTTT_TRY(get_float(p, section, "mscale", 0.0f, &mscale));
    CLTTT_TRY(get_float(p, section, "mscale_all_dim", 0.0f, &mscale_all_dim));
    if (config->rope_attention_factor == 0.0f && mscale != 0.0f && mscale_all_dim != 0.0f)
      config->rope_attention_factor =
          (float)(yarn_mscale(config->rope_factor, mscale) /
                  yarn_mscale(config->rope_factor, mscale_all_dim));
    return CLTTT_SUCCESS;
  }
  return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                    "%s: RoPE type %s is not supported (default, llama3 or yarn)", p->origin,
                    type_name);
}

static clttt_status read_ttt(const parser *p, clttt_config *config) {
  CLTTT_TRY(get_bool(p, p->root, "ttt_mode", 0, &config->ttt_mode));
  CLTTT_TRY(get_int(p, p->root, "ttt_chunk", 0, DEFAULT_TTT_CHUNK, 1, &config->ttt_chunk));
  CLTTT_TRY(get_float(p, p->root, "ttt_lr", DEFAULT_TTT_LR, &config->ttt_lr));
  /* Finite but absurd steps (3e38) overflow W to inf within a chunk or two. */
  if (config->ttt_mode && fabsf(config->ttt_lr) > 100.0f)
    log_warning("%s: ttt_lr %g is far outside the step sizes TTT is trained with (0.01-3)", p->origin,
                (double)config->ttt_lr);
  CLTTT_TRY(get_float(p, p->root, "ttt_clip_tau", 0.0f, &config->ttt_clip_tau));
  if (config->ttt_clip_tau < 0.0f)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"ttt_clip_tau\" is %g: must be >= 0 (0 = no clipping)",
                      p->origin, (double)config->ttt_clip_tau);
  CLTTT_TRY(get_bool(p, p->root, "ttt_proj", 1, &config->ttt_proj));

  config->ttt_target = CLTTT_TARGET_HIDDEN_STATES;
  const json_t *target = lookup(p->root, "ttt_target");
  if (target) {
    const char *name = json_is_string(target) ? json_string_value(target) : NULL;
    if (name && strcmp(name, "hidden_states") == 0)
      config->ttt_target = CLTTT_TARGET_HIDDEN_STATES;
    else if (name && strcmp(name, "input_embed") == 0)
      config->ttt_target = CLTTT_TARGET_INPUT_EMBED;
    else
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                        "%s: key \"ttt_target\" must be \"hidden_states\" or \"input_embed\", "
                        "found %s%s%s",
                        p->origin, name ? "\"" : "", name ? name : json_type_name(target),
                        name ? "\"" : "");
  }

  /* Their code only tests membership, so an index past the last layer (the
   * authors' classes write [0, 6, ..., 30] by default, and their 8B
   * configs list 36) does nothing there: it is skipped here with a word. */
  char *selected = calloc((size_t)config->num_hidden_layers, 1);
  if (!selected)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for ttt_layers", p->origin);
  const json_t *layers = lookup(p->root, "ttt_layers");
  if (layers) {
    if (!json_is_array(layers)) {
      free(selected);
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"ttt_layers\" must be a list, found %s",
                        p->origin, json_type_name(layers));
    }
    char skipped[256] = "";
    size_t skipped_length = 0;
    int skipped_count = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
      long long index = 0;
      if (!integer_value(json_array_get(layers, i), &index) || index < 0) {
        free(selected);
        return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                          "%s: key \"ttt_layers\" entry %zu is not a layer index (a whole number >= 0)",
                          p->origin, i);
      }
      if (index < config->num_hidden_layers) {
        selected[index] = 1;
        continue;
      }
      skipped_count++;
      if (skipped_length < sizeof skipped - 24) {
        int written = snprintf(skipped + skipped_length, sizeof skipped - skipped_length, "%s%lld",
                               skipped_count > 1 ? ", " : "", index);
        if (written > 0)
          skipped_length += (size_t)written;
      }
    }
    if (skipped_count > 0 && config->ttt_mode)
      log_warning("%s: ttt_layers entr%s %s past the last layer (%d) ignored", p->origin,
                  skipped_count == 1 ? "y" : "ies", skipped, config->num_hidden_layers - 1);
  } else {
    /* The default list is written for 36-layer models; in a smaller model
     * the reference simply never meets the larger indices. */
    for (size_t i = 0; i < sizeof default_ttt_layers / sizeof *default_ttt_layers; i++)
      if (default_ttt_layers[i] < config->num_hidden_layers)
        selected[default_ttt_layers[i]] = 1;
  }
  /* Without ttt_mode the model is plain whatever the other TTT keys say. */
  int count = 0;
  for (int i = 0; config->ttt_mode && i < config->num_hidden_layers; i++)
    count += selected[i];
  clttt_status status = CLTTT_SUCCESS;
  if (count > 0) {
    config->ttt_layers = malloc((size_t)count * sizeof *config->ttt_layers);
    if (!config->ttt_layers)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for ttt_layers", p->origin);
    for (int i = 0; config->ttt_layers && i < config->num_hidden_layers; i++)
      if (selected[i])
        config->ttt_layers[config->ttt_layer_count++] = i;
  }
  free(selected);
  return status;
}

static clttt_status read_sizes(const parser *p, clttt_config *config) {
  const int qwen3 = config->arch == CLTTT_ARCH_QWEN3;
  CLTTT_TRY(get_int(p, p->root, "hidden_size", 1, 0, 1, &config->hidden_size));
  CLTTT_TRY(get_int(p, p->root, "intermediate_size", 1, 0, 1, &config->intermediate_size));
  CLTTT_TRY(get_int(p, p->root, "num_hidden_layers", 1, 0, 1, &config->num_hidden_layers));
  if (config->num_hidden_layers > CONFIG_MAX_LAYERS)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"num_hidden_layers\" is %d, at most %d supported",
                      p->origin, config->num_hidden_layers, CONFIG_MAX_LAYERS);
  CLTTT_TRY(get_int(p, p->root, "num_attention_heads", 1, 0, 1, &config->num_attention_heads));
  CLTTT_TRY(get_int(p, p->root, "num_key_value_heads", 0, config->num_attention_heads, 1,
                    &config->num_key_value_heads));
  if (config->num_attention_heads % config->num_key_value_heads != 0)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                      "%s: key \"num_key_value_heads\" (%d) must divide num_attention_heads (%d)",
                      p->origin, config->num_key_value_heads, config->num_attention_heads);
  if (lookup(p->root, "head_dim") || qwen3) {
    /* Qwen3Config's head_dim is a fixed 128 rather than derived. */
    CLTTT_TRY(get_int(p, p->root, "head_dim", 0, 128, 1, &config->head_dim));
  } else {
    if (config->hidden_size % config->num_attention_heads != 0)
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                        "%s: key \"num_attention_heads\" (%d) must divide hidden_size (%d)",
                        p->origin, config->num_attention_heads, config->hidden_size);
    config->head_dim = config->hidden_size / config->num_attention_heads;
  }
  /* RoPE rotates pairs of channels. */
  if (config->head_dim % 2 != 0)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"head_dim\" is %d, must be even",
                      p->origin, config->head_dim);
  if ((long long)config->num_attention_heads * config->head_dim > INT_MAX)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: key \"head_dim\" is too large", p->origin);
  CLTTT_TRY(get_int(p, p->root, "vocab_size", 1, 0, 1, &config->vocab_size));
  CLTTT_TRY(get_int(p, p->root, "max_position_embeddings", 0, qwen3 ? 32768 : 2048, 1,
                    &config->max_position_embeddings));
  CLTTT_TRY(get_positive_float(p, p->root, "rms_norm_eps", 1e-6f, &config->rms_norm_eps));
  return CLTTT_SUCCESS;
}

static clttt_status parse_root(const parser *p, clttt_config *config) {
  CLTTT_TRY(read_architecture(p, &config->arch));
  const int qwen3 = config->arch == CLTTT_ARCH_QWEN3;
  CLTTT_TRY(read_sizes(p, config));
  CLTTT_TRY(get_bool(p, p->root, "tie_word_embeddings", 0, &config->tie_word_embeddings));
  CLTTT_TRY(get_bool(p, p->root, "attention_bias", 0, &config->attention_bias));
  /* Qwen3 has no MLP bias; the key is LLaMA's alone. */
  config->mlp_bias = 0;
  if (!qwen3)
    CLTTT_TRY(get_bool(p, p->root, "mlp_bias", 0, &config->mlp_bias));
  CLTTT_TRY(get_token_id(p, "bos_token_id", qwen3 ? -1 : 1, &config->bos_token_id));
  CLTTT_TRY(get_token_id(p, "eos_token_id", qwen3 ? -1 : 2, &config->eos_token_id));
  CLTTT_TRY(read_rope(p, config));
  CLTTT_TRY(read_ttt(p, config));
  return CLTTT_SUCCESS;
}

clttt_status config_parse(clttt_config *config, const char *json_text, const char *origin) {
  if (!config || !json_text)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "config_parse: config and text are required");
  if (!origin)
    origin = "config";
  memset(config, 0, sizeof *config);
  json_error_t error;
  json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &error);
  if (!root)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: malformed JSON at line %d column %d: %s",
                      origin, error.line, error.column, error.text);
  clttt_status status;
  if (!json_is_object(root)) {
    status = clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: top level is not a JSON object", origin);
  } else {
    parser p = {origin, root};
    status = parse_root(&p, config);
  }
  json_decref(root);
  if (status != CLTTT_SUCCESS)
    clttt_config_free(config);
  return status;
}

clttt_status config_load(clttt_config *config, const char *path) {
  if (!config || !path)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "config_load: config and path are required");
  char *text = NULL;
  size_t used = 0;
  CLTTT_TRY(file_read_all(path, FILE_CAP_CONFIG, "a config.json", &text, &used));
  /* An embedded NUL would silently cut the JSON short. */
  if (strlen(text) != used) {
    free(text);
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "%s: contains a NUL byte", path);
  }
  clttt_status status = config_parse(config, text, path);
  free(text);
  return status;
}

int config_q_dim(const clttt_config *config) {
  return config->num_attention_heads * config->head_dim;
}

int config_kv_dim(const clttt_config *config) {
  return config->num_key_value_heads * config->head_dim;
}

int config_ttt_layer_count(const clttt_config *config) {
  return config->ttt_mode ? config->ttt_layer_count : 0;
}

int clttt_config_is_ttt_layer(const clttt_config *config, int layer) {
  if (!config || !config->ttt_mode)
    return 0;
  for (int i = 0; i < config->ttt_layer_count; i++)
    if (config->ttt_layers[i] == layer)
      return 1;
  return 0;
}

void clttt_config_free(clttt_config *config) {
  if (!config)
    return;
  free(config->ttt_layers);
  config->ttt_layers = NULL;
  config->ttt_layer_count = 0;
}

clttt_status config_copy(clttt_config *copy, const clttt_config *config) {
  *copy = *config;
  copy->ttt_layers = NULL;
  copy->ttt_layer_count = 0;
  if (config->ttt_layer_count < 0 || (config->ttt_layer_count > 0 && !config->ttt_layers))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "config: %d TTT layers but no list of them",
                      config->ttt_layer_count);
  if (config->ttt_layer_count == 0)
    return CLTTT_SUCCESS;
  for (int i = 0; i < config->ttt_layer_count; i++)
    if (config->ttt_layers[i] < 0 || config->ttt_layers[i] >= config->num_hidden_layers ||
        (i > 0 && config->ttt_layers[i] <= config->ttt_layers[i - 1]))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG,
                        "config: TTT layer list entry %d (%d) is not an ascending layer index in 0..%d", i,
                        config->ttt_layers[i], config->num_hidden_layers - 1);
  copy->ttt_layers = malloc((size_t)config->ttt_layer_count * sizeof *copy->ttt_layers);
  if (!copy->ttt_layers)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "copying the config's TTT layers");
  memcpy(copy->ttt_layers, config->ttt_layers, (size_t)config->ttt_layer_count * sizeof *copy->ttt_layers);
  copy->ttt_layer_count = config->ttt_layer_count;
  return CLTTT_SUCCESS;
}

clttt_status clttt_config_load(clttt_config *config, const char *dir) {
  if (!config || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_config_load: NULL argument");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  return config_load(config, path);
}
