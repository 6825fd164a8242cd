/* RULER's synthetic tasks (NVIDIA/RULER, scripts/synthetic.yaml), generated
 * here from a seed and sized to a length with the model's own tokenizer.
 * What differs from RULER is listed in README.md (section "Long-context
 * evaluation"). */
#ifndef CLTTT_RULER_TASKS_H
#define CLTTT_RULER_TASKS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RULER_NIAH, RULER_VARIABLE_TRACKING, RULER_COMMON_WORDS, RULER_FREQUENT_WORDS } ruler_family;
typedef enum { RULER_HAYSTACK_NOISE, RULER_HAYSTACK_ESSAY, RULER_HAYSTACK_NEEDLES } ruler_haystack;
typedef enum { RULER_WORDS, RULER_NUMBERS, RULER_UUIDS } ruler_kind;

typedef struct {
  const char *name;
  ruler_family family;
  int tokens_to_generate; /* RULER's answer budget, counted in the length */
  /* NIAH only */
  ruler_haystack haystack;
  ruler_kind key_kind, value_kind;
  int keys, values, queries;
  const char *about; /* one line for --help */
} ruler_task;

int ruler_task_count(void);
const ruler_task *ruler_task_get(int index);
/* NULL when no task has that name. */
const ruler_task *ruler_task_find(const char *name);

/* Counts the tokens `text` takes as the model will read it (with BOS);
 * returns 0 on success. */
typedef int (*ruler_token_counter)(void *user, const char *text, int *tokens);

#define RULER_MAX_NEEDLES 8

typedef struct {
  char *input;         /* the prompt up to the answer prefix (a worked example included) */
  char *answer_prefix; /* RULER's answer prefix, which the model continues */
  char *prompt;        /* input + answer_prefix: what the model reads */
  char **answers;      /* the expected strings, all of which the answer should contain */
  int answer_count;
  int prompt_tokens;   /* of `prompt`, by the counter */
  long haystack;       /* size the search chose: noise lines, essay sentences, distractor needles or words */
  int needle_count;
  int depths[RULER_MAX_NEEDLES]; /* NIAH: depth of each needle in percent of the haystack, ascending */
  int example;         /* vt / cwe: the worked example RULER puts first is included */
} ruler_sample;

typedef enum { RULER_OK = 0, RULER_TOO_SHORT = 1, RULER_FAILED = -1 } ruler_result;

/* Generates sample `sample` of `task` for `length` tokens: the largest
 * haystack whose prompt, plus `answer_tokens` (the task's budget), fits in
 * `length` by `count`. Deterministic in (seed, task, length, sample).
 * `haystack_hint` >= 0 is tried first (a size an earlier call chose for the
 * same arguments), saving the search. RULER_TOO_SHORT: even the smallest
 * haystack does not fit; RULER_FAILED: out of memory or the counter failed.
 * Either way `error` says why. */
ruler_result ruler_generate(const ruler_task *task, int length, int answer_tokens, uint64_t seed, int sample,
                            long haystack_hint, ruler_token_counter count, void *user, ruler_sample *out,
                            char *error, size_t error_capacity);
void ruler_sample_free(ruler_sample *sample);

/* The repeated noise of RULER's "noise" haystack. */
extern const char ruler_noise[];

#endif
