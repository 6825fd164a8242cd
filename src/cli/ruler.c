/* clttt ruler: RULER's synthetic long-context tasks, generated here, run
 * with TTT on and off, scored as RULER scores them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clttt.h"
#include "ruler_score.h"
#include "ruler_tasks.h"
#include "svg_plot.h"

#define MAX_LENGTHS 16
#define DEFAULT_SAMPLES 10
#define DEFAULT_SEED 42 /* RULER's default random_seed */

static void help(void) {
  printf("usage: clttt ruler -m DIR --lengths 4k,8k,... [--tasks LIST] [--samples N] [--ttt on|off|both]\n"
         "                   [--seed S] [--answer-tokens N] [--json] [--plot F.svg] [--prompts F.jsonl]\n"
         "Runs RULER's synthetic tasks (NVIDIA/RULER, scripts/synthetic.yaml) on the model: each\n"
         "prompt is generated here from the seed and sized with the model's own tokenizer (the\n"
         "largest haystack whose prompt plus the task's answer budget fits the length), the\n"
         "model continues RULER's answer prefix greedily until EOS or the budget, and the answer\n"
         "is scored as RULER scores it (string_match_all: the share of expected strings the\n"
         "answer contains, ignoring case; a task's score is the mean over samples x 100).\n"
         "Prints a task x length table with TTT on, off and the difference, and a progress bar\n"
         "on standard error.\n\n"
         "  --lengths LIST     context lengths in tokens, prompt and answer included: 256,4k,8k\n"
         "                     (k = 1024)\n"
         "  --tasks LIST       comma-separated task names, or all (default all)\n"
         "  --samples N        samples per task and length (default %d)\n"
         "  --ttt on|off|both  both (the default for a TTT checkpoint): every prompt twice, TTT on\n"
         "                     and off; off is the default for a checkpoint without TTT layers\n"
         "  --seed S           the same seed gives the same prompts (default %d)\n"
         "  --answer-tokens N  answer budget of every task instead of RULER's per-task one\n"
         "                     (prompts are sized for it)\n"
         "  --json             machine-readable results on standard output: scores, averages,\n"
         "                     differences, tokens/s, every prediction\n"
         "  --plot F.svg       writes the mean score over tasks against length, one line per mode\n"
         "  --prompts F.jsonl  writes every prompt as RULER writes its data: a JSON line with\n"
         "                     index, input, answer_prefix, outputs and length, plus task\n"
         "  -m, --model DIR    HuggingFace model directory with a tokenizer\n"
         "  --device SEL       OpenCL device: index or name substring (default: $CLTTT_DEVICE,\n"
         "                     else the first GPU, else device 0; see 'clttt devices')\n"
         "  --chunk C          override the TTT chunk size (ttt_chunk)\n"
         "  --eta E            override the TTT step size (ttt_lr)\n"
         "\ntasks (RULER's configuration) and their answer budgets in tokens:\n",
         DEFAULT_SAMPLES, DEFAULT_SEED);
  for (int i = 0; i < ruler_task_count(); i++) {
    const ruler_task *task = ruler_task_get(i);
    printf("  %-16s %3d  %s\n", task->name, task->tokens_to_generate, task->about);
  }
  printf("\nHaystacks: niah_single_1 and vt repeat RULER's noise sentences; niah_multikey_2/3\n"
         "are made of distractor needles. RULER cuts the other NIAH haystacks from Paul Graham's\n"
         "essays, which cannot be shipped: here they are generated text, plain sentences about a\n"
         "made-up countryside built from word lists written for clttt (src/cli/ruler_text.c),\n"
         "the same text for every sample of a seed. Keys, cwe's words and the sentences use\n"
         "those lists too (RULER uses wonderwords'). Needles go at depths drawn from RULER's 40\n"
         "evenly spaced depths, 0%% to 100%% of the haystack.\n\n"
         "Prefixes: every prompt is prefilled from its first token. With TTT off, the KV cache\n"
         "of a haystack prefix that several prompts share (the essay before the first needle)\n"
         "could be computed once, but clttt sessions can be neither forked nor rewound, so it is\n"
         "not. With TTT on it cannot be reused across questions that differ before it: the fast\n"
         "weights at a position have learned from every token before that position, needles\n"
         "included.\n");
}

