/* config.json: both architectures, every RoPE form, the TTT keys and their
 * defaults, and the errors a malformed config must produce. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "test_util.h"

static void assert_message_names(const char *first, const char *second) {
  const char *message = clttt_last_error();
  ck_assert_msg(strstr(message, first) != NULL, "message lacks \"%s\": %s", first, message);
  if (second)
    ck_assert_msg(strstr(message, second) != NULL, "message lacks \"%s\": %s", second, message);
}

/* Parses `text` expecting `status`, and a message naming the origin and `key`. */
static void expect_parse_failure(const char *text, int status, const char *key) {
  clttt_config config;
  int got = config_parse(&config, text, "test-config.json");
  ck_assert_msg(got == status, "expected %s, got %s (%s) for %s", clttt_status_name(status),
                clttt_status_name(got), clttt_last_error(), text);
  assert_message_names("test-config.json", key);
}

static clttt_config parse_ok(const char *text) {
  clttt_config config;
  int status = config_parse(&config, text, "test-config.json");
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  return config;
}

static int close_to(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

#define SMALL_LLAMA_SIZES                                                                    \
  "\"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 5, "              \
  "\"num_attention_heads\": 8, \"vocab_size\": 512"

START_TEST(test_stories260k_config) {
  const char *stories = test_environment("CLTTT_STORIES_DIR", "tests/models/stories260K");
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", stories);
  clttt_config config;
  int status = config_load(&config, path);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  ck_assert_int_eq(config.arch, CLTTT_ARCH_LLAMA);
  ck_assert_int_eq(config.hidden_size, 64);
  ck_assert_int_eq(config.intermediate_size, 172);
  ck_assert_int_eq(config.num_hidden_layers, 5);
  ck_assert_int_eq(config.num_attention_heads, 8);
  ck_assert_int_eq(config.num_key_value_heads, 4);
  ck_assert_int_eq(config.head_dim, 8);
  ck_assert_int_eq(config.vocab_size, 512);
  ck_assert_int_eq(config.max_position_embeddings, 512);
  ck_assert(config.rms_norm_eps == 1e-5f);
  ck_assert(config.rope_theta == 10000.0f);
  ck_assert_int_eq(config.tie_word_embeddings, 1);
  ck_assert_int_eq(config.attention_bias, 0);
  ck_assert_int_eq(config.mlp_bias, 0);
  ck_assert_int_eq(config.bos_token_id, 1);
  ck_assert_int_eq(config.eos_token_id, 2);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_DEFAULT);
  ck_assert_int_eq(config.ttt_mode, 0);
  ck_assert_int_eq(config_ttt_layer_count(&config), 0);
  ck_assert_int_eq(config_q_dim(&config), 64);
  ck_assert_int_eq(config_kv_dim(&config), 32);
}
END_TEST

START_TEST(test_missing_file) {
  clttt_config config;
  ck_assert_int_eq(config_load(&config, "/nonexistent/clttt/config.json"), CLTTT_ERROR_IO);
  assert_message_names("/nonexistent/clttt/config.json", NULL);
}
END_TEST

START_TEST(test_load_from_directory_file) {
  char directory[1024];
  test_make_temporary_directory(directory, sizeof directory);
  test_write_text(directory, "config.json",
                  "{\"architectures\": [\"LlamaForCausalLM\"],\n \"hidden_size\": \"big\","
                  " \"intermediate_size\": 172, \"num_hidden_layers\": 5,"
                  " \"num_attention_heads\": 8, \"vocab_size\": 512}");
  char path[2048];
  snprintf(path, sizeof path, "%s/config.json", directory);
  clttt_config config;
  ck_assert_int_eq(config_load(&config, path), CLTTT_ERROR_BAD_CONFIG);
  assert_message_names(path, "hidden_size");
  test_write_text(directory, "config.json",
                  "{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES "}");
  ck_assert_int_eq(config_load(&config, path), CLTTT_SUCCESS);
  ck_assert_int_eq(config.hidden_size, 64);
  test_remove_directory(directory);
}
END_TEST

