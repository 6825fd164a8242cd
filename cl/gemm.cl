// The nn.Linear product with a weight repacked once at load time:
//   out[out_offset + r * out_ld + c] = beta * out[...] + sum_j x[x_offset + r * x_ld + j] * W[c][j]
// for r < rows, c < n, j < k; W is n x k (out x in features) but is stored in
// the packed panel layout below, never row-major. beta == 0 never reads out,
// so an output buffer full of NaN or garbage stays harmless.
//
// Packed layout (src/packed_gemm.c writes it): column panels of GEMM_NR output
// features, panel p holding W[p * GEMM_NR + i][j] at element
//   (p * kp + j) * GEMM_NR + i,        i < GEMM_NR, j < kp,
// with n padded by zero rows to a multiple of GEMM_NR and k padded by zero
// columns to kp (kp = k in the CPU variant, k rounded up to GEMM_TILE_K in the
// GPU variant). Why panels: for one k, the GEMM_NR weights an output tile
// needs are one contiguous (cache line / coalesced) read, and a whole panel is
// a single stream through memory, where row-major W would cost a gather or a
// transpose per call (CLBlast's NT path copies W into a temporary every call).
// The zero padding lets every load be a full vector without bounds checks.
//
// Weight element type, fixed at compile time: WEIGHT_TYPE 0 fp32, 1 bf16 (raw
// ushort; widening is a 16-bit shift), 2 fp16 (vload_half). Arithmetic is
// always fp32: no half arithmetic and no cl_khr_fp16, which NVIDIA's OpenCL
// lacks; vload_half is core OpenCL 1.2 and half pointers are legal without it.

#ifndef WEIGHT_TYPE
#define WEIGHT_TYPE 0
#endif
// 0: CPU variant (one work-item sweeps a block of rows of one panel), 1: GPU
// variant (work-groups sharing tiles in local memory).
#ifndef GEMM_VARIANT
#define GEMM_VARIANT 0
#endif
// Panel width: output features per panel. In the CPU variant a multiple of 16
// (float16 accumulators: 32 = two AVX-512 registers per row); in the GPU
// variant the work-group's column tile.
#ifndef GEMM_NR
#define GEMM_NR 32
#endif
// CPU: rows per register tile. 8 rows x 2 float16 = 16 accumulators, plus 2
// weight vectors and a broadcast, fit AVX-512's 32 registers with no spills.
#ifndef GEMM_MR
#define GEMM_MR 8
#endif
// CPU: rows one work-item sweeps over its panel. Large, so the panel (k x 32
// weights: 128 KiB at k = 1024) is read from memory once and then reused from
// L2 by every register tile, while the row block of x stays in L2/L3 too.
#ifndef GEMM_ROW_BLOCK
#define GEMM_ROW_BLOCK 128
#endif
// CPU: k values of a bf16/fp16 panel converted to fp32 into local memory per
// slice, so the conversion happens once per row block instead of once per
// register tile (0: convert in the inner loop). The host passes 0 for fp32
// weights, where staging measured slower; the kernel would accept it. Slices
// accumulate into out: beta applies to the first one only.
#ifndef GEMM_LOCAL_K
#if WEIGHT_TYPE == 0
#define GEMM_LOCAL_K 0
#else
#define GEMM_LOCAL_K 256
#endif
#endif
// CPU, fp32 panels: k values per slice (0: all of k in one pass). With a
// long k a panel (k x 32 floats: 1.5 MiB at k 12288) no longer stays in L2
// while a work-item's register tiles sweep it, so the row block is swept
// once per slice of it, each slice's sums added into out (beta applies to
// the first). bf16/fp16 panels slice by GEMM_LOCAL_K instead.
#ifndef GEMM_K_SLICE
#define GEMM_K_SLICE 0
#endif
// CPU: how many k ahead a register tile prefetches the panel it reads from
// global memory (0: none). A tile streams its panel (k x GEMM_NR weights:
// 128 KiB at k 1024, more than L1) from L2 once per tile while its rows of
// x come from their own streams, and the hardware prefetchers did not keep
// ahead of the panel. __builtin_prefetch is Clang's (PoCL); a SPIR target's
// consumer (Oclgrind, which stops at the intrinsic) gets OpenCL's own
// prefetch of the same line; other compilers leave the loop as it was.
#if defined(__SPIR__)
#define PREFETCH_LINE(address) prefetch((__global const uchar *)(address), 1)
#elif defined(__clang__)
#define PREFETCH_LINE(address) __builtin_prefetch(address)
#endif
#ifndef GEMM_PREFETCH
#define GEMM_PREFETCH 0
#endif
#if GEMM_PREFETCH > 0 && defined(PREFETCH_LINE)
#define PREFETCH_PANEL(PANEL, j)                                                      \
  _Pragma("unroll") for (int v = 0; v < NV; v++) PREFETCH_LINE((PANEL) + ((j) + GEMM_PREFETCH) * GEMM_NR + v * 16)
