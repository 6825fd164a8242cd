/* The clttt program end to end: every subcommand on the tiny fixtures and
 * the trained stories260K model, including the bad inputs users make. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fixture.h"
#include "golden.h"
#include "test_model.h"
#include "test_util.h"

/* fp32 OpenCL against float64 goldens: see check_model.c. */
#define GOLDEN_TOLERANCE 2e-4

static char scratch[512];

static void setup(void) { test_make_temporary_directory(scratch, sizeof scratch); }
static void teardown(void) { test_remove_directory(scratch); }

static const char *stories(void) {
  return test_environment("CLTTT_STORIES_DIR", "../shared/models/stories260K");
}

START_TEST(test_help_everywhere) {
  static const char *const commands[] = {"devices", "demo", "info", "logits", "generate", "ppl", "ruler", "tune",
                                         "session", "serve"};
  test_command top = test_run_clttt(scratch, "--help");
  ck_assert_int_eq(top.exit_code, 0);
  for (int i = 0; i < 10; i++) {
    ck_assert_msg(strstr(top.out, commands[i]) != NULL, "'clttt --help' does not list %s", commands[i]);
    test_command help = test_run_clttt(scratch, "%s --help", commands[i]);
    ck_assert_msg(help.exit_code == 0, "clttt %s --help exited %d", commands[i], help.exit_code);
    ck_assert_msg(strstr(help.out, "usage: clttt") != NULL, "clttt %s --help: %s", commands[i], help.out);
    test_command_free(&help);
  }
  test_command_free(&top);
  test_command unknown = test_run_clttt(scratch, "frobnicate");
  ck_assert_int_eq(unknown.exit_code, 2);
  ck_assert_ptr_nonnull(strstr(unknown.err, "frobnicate"));
  test_command_free(&unknown);
}
END_TEST

START_TEST(test_unknown_flag) {
  static const char *const commands[] = {"devices", "demo", "info", "logits", "generate", "ppl", "ruler"};
  for (int i = 0; i < 7; i++) {
    test_command result = test_run_clttt(scratch, "%s --no-such-flag", commands[i]);
    ck_assert_msg(result.exit_code == 2, "clttt %s --no-such-flag exited %d", commands[i], result.exit_code);
    ck_assert_msg(strstr(result.err, "--no-such-flag") != NULL, "clttt %s: %s", commands[i], result.err);
    test_command_free(&result);
  }
}
END_TEST