START_TEST(test_qwen3_yarn) {
  clttt_config config = parse_ok(
      "{\"architectures\": [\"Qwen3ForCausalLM\"], \"model_type\": \"qwen3\","
      " \"hidden_size\": 2560, \"intermediate_size\": 9728, \"num_hidden_layers\": 36,"
      " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"head_dim\": 128,"
      " \"vocab_size\": 151936, \"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-06,"
      " \"rope_theta\": 1000000, \"tie_word_embeddings\": true, \"attention_bias\": false,"
      " \"bos_token_id\": 151643, \"eos_token_id\": 151645,"
      " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0,"
      "   \"original_max_position_embeddings\": 32768}}");
  ck_assert_int_eq(config.arch, CLTTT_ARCH_QWEN3);
  ck_assert_int_eq(config.hidden_size, 2560);
  ck_assert_int_eq(config.num_key_value_heads, 8);
  ck_assert_int_eq(config.head_dim, 128);
  ck_assert_int_eq(config_q_dim(&config), 4096);
  ck_assert_int_eq(config_kv_dim(&config), 1024);
  ck_assert(config.rope_theta == 1e6f);
  ck_assert(config.rms_norm_eps == 1e-6f);
  ck_assert_int_eq(config.tie_word_embeddings, 1);
  ck_assert_int_eq(config.bos_token_id, 151643);
  ck_assert_int_eq(config.eos_token_id, 151645);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_YARN);
  ck_assert(config.rope_factor == 4.0f);
  ck_assert_int_eq(config.rope_original_max_position_embeddings, 32768);
  ck_assert(config.rope_beta_fast == 32.0f);
  ck_assert(config.rope_beta_slow == 1.0f);
  ck_assert(config.rope_attention_factor == 0.0f);
  ck_assert_int_eq(config.rope_truncate, 1);
  ck_assert_int_eq(config.mlp_bias, 0);

  /* Legacy "type", explicit YaRN options, and an implicit factor. */
  config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"max_position_embeddings\": 4096,"
                    " \"rope_scaling\": {\"type\": \"yarn\", \"original_max_position_embeddings\": 1024,"
                    "   \"beta_fast\": 16, \"beta_slow\": 2, \"attention_factor\": 1.25,"
                    "   \"truncate\": false}}");
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_YARN);
  ck_assert(config.rope_factor == 4.0f);
  ck_assert(config.rope_beta_fast == 16.0f);
  ck_assert(config.rope_beta_slow == 2.0f);
  ck_assert(config.rope_attention_factor == 1.25f);
  ck_assert_int_eq(config.rope_truncate, 0);

  /* DeepSeek-style mscale pair: attention factor derived as transformers does. */
  config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 40,"
                    "   \"mscale\": 1.0, \"mscale_all_dim\": 0.707}}");
  double expected = (0.1 * 1.0 * log(40.0) + 1.0) / (0.1 * 0.707 * log(40.0) + 1.0);
  ck_assert(close_to(config.rope_attention_factor, expected));
  /* Without an original length, YaRN falls back to max_position_embeddings. */
  ck_assert_int_eq(config.rope_original_max_position_embeddings, 32768);
}
END_TEST

START_TEST(test_qwen3_defaults) {
  /* transformers' Qwen3Config: head_dim 128, 32768 positions, theta 10000,
   * eps 1e-6, no bos/eos, untied. */
  clttt_config config = parse_ok("{\"model_type\": \"qwen3\", " SMALL_LLAMA_SIZES "}");
  ck_assert_int_eq(config.arch, CLTTT_ARCH_QWEN3);
  ck_assert_int_eq(config.head_dim, 128);
  ck_assert_int_eq(config.num_key_value_heads, 8);
  ck_assert_int_eq(config.max_position_embeddings, 32768);
  ck_assert(config.rope_theta == 10000.0f);
  ck_assert(config.rms_norm_eps == 1e-6f);
  ck_assert_int_eq(config.bos_token_id, -1);
  ck_assert_int_eq(config.eos_token_id, -1);
  ck_assert_int_eq(config.tie_word_embeddings, 0);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_DEFAULT);
  ck_assert(config.rope_factor == 1.0f);
}
END_TEST

START_TEST(test_llama3_rope_scaling) {
  clttt_config config = parse_ok(
      "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 2048,"
      " \"intermediate_size\": 8192, \"num_hidden_layers\": 16, \"num_attention_heads\": 32,"
      " \"num_key_value_heads\": 8, \"vocab_size\": 128256, \"max_position_embeddings\": 131072,"
      " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,"
      " \"attention_bias\": true, \"mlp_bias\": true, \"bos_token_id\": 128000,"
      " \"eos_token_id\": [128001, 128008, 128009],"
      " \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
      "   \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}");
  ck_assert_int_eq(config.arch, CLTTT_ARCH_LLAMA);
  ck_assert_int_eq(config.head_dim, 64);
  ck_assert(config.rope_theta == 500000.0f);
  ck_assert_int_eq(config.attention_bias, 1);
  ck_assert_int_eq(config.mlp_bias, 1);
  ck_assert_int_eq(config.bos_token_id, 128000);
  ck_assert_int_eq(config.eos_token_id, 128001);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_LLAMA3);
  ck_assert(config.rope_factor == 32.0f);
  ck_assert(config.rope_low_freq_factor == 1.0f);
  ck_assert(config.rope_high_freq_factor == 4.0f);
  ck_assert_int_eq(config.rope_original_max_position_embeddings, 8192);

  /* llama3 without its required factors is a broken config. */
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8}}",
                       CLTTT_ERROR_BAD_CONFIG, "low_freq_factor");
}
END_TEST