#else
#define PREFETCH_PANEL(PANEL, j) ((void)0)
#endif
// GPU: rows per work-group tile, k per local-memory step (also the packed k
// padding), outputs per work-item in rows and columns. The work-group is
// (GEMM_NR / GEMM_ITEM_N) x (GEMM_TILE_M / GEMM_ITEM_M); the host's choice for
// NVIDIA and AMD, GEMM_NR = 64, makes it 16 x 16 = 256, a multiple of both the
// 32-wide warp and the 64-wide wavefront (8 x 16 = 128 with these defaults).
#ifndef GEMM_TILE_M
#define GEMM_TILE_M 64
#endif
#ifndef GEMM_TILE_K
#define GEMM_TILE_K 16
#endif
#ifndef GEMM_ITEM_M
#define GEMM_ITEM_M 4
#endif
#ifndef GEMM_ITEM_N
#define GEMM_ITEM_N 4
#endif

#if WEIGHT_TYPE == 0
#define WEIGHT __global const float
#define LOAD_W(p, i) ((p)[i])
#define LOAD_W16(p) vload16(0, (p))
#elif WEIGHT_TYPE == 1
#define WEIGHT __global const ushort
#define LOAD_W(p, i) as_float((uint)(p)[i] << 16)
#define LOAD_W16(p) as_float16(convert_uint16(vload16(0, (p))) << 16)
#elif WEIGHT_TYPE == 2
#define WEIGHT __global const half
#define LOAD_W(p, i) vload_half((i), (p))
#define LOAD_W16(p) vload_half16(0, (p))
#else
#error "WEIGHT_TYPE must be 0 (fp32), 1 (bf16) or 2 (fp16)"
#endif

// Packs a matrix that changes every call (attention's K and V^T, the TTT
// update's eta V^T, a row-major fast weight for its apply) on the device,
// from float packed_offset of `packed` on: element (row, j) of S (n x k) is source[offset + row * row_stride +
// j * column_stride], of WEIGHT_TYPE (fp32, or fp16 for a half KV cache),
// times scale, into fp32 panels of the layout above, padding zeroed.
// A work-item writes one panel row (GEMM_NR contiguous floats): for V^T the
// reads are contiguous too, for K neighbouring work-items (j, j + 1) read
// the same source lines.
__kernel void pack_panels(__global float *packed, const ulong packed_offset, WEIGHT *source, const ulong offset,
                          const int row_stride, const int column_stride, const int n, const int k,
                          const int k_padded, const float scale) {
  const int j = get_global_id(0);
  const int panel = get_global_id(1);
  if (j >= k_padded)
    return;
  __global float *out = packed + packed_offset + ((size_t)panel * k_padded + j) * GEMM_NR;
  const int row0 = panel * GEMM_NR;
  for (int lane = 0; lane < GEMM_NR; lane++) {
    const int row = row0 + lane;
    out[lane] = row < n && j < k
                    ? scale * LOAD_W(source, offset + (size_t)row * row_stride + (size_t)j * column_stride)
                    : 0.0f;
  }
}

#if GEMM_VARIANT == 0

#if GEMM_NR % 16 != 0
#error "the CPU variant needs GEMM_NR to be a multiple of 16"
#endif
#define NV (GEMM_NR / 16)