/* "4k" -> 4096, "300" -> 300. */
static int parse_length(const char *text, int *length) {
  char *end = NULL;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || value <= 0)
    return 0;
  if (*end == 'k' || *end == 'K') {
    value *= 1024;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    value *= 1024 * 1024;
    end++;
  }
  if (*end || value > 1L << 26)
    return 0;
  *length = (int)value;
  return 1;
}

static int parse_lengths(const char *list, int *lengths, int *count) {
  char buffer[1024];
  if (strlen(list) >= sizeof buffer) {
    fprintf(stderr, "clttt ruler: --lengths is too long\n");
    return 0;
  }
  strcpy(buffer, list);
  *count = 0;
  for (char *item = strtok(buffer, ","); item; item = strtok(NULL, ",")) {
    if (*count == MAX_LENGTHS) {
      fprintf(stderr, "clttt ruler: at most %d lengths\n", MAX_LENGTHS);
      return 0;
    }
    if (!parse_length(item, &lengths[*count])) {
      fprintf(stderr, "clttt ruler: --lengths expects token counts such as 256,4k,8k; got '%s'\n", item);
      return 0;
    }
    for (int i = 0; i < *count; i++)
      if (lengths[i] == lengths[*count]) {
        fprintf(stderr, "clttt ruler: length %s given twice\n", item);
        return 0;
      }
    (*count)++;
  }
  if (*count == 0) {
    fprintf(stderr, "clttt ruler: --lengths is empty\n");
    return 0;
  }
  return 1;
}

static int parse_tasks(const char *list, const ruler_task **tasks, int *count) {
  *count = 0;
  if (strcmp(list, "all") == 0) {
    for (int i = 0; i < ruler_task_count(); i++)
      tasks[(*count)++] = ruler_task_get(i);
    return 1;
  }
  char buffer[1024];
  if (strlen(list) >= sizeof buffer) {
    fprintf(stderr, "clttt ruler: --tasks is too long\n");
    return 0;
  }
  strcpy(buffer, list);
  for (char *item = strtok(buffer, ","); item; item = strtok(NULL, ",")) {
    const ruler_task *task = ruler_task_find(item);
    if (!task) {
      fprintf(stderr, "clttt ruler: unknown task '%s'; the tasks are:", item);
      for (int i = 0; i < ruler_task_count(); i++)
        fprintf(stderr, " %s", ruler_task_get(i)->name);
      fprintf(stderr, " (or all)\n");
      return 0;
    }
    for (int i = 0; i < *count; i++)
      if (tasks[i] == task) {
        fprintf(stderr, "clttt ruler: task %s given twice\n", item);
        return 0;
      }
    tasks[(*count)++] = task;
  }
  if (*count == 0) {
    fprintf(stderr, "clttt ruler: --tasks is empty\n");
    return 0;
  }
  return 1;
}

static void format_length(char *out, size_t size, int length) {
  if (length >= 1024 && length % 1024 == 0)
    snprintf(out, size, "%dk", length / 1024);
  else
    snprintf(out, size, "%d", length);
}

/* ------------------------------------------------------------------ */

typedef struct {
  const clttt_tokenizer *tokenizer;
} counter_state;

static int count_tokens(void *user, const char *text, int *tokens) {
  counter_state *state = user;
  int32_t *ids = NULL;
  int status = clttt_tokenizer_encode(state->tokenizer, text, 1, &ids, tokens);
  free(ids);
  return status == CLTTT_SUCCESS ? 0 : -1;
}

/* One prompt, as run in one mode. */
typedef struct {
  int task, length, sample, mode;
  int prompt_tokens, generated;
  long haystack;
  int needle_count, depths[RULER_MAX_NEEDLES], example;
  char **answers;
  int answer_count;
  char *prediction;
  double fraction;
} record;

/* Per (mode, length, task). */
typedef struct {
  double fraction_sum;
  int samples;
  long prompt_tokens;
  int skipped;
  char reason[256];
} cell;

typedef struct {
  double prefill_seconds, decode_seconds;
  long prefill_tokens, decode_tokens;
} speed;

static int argmax(const float *row, int vocab) {
  int best = 0;
  for (int v = 1; v < vocab; v++)
    if (row[v] > row[best])
      best = v;
  return best;
}

