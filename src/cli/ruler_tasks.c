/* RULER's synthetic tasks: generation and sizing. The task wording follows
 * RULER's templates (scripts/data/synthetic/constants.py) so that scores
 * mean the same thing; the haystacks, word lists and generator are our own. */
#include "ruler_tasks.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ruler_text.h"

/* RULER's synthetic.yaml, with tokens_to_generate from its constants.py. */
static const ruler_task tasks[] = {
    {"niah_single_1", RULER_NIAH, 128, RULER_HAYSTACK_NOISE, RULER_WORDS, RULER_NUMBERS, 1, 1, 1,
     "one needle (word key, 7-digit value) in repeated noise sentences"},
    {"niah_single_2", RULER_NIAH, 128, RULER_HAYSTACK_ESSAY, RULER_WORDS, RULER_NUMBERS, 1, 1, 1,
     "one needle (word key, 7-digit value) in essay text"},
    {"niah_single_3", RULER_NIAH, 128, RULER_HAYSTACK_ESSAY, RULER_WORDS, RULER_UUIDS, 1, 1, 1,
     "one needle (word key, uuid value) in essay text"},
    {"niah_multikey_1", RULER_NIAH, 128, RULER_HAYSTACK_ESSAY, RULER_WORDS, RULER_NUMBERS, 4, 1, 1,
     "four needles with different keys in essay text, one asked"},
    {"niah_multikey_2", RULER_NIAH, 128, RULER_HAYSTACK_NEEDLES, RULER_WORDS, RULER_NUMBERS, 1, 1, 1,
     "one needle among distractor needles (word keys, 7-digit values)"},
    {"niah_multikey_3", RULER_NIAH, 128, RULER_HAYSTACK_NEEDLES, RULER_UUIDS, RULER_UUIDS, 1, 1, 1,
     "one needle among distractor needles (uuid keys and values)"},
    {"niah_multivalue", RULER_NIAH, 128, RULER_HAYSTACK_ESSAY, RULER_WORDS, RULER_NUMBERS, 1, 4, 1,
     "four values for one key in essay text, all asked"},
    {"niah_multiquery", RULER_NIAH, 128, RULER_HAYSTACK_ESSAY, RULER_WORDS, RULER_NUMBERS, 4, 1, 4,
     "four needles in essay text, all four keys asked"},
    {"vt", RULER_VARIABLE_TRACKING, 30, RULER_HAYSTACK_NOISE, RULER_WORDS, RULER_WORDS, 0, 0, 0,
     "variable tracking: one chain of 4 hops (5 variables) in noise"},
    {"cwe", RULER_COMMON_WORDS, 120, RULER_HAYSTACK_NOISE, RULER_WORDS, RULER_WORDS, 0, 0, 0,
     "common words extraction: the 10 most common words of a numbered list"},
    {"fwe", RULER_FREQUENT_WORDS, 50, RULER_HAYSTACK_NOISE, RULER_WORDS, RULER_WORDS, 0, 0, 0,
     "frequent words extraction: the 3 most frequent coded words (zeta, alpha 2)"},
};
#define TASK_COUNT ((int)(sizeof tasks / sizeof tasks[0]))

int ruler_task_count(void) { return TASK_COUNT; }
const ruler_task *ruler_task_get(int index) { return index >= 0 && index < TASK_COUNT ? &tasks[index] : NULL; }
const ruler_task *ruler_task_find(const char *name) {
  for (int i = 0; i < TASK_COUNT; i++)
    if (strcmp(tasks[i].name, name) == 0)
      return &tasks[i];
  return NULL;
}

const char ruler_noise[] = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

/* ------------------------------------------------------------------ */
/* A growing string; after a failed allocation every append is a no-op and
 * `failed` stays set, so builders check once at the end. */

typedef struct {
  char *data;
  size_t length, capacity;
  int failed;
} text;

static void text_reserve(text *t, size_t extra) {
  if (t->failed || t->length + extra + 1 <= t->capacity)
    return;
  size_t capacity = t->capacity ? t->capacity : 256;
  while (capacity < t->length + extra + 1)
    capacity *= 2;
  char *grown = realloc(t->data, capacity);
  if (!grown) {
    t->failed = 1;
    return;
  }
  t->data = grown;
  t->capacity = capacity;
}