// Writes one register tile: rows below `valid` of it, `columns` of the panel
// (fewer than GEMM_NR only in the last panel of a ragged n).
void store_tile(__global float *out, const int out_ld, const int valid, const int columns, const float beta,
                const float16 *acc) {
#pragma unroll
  for (int r = 0; r < GEMM_MR; r++) {
    if (r < valid) {
      __global float *o = out + (size_t)r * out_ld;
      if (columns == GEMM_NR) {
#pragma unroll
        for (int v = 0; v < NV; v++) {
          float16 value = acc[r * NV + v];
          if (beta != 0.0f)
            value = fma((float16)beta, vload16(0, o + v * 16), value);
          vstore16(value, 0, o + v * 16);
        }
      } else {
        float spill[GEMM_NR];
#pragma unroll
        for (int v = 0; v < NV; v++)
          vstore16(acc[r * NV + v], v, spill);
        for (int c = 0; c < columns; c++)
          o[c] = beta != 0.0f ? fma(beta, o[c], spill[c]) : spill[c];
      }
    }
  }
}

// The register tile: MR rows x NR columns over kc values of k, row r of x
// read from the caller's xr[r], X_STEP floats per k (1 for x rows in place,
// GEMM_MR for x packed in groups). Rows past `valid` repeat the last valid
// row, so the loop has no row conditions; their results are never stored. A
// macro, so that the same body reads the panel from global memory (any
// WEIGHT_TYPE; PREFETCH is PREFETCH_PANEL there, GEMM_PREFETCH k ahead) or
// from the fp32 copy in local memory (NO_PREFETCH).
#define NO_PREFETCH(PANEL, j) ((void)0)
#define GEMM_TILE(PANEL, LOAD16, X_STEP, KC, PREFETCH)                               \
  float16 acc[GEMM_MR * NV];                                                         \
  _Pragma("unroll") for (int r = 0; r < GEMM_MR; r++)                                \
    _Pragma("unroll") for (int v = 0; v < NV; v++) acc[r * NV + v] = (float16)(0.0f); \
  for (int j = 0; j < (KC); j++) {                                                   \
    float16 wv[NV];                                                                  \
    _Pragma("unroll") for (int v = 0; v < NV; v++) wv[v] = LOAD16((PANEL) + j * GEMM_NR + v * 16); \
    PREFETCH(PANEL, j);                                                              \
    _Pragma("unroll") for (int r = 0; r < GEMM_MR; r++) {                            \
      const float16 xv = (float16)(xr[r][(size_t)j * (X_STEP)]);                     \
      _Pragma("unroll") for (int v = 0; v < NV; v++) acc[r * NV + v] = fma(xv, wv[v], acc[r * NV + v]); \
    }                                                                                \
  }

// The tile's rows of x, in place: x_ld floats apart from x.
#define X_ROWS_IN_PLACE(X)                                                           \
  __global const float *xr[GEMM_MR];                                                 \
  _Pragma("unroll") for (int r = 0; r < GEMM_MR; r++) xr[r] = (X) + (size_t)min(r, valid - 1) * x_ld;

#define LOAD_LOCAL16(p) vload16(0, (p))

// One work-item per (panel, block of GEMM_ROW_BLOCK rows); a work-group of one,
// so PoCL runs each work-item as straight-line vector code on one core with no
// work-item loop around it, and the two dimensions spread over all cores.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void packed_gemm(__global float *out, const ulong out_offset, const int out_ld,
                 __global const float *x, const ulong x_offset, const int x_ld, WEIGHT *w,
                 const ulong w_offset, const int rows, const int n, const int k, const float beta) {
  const int panel = get_global_id(0);
  const int first = get_global_id(1) * GEMM_ROW_BLOCK;
  const int n0 = panel * GEMM_NR;
  if (n0 >= n || first >= rows)
    return;
  const int last = min(rows, first + GEMM_ROW_BLOCK);
  const int columns = min(GEMM_NR, n - n0);
  WEIGHT *wp = w + w_offset + (size_t)panel * k * GEMM_NR;
#if GEMM_LOCAL_K > 0
  __local float converted[GEMM_LOCAL_K * GEMM_NR];
  for (int k0 = 0; k0 < k; k0 += GEMM_LOCAL_K) {
    const int kc = min(GEMM_LOCAL_K, k - k0);
    for (int i = 0; i < kc * NV; i++)
      vstore16(LOAD_W16(wp + (size_t)k0 * GEMM_NR + i * 16), i, converted);
    const float slice_beta = k0 == 0 ? beta : 1.0f;
    for (int row = first; row < last; row += GEMM_MR) {
      const int valid = min(GEMM_MR, last - row);
      X_ROWS_IN_PLACE(x + x_offset + (size_t)row * x_ld + k0)
      GEMM_TILE(converted, LOAD_LOCAL16, 1, kc, NO_PREFETCH)
      store_tile(out + out_offset + (size_t)row * out_ld + n0, out_ld, valid, columns, slice_beta, acc);
    }
  }
#else
  const int slice = GEMM_K_SLICE > 0 ? GEMM_K_SLICE : k;
  for (int k0 = 0; k0 < k; k0 += slice) {
    const int kc = min(slice, k - k0);
    const float slice_beta = k0 == 0 ? beta : 1.0f;
    for (int row = first; row < last; row += GEMM_MR) {
      const int valid = min(GEMM_MR, last - row);
      X_ROWS_IN_PLACE(x + x_offset + (size_t)row * x_ld + k0)
      GEMM_TILE(wp + (size_t)k0 * GEMM_NR, LOAD_W16, 1, kc, PREFETCH_PANEL)
      store_tile(out + out_offset + (size_t)row * out_ld + n0, out_ld, valid, columns, slice_beta, acc);
    }
  }
#endif
}

