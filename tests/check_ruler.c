/* clttt ruler: the task generator (deterministic, within the length, the
 * expected answers really in the prompt), RULER's scoring on hand-made
 * answers, the SVG writer, and the command end to end on stories260K and on
 * a TTT fixture. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "fixture.h"
#include "ruler_score.h"
#include "ruler_tasks.h"
#include "ruler_text.h"
#include "svg_plot.h"
#include "test_util.h"

static char scratch[512];
static void setup(void) { test_make_temporary_directory(scratch, sizeof scratch); }
static void teardown(void) { test_remove_directory(scratch); }

static const char *stories(void) {
  return test_environment("CLTTT_STORIES_DIR", "../shared/models/stories260K");
}

/* A stand-in tokenizer for tests that need no model: a token per four bytes. */
static int count_quarter_bytes(void *user, const char *text, int *tokens) {
  (void)user;
  *tokens = 1 + (int)(strlen(text) / 4);
  return 0;
}

static int count_with_tokenizer(void *user, const char *text, int *tokens) {
  int32_t *ids = NULL;
  int status = clttt_tokenizer_encode(user, text, 1, &ids, tokens);
  free(ids);
  return status == CLTTT_SUCCESS ? 0 : -1;
}

static ruler_result generate(const ruler_task *task, int length, uint64_t seed, int sample, ruler_token_counter count,
                             void *user, ruler_sample *out) {
  char error[256];
  ruler_result result =
      ruler_generate(task, length, task->tokens_to_generate, seed, sample, -1, count, user, out, error, sizeof error);
  ck_assert_msg(result != RULER_FAILED, "%s: %s", task->name, error);
  return result;
}

/* ------------------------------------------------------------------ */
/* The task table                                                       */

