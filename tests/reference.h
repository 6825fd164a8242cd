/* A plain C reference of the whole forward pass, TTT layers included
 * (SPEC.md sections 3-6), for tests only. Written for clarity, not speed:
 * double accumulation, no blocking, the full n x n attention, one sequence
 * at a time. It shares only the file readers (config.c, checkpoint.c) with
 * the library, never its math. */
#ifndef CLTTT_TEST_REFERENCE_H
#define CLTTT_TEST_REFERENCE_H

#include <stdint.h>

#include "clttt.h"

typedef struct reference_model reference_model;

clttt_status reference_load(reference_model **model, const char *dir);
void reference_free(reference_model *model);
const clttt_config *reference_config(const reference_model *model);

/* Logits of every position (n x vocab) of one sequence fed in one go.
 * ttt_enabled = 0 runs the base model even for a ttt_mode checkpoint.
 * chunk / eta override the config when > 0. */
clttt_status reference_forward(const reference_model *model, const int32_t *tokens, int n,
                               int ttt_enabled, int chunk, float eta, float *logits);
/* The same with each chunk's update U = eta V^T h scaled by
 * min(1, clip_tau / ||U||_F) before it is added (clip_tau 0: no clipping). */
clttt_status reference_forward_clipped(const reference_model *model, const int32_t *tokens, int n,
                                       int ttt_enabled, int chunk, float eta, float clip_tau, float *logits);

#endif
