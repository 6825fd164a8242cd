// Causal grouped-query attention against the KV cache, blocked like flash
// attention: a work-group holds ATTENTION_BLOCK_Q queries of one head and
// walks the keys in tiles of ATTENTION_BLOCK_K staged in local memory, keeping
// a running max and sum per query (online softmax). Scores never exist beyond
// one tile, so memory is bounded by the tile size (local memory:
// 2 * ATTENTION_BLOCK_K * HEAD_DIM floats per group) whatever the context length.
//
// Each tile is a small matrix product: (queries x HEAD_DIM) by
// (HEAD_DIM x keys) for the scores, then (queries x keys) by (keys x HEAD_DIM)
// for the values.

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef ATTENTION_BLOCK_Q
#define ATTENTION_BLOCK_Q 16
#endif
#ifndef ATTENTION_BLOCK_K
#define ATTENTION_BLOCK_K 32
#endif

//   out: n x (heads * HEAD_DIM); q: n rows of stride q_ld (query heads first);
//   k_cache, v_cache: positions x kv_dim. Query i sits at position0 + i and sees
//   keys 0 .. position0 + i.
__kernel __attribute__((reqd_work_group_size(ATTENTION_BLOCK_Q, 1, 1)))
void attention(__global float *out, __global const float *q, const int q_ld,
               __global const float *k_cache, __global const float *v_cache, const int kv_dim,
               const int n, const int position0, const int heads, const int kv_heads,
               const float scale) {
  __local float k_tile[ATTENTION_BLOCK_K * HEAD_DIM];
  __local float v_tile[ATTENTION_BLOCK_K * HEAD_DIM];
  const int lane = get_local_id(0);
  const int first_query = get_group_id(0) * ATTENTION_BLOCK_Q;
  const int query = first_query + lane;
  const int head = get_group_id(1);
  const int kv_head = head / (heads / kv_heads);
  const int active = query < n;
  const int my_last_key = position0 + query;
  // The group stops at the last key its last query sees: uniform, so the
  // barriers below are reached by every work-item.
  const int group_last_query = min(n - 1, first_query + ATTENTION_BLOCK_Q - 1);
  const int key_end = position0 + group_last_query + 1;

  float q_row[HEAD_DIM];
  float accumulator[HEAD_DIM];
  for (int c = 0; c < HEAD_DIM; c++) {
    q_row[c] = active ? q[(size_t)query * q_ld + head * HEAD_DIM + c] * scale : 0.0f;
    accumulator[c] = 0.0f;
  }
  float running_max = -INFINITY;
  float running_sum = 0.0f;

  for (int key0 = 0; key0 < key_end; key0 += ATTENTION_BLOCK_K) {
    const int tile = min(ATTENTION_BLOCK_K, key_end - key0);
    barrier(CLK_LOCAL_MEM_FENCE);
    // A uniform trip count with the bound checked inside: PoCL 3.1 crashed
    // on the `for (e = lane; e < bound; ...)` form when some work-items had
    // no iteration (ATTENTION_BLOCK_Q > tile * HEAD_DIM).
    for (int base = 0; base < tile * HEAD_DIM; base += ATTENTION_BLOCK_Q) {
      const int e = base + lane;
      if (e < tile * HEAD_DIM) {
        const int r = e / HEAD_DIM;
        const int c = e - r * HEAD_DIM;
        const size_t at = (size_t)(key0 + r) * kv_dim + kv_head * HEAD_DIM + c;
        k_tile[e] = k_cache[at];
        v_tile[e] = v_cache[at];
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!active || key0 > my_last_key)
      continue;
    float score[ATTENTION_BLOCK_K];
    float tile_max = -INFINITY;
    for (int r = 0; r < tile; r++) {
      float dot = 0.0f;
      for (int c = 0; c < HEAD_DIM; c++)
        dot += q_row[c] * k_tile[r * HEAD_DIM + c];
      score[r] = key0 + r <= my_last_key ? dot : -INFINITY;
      tile_max = fmax(tile_max, score[r]);
    }
    const float new_max = fmax(running_max, tile_max);
    const float correction = exp(running_max - new_max);
    running_sum *= correction;
    for (int c = 0; c < HEAD_DIM; c++)
      accumulator[c] *= correction;
    for (int r = 0; r < tile; r++) {
      const float p = exp(score[r] - new_max);
      running_sum += p;
      for (int c = 0; c < HEAD_DIM; c++)
        accumulator[c] += p * v_tile[r * HEAD_DIM + c];
    }
    running_max = new_max;
  }
  if (!active)
    return;
  const float inverse_sum = 1.0f / running_sum;
  for (int c = 0; c < HEAD_DIM; c++)
    out[(size_t)query * heads * HEAD_DIM + head * HEAD_DIM + c] = accumulator[c] * inverse_sum;
}
