// RMSNorm over rows: out = x * rsqrt(mean(x^2) + eps) * weight.
// One work-group per row; RMSNORM_WGS work-items reduce the sum of squares in
// local memory, so any row width works with one launch. RMSNORM_WGS must be a
// power of two (the tree reduction halves it) and is tuned per device; 1
// selects the vector loop below, which is what CPUs want.

#ifndef RMSNORM_WGS
#define RMSNORM_WGS 64
#endif

#if RMSNORM_WGS == 1

// CPUs: a work-group of one work-item per row, so PoCL runs it as
// straight-line code on one core with no work-item loop and no barriers,
// and the row is summed in 16-wide vectors. The tree below, run by PoCL as
// one loop per barrier region, took 47 us for a 1024-wide decode row.
//   out: rows x width (row stride out_ld), x: rows x width (row stride x_ld)
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void rmsnorm(__global float *out, const int out_ld, __global const float *x, const int x_ld,
             __global const float *weight, const int rows, const int width, const float eps) {
  const int row = get_global_id(0);
  if (row >= rows)
    return;
  __global const float *in = x + (size_t)row * x_ld;
  const int vectors = width / 16;
  float16 sums = (float16)(0.0f);
  for (int v = 0; v < vectors; v++) {
    const float16 value = vload16(v, in);
    sums = fma(value, value, sums);
  }
  const float8 s8 = sums.lo + sums.hi;
  const float4 s4 = s8.lo + s8.hi;
  float sum = (s4.x + s4.y) + (s4.z + s4.w);
  for (int c = vectors * 16; c < width; c++)
    sum += in[c] * in[c];
  const float scale = rsqrt(sum / (float)width + eps);
  __global float *o = out + (size_t)row * out_ld;
  for (int v = 0; v < vectors; v++)
    vstore16(vload16(v, in) * scale * vload16(v, weight), v, o);
  for (int c = vectors * 16; c < width; c++)
    o[c] = in[c] * scale * weight[c];
}

#else

// GPUs: RMSNORM_WGS work-items per row, reduced in local memory.
//   out: rows x width (row stride out_ld), x: rows x width (row stride x_ld)
__kernel __attribute__((reqd_work_group_size(RMSNORM_WGS, 1, 1)))
void rmsnorm(__global float *out, const int out_ld, __global const float *x, const int x_ld,
             __global const float *weight, const int rows, const int width, const float eps) {
  __local float partial[RMSNORM_WGS];
  const int row = get_group_id(0);
  const int lane = get_local_id(0);
  if (row >= rows)
    return;  // uniform across the group: whole groups exit together
  __global const float *in = x + (size_t)row * x_ld;
  // Loops run a uniform number of times with the bound checked inside: PoCL
  // 3.1 crashed (reads far out of bounds) on `for (c = lane; c < width; c +=
  // RMSNORM_WGS)` when some work-items had no iteration (RMSNORM_WGS > width).
  float sum = 0.0f;
  for (int base = 0; base < width; base += RMSNORM_WGS) {
    const int c = base + lane;
    if (c < width)
      sum += in[c] * in[c];
  }
  partial[lane] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = RMSNORM_WGS / 2; stride > 0; stride /= 2) {
    if (lane < stride)
      partial[lane] += partial[lane + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float scale = rsqrt(partial[0] / (float)width + eps);
  __global float *o = out + (size_t)row * out_ld;
  for (int base = 0; base < width; base += RMSNORM_WGS) {
    const int c = base + lane;
    if (c < width)
      o[c] = in[c] * scale * weight[c];
  }
}

#endif