#if WEIGHT_TYPE == 0
// The TTT update of a fast weight kept in these panels (src/ttt.c):
//   W[i][j] += sum_t eta V[t][i] h[t][j]   for i < d, j < f, t < c.
// Panel p of W (d x f, k = f unpadded in this variant) holds W[p * NR + i][j]
// at (p * f + j) * NR + i: it is an f x NR row-major matrix, and the update
// of that matrix is the product above turned around,
//   panel p += h^T (f x c) (eta V^T)_p^T,
// with h^T as the rows of x and eta V^T (d x c) as the weight, packed into
// these panels by pack_panels with eta folded in. h^T is packed by the
// kernel below in groups of GEMM_MR rows, element (j, t) at
//   j / GEMM_MR * GROUP_STRIDE + t * GEMM_MR + j % GEMM_MR,
// so that a register tile's rows of x are one dense stream: its GEMM_MR
// values of a t side by side (in place, h^T's rows would be f floats apart
// down the columns of h). The 16 floats past each group keep the groups
// from lying a multiple of 4 KiB apart (c * GEMM_MR floats is one at c 512
// and 1024), where the packing's writes to every group would share the
// same few L1 sets: it ran 3x slower that way.
#define GROUP_STRIDE ((size_t)c * GEMM_MR + 16)
// A work-item (of a group of one: straight-line code, no gathers across
// work-items) per PACK_TILE_ROWS_T values of t, reading each row of h once,
// in order, and writing its GEMM_MR values into every group's stream.
#define PACK_TILE_ROWS_T 16
#if GEMM_MR == 4 || GEMM_MR == 8 || GEMM_MR == 16
#define COPY_GROUP(out, source) CONCAT(vstore, GEMM_MR)(CONCAT(vload, GEMM_MR)(0, (source)), 0, (out))
#define CONCAT(a, b) CONCAT_(a, b)
#define CONCAT_(a, b) a##b
#else
#define COPY_GROUP(out, source)                                                      \
  for (int r = 0; r < GEMM_MR; r++)                                                  \
    (out)[r] = (source)[r]
#endif
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void pack_tile_rows(__global float *scratch, const ulong ht_offset, __global const float *h, const ulong h_offset,
                    const int h_ld, const int c, const int f) {
  const int t0 = get_global_id(0) * PACK_TILE_ROWS_T;
  const int t1 = min(c, t0 + PACK_TILE_ROWS_T);
  const int whole = f / GEMM_MR;
  for (int group = 0; group < whole; group++) {
    __global const float *source = h + h_offset + (size_t)t0 * h_ld + group * GEMM_MR;
    __global float *out = scratch + ht_offset + group * GROUP_STRIDE + (size_t)t0 * GEMM_MR;
    for (int t = t0; t < t1; t++, source += h_ld, out += GEMM_MR) {
      COPY_GROUP(out, source);
    }
  }
  if (whole * GEMM_MR < f)
    for (int t = t0; t < t1; t++) {
      __global const float *source = h + h_offset + (size_t)t * h_ld + whole * GEMM_MR;
      __global float *out = scratch + ht_offset + whole * GROUP_STRIDE + (size_t)t * GEMM_MR;
      for (int r = 0; r < GEMM_MR; r++)
        out[r] = whole * GEMM_MR + r < f ? source[r] : 0.0f;
    }
}

