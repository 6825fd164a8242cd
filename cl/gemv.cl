// Matrix-vector products for decode (one token: y = W x, W stored as
// nn.Linear's out x in). At batch 1 the work is reading W once, so what
// matters is the memory access pattern, and it differs by device:
//  - GEMV_ROW_PER_ITEM 1 (CPUs): each work-item owns a row and streams it with
//    vector loads; PoCL runs work-items as SIMD lanes over rows, each lane
//    reading contiguous memory.
//  - GEMV_ROW_PER_ITEM 0 (GPUs): a work-group of GEMV_WGS owns a row, and
//    neighbouring work-items read neighbouring floats (coalesced), reduced in
//    local memory.
// CLBlast's SGEMV/SGEMM reached only 0.5-1 GB/s here on PoCL against 14 GB/s
// for a copy, which is why these exist.

#ifndef GEMV_WGS
#define GEMV_WGS 64
#endif
#ifndef GEMV_ROW_PER_ITEM
#define GEMV_ROW_PER_ITEM 0
#endif

#if GEMV_ROW_PER_ITEM

//   y[y_offset + row] = beta * y[...] + sum_c W[W_offset + row * ld + c] * x[x_offset + c]
__kernel void gemv(__global float *y, const int y_offset, __global const float *x, const int x_offset,
                   __global const float *W, const int W_offset, const int ld, const int out,
                   const int in, const float beta) {
  const int row = get_global_id(0);
  if (row >= out)
    return;
  __global const float *w = W + W_offset + (size_t)row * ld;
  __global const float *v = x + x_offset;
  float4 sum4 = (float4)(0.0f);
  const int vectors = in / 4;
  for (int c = 0; c < vectors; c++)
    sum4 += vload4(c, w) * vload4(c, v);
  float sum = (sum4.x + sum4.y) + (sum4.z + sum4.w);
  for (int c = vectors * 4; c < in; c++)
    sum += w[c] * v[c];
  y[y_offset + row] = (beta != 0.0f ? beta * y[y_offset + row] : 0.0f) + sum;
}

#else

__kernel __attribute__((reqd_work_group_size(GEMV_WGS, 1, 1)))
void gemv(__global float *y, const int y_offset, __global const float *x, const int x_offset,
          __global const float *W, const int W_offset, const int ld, const int out, const int in,
          const float beta) {
  const int row = get_group_id(0);
  const int lane = get_local_id(0);
  __local float partial[GEMV_WGS];
  float sum = 0.0f;
  if (row < out) {
    __global const float *w = W + W_offset + (size_t)row * ld;
    __global const float *v = x + x_offset;
    /* The same trip count in every work-item: PoCL 3.1 crashes on loops some
     * work-items of a group skip entirely. */
    for (int base = 0; base < in; base += GEMV_WGS) {
      const int c = base + lane;
      if (c < in)
        sum += w[c] * v[c];
    }
  }
  partial[lane] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = GEMV_WGS / 2; stride > 0; stride /= 2) {
    if (lane < stride)
      partial[lane] += partial[lane + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lane == 0 && row < out)
    y[y_offset + row] = (beta != 0.0f ? beta * y[y_offset + row] : 0.0f) + partial[0];
}

#endif
