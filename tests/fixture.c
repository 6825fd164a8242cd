/* Tiny fixture models written as real HuggingFace directories (fixture.h).
 *
 * Self-contained on purpose: only clttt.h's types, no library symbols, so
 * that tests/write-fixtures and the suites can use it whatever state the
 * library is in.
 *
 * Weights: every tensor is drawn from splitmix64 seeded by a 64-bit FNV-1a
 * hash of (fixture seed as 8 little-endian bytes, tensor name); the fixture
 * seed is the FNV-1a hash of the fixture's name. Values are uniform in
 * [offset - scale, offset + scale]:
 *   embeddings              +-1
 *   linear weights          +-1.5/sqrt(fan_in)
 *   norm weights            1 +- 0.2
 *   biases                  +-0.1
 *   ttt_conv (d x 1 x 5)    +-0.5
 *   ttt_proj (d x d)        0.5 * identity + uniform +-0.5/sqrt(d)
 * They are rounded to the fixture's storage dtype (round to nearest even),
 * so every reader sees exactly the same numbers. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fixture.h"

/* ------------------------------------------------------------------ */
/* The table                                                            */

#define QWEN3_COMMON                                                                         \
  .arch = CLTTT_ARCH_QWEN3, .vocab_size = 256, .max_position_embeddings = 256,               \
  .rms_norm_eps = 1e-6f, .rope_theta = 1000000.0f, .bos_token_id = 1, .eos_token_id = 2

#define LLAMA_COMMON                                                                         \
  .arch = CLTTT_ARCH_LLAMA, .vocab_size = 256, .max_position_embeddings = 256,               \
  .rms_norm_eps = 1e-5f, .bos_token_id = 1, .eos_token_id = 2

/* What a config.json without TTT keys means (SPEC.md section 2). */
#define NO_TTT                                                                               \
  .ttt_mode = 0, .ttt_chunk = 8192, .ttt_lr = 0.3f, .ttt_proj = 1,                            \
  .ttt_target = CLTTT_TARGET_HIDDEN_STATES

/* Step size of the TTT fixtures: large enough that the first update moves
 * the logits well above test tolerances, small enough that hundreds of
 * tokens stay finite and tame (checked by tests/golden/generate.py). */
#define TTT_ETA 0.0078125f /* 1/128 */

/* Base fixtures carry no TTT keys in config.json: ttt_mode false, and the
 * other TTT fields hold SPEC.md's defaults for absent keys (ttt_layers is
 * empty: with ttt_mode false no layer is a TTT layer). */
