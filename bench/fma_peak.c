/* The FMA peak kernel the benchmarks measure their products against, in
 * the same run (bench_gemm, bench_fast_weight, bench_prefill). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "fma_peak.h"

#include <stdio.h>

#include "bench_clock.h"
#include "error.h"

/* The FMA peak: per work-item CHAINS independent chains a = a * m + b of
 * VECTOR floats (m just below 1, so values settle near b / (1 - m) and never
 * denormalise); a work-group of one per compute unit. The chains must stay
 * in registers, and how many fit is the device's: 16 float16 chains are 16
 * of AVX-512's 32 registers but 32 of AVX2's 16: on a 2-core AVX2 EPYC
 * under PoCL 3.1 they spilled and ran at 65-74 GFLOP/s, below our GEMM,
 * while 12 float8 chains ran at 171-186. So the peak is the best of two
 * shapes, each built with its own -D options. */
static const char *const peak_source =
    "#define CHAIN(i) VECTOR a##i = (VECTOR)(get_global_id(0) * 1e-3f + i)\n"
    "#define STEP(i) a##i = fma(a##i, mv, bv)\n"
    "__kernel __attribute__((reqd_work_group_size(1, 1, 1)))\n"
    "void fma_peak(__global float *out, const int iterations, const float m, const float b) {\n"
    "  const VECTOR mv = (VECTOR)(m), bv = (VECTOR)(b);\n"
    "  CHAIN(0); CHAIN(1); CHAIN(2); CHAIN(3); CHAIN(4); CHAIN(5); CHAIN(6); CHAIN(7);\n"
    "#if CHAINS > 8\n"
    "  CHAIN(8); CHAIN(9); CHAIN(10); CHAIN(11);\n"
    "#endif\n"
    "#if CHAINS > 12\n"
    "  CHAIN(12); CHAIN(13); CHAIN(14); CHAIN(15);\n"
    "#endif\n"
    "  for (int i = 0; i < iterations; i++) {\n"
    "    STEP(0); STEP(1); STEP(2); STEP(3); STEP(4); STEP(5); STEP(6); STEP(7);\n"
    "#if CHAINS > 8\n"
    "    STEP(8); STEP(9); STEP(10); STEP(11);\n"
    "#endif\n"
    "#if CHAINS > 12\n"
    "    STEP(12); STEP(13); STEP(14); STEP(15);\n"
    "#endif\n"
    "  }\n"
    "  VECTOR s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));\n"
    "#if CHAINS > 8\n"
    "  s += (a8 + a9) + (a10 + a11);\n"
    "#endif\n"
    "#if CHAINS > 12\n"
    "  s += (a12 + a13) + (a14 + a15);\n"
    "#endif\n"
    "  float total = 0.0f;\n"
    "  for (int lane = 0; lane < vec_step(VECTOR); lane++)\n"
    "    total += ((float *)&s)[lane];\n"
    "  out[get_global_id(0)] = total;\n"
    "}\n";

/* The shapes measured: 16 float16 chains (AVX-512, GPUs) and 12 float8
 * chains (AVX2: 12 of 16 registers, beside m and b). */
typedef struct {
  int width, chains;
} peak_shape;

static const peak_shape peak_shapes[] = {{16, 16}, {8, 12}};

/* Best of `reps` timed runs of one shape (after one that sizes the run to
 * about 0.1 s), raising *gflops and *cpu_gflops where it beats them. */
static clttt_status time_peak_shape(clttt_device *device, const peak_shape *shape, int reps, double *gflops,
                                    double *cpu_gflops) {
  char options[96];
  snprintf(options, sizeof options, "-cl-std=CL1.2 -DVECTOR=float%d -DCHAINS=%d", shape->width, shape->chains);
  cl_program program = NULL;
  CLTTT_TRY(runtime_build_source(device, "bench FMA peak", peak_source, options, &program));
  cl_int error = CL_SUCCESS;
  cl_kernel kernel = clCreateKernel(program, "fma_peak", &error);
  clttt_status status = runtime_check(device, error, "creating the FMA peak kernel");
  size_t items = device->info.compute_units > 0 ? device->info.compute_units : 1;
  cl_mem out = NULL;
  if (status == CLTTT_SUCCESS)
    status = runtime_alloc(device, items * sizeof(float), "bench FMA peak output", &out);
  /* Sized for about 0.1 s at 100 GFLOP/s per compute unit on a CPU; GPUs,
   * with far more lanes per compute unit, finish sooner but the same way. */
  int iterations = 1 << 15;
  const float m = 0.999999f, b = 1e-6f;
  for (int r = 0; r <= reps && status == CLTTT_SUCCESS; r++) {
    status = runtime_set_args(device, kernel, "fma_peak", 4, sizeof(cl_mem), &out, sizeof(int), &iterations,
                              sizeof(float), &m, sizeof(float), &b);
    if (status != CLTTT_SUCCESS)
      break;
    size_t global[1] = {items}, local[1] = {1};
    status = runtime_finish(device);
    if (status != CLTTT_SUCCESS)
      break;
    double t0 = now_ms(), c0 = cpu_ms();
    status = runtime_launch(device, kernel, "fma_peak", 1, global, local);
    if (status == CLTTT_SUCCESS)
      status = runtime_finish(device);
    double ms = now_ms() - t0, used = cpu_ms() - c0;
    double flops = (double)items * iterations * shape->chains * shape->width * 2.0;
    double rate = flops / (ms * 1e6);
    double cpu_rate = used > 0.0 ? flops / (used * 1e6) : 0.0;
    if (r == 0 && ms < 50.0 && iterations < (1 << 26)) {
      /* Too short to time well: grow until a run takes ~100 ms. */
      double grown = iterations * (100.0 / (ms > 0.5 ? ms : 0.5));
      iterations = grown < (double)(1 << 28) ? (int)grown : 1 << 28;
      r = -1;
      continue;
    }
    if (r > 0 && rate > *gflops)
      *gflops = rate;
    if (r > 0 && cpu_rate > *cpu_gflops)
      *cpu_gflops = cpu_rate;
  }
  runtime_release(&out);
  if (kernel)
    clReleaseKernel(kernel);
  clReleaseProgram(program);
  return status;
}

/* Best of `reps` runs of each shape, GFLOP/s of wall time and per CPU-second. */
clttt_status bench_fma_peak(clttt_device *device, int reps, double *gflops, double *cpu_gflops) {
  *gflops = 0.0;
  *cpu_gflops = 0.0;
  for (size_t i = 0; i < sizeof peak_shapes / sizeof peak_shapes[0]; i++)
    CLTTT_TRY(time_peak_shape(device, &peak_shapes[i], reps, gflops, cpu_gflops));
  return CLTTT_SUCCESS;
}
