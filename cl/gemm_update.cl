// The TTT fast-weight update (SPEC.md section 3): W += eta * V^T h, i.e.
//   W[w_offset + i * w_ld + j] += eta * sum_t V[v_offset + t * v_ld + i] * h[h_offset + t * h_ld + j]
// for i < d, j < f, t < c. W is d x f fp32; V (c x d) and h (c x f) are fresh
// every chunk, so there is nothing to pack ahead of time. Both operands are
// read "transposed" (the sum runs down their rows), which is what a register
// tile wants: for one t, the tile's f-columns of h are contiguous and its
// d-rows of V are contiguous too. The CPU variant either copies slices of both
// into local memory per work-item (gemm_update) or, by default, packs them
// once per call into the caller's scratch (gemm_update_packed, below).

// 0: CPU variant, 1: GPU variant (as in gemm.cl).
#ifndef UPDATE_VARIANT
#define UPDATE_VARIANT 0
#endif
// CPU: columns of W per work-item (a multiple of 16: float16 accumulators),
// rows per register tile (6 x 4 float16 = 24 accumulators of AVX-512's 32
// registers), and rows of W one work-item sweeps, reusing its staged slices
// of V and h for every register tile.
#ifndef UPDATE_NR
#define UPDATE_NR 64
#endif
#ifndef UPDATE_MR
#define UPDATE_MR 6
#endif
#ifndef UPDATE_ROW_BLOCK
#define UPDATE_ROW_BLOCK 96
#endif
// CPU: values of t staged in local memory per slice (0: read V and h in
// place); see the kernel. W takes each slice's contribution in turn.
#ifndef UPDATE_LOCAL_T
#define UPDATE_LOCAL_T 128
#endif
// CPU: column slices (of UPDATE_NR) one work-item does in turn, sharing one
// staged slice of V: every slice of columns needs all of the block's V, so
// more slices per work-item mean fewer copies of V read from memory.
#ifndef UPDATE_PANELS
#define UPDATE_PANELS 4
#endif
// GPU: the work-group's tile of W (rows x columns), the depth in t staged in
// local memory per step, and outputs per work-item; the group is
// (TILE_N / ITEM_N) x (TILE_M / ITEM_M) = 16 x 16 = 256 by default, a
// multiple of the 32-wide warp and the 64-wide wavefront.
#ifndef UPDATE_TILE_M
#define UPDATE_TILE_M 64
#endif
#ifndef UPDATE_TILE_N
#define UPDATE_TILE_N 64
#endif
#ifndef UPDATE_TILE_K
#define UPDATE_TILE_K 16
#endif
#ifndef UPDATE_ITEM_M
#define UPDATE_ITEM_M 4
#endif
#ifndef UPDATE_ITEM_N
#define UPDATE_ITEM_N 4
#endif

#if UPDATE_VARIANT == 0

#if UPDATE_NR % 16 != 0
#error "the CPU variant needs UPDATE_NR to be a multiple of 16"
#endif
#define NV (UPDATE_NR / 16)

// Sixteen floats of which only the first `count` exist (the last column slice
// of a ragged f); the rest read as zero and are never stored.
float16 load_partial16(__global const float *p, const int count) {
  float part[16];
  for (int i = 0; i < 16; i++)
    part[i] = i < count ? p[i] : 0.0f;
  return vload16(0, part);
}

#define LOAD_FULL16(p, count) vload16(0, (p))
#define LOAD_LOCAL16(p, count) vload16(0, (p))

// One register tile of W (UPDATE_MR rows, the work-item's UPDATE_NR columns)
// accumulated over TC values of t: the u-th 16 columns of h at
// hu[u] + t * H_STRIDE, V's value for tile row r at vr[r][t * V_STRIDE]. Rows
// past `valid` repeat the last valid one (no conditions in the loop) and are
// never stored. A macro, so the same body reads h and V in place, staged in
// local memory, or packed (hu and vr are the caller's, in their address
// space).
#define UPDATE_TILE(H_STRIDE, V_STRIDE, TC, LOAD16)                                    \
  for (int r = 0; r < UPDATE_MR; r++)                                                 \
    for (int u = 0; u < NV; u++) acc[r * NV + u] = (float16)(0.0f);                   \
  for (int t = 0; t < (TC); t++) {                                                    \
    float16 hv[NV];                                                                   \
    _Pragma("unroll") for (int u = 0; u < NV; u++)                                    \
      hv[u] = LOAD16(hu[u] + (size_t)t * (H_STRIDE), columns - u * 16);               \
    const size_t vt = (size_t)t * (V_STRIDE);                                         \
    _Pragma("unroll") for (int r = 0; r < UPDATE_MR; r++) {                           \
      const float16 vv = (float16)(vr[r][vt]);                                        \
      _Pragma("unroll") for (int u = 0; u < NV; u++) acc[r * NV + u] = fma(vv, hv[u], acc[r * NV + u]); \
    }                                                                                 \
  }

