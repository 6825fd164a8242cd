// In-Place TTT kernels (SPEC.md section 3): the target-state convolution.
// The target projection, the apply and the update are matrix products
// (gemm.c); clipping an update needs its norm, computed here.

#ifndef ELEMENTWISE_WGS
#define ELEMENTWISE_WGS 64
#endif
// Chunk rows per work-item: neighbouring rows share four of their five
// inputs, so one work-item doing TTT_CONV_ROWS rows reads each input once
// instead of five times. Tuned per device.
#ifndef TTT_CONV_ROWS
#define TTT_CONV_ROWS 1
#endif
// Channels per work-item: 16 computes them as one float16 vector (CPUs,
// where one channel per work-item ran at 3 GB/s); other values one by one.
#ifndef TTT_CONV_CHANNELS
#define TTT_CONV_CHANNELS 1
#endif

// Depthwise 5-tap convolution inside one chunk, cross-correlation order as
// PyTorch's conv1d with padding 2: tap 2 is the token itself, taps 3 and 4 the
// next two. Rows outside the chunk count as zero, so no chunk sees another.
// Work-item (b, r) computes channels [b * TTT_CONV_CHANNELS, (b + 1) *
// TTT_CONV_CHANNELS) of rows [r * TTT_CONV_ROWS, (r + 1) * TTT_CONV_ROWS);
// with 16 channels as float16 vectors, except in the last block of a d that
// is no multiple of 16, which goes channel by channel.
//   tc: rows x d, t: rows x d (starting t_offset floats in, row stride t_ld),
//   weight: d x 5
void conv_channel(__global float *tc, __global const float *t, const ulong t_offset, const int t_ld,
                  __global const float *weight, const int rows, const int d, const int channel, const int first_row);

__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void ttt_conv(__global float *tc, __global const float *t, const ulong t_offset,
              const int t_ld, __global const float *weight, const int rows,
              const int d) {
  const int c0 = get_global_id(0) * TTT_CONV_CHANNELS;
  const int first_row = get_global_id(1) * TTT_CONV_ROWS;
  if (c0 >= d || first_row >= rows)
    return;
  if (TTT_CONV_CHANNELS != 16 || c0 + 16 > d) {
    for (int channel = c0; channel < min(d, c0 + TTT_CONV_CHANNELS); channel++)
      conv_channel(tc, t, t_offset, t_ld, weight, rows, d, channel, first_row);
    return;
  }
#if TTT_CONV_CHANNELS == 16
  float16 taps[5];
  for (int tap = 0; tap < 5; tap++) {
    float lanes[16];
    for (int u = 0; u < 16; u++)
      lanes[u] = weight[(c0 + u) * 5 + tap];
    taps[tap] = vload16(0, lanes);
  }
  // window[k] holds input row first_row - 2 + k.
  float16 window[TTT_CONV_ROWS + 4];
  for (int k = 0; k < TTT_CONV_ROWS + 4; k++) {
    const int source = first_row - 2 + k;
    window[k] = source >= 0 && source < rows ? vload16(0, t + t_offset + (size_t)source * t_ld + c0) : (float16)(0.0f);
  }
  for (int r = 0; r < TTT_CONV_ROWS; r++) {
    const int i = first_row + r;
    if (i >= rows)
      break;
    float16 sum = (float16)(0.0f);
    for (int tap = 0; tap < 5; tap++)
      sum += taps[tap] * window[r + tap];
    vstore16(sum, 0, tc + (size_t)i * d + c0);
  }
#endif
}

