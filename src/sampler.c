/* Token sampling with HuggingFace's filter order and a portable generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "clttt.h"

typedef struct {
  int32_t id;
  float logit;   /* after the repetition penalty */
  double weight; /* exp((logit - largest) / temperature): probability up to a common factor */
} candidate;

struct clttt_sampler {
  clttt_sampler_params options;
  int vocab_size;
  uint64_t state[4];
  float *logits;         /* working copy, so the caller's row stays untouched */
  candidate *candidates; /* vocab_size entries */
  uint8_t *penalised;    /* marks ids already penalised in this call */
};

clttt_sampler_params clttt_sampler_default_params(void) {
  clttt_sampler_params params;
  memset(&params, 0, sizeof params);
  params.temperature = 0.0f;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.repetition_penalty = 1.0f;
  params.repetition_window = 64;
  params.seed = 0;
  return params;
}

/* ------------------------------------------------------------------ */
/* Random numbers: xoshiro256** seeded with splitmix64, both as published
 * by Blackman and Vigna. Integer arithmetic only, so the sequence is the
 * same everywhere. */

static uint64_t splitmix64_next(uint64_t *state) {
  uint64_t value = (*state += 0x9E3779B97F4A7C15ull);
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ull;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBull;
  return value ^ (value >> 31);
}

static uint64_t rotate_left(uint64_t value, int shift) { return (value << shift) | (value >> (64 - shift)); }

static uint64_t xoshiro_next(uint64_t state[4]) {
  uint64_t result = rotate_left(state[1] * 5, 7) * 9;
  uint64_t shifted = state[1] << 17;
  state[2] ^= state[0];
  state[3] ^= state[1];
  state[1] ^= state[2];
  state[0] ^= state[3];
  state[2] ^= shifted;
  state[3] = rotate_left(state[3], 45);
  return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform_unit(uint64_t state[4]) { return (double)(xoshiro_next(state) >> 11) * 0x1.0p-53; }

void clttt_sampler_reseed(clttt_sampler *s, uint64_t seed) {
  if (!s)
    return;
  s->options.seed = seed;
  uint64_t mixer = seed;
  for (int i = 0; i < 4; i++)
    s->state[i] = splitmix64_next(&mixer);
}

/* ------------------------------------------------------------------ */

static int validate_options(const clttt_sampler_params *options, int vocab_size) {
  if (vocab_size <= 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: vocab_size %d must be positive", vocab_size);
  /* Written as !(x >= a) so that NaN fails too. */
  if (!(options->temperature >= 0.0f) || isinf(options->temperature))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: temperature %g must be finite and >= 0 (0 = greedy)",
                      (double)options->temperature);
  if (options->top_k < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: top_k %d must be >= 0 (0 = off)", options->top_k);
  if (!(options->top_p > 0.0f && options->top_p <= 1.0f))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: top_p %g must be in (0, 1] (1 = off)",
                      (double)options->top_p);
  if (!(options->min_p >= 0.0f && options->min_p <= 1.0f))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: min_p %g must be in [0, 1] (0 = off)",
                      (double)options->min_p);
  if (!(options->repetition_penalty > 0.0f) || isinf(options->repetition_penalty))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: repetition_penalty %g must be finite and > 0 (1 = off)",
                      (double)options->repetition_penalty);
  if (options->repetition_window < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: repetition_window %d must be >= 0 (0 = all tokens)",
                      options->repetition_window);
  return CLTTT_SUCCESS;
}

clttt_status clttt_sampler_create(clttt_sampler **out, const clttt_sampler_params *options, int vocab_size) {
  if (!out)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_sampler_create: NULL argument");
  *out = NULL;
  clttt_sampler_params defaults;
  defaults = clttt_sampler_default_params();
  if (!options)
    options = &defaults;
  CLTTT_TRY(validate_options(options, vocab_size));
  clttt_sampler *s = calloc(1, sizeof *s);
  if (!s)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "sampler: out of memory");
  s->options = *options;
  s->vocab_size = vocab_size;
  s->logits = malloc((size_t)vocab_size * sizeof *s->logits);
  s->candidates = malloc((size_t)vocab_size * sizeof *s->candidates);
  s->penalised = calloc((size_t)vocab_size, 1);
  if (!s->logits || !s->candidates || !s->penalised) {
    clttt_sampler_free(s);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "sampler: out of memory for a vocabulary of %d", vocab_size);
  }
  clttt_sampler_reseed(s, options->seed);
  *out = s;
  return CLTTT_SUCCESS;
}

void clttt_sampler_free(clttt_sampler *s) {
  if (!s)
    return;
  free(s->logits);
  free(s->candidates);
  free(s->penalised);
  free(s);
}

const clttt_sampler_params *clttt_sampler_get_params(const clttt_sampler *s) { return s ? &s->options : NULL; }

/* Each distinct id is penalised once, however often it recurs, as
 * HuggingFace's gather/scatter does. */
static int apply_repetition_penalty(clttt_sampler *s, const int32_t *recent, int recent_count) {
  float penalty = s->options.repetition_penalty;
  if (penalty == 1.0f || recent_count == 0)
    return CLTTT_SUCCESS;
  int window = s->options.repetition_window;
  int first = window > 0 && recent_count > window ? recent_count - window : 0;
  for (int i = first; i < recent_count; i++)
    if (recent[i] < 0 || recent[i] >= s->vocab_size)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: recent token %d (position %d) is outside [0, %d)",
                        recent[i], i, s->vocab_size);
  for (int i = first; i < recent_count; i++) {
    int32_t id = recent[i];
    if (s->penalised[id])
      continue;
    s->penalised[id] = 1;
    float *logit = &s->logits[id];
    *logit = *logit > 0.0f ? *logit / penalty : *logit * penalty;
  }
  for (int i = first; i < recent_count; i++)
    s->penalised[recent[i]] = 0;
  return CLTTT_SUCCESS;
}