// W[i0 + r][j0 + j] += eta * acc for the tile's valid rows and columns.
void store_update(__global float *o, const int w_ld, const int valid, const int columns, const float eta,
                  const float16 *acc) {
  for (int r = 0; r < valid; r++, o += w_ld) {
    if (columns == UPDATE_NR) {
      for (int u = 0; u < NV; u++)
        vstore16(fma((float16)eta, acc[r * NV + u], vload16(0, o + u * 16)), 0, o + u * 16);
    } else {
      float spill[UPDATE_NR];
      for (int u = 0; u < NV; u++)
        vstore16(acc[r * NV + u], u, spill);
      for (int j = 0; j < columns; j++)
        o[j] = fma(eta, spill[j], o[j]);
    }
  }
}

// One work-item per (UPDATE_PANELS slices of UPDATE_NR columns, block of
// UPDATE_ROW_BLOCK rows of W), a work-group of one: straight-line vector code
// per core, as gemm.cl's CPU variant.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm_update(__global float *w, const ulong w_offset, const int w_ld,
                 __global const float *v, const ulong v_offset, const int v_ld,
                 __global const float *h, const ulong h_offset, const int h_ld,
                 const int d, const int f, const int c, const float eta) {
  const int group0 = get_global_id(0) * UPDATE_NR * UPDATE_PANELS;
  const int first = get_global_id(1) * UPDATE_ROW_BLOCK;
  if (group0 >= f || first >= d)
    return;
  const int last = min(d, first + UPDATE_ROW_BLOCK);
  float16 acc[UPDATE_MR * NV];
#if UPDATE_LOCAL_T > 0
  // Slices of UPDATE_LOCAL_T values of t: the block's columns of V and each
  // panel's columns of h copied into contiguous local memory once, then read
  // by every register tile from there. In place, the rows of V and h lie d
  // and f floats apart (4 KiB and 12 KiB at the 0.6B shape): every t maps to
  // the same L1 sets and the hardware prefetchers do not follow such strides.
  __local float hs[UPDATE_LOCAL_T * UPDATE_NR];
  __local float vs[UPDATE_LOCAL_T * UPDATE_ROW_BLOCK];
  const int block_rows = last - first;
  for (int t0 = 0; t0 < c; t0 += UPDATE_LOCAL_T) {
    const int tc = min(UPDATE_LOCAL_T, c - t0);
    for (int t = 0; t < tc; t++) {
      __global const float *vt = v + v_offset + (size_t)(t0 + t) * v_ld + first;
      __local float *vst = vs + t * UPDATE_ROW_BLOCK;
      int i = 0;
      for (; i + 16 <= block_rows; i += 16)
        vstore16(vload16(0, vt + i), 0, vst + i);
      for (; i < block_rows; i++)
        vst[i] = vt[i];
    }
    for (int p = 0; p < UPDATE_PANELS; p++) {
      const int j0 = group0 + p * UPDATE_NR;
      if (j0 >= f)
        break;
      const int columns = min(UPDATE_NR, f - j0);
      __global const float *hp = h + h_offset + j0;
      for (int t = 0; t < tc; t++) {
        __global const float *ht = hp + (size_t)(t0 + t) * h_ld;
        if (columns == UPDATE_NR)
          for (int u = 0; u < NV; u++)
            vstore16(vload16(0, ht + u * 16), t * NV + u, hs);
        else
          for (int u = 0; u < NV; u++)
            vstore16(load_partial16(ht + u * 16, columns - u * 16), t * NV + u, hs);
      }
      for (int i0 = first; i0 < last; i0 += UPDATE_MR) {
        const int valid = min(UPDATE_MR, last - i0);
        __local const float *vr[UPDATE_MR], *hu[NV];
        for (int r = 0; r < UPDATE_MR; r++)
          vr[r] = vs + (i0 - first) + min(r, valid - 1);
        for (int u = 0; u < NV; u++)
          hu[u] = hs + u * 16;
        UPDATE_TILE(UPDATE_NR, UPDATE_ROW_BLOCK, tc, LOAD_LOCAL16)
        store_update(w + w_offset + (size_t)i0 * w_ld + j0, w_ld, valid, columns, eta, acc);
      }
    }
  }
#else
  for (int p = 0; p < UPDATE_PANELS; p++) {
    const int j0 = group0 + p * UPDATE_NR;
    if (j0 >= f)
      break;
    const int columns = min(UPDATE_NR, f - j0);
    __global const float *hp = h + h_offset + j0;
    for (int i0 = first; i0 < last; i0 += UPDATE_MR) {
      const int valid = min(UPDATE_MR, last - i0);
      __global const float *vr[UPDATE_MR], *hu[NV];
      for (int r = 0; r < UPDATE_MR; r++)
        vr[r] = v + v_offset + i0 + min(r, valid - 1);
      for (int u = 0; u < NV; u++)
        hu[u] = hp + u * 16;
      if (columns == UPDATE_NR) {
        UPDATE_TILE(h_ld, v_ld, c, LOAD_FULL16)
      } else {
        UPDATE_TILE(h_ld, v_ld, c, load_partial16)
      }
      store_update(w + w_offset + (size_t)i0 * w_ld + j0, w_ld, valid, columns, eta, acc);
    }
  }
#endif
}