START_TEST(test_task_table) {
  static const char *const names[] = {"niah_single_1", "niah_single_2",   "niah_single_3",   "niah_multikey_1",
                                      "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery",
                                      "vt",            "cwe",             "fwe"};
  static const int budgets[] = {128, 128, 128, 128, 128, 128, 128, 128, 30, 120, 50};
  ck_assert_int_eq(ruler_task_count(), 11);
  for (int i = 0; i < 11; i++) {
    const ruler_task *task = ruler_task_find(names[i]);
    ck_assert_msg(task != NULL, "no task %s", names[i]);
    ck_assert_int_eq(task->tokens_to_generate, budgets[i]);
    ck_assert_ptr_eq(ruler_task_get(i), task);
  }
  ck_assert_ptr_null(ruler_task_find("qa_1"));
  ck_assert_ptr_null(ruler_task_get(11));
  /* synthetic.yaml's NIAH configurations. */
  const ruler_task *multikey = ruler_task_find("niah_multikey_1");
  ck_assert_int_eq(multikey->keys, 4);
  ck_assert_int_eq(multikey->haystack, RULER_HAYSTACK_ESSAY);
  const ruler_task *multiquery = ruler_task_find("niah_multiquery");
  ck_assert_int_eq(multiquery->queries, 4);
  ck_assert_int_eq(ruler_task_find("niah_multivalue")->values, 4);
  ck_assert_int_eq(ruler_task_find("niah_multikey_3")->key_kind, RULER_UUIDS);
  ck_assert_int_eq(ruler_task_find("niah_multikey_3")->haystack, RULER_HAYSTACK_NEEDLES);
  ck_assert_int_eq(ruler_task_find("niah_single_1")->haystack, RULER_HAYSTACK_NOISE);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Generation                                                           */

START_TEST(test_generator_is_deterministic) {
  for (int i = 0; i < ruler_task_count(); i++) {
    const ruler_task *task = ruler_task_get(i);
    ruler_sample a, b, other_seed, other_sample;
    ck_assert_int_eq(generate(task, 4096, 7, 0, count_quarter_bytes, NULL, &a), RULER_OK);
    ck_assert_int_eq(generate(task, 4096, 7, 0, count_quarter_bytes, NULL, &b), RULER_OK);
    ck_assert_str_eq(a.prompt, b.prompt);
    ck_assert_int_eq(a.answer_count, b.answer_count);
    for (int k = 0; k < a.answer_count; k++)
      ck_assert_str_eq(a.answers[k], b.answers[k]);
    ck_assert_int_eq(generate(task, 4096, 8, 0, count_quarter_bytes, NULL, &other_seed), RULER_OK);
    ck_assert_int_eq(generate(task, 4096, 7, 1, count_quarter_bytes, NULL, &other_sample), RULER_OK);
    ck_assert_msg(strcmp(a.prompt, other_seed.prompt) != 0, "%s: seeds 7 and 8 gave the same prompt", task->name);
    ck_assert_msg(strcmp(a.prompt, other_sample.prompt) != 0, "%s: samples 0 and 1 are the same", task->name);
    /* The hint a second mode passes gives the very same prompt. */
    char error[256];
    ruler_sample hinted;
    ck_assert_int_eq(ruler_generate(task, 4096, task->tokens_to_generate, 7, 0, a.haystack, count_quarter_bytes, NULL,
                                    &hinted, error, sizeof error),
                     RULER_OK);
    ck_assert_str_eq(hinted.prompt, a.prompt);
    /* The prompt is input + answer prefix, and ends with RULER's prefix. */
    ck_assert_uint_eq(strlen(a.prompt), strlen(a.input) + strlen(a.answer_prefix));
    ck_assert_int_eq(strncmp(a.prompt, a.input, strlen(a.input)), 0);
    ck_assert_msg(strncmp(a.answer_prefix, " The special magic", 18) == 0 || strncmp(a.answer_prefix, " Answer:", 8) == 0,
                  "%s: %s", task->name, a.answer_prefix);
    ruler_sample_free(&a);
    ruler_sample_free(&b);
    ruler_sample_free(&other_seed);
    ruler_sample_free(&other_sample);
    ruler_sample_free(&hinted);
  }
}
END_TEST

static int occurrences(const char *text, const char *word) {
  int count = 0;
  for (const char *at = strstr(text, word); at; at = strstr(at + 1, word))
    count++;
  return count;
}

/* Every expected string is in the prompt, where the task puts it. */
START_TEST(test_answers_are_in_the_prompt) {
  for (int i = 0; i < ruler_task_count(); i++) {
    const ruler_task *task = ruler_task_get(i);
    for (int s = 0; s < 3; s++) {
      ruler_sample sample;
      ck_assert_int_eq(generate(task, 8192, 42, s, count_quarter_bytes, NULL, &sample), RULER_OK);
      for (int k = 0; k < sample.answer_count; k++)
        ck_assert_msg(strstr(sample.input, sample.answers[k]) != NULL, "%s: %s not in the prompt", task->name,
                      sample.answers[k]);
      if (task->family == RULER_NIAH) {
        ck_assert_int_eq(sample.answer_count, task->queries * task->values);
        ck_assert_int_eq(sample.needle_count, (task->keys > task->queries ? task->keys : task->queries) * task->values);
        for (int k = 0; k < sample.answer_count; k++) {
          char needle[160];
          snprintf(needle, sizeof needle, " is: %s.", sample.answers[k]);
          ck_assert_msg(occurrences(sample.input, needle) == 1, "%s: needle %s", task->name, needle);
        }
        for (int d = 0; d < sample.needle_count; d++) {
          ck_assert(sample.depths[d] >= 0 && sample.depths[d] <= 100);
          if (d)
            ck_assert_int_le(sample.depths[d - 1], sample.depths[d]);
        }
        if (task->queries * task->values == 1)
          ck_assert_msg(strncmp(sample.input, "A special magic ", 16) == 0, "%s", sample.input);
        else
          ck_assert_msg(strncmp(sample.input, "Some special magic ", 19) == 0, "%s", sample.input);
      } else if (task->family == RULER_VARIABLE_TRACKING) {
        ck_assert_int_eq(sample.answer_count, 5);
        for (int k = 1; k < 5; k++) {
          char line[64];
          snprintf(line, sizeof line, "VAR %s = VAR %s", sample.answers[k], sample.answers[k - 1]);
          ck_assert_msg(strstr(sample.input, line) != NULL, "vt: no line %s", line);
        }
        ck_assert_ptr_nonnull(strstr(sample.answer_prefix, "5 variables are assigned the value"));
      } else if (task->family == RULER_COMMON_WORDS) {
        /* At 8192 tokens (RULER's full setting) each of the ten answers is
         * in the task's own list 30 times, every other word 3 times. */
        ck_assert_int_eq(sample.answer_count, 10);
        const char *list = strstr(sample.input, "Below is a numbered list of words.");
        /* Skip the worked example: the task's list is the last one. */
        for (const char *next = list; next; next = strstr(next + 1, "Below is a numbered list of words."))
          list = next;
        for (int k = 0; k < 10; k++) {
          char word[64];
          snprintf(word, sizeof word, ". %s ", sample.answers[k]);
          ck_assert_msg(occurrences(list, word) >= 29, "cwe: %s appears %d times", sample.answers[k],
                        occurrences(list, word));
        }
      } else {
        ck_assert_int_eq(sample.answer_count, 3);
        int counts[3];
        for (int k = 0; k < 3; k++) {
          char word[16];
          snprintf(word, sizeof word, " %s", sample.answers[k]);
          counts[k] = occurrences(sample.input, word);
        }
        ck_assert_msg(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > 0, "fwe counts %d %d %d",
                      counts[0], counts[1], counts[2]);
      }
      ruler_sample_free(&sample);
    }
  }
}
END_TEST

/* With the model's own tokenizer: prompt plus answer budget within the
 * length, and the search fills most of it. */
START_TEST(test_prompts_fit_the_length) {
  clttt_tokenizer *tokenizer = NULL;
  ck_assert_int_eq(clttt_tokenizer_load(&tokenizer, stories()), CLTTT_SUCCESS);
  static const int lengths[] = {512, 1024, 2048};
  int fitted = 0;
  for (int l = 0; l < 3; l++)
    for (int i = 0; i < ruler_task_count(); i++) {
      const ruler_task *task = ruler_task_get(i);
      ruler_sample sample;
      if (generate(task, lengths[l], 42, 0, count_with_tokenizer, tokenizer, &sample) != RULER_OK) {
        ck_assert_msg(lengths[l] < 2048, "%s does not fit in %d tokens", task->name, lengths[l]);
        continue;
      }
      int32_t *ids = NULL;
      int n = 0;
      ck_assert_int_eq(clttt_tokenizer_encode(tokenizer, sample.prompt, 1, &ids, &n), CLTTT_SUCCESS);
      free(ids);
      ck_assert_int_eq(n, sample.prompt_tokens);
      ck_assert_msg(n + task->tokens_to_generate <= lengths[l], "%s at %d: %d + %d tokens", task->name, lengths[l], n,
                    task->tokens_to_generate);
      /* Above 85%: one haystack unit (a noise line is ~45 tokens here) is
       * what the search can leave unused. */
      ck_assert_msg(n + task->tokens_to_generate > lengths[l] * 85 / 100, "%s at %d: only %d + %d tokens", task->name,
                    lengths[l], n, task->tokens_to_generate);
      fitted++;
      ruler_sample_free(&sample);
    }
  ck_assert_int_ge(fitted, 11 + 5);
  clttt_tokenizer_free(tokenizer);
}
END_TEST

/* Long lengths need a search over large haystacks: a 64k-token prompt with
 * the quarter-byte counter, and a length too short for anything. */
START_TEST(test_search_scales_and_refuses) {
  ruler_sample sample;
  const ruler_task *task = ruler_task_find("niah_multikey_2");
  ck_assert_int_eq(generate(task, 65536, 1, 0, count_quarter_bytes, NULL, &sample), RULER_OK);
  ck_assert_int_le(sample.prompt_tokens + 128, 65536);
  ck_assert_int_gt(sample.prompt_tokens + 128, 65536 - 40);
  ck_assert_int_gt(sample.haystack, 1000);
  ruler_sample_free(&sample);

  char error[256];
  ck_assert_int_eq(ruler_generate(ruler_task_find("cwe"), 300, 120, 1, 0, -1, count_quarter_bytes, NULL, &sample,
                                  error, sizeof error),
                   RULER_TOO_SHORT);
  ck_assert_msg(strstr(error, "does not fit in 300 tokens") != NULL, "%s", error);
  ck_assert_ptr_null(sample.prompt);
}
END_TEST

START_TEST(test_word_pool_and_essay) {
  /* The written lists have no duplicates and no word of the made-up words'
   * consonant-vowel shape, so the pool never repeats. */
  const long count = 30000;
  char (*words)[32] = malloc((size_t)count * sizeof *words);
  ck_assert_ptr_nonnull(words);
  for (long i = 0; i < count; i++) {
    ruler_pool_word(i, words[i]);
    ck_assert_msg(words[i][0] != '\0', "word %ld is empty", i);
    for (const char *c = words[i]; *c; c++)
      ck_assert_msg(*c >= 'a' && *c <= 'z', "word %ld: %s", i, words[i]);
  }
  /* Sorting by hand would be long: hash into a table. */
  long size = 1 << 17;
  long *table = malloc((size_t)size * sizeof *table);
  for (long i = 0; i < size; i++)
    table[i] = -1;
  for (long i = 0; i < count; i++) {
    long slot = (long)(ruler_hash_string(words[i]) & (uint64_t)(size - 1));
    while (table[slot] >= 0) {
      ck_assert_msg(strcmp(words[table[slot]], words[i]) != 0, "words %ld and %ld are both %s", table[slot], i,
                    words[i]);
      slot = (slot + 1) & (size - 1);
    }
    table[slot] = i;
  }
  free(table);
  free(words);

  char first[512], again[512];
  for (long i = 0; i < 200; i++) {
    ck_assert_int_gt(ruler_essay_sentence(3, i, first, sizeof first), 0);
    ck_assert_int_gt(ruler_essay_sentence(3, i, again, sizeof again), 0);
    ck_assert_str_eq(first, again);
    ck_assert_msg(first[strlen(first) - 1] == '.', "%s", first);
    ck_assert_msg(strpbrk(first, "0123456789") == NULL && strstr(first, "magic") == NULL, "%s", first);
  }
  ck_assert_int_eq(ruler_essay_sentence(3, 0, first, 8), -1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Scoring: RULER's string_match_all on hand-made answers               */

START_TEST(test_scoring) {
  const char *one[] = {"8140236"};
  ck_assert_double_eq(ruler_match_all(" 8140236.", one, 1), 1.0);
  ck_assert_double_eq(ruler_match_all("The number is 814023", one, 1), 0.0);
  ck_assert_double_eq(ruler_match_all("", one, 1), 0.0);
  /* RULER tests containment: a longer number that contains it counts. */
  ck_assert_double_eq(ruler_match_all("81402367", one, 1), 1.0);

  const char *chain[] = {"QWERT", "ASDFG", "ZXCVB", "POIUY", "LKJHG"};
  ck_assert_double_eq(ruler_match_all("qwert ASDFG zxcvb", chain, 5), 0.6);
  ck_assert_double_eq(ruler_match_all("QWERT ASDFG ZXCVB POIUY LKJHG and more", chain, 5), 1.0);

  const char *values[] = {"1111111", "2222222", "3333333", "4444444"};
  ck_assert_double_eq(ruler_match_all("1111111, 3333333", values, 4), 0.5);
  ck_assert_double_eq(ruler_match_part("1111111, 3333333", values, 4), 1.0);
  ck_assert_double_eq(ruler_match_part("nothing", values, 4), 0.0);
  ck_assert_double_eq(ruler_match_all("anything", values, 0), 0.0);

  /* Mean over samples x 100, two decimals, ties to even as Python rounds. */
  ck_assert_double_eq(ruler_task_score(1.0 + 0.5, 2), 75.0);
  ck_assert_double_eq(ruler_task_score(1.0, 3), 33.33);
  ck_assert_double_eq(ruler_task_score(2.0, 3), 66.67);
  ck_assert_double_eq(ruler_task_score(0.03125, 1), 3.12);
  ck_assert_double_eq(ruler_task_score(0.0, 4), 0.0);
  ck_assert(isnan(ruler_task_score(0.0, 0)));

  /* postprocess_pred: strip, control characters to newlines, strip. */
  char *clean = ruler_postprocess("  \x01 tiger-lamp\tis 42\x02 \n");
  ck_assert_str_eq(clean, "tiger-lamp\nis 42");
  free(clean);
  clean = ruler_postprocess("\n\n");
  ck_assert_str_eq(clean, "");
  free(clean);
}
END_TEST

START_TEST(test_svg) {
  char path[700];
  snprintf(path, sizeof path, "%s/plot.svg", scratch);
  const double on[] = {90.0, NAN, 40.0}, off[] = {80.0, 60.0, 20.0};
  const char *labels[] = {"4k", "8k", "16k"};
  svg_series series[] = {{"TTT on", on, "#d62728", 0}, {"TTT off & <base>", off, "#1f77b4", 1}};
  ck_assert_int_eq(svg_line_chart(path, "scores", "length", "score", 3, labels, 0.0, 100.0, 2, series), 0);
  size_t size = 0;
  char *svg = test_read_file(path, &size);
  ck_assert_ptr_nonnull(svg);
  ck_assert_ptr_nonnull(strstr(svg, "<svg"));
  ck_assert_ptr_nonnull(strstr(svg, "</svg>"));
  ck_assert_ptr_nonnull(strstr(svg, "TTT off &amp; &lt;base&gt;"));
  ck_assert_ptr_nonnull(strstr(svg, ">16k<"));
  /* The NaN splits TTT on into two polylines; TTT off is one. */
  ck_assert_int_eq(occurrences(svg, "<polyline"), 3);
  ck_assert_int_eq(occurrences(svg, "<circle"), 5);
  free(svg);
  ck_assert_int_eq(svg_line_chart("/nonexistent/dir/plot.svg", "x", "x", "y", 3, labels, 0, 100, 2, series), -1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The command                                                          */

static json_t *parse_json(const char *text) {
  json_error_t error;
  json_t *root = json_loads(text, 0, &error);
  ck_assert_msg(root != NULL, "not JSON (%s): %s", error.text, text);
  return root;
}

static json_t *find_score(json_t *root, const char *task, int length, const char *ttt) {
  size_t i;
  json_t *entry;
  json_array_foreach(json_object_get(root, "scores"), i, entry) {
    if (strcmp(json_string_value(json_object_get(entry, "task")), task) == 0 &&
        json_integer_value(json_object_get(entry, "length")) == length &&
        strcmp(json_string_value(json_object_get(entry, "ttt")), ttt) == 0)
      return entry;
  }
  ck_abort_msg("no score for %s at %d, TTT %s", task, length, ttt);
  return NULL;
}

/* stories260K (no TTT layers: TTT off only): 256 tokens are too few for
 * RULER's prompts with this 512-piece tokenizer, 512 run; the run is
 * repeatable, the JSON complete, the plot written. */
START_TEST(test_ruler_stories) {
  char plot[700];
  snprintf(plot, sizeof plot, "%s/ruler.svg", scratch);
  test_command result = test_run_clttt(scratch, "ruler -m '%s' --lengths 512,256 --tasks niah_single_1,vt,fwe --samples 2 --json "
                                    "--plot '%s'",
                                    stories(), plot);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_msg(strstr(result.err, "prompts") != NULL, "no progress: %s", result.err);
  json_t *root = parse_json(result.out);
  json_t *lengths = json_object_get(root, "lengths");
  ck_assert_int_eq(json_array_size(lengths), 2);
  ck_assert_int_eq(json_integer_value(json_array_get(lengths, 0)), 256);
  ck_assert_int_eq(json_array_size(json_object_get(root, "ttt")), 1);
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(root, "ttt"), 0)), "off");
  ck_assert_int_eq(json_array_size(json_object_get(root, "scores")), 6);
  static const char *const tasks[] = {"niah_single_1", "vt", "fwe"};
  for (int t = 0; t < 3; t++) {
    json_t *short_one = find_score(root, tasks[t], 256, "off");
    ck_assert(json_is_null(json_object_get(short_one, "score")));
    ck_assert_msg(strstr(json_string_value(json_object_get(short_one, "skipped")), "does not fit in 256") != NULL,
                  "%s", tasks[t]);
    json_t *long_one = find_score(root, tasks[t], 512, "off");
    double score = json_number_value(json_object_get(long_one, "score"));
    ck_assert_msg(score >= 0.0 && score <= 100.0, "%s: %g", tasks[t], score);
    ck_assert_int_eq(json_integer_value(json_object_get(long_one, "samples")), 2);
  }
  json_t *predictions = json_object_get(root, "predictions");
  ck_assert_int_eq(json_array_size(predictions), 6);
  size_t i;
  json_t *entry;
  json_array_foreach(predictions, i, entry) {
    const char *task = json_string_value(json_object_get(entry, "task"));
    int budget = strcmp(task, "vt") == 0 ? 30 : strcmp(task, "fwe") == 0 ? 50 : 128;
    ck_assert_int_le(json_integer_value(json_object_get(entry, "prompt_tokens")) + budget, 512);
    ck_assert_int_le(json_integer_value(json_object_get(entry, "generated_tokens")), budget);
    ck_assert(json_is_string(json_object_get(entry, "prediction")));
    ck_assert_int_ge(json_array_size(json_object_get(entry, "answers")), 1);
  }
  json_t *speed = json_object_get(json_object_get(root, "tokens_per_second"), "off");
  ck_assert_double_gt(json_number_value(json_object_get(speed, "prefill")), 0.0);
  ck_assert_double_gt(json_number_value(json_object_get(speed, "decode")), 0.0);
  size_t size = 0;
  char *svg = test_read_file(plot, &size);
  ck_assert_ptr_nonnull(svg);
  ck_assert_ptr_nonnull(strstr(svg, "TTT off"));
  free(svg);

  /* The same seed: the same prompts and, greedy, the same answers. */
  test_command again = test_run_clttt(scratch, "ruler -m '%s' --lengths 512,256 --tasks niah_single_1,vt,fwe --samples 2 --json",
                                   stories());
  ck_assert_int_eq(again.exit_code, 0);
  json_t *second = parse_json(again.out);
  ck_assert(json_equal(predictions, json_object_get(second, "predictions")));
  json_decref(second);
  test_command_free(&again);
  json_decref(root);
  test_command_free(&result);

  /* The text table, and the prompts in RULER's data format. */
  char prompts[700];
  snprintf(prompts, sizeof prompts, "%s/prompts.jsonl", scratch);
  result = test_run_clttt(scratch, "ruler -m '%s' --lengths 512 --tasks niah_single_1 --samples 1 --seed 3 --prompts '%s'", stories(),
                     prompts);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_msg(strstr(result.out, "score (0-100), TTT off") != NULL && strstr(result.out, "niah_single_1") != NULL &&
                    strstr(result.out, "average") != NULL && strstr(result.out, "tokens/s") != NULL,
                "%s", result.out);
  char *line = test_read_file(prompts, &size);
  ck_assert_ptr_nonnull(line);
  json_t *data = parse_json(line);
  ck_assert_str_eq(json_string_value(json_object_get(data, "task")), "niah_single_1");
  ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(data, "input")), "The grass is green."));
  ck_assert_int_le(json_integer_value(json_object_get(data, "length")), 512);
  ck_assert_int_eq(json_array_size(json_object_get(data, "outputs")), 1);
  json_decref(data);
  free(line);
  test_command_free(&result);
}
END_TEST

