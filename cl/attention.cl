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
               __global const KV_TYPE *k_cache, __global const KV_TYPE *v_cache, const int kv_dim,
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
        k_tile[e] = KV_LOAD(k_cache, at);
        v_tile[e] = KV_LOAD(v_cache, at);
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
      // A masked key must contribute nothing, not 0 * v: a NaN in a later
      // position's v would otherwise poison every earlier query.
      if (key0 + r > my_last_key)
        continue;
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

// ---------------------------------------------------------------------------
// The softmax step of the GEMM-backed prefill path (src/attention.c
// attention_gemm): scores = scale Q K^T came from one GEMM per head, the
// probabilities go into the next (P V). Long prefills spend their time in
// those GEMMs, which CLBlast runs several times faster than the per-query
// loops above; this kernel only has to stream the score rows.
//
// One work-group per row; SOFTMAX_WGS work-items take 8 consecutive columns
// each per step and combine their partial max and sum in a tree, so it must
// be a power of two. The explicit float8 matters on CPUs: PoCL runs each
// work-item's loop on its own, so scalar columns strided by the group size
// neither vectorise nor stream (2.5-3 GB/s on a 2-core EPYC under PoCL 3.1,
// against 15-24 GB/s with float8).
#ifndef SOFTMAX_WGS
#define SOFTMAX_WGS 64
#endif
#define SOFTMAX_STEP (SOFTMAX_WGS * 8)