void conv_channel(__global float *tc, __global const float *t, const ulong t_offset, const int t_ld,
                  __global const float *weight, const int rows, const int d, const int channel, const int first_row) {
  float taps[5];
  for (int tap = 0; tap < 5; tap++)
    taps[tap] = weight[channel * 5 + tap];
  // window[k] holds input row first_row - 2 + k.
  float window[TTT_CONV_ROWS + 4];
  for (int k = 0; k < TTT_CONV_ROWS + 4; k++) {
    const int source = first_row - 2 + k;
    window[k] = source >= 0 && source < rows ? t[t_offset + (size_t)source * t_ld + channel] : 0.0f;
  }
  for (int r = 0; r < TTT_CONV_ROWS; r++) {
    const int i = first_row + r;
    if (i >= rows)
      break;
    float sum = 0.0f;
    for (int tap = 0; tap < 5; tap++)
      sum += taps[tap] * window[r + tap];
    tc[(size_t)i * d + channel] = sum;
  }
}

// ---- Update clipping (paper, Appendix C.2) ----------------------------
// U = eta V^T h is scaled by min(1, tau / ||U||_F) before W += U. Three
// steps, all on the device so the host never waits: row sums of squares,
// one group turning them into the scale, then the scaled add.

#ifndef RMSNORM_WGS
#define RMSNORM_WGS 64
#endif

// The sum of every work-item's `value` over a group of RMSNORM_WGS (a power
// of two), as a tree in local memory; every work-item must call it.
float group_sum(__local float *partial, const int lane, const float value) {
  partial[lane] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = RMSNORM_WGS / 2; stride > 0; stride /= 2) {
    if (lane < stride)
      partial[lane] += partial[lane + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  return partial[0];
}

// sums[row] = sum_c x[row * width + c]^2; one work-group per row, reduced as
// rmsnorm.cl reduces (RMSNORM_WGS a power of two, uniform loop trip counts;
// 1, on CPUs, sums the row in 16-wide vectors as rmsnorm.cl's form for them
// does, where a scalar loop would take a chain of f dependent adds per row).
__kernel __attribute__((reqd_work_group_size(RMSNORM_WGS, 1, 1)))
void row_sum_of_squares(__global const float *x, const int rows, const int width, __global float *sums) {
#if RMSNORM_WGS == 1
  const int row = get_global_id(0);
  if (row >= rows)
    return;
  __global const float *in = x + (size_t)row * width;
  const int vectors = width / 16;
  float16 squares = (float16)(0.0f);
  for (int v = 0; v < vectors; v++) {
    const float16 value = vload16(v, in);
    squares = fma(value, value, squares);
  }
  const float8 s8 = squares.lo + squares.hi;
  const float4 s4 = s8.lo + s8.hi;
  float sum = (s4.x + s4.y) + (s4.z + s4.w);
  for (int c = vectors * 16; c < width; c++)
    sum += in[c] * in[c];
  sums[row] = sum;
#else
  __local float partial[RMSNORM_WGS];
  const int row = get_group_id(0);
  const int lane = get_local_id(0);
  if (row >= rows)
    return;
  __global const float *in = x + (size_t)row * width;
  float sum = 0.0f;
  for (int base = 0; base < width; base += RMSNORM_WGS) {
    const int c = base + lane;
    if (c < width)
      sum += in[c] * in[c];
  }
  const float total = group_sum(partial, lane, sum);
  if (lane == 0)
    sums[row] = total;
#endif
}

// scale[0] = min(1, tau / sqrt(sum of `count` row sums)); one work-group.
// A zero update keeps scale 1 (nothing to clip).
__kernel __attribute__((reqd_work_group_size(RMSNORM_WGS, 1, 1)))
void clip_scale(__global const float *sums, const int count, const float tau, __global float *scale) {
  __local float partial[RMSNORM_WGS];
  const int lane = get_local_id(0);
  float sum = 0.0f;
  for (int base = 0; base < count; base += RMSNORM_WGS) {
    const int i = base + lane;
    if (i < count)
      sum += sums[i];
  }
  const float total = group_sum(partial, lane, sum);
  if (lane == 0) {
    const float norm = sqrt(total);
    scale[0] = norm > tau ? tau / norm : 1.0f;
  }
}

// W[i] += scale[0] * U[i]
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void add_scaled(__global float *W, __global const float *U, __global const float *scale, const int count) {
  const int i = get_global_id(0);
  if (i < count)
    W[i] += scale[0] * U[i];
}
