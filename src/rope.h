/* Rotary position embedding frequencies, computed as HuggingFace computes
 * them for rope_type default, llama3 and yarn. */
#ifndef CLTTT_ROPE_H
#define CLTTT_ROPE_H

#include "clttt.h"

/* inverse_frequency receives head_dim / 2 floats; *attention_scaling the
 * factor HF multiplies cos and sin by (1 except for YaRN). */
void rope_inverse_frequencies(const clttt_config *config, float *inverse_frequency,
                              float *attention_scaling);

#endif