static void text_add(text *t, const char *s) {
  size_t n = strlen(s);
  text_reserve(t, n);
  if (t->failed)
    return;
  memcpy(t->data + t->length, s, n + 1);
  t->length += n;
}

static void text_printf(text *t, const char *format, ...) {
  char small[512];
  va_list list;
  va_start(list, format);
  int n = vsnprintf(small, sizeof small, format, list);
  va_end(list);
  if (n < 0) {
    t->failed = 1;
    return;
  }
  if ((size_t)n < sizeof small) {
    text_add(t, small);
    return;
  }
  text_reserve(t, (size_t)n);
  if (t->failed)
    return;
  va_start(list, format);
  vsnprintf(t->data + t->length, (size_t)n + 1, format, list);
  va_end(list);
  t->length += (size_t)n;
}

static void text_clear(text *t) {
  t->length = 0;
  if (t->data)
    t->data[0] = '\0';
}

static void text_free(text *t) {
  free(t->data);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ */
/* Keys, values and words */

#define MAX_ANSWERS 16
#define ANSWER_SIZE 48

typedef struct {
  char items[MAX_ANSWERS][ANSWER_SIZE];
  int count;
} answer_list;

static void random_value(ruler_rng *rng, ruler_kind kind, char *out) {
  switch (kind) {
  case RULER_NUMBERS: /* 7 digits, as RULER's generate_random_number */
    snprintf(out, ANSWER_SIZE, "%d", 1000000 + (int)ruler_rng_below(rng, 9000000));
    break;
  case RULER_UUIDS: { /* version 4, RFC 4122 variant: what uuid.UUID(version=4) prints */
    uint64_t high = ruler_rng_next(rng), low = ruler_rng_next(rng);
    high = (high & ~0xF000ull) | 0x4000ull;
    low = (low & ~(3ull << 62)) | (2ull << 62);
    snprintf(out, ANSWER_SIZE, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(high >> 32), (unsigned)((high >> 16) & 0xFFFF),
             (unsigned)(high & 0xFFFF), (unsigned)(low >> 48), (unsigned long long)(low & 0xFFFFFFFFFFFFull));
    break;
  }
  default: /* adjective-noun, as RULER's wonderwords pairs */
    snprintf(out, ANSWER_SIZE, "%s-%s", ruler_adjectives[ruler_rng_below(rng, (uint64_t)ruler_adjective_count)],
             ruler_nouns[ruler_rng_below(rng, (uint64_t)ruler_noun_count)]);
    break;
  }
}

static int in_list(char list[][ANSWER_SIZE], int count, const char *item) {
  for (int i = 0; i < count; i++)
    if (strcmp(list[i], item) == 0)
      return 1;
  return 0;
}

static void shuffle_longs(ruler_rng *rng, long *items, long count) {
  for (long i = count - 1; i > 0; i--) {
    long j = (long)ruler_rng_below(rng, (uint64_t)i + 1), swap = items[i];
    items[i] = items[j];
    items[j] = swap;
  }
}

/* ------------------------------------------------------------------ */
/* One generation: everything that does not depend on the haystack size is
 * fixed here, so that trying sizes only rebuilds the text. */

typedef struct {
  const ruler_task *task;
  int length, answer_tokens;
  uint64_t seed, sample_seed;
  text example;                 /* vt / cwe: the worked example that comes first */
  int has_example;
  char (*vocabulary)[8];        /* fwe: the coded words, [0] is the "..." noise */
  int vocabulary_size;
  text input, prefix, prompt;   /* the last build */
  answer_list answers;
  int depths[RULER_MAX_NEEDLES], needle_count;
  ruler_token_counter count;
  void *user;
} generation;

/* RULER's DEPTHS: np.round(np.linspace(0, 100, 40)). */
static int depth_grid(int index) { return (int)floor(100.0 * index / 39.0 + 0.5); }

static const char *kind_plural(ruler_kind kind) {
  return kind == RULER_NUMBERS ? "numbers" : kind == RULER_UUIDS ? "uuids" : "words";
}
static const char *kind_singular(ruler_kind kind) {
  return kind == RULER_NUMBERS ? "number" : kind == RULER_UUIDS ? "uuid" : "word";
}

static void build_niah(generation *g, long n) {
  const ruler_task *task = g->task;
  ruler_rng rng;
  ruler_rng_seed(&rng, g->sample_seed);
  const int key_count = task->keys > task->queries ? task->keys : task->queries;
  char keys[MAX_ANSWERS][ANSWER_SIZE], values[MAX_ANSWERS][ANSWER_SIZE];
  int value_key[MAX_ANSWERS];
  int value_count = 0;
  for (int k = 0; k < key_count; k++) {
    do
      random_value(&rng, task->key_kind, keys[k]);
    while (in_list(keys, k, keys[k]));
    for (int v = 0; v < task->values; v++) {
      do
        random_value(&rng, task->value_kind, values[value_count]);
      while (in_list(values, value_count, values[value_count]));
      value_key[value_count++] = k;
    }
  }
  /* The needles in a random order, at depths drawn without replacement from
   * RULER's 40 evenly spaced ones, ascending. */
  long order[MAX_ANSWERS];
  for (int i = 0; i < value_count; i++)
    order[i] = i;
  shuffle_longs(&rng, order, value_count);
  long grid[40];
  for (int i = 0; i < 40; i++)
    grid[i] = i;
  shuffle_longs(&rng, grid, 40);
  g->needle_count = value_count;
  for (int i = 0; i < value_count; i++)
    g->depths[i] = depth_grid((int)grid[i]);
  for (int i = 1; i < value_count; i++)
    for (int j = i; j > 0 && g->depths[j - 1] > g->depths[j]; j--) {
      int swap = g->depths[j];
      g->depths[j] = g->depths[j - 1];
      g->depths[j - 1] = swap;
    }
  /* The asked keys, a random subset in a random order. */
  long asked[MAX_ANSWERS];
  for (int k = 0; k < key_count; k++)
    asked[k] = k;
  shuffle_longs(&rng, asked, key_count);
  char query[4 * MAX_ANSWERS * ANSWER_SIZE];
  query[0] = '\0';
  g->answers.count = 0;
  for (int q = 0; q < task->queries; q++) {
    const char *separator = q == 0 ? "" : task->queries == 2 ? " and " : q == task->queries - 1 ? ", and " : ", ";
    strcat(query, separator);
    strcat(query, keys[asked[q]]);
    for (int v = 0; v < value_count; v++)
      if (value_key[v] == asked[q])
        strcpy(g->answers.items[g->answers.count++], values[v]);
  }

  text *input = &g->input;
  const int plural = task->queries * task->values > 1;
  const char *kind = plural ? kind_plural(task->value_kind) : kind_singular(task->value_kind);
  if (plural)
    text_printf(input,
                "Some special magic %s are hidden within the following text. Make sure to memorize it. I will quiz "
                "you about the %s afterwards.\n",
                kind, kind);
  else
    text_printf(input,
                "A special magic %s is hidden within the following text. Make sure to memorize it. I will quiz you "
                "about the %s afterwards.\n",
                kind, kind);
  const char *separator = task->haystack == RULER_HAYSTACK_ESSAY ? " " : "\n";
  /* Distractors come from their own stream: distractor i is the same
   * whatever n, so a larger haystack extends a smaller one. */
  ruler_rng distractors;
  ruler_rng_seed(&distractors, ruler_mix(g->sample_seed, 0xD157));
  int needle = 0, first = 1;
  char sentence[512];
  for (long i = 0; i <= n; i++) {
    while (needle < value_count && (long)((double)n * g->depths[needle] / 100.0) <= i) {
      long which = order[needle++];
      text_printf(input, "%sOne of the special magic %s for %s is: %s.", first ? "" : separator,
                  kind_plural(task->value_kind), keys[value_key[which]], values[which]);
      first = 0;
    }
    if (i == n)
      break;
    text_add(input, first ? "" : separator);
    first = 0;
    if (task->haystack == RULER_HAYSTACK_NOISE) {
      text_add(input, ruler_noise);
    } else if (task->haystack == RULER_HAYSTACK_ESSAY) {
      if (ruler_essay_sentence(g->seed, i, sentence, (int)sizeof sentence) < 0)
        input->failed = 1;
      text_add(input, sentence);
    } else {
      char key[ANSWER_SIZE], value[ANSWER_SIZE];
      do
        random_value(&distractors, task->key_kind, key);
      while (in_list(keys, key_count, key));
      random_value(&distractors, task->value_kind, value);
      text_printf(input, "One of the special magic %s for %s is: %s.", kind_plural(task->value_kind), key, value);
    }
  }
  text_printf(input, "\n%s the special magic %s for %s mentioned in the provided text?", plural ? "What are all" : "What is",
              kind, query);
  text_printf(&g->prefix, " The special magic %s for %s mentioned in the provided text %s", kind, query,
              plural ? "are" : "is");
}

#define VT_HOPS 4

/* A variable chain in n noise lines: "VAR ABCDE = 12345", then each next
 * variable assigned the previous one, in order at random lines. */
static void build_vt_text(text *input, text *prefix, answer_list *answers, uint64_t seed, long n, int name_length) {
  ruler_rng rng;
  ruler_rng_seed(&rng, seed);
  answers->count = 0;
  char names[VT_HOPS + 1][ANSWER_SIZE];
  for (int v = 0; v <= VT_HOPS; v++) {
    do {
      for (int c = 0; c < name_length; c++)
        names[v][c] = (char)('A' + ruler_rng_below(&rng, 26));
      names[v][name_length] = '\0';
    } while (in_list(names, v, names[v]));
    strcpy(answers->items[answers->count++], names[v]);
  }
  const int value = 10000 + (int)ruler_rng_below(&rng, 89999);
  double where[VT_HOPS + 1];
  for (int v = 0; v <= VT_HOPS; v++)
    where[v] = ruler_rng_unit(&rng);
  for (int i = 1; i <= VT_HOPS; i++)
    for (int j = i; j > 0 && where[j - 1] > where[j]; j--) {
      double swap = where[j];
      where[j] = where[j - 1];
      where[j - 1] = swap;
    }
  text_add(input, "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n");
  int next = 0, first = 1;
  for (long i = 0; i <= n; i++) {
    while (next <= VT_HOPS && (long)(where[next] * (double)(n + 1)) <= i) {
      if (next == 0)
        text_printf(input, "%sVAR %s = %d", first ? "" : "\n", names[0], value);
      else
        text_printf(input, "%sVAR %s = VAR %s", first ? "" : "\n", names[next], names[next - 1]);
      next++;
      first = 0;
    }
    if (i == n)
      break;
    text_printf(input, "%s%s", first ? "" : "\n", ruler_noise);
    first = 0;
  }
  text_printf(input, "\nQuestion: Find all variables that are assigned the value %d in the text above.", value);
  text_printf(prefix,
              " Answer: According to the chain(s) of variable assignment in the text above, %d variables are "
              "assigned the value %d, they are: ",
              VT_HOPS + 1, value);
}

/* CWE's numbered list: `count` distinct words, the first 10 repeated
 * `common` times and the rest `uncommon` times, shuffled. */
#define CWE_COMMON 10
static void build_cwe_text(text *input, text *prefix, answer_list *answers, uint64_t seed, long count, int common,
                           int uncommon) {
  ruler_rng rng;
  ruler_rng_seed(&rng, seed);
  /* Distinct pool indices: a random sample of a pool twice the size asked
   * (at least the written words), as RULER samples its word list. */
  long pool = ruler_pool_written_count();
  if (pool < 2 * count)
    pool = 2 * count;
  long *chosen = malloc((size_t)count * sizeof *chosen);
  long table_size = 1;
  while (table_size < 2 * count + 2)
    table_size *= 2;
  long *table = malloc((size_t)table_size * sizeof *table);
  long entries = (long)common * CWE_COMMON + (long)uncommon * (count - CWE_COMMON);
  long *list = malloc((size_t)entries * sizeof *list);
  if (!chosen || !table || !list) {
    input->failed = 1;
    free(chosen);
    free(table);
    free(list);
    return;
  }
  for (long i = 0; i < table_size; i++)
    table[i] = -1;
  for (long i = 0; i < count; i++) {
    for (;;) {
      long candidate = (long)ruler_rng_below(&rng, (uint64_t)pool);
      long slot = (long)(ruler_mix(0, (uint64_t)candidate) & (uint64_t)(table_size - 1));
      while (table[slot] >= 0 && table[slot] != candidate)
        slot = (slot + 1) & (table_size - 1);
      if (table[slot] == candidate)
        continue;
      table[slot] = candidate;
      chosen[i] = candidate;
      break;
    }
  }
  long at = 0;
  for (long i = 0; i < count; i++)
    for (int r = 0; r < (i < CWE_COMMON ? common : uncommon); r++)
      list[at++] = i;
  shuffle_longs(&rng, list, entries);
  text_add(input, "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
                  "ones that appear most often.\n");
  char word[32];
  for (long i = 0; i < entries; i++) {
    ruler_pool_word(chosen[list[i]], word);
    text_printf(input, "%s%ld. %s", i ? " " : "", i + 1, word);
  }
  text_printf(input, "\nQuestion: What are the %d most common words in the above list?", CWE_COMMON);
  text_printf(prefix, " Answer: The top %d words that appear most often in the list are:", CWE_COMMON);
  answers->count = 0;
  for (int i = 0; i < CWE_COMMON && i < count; i++)
    ruler_pool_word(chosen[i], answers->items[answers->count++]);
  free(chosen);
  free(table);
  free(list);
}

/* RULER switches CWE to lighter repetition below 4096 tokens. */
#define CWE_SHORT_LENGTH 4096

static void build_fwe(generation *g, long n) {
  ruler_rng rng;
  ruler_rng_seed(&rng, g->sample_seed);
  /* Zipf counts n k^-alpha / zeta(alpha), alpha 2: zeta(2) = pi^2 / 6. */
  const double pi = 3.14159265358979323846, zeta = pi * pi / 6.0;
  long total = 0;
  for (int k = 1; k <= g->vocabulary_size; k++)
    total += (long)((double)n / ((double)k * k) / zeta);
  long *words = malloc((size_t)(total > 0 ? total : 1) * sizeof *words);
  if (!words) {
    g->input.failed = 1;
    return;
  }
  long at = 0;
  for (int k = 1; k <= g->vocabulary_size; k++)
    for (long c = (long)((double)n / ((double)k * k) / zeta); c > 0; c--)
      words[at++] = k - 1;
  shuffle_longs(&rng, words, total);
  text_add(&g->input, "Read the following coded text and track the frequency of each coded word. Find the three most "
                      "frequently appeared coded words. ");
  for (long i = 0; i < total; i++)
    text_printf(&g->input, "%s%s", i ? " " : "", g->vocabulary[words[i]]);
  text_add(&g->input, "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three "
                      "most frequently appeared words in the above coded text?");
  text_add(&g->prefix, " Answer: According to the coded text above, the three most frequently appeared words are:");
  g->answers.count = 0;
  for (int k = 1; k <= 3; k++)
    strcpy(g->answers.items[g->answers.count++], g->vocabulary[k]);
  free(words);
}

/* Builds the prompt for haystack size n into g->input/prefix/prompt. */
static int build(generation *g, long n) {
  text_clear(&g->input);
  text_clear(&g->prefix);
  text_clear(&g->prompt);
  g->needle_count = 0;
  switch (g->task->family) {
  case RULER_NIAH:
    build_niah(g, n);
    break;
  case RULER_VARIABLE_TRACKING:
    build_vt_text(&g->input, &g->prefix, &g->answers, g->sample_seed, n, 5);
    break;
  case RULER_COMMON_WORDS:
    if (g->length < CWE_SHORT_LENGTH)
      build_cwe_text(&g->input, &g->prefix, &g->answers, g->sample_seed, n, 6, 1);
    else
      build_cwe_text(&g->input, &g->prefix, &g->answers, g->sample_seed, n, 30, 3);
    break;
  case RULER_FREQUENT_WORDS:
    build_fwe(g, n);
    break;
  }
  if (g->has_example) {
    text_add(&g->prompt, g->example.data);
    /* RULER puts the example and the task on separate lines. */
    if (g->task->family == RULER_COMMON_WORDS)
      text_add(&g->prompt, "\n");
  }
  text_add(&g->prompt, g->input.data ? g->input.data : "");
  text_add(&g->prompt, g->prefix.data ? g->prefix.data : "");
  return !(g->input.failed || g->prefix.failed || g->prompt.failed);
}

/* 1: fits, 0: does not, -1: failure. */
static int try_size(generation *g, long n, int *tokens) {
  if (!build(g, n))
    return -1;
  if (g->count(g->user, g->prompt.data, tokens) != 0)
    return -1;
  return *tokens + g->answer_tokens <= g->length;
}

/* The largest n >= minimum that fits, by doubling then bisection: about
 * 2 log2(n) tokenizations. Returns -1 when none fits, -2 on failure. */
static long search(generation *g, long minimum, long hint) {
  int tokens;
  if (hint >= minimum) {
    int fits = try_size(g, hint, &tokens);
    if (fits < 0)
      return -2;
    if (fits)
      return hint;
  }
  int fits = try_size(g, minimum, &tokens);
  if (fits <= 0)
    return fits < 0 ? -2 : -1;
  long low = minimum, high = minimum * 2 + 1;
  /* The cap stops a counter that never grows (a broken tokenizer) from
   * doubling forever. */
  const long cap = 1L << 28;
  for (;;) {
    fits = try_size(g, high, &tokens);
    if (fits < 0)
      return -2;
    if (!fits)
      break;
    low = high;
    if (high >= cap)
      return low;
    high *= 2;
  }
  while (high - low > 1) {
    long middle = low + (high - low) / 2;
    fits = try_size(g, middle, &tokens);
    if (fits < 0)
      return -2;
    if (fits)
      low = middle;
    else
      high = middle;
  }
  return low;
}

/* RULER sizes its vt example to 500 tokens; shorter lengths get a quarter. */
#define VT_EXAMPLE_TOKENS 500

static int prepare_vt_example(generation *g) {
  int budget = g->length / 4 < VT_EXAMPLE_TOKENS ? g->length / 4 : VT_EXAMPLE_TOKENS;
  text input = {0}, prefix = {0};
  answer_list answers;
  uint64_t seed = ruler_mix(g->sample_seed, 0xE8A3);
  long low = -1;
  /* Few sizes, short texts: a linear walk up is cheaper than being clever. */
  for (long m = 0;; m++) {
    text_clear(&input);
    text_clear(&prefix);
    build_vt_text(&input, &prefix, &answers, seed, m, 3);
    text_clear(&g->example);
    text_add(&g->example, input.data);
    text_add(&g->example, prefix.data);
    int tokens = 0;
    if (input.failed || prefix.failed || g->example.failed || g->count(g->user, g->example.data, &tokens) != 0) {
      text_free(&input);
      text_free(&prefix);
      return 0;
    }
    if (tokens > budget)
      break;
    low = m;
  }
  g->has_example = low >= 0;
  if (g->has_example) {
    text_clear(&input);
    text_clear(&prefix);
    build_vt_text(&input, &prefix, &answers, seed, low, 3);
    text_clear(&g->example);
    text_add(&g->example, input.data);
    text_add(&g->example, prefix.data);
    for (int i = 0; i < answers.count; i++)
      text_printf(&g->example, " %s", answers.items[i]);
    text_add(&g->example, "\n");
  }
  int ok = !(input.failed || prefix.failed || g->example.failed);
  text_free(&input);
  text_free(&prefix);
  return ok;
}

static int prepare_cwe_example(generation *g) {
  text input = {0}, prefix = {0};
  answer_list answers;
  uint64_t seed = ruler_mix(g->sample_seed, 0xC3E);
  if (g->length < CWE_SHORT_LENGTH)
    build_cwe_text(&input, &prefix, &answers, seed, 20, 3, 1);
  else
    build_cwe_text(&input, &prefix, &answers, seed, 40, 10, 3);
  text_clear(&g->example);
  text_add(&g->example, input.data);
  text_add(&g->example, prefix.data);
  for (int i = 0; i < answers.count; i++)
    text_printf(&g->example, " %d. %s", i + 1, answers.items[i]);
  g->has_example = 1;
  int ok = !(input.failed || prefix.failed || g->example.failed);
  text_free(&input);
  text_free(&prefix);
  return ok;
}

/* FWE's vocabulary: RULER draws (length - budget) / 50 random six-letter
 * words; the first is replaced by "..." as noise. */
static int prepare_fwe_vocabulary(generation *g) {
  int size = (g->length - g->answer_tokens) / 50;
  g->vocabulary_size = size < 4 ? 4 : size;
  g->vocabulary = malloc((size_t)g->vocabulary_size * sizeof *g->vocabulary);
  if (!g->vocabulary)
    return 0;
  ruler_rng rng;
  ruler_rng_seed(&rng, ruler_mix(g->sample_seed, 0xF3E));
  for (int i = 0; i < g->vocabulary_size; i++) {
    int repeated;
    do {
      for (int c = 0; c < 6; c++)
        g->vocabulary[i][c] = (char)('a' + ruler_rng_below(&rng, 26));
      g->vocabulary[i][6] = '\0';
      repeated = 0;
      for (int j = 0; j < i && !repeated; j++)
        repeated = strcmp(g->vocabulary[i], g->vocabulary[j]) == 0;
    } while (repeated);
  }
  strcpy(g->vocabulary[0], "...");
  return 1;
}

static long minimum_size(const ruler_task *task) {
  switch (task->family) {
  case RULER_COMMON_WORDS:
    return CWE_COMMON + 1; /* at least one uncommon word */
  case RULER_FREQUENT_WORDS:
    return 40; /* the top four ranks get distinct, non-zero counts */
  default:
    return 1;
  }
}

static char *duplicate(const char *s) {
  char *copy = malloc(strlen(s) + 1);
  if (copy)
    strcpy(copy, s);
  return copy;
}

ruler_result ruler_generate(const ruler_task *task, int length, int answer_tokens, uint64_t seed, int sample,
                            long haystack_hint, ruler_token_counter count, void *user, ruler_sample *out,
                            char *error, size_t error_capacity) {
  memset(out, 0, sizeof *out);
  generation g;
  memset(&g, 0, sizeof g);
  g.task = task;
  g.length = length;
  g.answer_tokens = answer_tokens;
  g.seed = seed;
  g.sample_seed = ruler_mix(ruler_mix(ruler_mix(seed, ruler_hash_string(task->name)), (uint64_t)length), (uint64_t)sample);
  g.count = count;
  g.user = user;
  ruler_result result = RULER_FAILED;
  snprintf(error, error_capacity, "out of host memory generating %s", task->name);
  int prepared = 1;
  if (task->family == RULER_VARIABLE_TRACKING)
    prepared = prepare_vt_example(&g);
  else if (task->family == RULER_COMMON_WORDS)
    prepared = prepare_cwe_example(&g);
  else if (task->family == RULER_FREQUENT_WORDS)
    prepared = prepare_fwe_vocabulary(&g);
  if (!prepared)
    goto done;
  long n = search(&g, minimum_size(task), haystack_hint);
  if (n == -1) {
    int tokens = 0;
    try_size(&g, minimum_size(task), &tokens);
    snprintf(error, error_capacity,
             "%s does not fit in %d tokens: its smallest prompt takes %d tokens plus %d for the answer", task->name,
             length, tokens, answer_tokens);
    result = RULER_TOO_SHORT;
    goto done;
  }
  if (n < 0 || try_size(&g, n, &out->prompt_tokens) != 1) {
    snprintf(error, error_capacity, "generating %s failed (out of memory, or the tokenizer failed)", task->name);
    goto done;
  }
  /* The input is all the model reads before the answer prefix, worked
   * example included, as in RULER's data files. */
  out->input = duplicate(g.prompt.data);
  if (out->input)
    out->input[g.prompt.length - g.prefix.length] = '\0';
  out->answer_prefix = duplicate(g.prefix.data);
  out->prompt = duplicate(g.prompt.data);
  out->answers = calloc((size_t)g.answers.count, sizeof *out->answers);
  if (!out->input || !out->answer_prefix || !out->prompt || !out->answers)
    goto done;
  out->answer_count = g.answers.count;
  for (int i = 0; i < g.answers.count; i++)
    if (!(out->answers[i] = duplicate(g.answers.items[i])))
      goto done;
  out->haystack = n;
  out->needle_count = g.needle_count;
  memcpy(out->depths, g.depths, sizeof out->depths);
  out->example = g.has_example;
  result = RULER_OK;
  error[0] = '\0';
done:
  if (result != RULER_OK)
    ruler_sample_free(out);
  text_free(&g.example);
  text_free(&g.input);
  text_free(&g.prefix);
  text_free(&g.prompt);
  free(g.vocabulary);
  return result;
}

void ruler_sample_free(ruler_sample *sample) {
  free(sample->input);
  free(sample->answer_prefix);
  free(sample->prompt);
  if (sample->answers)
    for (int i = 0; i < sample->answer_count; i++)
      free(sample->answers[i]);
  free(sample->answers);
  memset(sample, 0, sizeof *sample);
}