START_TEST(test_devices_and_info) {
  test_command devices = test_run_clttt(scratch, "devices");
  ck_assert_int_eq(devices.exit_code, 0);
  ck_assert_msg(strstr(devices.out, "compute units") != NULL || strstr(devices.out, "Compute units") != NULL,
                "%s", devices.out);
  test_command_free(&devices);

  test_command info = test_run_clttt(scratch, "info -m '%s'", stories());
  ck_assert_int_eq(info.exit_code, 0);
  ck_assert_ptr_nonnull(strstr(info.out, "LlamaForCausalLM"));
  ck_assert_ptr_nonnull(strstr(info.out, "d=64"));
  test_command_free(&info);

  char dir[700];
  snprintf(dir, sizeof dir, "%s/ttt", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-proj-hidden"), dir), CLTTT_SUCCESS);
  info = test_run_clttt(scratch, "info -m '%s'", dir);
  ck_assert_int_eq(info.exit_code, 0);
  ck_assert_msg(strstr(info.out, "TTT layers:   0, 2") != NULL, "%s", info.out);
  ck_assert_ptr_nonnull(strstr(info.out, "C=16"));
  ck_assert_msg(strstr(info.out, "weights (f32, as stored)") != NULL, "%s", info.out);
  test_command_free(&info);
  /* --weights: the matrices' type of the estimate; bf16 halves them. */
  test_command f32 = test_run_clttt(scratch, "info -m '%s' --weights f32", dir);
  test_command bf16 = test_run_clttt(scratch, "info -m '%s' --weights bf16", dir);
  ck_assert_int_eq(f32.exit_code, 0);
  ck_assert_int_eq(bf16.exit_code, 0);
  double f32_mib = 0, bf16_mib = 0;
  const char *at = strstr(f32.out, "memory:");
  ck_assert_msg(at && sscanf(at, "memory: %lf MiB weights (f32)", &f32_mib) == 1, "%s", f32.out);
  at = strstr(bf16.out, "memory:");
  ck_assert_msg(at && sscanf(at, "memory: %lf MiB weights (bf16)", &bf16_mib) == 1, "%s", bf16.out);
  ck_assert_msg(bf16_mib < f32_mib, "%g vs %g MiB", bf16_mib, f32_mib); /* one decimal of a tiny model */
  test_command_free(&f32);
  test_command_free(&bf16);
  test_command bad_type = test_run_clttt(scratch, "info -m '%s' --weights fp8", dir);
  ck_assert_int_eq(bad_type.exit_code, 2);
  ck_assert_msg(strstr(bad_type.err, "fp8") != NULL, "%s", bad_type.err);
  test_command_free(&bad_type);

  test_command missing = test_run_clttt(scratch, "info -m /nonexistent/model");
  ck_assert_int_eq(missing.exit_code, 1);
  ck_assert_ptr_nonnull(strstr(missing.err, "/nonexistent/model"));
  test_command_free(&missing);

  /* Sizes whose byte counts overflow 64 bits: said so, never a wrapped number. */
  test_write_text(scratch, "config.json",
                  "{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 2000000000,"
                  " \"intermediate_size\": 2000000000, \"num_hidden_layers\": 4000,"
                  " \"num_attention_heads\": 1000000, \"head_dim\": 128, \"vocab_size\": 2000000000,"
                  " \"max_position_embeddings\": 1000000000, \"ttt_mode\": true}");
  test_command absurd = test_run_clttt(scratch, "info -m '%s'", scratch);
  ck_assert_msg(absurd.exit_code == 0, "%s", absurd.err);
  ck_assert_msg(strstr(absurd.out, "more than 16 EiB") != NULL, "%s", absurd.out);
  test_command_free(&absurd);
}
END_TEST

/* "id,id,...", as --tokens takes it. */
static char *token_list(const int32_t *tokens, int n) {
  char *text = malloc((size_t)n * 12 + 1);
  size_t length = 0;
  for (int i = 0; i < n; i++)
    length += (size_t)sprintf(text + length, "%s%d", i ? "," : "", tokens[i]);
  text[length] = '\0';
  return text;
}

/* `clttt logits` writes exactly n x vocab float32 values equal to the golden,
 * whatever the piece size; --ttt off gives the base model. */
START_TEST(test_logits_matches_goldens) {
  static const char *const names[] = {"qwen3-yarn-n96", "ttt-noproj-embed-n90"};
  for (int k = 0; k < 2; k++) {
    golden g;
    test_golden_load(&g, names[k]);
    char dir[700], out[760];
    snprintf(dir, sizeof dir, "%s/%s", scratch, g.fixture);
    snprintf(out, sizeof out, "%s/logits.f32", scratch);
    ck_assert_int_eq(fixture_write(fixture_find(g.fixture), dir), CLTTT_SUCCESS);
    char *tokens = token_list(g.tokens, g.n);
    static const char *const pieces[] = {"", "--pieces 1", "--pieces 7"};
    for (int p = 0; p < 3; p++) {
      test_command result = test_run_clttt(scratch, "logits -m '%s' --kv f32 --tokens %s --out '%s' %s", dir, tokens, out, pieces[p]);
      ck_assert_msg(result.exit_code == 0, "clttt logits: %s", result.err);
      size_t size = 0;
      char *data = test_read_file(out, &size);
      ck_assert_uint_eq(size, (size_t)g.n * (size_t)g.vocab * sizeof(float));
      double error = test_max_abs_difference((const float *)data, g.logits, (size_t)g.n * (size_t)g.vocab);
      ck_assert_msg(error <= GOLDEN_TOLERANCE, "%s %s: %g", names[k], pieces[p], error);
      free(data);
      test_command_free(&result);
    }
    /* The BF16 fixture gives the golden with fp32 and with bf16 weights on
     * the device (its values are exact in both). */
    static const char *const weights[] = {"--weights f32", "--weights bf16", "--weights auto"};
    for (int w = 0; w < 3 && strcmp(g.fixture, "qwen3-yarn") == 0; w++) {
      test_command result = test_run_clttt(scratch, "logits -m '%s' --kv f32 --tokens %s --out '%s' %s", dir, tokens,
                                           out, weights[w]);
      ck_assert_msg(result.exit_code == 0, "clttt logits %s: %s", weights[w], result.err);
      size_t size = 0;
      char *data = test_read_file(out, &size);
      ck_assert_uint_eq(size, (size_t)g.n * (size_t)g.vocab * sizeof(float));
      double error = test_max_abs_difference((const float *)data, g.logits, (size_t)g.n * (size_t)g.vocab);
      ck_assert_msg(error <= GOLDEN_TOLERANCE, "%s %s: %g", names[k], weights[w], error);
      free(data);
      test_command_free(&result);
    }
    if (g.ttt) {
      test_command result = test_run_clttt(scratch, "logits -m '%s' --kv f32 --tokens %s --out '%s' --ttt off", dir, tokens, out);
      ck_assert_int_eq(result.exit_code, 0);
      size_t size = 0;
      char *data = test_read_file(out, &size);
      float *expected = test_reference_logits(dir, g.tokens, g.n, 0, 0, 0.0f);
      ck_assert_double_le(test_max_abs_difference((const float *)data, expected, (size_t)g.n * (size_t)g.vocab),
                          GOLDEN_TOLERANCE);
      free(expected);
      free(data);
      test_command_free(&result);
    }
    free(tokens);
    golden_free(&g);
  }
  /* Bad input: a token outside the vocabulary, a malformed list, binary to a terminal is refused elsewhere. */
  char dir[700];
  snprintf(dir, sizeof dir, "%s/qwen3-yarn", scratch);
  /* --profile: the table of where the time went, on stderr, the output unchanged in size. */
  test_command profiled = test_run_clttt(scratch, "logits -m '%s' --tokens 1,2,3 --out '%s/p.f32' --profile", dir, scratch);
  ck_assert_msg(profiled.exit_code == 0, "%s", profiled.err);
  ck_assert_msg(strstr(profiled.err, "where the device's time went") && strstr(profiled.err, "LM head (packed GEMM, bf16)") &&
                    strstr(profiled.err, "total"),
                "%s", profiled.err);
  test_command_free(&profiled);
  test_command bad = test_run_clttt(scratch, "logits -m '%s' --tokens 1,2,99999 --out '%s/x'", dir, scratch);
  ck_assert_int_eq(bad.exit_code, 1);
  ck_assert_ptr_nonnull(strstr(bad.err, "99999"));
  test_command_free(&bad);
  bad = test_run_clttt(scratch, "logits -m '%s' --tokens 1,,x", dir);
  ck_assert_int_eq(bad.exit_code, 2);
  test_command_free(&bad);
}
END_TEST

/* Greedy generation from the trained model tells the known story. */
START_TEST(test_generate_stories) {
  test_command result = test_run_clttt(scratch, "generate -m '%s' -p 'Once upon a time' -n 40", stories());
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_msg(strncmp(result.out, "Once upon a time, there was a little girl named Lily. She loved to play", 70) == 0,
                "got: %s", result.out);
  ck_assert_ptr_nonnull(strstr(result.err, "tokens/s"));
  test_command_free(&result);

  /* Sampling with a seed is reproducible, and differs from greedy. */
  test_command first = test_run_clttt(scratch, "generate -m '%s' -p 'Once upon a time' -n 30 --temp 1.0 --top-p 0.9 --seed 7", stories());
  test_command second = test_run_clttt(scratch, "generate -m '%s' -p 'Once upon a time' -n 30 --temp 1.0 --top-p 0.9 --seed 7", stories());
  ck_assert_int_eq(first.exit_code, 0);
  ck_assert_str_eq(first.out, second.out);
  test_command_free(&first);
  test_command_free(&second);
}
END_TEST

START_TEST(test_generate_bad_input) {
  test_command result = test_run_clttt(scratch, "generate -m /nonexistent/model -p hello");
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_ptr_nonnull(strstr(result.err, "/nonexistent/model"));
  test_command_free(&result);

  /* A model directory without any tokenizer. */
  char dir[700];
  snprintf(dir, sizeof dir, "%s/qwen3-tied", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("qwen3-tied"), dir), CLTTT_SUCCESS);
  result = test_run_clttt(scratch, "generate -m '%s' -p hello -n 2", dir);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "tokenizer") != NULL && strstr(result.err, dir) != NULL, "%s", result.err);
  test_command_free(&result);

  /* A prompt longer than the context. */
  result = test_run_clttt(scratch, "generate -m '%s' -p 'Once upon a time there was a big dog' -n 4 --ctx 6", stories());
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "context") != NULL, "%s", result.err);
  test_command_free(&result);

  result = test_run_clttt(scratch, "generate -m '%s' -p hi --temp -1", stories());
  ck_assert_int_ne(result.exit_code, 0);
  ck_assert_msg(strstr(result.err, "temperature") != NULL, "%s", result.err);
  test_command_free(&result);

  result = test_run_clttt(scratch, "generate -m '%s'", stories());
  ck_assert_int_eq(result.exit_code, 2);
  test_command_free(&result);

  /* Non-finite or negative TTT settings are refused before anything runs. */
  static const char *const settings[] = {"--eta inf", "--eta nan", "--eta -1", "--ttt-clip inf", "--ttt-clip -2"};
  for (int i = 0; i < 5; i++) {
    result = test_run_clttt(scratch, "generate -m '%s' -p hi -n 2 %s", stories(), settings[i]);
    ck_assert_msg(result.exit_code == 2, "%s: exit %d", settings[i], result.exit_code);
    ck_assert_msg(strstr(result.err, "expects") != NULL, "%s: %s", settings[i], result.err);
    test_command_free(&result);
  }
}
END_TEST

