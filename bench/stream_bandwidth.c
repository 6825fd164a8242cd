/* Memory bandwidth for the benchmarks' rooflines (stream_bandwidth.h). */
#define _DEFAULT_SOURCE /* clock_gettime */
#include "runtime.h" /* first: it fixes the OpenCL version the other headers see */

#include "bench_clock.h"
#include "ops.h"
#include "stream_bandwidth.h"

/* A read-only stream, the decode roofline's reference: each work-item sums
 * its slice of float16 vectors (independent accumulators, so it waits on
 * memory, not on adds) and writes one float. */
static const char *const read_source =
    "__kernel __attribute__((reqd_work_group_size(1, 1, 1)))\n"
    "void read_stream(__global const float16 *in, const int per_item, __global float *out) {\n"
    "  __global const float16 *p = in + (size_t)get_global_id(0) * per_item;\n"
    "  float16 a = 0.0f, b = 0.0f, c = 0.0f, d = 0.0f;\n"
    "  for (int i = 0; i < per_item; i += 4) {\n"
    "    a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3];\n"
    "  }\n"
    "  const float16 s = (a + b) + (c + d);\n"
    "  out[get_global_id(0)] = s.s0 + s.s5 + s.sa + s.sf;\n"
    "}\n";

/* The read stream above and our copy kernel (read + write of each byte
 * counted, what bench_model uses). */
int stream_bandwidths(clttt_device *device, double *copy_rate, double *read_rate) {
  const size_t bytes = (size_t)256 << 20;
  const int per_item = 1024; /* float16s: 64 KiB, a weight panel's size */
  const size_t items = bytes / (64 * (size_t)per_item);
  kernel_set kernels;
  if (kernel_set_create(&kernels, device, &device->tuning, 128, 0))
    return 0;
  cl_program program = NULL;
  cl_kernel reader = NULL;
  cl_mem a = NULL, b = NULL, sums = NULL;
  int ok = runtime_build_source(device, "read_stream", read_source, "-cl-std=CL1.2", &program) == CLTTT_SUCCESS &&
           runtime_create_kernel(device, program, "read_stream", "read_stream", &reader) == CLTTT_SUCCESS &&
           runtime_alloc(device, bytes, "bandwidth source", &a) == CLTTT_SUCCESS &&
           runtime_alloc(device, bytes, "bandwidth target", &b) == CLTTT_SUCCESS &&
           runtime_alloc(device, items * sizeof(float), "sums", &sums) == CLTTT_SUCCESS &&
           runtime_zero(device, a, 0, bytes, "bandwidth source") == CLTTT_SUCCESS &&
           runtime_set_args(device, reader, "read_stream", 3, sizeof(cl_mem), &a, sizeof(int), &per_item,
                            sizeof(cl_mem), &sums) == CLTTT_SUCCESS;
  *copy_rate = *read_rate = 0;
  const size_t global[1] = {items}, local[1] = {1};
  for (int repeat = 0; ok && repeat < 6; repeat++) {
    runtime_finish(device);
    double start = now_seconds();
    ok = op_copy_floats(&kernels, b, a, bytes / sizeof(float)) == CLTTT_SUCCESS && runtime_finish(device) == CLTTT_SUCCESS;
    double middle = now_seconds();
    ok = ok && runtime_launch(device, reader, "read_stream", 1, global, local) == CLTTT_SUCCESS &&
         runtime_finish(device) == CLTTT_SUCCESS;
    double end = now_seconds();
    if (ok && repeat > 0) { /* the first run touches the pages */
      double copy = 2.0 * (double)bytes / (middle - start), read = (double)bytes / (end - middle);
      *copy_rate = copy > *copy_rate ? copy : *copy_rate;
      *read_rate = read > *read_rate ? read : *read_rate;
    }
  }
  if (reader)
    clReleaseKernel(reader);
  if (program)
    clReleaseProgram(program);
  runtime_release(&a);
  runtime_release(&b);
  runtime_release(&sums);
  kernel_set_release(&kernels);
  return ok && *read_rate > 0;
}