/* Prefills the prompt and decodes greedily. *prediction is malloc'ed. */
static int run_prompt(clttt_session *session, const clttt_tokenizer *tokenizer, int vocab, const int32_t *ids, int n,
                      int budget, float *logits, int32_t *generated, char **prediction, int *generated_count,
                      speed *timing) {
  int status = clttt_session_reset(session);
  double start = cli_now_seconds();
  if (status == CLTTT_SUCCESS)
    status = clttt_session_feed(session, ids, n, logits, 1);
  timing->prefill_seconds += cli_now_seconds() - start;
  timing->prefill_tokens += n;
  if (status != CLTTT_SUCCESS) {
    cli_report("prefilling the prompt", status);
    return 0;
  }
  const int eos = clttt_tokenizer_eos(tokenizer);
  int produced = 0;
  start = cli_now_seconds();
  while (produced < budget) {
    int32_t token = argmax(logits, vocab);
    if (token == eos)
      break;
    generated[produced++] = token;
    if (produced == budget)
      break;
    status = clttt_session_feed(session, &token, 1, logits, 1);
    if (status != CLTTT_SUCCESS) {
      cli_report("decoding the answer", status);
      return 0;
    }
  }
  timing->decode_seconds += cli_now_seconds() - start;
  timing->decode_tokens += produced;
  *generated_count = produced;
  status = clttt_tokenizer_decode(tokenizer, generated, produced, prediction);
  if (status != CLTTT_SUCCESS) {
    cli_report("decoding the answer's tokens", status);
    return 0;
  }
  return 1;
}

static void put_json_string_to(FILE *file, const char *text) {
  fputc('"', file);
  for (const unsigned char *c = (const unsigned char *)text; c && *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(file, "\\%c", *c);
    else if (*c == '\n')
      fputs("\\n", file);
    else if (*c == '\t')
      fputs("\\t", file);
    else if (*c < 0x20)
      fprintf(file, "\\u%04x", *c);
    else
      fputc(*c, file);
  }
  fputc('"', file);
}

static void put_json_string(const char *text) { put_json_string_to(stdout, text); }

/* One line of RULER's data format (scripts/data/synthetic/niah.py's
 * formatted_output), with the task name added. */
static void write_prompt(FILE *file, const char *task, int index, const ruler_sample *sample, int budget) {
  fprintf(file, "{\"task\": \"%s\", \"index\": %d, \"input\": ", task, index);
  put_json_string_to(file, sample->input);
  fputs(", \"outputs\": [", file);
  for (int a = 0; a < sample->answer_count; a++) {
    fputs(a ? ", " : "", file);
    put_json_string_to(file, sample->answers[a]);
  }
  fprintf(file, "], \"length\": %d, \"answer_prefix\": ", sample->prompt_tokens + budget);
  put_json_string_to(file, sample->answer_prefix);
  fputs("}\n", file);
}

static void put_json_number(double value) {
  if (isnan(value) || isinf(value))
    printf("null");
  else
    printf("%.2f", value);
}

static double rate(long tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; }

static void progress(int done, int total, const char *task, int length, const char *mode, const speed *timing) {
  char length_text[16];
  format_length(length_text, sizeof length_text, length);
  int filled = total > 0 ? (int)(30.0 * done / total) : 30;
  fprintf(stderr, "\r[%.*s%*s] %d/%d prompts  %-16s %6s TTT %-3s  %.0f tokens/s  ", filled,
          "==============================", 30 - filled, "", done, total, task, length_text, mode,
          rate(timing->prefill_tokens + timing->decode_tokens, timing->prefill_seconds + timing->decode_seconds));
  fflush(stderr);
}