// The one-pass form (UPDATE_PACKED = 1, the host's choice on CPUs): V and h
// packed once per call by the two kernels below, into the caller's scratch,
// so that every register tile sums over all c values of t and adds into W
// once. The staged form above adds into W once per UPDATE_LOCAL_T values of
// t (8 read-modify-write sweeps of the 12 MiB W at the 0.6B shape and C
// 1024) and copies its slices again in every work-item (the row block's V
// for every column group, each column slice's h for every row block).
// Scratch layout (packed_gemm_update_scratch_bytes): h in panels of 16
// columns, element (t, j) at j / 16 * PANEL_STRIDE + t * 16 + j % 16, zero
// past f; then, from vt_offset, V transposed, element (t, i) at
// i * (c + 16) + t. Every stream a register tile reads is then contiguous in
// t. The extra 16 floats keep the streams from lying a multiple of 4 KiB
// apart (at c 512 and 1024 they would), where they would share the same few
// L1 sets: without them the kernel gained nothing at C 1024.
#define PANEL_STRIDE ((size_t)c * 16 + 16)
__kernel void pack_h_panels(__global float *scratch, __global const float *h, const ulong h_offset, const int h_ld,
                            const int c, const int f) {
  const int panel = get_global_id(0), t = get_global_id(1);
  if (t >= c || panel * 16 >= f)
    return;
  __global const float *source = h + h_offset + (size_t)t * h_ld + panel * 16;
  const int columns = min(16, f - panel * 16);
  vstore16(columns == 16 ? vload16(0, source) : load_partial16(source, columns), 0,
           scratch + (size_t)panel * PANEL_STRIDE + (size_t)t * 16);
}

__kernel void transpose_v(__global float *scratch, const ulong vt_offset, __global const float *v,
                          const ulong v_offset, const int v_ld, const int c, const int d) {
  const int i = get_global_id(0), t = get_global_id(1);
  if (i >= d || t >= c)
    return;
  scratch[vt_offset + (size_t)i * (c + 16) + t] = v[v_offset + (size_t)t * v_ld + i];
}

// Work-items as gemm_update's; the scratch as the two kernels above left it.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void gemm_update_packed(__global float *w, const ulong w_offset, const int w_ld, __global const float *scratch,
                        const ulong vt_offset, const int d, const int f, const int c, const float eta) {
  const int group0 = get_global_id(0) * UPDATE_NR * UPDATE_PANELS;
  const int first = get_global_id(1) * UPDATE_ROW_BLOCK;
  if (group0 >= f || first >= d)
    return;
  const int last = min(d, first + UPDATE_ROW_BLOCK);
  __global const float *vt = scratch + vt_offset;
  float16 acc[UPDATE_MR * NV];
  for (int p = 0; p < UPDATE_PANELS; p++) {
    const int j0 = group0 + p * UPDATE_NR;
    if (j0 >= f)
      break;
    const int columns = min(UPDATE_NR, f - j0);
    // The slice's panels of 16; in the last slice of a ragged f, vectors
    // past its last panel repeat that panel (no condition in the loop) and
    // are never stored.
    const int live = (columns + 15) / 16;
    __global const float *hu[NV];
    for (int u = 0; u < NV; u++)
      hu[u] = scratch + (size_t)(j0 / 16 + min(u, live - 1)) * PANEL_STRIDE;
    for (int i0 = first; i0 < last; i0 += UPDATE_MR) {
      const int valid = min(UPDATE_MR, last - i0);
      __global const float *vr[UPDATE_MR];
      for (int r = 0; r < UPDATE_MR; r++)
        vr[r] = vt + (size_t)min(i0 + r, last - 1) * (c + 16);
      UPDATE_TILE(16, 1, c, LOAD_FULL16)
      store_update(w + w_offset + (size_t)i0 * w_ld + j0, w_ld, valid, columns, eta, acc);
    }
  }
}

