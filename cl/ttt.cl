// In-Place TTT kernels (SPEC.md section 3): the target-state convolution.
// The target projection, the apply and the update are matrix products (gemm.c).

#ifndef ELEMENTWISE_WGS
#define ELEMENTWISE_WGS 64
#endif
// Chunk rows per work-item: neighbouring rows share four of their five
// inputs, so one work-item doing TTT_CONV_ROWS rows reads each input once
// instead of five times. Tuned per device.
#ifndef TTT_CONV_ROWS
#define TTT_CONV_ROWS 1
#endif

// Depthwise 5-tap convolution inside one chunk, cross-correlation order as
// PyTorch's conv1d with padding 2: tap 2 is the token itself, taps 3 and 4 the
// next two. Rows outside the chunk count as zero, so no chunk sees another.
// Work-item (channel, r) computes rows [r * TTT_CONV_ROWS, (r + 1) * TTT_CONV_ROWS).
//   tc: rows x d, t: rows x d (starting t_offset floats in, row stride t_ld),
//   weight: d x 5
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void ttt_conv(__global float *tc, __global const float *t, const ulong t_offset,
              const int t_ld, __global const float *weight, const int rows,
              const int d) {
  const int channel = get_global_id(0);
  const int first_row = get_global_id(1) * TTT_CONV_ROWS;
  if (channel >= d || first_row >= rows)
    return;
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
