/* A plain C reference of the whole forward pass (SPEC.md sections 3-6), for
 * tests only. Written from SPEC.md and the semantics of HuggingFace
 * transformers' modeling_qwen3.py / modeling_llama.py / modeling_rope_utils.py;
 * it shares only the file readers (config.c, checkpoint.c) with the library.
 *
 * Weights are kept as float32 exactly as read; every activation is a double
 * and every sum is accumulated in double. Clarity over speed: the full causal
 * attention of each query row against all keys, one sequence at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "reference.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

typedef struct {
  float *input_norm;          /* d */
  float *wq, *bq;             /* q_dim x d, q_dim */
  float *wk, *bk;             /* kv_dim x d, kv_dim */
  float *wv, *bv;             /* kv_dim x d, kv_dim */
  float *wo, *bo;             /* d x q_dim, d */
  float *q_norm, *k_norm;     /* head_dim (Qwen3) */
  float *post_norm;           /* d */
  float *wg, *bg;             /* f x d, f */
  float *wu, *bu;             /* f x d, f */
  float *wd, *bd;             /* d x f, d */
  float *ttt_conv;            /* d x 1 x 5, NULL when the layer is not a TTT layer */
  float *ttt_proj;            /* d x d, NULL without ttt_proj */
} reference_layer;

struct reference_model {
  clttt_config config;
  int q_dim, kv_dim;
  float *embed;               /* vocab x d */
  float *final_norm;          /* d */
  float *lm_head;             /* vocab x d; aliases embed when tied */
  reference_layer *layers;
  double *inv_freq;           /* head_dim / 2 */
  double attention_scaling;   /* multiplied into cos and sin */
};

/* ------------------------------------------------------------------ */
/* Loading                                                              */

static clttt_status read_tensor(const checkpoint *ckpt, const char *name, int64_t d0, int64_t d1,
                                int64_t d2, int ndim, float **out) {
  int64_t shape[3] = {d0, d1, d2};
  size_t count = 1;
  for (int i = 0; i < ndim; i++)
    count *= (size_t)shape[i];
  float *data = malloc(count * sizeof *data);
  if (!data)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference: no memory for %s", name);
  clttt_status status = checkpoint_read_f32(ckpt, name, shape, ndim, data);
  if (status != CLTTT_SUCCESS) {
    free(data);
    return status;
  }
  *out = data;
  return CLTTT_SUCCESS;
}

static int has_tensor(const checkpoint *ckpt, const char *name) {
  const safetensors_file *shard = NULL;
  return checkpoint_find(ckpt, name, &shard) != NULL;
}

static clttt_status read_layer_tensor(const checkpoint *ckpt, int layer, const char *suffix,
                                      int64_t d0, int64_t d1, int64_t d2, int ndim, float **out) {
  char name[256];
  snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
  return read_tensor(ckpt, name, d0, d1, d2, ndim, out);
}

/* The inverse frequencies and attention scaling of transformers'
 * _compute_default_rope_parameters, _compute_llama3_parameters and
 * _compute_yarn_parameters (partial_rotary_factor 1, no mscale keys). */
