// Prefill attention for CPUs in one pass over register tiles: a work-item
// takes ATTENTION_TILE_ROWS queries of one head and walks the keys in blocks
// of ATTENTION_TILE_KEYS, as flash attention does, but each block's scores
// come from a register tile like our packed GEMM's (cl/gemm.cl): the keys of
// one kv head are packed first into panels [key block][HEAD_DIM][TILE_KEYS]
// (scaled by 1/sqrt(head_dim)), so one j of the dot products is TILE_KEYS/16
// vector loads, a broadcast per query and a vector FMA per (query, 16 keys).
// The probabilities then meet V, packed as contiguous float rows of the
// head, 16 x ATTENTION_TILE_VALUES dimensions per pass (see VALUE_VECTORS),
// while the running max, sum and output stay per query (online softmax).
// Scores never leave the work-item: the GEMM path's score matrix (heads x
// rows x context floats, written, softmaxed and read again) and its softmax
// pass are gone, and so is the causal upper triangle of each block, which
// the work-item never computes past its last query.
//
// HEAD_DIM and KV_HALF come with cl/attention.cl's options. The host uses
// these kernels only when HEAD_DIM is a multiple of 16; other head sizes
// build an empty attention_tiles and take the other paths.

#ifndef HEAD_DIM
#define HEAD_DIM 64
#endif
#ifndef KV_HALF
#define KV_HALF 0
#endif
#if KV_HALF
#define KV_TYPE half
#define KV_LOAD(p, i) vload_half((i), (p))
#define KV_LOAD16(p, v) vload_half16((v), (p))
#else
#define KV_TYPE float
#define KV_LOAD(p, i) ((p)[i])
#define KV_LOAD16(p, v) vload16((v), (p))
#endif

#ifndef ATTENTION_TILE_ROWS
#define ATTENTION_TILE_ROWS 6
#endif
#ifndef ATTENTION_TILE_KEYS
#define ATTENTION_TILE_KEYS 64
#endif
#ifndef ATTENTION_TILE_SHARE
#define ATTENTION_TILE_SHARE 2
#endif
#ifndef ATTENTION_TILE_VALUES
#define ATTENTION_TILE_VALUES 4
#endif
// CPU: how many rows ahead the two products prefetch what they read next:
// the key panel's rows (past a block's end, the next block's panel) and the
// value rows of the block. At 4096 tokens a kv head's packed K and V (4 MiB)
// come from L3, and the hardware prefetchers did not keep ahead of these
// short loops: 4 cut a prefill's attention time by 4-12%, prefetching only
// K or only V by nothing (bench/RESULTS.md section 18). A prefetch never
// faults, so the ones past the end of a buffer are harmless.
// __builtin_prefetch is Clang's (PoCL); a SPIR target's consumer (Oclgrind,
// which stops at the intrinsic) gets OpenCL's own prefetch of the same line;
// other compilers get no prefetch.
#if defined(__SPIR__)
#define PREFETCH_LINE(address) prefetch((__global const uchar *)(address), 1)
#elif defined(__clang__)
#define PREFETCH_LINE(address) __builtin_prefetch(address)
#endif
#ifndef ATTENTION_TILE_PREFETCH
#define ATTENTION_TILE_PREFETCH 0
#endif
#if ATTENTION_TILE_PREFETCH > 0 && defined(PREFETCH_LINE)
#define PREFETCH_AHEAD(address) PREFETCH_LINE(address)
#else
#define PREFETCH_AHEAD(address) ((void)0)
#endif
#if ATTENTION_TILE_KEYS % 16 != 0
#error "ATTENTION_TILE_KEYS must be a multiple of 16"
#endif
// A work-item's queries: ATTENTION_TILE_SHARE register tiles sharing each
// key block.
#define ATTENTION_TILE_QUERIES (ATTENTION_TILE_ROWS * ATTENTION_TILE_SHARE)
#define KEY_VECTORS (ATTENTION_TILE_KEYS / 16)

