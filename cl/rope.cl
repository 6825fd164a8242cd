// Qwen3's per-head q/k RMSNorm, rotary position embedding, and the KV-cache
// write, fused: each head vector is read once and written once.
//
// qkv holds each token's row as [q (heads x HEAD_DIM) | k (kv_heads x HEAD_DIM)
// | v (kv_heads x HEAD_DIM)], straight from one GEMM with stacked weights.
// RoPE uses HuggingFace's rotate_half pairing (i, i + HEAD_DIM/2); cos and sin
// are multiplied by attention_scaling (1 except for YaRN), as HF does.

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
// The KV cache holds float, or half when KV_HALF is 1 (a session parameter):
// half is only loaded and stored (vload_half / vstore_half, rounding to
// nearest even), never computed with, so no device needs cl_khr_fp16.
#ifndef KV_HALF
#define KV_HALF 0
#endif
#if KV_HALF
#define KV_TYPE half
#define KV_LOAD(p, i) vload_half((i), (p))
#define KV_STORE(value, p, i) vstore_half((value), (i), (p))
#else
#define KV_TYPE float
#define KV_LOAD(p, i) ((p)[i])
#define KV_STORE(value, p, i) ((p)[i] = (value))
#endif

// Work-items per token (at most; fewer when the token has fewer head slots):
// a work-group handles one token, its items striding over the slots. Tuned
// per device.
#ifndef ROPE_WGS
#define ROPE_WGS 64
#endif

// 1: the GPU form below, lanes along the head instead of over its slots.
#ifndef ROPE_HEAD_LANES
#define ROPE_HEAD_LANES 0
#endif

#if ROPE_HEAD_LANES

// GPUs: a work-group of HEAD_DIM / 2 work-items per (head slot, token), lane
// i holding the pair (i, i + HEAD_DIM / 2) that rotate_half turns together,
// so a head is read and written by neighbouring lanes. The form at the end
// of this file keeps a whole head per work-item: 1 KiB of stack on sm_90
// and 176 VGPRs on gfx1030 for a head of 128 (bench/RESULTS.md section 24).
// The norm's sum of squares meets in local memory; every lane adds the
// squares in the same order, so all get the same scale.
__kernel __attribute__((reqd_work_group_size(HEAD_DIM / 2, 1, 1)))
void qk_norm_rope(__global float *qkv, const int qkv_ld, const int n, const int position0,
                  const int heads, const int kv_heads,
                  __global const float *inverse_frequency, const float attention_scaling,
                  const int use_qk_norm, __global const float *q_norm,
                  __global const float *k_norm, const float eps,
                  __global KV_TYPE *k_cache, __global KV_TYPE *v_cache, const int kv_dim) {
  __local float squares[HEAD_DIM / 2];
  const int half_dim = HEAD_DIM / 2;
  const int i = get_local_id(0);
  const int slot = get_group_id(0);
  const int token = get_global_id(1);
  // Slot and token are the group's: a group leaves whole, and use_qk_norm
  // is the same for all, so every lane of a group meets the barrier.
  if (token >= n || slot >= heads + kv_heads)
    return;
  const int is_key = slot >= heads;
  const int kv_head = slot - heads;
  __global float *row = qkv + (size_t)token * qkv_ld;
  __global float *vector = row + slot * HEAD_DIM;
  float first = vector[i], second = vector[i + half_dim];
  if (use_qk_norm) {
    squares[i] = first * first + second * second;
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (int l = 0; l < half_dim; l++)
      sum += squares[l];
    const float scale = rsqrt(sum / (float)HEAD_DIM + eps);
    __global const float *weight = is_key ? k_norm : q_norm;
    first = first * scale * weight[i];
    second = second * scale * weight[i + half_dim];
  }
  const float angle = (float)(position0 + token) * inverse_frequency[i];
  const float cosine = cos(angle) * attention_scaling, sine = sin(angle) * attention_scaling;
  const float rotated_first = first * cosine - second * sine;
  const float rotated_second = second * cosine + first * sine;
  if (!is_key) {
    vector[i] = rotated_first;
    vector[i + half_dim] = rotated_second;
    return;
  }
  const size_t cache_row = (size_t)(position0 + token) * kv_dim + (size_t)kv_head * HEAD_DIM;
  __global const float *value = row + (heads + kv_heads + kv_head) * HEAD_DIM;
  KV_STORE(rotated_first, k_cache, cache_row + i);
  KV_STORE(rotated_second, k_cache, cache_row + i + half_dim);
  KV_STORE(value[i], v_cache, cache_row + i);
  KV_STORE(value[i + half_dim], v_cache, cache_row + i + half_dim);
}