#elif UPDATE_VARIANT == 1

#define WG_N (UPDATE_TILE_N / UPDATE_ITEM_N)
#define WG_M (UPDATE_TILE_M / UPDATE_ITEM_M)
#define WGS (WG_N * WG_M)
#if UPDATE_TILE_N % UPDATE_ITEM_N != 0 || UPDATE_TILE_M % UPDATE_ITEM_M != 0
#error "GPU tiles must be whole multiples of the per-work-item tile"
#endif
// The same number of loads in every work-item (PoCL 3.1 mishandles loops
// some work-items of a group skip, around barriers).
#if (UPDATE_TILE_K * UPDATE_TILE_M) % WGS != 0 || (UPDATE_TILE_K * UPDATE_TILE_N) % WGS != 0
#error "the local tiles must be a whole number of loads per work-item"
#endif

// A work-group per TILE_M x TILE_N tile of W. Both operand slices are rows of
// V and h, so neighbouring work-items load neighbouring floats (coalesced)
// and store them untransposed in local memory.
__kernel __attribute__((reqd_work_group_size(WG_N, WG_M, 1)))
void gemm_update(__global float *w, const ulong w_offset, const int w_ld,
                 __global const float *v, const ulong v_offset, const int v_ld,
                 __global const float *h, const ulong h_offset, const int h_ld,
                 const int d, const int f, const int c, const float eta) {
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int lid = ty * WG_N + tx;
  const int n0 = get_group_id(0) * UPDATE_TILE_N;
  const int m0 = get_group_id(1) * UPDATE_TILE_M;
  __local float vs[UPDATE_TILE_K][UPDATE_TILE_M];
  __local float hs[UPDATE_TILE_K][UPDATE_TILE_N];
  float acc[UPDATE_ITEM_M][UPDATE_ITEM_N];
  for (int i = 0; i < UPDATE_ITEM_M; i++)
    for (int j = 0; j < UPDATE_ITEM_N; j++)
      acc[i][j] = 0.0f;
  for (int t0 = 0; t0 < c; t0 += UPDATE_TILE_K) {
    for (int i = 0; i < UPDATE_TILE_K * UPDATE_TILE_M / WGS; i++) {
      const int e = lid + i * WGS;
      const int t = t0 + e / UPDATE_TILE_M, row = m0 + e % UPDATE_TILE_M;
      vs[e / UPDATE_TILE_M][e % UPDATE_TILE_M] =
          t < c && row < d ? v[v_offset + (size_t)t * v_ld + row] : 0.0f;
    }
    for (int i = 0; i < UPDATE_TILE_K * UPDATE_TILE_N / WGS; i++) {
      const int e = lid + i * WGS;
      const int t = t0 + e / UPDATE_TILE_N, col = n0 + e % UPDATE_TILE_N;
      hs[e / UPDATE_TILE_N][e % UPDATE_TILE_N] =
          t < c && col < f ? h[h_offset + (size_t)t * h_ld + col] : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < UPDATE_TILE_K; kk++) {
      float a[UPDATE_ITEM_M], b[UPDATE_ITEM_N];
      for (int i = 0; i < UPDATE_ITEM_M; i++)
        a[i] = vs[kk][ty + i * WG_M];
      for (int j = 0; j < UPDATE_ITEM_N; j++)
        b[j] = hs[kk][tx + j * WG_N];
      for (int i = 0; i < UPDATE_ITEM_M; i++)
        for (int j = 0; j < UPDATE_ITEM_N; j++)
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < UPDATE_ITEM_M; i++) {
    const int row = m0 + ty + i * WG_M;
    for (int j = 0; j < UPDATE_ITEM_N; j++) {
      const int col = n0 + tx + j * WG_N;
      if (row < d && col < f) {
        __global float *o = w + w_offset + (size_t)row * w_ld + col;
        *o = fma(eta, acc[i][j], *o);
      }
    }
  }
}

#else
#error "UPDATE_VARIANT must be 0 (CPU) or 1 (GPU)"
#endif