// K of one kv head, scaled, into key-block panels: element (key, j) at
// ((key / TILE_KEYS) * HEAD_DIM + j) * TILE_KEYS + key % TILE_KEYS. Keys
// past `keys` are zero (the attention kernel masks them; zero keeps them
// finite whatever the cache holds there). A work-group of one work-item per
// key block, as the tiles themselves run. From a half cache it reads each
// key's row 16 dimensions at a time as one vector (widened once) and stores
// them down 16 panel rows, which stay in L1 while it does; from a float
// cache it writes the panel row by row, each a gather of one dimension from
// the block's cache rows (in L1 too: 64 rows of 512 bytes at head_dim 128).
// In a 2048-token prefill (256 calls) the gather took 57-65 ms from a float
// cache and 116 from a half one, where it is scalar; the vector form 85-92
// and 54-62. Two earlier forms
// ran at 1.2 GB/s or less: a work-item per (key block, 16 dimensions) in
// groups PoCL chose, whose lanes scattered every store, and before it a
// work-item per panel row. Only the tiles use these panels, and only for
// head sizes that are multiples of 16.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void attention_tiles_pack_keys(__global float *packed, __global const KV_TYPE *k_cache, const int kv_dim,
                               const int column0, const int keys, const float scale) {
  const int block = get_global_id(0);
  const int first = block * ATTENTION_TILE_KEYS;
  const int count = min(ATTENTION_TILE_KEYS, keys - first);
  __global float *panel = packed + (size_t)block * HEAD_DIM * ATTENTION_TILE_KEYS;
  __global const KV_TYPE *rows = k_cache + (size_t)first * kv_dim + column0;
#if KV_HALF
  for (int c = 0; c < HEAD_DIM / 16; c++)
    for (int lane = 0; lane < ATTENTION_TILE_KEYS; lane++) {
      float values[16];
      vstore16(lane < count ? scale * KV_LOAD16(rows + (size_t)lane * kv_dim, c) : (float16)(0.0f), 0, values);
      __global float *column = panel + c * 16 * ATTENTION_TILE_KEYS + lane;
#pragma unroll
      for (int i = 0; i < 16; i++)
        column[i * ATTENTION_TILE_KEYS] = values[i];
    }
#else
  for (int j = 0; j < HEAD_DIM; j++)
    for (int lane = 0; lane < ATTENTION_TILE_KEYS; lane++)
      panel[j * ATTENTION_TILE_KEYS + lane] = lane < count ? scale * rows[(size_t)lane * kv_dim + j] : 0.0f;
#endif
}

// One kv head of a cache (K or V) as float rows of HEAD_DIM, keys 0 .. keys
// - 1, a work-item per row. For the tiles' V: the cache's rows lie kv_dim
// apart (4 KiB at 8 kv heads of 128 in fp32), so the keys of a block would
// all fall in one L1 set; packed they lie HEAD_DIM apart, and a half cache
// is widened once here instead of in the inner loop. CLBlast's products take
// a half cache's K and V from here too (src/attention.c).
__kernel void attention_pack_head_rows(__global float *packed, __global const KV_TYPE *cache, const int kv_dim,
                                       const int column0, const int keys) {
  const int key = get_global_id(0);
  if (key >= keys)
    return;
  __global const KV_TYPE *row = cache + (size_t)key * kv_dim + column0;
  __global float *out = packed + (size_t)key * HEAD_DIM;
#if HEAD_DIM % 16 == 0
  // 16 at a time: one element at a time, an 8192-token prefill's packing
  // took 486-513 ms; so, 250-278 (bench/RESULTS.md section 18).
  for (int c = 0; c < HEAD_DIM / 16; c++)
    vstore16(KV_LOAD16(row, c), c, out);
#else
  for (int j = 0; j < HEAD_DIM; j++)
    out[j] = KV_LOAD(row, j);
#endif
}

#if HEAD_DIM % 16 == 0

// Dimensions of the output per pass over a block's keys, in float16
// vectors: ATTENTION_TILE_VALUES, cut to the largest of 8, 4, 2, 1 that
// divides the head. Each query of the tile holds that many accumulators, so
// the right count depends on the registers: 6 x 4 float16 = 24 of AVX-512's
// 32, where on AVX2 (16 registers, a float16 is two) the same 4 x 4 of the
// AVX2 tile held 32 and spilled.
#if ATTENTION_TILE_VALUES >= 8 && HEAD_DIM % 128 == 0
#define VALUE_VECTORS 8
#elif ATTENTION_TILE_VALUES >= 4 && HEAD_DIM % 64 == 0
#define VALUE_VECTORS 4
#elif ATTENTION_TILE_VALUES >= 2 && HEAD_DIM % 32 == 0
#define VALUE_VECTORS 2
#else
#define VALUE_VECTORS 1
#endif

// Largest and sum of a row's block of scores.
float block_max(const float16 *s) {
  float16 m = s[0];
#pragma unroll
  for (int v = 1; v < KEY_VECTORS; v++)
    m = fmax(m, s[v]);
  const float8 m8 = fmax(m.lo, m.hi);
  const float4 m4 = fmax(m8.lo, m8.hi);
  const float2 m2 = fmax(m4.lo, m4.hi);
  return fmax(m2.lo, m2.hi);
}