//   scores: rows of `columns` floats, row stride ld; row r is query
//   r % queries (of the block) of some head. Query i sits at position
//   first_position + i and sees keys 0 .. first_position + i; the keys after
//   it become exact zeros, so the following P V product may read whole rows.
__kernel __attribute__((reqd_work_group_size(SOFTMAX_WGS, 1, 1)))
void causal_softmax_rows(__global float *scores, const int rows, const int columns, const int ld,
                         const int queries, const int first_position) {
  __local float partial[SOFTMAX_WGS];
  const int row = get_group_id(0);
  const int lane = get_local_id(0);
  if (row >= rows)
    return;  // uniform across the group: whole groups exit together
  __global float *s = scores + (size_t)row * ld;
  const int visible = min(columns, first_position + row % queries + 1);

  // Loops, the 8-column tails included, run a uniform number of times with
  // the bound checked inside: PoCL 3.1 crashes when some work-items of a
  // group skip a loop entirely. Max first, then one exp per column: the
  // online (max, sum) form saves a read but needs a second exp per column.
  float m = -INFINITY;
  for (int base = 0; base < visible; base += SOFTMAX_STEP) {
    const int c = base + lane * 8;
    if (c + 8 <= visible) {
      const float8 x = vload8(0, s + c);
      const float4 m4 = fmax(x.lo, x.hi);
      const float2 m2 = fmax(m4.lo, m4.hi);
      m = fmax(m, fmax(m2.lo, m2.hi));
    } else {
      for (int k = 0; k < 8; k++)
        if (c + k < visible)
          m = fmax(m, s[c + k]);
    }
  }
  partial[lane] = m;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = SOFTMAX_WGS / 2; stride > 0; stride /= 2) {
    if (lane < stride)
      partial[lane] = fmax(partial[lane], partial[lane + stride]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float row_max = partial[0];
  barrier(CLK_LOCAL_MEM_FENCE);  // every lane has read partial[0] before it is reused

  float sum = 0.0f;
  for (int base = 0; base < visible; base += SOFTMAX_STEP) {
    const int c = base + lane * 8;
    if (c + 8 <= visible) {
      const float8 e = exp(vload8(0, s + c) - row_max);
      vstore8(e, 0, s + c);
      const float4 s4 = e.lo + e.hi;
      const float2 s2 = s4.lo + s4.hi;
      sum += s2.lo + s2.hi;
    } else {
      for (int k = 0; k < 8; k++) {
        if (c + k < visible) {
          const float e = exp(s[c + k] - row_max);
          s[c + k] = e;
          sum += e;
        }
      }
    }
  }
  partial[lane] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = SOFTMAX_WGS / 2; stride > 0; stride /= 2) {
    if (lane < stride)
      partial[lane] += partial[lane + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float inverse_sum = 1.0f / partial[0];

  for (int base = 0; base < columns; base += SOFTMAX_STEP) {
    const int c = base + lane * 8;
    if (c + 8 <= visible) {
      vstore8(vload8(0, s + c) * inverse_sum, 0, s + c);
    } else if (c >= visible && c + 8 <= columns) {
      vstore8((float8)(0.0f), 0, s + c);
    } else {
      for (int k = 0; k < 8; k++)
        if (c + k < columns)
          s[c + k] = c + k < visible ? s[c + k] * inverse_sum : 0.0f;
    }
  }
}

// ---------------------------------------------------------------------------
// Decode and other short batches: n queries (query i at position0 + i sees
// keys 0 .. position0 + i; first_keys is query 0's count, position0 + 1),
// their keys split into `splits` ranges of split_keys keys. The flash
// kernel above gives a query one work-item of a group of ATTENTION_BLOCK_Q,
// so a CPU ran the whole context through one vector lane (30% of a decode
// step at a few hundred tokens), and a GPU got n x heads work-items for a
// batch. Here each work-item (or group) takes one (query, range, head) and
// works along HEAD_DIM in vectors; a second kernel merges each query's
// range states. A range past a query's last key is empty: its state stays
// (-INFINITY, 0, zeros), which the merge weighs by exp(-INFINITY) = 0.
#if HEAD_DIM % 16 == 0
#define DECODE_WIDTH 16
#elif HEAD_DIM % 8 == 0
#define DECODE_WIDTH 8
#elif HEAD_DIM % 4 == 0
#define DECODE_WIDTH 4
#else
#define DECODE_WIDTH 2
#endif
#define DECODE_VECTORS (HEAD_DIM / DECODE_WIDTH)
#define DECODE_CAT_(a, b) a##b
#define DECODE_CAT(a, b) DECODE_CAT_(a, b)
typedef DECODE_CAT(float, DECODE_WIDTH) decode_vector;
#define DECODE_LOAD_FLOAT(i, p) DECODE_CAT(vload, DECODE_WIDTH)((i), (p))
#if KV_HALF
#define DECODE_LOAD_KV(i, p) DECODE_CAT(vload_half, DECODE_WIDTH)((i), (p))
#else
#define DECODE_LOAD_KV(i, p) DECODE_LOAD_FLOAT((i), (p))
#endif
// Keys scored before the running state is rescaled once (the host's
// ATTENTION_DECODE_TILE).
#ifndef DECODE_TILE
#define DECODE_TILE 16
#endif
#ifndef ATTENTION_DECODE_ROWS
#define ATTENTION_DECODE_ROWS 0
#endif

float decode_sum(const decode_vector v) {
#if DECODE_WIDTH == 16
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
#elif DECODE_WIDTH == 8
  const float4 b = v.lo + v.hi;
#elif DECODE_WIDTH == 4
  const float4 b = v;
#endif
#if DECODE_WIDTH >= 4
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
#else
  return v.x + v.y;
#endif
}

// partials[((query * heads + head) * splits + split) * (HEAD_DIM + 2)]: the
// range's running max, its sum of exp(score - max), then HEAD_DIM
// accumulated values.
#if ATTENTION_DECODE_ROWS == 1
// One work-item per (query, range) for every head (global size splits x
// n). The range's tiles of DECODE_TILE keys are taken in address order, and
// within a tile each KV head's slice serves its query heads two at a time:
// a key or value vector is loaded once for both, their two accumulators
// (2 x HEAD_DIM floats) stay in registers for the whole tile, and each
// head's DECODE_TILE scores are one vector, exponentiated by one vector
// exp. The states live in `partials` (L1-resident, a few KiB), read and
// written once per tile and head. The form before it (every head per key
// row, its accumulator read and written per key, a scalar exp per score,
// an integer division per head and row) took 1.3x the time at 16384 keys,
// 1.6x at 4096 and 2.7x at 512 (bench/RESULTS.md section 27).
#if DECODE_TILE != 16
#error "ATTENTION_DECODE_ROWS 1 holds a tile's scores in a float16"
#endif
// The next tile's rows are prefetched while this one is computed, into L2
// (locality 2): at 4096 and 16384 keys (f16 cache, 16 / 8 heads of 128,
// 2-core Zen 4, PoCL 3.1) this ran 1.5-1.8x faster than no prefetch (a KV
// head's slices of a tile's rows, strided, defeat the hardware
// prefetchers) and 1.5-1.6x faster than a prefetch into L1, whose few miss
// buffers the demand loads need. A SPIR consumer (Oclgrind) gets OpenCL's
// own prefetch; other compilers none.
#if defined(__SPIR__)
#define DECODE_PREFETCH_LINE(address) prefetch((__global const uchar *)(address), 1)
#elif defined(__clang__)
#define DECODE_PREFETCH_LINE(address) __builtin_prefetch((address), 0, 2)
#else
#define DECODE_PREFETCH_LINE(address) ((void)0)
#endif

float decode_max16(const float16 v) {
  const float8 a = fmax(v.lo, v.hi);
  const float4 b = fmax(a.lo, a.hi);
  const float2 c = fmax(b.lo, b.hi);
  return fmax(c.x, c.y);
}

float decode_sum16(const float16 v) {
  const float8 a = v.lo + v.hi;
  const float4 b = a.lo + a.hi;
  const float2 c = b.lo + b.hi;
  return c.x + c.y;
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void attention_decode_partial(
    __global float *partials, __global const float *queries, const int q_ld, const int n, const int first_keys,
    __global const KV_TYPE *k_cache, __global const KV_TYPE *v_cache, const int kv_dim, const int split_keys,
    const int splits, const int heads, const int kv_heads, const float scale) {
  const int split = get_global_id(0);
  const int query_index = get_global_id(1);
  if (split >= splits || query_index >= n)
    return;
  const int group = heads / kv_heads;
  const int first = split * split_keys;
  const int last = min(first_keys + query_index, first + split_keys);
  __global const float *q = queries + (size_t)query_index * q_ld;
  partials += (size_t)query_index * heads * splits * (HEAD_DIM + 2);
  for (int head = 0; head < heads; head++) {
    __global float *state = partials + ((size_t)head * splits + split) * (HEAD_DIM + 2);
    state[0] = -INFINITY;
    state[1] = 0.0f;
    _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
      DECODE_CAT(vstore, DECODE_WIDTH)((decode_vector)(0.0f), i, state + 2);
  }
  const float16 key_index = (float16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int key0 = first; key0 < last; key0 += DECODE_TILE) {
    const int tile = min(DECODE_TILE, last - key0);
    const int16 inside = isless(key_index, (float16)((float)tile));
    const int next_tile = key0 + DECODE_TILE < last;
    for (int kv_head = 0; kv_head < kv_heads; kv_head++) {
      __global const KV_TYPE *k_tile = k_cache + (size_t)key0 * kv_dim + kv_head * HEAD_DIM;
      __global const KV_TYPE *v_tile = v_cache + (size_t)key0 * kv_dim + kv_head * HEAD_DIM;
      for (int pair = 0; pair < group; pair += 2) {
        // An odd group's last head is paired with itself: both copies
        // compute, and store, the same values.
        const int head_a = kv_head * group + pair, head_b = kv_head * group + min(pair + 1, group - 1);
        __global const float *query_a = q + head_a * HEAD_DIM, *query_b = q + head_b * HEAD_DIM;
        // scores (DECODE_TILE) = K_tile (DECODE_TILE x HEAD_DIM) x query (HEAD_DIM), for
        // every row of the tile: rows past its end repeat its last key and
        // are masked to -INFINITY below, so the loop has a fixed count.
        float score_a[DECODE_TILE], score_b[DECODE_TILE];
        for (int r = 0; r < DECODE_TILE; r++) {
          __global const KV_TYPE *k = k_tile + (size_t)min(r, tile - 1) * kv_dim;
          if (pair == 0 && next_tile) {
            // Never past the range's last key: the cache may end there.
            const size_t ahead = (size_t)min(DECODE_TILE + r, last - 1 - key0) * kv_dim;
            _Pragma("unroll") for (int line = 0; line < HEAD_DIM * (int)sizeof(KV_TYPE); line += 64) {
              DECODE_PREFETCH_LINE((__global const uchar *)(k_tile + ahead) + line);
              DECODE_PREFETCH_LINE((__global const uchar *)(v_tile + ahead) + line);
            }
          }
          decode_vector dot_a = (decode_vector)(0.0f), dot_b = (decode_vector)(0.0f);
          _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++) {
            const decode_vector key = DECODE_LOAD_KV(i, k);
            dot_a = fma(DECODE_LOAD_FLOAT(i, query_a), key, dot_a);
            dot_b = fma(DECODE_LOAD_FLOAT(i, query_b), key, dot_b);
          }
          score_a[r] = decode_sum(dot_a);
          score_b[r] = decode_sum(dot_b);
        }
        __global float *state_a = partials + ((size_t)head_a * splits + split) * (HEAD_DIM + 2);
        __global float *state_b = partials + ((size_t)head_b * splits + split) * (HEAD_DIM + 2);
        const float16 s_a = select((float16)(-INFINITY), vload16(0, score_a) * scale, inside);
        const float16 s_b = select((float16)(-INFINITY), vload16(0, score_b) * scale, inside);
        const float max_a = fmax(state_a[0], decode_max16(s_a)), max_b = fmax(state_b[0], decode_max16(s_b));
        const float correction_a = exp(state_a[0] - max_a), correction_b = exp(state_b[0] - max_b);
        const float16 p_a = exp(s_a - max_a), p_b = exp(s_b - max_b);
        const float sum_a = state_a[1] * correction_a + decode_sum16(p_a);
        const float sum_b = state_b[1] * correction_b + decode_sum16(p_b);
        float weight_a[DECODE_TILE], weight_b[DECODE_TILE];
        vstore16(p_a, 0, weight_a);
        vstore16(p_b, 0, weight_b);
        // accumulator (HEAD_DIM) = correction x accumulator + p (tile) x V_tile (tile x HEAD_DIM)
        decode_vector accumulator_a[DECODE_VECTORS], accumulator_b[DECODE_VECTORS];
        _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++) {
          accumulator_a[i] = DECODE_LOAD_FLOAT(i, state_a + 2) * correction_a;
          accumulator_b[i] = DECODE_LOAD_FLOAT(i, state_b + 2) * correction_b;
        }
        for (int r = 0; r < tile; r++) {
          __global const KV_TYPE *v = v_tile + (size_t)r * kv_dim;
          const decode_vector w_a = (decode_vector)(weight_a[r]), w_b = (decode_vector)(weight_b[r]);
          _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++) {
            const decode_vector value = DECODE_LOAD_KV(i, v);
            accumulator_a[i] = fma(w_a, value, accumulator_a[i]);
            accumulator_b[i] = fma(w_b, value, accumulator_b[i]);
          }
        }
        state_b[0] = max_b;
        state_b[1] = sum_b;
        _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
          DECODE_CAT(vstore, DECODE_WIDTH)(accumulator_b[i], i, state_b + 2);
        state_a[0] = max_a;
        state_a[1] = sum_a;
        _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
          DECODE_CAT(vstore, DECODE_WIDTH)(accumulator_a[i], i, state_a + 2);
      }
    }
  }
}
#elif ATTENTION_DECODE_ROWS == 2
// GPUs: a work-group of DECODE_LANES work-items (the host's
// attention_decode_lanes) per (range, head, query), each lane holding LANE_FLOATS
// of the head's query and accumulator. A key or value row is then one
// contiguous read by the whole group, and a lane needs a few registers where
// the form below, a work-item per (range, head) holding 2 x HEAD_DIM floats,
// took 255 registers and spilled on sm_90 (256 VGPRs and 7 KB of scratch on
// gfx1030), and filled a GPU with only splits x heads work-items
// (bench/RESULTS.md section 24). A tile's scores are summed across the
// lanes in local memory; every lane then forms the same weights.
#ifndef DECODE_LANES
#define DECODE_LANES (HEAD_DIM / 4)
#endif
#if HEAD_DIM % DECODE_LANES != 0
#error "DECODE_LANES must divide HEAD_DIM"
#endif
#define LANE_FLOATS (HEAD_DIM / DECODE_LANES)
#if KV_HALF
#define LANE_LOAD_KV(p, i) vload_half((i), (p))
#else
#define LANE_LOAD_KV(p, i) ((p)[i])
#endif
__kernel __attribute__((reqd_work_group_size(DECODE_LANES, 1, 1))) void attention_decode_partial(
    __global float *partials, __global const float *queries, const int q_ld, const int n, const int first_keys,
    __global const KV_TYPE *k_cache, __global const KV_TYPE *v_cache, const int kv_dim, const int split_keys,
    const int splits, const int heads, const int kv_heads, const float scale) {
  __local float dots[DECODE_TILE][DECODE_LANES + 1]; // + 1: lanes' columns in different banks
  __local float scores[DECODE_TILE];
  const int lane = get_local_id(0);
  const int split = get_group_id(0);
  const int head = get_global_id(1);
  const int query_index = get_global_id(2);
  // A whole group leaves together (split, head and query are the group's),
  // so no barrier below is skipped by part of a group.
  if (split >= splits || head >= heads || query_index >= n)
    return;
  const int kv_head = head / (heads / kv_heads);
  const int first = split * split_keys;
  const int last = min(first_keys + query_index, first + split_keys);
  __global const float *q = queries + (size_t)query_index * q_ld;
  const int slice = kv_head * HEAD_DIM + lane * LANE_FLOATS;
  float query[LANE_FLOATS], accumulator[LANE_FLOATS];
  for (int i = 0; i < LANE_FLOATS; i++) {
    query[i] = q[head * HEAD_DIM + lane * LANE_FLOATS + i] * scale;
    accumulator[i] = 0.0f;
  }
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int key0 = first; key0 < last; key0 += DECODE_TILE) {
    const int tile = min(DECODE_TILE, last - key0);
    for (int r = 0; r < tile; r++) {
      __global const KV_TYPE *k = k_cache + (size_t)(key0 + r) * kv_dim + slice;
      float dot = 0.0f;
      for (int i = 0; i < LANE_FLOATS; i++)
        dot = fma(query[i], LANE_LOAD_KV(k, i), dot);
      dots[r][lane] = dot;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lane; r < tile; r += DECODE_LANES) {
      float score = 0.0f;
      for (int l = 0; l < DECODE_LANES; l++)
        score += dots[r][l];
      scores[r] = score;
    }
    // Two barriers a tile suffice: past this one no lane reads dots again
    // before the next tile writes them, and the next tile writes scores
    // only past its first barrier, which every lane reaches after reading
    // these.
    barrier(CLK_LOCAL_MEM_FENCE);
    float tile_max = -INFINITY;
    for (int r = 0; r < tile; r++)
      tile_max = fmax(tile_max, scores[r]);
    const float new_max = fmax(running_max, tile_max);
    const float correction = exp(running_max - new_max);
    running_sum *= correction;
    for (int i = 0; i < LANE_FLOATS; i++)
      accumulator[i] *= correction;
    for (int r = 0; r < tile; r++) {
      __global const KV_TYPE *v = v_cache + (size_t)(key0 + r) * kv_dim + slice;
      const float p = exp(scores[r] - new_max);
      running_sum += p;
      for (int i = 0; i < LANE_FLOATS; i++)
        accumulator[i] = fma(p, LANE_LOAD_KV(v, i), accumulator[i]);
    }
    running_max = new_max;
  }
  __global float *out = partials + (((size_t)query_index * heads + head) * splits + split) * (HEAD_DIM + 2);
  if (lane == 0) {
    out[0] = running_max;
    out[1] = running_sum;
  }
  for (int i = 0; i < LANE_FLOATS; i++)
    out[2 + lane * LANE_FLOATS + i] = accumulator[i];
}
#else
// One work-item per (range, head, query) (global size splits x heads x n),
// the head's query and accumulators in registers.
__kernel void attention_decode_partial(__global float *partials, __global const float *queries, const int q_ld,
                                       const int n, const int first_keys, __global const KV_TYPE *k_cache,
                                       __global const KV_TYPE *v_cache, const int kv_dim, const int split_keys,
                                       const int splits, const int heads, const int kv_heads, const float scale) {
  const int split = get_global_id(0);
  const int head = get_global_id(1);
  const int query_index = get_global_id(2);
  if (split >= splits || head >= heads || query_index >= n)
    return;
  const int kv_head = head / (heads / kv_heads);
  const int first = split * split_keys;
  const int last = min(first_keys + query_index, first + split_keys);
  __global const float *q = queries + (size_t)query_index * q_ld;
  decode_vector query[DECODE_VECTORS], accumulator[DECODE_VECTORS];
  _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++) {
    query[i] = DECODE_LOAD_FLOAT(i, q + head * HEAD_DIM) * scale;
    accumulator[i] = (decode_vector)(0.0f);
  }
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int key0 = first; key0 < last; key0 += DECODE_TILE) {
    const int tile = min(DECODE_TILE, last - key0);
    float score[DECODE_TILE];
    float tile_max = -INFINITY;
    for (int r = 0; r < tile; r++) {
      __global const KV_TYPE *k = k_cache + (size_t)(key0 + r) * kv_dim + kv_head * HEAD_DIM;
      decode_vector dot = (decode_vector)(0.0f);
      _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
        dot = fma(query[i], DECODE_LOAD_KV(i, k), dot);
      score[r] = decode_sum(dot);
      tile_max = fmax(tile_max, score[r]);
    }
    const float new_max = fmax(running_max, tile_max);
    const float correction = exp(running_max - new_max);
    running_sum *= correction;
    _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
      accumulator[i] *= correction;
    for (int r = 0; r < tile; r++) {
      __global const KV_TYPE *v = v_cache + (size_t)(key0 + r) * kv_dim + kv_head * HEAD_DIM;
      const float p = exp(score[r] - new_max);
      running_sum += p;
      _Pragma("unroll") for (int i = 0; i < DECODE_VECTORS; i++)
        accumulator[i] = fma((decode_vector)(p), DECODE_LOAD_KV(i, v), accumulator[i]);
    }
    running_max = new_max;
  }
  __global float *out = partials + (((size_t)query_index * heads + head) * splits + split) * (HEAD_DIM + 2);
  out[0] = running_max;
  out[1] = running_sum;
  for (int i = 0; i < DECODE_VECTORS; i++)
    DECODE_CAT(vstore, DECODE_WIDTH)(accumulator[i], i, out + 2);
}
#endif