/* Most likely first; the lower id first among equals, so results never
 * depend on how qsort orders ties. */
static int compare_candidates(const void *a, const void *b) {
  const candidate *left = a, *right = b;
  if (left->logit != right->logit)
    return left->logit > right->logit ? -1 : 1;
  return (left->id > right->id) - (left->id < right->id);
}

/* The k-th largest logit, by a size-k min-heap over the candidates. */
static float kth_largest(const candidate *candidates, int count, int k, float *heap) {
  int size = 0;
  for (int i = 0; i < count; i++) {
    float value = candidates[i].logit;
    if (size < k) {
      int child = size++;
      while (child > 0 && heap[(child - 1) / 2] > value) {
        heap[child] = heap[(child - 1) / 2];
        child = (child - 1) / 2;
      }
      heap[child] = value;
    } else if (value > heap[0]) {
      int parent = 0;
      for (;;) {
        int child = parent * 2 + 1;
        if (child >= size)
          break;
        if (child + 1 < size && heap[child + 1] < heap[child])
          child++;
        if (heap[child] >= value)
          break;
        heap[parent] = heap[child];
        parent = child;
      }
      heap[parent] = value;
    }
  }
  return heap[0];
}

clttt_status clttt_sampler_sample(clttt_sampler *s, const float *logits, const int32_t *recent, int recent_count,
                            int32_t *token) {
  if (!s || !logits || !token || recent_count < 0 || (recent_count > 0 && !recent))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_sampler_sample: NULL argument or negative recent_count");
  const clttt_sampler_params *options = &s->options;
  int vocab_size = s->vocab_size;
  for (int id = 0; id < vocab_size; id++) {
    if (isnan(logits[id]) || logits[id] == INFINITY)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: logit of token %d is %s", id,
                        isnan(logits[id]) ? "NaN" : "+inf");
  }
  memcpy(s->logits, logits, (size_t)vocab_size * sizeof *logits);
  CLTTT_TRY(apply_repetition_penalty(s, recent, recent_count));

  int32_t best = -1;
  for (int id = 0; id < vocab_size; id++)
    if (s->logits[id] > -INFINITY && (best < 0 || s->logits[id] > s->logits[best]))
      best = id;
  if (best < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "sampler: every logit is -inf; nothing can be sampled");
  if (options->temperature == 0.0f) {
    *token = best;
    return CLTTT_SUCCESS;
  }

  /* Masked tokens have probability 0 under every filter; leaving them out
   * keeps the sorts short. */
  candidate *candidates = s->candidates;
  int count = 0;
  for (int id = 0; id < vocab_size; id++) {
    if (s->logits[id] == -INFINITY)
      continue;
    candidates[count].id = id;
    /* Temperature scaling keeps the order, so the filters that rank can
     * work on the unscaled logits; dividing only the differences (below)
     * cannot overflow however small the temperature. */
    candidates[count].logit = s->logits[id];
    count++;
  }

  int sorted = 0;
  if (options->top_k > 0 && options->top_k < count) {
    /* The heap reuses the working logits: they are not read again. */
    float threshold = kth_largest(candidates, count, options->top_k, s->logits);
    int kept = 0;
    for (int i = 0; i < count; i++)
      if (candidates[i].logit >= threshold)
        candidates[kept++] = candidates[i];
    count = kept;
  }
  if (options->top_p < 1.0f) {
    qsort(candidates, (size_t)count, sizeof *candidates, compare_candidates);
    sorted = 1;
  }

  float largest = candidates[0].logit;
  for (int i = 1; i < count; i++)
    if (candidates[i].logit > largest)
      largest = candidates[i].logit;
  double total = 0.0;
  for (int i = 0; i < count; i++) {
    candidates[i].weight = exp(((double)candidates[i].logit - (double)largest) / (double)options->temperature);
    total += candidates[i].weight;
  }

  if (sorted) {
    /* A token stays while the mass of the more likely ones is below top_p:
     * the smallest set that reaches it. */
    double cumulative = 0.0, target = (double)options->top_p * total;
    int kept = 0;
    while (kept < count && (kept == 0 || cumulative < target))
      cumulative += candidates[kept++].weight;
    count = kept;
    total = cumulative;
  }

  if (options->min_p > 0.0f) {
    /* Relative to the most likely token, whose weight is exactly 1, so
     * renormalising after top-p would not change which tokens pass. */
    double threshold = (double)options->min_p;
    int kept = 0;
    total = 0.0;
    for (int i = 0; i < count; i++) {
      if (candidates[i].weight >= threshold) {
        candidates[kept++] = candidates[i];
        total += candidates[i].weight;
      }
    }
    count = kept;
  }

  double target = uniform_unit(s->state) * total, cumulative = 0.0;
  for (int i = 0; i < count; i++) {
    cumulative += candidates[i].weight;
    if (target < cumulative) {
      *token = candidates[i].id;
      return CLTTT_SUCCESS;
    }
  }
  /* Rounding can leave the target a hair above the running sum. */
  *token = candidates[count - 1].id;
  return CLTTT_SUCCESS;
}