#elif ROPE_WGS == 1 && HEAD_DIM % 32 == 0

#define HALF_VECTORS (HEAD_DIM / 32)

#if KV_HALF
#define KV_STORE16(value, p, i) vstore_half16((value), 0, (p) + (i))
#else
#define KV_STORE16(value, p, i) vstore16((value), 0, (p) + (i))
#endif

float sum16(const float16 v) {
  const float8 s8 = v.lo + v.hi;
  const float4 s4 = s8.lo + s8.hi;
  return (s4.x + s4.y) + (s4.z + s4.w);
}

// CPUs: a work-group of one work-item per token, so PoCL runs it as
// straight-line vector code: each head is HEAD_DIM / 16 vectors, the halves
// that rotate_half pairs are whole vectors, and the token's cos and sin are
// vector sincos calls. The work-group form below made PoCL run its slots as
// lanes with each lane's head a strided gather.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void qk_norm_rope(__global float *qkv, const int qkv_ld, const int n, const int position0,
                  const int heads, const int kv_heads,
                  __global const float *inverse_frequency, const float attention_scaling,
                  const int use_qk_norm, __global const float *q_norm,
                  __global const float *k_norm, const float eps,
                  __global KV_TYPE *k_cache, __global KV_TYPE *v_cache, const int kv_dim) {
  const int token = get_global_id(0);
  if (token >= n)
    return;
  const float position = (float)(position0 + token);
  float16 cosines[HALF_VECTORS], sines[HALF_VECTORS];
  for (int v = 0; v < HALF_VECTORS; v++) {
    float16 cosine;
    const float16 sine = sincos(position * vload16(v, inverse_frequency), &cosine);
    cosines[v] = cosine * attention_scaling;
    sines[v] = sine * attention_scaling;
  }
  __global float *row = qkv + (size_t)token * qkv_ld;
  // The slots lie in order in the row: query heads, then key heads.
  for (int slot = 0; slot < heads + kv_heads; slot++) {
    const int is_key = slot >= heads;
    const int kv_head = slot - heads;
    __global float *vector = row + slot * HEAD_DIM;
    float16 first[HALF_VECTORS], second[HALF_VECTORS];
    for (int v = 0; v < HALF_VECTORS; v++) {
      first[v] = vload16(v, vector);
      second[v] = vload16(v, vector + HEAD_DIM / 2);
    }
    if (use_qk_norm) {
      float16 squares = (float16)(0.0f);
      for (int v = 0; v < HALF_VECTORS; v++)
        squares = fma(first[v], first[v], fma(second[v], second[v], squares));
      const float scale = rsqrt(sum16(squares) / (float)HEAD_DIM + eps);
      __global const float *weight = is_key ? k_norm : q_norm;
      for (int v = 0; v < HALF_VECTORS; v++) {
        first[v] = first[v] * scale * vload16(v, weight);
        second[v] = second[v] * scale * vload16(v, weight + HEAD_DIM / 2);
      }
    }
    float16 rotated_first[HALF_VECTORS], rotated_second[HALF_VECTORS];
    for (int v = 0; v < HALF_VECTORS; v++) {
      rotated_first[v] = first[v] * cosines[v] - second[v] * sines[v];
      rotated_second[v] = second[v] * cosines[v] + first[v] * sines[v];
    }
    if (!is_key) {
      for (int v = 0; v < HALF_VECTORS; v++) {
        vstore16(rotated_first[v], v, vector);
        vstore16(rotated_second[v], v, vector + HEAD_DIM / 2);
      }
      continue;
    }
    const size_t cache_row = (size_t)(position0 + token) * kv_dim + (size_t)kv_head * HEAD_DIM;
    __global const float *value = row + (heads + kv_heads + kv_head) * HEAD_DIM;
    for (int v = 0; v < HALF_VECTORS; v++) {
      KV_STORE16(rotated_first[v], k_cache, cache_row + v * 16);
      KV_STORE16(rotated_second[v], k_cache, cache_row + HEAD_DIM / 2 + v * 16);
      KV_STORE16(vload16(v, value), v_cache, cache_row + v * 16);
      KV_STORE16(vload16(v, value + HEAD_DIM / 2), v_cache, cache_row + HEAD_DIM / 2 + v * 16);
    }
  }
}