// out[query][head * HEAD_DIM + c] = sum over ranges of exp(max_s - M)
// acc_s[c] / sum over ranges of exp(max_s - M) sum_s, M the largest range
// max (finite: a query's first range holds key 0).
#if ATTENTION_DECODE_ROWS == 2
// GPUs: a work-item per (element, head, query), so neighbouring work-items
// read neighbouring floats of each state. A work-item per (head, query)
// holding the head's sum in registers took 154 registers and a 560-byte
// stack on sm_90 (158 VGPRs and 576 bytes of scratch on gfx1030).
__kernel void attention_decode_combine(__global float *out, __global const float *partials, const int splits,
                                       const int heads, const int n) {
  const int c = get_global_id(0);
  const int head = get_global_id(1);
  const int query_index = get_global_id(2);
  if (c >= HEAD_DIM || head >= heads || query_index >= n)
    return;
  __global const float *base = partials + ((size_t)query_index * heads + head) * splits * (HEAD_DIM + 2);
  float largest = -INFINITY;
  for (int s = 0; s < splits; s++)
    largest = fmax(largest, base[(size_t)s * (HEAD_DIM + 2)]);
  float value = 0.0f, sum = 0.0f;
  for (int s = 0; s < splits; s++) {
    __global const float *state = base + (size_t)s * (HEAD_DIM + 2);
    const float weight = exp(state[0] - largest);
    sum += weight * state[1];
    value = fma(weight, state[2 + c], value);
  }
  out[(size_t)query_index * heads * HEAD_DIM + head * HEAD_DIM + c] = value / sum;
}
#else
// CPUs: a work-item per (head, query), in vectors along HEAD_DIM (a
// work-item per element took half as long as the ranges themselves on
// PoCL).
__kernel void attention_decode_combine(__global float *out, __global const float *partials, const int splits,
                                       const int heads, const int n) {
  const int head = get_global_id(0);
  const int query_index = get_global_id(1);
  if (head >= heads || query_index >= n)
    return;
  __global const float *base = partials + ((size_t)query_index * heads + head) * splits * (HEAD_DIM + 2);
  out += (size_t)query_index * heads * HEAD_DIM;
  float largest = -INFINITY;
  for (int s = 0; s < splits; s++)
    largest = fmax(largest, base[(size_t)s * (HEAD_DIM + 2)]);
  decode_vector value[DECODE_VECTORS];
  for (int i = 0; i < DECODE_VECTORS; i++)
    value[i] = (decode_vector)(0.0f);
  float sum = 0.0f;
  for (int s = 0; s < splits; s++) {
    __global const float *state = base + (size_t)s * (HEAD_DIM + 2);
    const float weight = exp(state[0] - largest);
    sum += weight * state[1];
    for (int i = 0; i < DECODE_VECTORS; i++)
      value[i] = fma((decode_vector)(weight), DECODE_LOAD_FLOAT(i, state + 2), value[i]);
  }
  for (int i = 0; i < DECODE_VECTORS; i++)
    DECODE_CAT(vstore, DECODE_WIDTH)(value[i] / sum, i, out + head * HEAD_DIM);
}
#endif