/* Real checkpoints pad their vocabulary past the tokenizer's: a model of 256
 * rows with a tokenizer of 200 pieces, sampled hot for 80 tokens, would draw
 * an id past 199 with near certainty (56/256 of the mass under random
 * weights); generate must never sample one it cannot decode. */
START_TEST(test_generate_padded_vocabulary) {
  char dir[700];
  snprintf(dir, sizeof dir, "%s/padded", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("qwen3-tied"), dir), CLTTT_SUCCESS);
  test_write_tokenizer_of(dir, 200);
  test_command result = test_run_clttt(scratch, "generate -m '%s' -p ab -n 80 --temp 3 --seed 5 --ignore-eos", dir);
  ck_assert_msg(result.exit_code == 0, "exit %d: %s", result.exit_code, result.err);
  ck_assert_msg(strstr(result.err, "decode: 80 tokens") != NULL, "%s", result.err);
  test_command_free(&result);
}
END_TEST

static json_t *parse_json(const char *text) {
  json_error_t error;
  json_t *root = json_loads(text, 0, &error);
  ck_assert_msg(root != NULL, "not JSON (%s): %s", error.text, text);
  return root;
}

START_TEST(test_ppl) {
  char text_path[700];
  snprintf(text_path, sizeof text_path, "%s/story.txt", scratch);
  static const char story[] =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
      "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily asked her "
      "mom to help her. Her mom said yes and they played together all day. They were very happy.\n";
  test_write_text(scratch, "story.txt", story);
  test_command result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --bucket 32 --json", stories(), text_path);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  json_t *root = parse_json(result.out);
  json_t *run = json_array_get(json_object_get(root, "runs"), 0);
  double perplexity = json_real_value(json_object_get(run, "perplexity"));
  /* A model that learned these stories predicts them far better than
   * chance (512 tokens) and never perfectly. */
  ck_assert_msg(perplexity > 1.0 && perplexity < 20.0, "perplexity %g", perplexity);
  ck_assert_int_ge(json_array_size(json_object_get(run, "buckets")), 2);
  double feed_seconds = json_real_value(json_object_get(run, "feed_seconds"));
  ck_assert_msg(feed_seconds > 0 && feed_seconds <= json_real_value(json_object_get(run, "seconds")), "%g", feed_seconds);

  /* The same number from the logits `clttt logits` writes for the same
   * tokens, scored here in double throughout: ppl's float exponentials err by
   * ~1e-7 of each term and the JSON prints 6 decimals of a perplexity below
   * 20, so both agree to 2e-6 relative unless the scoring is wrong (a
   * shifted target or row moves it by far more). */
  clttt_tokenizer *tokenizer = NULL;
  int32_t *ids = NULL;
  int n = 0;
  ck_assert_int_eq(clttt_tokenizer_load(&tokenizer, stories()), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_tokenizer_encode(tokenizer, story, 1, &ids, &n), CLTTT_SUCCESS);
  ck_assert_int_eq(json_integer_value(json_object_get(root, "tokens")), n);
  char *list = token_list(ids, n), logits_path[760];
  snprintf(logits_path, sizeof logits_path, "%s/story.f32", scratch);
  test_command logits = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s'", stories(), list, logits_path);
  ck_assert_msg(logits.exit_code == 0, "%s", logits.err);
  size_t size = 0;
  float *rows = (float *)test_read_file(logits_path, &size);
  const size_t vocab = size / sizeof(float) / (size_t)n;
  ck_assert_uint_eq(size, (size_t)n * vocab * sizeof(float));
  double nll = 0;
  for (int i = 0; i + 1 < n; i++) {
    const float *row = rows + (size_t)i * vocab;
    double highest = row[0], sum = 0;
    for (size_t v = 1; v < vocab; v++)
      highest = row[v] > highest ? row[v] : highest;
    for (size_t v = 0; v < vocab; v++)
      sum += exp((double)row[v] - highest);
    nll += log(sum) + highest - row[ids[i + 1]];
  }
  const double expected = exp(nll / (n - 1));
  ck_assert_msg(fabs(perplexity - expected) <= 2e-6 * expected, "ppl %.9g, from the logits %.9g", perplexity, expected);
  free(rows);
  free(list);
  free(ids);
  clttt_tokenizer_free(tokenizer);
  test_command_free(&logits);
  json_decref(root);
  test_command_free(&result);

  /* Text table, and a context shorter than the text cuts it with a note. */
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --ctx 40 --bucket 16", stories(), text_path);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_ptr_nonnull(strstr(result.out, "all"));
  ck_assert_ptr_nonnull(strstr(result.err, "using the first 40"));
  test_command_free(&result);

  result = test_run_clttt(scratch, "ppl -m '%s' -f /nonexistent/text.txt", stories());
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_ptr_nonnull(strstr(result.err, "/nonexistent/text.txt"));
  test_command_free(&result);

  /* A directory is no text, and one token of context predicts nothing:
   * both are errors, never a table of NaN with exit 0. */
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s'", stories(), scratch);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "not a regular file") != NULL, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --ctx 1", stories(), text_path);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "at least 2") != NULL && strstr(result.out, "nan") == NULL, "%s%s", result.out,
                result.err);
  test_command_free(&result);
}
END_TEST