static clttt_status compute_rope(reference_model *model) {
  const clttt_config *c = &model->config;
  int dim = c->head_dim;
  int half = dim / 2;
  double base = c->rope_theta;
  model->inv_freq = malloc((size_t)half * sizeof *model->inv_freq);
  if (!model->inv_freq)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference: no memory for RoPE");
  model->attention_scaling = 1.0;
  for (int i = 0; i < half; i++)
    model->inv_freq[i] = 1.0 / pow(base, (double)(2 * i) / dim);

  if (c->rope_type == CLTTT_ROPE_LLAMA3) {
    double factor = c->rope_factor;
    double low_freq_factor = c->rope_low_freq_factor;
    double high_freq_factor = c->rope_high_freq_factor;
    double old_context = c->rope_original_max_position_embeddings > 0
                             ? c->rope_original_max_position_embeddings
                             : c->max_position_embeddings;
    if (!(factor > 0) || !(high_freq_factor != low_freq_factor))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "reference: llama3 rope_scaling with factor %g, "
                        "low_freq_factor %g, high_freq_factor %g", factor, low_freq_factor,
                        high_freq_factor);
    double low_freq_wavelen = old_context / low_freq_factor;
    double high_freq_wavelen = old_context / high_freq_factor;
    for (int i = 0; i < half; i++) {
      double inv = model->inv_freq[i];
      double wavelen = 2.0 * M_PI / inv;
      if (wavelen > low_freq_wavelen) {
        model->inv_freq[i] = inv / factor;            /* low frequencies: divided by factor */
      } else if (wavelen < high_freq_wavelen) {
        model->inv_freq[i] = inv;                     /* high frequencies: kept */
      } else {                                        /* in between: smooth interpolation */
        double smooth = (old_context / wavelen - low_freq_factor) /
                        (high_freq_factor - low_freq_factor);
        model->inv_freq[i] = (1.0 - smooth) * inv / factor + smooth * inv;
      }
    }
  } else if (c->rope_type == CLTTT_ROPE_YARN) {
    double factor = c->rope_factor;
    double original = c->rope_original_max_position_embeddings > 0
                          ? c->rope_original_max_position_embeddings
                          : c->max_position_embeddings;
    if (!(factor > 0))
      return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "reference: yarn rope_scaling with factor %g",
                        factor);
    if (c->rope_attention_factor > 0)
      model->attention_scaling = c->rope_attention_factor;
    else
      model->attention_scaling = factor <= 1.0 ? 1.0 : 0.1 * log(factor) + 1.0;
    double beta_fast = c->rope_beta_fast != 0 ? c->rope_beta_fast : 32.0;
    double beta_slow = c->rope_beta_slow != 0 ? c->rope_beta_slow : 1.0;
    /* find_correction_dim: the dimension whose wavelength makes num_rotations
     * turns over the original context. */
    double low = (dim * log(original / (beta_fast * 2.0 * M_PI))) / (2.0 * log(base));
    double high = (dim * log(original / (beta_slow * 2.0 * M_PI))) / (2.0 * log(base));
    if (c->rope_truncate) {
      low = floor(low);
      high = ceil(high);
    }
    if (low < 0)
      low = 0;
    if (high > dim - 1)
      high = dim - 1;
    if (low == high)
      high += 0.001; /* transformers' guard against a zero-width ramp */
    for (int i = 0; i < half; i++) {
      double pos_freq = pow(base, (double)(2 * i) / dim);
      double extrapolation = 1.0 / pos_freq;
      double interpolation = 1.0 / (factor * pos_freq);
      double ramp = ((double)i - low) / (high - low);
      if (ramp < 0)
        ramp = 0;
      if (ramp > 1)
        ramp = 1;
      double extrapolation_factor = 1.0 - ramp;
      model->inv_freq[i] = interpolation * (1.0 - extrapolation_factor) +
                           extrapolation * extrapolation_factor;
    }
  }
  return CLTTT_SUCCESS;
}

static clttt_status load_layer(reference_model *model, const checkpoint *ckpt, int L) {
  const clttt_config *c = &model->config;
  reference_layer *layer = &model->layers[L];
  int64_t d = c->hidden_size, f = c->intermediate_size, q = model->q_dim, kv = model->kv_dim;
  CLTTT_TRY(read_layer_tensor(ckpt, L, "input_layernorm.weight", d, 0, 0, 1, &layer->input_norm));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.q_proj.weight", q, d, 0, 2, &layer->wq));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.k_proj.weight", kv, d, 0, 2, &layer->wk));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.v_proj.weight", kv, d, 0, 2, &layer->wv));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.o_proj.weight", d, q, 0, 2, &layer->wo));
  if (c->attention_bias) {
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.q_proj.bias", q, 0, 0, 1, &layer->bq));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.k_proj.bias", kv, 0, 0, 1, &layer->bk));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.v_proj.bias", kv, 0, 0, 1, &layer->bv));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.o_proj.bias", d, 0, 0, 1, &layer->bo));
  }
  if (c->arch == CLTTT_ARCH_QWEN3) {
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.q_norm.weight", c->head_dim, 0, 0, 1,
                                &layer->q_norm));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "self_attn.k_norm.weight", c->head_dim, 0, 0, 1,
                                &layer->k_norm));
  }
  CLTTT_TRY(read_layer_tensor(ckpt, L, "post_attention_layernorm.weight", d, 0, 0, 1,
                              &layer->post_norm));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.gate_proj.weight", f, d, 0, 2, &layer->wg));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.up_proj.weight", f, d, 0, 2, &layer->wu));
  CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.down_proj.weight", d, f, 0, 2, &layer->wd));
  if (c->mlp_bias) {
    CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.gate_proj.bias", f, 0, 0, 1, &layer->bg));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.up_proj.bias", f, 0, 0, 1, &layer->bu));
    CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.down_proj.bias", d, 0, 0, 1, &layer->bd));
  }
  /* A TTT layer without its conv computes exactly the base layer (a zero conv
   * gives a zero update, SPEC.md section 5), so it simply runs as one. */
  char conv_name[256];
  snprintf(conv_name, sizeof conv_name, "model.layers.%d.mlp.ttt_conv.weight", L);
  if (clttt_config_is_ttt_layer(c, L) && has_tensor(ckpt, conv_name)) {
    CLTTT_TRY(read_tensor(ckpt, conv_name, d, 1, 5, 3, &layer->ttt_conv));
    if (c->ttt_proj)
      CLTTT_TRY(read_layer_tensor(ckpt, L, "mlp.ttt_proj.weight", d, d, 0, 2, &layer->ttt_proj));
  }
  return CLTTT_SUCCESS;
}

