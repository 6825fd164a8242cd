// Elementwise kernels: embedding gather, residual add, SwiGLU gating, bias.
// Nothing here needs local memory; the host launches them in groups of
// ELEMENTWISE_WGS work-items along the first dimension. swiglu and
// add_in_place, the two that stream the most memory, give each work-item
// VECTOR_WIDTH consecutive floats (1, 2, 4, 8 or 16): wide loads help GPUs
// that do not coalesce scalar ones well, while CPUs (PoCL) already vectorise
// across work-items and may prefer 1. Both are tuned per device.

#ifndef ELEMENTWISE_WGS
#define ELEMENTWISE_WGS 64
#endif
#ifndef VECTOR_WIDTH
#define VECTOR_WIDTH 4
#endif

#if VECTOR_WIDTH == 1
typedef float floatv;
#define LOADV(pointer) (*(pointer))
#define STOREV(value, pointer) (*(pointer) = (value))
#else
#define CONCATENATE_(a, b) a##b
#define CONCATENATE(a, b) CONCATENATE_(a, b)
typedef CONCATENATE(float, VECTOR_WIDTH) floatv;
// vloadn/vstoren need only float alignment, so rows of any width work.
#define LOADV(pointer) CONCATENATE(vload, VECTOR_WIDTH)(0, pointer)
#define STOREV(value, pointer) CONCATENATE(vstore, VECTOR_WIDTH)(value, 0, pointer)
#endif

// out[i][c] = table[tokens[i]][c]            out: n x d, table: vocab x d
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void embedding_gather(__global float *out, __global const float *table,
                      __global const int *tokens, const int n, const int d) {
  const int c = get_global_id(0);
  const int i = get_global_id(1);
  if (c >= d || i >= n)
    return;
  out[(size_t)i * d + c] = table[(size_t)tokens[i] * d + c];
}

// Where element (row, c) of a matrix packed into our GEMM's panels lies
// (cl/gemm.cl's layout).
size_t panel_index(const int row, const int c, const int panel_width, const int k_padded) {
  return ((size_t)(row / panel_width) * k_padded + c) * panel_width + row % panel_width;
}

// Element `index` of a bf16 (is_bf16 = 1) or fp16 array, widened to fp32.
float half_element(__global const ushort *matrix, const size_t index, const int is_bf16) {
  return is_bf16 ? as_float((uint)matrix[index] << 16) : vload_half(index, (__global const half *)matrix);
}


// The same gather from a bf16 or fp16 table in those panels: a tied LM head
// and the gather then share one copy.
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void embedding_gather_packed(__global float *out, __global const ushort *table,
                             __global const int *tokens, const int n, const int d,
                             const int panel_width, const int k_padded, const int is_bf16) {
  const int c = get_global_id(0);
  const int i = get_global_id(1);
  if (c >= d || i >= n)
    return;
  out[(size_t)i * d + c] = half_element(table, panel_index(tokens[i], c, panel_width, k_padded), is_bf16);
}

// out (rows x columns, row-major fp32) = a matrix in those panels, of type
// 0 (fp32), 1 (bf16) or 2 (fp16), widened: a TTT layer's fp32 fast weight
// starting from its stored W_down, at every session start and reset. A
// work-item widens 16 columns of one row: the panel arithmetic once, not per
// element (per element it took 0.6 ms per MiB on PoCL, 0.85 s for the seven
// TTT layers of a Qwen3-8B-sized model).
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void widen_to_float(__global float *out, __global const ushort *in, const int rows, const int columns,
                    const int panel_width, const int k_padded, const int type) {
  const int c0 = get_global_id(0) * 16;
  const int row = get_global_id(1);
  if (c0 >= columns || row >= rows)
    return;
  const size_t first = panel_index(row, c0, panel_width, k_padded);
  __global float *o = out + (size_t)row * columns + c0;
  const int count = min(16, columns - c0);
  for (int u = 0; u < count; u++) {
    const size_t index = first + (size_t)u * panel_width;
    o[u] = type == 0 ? ((__global const float *)in)[index] : half_element(in, index, type == 1);
  }
}