/* --ttt both on a TTT model: the same tokens, TTT on and off; they agree
 * within the first chunk and differ after it. */
START_TEST(test_ppl_ttt_both) {
  char dir[700];
  snprintf(dir, sizeof dir, "%s/ttt", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-proj-hidden"), dir), CLTTT_SUCCESS);
  test_write_small_tokenizer(dir);
  test_write_text(scratch, "text.txt",
                  "the cat sat on the mat and the dog sat on the log; the cat and the dog ran to the park and back "
                  "again, and then the cat sat on the mat once more.");
  char text_path[760];
  snprintf(text_path, sizeof text_path, "%s/text.txt", scratch);
  test_command result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --ttt both --bucket 16 --json", dir, text_path);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  json_t *root = parse_json(result.out);
  json_t *runs = json_object_get(root, "runs");
  ck_assert_int_eq(json_array_size(runs), 2);
  json_t *on = json_array_get(runs, 0), *off = json_array_get(runs, 1);
  ck_assert_str_eq(json_string_value(json_object_get(on, "ttt")), "on");
  ck_assert_str_eq(json_string_value(json_object_get(off, "ttt")), "off");
  /* Bucket 0 holds positions 0-15, the first chunk (C = 16): same weights. */
  double first_on = json_real_value(json_object_get(json_array_get(json_object_get(on, "buckets"), 0), "perplexity"));
  double first_off = json_real_value(json_object_get(json_array_get(json_object_get(off, "buckets"), 0), "perplexity"));
  ck_assert_double_eq_tol(first_on, first_off, 1e-4 * first_off);
  double all_on = json_real_value(json_object_get(on, "perplexity"));
  double all_off = json_real_value(json_object_get(off, "perplexity"));
  ck_assert_msg(all_on != all_off, "TTT on and off gave the same perplexity %g", all_on);
  json_decref(root);
  test_command_free(&result);
}
END_TEST

START_TEST(test_demo_runs) {
  test_command result =
      test_run_clttt(scratch, "demo --tokens 300 --decode 3 --chunk 128 --hidden 256 --story-model '%s'", stories());
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  /* The trained model tells its story; the synthetic one says what it is,
   * what TTT cost and what the cost model predicts (d 256, f 768, 8 layers
   * of which 2 TTT, 300 tokens, vocab 4096: 6.6% by SPEC.md section 7). */
  ck_assert_msg(strstr(result.out, "Once upon a time, there was a little girl named Lily") != NULL, "%s",
                result.out);
  ck_assert_ptr_nonnull(strstr(result.out, "SYNTHETIC"));
  ck_assert_ptr_nonnull(strstr(result.out, "tokens/s"));
  ck_assert_msg(strstr(result.out, "predicts +6.6% FLOPs") != NULL, "%s", result.out);
  ck_assert_msg(strstr(result.out, "differ by at most 0 in the first chunk") != NULL, "%s", result.out);
  test_command_free(&result);
}
END_TEST

static char *number_list(int first, int count) {
  char *text = malloc((size_t)count * 12 + 1);
  size_t length = 0;
  for (int i = 0; i < count; i++)
    length += (size_t)sprintf(text + length, "%s%d", i ? "," : "", first + i);
  return text;
}

/* Two processes: logits of A saved with --session-out, then logits of B
 * from --session-in, equal (bit for bit) the B rows of one process fed A
 * then B; A ends inside a TTT chunk. Then what 'session info' says, and the
 * errors of bad and foreign files. */
START_TEST(test_session_files) {
  char dir[700], llama[700], session[760], out[760], both[760];
  snprintf(dir, sizeof dir, "%s/ttt", scratch);
  snprintf(llama, sizeof llama, "%s/llama", scratch);
  snprintf(session, sizeof session, "%s/a.session", scratch);
  snprintf(out, sizeof out, "%s/b.f32", scratch);
  snprintf(both, sizeof both, "%s/ab.f32", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-proj-hidden"), dir), CLTTT_SUCCESS);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-llama-embed"), llama), CLTTT_SUCCESS);
  /* C = 16: 5 rows pending, and B completes that chunk, so its rows count. */
  const int n_a = 21, n_b = 16, vocab = 256;
  char *a = number_list(1, n_a), *b = number_list(40, n_b);
  test_command result = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s/a.f32' --session-out '%s'", dir, a,
                                    scratch, session);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s' --session-in '%s'", dir, b, out, session);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_msg(strstr(result.err, "growing its context to 37") != NULL, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "logits -m '%s' --tokens %s,%s --pieces %d --out '%s'", dir, a, b, n_a, both);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  test_command_free(&result);
  size_t size_b = 0, size_ab = 0;
  char *got = test_read_file(out, &size_b), *expected = test_read_file(both, &size_ab);
  ck_assert_uint_eq(size_b, (size_t)n_b * vocab * sizeof(float));
  ck_assert_uint_eq(size_ab, (size_t)(n_a + n_b) * vocab * sizeof(float));
  ck_assert_msg(memcmp(got, expected + (size_ab - size_b), size_b) == 0,
                "continuing from the file differs from one process: max |diff| %g",
                test_max_abs_difference((const float *)got, (const float *)(expected + (size_ab - size_b)),
                                        (size_t)n_b * vocab));
  free(got);
  free(expected);

  result = test_run_clttt(scratch, "session info '%s'", session);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_msg(strstr(result.out, "position:     21 tokens (5 of them pending") != NULL, "%s", result.out);
  ck_assert_msg(strstr(result.out, "context 21, TTT on, chunk 16") != NULL, "%s", result.out);
  ck_assert_msg(strstr(result.out, "TTT layers:   0, 2; C=16") != NULL, "%s", result.out);
  ck_assert_msg(strstr(result.out, "d=64 f=128, 3 layers") != NULL, "%s", result.out);
  ck_assert_msg(strstr(result.out, "version 2,") != NULL && strstr(result.out, "checksums (XXH3-64) ok") != NULL &&
                    strstr(result.out, "hash ") != NULL,
                "%s", result.out);
  ck_assert_msg(strstr(result.out, "KV cache float16") != NULL, "%s", result.out);
  test_command_free(&result);

  /* Foreign, truncated, missing; TTT options that would contradict the file. */
  result = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s' --session-in '%s'", llama, b, out, session);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "CLTTT_ERROR_BAD_SESSION_FILE") && strstr(result.err, "another model"), "%s",
                result.err);
  test_command_free(&result);
  size_t size = 0;
  char *data = test_read_file(session, &size);
  char truncated[800];
  snprintf(truncated, sizeof truncated, "%s/truncated.session", scratch);
  FILE *file = fopen(truncated, "wb");
  ck_assert_ptr_nonnull(file);
  ck_assert_uint_eq(fwrite(data, 1, size / 2, file), size / 2);
  ck_assert_int_eq(fclose(file), 0);
  free(data);
  result = test_run_clttt(scratch, "session info '%s'", truncated);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "CLTTT_ERROR_BAD_SESSION_FILE") && strstr(result.err, "truncated"), "%s",
                result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s' --session-in '%s'", dir, b, out, truncated);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "truncated") != NULL, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "session info '%s/none.session'", scratch);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "CLTTT_ERROR_IO") != NULL, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "logits -m '%s' --tokens %s --out '%s' --session-in '%s' --ttt off", dir, b, out, session);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "--ttt") != NULL, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "session");
  ck_assert_int_eq(result.exit_code, 2);
  test_command_free(&result);
  result = test_run_clttt(scratch, "session show '%s'", session);
  ck_assert_int_eq(result.exit_code, 2);
  ck_assert_ptr_nonnull(strstr(result.err, "show"));
  test_command_free(&result);
  free(a);
  free(b);
}
END_TEST