START_TEST(test_llama_defaults) {
  /* transformers' LlamaConfig: kv heads = heads, head_dim = hidden / heads,
   * 2048 positions, bos 1, eos 2. */
  clttt_config config = parse_ok("{\"model_type\": \"llama\", " SMALL_LLAMA_SIZES ","
                                 " \"num_key_value_heads\": null, \"rope_scaling\": null}");
  ck_assert_int_eq(config.arch, CLTTT_ARCH_LLAMA);
  ck_assert_int_eq(config.num_key_value_heads, 8);
  ck_assert_int_eq(config.head_dim, 8);
  ck_assert_int_eq(config.max_position_embeddings, 2048);
  ck_assert(config.rope_theta == 10000.0f);
  ck_assert(config.rms_norm_eps == 1e-6f);
  ck_assert_int_eq(config.bos_token_id, 1);
  ck_assert_int_eq(config.eos_token_id, 2);
  ck_assert_int_eq(config.tie_word_embeddings, 0);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_DEFAULT);

  config = parse_ok("{\"model_type\": \"llama\", " SMALL_LLAMA_SIZES ","
                    " \"bos_token_id\": null, \"eos_token_id\": []}");
  ck_assert_int_eq(config.bos_token_id, -1);
  ck_assert_int_eq(config.eos_token_id, -1);
}
END_TEST

START_TEST(test_rope_parameters_form) {
  /* transformers 5 writes theta and the scaling keys into one object. */
  clttt_config config = parse_ok(
      "{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
      " \"max_position_embeddings\": 65536,"
      " \"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"llama3\", \"factor\": 8.0,"
      "   \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
      "   \"original_max_position_embeddings\": 8192}}");
  ck_assert(config.rope_theta == 500000.0f);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_LLAMA3);
  ck_assert(config.rope_factor == 8.0f);
  ck_assert_int_eq(config.rope_original_max_position_embeddings, 8192);

  config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}}");
  ck_assert(config.rope_theta == 1e6f);
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_DEFAULT);

  config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"yarn\","
                    "   \"factor\": 2.0, \"original_max_position_embeddings\": 16384}}");
  ck_assert_int_eq(config.rope_type, CLTTT_ROPE_YARN);
  ck_assert(config.rope_factor == 2.0f);
  ck_assert_int_eq(config.rope_original_max_position_embeddings, 16384);

  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"rope_parameters\": {\"rope_type\": \"longrope\"}}",
                       CLTTT_ERROR_UNSUPPORTED, "longrope");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}",
                       CLTTT_ERROR_UNSUPPORTED, "linear");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"rope_scaling\": \"yarn\"}",
                       CLTTT_ERROR_BAD_CONFIG, "rope_scaling");
}
END_TEST

START_TEST(test_ttt_keys) {
  clttt_config config = parse_ok(
      "{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
      " \"ttt_mode\": true, \"ttt_layers\": [0, 3, 4], \"ttt_chunk\": 512, \"ttt_lr\": 3,"
      " \"ttt_proj\": false, \"ttt_target\": \"input_embed\", \"ttt_clip_tau\": 2.5}");
  ck_assert_int_eq(config.ttt_mode, 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 0), 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 1), 0);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 2), 0);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 3), 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 4), 1);
  ck_assert_int_eq(config_ttt_layer_count(&config), 3);
  ck_assert_int_eq(config.ttt_layers[0], 0);
  ck_assert_int_eq(config.ttt_layers[1], 3);
  ck_assert_int_eq(config.ttt_layers[2], 4);
  ck_assert_int_eq(config.ttt_chunk, 512);
  ck_assert(config.ttt_lr == 3.0f);
  ck_assert_int_eq(config.ttt_proj, 0);
  ck_assert_int_eq(config.ttt_target, CLTTT_TARGET_INPUT_EMBED);
  ck_assert(config.ttt_clip_tau == 2.5f);
  clttt_config_free(&config);
  ck_assert_ptr_null(config.ttt_layers);
  ck_assert_int_eq(config.ttt_layer_count, 0);
}
END_TEST