#else

// One work-group per token; slots [0, heads) are query heads, [heads, heads +
// kv_heads) key/value heads. The token's cos and sin are computed once into
// local memory and shared by its slots: computed per slot, the
// transcendental functions took 10% of a prefill on PoCL.
__kernel void qk_norm_rope(__global float *qkv, const int qkv_ld, const int n, const int position0,
                           const int heads, const int kv_heads,
                           __global const float *inverse_frequency, const float attention_scaling,
                           const int use_qk_norm, __global const float *q_norm,
                           __global const float *k_norm, const float eps,
                           __global KV_TYPE *k_cache, __global KV_TYPE *v_cache, const int kv_dim) {
  const int half_dim = HEAD_DIM / 2;
  __local float cosines[HEAD_DIM / 2], sines[HEAD_DIM / 2];
  const int token = get_group_id(0);
  const int lane = get_local_id(0);
  const int lanes = get_local_size(0);
  const float position = (float)(position0 + token);
  for (int i = lane; i < half_dim; i += lanes) {
    const float angle = position * inverse_frequency[i];
    cosines[i] = cos(angle) * attention_scaling;
    sines[i] = sin(angle) * attention_scaling;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  if (token >= n)
    return;
  const int slots = heads + kv_heads;
  __global float *row = qkv + (size_t)token * qkv_ld;
  for (int slot = lane; slot < slots; slot += lanes) {
    const int is_key = slot >= heads;
    const int kv_head = slot - heads;
    __global float *vector = is_key ? row + heads * HEAD_DIM + kv_head * HEAD_DIM : row + slot * HEAD_DIM;
    float x[HEAD_DIM];
    for (int c = 0; c < HEAD_DIM; c++)
      x[c] = vector[c];
    if (use_qk_norm) {
      float sum = 0.0f;
      for (int c = 0; c < HEAD_DIM; c++)
        sum += x[c] * x[c];
      const float scale = rsqrt(sum / (float)HEAD_DIM + eps);
      __global const float *weight = is_key ? k_norm : q_norm;
      for (int c = 0; c < HEAD_DIM; c++)
        x[c] = x[c] * scale * weight[c];
    }
    float rotated[HEAD_DIM];
    for (int i = 0; i < half_dim; i++) {
      rotated[i] = x[i] * cosines[i] - x[i + half_dim] * sines[i];
      rotated[i + half_dim] = x[i + half_dim] * cosines[i] + x[i] * sines[i];
    }
    if (!is_key) {
      for (int c = 0; c < HEAD_DIM; c++)
        vector[c] = rotated[c];
      continue;
    }
    const size_t cache_row = (size_t)(position0 + token) * kv_dim + (size_t)kv_head * HEAD_DIM;
    __global const float *value = row + heads * HEAD_DIM + kv_heads * HEAD_DIM + kv_head * HEAD_DIM;
    for (int c = 0; c < HEAD_DIM; c++) {
      KV_STORE(rotated[c], k_cache, cache_row + c);
      KV_STORE(value[c], v_cache, cache_row + c);
    }
  }
}

#endif