/* A TTT fixture: every prompt runs with TTT on and off on the same tokens;
 * the table and JSON carry both and their difference. Its letter-pair
 * tokenizer needs ~390 tokens for RULER's smallest NIAH prompt, so the
 * length is 512, past the fixture's 256 positions (RoPE extrapolates; the
 * command warns). */
START_TEST(test_ruler_ttt_both) {
  char dir[700];
  snprintf(dir, sizeof dir, "%s/ttt", scratch);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-proj-hidden"), dir), CLTTT_SUCCESS);
  test_write_small_tokenizer(dir);
  test_command result =
      test_run_clttt(scratch, "ruler -m '%s' --lengths 512 --tasks niah_single_1,niah_multikey_2 --samples 2 --answer-tokens 8 --json",
                dir);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  json_t *root = parse_json(result.out);
  json_t *modes = json_object_get(root, "ttt");
  ck_assert_int_eq(json_array_size(modes), 2);
  ck_assert_str_eq(json_string_value(json_array_get(modes, 0)), "on");
  ck_assert_str_eq(json_string_value(json_array_get(modes, 1)), "off");
  for (int m = 0; m < 2; m++) {
    double score = json_number_value(json_object_get(find_score(root, "niah_single_1", 512, m ? "off" : "on"), "score"));
    ck_assert(score >= 0.0 && score <= 100.0);
  }
  ck_assert_int_eq(json_array_size(json_object_get(root, "differences")), 3); /* two tasks and the average */
  json_t *predictions = json_object_get(root, "predictions");
  ck_assert_int_eq(json_array_size(predictions), 8);
  /* Predictions come by mode: the first four TTT on, the next four off, on
   * the very same prompts. */
  for (size_t i = 0; i < 4; i++) {
    json_t *on = json_array_get(predictions, i), *off = json_array_get(predictions, i + 4);
    ck_assert_str_eq(json_string_value(json_object_get(on, "ttt")), "on");
    ck_assert_str_eq(json_string_value(json_object_get(off, "ttt")), "off");
    ck_assert_int_eq(json_integer_value(json_object_get(on, "prompt_tokens")),
                     json_integer_value(json_object_get(off, "prompt_tokens")));
    ck_assert_int_eq(json_integer_value(json_object_get(on, "haystack")),
                     json_integer_value(json_object_get(off, "haystack")));
    ck_assert_int_le(json_integer_value(json_object_get(on, "prompt_tokens")) + 8, 512);
  }
  json_t *speed = json_object_get(root, "tokens_per_second");
  ck_assert_double_gt(json_number_value(json_object_get(json_object_get(speed, "on"), "prefill")), 0.0);
  ck_assert_double_gt(json_number_value(json_object_get(json_object_get(speed, "off"), "prefill")), 0.0);
  json_decref(root);
  test_command_free(&result);

  result = test_run_clttt(scratch, "ruler -m '%s' --lengths 512 --tasks niah_single_1 --samples 1 --answer-tokens 8", dir);
  ck_assert_msg(result.exit_code == 0, "%s", result.err);
  ck_assert_ptr_nonnull(strstr(result.out, "score (0-100), TTT on"));
  ck_assert_ptr_nonnull(strstr(result.out, "score (0-100), TTT off"));
  ck_assert_ptr_nonnull(strstr(result.out, "difference, TTT on - TTT off"));
  test_command_free(&result);
}
END_TEST