static const fixture_spec fixtures[] = {
    {.name = "qwen3-tied",
     .about = "Qwen3, GQA 4/2, q/k norm, tied embeddings, F32, one file",
     .config = {QWEN3_COMMON, NO_TTT, .hidden_size = 64, .intermediate_size = 160, .num_hidden_layers = 2,
                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16,
                .tie_word_embeddings = 1},
     .shards = 1,
     .dtype = "F32"},
    {.name = "qwen3-yarn",
     .about = "Qwen3, untied, head_dim 32 (q_dim 128 != d), MQA, YaRN x4, BF16, two shards",
     .config = {QWEN3_COMMON, NO_TTT, .hidden_size = 64, .intermediate_size = 160, .num_hidden_layers = 3,
                .num_attention_heads = 4, .num_key_value_heads = 1, .head_dim = 32,
                .tie_word_embeddings = 0, .rope_type = CLTTT_ROPE_YARN, .rope_factor = 4.0f,
                /* max_position_embeddings 256 = factor x original, as
                 * transformers expects (it warns otherwise, and older
                 * versions use the ratio instead of factor) */
                .rope_original_max_position_embeddings = 64, .rope_beta_fast = 32.0f,
                .rope_beta_slow = 1.0f, .rope_attention_factor = 0.0f, .rope_truncate = 1},
     .shards = 2,
     .dtype = "BF16"},
    {.name = "llama-bias",
     .about = "LLaMA, GQA 8/2, head_dim 8, attention and MLP biases, untied, F16",
     .config = {LLAMA_COMMON, NO_TTT, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 2,
                .num_attention_heads = 8, .num_key_value_heads = 2, .head_dim = 8,
                .rope_theta = 10000.0f, .tie_word_embeddings = 0, .attention_bias = 1,
                .mlp_bias = 1},
     .shards = 1,
     .dtype = "F16"},
    {.name = "llama3-scaled",
     .about = "LLaMA, MHA 4/4, llama3 RoPE scaling with kept, interpolated and scaled bands, F32",
     .config = {LLAMA_COMMON, NO_TTT, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 2,
                .num_attention_heads = 4, .num_key_value_heads = 4, .head_dim = 16,
                /* head_dim 16, theta 1e4: wavelengths 2 pi 10^(i/2) = 6.3 (< 8: kept),
                 * 19.9 (8..32: interpolated), 62.8 and up (> 32: divided by 8) */
                .rope_theta = 10000.0f, .tie_word_embeddings = 0, .rope_type = CLTTT_ROPE_LLAMA3,
                .rope_factor = 8.0f, .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f,
                .rope_original_max_position_embeddings = 32},
     .shards = 1,
     .dtype = "F32"},
    {.name = "ttt-proj-hidden",
     .about = "Qwen3 + TTT in layers 0 and 2, C = 16, with ttt_proj, target hidden_states",
     .config = {QWEN3_COMMON, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 3,
                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16,
                .tie_word_embeddings = 1, .ttt_mode = 1, .ttt_layers = (int[]){0, 2}, .ttt_layer_count = 2,
                .ttt_chunk = 16, .ttt_lr = TTT_ETA, .ttt_proj = 1,
                .ttt_target = CLTTT_TARGET_HIDDEN_STATES},
     .shards = 1,
     .dtype = "F32"},
    {.name = "ttt-noproj-embed",
     .about = "Qwen3 + TTT in layer 1, C = 12, no ttt_proj, target input_embed",
     .config = {QWEN3_COMMON, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 3,
                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16,
                .tie_word_embeddings = 1, .ttt_mode = 1, .ttt_layers = (int[]){1}, .ttt_layer_count = 1, .ttt_chunk = 12,
                .ttt_lr = TTT_ETA, .ttt_proj = 0, .ttt_target = CLTTT_TARGET_INPUT_EMBED},
     .shards = 1,
     .dtype = "F32"},
    {.name = "ttt-big-chunk",
     .about = "Qwen3 + TTT in every layer, C = 128 (longer than the goldens: base model output)",
     .config = {QWEN3_COMMON, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 3,
                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16,
                .tie_word_embeddings = 1, .ttt_mode = 1, .ttt_layers = (int[]){0, 1, 2}, .ttt_layer_count = 3,
                .ttt_chunk = 128, .ttt_lr = TTT_ETA, .ttt_proj = 1,
                .ttt_target = CLTTT_TARGET_HIDDEN_STATES},
     .shards = 1,
     .dtype = "F32"},
    {.name = "ttt-llama-embed",
     .about = "LLaMA + TTT in layers 0 and 1, C = 32, ttt_proj, target input_embed, MLP bias",
     .config = {LLAMA_COMMON, .hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 2,
                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16,
                .rope_theta = 500000.0f, .tie_word_embeddings = 0, .mlp_bias = 1, .ttt_mode = 1,
                .ttt_layers = (int[]){0, 1}, .ttt_layer_count = 2, .ttt_chunk = 32, .ttt_lr = TTT_ETA, .ttt_proj = 1,
                .ttt_target = CLTTT_TARGET_INPUT_EMBED},
     .shards = 1,
     .dtype = "F32"},
};

#define FIXTURE_COUNT ((int)(sizeof fixtures / sizeof fixtures[0]))

int fixture_count(void) { return FIXTURE_COUNT; }

const fixture_spec *fixture_get(int index) {
  return index >= 0 && index < FIXTURE_COUNT ? &fixtures[index] : NULL;
}