float block_sum(const float16 *p) {
  float16 t = p[0];
#pragma unroll
  for (int v = 1; v < KEY_VECTORS; v++)
    t += p[v];
  const float8 t8 = t.lo + t.hi;
  const float4 t4 = t8.lo + t8.hi;
  const float2 t2 = t4.lo + t4.hi;
  return t2.lo + t2.hi;
}

//   out: n x (heads * HEAD_DIM); q: n rows of stride q_ld (query heads
//   first); packed_keys, packed_values: kv head `kv_head`'s K and V as
//   above. Query i sits at position0 + i and sees keys 0 .. position0 + i.
//   A work-item takes ATTENTION_TILE_SHARE register tiles of
//   ATTENTION_TILE_ROWS queries of one head, which take each key block in
//   turn while it is in L1/L2: at long contexts a kv head's K and V (4 MiB
//   at 4096 keys) come from L3, and every tile sharing a block divides that
//   traffic. The launch covers ceil(n / TILE_QUERIES) x group work-items,
//   group query heads per kv head. The batch's V rows must be finite: a
//   masked key of a block is multiplied by a zero probability, not skipped
//   (the host checks, as for the GEMM path).
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void attention_tiles(__global float *out, __global const float *q, const int q_ld,
                     __global const float *packed_keys, __global const float *packed_values, const int kv_head,
                     const int n, const int position0, const int heads, const int group) {
  const int first = get_global_id(0) * ATTENTION_TILE_QUERIES;
  const int head = kv_head * group + (int)get_global_id(1);
  if (first >= n)
    return;
  const int queries = min(ATTENTION_TILE_QUERIES, n - first);
  const int key_end = position0 + first + queries;  // the last query sees keys 0 .. key_end - 1

  float running_max[ATTENTION_TILE_QUERIES], running_sum[ATTENTION_TILE_QUERIES];
  float correction[ATTENTION_TILE_ROWS];
  float o[ATTENTION_TILE_QUERIES * HEAD_DIM];
  float p[ATTENTION_TILE_ROWS * ATTENTION_TILE_KEYS];
  for (int r = 0; r < ATTENTION_TILE_QUERIES; r++) {
    running_max[r] = -INFINITY;
    running_sum[r] = 0.0f;
  }
  for (int c = 0; c < ATTENTION_TILE_QUERIES * HEAD_DIM; c++)
    o[c] = 0.0f;

  for (int key0 = 0; key0 < key_end; key0 += ATTENTION_TILE_KEYS) {
    __global const float *panel = packed_keys + (size_t)(key0 / ATTENTION_TILE_KEYS) * HEAD_DIM * ATTENTION_TILE_KEYS;
    __global const float *v_block = packed_values + (size_t)key0 * HEAD_DIM;
    for (int tile = 0; tile * ATTENTION_TILE_ROWS < queries; tile++) {
      const int tile_first = first + tile * ATTENTION_TILE_ROWS;  // its first query in the batch
      const int valid = min(ATTENTION_TILE_ROWS, queries - tile * ATTENTION_TILE_ROWS);
      const int first_position = position0 + tile_first;
      const int tile_key_end = first_position + valid;
      if (key0 >= tile_key_end)
        continue;  // the block lies past every query of this tile
      float *tile_max = running_max + tile * ATTENTION_TILE_ROWS;
      float *tile_sum = running_sum + tile * ATTENTION_TILE_ROWS;
      float *tile_o = o + tile * ATTENTION_TILE_ROWS * HEAD_DIM;
      // Rows past `valid` repeat the last one, so the tile has no row
      // conditions; they are never stored.
      __global const float *q_rows[ATTENTION_TILE_ROWS];
#pragma unroll
      for (int r = 0; r < ATTENTION_TILE_ROWS; r++)
        q_rows[r] = q + (size_t)(tile_first + min(r, valid - 1)) * q_ld + head * HEAD_DIM;

      // s (TILE_ROWS x TILE_KEYS) = q_rows (TILE_ROWS x HEAD_DIM) (scale K_block)^T
      float16 s[ATTENTION_TILE_ROWS * KEY_VECTORS];
#pragma unroll
      for (int i = 0; i < ATTENTION_TILE_ROWS * KEY_VECTORS; i++)
        s[i] = (float16)(0.0f);
      for (int j = 0; j < HEAD_DIM; j++) {
        float16 k[KEY_VECTORS];
#pragma unroll
        for (int v = 0; v < KEY_VECTORS; v++)
          k[v] = vload16(0, panel + j * ATTENTION_TILE_KEYS + v * 16);
#pragma unroll
        for (int v = 0; v < KEY_VECTORS; v++)
          PREFETCH_AHEAD(panel + (j + ATTENTION_TILE_PREFETCH) * ATTENTION_TILE_KEYS + v * 16);
#pragma unroll
        for (int r = 0; r < ATTENTION_TILE_ROWS; r++) {
          const float16 x = (float16)(q_rows[r][j]);
#pragma unroll
          for (int v = 0; v < KEY_VECTORS; v++)
            s[r * KEY_VECTORS + v] = fma(x, k[v], s[r * KEY_VECTORS + v]);
        }
      }
      // The causal mask, only where a key of the block is past some row's
      // position (the diagonal block, which also holds the padding keys).
      if (key0 + ATTENTION_TILE_KEYS > first_position + 1) {
        const int16 lanes = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma unroll
        for (int r = 0; r < ATTENTION_TILE_ROWS; r++)
#pragma unroll
          for (int v = 0; v < KEY_VECTORS; v++) {
            const int16 key = (int16)(key0 + v * 16) + lanes;
            s[r * KEY_VECTORS + v] = select(s[r * KEY_VECTORS + v], (float16)(-INFINITY),
                                            key > (int16)(first_position + r));
          }
      }
      // Online softmax: every row sees key 0 in the first block, so its
      // running max is finite from there on, and a row whose keys all lie
      // past it in this block only rescales by exp(0).
#pragma unroll
      for (int r = 0; r < ATTENTION_TILE_ROWS; r++) {
        const float new_max = fmax(tile_max[r], block_max(&s[r * KEY_VECTORS]));
        correction[r] = exp(tile_max[r] - new_max);
        float16 e[KEY_VECTORS];
#pragma unroll
        for (int v = 0; v < KEY_VECTORS; v++) {
          e[v] = exp(s[r * KEY_VECTORS + v] - (float16)(new_max));
          vstore16(e[v], v, p + r * ATTENTION_TILE_KEYS);
        }
        tile_sum[r] = tile_sum[r] * correction[r] + block_sum(e);
        tile_max[r] = new_max;
      }
      // o (TILE_ROWS x HEAD_DIM) = correction o + p (TILE_ROWS x keys) V_block (keys x HEAD_DIM),
      // 16 x VALUE_VECTORS dimensions per pass; V rows past the tile's last
      // key are never read.
      const int keys = min(ATTENTION_TILE_KEYS, tile_key_end - key0);
      for (int c = 0; c < HEAD_DIM / 16; c += VALUE_VECTORS) {
        float16 acc[ATTENTION_TILE_ROWS * VALUE_VECTORS];
#pragma unroll
        for (int r = 0; r < ATTENTION_TILE_ROWS; r++)
#pragma unroll
          for (int v = 0; v < VALUE_VECTORS; v++)
            acc[r * VALUE_VECTORS + v] = vload16(c + v, tile_o + r * HEAD_DIM) * (float16)(correction[r]);
        for (int j = 0; j < keys; j++) {
          float16 value[VALUE_VECTORS];
#pragma unroll
          for (int v = 0; v < VALUE_VECTORS; v++)
            value[v] = vload16(c + v, v_block + (size_t)j * HEAD_DIM);
#pragma unroll
          for (int v = 0; v < VALUE_VECTORS; v++)
            PREFETCH_AHEAD(v_block + (size_t)(j + ATTENTION_TILE_PREFETCH) * HEAD_DIM + (c + v) * 16);
#pragma unroll
          for (int r = 0; r < ATTENTION_TILE_ROWS; r++) {
            const float16 weight = (float16)(p[r * ATTENTION_TILE_KEYS + j]);
#pragma unroll
            for (int v = 0; v < VALUE_VECTORS; v++)
              acc[r * VALUE_VECTORS + v] = fma(weight, value[v], acc[r * VALUE_VECTORS + v]);
          }
        }
#pragma unroll
        for (int r = 0; r < ATTENTION_TILE_ROWS; r++)
#pragma unroll
          for (int v = 0; v < VALUE_VECTORS; v++)
            vstore16(acc[r * VALUE_VECTORS + v], c + v, tile_o + r * HEAD_DIM);
      }
    }
  }
  const size_t out_ld = (size_t)heads * HEAD_DIM;
  for (int r = 0; r < queries; r++) {
    const float inverse_sum = 1.0f / running_sum[r];
    __global float *row = out + (size_t)(first + r) * out_ld + head * HEAD_DIM;
    for (int c = 0; c < HEAD_DIM / 16; c++)
      vstore16(vload16(c, o + r * HEAD_DIM) * (float16)(inverse_sum), c, row);
  }
}

#else

// No tiles of 16 dimensions: the host never launches this.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void attention_tiles(__global float *out, __global const float *q, const int q_ld,
                     __global const float *packed_keys, __global const float *packed_values, const int kv_head,
                     const int n, const int position0, const int heads, const int group) {}

#endif