START_TEST(test_ruler_bad_input) {
  test_command result = test_run_clttt(scratch, "ruler --help");
  ck_assert_int_eq(result.exit_code, 0);
  ck_assert_ptr_nonnull(strstr(result.out, "usage: clttt ruler"));
  ck_assert_ptr_nonnull(strstr(result.out, "generated text"));
  ck_assert_ptr_nonnull(strstr(result.out, "niah_multikey_3"));
  ck_assert_ptr_nonnull(strstr(result.out, "With TTT on it cannot be reused"));
  test_command_free(&result);

  static const struct {
    const char *arguments, *message;
  } bad[] = {
      {"ruler --lengths 512", "no model"},
      {"ruler -m DIR", "no lengths"},
      {"ruler -m DIR --lengths 4x", "'4x'"},
      {"ruler -m DIR --lengths 512,512", "twice"},
      {"ruler -m DIR --lengths 512 --tasks niah_single_1,nosuch", "unknown task 'nosuch'"},
      {"ruler -m DIR --lengths 512 --samples 0", "--samples"},
      {"ruler -m DIR --lengths 512 --ttt sideways", "--ttt"},
      {"ruler -m DIR --lengths 512 --ctx 100", "--ctx"},
      {"ruler -m DIR --lengths 512 --frobnicate", "--frobnicate"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char arguments[2048];
    const char *at = strstr(bad[i].arguments, "DIR");
    if (at)
      snprintf(arguments, sizeof arguments, "%.*s'%s'%s", (int)(at - bad[i].arguments), bad[i].arguments, stories(),
               at + 3);
    else
      snprintf(arguments, sizeof arguments, "%s", bad[i].arguments);
    result = test_run_clttt(scratch, "%s", arguments);
    ck_assert_msg(result.exit_code == 2, "%s exited %d", arguments, result.exit_code);
    ck_assert_msg(strstr(result.err, bad[i].message) != NULL, "%s: %s", arguments, result.err);
    test_command_free(&result);
  }
  result = test_run_clttt(scratch, "ruler -m /nonexistent/model --lengths 512");
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_ptr_nonnull(strstr(result.err, "/nonexistent/model"));
  test_command_free(&result);
  result = test_run_clttt(scratch, "ruler -m '%s' --lengths 512 --tasks fwe --samples 1 --plot /nonexistent/dir/p.svg", stories());
  ck_assert_int_eq(result.exit_code, 1);
  ck_assert_msg(strstr(result.err, "/nonexistent/dir/p.svg") != NULL, "%s", result.err);
  test_command_free(&result);
}
END_TEST

static Suite *ruler_suite(void) {
  Suite *suite = suite_create("ruler");
  TCase *generator = tcase_create("generator");
  tcase_add_checked_fixture(generator, setup, teardown);
  tcase_add_test(generator, test_task_table);
  tcase_add_test(generator, test_generator_is_deterministic);
  tcase_add_test(generator, test_answers_are_in_the_prompt);
  tcase_add_test(generator, test_prompts_fit_the_length);
  tcase_add_test(generator, test_search_scales_and_refuses);
  tcase_add_test(generator, test_word_pool_and_essay);
  suite_add_tcase(suite, generator);
  TCase *scoring = tcase_create("scoring");
  tcase_add_checked_fixture(scoring, setup, teardown);
  tcase_add_test(scoring, test_scoring);
  tcase_add_test(scoring, test_svg);
  suite_add_tcase(suite, scoring);
  TCase *command = tcase_create("command");
  tcase_add_checked_fixture(command, setup, teardown);
  tcase_add_test(command, test_ruler_stories);
  tcase_add_test(command, test_ruler_ttt_both);
  tcase_add_test(command, test_ruler_bad_input);
  suite_add_tcase(suite, command);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(ruler_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