/* generate and ppl save and continue too; a generate session (last-row
 * logits only) cannot feed 'clttt logits'. */
START_TEST(test_session_files_generate_ppl) {
  char generated[700], text_path[700], ppl_session[700];
  snprintf(generated, sizeof generated, "%s/g.session", scratch);
  snprintf(ppl_session, sizeof ppl_session, "%s/p.session", scratch);
  snprintf(text_path, sizeof text_path, "%s/story.txt", scratch);
  test_command result = test_run_clttt(scratch, "generate -m '%s' -p 'Once upon a time' -n 8 --session-out '%s'", stories(),
                                    generated);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "session info '%s'", generated);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  int position = 0;
  const char *line = strstr(result.out, "position:");
  ck_assert_ptr_nonnull(line);
  ck_assert_int_eq(sscanf(line, "position: %d", &position), 1);
  /* BOS, the prompt's pieces and all 8 new tokens, the last one included. */
  ck_assert_msg(position > 8 + 2 && position < 8 + 20, "position %d", position);
  ck_assert_ptr_nonnull(strstr(result.out, "logits last row"));
  test_command_free(&result);
  result = test_run_clttt(scratch, "generate -m '%s' -p ' She' -n 4 --session-in '%s' --session-out '%s'", stories(), generated,
                     generated);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "session info '%s'", generated);
  int later = 0;
  ck_assert_int_eq(sscanf(strstr(result.out, "position:"), "position: %d", &later), 1);
  ck_assert_msg(later > position + 4, "position %d after %d", later, position);
  test_command_free(&result);
  result = test_run_clttt(scratch, "logits -m '%s' --tokens 1,2 --out '%s/x' --session-in '%s'", stories(), scratch, generated);
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "last-row") != NULL, "%s", result.err);
  test_command_free(&result);

  test_write_text(scratch, "story.txt", "Once upon a time, there was a little girl named Lily. She loved to play.\n");
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --json --session-out '%s'", stories(), text_path, ppl_session);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  test_command_free(&result);
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --json --session-in '%s'", stories(), text_path, ppl_session);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  json_t *root = parse_json(result.out);
  double perplexity = json_real_value(json_object_get(json_array_get(json_object_get(root, "runs"), 0), "perplexity"));
  /* The story again, right after itself: predicted at least as well as a
   * model of these stories predicts it cold (below 20), and never perfectly. */
  ck_assert_msg(perplexity > 1.0 && perplexity < 20.0, "perplexity %g", perplexity);
  json_decref(root);
  test_command_free(&result);
  result = test_run_clttt(scratch, "ppl -m '%s' -f '%s' --ttt both --session-out '%s'", stories(), text_path, ppl_session);
  ck_assert_int_eq(result.exit_code, 2);
  test_command_free(&result);
}
END_TEST

static Suite *cli_suite(void) {
  Suite *suite = suite_create("cli");
  TCase *basics = tcase_create("basics");
  tcase_add_checked_fixture(basics, setup, teardown);
  tcase_add_test(basics, test_help_everywhere);
  tcase_add_test(basics, test_unknown_flag);
  tcase_add_test(basics, test_devices_and_info);
  tcase_add_test(basics, test_demo_runs);
  suite_add_tcase(suite, basics);
  TCase *models = tcase_create("models");
  tcase_add_checked_fixture(models, setup, teardown);
  tcase_add_test(models, test_logits_matches_goldens);
  tcase_add_test(models, test_generate_stories);
  tcase_add_test(models, test_generate_bad_input);
  tcase_add_test(models, test_generate_padded_vocabulary);
  tcase_add_test(models, test_ppl);
  tcase_add_test(models, test_ppl_ttt_both);
  tcase_add_test(models, test_session_files);
  tcase_add_test(models, test_session_files_generate_ppl);
  suite_add_tcase(suite, models);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(cli_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