// x += y over count floats (the residual stream). Work-item w owns floats
// [w * VECTOR_WIDTH, (w + 1) * VECTOR_WIDTH); the last one may be partial.
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void add_in_place(__global float *x, __global const float *y, const int count) {
  const size_t first = (size_t)get_global_id(0) * VECTOR_WIDTH;
  if (first + VECTOR_WIDTH <= (size_t)count) {
    STOREV(LOADV(x + first) + LOADV(y + first), x + first);
    return;
  }
  for (size_t i = first; i < (size_t)count; i++)
    x[i] += y[i];
}

// out = in over count floats: the benchmarks' measure of the memory bandwidth
// a kernel of ours reaches on this device (the decode roofline), launched
// like add_in_place.
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void copy_floats(__global float *out, __global const float *in, const int count) {
  const size_t first = (size_t)get_global_id(0) * VECTOR_WIDTH;
  if (first + VECTOR_WIDTH <= (size_t)count) {
    STOREV(LOADV(in + first), out + first);
    return;
  }
  for (size_t i = first; i < (size_t)count; i++)
    out[i] = in[i];
}

// h[i][j] = silu(gate[i][j]) * up[i][j], where gate_up holds each row as
// [gate (f) | up (f)] because both come from one GEMM with stacked weights.
// Work-item (w, i) owns columns [w * VECTOR_WIDTH, (w + 1) * VECTOR_WIDTH) of
// row i; the last one of a row may be partial.
//   h: n x f, gate_up: n x 2f
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void swiglu(__global float *h, __global const float *gate_up, const int n, const int f) {
  const int first = get_global_id(0) * VECTOR_WIDTH;
  const int i = get_global_id(1);
  if (first >= f || i >= n)
    return;
  __global const float *gate_row = gate_up + (size_t)i * 2 * f;
  __global const float *up_row = gate_row + f;
  __global float *h_row = h + (size_t)i * f;
  if (first + VECTOR_WIDTH <= f) {
    const floatv gate = LOADV(gate_row + first);
    const floatv up = LOADV(up_row + first);
    STOREV(gate / (1.0f + exp(-gate)) * up, h_row + first);
    return;
  }
  for (int j = first; j < f; j++) {
    const float gate = gate_row[j];
    h_row[j] = gate / (1.0f + exp(-gate)) * up_row[j];
  }
}

// y[i][j] += bias[j]                          y: n x width (row stride ld)
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void add_bias_rows(__global float *y, __global const float *bias, const int n,
                   const int width, const int ld) {
  const int j = get_global_id(0);
  const int i = get_global_id(1);
  if (j >= width || i >= n)
    return;
  y[(size_t)i * ld + j] += bias[j];
}

// counter[0] += the number of non-finite values (NaN, +-inf) among
// x[offset .. offset + count); the counter starts at zero. A work-item
// takes NONFINITE_SPAN consecutive values (one per value left 4096
// work-groups of launch overhead for a 256-token batch's V rows on PoCL,
// 2 ms a layer) and touches the counter only when it found one.
#ifndef NONFINITE_SPAN
#define NONFINITE_SPAN 256
#endif
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void count_nonfinite(__global const float *x, const ulong offset, const int count, __global int *counter) {
  const int first = get_global_id(0) * NONFINITE_SPAN;
  const int last = min(count, first + NONFINITE_SPAN);
  int found = 0;
  for (int i = first; i < last; i++)
    found += !isfinite(x[offset + i]);
  if (found)
    atomic_add(counter, found);
}

// The same over half values, read as their bits: a half is NaN or +-inf
// exactly when its five exponent bits are all ones.
__kernel __attribute__((work_group_size_hint(ELEMENTWISE_WGS, 1, 1)))
void count_nonfinite_half(__global const ushort *x, const ulong offset, const int count, __global int *counter) {
  const int first = get_global_id(0) * NONFINITE_SPAN;
  const int last = min(count, first + NONFINITE_SPAN);
  int found = 0;
  for (int i = first; i < last; i++)
    found += (x[offset + i] & 0x7c00) == 0x7c00;
  if (found)
    atomic_add(counter, found);
}