const fixture_spec *fixture_find(const char *name) {
  if (!name)
    return NULL;
  for (int i = 0; i < FIXTURE_COUNT; i++)
    if (strcmp(fixtures[i].name, name) == 0)
      return &fixtures[i];
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Deterministic numbers                                                */

static uint64_t fnv1a(uint64_t hash, const unsigned char *bytes, size_t count) {
  for (size_t i = 0; i < count; i++) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t fixture_seed(const char *name) {
  return fnv1a(FNV_OFFSET, (const unsigned char *)name, strlen(name));
}

void fixture_fill(float *out, long count, unsigned long long seed, const char *name, float scale,
                  float offset) {
  unsigned char seed_bytes[8];
  for (int i = 0; i < 8; i++)
    seed_bytes[i] = (unsigned char)(seed >> (8 * i));
  uint64_t state = fnv1a(FNV_OFFSET, seed_bytes, 8);
  state = fnv1a(state, (const unsigned char *)name, strlen(name));
  for (long i = 0; i < count; i++) {
    /* 53 random bits -> [0, 1) -> [-1, 1) */
    const double unit = (double)(splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
    out[i] = (float)((double)offset + (double)scale * (2.0 * unit - 1.0));
  }
}

/* ------------------------------------------------------------------ */
/* Storage dtypes (round to nearest, ties to even)                     */

static uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

static uint16_t to_bf16(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
    return (uint16_t)((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

static uint16_t to_f16(float value) {
  const uint32_t bits = float_bits(value);
  const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u)
    return (uint16_t)(sign | 0x7e00u);
  if (magnitude >= 0x477ff000u) /* rounds to 65536 or more (or is infinite) */
    return (uint16_t)(sign | 0x7c00u);
  const int exponent = (int)(magnitude >> 23) - 127;
  uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u; /* 24 bits with the hidden one */
  int shift;                                               /* bits to drop from the 24 */
  uint32_t half_exponent;
  if (exponent >= -14) {
    shift = 13;
    half_exponent = (uint32_t)(exponent + 15);
  } else {
    if (magnitude == 0)
      return sign;
    shift = 13 + (-14 - exponent); /* subnormal: value = m * 2^-24 */
    half_exponent = 0;
    if (shift > 25)
      return sign; /* below half of the smallest subnormal */
  }
  uint32_t kept = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (kept & 1u)))
    kept++;
  uint32_t result;
  if (half_exponent == 0) {
    result = kept; /* may carry into the exponent field: then it is the smallest normal */
  } else {
    /* kept has the hidden bit at 10; a carry to bit 11 bumps the exponent */
    result = (half_exponent << 10) + (kept - 0x400u);
  }
  return (uint16_t)(sign | result);
}

static size_t dtype_size(const char *dtype) { return strcmp(dtype, "F32") == 0 ? 4 : 2; }

static void encode(const float *values, long count, const char *dtype, unsigned char *out) {
  for (long i = 0; i < count; i++) {
    if (strcmp(dtype, "F32") == 0) {
      const uint32_t bits = float_bits(values[i]);
      for (int b = 0; b < 4; b++)
        out[4 * i + b] = (unsigned char)(bits >> (8 * b));
    } else {
      const uint16_t bits = strcmp(dtype, "F16") == 0 ? to_f16(values[i]) : to_bf16(values[i]);
      out[2 * i] = (unsigned char)bits;
      out[2 * i + 1] = (unsigned char)(bits >> 8);
    }
  }
}

/* ------------------------------------------------------------------ */
/* Tensor list                                                          */

typedef struct {
  char name[96];
  int ndim;
  long shape[3];
  float scale, offset;
  int diagonal; /* add 0.5 on the diagonal (ttt_proj) */
} tensor_plan;

typedef struct {
  tensor_plan *items;
  int count, capacity;
} plan_list;

static int plan_add(plan_list *list, const char *name, int ndim, long a, long b, long c,
                    float scale, float offset) {
  if (list->count == list->capacity) {
    const int capacity = list->capacity ? 2 * list->capacity : 64;
    tensor_plan *items = realloc(list->items, (size_t)capacity * sizeof *items);
    if (!items)
      return -1;
    list->items = items;
    list->capacity = capacity;
  }
  tensor_plan *plan = &list->items[list->count++];
  memset(plan, 0, sizeof *plan);
  snprintf(plan->name, sizeof plan->name, "%s", name);
  plan->ndim = ndim;
  plan->shape[0] = a;
  plan->shape[1] = b;
  plan->shape[2] = c;
  plan->scale = scale;
  plan->offset = offset;
  return 0;
}

static long plan_elements(const tensor_plan *plan) {
  long count = 1;
  for (int i = 0; i < plan->ndim; i++)
    count *= plan->shape[i];
  return count;
}

static float linear_scale(long fan_in) { return (float)(1.5 / sqrt((double)fan_in)); }

static int build_plan(const clttt_config *c, plan_list *list) {
  const long d = c->hidden_size, f = c->intermediate_size, v = c->vocab_size;
  const long q_dim = (long)c->num_attention_heads * c->head_dim;
  const long kv_dim = (long)c->num_key_value_heads * c->head_dim;
  char name[96];
  int failed = 0;
#define ADD1(n, a, s, o) failed |= plan_add(list, n, 1, a, 0, 0, s, o)
#define ADD2(n, a, b, s, o) failed |= plan_add(list, n, 2, a, b, 0, s, o)
  ADD2("model.embed_tokens.weight", v, d, 1.0f, 0.0f);
  for (int layer = 0; layer < c->num_hidden_layers; layer++) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "model.layers.%d.", layer);
#define NAME(suffix) (snprintf(name, sizeof name, "%s%s", prefix, suffix), name)
    ADD1(NAME("input_layernorm.weight"), d, 0.2f, 1.0f);
    ADD2(NAME("self_attn.q_proj.weight"), q_dim, d, linear_scale(d), 0.0f);
    if (c->attention_bias)
      ADD1(NAME("self_attn.q_proj.bias"), q_dim, 0.1f, 0.0f);
    ADD2(NAME("self_attn.k_proj.weight"), kv_dim, d, linear_scale(d), 0.0f);
    if (c->attention_bias)
      ADD1(NAME("self_attn.k_proj.bias"), kv_dim, 0.1f, 0.0f);
    ADD2(NAME("self_attn.v_proj.weight"), kv_dim, d, linear_scale(d), 0.0f);
    if (c->attention_bias)
      ADD1(NAME("self_attn.v_proj.bias"), kv_dim, 0.1f, 0.0f);
    ADD2(NAME("self_attn.o_proj.weight"), d, q_dim, linear_scale(q_dim), 0.0f);
    if (c->attention_bias)
      ADD1(NAME("self_attn.o_proj.bias"), d, 0.1f, 0.0f);
    if (c->arch == CLTTT_ARCH_QWEN3) {
      ADD1(NAME("self_attn.q_norm.weight"), c->head_dim, 0.2f, 1.0f);
      ADD1(NAME("self_attn.k_norm.weight"), c->head_dim, 0.2f, 1.0f);
    }
    ADD1(NAME("post_attention_layernorm.weight"), d, 0.2f, 1.0f);
    ADD2(NAME("mlp.gate_proj.weight"), f, d, linear_scale(d), 0.0f);
    if (c->mlp_bias)
      ADD1(NAME("mlp.gate_proj.bias"), f, 0.1f, 0.0f);
    ADD2(NAME("mlp.up_proj.weight"), f, d, linear_scale(d), 0.0f);
    if (c->mlp_bias)
      ADD1(NAME("mlp.up_proj.bias"), f, 0.1f, 0.0f);
    ADD2(NAME("mlp.down_proj.weight"), d, f, linear_scale(f), 0.0f);
    if (c->mlp_bias)
      ADD1(NAME("mlp.down_proj.bias"), d, 0.1f, 0.0f);
    if (clttt_config_is_ttt_layer(c, layer)) {
      failed |= plan_add(list, NAME("mlp.ttt_conv.weight"), 3, d, 1, 5, 0.5f, 0.0f);
      if (c->ttt_proj) {
        ADD2(NAME("mlp.ttt_proj.weight"), d, d, (float)(0.5 / sqrt((double)d)), 0.0f);
        if (!failed)
          list->items[list->count - 1].diagonal = 1;
      }
    }
#undef NAME
  }
  ADD1("model.norm.weight", d, 0.2f, 1.0f);
  if (!c->tie_word_embeddings)
    ADD2("lm_head.weight", v, d, linear_scale(d), 0.0f);
#undef ADD1
#undef ADD2
  return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

static int make_directories(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
    return -1;
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(path, 0777) != 0 && errno != EEXIST)
    return -1;
  struct stat info;
  return stat(path, &info) == 0 && S_ISDIR(info.st_mode) ? 0 : -1;
}

/* A growing string. */
typedef struct {
  char *text;
  size_t length, capacity;
  int failed;
} text_buffer;

static void append(text_buffer *buffer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void append(text_buffer *buffer, const char *format, ...) {
  if (buffer->failed)
    return;
  for (;;) {
    va_list args;
    va_start(args, format);
    const size_t room = buffer->capacity - buffer->length;
    const int written = vsnprintf(buffer->text ? buffer->text + buffer->length : NULL,
                                  buffer->text ? room : 0, format, args);
    va_end(args);
    if (written < 0) {
      buffer->failed = 1;
      return;
    }
    if (buffer->text && (size_t)written < room) {
      buffer->length += (size_t)written;
      return;
    }
    size_t capacity = buffer->capacity ? buffer->capacity : 1024;
    while (capacity < buffer->length + (size_t)written + 1)
      capacity *= 2;
    char *text = realloc(buffer->text, capacity);
    if (!text) {
      buffer->failed = 1;
      return;
    }
    buffer->text = text;
    buffer->capacity = capacity;
  }
}

/* A JSON number that Python reads as a float (always a '.' or exponent). */
static void append_float(text_buffer *buffer, float value) {
  char number[64];
  if (value == floorf(value) && fabsf(value) < 1e15f) {
    append(buffer, "%.1f", (double)value);
    return;
  }
  for (int digits = 6; digits <= 9; digits++) { /* shortest text that reads back exactly */
    snprintf(number, sizeof number, "%.*g", digits, (double)value);
    if ((float)strtod(number, NULL) == value)
      break;
  }
  if (!strpbrk(number, ".eE"))
    strcat(number, ".0");
  append(buffer, "%s", number);
}

static const char *torch_dtype(const char *dtype) {
  return strcmp(dtype, "F32") == 0 ? "float32" : strcmp(dtype, "F16") == 0 ? "float16" : "bfloat16";
}

static char *config_json(const fixture_spec *spec) {
  const clttt_config *c = &spec->config;
  const int qwen = c->arch == CLTTT_ARCH_QWEN3;
  text_buffer b = {0};
  append(&b, "{\n");
  append(&b, "  \"architectures\": [\"%s\"],\n", qwen ? "Qwen3ForCausalLM" : "LlamaForCausalLM");
  append(&b, "  \"model_type\": \"%s\",\n", qwen ? "qwen3" : "llama");
  append(&b, "  \"attention_bias\": %s,\n", c->attention_bias ? "true" : "false");
  append(&b, "  \"attention_dropout\": 0.0,\n");
  if (c->bos_token_id >= 0)
    append(&b, "  \"bos_token_id\": %d,\n", c->bos_token_id);
  if (c->eos_token_id >= 0)
    append(&b, "  \"eos_token_id\": %d,\n", c->eos_token_id);
  append(&b, "  \"head_dim\": %d,\n", c->head_dim);
  append(&b, "  \"hidden_act\": \"silu\",\n");
  append(&b, "  \"hidden_size\": %d,\n", c->hidden_size);
  append(&b, "  \"initializer_range\": 0.02,\n");
  append(&b, "  \"intermediate_size\": %d,\n", c->intermediate_size);
  append(&b, "  \"max_position_embeddings\": %d,\n", c->max_position_embeddings);
  if (qwen)
    append(&b, "  \"max_window_layers\": %d,\n", c->num_hidden_layers);
  else
    append(&b, "  \"mlp_bias\": %s,\n", c->mlp_bias ? "true" : "false");
  append(&b, "  \"num_attention_heads\": %d,\n", c->num_attention_heads);
  append(&b, "  \"num_hidden_layers\": %d,\n", c->num_hidden_layers);
  append(&b, "  \"num_key_value_heads\": %d,\n", c->num_key_value_heads);
  if (!qwen)
    append(&b, "  \"pretraining_tp\": 1,\n");
  append(&b, "  \"rms_norm_eps\": ");
  append_float(&b, c->rms_norm_eps);
  append(&b, ",\n");
  /* As real checkpoints (LLaMA-3.1, Qwen3 with YaRN enabled) write it. */
  if (c->rope_type == CLTTT_ROPE_LLAMA3) {
    append(&b, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": ");
    append_float(&b, c->rope_factor);
    append(&b, ", \"low_freq_factor\": ");
    append_float(&b, c->rope_low_freq_factor);
    append(&b, ", \"high_freq_factor\": ");
    append_float(&b, c->rope_high_freq_factor);
    append(&b, ", \"original_max_position_embeddings\": %d},\n",
           c->rope_original_max_position_embeddings);
  } else if (c->rope_type == CLTTT_ROPE_YARN) {
    append(&b, "  \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": ");
    append_float(&b, c->rope_factor);
    append(&b, ", \"original_max_position_embeddings\": %d},\n",
           c->rope_original_max_position_embeddings);
  } else {
    append(&b, "  \"rope_scaling\": null,\n");
  }
  append(&b, "  \"rope_theta\": ");
  append_float(&b, c->rope_theta);
  append(&b, ",\n");
  if (qwen)
    append(&b, "  \"sliding_window\": null,\n");
  append(&b, "  \"tie_word_embeddings\": %s,\n", c->tie_word_embeddings ? "true" : "false");
  append(&b, "  \"torch_dtype\": \"%s\",\n", torch_dtype(spec->dtype));
  if (c->ttt_mode) {
    append(&b, "  \"ttt_mode\": true,\n");
    append(&b, "  \"ttt_layers\": [");
    int first = 1;
    for (int i = 0; i < c->ttt_layer_count; i++) {
      append(&b, "%s%d", first ? "" : ", ", c->ttt_layers[i]);
      first = 0;
    }
    append(&b, "],\n");
    append(&b, "  \"ttt_chunk\": %d,\n", c->ttt_chunk);
    append(&b, "  \"ttt_lr\": ");
    append_float(&b, c->ttt_lr);
    append(&b, ",\n");
    append(&b, "  \"ttt_proj\": %s,\n", c->ttt_proj ? "true" : "false");
    append(&b, "  \"ttt_target\": \"%s\",\n",
           c->ttt_target == CLTTT_TARGET_INPUT_EMBED ? "input_embed" : "hidden_states");
  }
  append(&b, "  \"use_cache\": true,\n");
  if (qwen)
    append(&b, "  \"use_sliding_window\": false,\n");
  append(&b, "  \"vocab_size\": %d\n", c->vocab_size);
  append(&b, "}\n");
  if (b.failed) {
    free(b.text);
    return NULL;
  }
  return b.text;
}

static int write_file(const char *dir, const char *name, const void *data, size_t size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *file = fopen(path, "wb");
  if (!file) {
    fprintf(stderr, "fixture: cannot create %s: %s\n", path, strerror(errno));
    return -1;
  }
  const int ok = fwrite(data, 1, size, file) == size;
  if (fclose(file) != 0 || !ok) {
    fprintf(stderr, "fixture: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

static int ends_with(const char *text, const char *suffix) {
  size_t a = strlen(text), b = strlen(suffix);
  return a >= b && strcmp(text + a - b, suffix) == 0;
}

/* The dtype tensor `name` is stored in. */
static const char *tensor_dtype(const fixture_spec *spec, const char *name) {
  const int matrix = (ends_with(name, "_proj.weight") && !ends_with(name, "ttt_proj.weight")) ||
                     ends_with(name, "embed_tokens.weight") || ends_with(name, "lm_head.weight");
  return matrix && spec->matrix_dtype ? spec->matrix_dtype : spec->dtype;
}

static size_t tensor_bytes(const fixture_spec *spec, const tensor_plan *plan) {
  return (size_t)plan_elements(plan) * dtype_size(tensor_dtype(spec, plan->name));
}

/* Writes tensors [first, last) of the plan as one safetensors file. */
static int write_shard(const fixture_spec *spec, const plan_list *plans, int first, int last,
                       const char *dir, const char *file_name) {
  const unsigned long long seed = fixture_seed(spec->name);
  text_buffer header = {0};
  append(&header, "{\"__metadata__\":{\"format\":\"pt\"}");
  size_t offset = 0;
  for (int i = first; i < last; i++) {
    const tensor_plan *plan = &plans->items[i];
    const size_t bytes = tensor_bytes(spec, plan);
    append(&header, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", plan->name, tensor_dtype(spec, plan->name));
    for (int k = 0; k < plan->ndim; k++)
      append(&header, "%s%ld", k ? "," : "", plan->shape[k]);
    append(&header, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
    offset += bytes;
  }
  append(&header, "}");
  while (!header.failed && (8 + header.length) % 8 != 0)
    append(&header, " ");
  if (header.failed) {
    free(header.text);
    return -1;
  }
  const size_t total = 8 + header.length + offset;
  unsigned char *file = malloc(total);
  if (!file) {
    free(header.text);
    return -1;
  }
  for (int b = 0; b < 8; b++)
    file[b] = (unsigned char)((uint64_t)header.length >> (8 * b));
  memcpy(file + 8, header.text, header.length);
  free(header.text);
  unsigned char *data = file + total - offset;
  int status = 0;
  for (int i = first; i < last && status == 0; i++) {
    const tensor_plan *plan = &plans->items[i];
    const long count = plan_elements(plan);
    float *values = malloc((size_t)count * sizeof *values);
    if (!values) {
      status = -1;
      break;
    }
    fixture_fill(values, count, seed, plan->name, plan->scale, plan->offset);
    if (plan->diagonal)
      for (long r = 0; r < plan->shape[0] && r < plan->shape[1]; r++)
        values[r * plan->shape[1] + r] += 0.5f;
    encode(values, count, tensor_dtype(spec, plan->name), data);
    data += tensor_bytes(spec, plan);
    free(values);
  }
  if (status == 0)
    status = write_file(dir, file_name, file, total);
  free(file);
  return status;
}

clttt_status fixture_write(const fixture_spec *spec, const char *dir) {
  if (!spec || !dir)
    return CLTTT_ERROR_IO;
  if (make_directories(dir) != 0) {
    fprintf(stderr, "fixture: cannot create directory %s: %s\n", dir, strerror(errno));
    return CLTTT_ERROR_IO;
  }
  char *config = config_json(spec);
  if (!config)
    return CLTTT_ERROR_IO;
  int status = write_file(dir, "config.json", config, strlen(config));
  free(config);
  if (status != 0)
    return CLTTT_ERROR_IO;

  plan_list plans = {0};
  if (build_plan(&spec->config, &plans) != 0) {
    free(plans.items);
    return CLTTT_ERROR_IO;
  }
  const int shards = spec->shards > 1 ? spec->shards : 1;
  if (shards == 1) {
    status = write_shard(spec, &plans, 0, plans.count, dir, "model.safetensors");
  } else {
    /* Split in tensor order into shards of about equal size. */
    size_t total = 0;
    for (int i = 0; i < plans.count; i++)
      total += tensor_bytes(spec, &plans.items[i]);
    text_buffer index = {0};
    append(&index, "{\n  \"metadata\": {\"total_size\": %zu},\n  \"weight_map\": {\n", total);
    int first = 0;
    size_t done = 0;
    for (int shard = 0; shard < shards && status == 0; shard++) {
      int last = first;
      const size_t goal = total * (size_t)(shard + 1) / (size_t)shards;
      if (shard == shards - 1) {
        last = plans.count;
      } else {
        while (last < plans.count && (done < goal || last == first) &&
               plans.count - last > shards - shard - 1) {
          done += tensor_bytes(spec, &plans.items[last]);
          last++;
        }
      }
      char file_name[64];
      snprintf(file_name, sizeof file_name, "model-%05d-of-%05d.safetensors", shard + 1, shards);
      for (int i = first; i < last; i++)
        append(&index, "    \"%s\": \"%s\"%s\n", plans.items[i].name, file_name,
               i == plans.count - 1 ? "" : ",");
      status = write_shard(spec, &plans, first, last, dir, file_name);
      first = last;
    }
    append(&index, "  }\n}\n");
    if (index.failed)
      status = -1;
    if (status == 0)
      status = write_file(dir, "model.safetensors.index.json", index.text, index.length);
    free(index.text);
  }
  free(plans.items);
  return status == 0 ? CLTTT_SUCCESS : CLTTT_ERROR_IO;
}
