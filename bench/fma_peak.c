/* The FMA peak kernel the benchmarks measure their products against, in
 * the same run (bench_gemm, bench_fast_weight). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "fma_peak.h"

#include "bench_clock.h"
#include "error.h"

/* The FMA peak: per work-item 16 independent float16 chains a = a * m + b
 * (m just below 1, so values settle near b / (1 - m) and never denormalise),
 * 512 FLOPs per iteration; a work-group of one per compute unit. */
static const char *const peak_source =
    "__kernel __attribute__((reqd_work_group_size(1, 1, 1)))\n"
    "void fma_peak(__global float *out, const int iterations, const float m, const float b) {\n"
    "  const float16 mv = (float16)(m), bv = (float16)(b);\n"
    "  float16 a0 = (float16)(get_global_id(0) * 1e-3f), a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + 3.0f;\n"
    "  float16 a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;\n"
    "  float16 a8 = a0 + 8.0f, a9 = a0 + 9.0f, a10 = a0 + 10.0f, a11 = a0 + 11.0f;\n"
    "  float16 a12 = a0 + 12.0f, a13 = a0 + 13.0f, a14 = a0 + 14.0f, a15 = a0 + 15.0f;\n"
    "  for (int i = 0; i < iterations; i++) {\n"
    "    a0 = fma(a0, mv, bv); a1 = fma(a1, mv, bv); a2 = fma(a2, mv, bv); a3 = fma(a3, mv, bv);\n"
    "    a4 = fma(a4, mv, bv); a5 = fma(a5, mv, bv); a6 = fma(a6, mv, bv); a7 = fma(a7, mv, bv);\n"
    "    a8 = fma(a8, mv, bv); a9 = fma(a9, mv, bv); a10 = fma(a10, mv, bv); a11 = fma(a11, mv, bv);\n"
    "    a12 = fma(a12, mv, bv); a13 = fma(a13, mv, bv); a14 = fma(a14, mv, bv); a15 = fma(a15, mv, bv);\n"
    "  }\n"
    "  float16 s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) +\n"
    "              ((a12 + a13) + (a14 + a15));\n"
    "  out[get_global_id(0)] = s.s0 + s.s1 + s.s2 + s.s3 + s.s4 + s.s5 + s.s6 + s.s7 + s.s8 + s.s9 +\n"
    "                          s.sa + s.sb + s.sc + s.sd + s.se + s.sf;\n"
    "}\n";

/* Best of `reps` runs, GFLOP/s of wall time and per CPU-second. */
clttt_status bench_fma_peak(clttt_device *device, int reps, double *gflops, double *cpu_gflops) {
  cl_program program = NULL;
  CLTTT_TRY(runtime_build_source(device, "bench FMA peak", peak_source, "-cl-std=CL1.2", &program));
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
  double best = 0.0, best_cpu = 0.0;
  for (int r = 0; r <= reps && status == CLTTT_SUCCESS; r++) {
    status = runtime_set_args(device, kernel, "fma_peak", 4, sizeof(cl_mem), &out, sizeof(int), &iterations,
                              sizeof(float), &m, sizeof(float), &b);
    if (status != CLTTT_SUCCESS)
      break;
    size_t global[1] = {items}, local[1] = {1};
    CLTTT_TRY(runtime_finish(device));
    double t0 = now_ms(), c0 = cpu_ms();
    status = runtime_launch(device, kernel, "fma_peak", 1, global, local);
    if (status == CLTTT_SUCCESS)
      status = runtime_finish(device);
    double ms = now_ms() - t0, used = cpu_ms() - c0;
    double rate = (double)items * iterations * 512.0 / (ms * 1e6);
    double cpu_rate = used > 0.0 ? (double)items * iterations * 512.0 / (used * 1e6) : 0.0;
    if (r == 0 && ms < 50.0 && iterations < (1 << 26)) {
      /* Too short to time well: grow until a run takes ~100 ms. */
      double grown = iterations * (100.0 / (ms > 0.5 ? ms : 0.5));
      iterations = grown < (double)(1 << 28) ? (int)grown : 1 << 28;
      r = -1;
      continue;
    }
    if (r > 0 && rate > best)
      best = rate;
    if (r > 0 && cpu_rate > best_cpu)
      best_cpu = cpu_rate;
  }
  runtime_release(&out);
  if (kernel)
    clReleaseKernel(kernel);
  clReleaseProgram(program);
  *gflops = best;
  *cpu_gflops = best_cpu;
  return status;
}