// Work-items as packed_gemm's, with W's panels for panels and f for rows.
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void packed_update(__global float *w, const ulong w_offset, __global const float *scratch, const ulong ht_offset,
                   const ulong vt_offset, const int d, const int f, const int c) {
  const int panel = get_global_id(0);
  const int first = get_global_id(1) * GEMM_ROW_BLOCK;
  if (panel * GEMM_NR >= d || first >= f)
    return;
  const int last = min(f, first + GEMM_ROW_BLOCK);
  __global const float *ht = scratch + ht_offset;
  __global const float *vp = scratch + vt_offset + (size_t)panel * c * GEMM_NR;
  __global float *wp = w + w_offset + (size_t)panel * f * GEMM_NR;
  for (int row = first; row < last; row += GEMM_MR) {
    const int valid = min(GEMM_MR, last - row);
    // One group when the row block is a multiple of GEMM_MR (AVX-512's
    // defaults, 256 and 8); otherwise a tile may straddle two groups and
    // each row finds its own.
    __global const float *xr[GEMM_MR];
#pragma unroll
    for (int r = 0; r < GEMM_MR; r++) {
      const int j = row + min(r, valid - 1);
      xr[r] = ht + (size_t)(j / GEMM_MR) * GROUP_STRIDE + j % GEMM_MR;
    }
    GEMM_TILE(vp, LOAD_W16, GEMM_MR, c, PREFETCH_PANEL)
    // Whole panel rows: padding lanes past d add eta V's zero padding.
    store_tile(wp + (size_t)row * GEMM_NR, GEMM_NR, valid, GEMM_NR, 1.0f, acc);
  }
}
#endif

// Decode's single row: the register tile would repeat that row GEMM_MR
// times and, for bf16/fp16, stage every slice in local memory first, which
// made one row compute-bound where it should stream the panel at memory
// speed. A work-item streams GEMV_PANELS neighbouring panels at once (more
// reads in flight per core). For fp32 panels each column still sums over j
// in the same order as GEMM_TILE, slices of GEMM_K_SLICE included (each
// slice stored into out as the GEMM stores it), so a row gives the same
// bits whichever kernel computes it.
#ifndef GEMV_PANELS
#define GEMV_PANELS 8
#endif
// Decode's one-row kernel: prefetch each panel this many k ahead (0: none).
// The loop has little arithmetic per byte, so the core's own window runs out
// before the memory system does; a prefetch retires at once and keeps more
// lines in flight (bf16 panels widened in the loop read 79-90% of the
// bandwidth fp32 panels do without it). Compilers without PREFETCH_LINE
// (above) leave the loop as it was.
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 0
#endif
#if GEMV_PREFETCH > 0 && defined(PREFETCH_LINE)
// The 64-byte line of panel row min(j + GEMV_PREFETCH, k - 1), from `bytes`
// bytes into the row: never past the panel's end.
#define PREFETCH_AHEAD(row0, j, bytes) \
  PREFETCH_LINE((__global const uchar *)(row0) + (size_t)min((j) + GEMV_PREFETCH, k - 1) * ROW_BYTES + (bytes))
