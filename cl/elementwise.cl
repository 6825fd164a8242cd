// Elementwise kernels: embedding gather, residual add, SwiGLU gating, bias.
// One work-item per output element; nothing here needs local memory.

#ifndef VECTOR_WIDTH
#define VECTOR_WIDTH 4
#endif

// out[i][c] = table[tokens[i]][c]            out: n x d, table: vocab x d
__kernel void embedding_gather(__global float *out, __global const float *table,
                               __global const int *tokens, const int n, const int d) {
  const int c = get_global_id(0);
  const int i = get_global_id(1);
  if (c >= d || i >= n)
    return;
  out[(size_t)i * d + c] = table[(size_t)tokens[i] * d + c];
}

// x += y over count floats (the residual stream).
__kernel void add_in_place(__global float *x, __global const float *y, const int count) {
  const int i = get_global_id(0);
  if (i < count)
    x[i] += y[i];
}

// h[i][j] = silu(gate[i][j]) * up[i][j], where gate_up holds each row as
// [gate (f) | up (f)] because both come from one GEMM with stacked weights.
//   h: n x f, gate_up: n x 2f
__kernel void swiglu(__global float *h, __global const float *gate_up, const int n, const int f) {
  const int j = get_global_id(0);
  const int i = get_global_id(1);
  if (j >= f || i >= n)
    return;
  const float gate = gate_up[(size_t)i * 2 * f + j];
  const float up = gate_up[(size_t)i * 2 * f + f + j];
  h[(size_t)i * f + j] = gate / (1.0f + exp(-gate)) * up;
}

// y[i][j] += bias[j]                          y: n x width (row stride ld)
__kernel void add_bias_rows(__global float *y, __global const float *bias, const int n,
                            const int width, const int ld) {
  const int j = get_global_id(0);
  const int i = get_global_id(1);
  if (j >= width || i >= n)
    return;
  y[(size_t)i * ld + j] += bias[j];
}
