/* Choosing the next token from a row of logits.
 *
 * The filters run in the order HuggingFace's generate applies its logits
 * processors: repetition penalty, temperature, top-k, top-p, min-p; then
 * one token is drawn from what is left. Randomness comes from the sampler's
 * own generator (xoshiro256**, seeded through splitmix64), so a seed gives
 * the same tokens on every machine and C library. */
#ifndef CLTTT_SAMPLER_H
#define CLTTT_SAMPLER_H

#include <stdint.h>

#include "clttt.h"

typedef struct {
  /* 0: greedy (argmax, the lowest id on ties; the filters below cannot
   * change the argmax and are skipped). Otherwise logits are divided by it. */
  float temperature;
  /* Keep the top_k most likely tokens (and any tied with the k-th); 0: off. */
  int top_k;
  /* Keep the smallest set of most likely tokens whose probability reaches
   * top_p; in (0, 1], 1: off. */
  float top_p;
  /* Drop tokens less likely than min_p times the most likely one; in [0, 1],
   * 0: off. */
  float min_p;
  /* HuggingFace/CTRL repetition penalty for each distinct id among the last
   * repetition_window recent tokens: a positive logit is divided by it, any
   * other multiplied. 1: off; must be > 0. */
  float repetition_penalty;
  /* How many of the most recent tokens the penalty looks at; 0: all given. */
  int repetition_window;
  uint64_t seed;
} sampler_options;

typedef struct sampler sampler;

/* Greedy, every filter off, window 64, seed 0. */
void sampler_options_default(sampler_options *options);

/* Options out of range: CLTTT_ERROR_INVALID_ARGUMENT naming the option.
 * options NULL means the defaults. */
clttt_status sampler_create(sampler **out, const sampler_options *options, int vocab_size);
void sampler_free(sampler *s);

/* Picks a token from `logits` (vocab_size entries; -inf masks a token, NaN
 * and +inf are rejected). `recent` holds the tokens so far, oldest first,
 * for the repetition penalty (may be NULL when recent_count is 0). The
 * logits are not modified. */
clttt_status sampler_sample(sampler *s, const float *logits, const int32_t *recent, int recent_count,
                            int32_t *token);

/* Restarts the random sequence as if the sampler were created with `seed`. */
void sampler_reseed(sampler *s, uint64_t seed);
const sampler_options *sampler_get_options(const sampler *s);

#endif
