// In-Place TTT kernels (SPEC.md section 3): the target-state convolution.
// The target projection, the apply and the update are matrix products (gemm.c).

// Depthwise 5-tap convolution inside one chunk, cross-correlation order as
// PyTorch's conv1d with padding 2: tap 2 is the token itself, taps 3 and 4 the
// next two. Rows outside the chunk count as zero, so no chunk sees another.
//   tc: rows x d, t: rows x d (starting t_offset floats in, row stride t_ld),
//   weight: d x 5
__kernel void ttt_conv(__global float *tc, __global const float *t, const int t_offset,
                       const int t_ld, __global const float *weight, const int rows,
                       const int d) {
  const int channel = get_global_id(0);
  const int i = get_global_id(1);
  if (channel >= d || i >= rows)
    return;
  float sum = 0.0f;
  for (int tap = 0; tap < 5; tap++) {
    const int source = i + tap - 2;
    if (source >= 0 && source < rows)
      sum += weight[channel * 5 + tap] * t[t_offset + (size_t)source * t_ld + channel];
  }
  tc[(size_t)i * d + channel] = sum;
}
