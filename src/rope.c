/* RoPE frequencies (transformers' modeling_rope_utils semantics). Computed in
 * double and rounded once: HF computes them in float32, and the difference
 * (under one float ulp of each frequency) is far below test tolerances. */
#include <math.h>

#include "rope.h"

static void default_frequencies(const clttt_config *config, double *frequency) {
  const int half = config->head_dim / 2;
  for (int i = 0; i < half; i++)
    frequency[i] = 1.0 / pow(config->rope_theta, (2.0 * i) / config->head_dim);
}

/* LLaMA 3.1: long wavelengths are slowed by `factor`, short ones kept, and
 * the band between is interpolated smoothly. */
static void llama3_frequencies(const clttt_config *config, double *frequency) {
  const int half = config->head_dim / 2;
  const double old_context = config->rope_original_max_position_embeddings;
  const double low_wavelength = old_context / config->rope_low_freq_factor;
  const double high_wavelength = old_context / config->rope_high_freq_factor;
  for (int i = 0; i < half; i++) {
    const double wavelength = 2.0 * M_PI / frequency[i];
    if (wavelength > low_wavelength) {
      frequency[i] /= config->rope_factor;
    } else if (wavelength >= high_wavelength) {
      const double smooth = (old_context / wavelength - config->rope_low_freq_factor) /
                            (config->rope_high_freq_factor - config->rope_low_freq_factor);
      frequency[i] = (1.0 - smooth) * frequency[i] / config->rope_factor + smooth * frequency[i];
    }
  }
}

static double yarn_correction_dimension(double rotations, int dim, double base, double positions) {
  return dim * log(positions / (rotations * 2.0 * M_PI)) / (2.0 * log(base));
}

/* YaRN: dimensions that rotate many times within the original context keep
 * their frequency (extrapolation), slow ones are divided by `factor`
 * (interpolation), with a linear ramp between. */
static double yarn_frequencies(const clttt_config *config, double *frequency) {
  const int dim = config->head_dim;
  const int half = dim / 2;
  const double factor = config->rope_factor;
  double low = yarn_correction_dimension(config->rope_beta_fast, dim, config->rope_theta,
                                         config->rope_original_max_position_embeddings);
  double high = yarn_correction_dimension(config->rope_beta_slow, dim, config->rope_theta,
                                          config->rope_original_max_position_embeddings);
  if (config->rope_truncate) {
    low = floor(low);
    high = ceil(high);
  }
  if (low < 0)
    low = 0;
  if (high > dim - 1)
    high = dim - 1;
  if (low == high)
    high += 0.001; /* as HF: avoids dividing by zero */
  for (int i = 0; i < half; i++) {
    double ramp = (i - low) / (high - low);
    ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
    const double extrapolation_weight = 1.0 - ramp;
    const double extrapolated = frequency[i];
    const double interpolated = frequency[i] / factor;
    frequency[i] = interpolated * (1.0 - extrapolation_weight) + extrapolated * extrapolation_weight;
  }
  if (config->rope_attention_factor > 0)
    return config->rope_attention_factor;
  return factor <= 1 ? 1.0 : 0.1 * log(factor) + 1.0;
}

void rope_inverse_frequencies(const clttt_config *config, float *inverse_frequency,
                              float *attention_scaling) {
  double frequency[1024];
  const int half = config->head_dim / 2;
  double scaling = 1.0;
  default_frequencies(config, frequency);
  if (config->rope_type == CLTTT_ROPE_LLAMA3)
    llama3_frequencies(config, frequency);
  else if (config->rope_type == CLTTT_ROPE_YARN)
    scaling = yarn_frequencies(config, frequency);
  for (int i = 0; i < half; i++)
    inverse_frequency[i] = (float)frequency[i];
  *attention_scaling = (float)scaling;
}