int command_ruler(int argc, char **argv) {
  model_options options;
  model_options_init(&options);
  options.allow_ttt_both = 1;
  int lengths[MAX_LENGTHS], length_count = 0, task_count = 0, samples = DEFAULT_SAMPLES, seed = DEFAULT_SEED;
  int answer_tokens = 0, json = 0, error = 0;
  const ruler_task *tasks[64];
  const char *plot = NULL, *length_list = NULL, *task_list = "all", *prompts_path = NULL;
  for (int i = 1; i < argc && !error; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (model_options_parse(argc, argv, &i, &options, &error)) {
    } else if (cli_option_value(argc, argv, &i, "--lengths", &value, &missing)) {
      length_list = value;
    } else if (cli_option_value(argc, argv, &i, "--tasks", &value, &missing)) {
      task_list = value;
    } else if (cli_option_value(argc, argv, &i, "--samples", &value, &missing)) {
      error = !missing && !parse_int(value, "--samples", 1, &samples);
    } else if (cli_option_value(argc, argv, &i, "--seed", &value, &missing)) {
      error = !missing && !parse_int(value, "--seed", 0, &seed);
    } else if (cli_option_value(argc, argv, &i, "--answer-tokens", &value, &missing)) {
      error = !missing && !parse_int(value, "--answer-tokens", 1, &answer_tokens);
    } else if (cli_option_value(argc, argv, &i, "--plot", &value, &missing)) {
      plot = value;
    } else if (cli_option_value(argc, argv, &i, "--prompts", &value, &missing)) {
      prompts_path = value;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else {
      fprintf(stderr, "clttt ruler: unknown option '%s' (see --help)\n", argv[i]);
      error = 1;
    }
    error |= missing;
  }
  if (error)
    return 2;
  if (!options.model_dir) {
    fprintf(stderr, "clttt ruler: no model given: use -m DIR (see --help)\n");
    return 2;
  }
  if (!length_list) {
    fprintf(stderr, "clttt ruler: no lengths given: use --lengths 4k,8k,... (see --help)\n");
    return 2;
  }
  if (options.context) {
    fprintf(stderr, "clttt ruler: --ctx does not apply: each length is the context of its prompts\n");
    return 2;
  }
  if (!parse_lengths(length_list, lengths, &length_count) || !parse_tasks(task_list, tasks, &task_count))
    return 2;
  /* Ascending lengths read better in the table and the plot. */
  for (int i = 1; i < length_count; i++)
    for (int j = i; j > 0 && lengths[j - 1] > lengths[j]; j--) {
      int swap = lengths[j];
      lengths[j] = lengths[j - 1];
      lengths[j - 1] = swap;
    }

  int exit_code = 1;
  clttt_tokenizer *tokenizer = NULL;
  clttt_device *device = NULL;
  clttt_model *model = NULL;
  clttt_session *session = NULL;
  record *records = NULL;
  int record_count = 0;
  cell *cells = NULL;
  float *logits = NULL;
  int32_t *generated = NULL;
  clttt_config config;
  int have_config = 0;
  FILE *prompts = NULL;

  int status = clttt_tokenizer_load(&tokenizer, options.model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the tokenizer", status);
    goto done;
  }
  status = clttt_config_load(&config, options.model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the model's config.json", status);
    goto done;
  }
  have_config = 1;
  int modes[2], mode_count = 0;
  const int wanted = options.ttt;
  if ((wanted == 1 || wanted == 2) && !config.ttt_mode) {
    fprintf(stderr, "clttt ruler: warning: the checkpoint has no TTT layers (ttt_mode false): TTT on would be the "
                    "base model; running TTT off only\n");
    modes[mode_count++] = 0;
  } else if (wanted == 2 || (wanted == -1 && config.ttt_mode)) {
    modes[mode_count++] = 1;
    modes[mode_count++] = 0;
  } else {
    modes[mode_count++] = wanted == 1;
  }
  if ((options.chunk || options.eta != 0.0f) && config.ttt_mode)
    fprintf(stderr,
            "clttt ruler: warning: overriding TTT parameters (chunk %d, eta %g); the checkpoint was trained with chunk "
            "%d, eta %g\n",
            options.chunk ? options.chunk : config.ttt_chunk,
            (double)(options.eta != 0.0f ? options.eta : config.ttt_lr), config.ttt_chunk, (double)config.ttt_lr);
  if (lengths[length_count - 1] > config.max_position_embeddings)
    fprintf(stderr, "clttt ruler: warning: a length of %d tokens is beyond the model's max_position_embeddings (%d)\n",
            lengths[length_count - 1], config.max_position_embeddings);
  if (clttt_tokenizer_vocab_size(tokenizer) > config.vocab_size) {
    fprintf(stderr, "clttt ruler: the tokenizer has %d tokens but the model's vocabulary only %d\n",
            clttt_tokenizer_vocab_size(tokenizer), config.vocab_size);
    goto done;
  }

  if (prompts_path && !(prompts = fopen(prompts_path, "w"))) {
    fprintf(stderr, "clttt ruler: cannot write %s: %s\n", prompts_path, strerror(errno));
    goto done;
  }
  status = clttt_device_open(&device, options.device);
  if (status != CLTTT_SUCCESS) {
    cli_report("opening the OpenCL device", status);
    goto done;
  }
  clttt_model_params model_params = clttt_model_default_params();
  model_params.check_weights = options.check_weights;
  status = clttt_model_load(&model, device, options.model_dir, &model_params);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the model", status);
    goto done;
  }
  const int vocab = clttt_model_get_config(model)->vocab_size;
  int largest_budget = answer_tokens;
  for (int t = 0; t < task_count; t++)
    if (!answer_tokens && tasks[t]->tokens_to_generate > largest_budget)
      largest_budget = tasks[t]->tokens_to_generate;
  const int total = mode_count * length_count * task_count * samples;
  records = calloc((size_t)total, sizeof *records);
  cells = calloc((size_t)(mode_count * length_count * task_count), sizeof *cells);
  logits = malloc((size_t)vocab * sizeof *logits);
  generated = malloc((size_t)largest_budget * sizeof *generated);
  /* The haystack size each (length, task, sample) got in the first mode:
   * the second mode then skips the search. */
  long *sizes = malloc((size_t)(length_count * task_count * samples) * sizeof *sizes);
  if (!records || !cells || !logits || !generated || !sizes) {
    free(sizes);
    fprintf(stderr, "clttt ruler: out of host memory\n");
    goto done;
  }
  for (int i = 0; i < length_count * task_count * samples; i++)
    sizes[i] = -1;
  speed speeds[2][MAX_LENGTHS];
  memset(speeds, 0, sizeof speeds);
  speed overall = {0};
  counter_state counter = {tokenizer};
  int done_count = 0, failed = 0;
  for (int l = 0; l < length_count && !failed; l++) {
    for (int m = 0; m < mode_count && !failed; m++) {
      clttt_session_params params = model_session_params(&options, lengths[l]);
      params.ttt = modes[m];
      params.logits = CLTTT_LOGITS_LAST;
      status = clttt_session_create(&session, model, &params);
      if (status != CLTTT_SUCCESS) {
        fprintf(stderr, "\n");
        cli_report("creating the session", status);
        failed = 1;
        break;
      }
      const char *mode_name = modes[m] ? "on" : "off";
      for (int t = 0; t < task_count && !failed; t++) {
        cell *c = &cells[(m * length_count + l) * task_count + t];
        const int budget = answer_tokens ? answer_tokens : tasks[t]->tokens_to_generate;
        for (int s = 0; s < samples && !failed; s++) {
          progress(done_count, total, tasks[t]->name, lengths[l], mode_name, &overall);
          if (c->skipped) {
            done_count++;
            continue;
          }
          ruler_sample sample;
          long *size = &sizes[(l * task_count + t) * samples + s];
          ruler_result result = ruler_generate(tasks[t], lengths[l], budget, (uint64_t)seed, s, *size, count_tokens,
                                               &counter, &sample, c->reason, sizeof c->reason);
          if (result == RULER_TOO_SHORT) {
            c->skipped = 1;
            done_count++;
            continue;
          }
          if (result != RULER_OK) {
            fprintf(stderr, "\nclttt ruler: %s\n", c->reason);
            failed = 1;
            break;
          }
          *size = sample.haystack;
          if (prompts && m == 0)
            write_prompt(prompts, tasks[t]->name, s, &sample, budget);
          int32_t *ids = NULL;
          int n = 0;
          status = clttt_tokenizer_encode(tokenizer, sample.prompt, 1, &ids, &n);
          if (status != CLTTT_SUCCESS) {
            fprintf(stderr, "\n");
            cli_report("tokenizing a prompt", status);
            ruler_sample_free(&sample);
            failed = 1;
            break;
          }
          record *r = &records[record_count++];
          r->task = t;
          r->length = l;
          r->sample = s;
          r->mode = m;
          r->prompt_tokens = n;
          r->haystack = sample.haystack;
          r->needle_count = sample.needle_count;
          memcpy(r->depths, sample.depths, sizeof r->depths);
          r->example = sample.example;
          /* The record takes the expected strings over. */
          r->answers = sample.answers;
          r->answer_count = sample.answer_count;
          sample.answers = NULL;
          sample.answer_count = 0;
          ruler_sample_free(&sample);
          speed timing = {0};
          char *prediction = NULL;
          int ok = run_prompt(session, tokenizer, vocab, ids, n, budget, logits, generated, &prediction, &r->generated,
                              &timing);
          free(ids);
          if (!ok) {
            failed = 1;
            break;
          }
          r->prediction = ruler_postprocess(prediction);
          free(prediction);
          if (!r->prediction) {
            fprintf(stderr, "\nclttt ruler: out of host memory\n");
            failed = 1;
            break;
          }
          r->fraction = ruler_match_all(r->prediction, (const char *const *)r->answers, r->answer_count);
          c->fraction_sum += r->fraction;
          c->samples++;
          c->prompt_tokens += n;
          speed *sum[2] = {&speeds[m][l], &overall};
          for (int k = 0; k < 2; k++) {
            sum[k]->prefill_seconds += timing.prefill_seconds;
            sum[k]->prefill_tokens += timing.prefill_tokens;
            sum[k]->decode_seconds += timing.decode_seconds;
            sum[k]->decode_tokens += timing.decode_tokens;
          }
          done_count++;
        }
      }
      clttt_session_free(session);
      session = NULL;
    }
  }
  free(sizes);
  if (prompts) {
    int bad = ferror(prompts);
    bad |= fclose(prompts) != 0;
    prompts = NULL;
    if (bad && !failed) {
      fprintf(stderr, "clttt ruler: writing %s failed\n", prompts_path);
      failed = 1;
    }
  }
  if (!failed) {
    progress(done_count, total, "done", lengths[length_count - 1], modes[mode_count - 1] ? "on" : "off", &overall);
    fprintf(stderr, "\n");
  }
  if (failed)
    goto done;
  for (int i = 0; i < mode_count * length_count * task_count; i++)
    if (cells[i].skipped) {
      int t = i % task_count, l = (i / task_count) % length_count;
      if (i / task_count / length_count == 0)
        fprintf(stderr, "clttt ruler: warning: skipping %s at %d tokens: %s\n", tasks[t]->name, lengths[l],
                cells[i].reason);
    }

  /* Scores: [mode][length][task], and the mean over the tasks that ran. */
  double scores[2][MAX_LENGTHS][64], averages[2][MAX_LENGTHS];
  int averaged[2][MAX_LENGTHS];
  for (int m = 0; m < mode_count; m++)
    for (int l = 0; l < length_count; l++) {
      double sum = 0;
      averaged[m][l] = 0;
      for (int t = 0; t < task_count; t++) {
        const cell *c = &cells[(m * length_count + l) * task_count + t];
        scores[m][l][t] = ruler_task_score(c->fraction_sum, c->samples);
        if (c->samples) {
          sum += scores[m][l][t];
          averaged[m][l]++;
        }
      }
      averages[m][l] = averaged[m][l] ? sum / averaged[m][l] : NAN;
    }
  const int both = mode_count == 2;

  if (json) {
    printf("{\"model\": ");
    put_json_string(options.model_dir);
    printf(", \"seed\": %d, \"samples\": %d, \"answer_tokens\": ", seed, samples);
    if (answer_tokens)
      printf("%d", answer_tokens);
    else
      printf("null");
    printf(", \"lengths\": [");
    for (int l = 0; l < length_count; l++)
      printf("%s%d", l ? ", " : "", lengths[l]);
    printf("], \"tasks\": [");
    for (int t = 0; t < task_count; t++) {
      printf("%s", t ? ", " : "");
      put_json_string(tasks[t]->name);
    }
    printf("], \"ttt\": [");
    for (int m = 0; m < mode_count; m++)
      printf("%s\"%s\"", m ? ", " : "", modes[m] ? "on" : "off");
    printf("],\n \"scores\": [");
    int first = 1;
    for (int m = 0; m < mode_count; m++)
      for (int l = 0; l < length_count; l++)
        for (int t = 0; t < task_count; t++) {
          const cell *c = &cells[(m * length_count + l) * task_count + t];
          printf("%s\n  {\"task\": \"%s\", \"length\": %d, \"ttt\": \"%s\", \"score\": ", first ? "" : ",",
                 tasks[t]->name, lengths[l], modes[m] ? "on" : "off");
          put_json_number(scores[m][l][t]);
          printf(", \"samples\": %d, \"mean_prompt_tokens\": ", c->samples);
          put_json_number(c->samples ? (double)c->prompt_tokens / c->samples : NAN);
          if (c->skipped) {
            printf(", \"skipped\": ");
            put_json_string(c->reason);
          }
          printf("}");
          first = 0;
        }
    printf("],\n \"averages\": [");
    first = 1;
    for (int m = 0; m < mode_count; m++)
      for (int l = 0; l < length_count; l++) {
        printf("%s\n  {\"length\": %d, \"ttt\": \"%s\", \"score\": ", first ? "" : ",", lengths[l],
               modes[m] ? "on" : "off");
        put_json_number(averages[m][l]);
        printf(", \"tasks\": %d}", averaged[m][l]);
        first = 0;
      }
    printf("],\n \"differences\": [");
    first = 1;
    for (int l = 0; both && l < length_count; l++)
      for (int t = 0; t <= task_count; t++) {
        double on = t < task_count ? scores[0][l][t] : averages[0][l];
        double off = t < task_count ? scores[1][l][t] : averages[1][l];
        printf("%s\n  {\"task\": \"%s\", \"length\": %d, \"on_minus_off\": ", first ? "" : ",",
               t < task_count ? tasks[t]->name : "average", lengths[l]);
        put_json_number(on - off);
        printf("}");
        first = 0;
      }
    printf("],\n \"speed\": [");
    first = 1;
    for (int m = 0; m < mode_count; m++)
      for (int l = 0; l < length_count; l++) {
        const speed *v = &speeds[m][l];
        printf("%s\n  {\"ttt\": \"%s\", \"length\": %d, \"prefill_tokens\": %ld, \"prefill_seconds\": %.3f, "
               "\"prefill_tokens_per_second\": %.1f, \"decode_tokens\": %ld, \"decode_seconds\": %.3f, "
               "\"decode_tokens_per_second\": %.1f}",
               first ? "" : ",", modes[m] ? "on" : "off", lengths[l], v->prefill_tokens, v->prefill_seconds,
               rate(v->prefill_tokens, v->prefill_seconds), v->decode_tokens, v->decode_seconds,
               rate(v->decode_tokens, v->decode_seconds));
        first = 0;
      }
    printf("],\n \"tokens_per_second\": {");
    for (int m = 0; m < mode_count; m++) {
      speed v = {0};
      for (int l = 0; l < length_count; l++) {
        v.prefill_tokens += speeds[m][l].prefill_tokens;
        v.prefill_seconds += speeds[m][l].prefill_seconds;
        v.decode_tokens += speeds[m][l].decode_tokens;
        v.decode_seconds += speeds[m][l].decode_seconds;
      }
      printf("%s\"%s\": {\"prefill\": %.1f, \"decode\": %.1f}", m ? ", " : "", modes[m] ? "on" : "off",
             rate(v.prefill_tokens, v.prefill_seconds), rate(v.decode_tokens, v.decode_seconds));
    }
    printf("},\n \"predictions\": [");
    for (int i = 0; i < record_count; i++) {
      const record *r = &records[i];
      printf("%s\n  {\"task\": \"%s\", \"length\": %d, \"sample\": %d, \"ttt\": \"%s\", \"prompt_tokens\": %d, "
             "\"haystack\": %ld, \"example\": %s, \"depths\": [",
             i ? "," : "", tasks[r->task]->name, lengths[r->length], r->sample, modes[r->mode] ? "on" : "off",
             r->prompt_tokens, r->haystack, r->example ? "true" : "false");
      for (int d = 0; d < r->needle_count; d++)
        printf("%s%d", d ? ", " : "", r->depths[d]);
      printf("], \"answers\": [");
      for (int a = 0; a < r->answer_count; a++) {
        printf("%s", a ? ", " : "");
        put_json_string(r->answers[a]);
      }
      printf("], \"generated_tokens\": %d, \"prediction\": ", r->generated);
      put_json_string(r->prediction);
      printf(", \"score\": ");
      put_json_number(r->fraction * 100.0);
      printf("}");
    }
    printf("]}\n");
  } else {
    printf("RULER synthetic tasks on %s: %d sample%s per task and length, seed %d\n", options.model_dir, samples,
           samples == 1 ? "" : "s", seed);
    const int grids = both ? 3 : 1;
    for (int g = 0; g < grids; g++) {
      if (g < mode_count)
        printf("\nscore (0-100), TTT %s\n", modes[g] ? "on" : "off");
      else
        printf("\ndifference, TTT on - TTT off\n");
      printf("%-18s", "task");
      for (int l = 0; l < length_count; l++) {
        char name[16];
        format_length(name, sizeof name, lengths[l]);
        printf(" %8s", name);
      }
      printf("\n");
      for (int t = 0; t <= task_count; t++) {
        printf("%-18s", t < task_count ? tasks[t]->name : "average");
        for (int l = 0; l < length_count; l++) {
          double value;
          if (g < mode_count)
            value = t < task_count ? scores[g][l][t] : averages[g][l];
          else
            value = t < task_count ? scores[0][l][t] - scores[1][l][t] : averages[0][l] - averages[1][l];
          if (isnan(value))
            printf(" %8s", "-");
          else if (g == 2)
            printf(" %+8.2f", value);
          else
            printf(" %8.2f", value);
        }
        printf("\n");
      }
    }
    int any_skipped = 0;
    for (int i = 0; i < mode_count * length_count * task_count; i++)
      any_skipped |= cells[i].skipped;
    if (any_skipped)
      printf("\n-: the task does not fit in that length (see the warnings)\n");
    printf("\n");
    for (int m = 0; m < mode_count; m++) {
      speed v = {0};
      for (int l = 0; l < length_count; l++) {
        v.prefill_tokens += speeds[m][l].prefill_tokens;
        v.prefill_seconds += speeds[m][l].prefill_seconds;
        v.decode_tokens += speeds[m][l].decode_tokens;
        v.decode_seconds += speeds[m][l].decode_seconds;
      }
      printf("TTT %s: prefill %ld tokens, %.1f tokens/s; decode %ld tokens, %.1f tokens/s\n",
             modes[m] ? "on" : "off", v.prefill_tokens, rate(v.prefill_tokens, v.prefill_seconds), v.decode_tokens,
             rate(v.decode_tokens, v.decode_seconds));
    }
  }

  if (plot) {
    const char *labels[MAX_LENGTHS];
    char label_text[MAX_LENGTHS][16];
    for (int l = 0; l < length_count; l++) {
      format_length(label_text[l], sizeof label_text[l], lengths[l]);
      labels[l] = label_text[l];
    }
    svg_series series[2];
    for (int m = 0; m < mode_count; m++) {
      series[m].name = modes[m] ? "TTT on" : "TTT off";
      series[m].values = averages[m];
      series[m].color = modes[m] ? "#d62728" : "#1f77b4";
      series[m].dashed = !modes[m];
    }
    char title[512];
    const char *base = strrchr(options.model_dir, '/');
    base = base && base[1] ? base + 1 : options.model_dir;
    snprintf(title, sizeof title, "RULER synthetic tasks (%d), %s", task_count, base);
    if (svg_line_chart(plot, title, "context length (tokens)", "mean score over tasks", length_count, labels, 0.0,
                       100.0, mode_count, series) != 0) {
      fprintf(stderr, "clttt ruler: cannot write the plot %s: %s\n", plot, strerror(errno));
      goto done;
    }
  }
  exit_code = 0;
done:
  for (int i = 0; i < record_count; i++) {
    for (int a = 0; a < records[i].answer_count; a++)
      free(records[i].answers[a]);
    free(records[i].answers);
    free(records[i].prediction);
  }
  free(records);
  free(cells);
  free(logits);
  free(generated);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_device_close(device);
  if (have_config)
    clttt_config_free(&config);
  clttt_tokenizer_free(tokenizer);
  if (prompts)
    fclose(prompts);
  return exit_code;
}