START_TEST(test_ttt_defaults) {
  /* SPEC.md section 2: [0, 6, ..., 30], chunk 8192, eta 0.3, P present,
   * hidden_states target; the default list keeps only existing layers. */
  clttt_config config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"],"
                                 " \"hidden_size\": 64, \"intermediate_size\": 128,"
                                 " \"num_hidden_layers\": 13, \"num_attention_heads\": 4,"
                                 " \"vocab_size\": 100, \"ttt_mode\": true}");
  ck_assert_int_eq(config_ttt_layer_count(&config), 3);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 0), 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 6), 1);
  ck_assert_int_eq(clttt_config_is_ttt_layer(&config, 12), 1);
  ck_assert_int_eq(config.ttt_chunk, 8192);
  ck_assert(config.ttt_lr == 0.3f);
  ck_assert_int_eq(config.ttt_proj, 1);
  ck_assert_int_eq(config.ttt_target, CLTTT_TARGET_HIDDEN_STATES);
  clttt_config_free(&config);

  /* ttt_mode absent: an ordinary model, no TTT layer at all. */
  config = parse_ok("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"ttt_layers\": [1, 2]}");
  ck_assert_int_eq(config.ttt_mode, 0);
  for (int i = 0; i < config.num_hidden_layers; i++)
    ck_assert_int_eq(clttt_config_is_ttt_layer(&config, i), 0);
  ck_assert_int_eq(config.ttt_layer_count, 0);
  ck_assert_int_eq(config_ttt_layer_count(&config), 0);
}
END_TEST

/* What the log callback received, for the tests that expect a warning. */
static char logged[4096];
static int logged_count;

static void capture_log(clttt_log_level level, const char *message, void *user_data) {
  (void)user_data;
  if (level == CLTTT_LOG_WARNING) {
    snprintf(logged, sizeof logged, "%s", message);
    logged_count++;
  }
}

START_TEST(test_ttt_layers_past_the_last_layer) {
  /* The authors' classes write ttt_layers [0, 6, ..., 30] whatever the model
   * and their 8B configs list 36; their code tests membership, so such
   * entries do nothing: one warning naming them, the rest kept. */
  clttt_set_log_callback(capture_log, NULL);
  logged_count = 0;
  clttt_config config = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                                 " \"ttt_mode\": true, \"ttt_layers\": [0, 5, 4, 36]}");
  ck_assert_int_eq(logged_count, 1);
  ck_assert_msg(strstr(logged, "5, 36") != NULL && strstr(logged, "ttt_layers") != NULL &&
                    strstr(logged, "test-config.json") != NULL,
                "warning: %s", logged);
  ck_assert_int_eq(config.ttt_layer_count, 2);
  ck_assert_int_eq(config.ttt_layers[0], 0);
  ck_assert_int_eq(config.ttt_layers[1], 4);
  clttt_config_free(&config);

  /* ttt_mode false: a plain model whatever the other TTT keys say, and
   * nothing to warn about. */
  logged_count = 0;
  config = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                    " \"ttt_mode\": false, \"ttt_layers\": [0, 6, 12, 18, 24, 30]}");
  ck_assert_int_eq(logged_count, 0);
  ck_assert_int_eq(config.ttt_layer_count, 0);
  ck_assert_int_eq(config_ttt_layer_count(&config), 0);
  clttt_set_log_callback(NULL, NULL);
}
END_TEST

START_TEST(test_bad_ttt_keys) {
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_mode\": true, \"ttt_layers\": [-1]}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_layers");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_layers\": \"0,6\"}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_layers");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_target\": \"keys\"}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_target");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_chunk\": 0}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_chunk");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_mode\": \"yes\"}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_mode");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_lr\": \"fast\"}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_lr");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"ttt_clip_tau\": -1}",
                       CLTTT_ERROR_BAD_CONFIG, "ttt_clip_tau");
}
END_TEST

