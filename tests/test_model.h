/* What the model suites share: a fixture written to a temporary directory
 * and loaded on the default device, and running a token sequence through a
 * session in pieces. */
#ifndef CLTTT_TEST_MODEL_H
#define CLTTT_TEST_MODEL_H

#include <stdint.h>

#include "clttt.h"
#include "golden.h"

typedef struct {
  char dir[512];
  clttt_device *device;
  clttt_model *model;
} test_fixture_model;

/* Writes fixture `name` into a fresh temporary directory and loads it
 * (fails the test on any error). */
void test_fixture_open(test_fixture_model *fixture, const char *name);
void test_fixture_close(test_fixture_model *fixture);

/* How a sequence is run through a new session. */
typedef struct {
  int piece;   /* feed in pieces of this many tokens; 0 = all at once */
  int ttt;     /* -1: the checkpoint's choice, 0 off, 1 on */
  int chunk;   /* 0: the checkpoint's */
  float eta;   /* 0: the checkpoint's */
  float clip_tau; /* 0: the checkpoint's (none), > 0: clip updates to this norm */
  int kv_half;    /* 1: an f16 KV cache (the library's default); 0: f32, what the goldens' tolerances assume */
} test_run_options;

extern const test_run_options test_run_default;

/* clttt_session_create with the default parameters but a context of
 * `context` tokens and an f32 KV cache. */
int test_session_create(clttt_session **session, clttt_model *model, int context);

/* n x vocab logits (malloc'ed) of `tokens` fed to a new session. */
float *test_run(clttt_model *model, const int32_t *tokens, int n, test_run_options options);

/* n x vocab logits (malloc'ed) of the C reference (tests/reference.h) on the
 * checkpoint in `dir`, fed in one go; ttt, chunk and eta as reference_forward
 * takes them. Fails the test on any error. */
float *test_reference_logits(const char *dir, const int32_t *tokens, int n, int ttt, int chunk, float eta);

/* Feeds a to `first` and b to `second` (n tokens each) alternately in pieces
 * of `piece`, each session's logits into got_a / got_b (n x vocab). */
void test_feed_interleaved(clttt_session *first, clttt_session *second, const int32_t *a, const int32_t *b, int n,
                           int piece, int vocab, float *got_a, float *got_b);

/* Reads tests/golden/<name>.bin (fails the test when missing). */
void test_golden_load(golden *g, const char *name);

/* Largest |a - b| over row range [first_row, last_row) of n x vocab logits. */
double test_rows_difference(const float *a, const float *b, int vocab, int first_row, int last_row);

#endif
