/* Text material for clttt ruler, all of it written for this repository (no
 * third-party text): word lists for keys and word tasks, and a generator of
 * plain English sentences that stands in for the essays RULER's haystacks
 * are cut from (Paul Graham's essays, which cannot be shipped). */
#ifndef CLTTT_RULER_TEXT_H
#define CLTTT_RULER_TEXT_H

#include <stdint.h>

/* A deterministic generator: splitmix64, the same stream on every machine
 * and C library. */
typedef struct {
  uint64_t state;
} ruler_rng;

void ruler_rng_seed(ruler_rng *rng, uint64_t seed);
uint64_t ruler_rng_next(ruler_rng *rng);
/* Uniform in [0, n), n > 0. */
uint64_t ruler_rng_below(ruler_rng *rng, uint64_t n);
/* Uniform in [0, 1). */
double ruler_rng_unit(ruler_rng *rng);
/* Mixes values into a seed: one stream per (seed, task, length, sample). */
uint64_t ruler_mix(uint64_t seed, uint64_t value);
uint64_t ruler_hash_string(const char *text);

extern const char *const ruler_adjectives[];
extern const int ruler_adjective_count;
extern const char *const ruler_nouns[];
extern const int ruler_noun_count;
extern const char *const ruler_verbs[];
extern const int ruler_verb_count;

/* The i-th word of an unbounded pool of distinct lowercase words: first the
 * written lists (nouns, adjectives, verbs), then made-up pronounceable words
 * (syllable sequences), so a task can ask for as many distinct words as a
 * long context needs. `out` holds at least 32 bytes. */
void ruler_pool_word(long index, char *out);
long ruler_pool_written_count(void);

/* Appends sentence number `index` of the essay stream seeded by `seed` to
 * `out` (capacity bytes, NUL-terminated; returns the length written, or -1
 * when it does not fit). Sentence i depends only on (seed, i), so the first
 * n sentences are a prefix of the first n + 1. */
int ruler_essay_sentence(uint64_t seed, long index, char *out, int capacity);

#endif