static clttt_status load_model(reference_model *model, const char *dir) {
  clttt_config *c = &model->config;
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  CLTTT_TRY(config_load(c, path));
  if (c->hidden_size <= 0 || c->intermediate_size <= 0 || c->num_hidden_layers <= 0 ||
      c->num_attention_heads <= 0 || c->num_key_value_heads <= 0 || c->head_dim <= 0 ||
      c->head_dim % 2 != 0 || c->vocab_size <= 0 ||
      c->num_attention_heads % c->num_key_value_heads != 0)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "reference: %s: unusable sizes (d %d, f %d, "
                      "layers %d, heads %d, kv heads %d, head_dim %d, vocab %d)", path,
                      c->hidden_size, c->intermediate_size, c->num_hidden_layers,
                      c->num_attention_heads, c->num_key_value_heads, c->head_dim, c->vocab_size);
  model->q_dim = c->num_attention_heads * c->head_dim;
  model->kv_dim = c->num_key_value_heads * c->head_dim;
  CLTTT_TRY(compute_rope(model));

  checkpoint ckpt;
  memset(&ckpt, 0, sizeof ckpt);
  CLTTT_TRY(checkpoint_open(&ckpt, dir));
  clttt_status status = CLTTT_SUCCESS;
  int64_t d = c->hidden_size, vocab = c->vocab_size;
  model->layers = calloc((size_t)c->num_hidden_layers, sizeof *model->layers);
  if (!model->layers)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference: no memory for layers");
  if (status == CLTTT_SUCCESS)
    status = read_tensor(&ckpt, "model.embed_tokens.weight", vocab, d, 0, 2, &model->embed);
  if (status == CLTTT_SUCCESS)
    status = read_tensor(&ckpt, "model.norm.weight", d, 0, 0, 1, &model->final_norm);
  if (status == CLTTT_SUCCESS) {
    if (c->tie_word_embeddings)
      model->lm_head = model->embed;
    else
      status = read_tensor(&ckpt, "lm_head.weight", vocab, d, 0, 2, &model->lm_head);
  }
  for (int L = 0; status == CLTTT_SUCCESS && L < c->num_hidden_layers; L++)
    status = load_layer(model, &ckpt, L);
  checkpoint_close(&ckpt);
  return status;
}