#else
#define PREFETCH_AHEAD(row0, j, bytes) ((void)0)
#endif
#define ROW_BYTES (GEMM_NR * (int)sizeof(*w))
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void packed_gemv(__global float *out, const ulong out_offset, const int out_ld,
                 __global const float *x, const ulong x_offset, const int x_ld, WEIGHT *w,
                 const ulong w_offset, const int rows, const int n, const int k, const float beta) {
  const int first_panel = get_global_id(0) * GEMV_PANELS;
  if (first_panel * GEMM_NR >= n || rows < 1)
    return;
  // Panels past the last one repeat it (their results are not stored), so
  // the loop has no conditions.
  const int last_panel = (n - 1) / GEMM_NR;
  __global const float *xr = x + x_offset;
  float16 acc[GEMV_PANELS][NV];
  float final_beta = beta;
#if WEIGHT_TYPE == 1 && NV % 2 == 0
  // bf16 pairs read as one uint each: the low half is column 2i, the high
  // half column 2i + 1, so a shift and a mask widen 32 columns with no
  // conversion instruction (PoCL's convert_uint16 of a ushort16 measured
  // slower than the memory it reads). Even and odd columns accumulate
  // apart and are interleaved once at the end.
  __global const uint *pairs[GEMV_PANELS];
  float16 even[GEMV_PANELS][NV / 2], odd[GEMV_PANELS][NV / 2];
#pragma unroll
  for (int p = 0; p < GEMV_PANELS; p++) {
    pairs[p] = (__global const uint *)(w + w_offset + (size_t)min(first_panel + p, last_panel) * k * GEMM_NR);
#pragma unroll
    for (int v = 0; v < NV / 2; v++)
      even[p][v] = odd[p][v] = (float16)(0.0f);
  }
  for (int j = 0; j < k; j++) {
    const float16 xv = (float16)(xr[j]);
#pragma unroll
    for (int p = 0; p < GEMV_PANELS; p++)
#pragma unroll
      for (int v = 0; v < NV / 2; v++) {
        PREFETCH_AHEAD(pairs[p], j, v * 64);  // a uint16 is 64 bytes: a line each
        const uint16 bits = vload16(0, pairs[p] + j * (GEMM_NR / 2) + v * 16);
        even[p][v] = fma(xv, as_float16(bits << 16), even[p][v]);
        odd[p][v] = fma(xv, as_float16(bits & (uint16)(0xffff0000u)), odd[p][v]);
      }
  }
  const uint16 low = (uint16)(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const uint16 high = (uint16)(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
#pragma unroll
  for (int p = 0; p < GEMV_PANELS; p++)
#pragma unroll
    for (int v = 0; v < NV / 2; v++) {
      acc[p][2 * v] = shuffle2(even[p][v], odd[p][v], low);
      acc[p][2 * v + 1] = shuffle2(even[p][v], odd[p][v], high);
    }
#else
  WEIGHT *wp[GEMV_PANELS];
#pragma unroll
  for (int p = 0; p < GEMV_PANELS; p++)
    wp[p] = w + w_offset + (size_t)min(first_panel + p, last_panel) * k * GEMM_NR;
#if WEIGHT_TYPE == 0 && GEMM_K_SLICE > 0
  const int slice = GEMM_K_SLICE;
#else
  const int slice = k;
#endif
  for (int k0 = 0; k0 < k; k0 += slice) {
#pragma unroll
    for (int p = 0; p < GEMV_PANELS; p++)
#pragma unroll
      for (int v = 0; v < NV; v++)
        acc[p][v] = (float16)(0.0f);
    const int end = min(k, k0 + slice);
    for (int j = k0; j < end; j++) {
      const float16 xv = (float16)(xr[j]);
#pragma unroll
      for (int p = 0; p < GEMV_PANELS; p++)
#pragma unroll
        for (int v = 0; v < NV; v++) {
          if (v * 16 * (int)sizeof(*w) % 64 == 0)  // once per line of the row
            PREFETCH_AHEAD(wp[p], j, v * 16 * (int)sizeof(*w));
          acc[p][v] = fma(xv, LOAD_W16(wp[p] + j * GEMM_NR + v * 16), acc[p][v]);
        }
    }
    if (end < k) {
      const float slice_beta = k0 == 0 ? beta : 1.0f;
#pragma unroll
      for (int p = 0; p < GEMV_PANELS; p++) {
        const int n0 = (first_panel + p) * GEMM_NR;
        if (n0 < n)
          store_tile(out + out_offset + n0, out_ld, 1, min(GEMM_NR, n - n0), slice_beta, acc[p]);
      }
    } else if (k0 > 0) {
      final_beta = 1.0f;  // the last slice adds to what the earlier ones stored
    }
  }
#endif
#pragma unroll
  for (int p = 0; p < GEMV_PANELS; p++) {
    const int n0 = (first_panel + p) * GEMM_NR;
    if (n0 < n)
      store_tile(out + out_offset + n0, out_ld, 1, min(GEMM_NR, n - n0), final_beta, acc[p]);
  }
}

#elif GEMM_VARIANT == 1

#define WG_N (GEMM_NR / GEMM_ITEM_N)
#define WG_M (GEMM_TILE_M / GEMM_ITEM_M)
#define WGS (WG_N * WG_M)
#if GEMM_NR % GEMM_ITEM_N != 0 || GEMM_TILE_M % GEMM_ITEM_M != 0
#error "GPU tiles must be whole multiples of the per-work-item tile"
#endif
// Every work-item runs the same number of loads per step (no work-item skips
// a loop another runs, which PoCL 3.1 mishandles around barriers).
#if (GEMM_TILE_M * GEMM_TILE_K) % WGS != 0 || (GEMM_TILE_K * GEMM_NR) % WGS != 0
#error "the local tiles must be a whole number of loads per work-item"
#endif

// A work-group per (panel, GEMM_TILE_M rows). Each step stages a TILE_K-deep
// slice of x (transposed, so a work-item's rows are a column read) and of the
// panel (already k-major: one contiguous, fully coalesced block of
// TILE_K x NR weights) in local memory, widened to fp32 on the way. Work-item
// (tx, ty) owns rows ty + i * WG_M and columns tx + j * WG_N: neighbouring
// work-items read neighbouring local words and write neighbouring outputs.
__kernel __attribute__((reqd_work_group_size(WG_N, WG_M, 1)))
void packed_gemm(__global float *out, const ulong out_offset, const int out_ld,
                 __global const float *x, const ulong x_offset, const int x_ld, WEIGHT *w,
                 const ulong w_offset, const int rows, const int n, const int k, const float beta) {
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int lid = ty * WG_N + tx;
  const int panel = get_group_id(0);
  const int m0 = get_group_id(1) * GEMM_TILE_M;
  const int n0 = panel * GEMM_NR;
  const int kp = (k + GEMM_TILE_K - 1) / GEMM_TILE_K * GEMM_TILE_K;
  WEIGHT *wp = w + w_offset + (size_t)panel * kp * GEMM_NR;
  __global const float *xp = x + x_offset;
  // +1: the transposed store of x hits TILE_K different banks instead of one.
  __local float xs[GEMM_TILE_K][GEMM_TILE_M + 1];
  __local float ws[GEMM_TILE_K][GEMM_NR];
  float acc[GEMM_ITEM_M][GEMM_ITEM_N];
  for (int i = 0; i < GEMM_ITEM_M; i++)
    for (int j = 0; j < GEMM_ITEM_N; j++)
      acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < kp; k0 += GEMM_TILE_K) {
    for (int i = 0; i < GEMM_TILE_M * GEMM_TILE_K / WGS; i++) {
      const int e = lid + i * WGS;
      const int r = e / GEMM_TILE_K, c = e % GEMM_TILE_K;
      const int row = m0 + r, col = k0 + c;
      xs[c][r] = row < rows && col < k ? xp[(size_t)row * x_ld + col] : 0.0f;
    }
    WEIGHT *slice = wp + (size_t)k0 * GEMM_NR;
    for (int i = 0; i < GEMM_TILE_K * GEMM_NR / WGS; i++) {
      const int e = lid + i * WGS;
      ws[e / GEMM_NR][e % GEMM_NR] = LOAD_W(slice, e);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < GEMM_TILE_K; kk++) {
      float a[GEMM_ITEM_M], b[GEMM_ITEM_N];
      for (int i = 0; i < GEMM_ITEM_M; i++)
        a[i] = xs[kk][ty + i * WG_M];
      for (int j = 0; j < GEMM_ITEM_N; j++)
        b[j] = ws[kk][tx + j * WG_N];
      for (int i = 0; i < GEMM_ITEM_M; i++)
        for (int j = 0; j < GEMM_ITEM_N; j++)
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int i = 0; i < GEMM_ITEM_M; i++) {
    const int row = m0 + ty + i * WG_M;
    for (int j = 0; j < GEMM_ITEM_N; j++) {
      const int col = n0 + tx + j * WG_N;
      if (row < rows && col < n) {
        __global float *o = out + out_offset + (size_t)row * out_ld + col;
        *o = beta != 0.0f ? fma(beta, *o, acc[i][j]) : acc[i][j];
      }
    }
  }
}

#else
#error "GEMM_VARIANT must be 0 (CPU) or 1 (GPU)"
#endif