START_TEST(test_unknown_architecture) {
  expect_parse_failure("{\"architectures\": [\"MistralForCausalLM\"], " SMALL_LLAMA_SIZES "}",
                       CLTTT_ERROR_UNSUPPORTED, "MistralForCausalLM");
  expect_parse_failure("{\"model_type\": \"gpt2\", " SMALL_LLAMA_SIZES "}", CLTTT_ERROR_UNSUPPORTED,
                       "gpt2");
  expect_parse_failure("{" SMALL_LLAMA_SIZES "}", CLTTT_ERROR_BAD_CONFIG, "architectures");
  expect_parse_failure("{\"architectures\": \"LlamaForCausalLM\", " SMALL_LLAMA_SIZES "}",
                       CLTTT_ERROR_BAD_CONFIG, "architectures");
}
END_TEST

START_TEST(test_malformed_config) {
  /* Jansson's position is reported: the error is on line 2. */
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"],\n \"hidden_size\": 64,,}",
                       CLTTT_ERROR_BAD_CONFIG, "line 2");
  expect_parse_failure("[1, 2, 3]", CLTTT_ERROR_BAD_CONFIG, NULL);
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"big\","
                       " \"intermediate_size\": 172, \"num_hidden_layers\": 5,"
                       " \"num_attention_heads\": 8, \"vocab_size\": 512}",
                       CLTTT_ERROR_BAD_CONFIG, "hidden_size");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], \"intermediate_size\": 172,"
                       " \"num_hidden_layers\": 5, \"num_attention_heads\": 8, \"vocab_size\": 512}",
                       CLTTT_ERROR_BAD_CONFIG, "hidden_size");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,"
                       " \"intermediate_size\": 172, \"num_hidden_layers\": 5,"
                       " \"num_attention_heads\": 7, \"vocab_size\": 512}",
                       CLTTT_ERROR_BAD_CONFIG, "num_attention_heads");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"num_key_value_heads\": 3}",
                       CLTTT_ERROR_BAD_CONFIG, "num_key_value_heads");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": -64,"
                       " \"intermediate_size\": 172, \"num_hidden_layers\": 5,"
                       " \"num_attention_heads\": 8, \"vocab_size\": 512}",
                       CLTTT_ERROR_BAD_CONFIG, "hidden_size");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,"
                       " \"intermediate_size\": 172, \"num_hidden_layers\": 5000,"
                       " \"num_attention_heads\": 8, \"vocab_size\": 512}",
                       CLTTT_ERROR_BAD_CONFIG, "num_hidden_layers");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"rms_norm_eps\": 0}",
                       CLTTT_ERROR_BAD_CONFIG, "rms_norm_eps");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"tie_word_embeddings\": 1}",
                       CLTTT_ERROR_BAD_CONFIG, "tie_word_embeddings");
  expect_parse_failure("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"vocab_size\": 1.5}",
                       CLTTT_ERROR_BAD_CONFIG, "vocab_size");
  expect_parse_failure("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"head_dim\": 7}",
                       CLTTT_ERROR_BAD_CONFIG, "head_dim");
  expect_parse_failure("{\"architectures\": [\"Qwen3ForCausalLM\"], " SMALL_LLAMA_SIZES ","
                       " \"eos_token_id\": \"</s>\"}",
                       CLTTT_ERROR_BAD_CONFIG, "eos_token_id");
  /* A whole-valued real is still an integer. */
  clttt_config config = parse_ok("{\"architectures\": [\"LlamaForCausalLM\"], " SMALL_LLAMA_SIZES
                                 ", \"max_position_embeddings\": 1024.0}");
  ck_assert_int_eq(config.max_position_embeddings, 1024);
}
END_TEST

static Suite *config_suite(void) {
  Suite *suite = suite_create("config");
  TCase *models = tcase_create("models");
  tcase_add_test(models, test_stories260k_config);
  tcase_add_test(models, test_missing_file);
  tcase_add_test(models, test_load_from_directory_file);
  tcase_add_test(models, test_qwen3_yarn);
  tcase_add_test(models, test_qwen3_defaults);
  tcase_add_test(models, test_llama3_rope_scaling);
  tcase_add_test(models, test_llama_defaults);
  tcase_add_test(models, test_rope_parameters_form);
  suite_add_tcase(suite, models);

  TCase *ttt = tcase_create("ttt");
  tcase_add_test(ttt, test_ttt_keys);
  tcase_add_test(ttt, test_ttt_defaults);
  tcase_add_test(ttt, test_ttt_layers_past_the_last_layer);
  tcase_add_test(ttt, test_bad_ttt_keys);
  suite_add_tcase(suite, ttt);

  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_unknown_architecture);
  tcase_add_test(errors, test_malformed_config);
  suite_add_tcase(suite, errors);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(config_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