clttt_status reference_load(reference_model **out, const char *dir) {
  if (!out || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "reference_load: NULL argument");
  *out = NULL;
  reference_model *model = calloc(1, sizeof *model);
  if (!model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference_load: no memory");
  clttt_status status = load_model(model, dir);
  if (status != CLTTT_SUCCESS) {
    clttt_fail_context(status, "reference_load %s", dir);
    reference_free(model);
    return status;
  }
  *out = model;
  return CLTTT_SUCCESS;
}

void reference_free(reference_model *model) {
  if (!model)
    return;
  if (model->layers) {
    for (int L = 0; L < model->config.num_hidden_layers; L++) {
      reference_layer *l = &model->layers[L];
      float *all[] = {l->input_norm, l->wq, l->bq, l->wk, l->bk, l->wv, l->bv, l->wo,
                      l->bo, l->q_norm, l->k_norm, l->post_norm, l->wg, l->bg, l->wu,
                      l->bu, l->wd, l->bd, l->ttt_conv, l->ttt_proj};
      for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
    }
    free(model->layers);
  }
  if (model->lm_head != model->embed)
    free(model->lm_head);
  free(model->embed);
  free(model->final_norm);
  free(model->inv_freq);
  clttt_config_free(&model->config);
  free(model);
}

const clttt_config *reference_config(const reference_model *model) {
  return model ? &model->config : NULL;
}

/* ------------------------------------------------------------------ */
/* Forward pass                                                         */

/* y[r][o] = sum_i x[r][i] * w[o][i] + b[o], w stored out x in (nn.Linear). */
static void linear(const double *x, int rows, int in, const float *w, const float *b, int out,
                   double *y) {
  for (int r = 0; r < rows; r++) {
    const double *xr = x + (size_t)r * in;
    double *yr = y + (size_t)r * out;
    for (int o = 0; o < out; o++) {
      const float *wo = w + (size_t)o * in;
      double sum = b ? (double)b[o] : 0.0;
      for (int i = 0; i < in; i++)
        sum += xr[i] * (double)wo[i];
      yr[o] = sum;
    }
  }
}

/* x * rsqrt(mean(x^2) + eps) * w over vectors of `size`. */
static void rmsnorm(const double *x, int rows, int size, const float *w, double eps, double *y) {
  for (int r = 0; r < rows; r++) {
    const double *xr = x + (size_t)r * size;
    double *yr = y + (size_t)r * size;
    double sum = 0.0;
    for (int i = 0; i < size; i++)
      sum += xr[i] * xr[i];
    double scale = 1.0 / sqrt(sum / size + eps);
    for (int i = 0; i < size; i++)
      yr[i] = xr[i] * scale * (double)w[i];
  }
}

static double silu(double x) { return x / (1.0 + exp(-x)); }

/* HuggingFace's apply_rotary_pos_emb on one head vector at `position`:
 * x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1), and the
 * frequencies repeated over both halves. */
static void rope(const reference_model *model, double *v, int position) {
  int half = model->config.head_dim / 2;
  for (int i = 0; i < half; i++) {
    double angle = (double)position * model->inv_freq[i];
    double cos_a = cos(angle) * model->attention_scaling;
    double sin_a = sin(angle) * model->attention_scaling;
    double x1 = v[i], x2 = v[i + half];
    v[i] = x1 * cos_a - x2 * sin_a;
    v[i + half] = x2 * cos_a + x1 * sin_a;
  }
}

/* Self-attention of one layer: xn (n x d, the input_layernorm output) ->
 * out (n x d, o_proj output). */
static clttt_status attention(const reference_model *model, const reference_layer *layer,
                              const double *xn, int n, double *out) {
  const clttt_config *c = &model->config;
  int d = c->hidden_size, hd = c->head_dim, heads = c->num_attention_heads;
  int group = heads / c->num_key_value_heads;
  int q_dim = model->q_dim, kv_dim = model->kv_dim;
  double eps = c->rms_norm_eps;
  double *q = malloc((size_t)n * q_dim * sizeof *q);
  double *k = malloc((size_t)n * kv_dim * sizeof *k);
  double *v = malloc((size_t)n * kv_dim * sizeof *v);
  double *context = malloc((size_t)n * q_dim * sizeof *context);
  double *scores = malloc((size_t)n * sizeof *scores);
  double *normed = malloc((size_t)hd * sizeof *normed);
  clttt_status status = CLTTT_SUCCESS;
  if (!q || !k || !v || !context || !scores || !normed) {
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference: no memory for attention");
    goto done;
  }
  linear(xn, n, d, layer->wq, layer->bq, q_dim, q);
  linear(xn, n, d, layer->wk, layer->bk, kv_dim, k);
  linear(xn, n, d, layer->wv, layer->bv, kv_dim, v);
  for (int t = 0; t < n; t++) {
    for (int h = 0; h < heads; h++) {
      double *qh = q + (size_t)t * q_dim + (size_t)h * hd;
      if (layer->q_norm) {
        rmsnorm(qh, 1, hd, layer->q_norm, eps, normed);
        memcpy(qh, normed, (size_t)hd * sizeof *qh);
      }
      rope(model, qh, t);
    }
    for (int h = 0; h < c->num_key_value_heads; h++) {
      double *kh = k + (size_t)t * kv_dim + (size_t)h * hd;
      if (layer->k_norm) {
        rmsnorm(kh, 1, hd, layer->k_norm, eps, normed);
        memcpy(kh, normed, (size_t)hd * sizeof *kh);
      }
      rope(model, kh, t);
    }
  }
  double scale = 1.0 / sqrt((double)hd);
  for (int t = 0; t < n; t++) {
    for (int h = 0; h < heads; h++) {
      int kvh = h / group;
      const double *qh = q + (size_t)t * q_dim + (size_t)h * hd;
      double top = -INFINITY;
      for (int s = 0; s <= t; s++) { /* causal: keys 0..t */
        const double *kh = k + (size_t)s * kv_dim + (size_t)kvh * hd;
        double dot = 0.0;
        for (int i = 0; i < hd; i++)
          dot += qh[i] * kh[i];
        scores[s] = dot * scale;
        if (scores[s] > top)
          top = scores[s];
      }
      double total = 0.0;
      for (int s = 0; s <= t; s++) {
        scores[s] = exp(scores[s] - top);
        total += scores[s];
      }
      double *ch = context + (size_t)t * q_dim + (size_t)h * hd;
      for (int i = 0; i < hd; i++)
        ch[i] = 0.0;
      for (int s = 0; s <= t; s++) {
        const double *vh = v + (size_t)s * kv_dim + (size_t)kvh * hd;
        double p = scores[s] / total;
        for (int i = 0; i < hd; i++)
          ch[i] += p * vh[i];
      }
    }
  }
  linear(context, n, q_dim, layer->wo, layer->bo, d, out);
done:
  free(q);
  free(k);
  free(v);
  free(context);
  free(scores);
  free(normed);
  return status;
}

/* The gated MLP of one layer, with SPEC.md section 3's sequential TTT when
 * `ttt` is set: x (n x d, the post_attention_layernorm output), target (n x d,
 * the target states t) -> out (n x d). */
static clttt_status mlp(const reference_model *model, const reference_layer *layer,
                        const double *x, const double *target, int n, int ttt, int chunk,
                        double eta, double clip_tau, double *out) {
  const clttt_config *c = &model->config;
  int d = c->hidden_size, f = c->intermediate_size;
  double *gate = malloc((size_t)n * f * sizeof *gate);
  double *up = malloc((size_t)n * f * sizeof *up);
  double *w = malloc((size_t)d * f * sizeof *w);          /* the (fast) down weight */
  double *tc = ttt ? malloc((size_t)chunk * d * sizeof *tc) : NULL;
  double *values = ttt ? malloc((size_t)chunk * d * sizeof *values) : NULL;
  double *update = ttt ? malloc((size_t)d * f * sizeof *update) : NULL;
  clttt_status status = CLTTT_SUCCESS;
  if (!gate || !up || !w || (ttt && (!tc || !values || !update))) {
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference: no memory for the MLP");
    goto done;
  }
  linear(x, n, d, layer->wg, layer->bg, f, gate);
  linear(x, n, d, layer->wu, layer->bu, f, up);
  double *h = gate; /* h = silu(x Wg^T) * (x Wu^T), in place */
  for (size_t i = 0; i < (size_t)n * f; i++)
    h[i] = silu(gate[i]) * up[i];
  for (size_t i = 0; i < (size_t)d * f; i++)
    w[i] = (double)layer->wd[i];

  /* Without TTT the whole sequence is one "chunk" that never updates. */
  int step = ttt ? chunk : n;
  for (int start = 0; start < n; start += step) {
    int rows = n - start < step ? n - start : step;
    /* Apply: O = h W^T with the weights before this chunk's update, plus
     * the down_proj bias outside TTT layers only (SPEC.md section 3). */
    for (int r = start; r < start + rows; r++) {
      const double *hr = h + (size_t)r * f;
      for (int e = 0; e < d; e++) {
        const double *we = w + (size_t)e * f;
        double sum = layer->bd && !ttt ? (double)layer->bd[e] : 0.0;
        for (int j = 0; j < f; j++)
          sum += hr[j] * we[j];
        out[(size_t)r * d + e] = sum;
      }
    }
    if (!ttt || rows < chunk)
      continue; /* only full chunks update W */
    /* Depthwise conv inside the chunk, zero outside it: tap j reads row i+j-2. */
    for (int i = 0; i < chunk; i++)
      for (int ch = 0; ch < d; ch++) {
        double sum = 0.0;
        for (int j = 0; j < 5; j++) {
          int row = i + j - 2;
          if (row < 0 || row >= chunk)
            continue;
          sum += (double)layer->ttt_conv[(size_t)ch * 5 + j] *
                 target[(size_t)(start + row) * d + ch];
        }
        tc[(size_t)i * d + ch] = sum;
      }
    /* V = tc P (P as stored, not transposed), or tc without ttt_proj. */
    if (layer->ttt_proj) {
      for (int i = 0; i < chunk; i++)
        for (int e = 0; e < d; e++) {
          double sum = 0.0;
          for (int ch = 0; ch < d; ch++)
            sum += tc[(size_t)i * d + ch] * (double)layer->ttt_proj[(size_t)ch * d + e];
          values[(size_t)i * d + e] = sum;
        }
    } else {
      memcpy(values, tc, (size_t)chunk * d * sizeof *values);
    }
    /* U = eta * V^T h over the chunk's rows; W += min(1, tau / ||U||_F) U,
     * or W += U without clipping. */
    double squares = 0.0;
    for (int e = 0; e < d; e++)
      for (int j = 0; j < f; j++) {
        double sum = 0.0;
        for (int i = 0; i < chunk; i++)
          sum += values[(size_t)i * d + e] * h[(size_t)(start + i) * f + j];
        update[(size_t)e * f + j] = eta * sum;
        squares += eta * sum * eta * sum;
      }
    double norm = sqrt(squares);
    double scale = clip_tau > 0.0 && norm > clip_tau ? clip_tau / norm : 1.0;
    for (size_t i = 0; i < (size_t)d * f; i++)
      w[i] += scale * update[i];
  }
done:
  free(gate);
  free(up);
  free(w);
  free(tc);
  free(values);
  free(update);
  return status;
}

clttt_status reference_forward(const reference_model *model, const int32_t *tokens, int n,
                               int ttt_enabled, int chunk, float eta, float *logits) {
  return reference_forward_clipped(model, tokens, n, ttt_enabled, chunk, eta, 0.0f, logits);
}

clttt_status reference_forward_clipped(const reference_model *model, const int32_t *tokens, int n,
                                       int ttt_enabled, int chunk, float eta, float clip_tau, float *logits) {
  if (!model || n < 0 || (n > 0 && (!tokens || !logits)))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "reference_forward: bad arguments (n %d)", n);
  if (n == 0)
    return CLTTT_SUCCESS;
  const clttt_config *c = &model->config;
  int d = c->hidden_size, vocab = c->vocab_size;
  for (int i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                        "reference_forward: token %d at position %d is outside [0, %d)",
                        (int)tokens[i], i, vocab);
  int ttt_chunk = chunk > 0 ? chunk : c->ttt_chunk;
  double ttt_eta = eta > 0 ? (double)eta : (double)c->ttt_lr;
  int ttt_on = ttt_enabled && c->ttt_mode;
  if (ttt_on && ttt_chunk <= 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "reference_forward: TTT chunk %d", ttt_chunk);

  size_t nd = (size_t)n * d;
  double *embedded = malloc(nd * sizeof *embedded);
  double *hidden = malloc(nd * sizeof *hidden);
  double *normed = malloc(nd * sizeof *normed);
  double *branch = malloc(nd * sizeof *branch);
  clttt_status status = CLTTT_SUCCESS;
  if (!embedded || !hidden || !normed || !branch) {
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "reference_forward: no memory");
    goto done;
  }
  for (int i = 0; i < n; i++)
    for (int e = 0; e < d; e++)
      embedded[(size_t)i * d + e] = (double)model->embed[(size_t)tokens[i] * d + e];
  memcpy(hidden, embedded, nd * sizeof *hidden);

  for (int L = 0; L < c->num_hidden_layers; L++) {
    const reference_layer *layer = &model->layers[L];
    rmsnorm(hidden, n, d, layer->input_norm, c->rms_norm_eps, normed);
    status = attention(model, layer, normed, n, branch);
    if (status != CLTTT_SUCCESS)
      goto done;
    for (size_t i = 0; i < nd; i++)
      hidden[i] += branch[i];
    rmsnorm(hidden, n, d, layer->post_norm, c->rms_norm_eps, normed);
    int ttt = ttt_on && layer->ttt_conv != NULL;
    const double *target = c->ttt_target == CLTTT_TARGET_INPUT_EMBED ? embedded : normed;
    status = mlp(model, layer, normed, target, n, ttt, ttt_chunk, ttt_eta, clip_tau, branch);
    if (status != CLTTT_SUCCESS)
      goto done;
    for (size_t i = 0; i < nd; i++)
      hidden[i] += branch[i];
  }
  rmsnorm(hidden, n, d, model->final_norm, c->rms_norm_eps, normed);
  for (int i = 0; i < n; i++)
    for (int v = 0; v < vocab; v++) {
      const float *wv = model->lm_head + (size_t)v * d;
      double sum = 0.0;
      for (int e = 0; e < d; e++)
        sum += normed[(size_t)i * d + e] * (double)wv[e];
      logits[(size_t)i * vocab + v] = (float)sum;
    }
done:
  free(embedded);
  free(hidden);
  free(normed);
  free(branch);
  return status;
}
