/* Experimental (not built by make): CLBlast SGEMM rates on one OpenCL device
 * for candidate "Xgemm" tuning parameters, at the shapes of the TTT layer.
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -o clblast_sgemm_sweep bench/clblast_sgemm_sweep.c \
 *       -lclblast -lOpenCL -lm
 *   ./clblast_sgemm_sweep [C] [d] [f] [reps] [PARAMS ...]
 *
 * PARAMS: "default" (CLBlast's own choice) or 16 comma-separated values in the
 * order GEMMK,KREG,KWG,KWI,MDIMA,MDIMC,MWG,NDIMB,NDIMC,NWG,SA,SB,STRM,STRN,VWM,VWN.
 * For each set it times (best of reps, after a warm-up that compiles), in
 * SWEEP_ROUNDS (2) alternations with the baseline (SWEEP_BASELINE, 16 values,
 * else CLBlast 1.5.3's default for devices without a database entry), the
 * three products of one chunk, row-major, and checks that the candidate's
 * results match the baseline's (rel.err: largest difference / largest value):
 *   NT  C x 2f x d   gate/up   (x W^T)
 *   NN  C x f x d    reference (x W)
 *   TN  d x f x C    update    (V^T h)
 * Uses the first device of the first platform unless SWEEP_DEVICE=<index over
 * all platforms> is set. */
#define _DEFAULT_SOURCE
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *names[16] = {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
                                "NDIMC", "NWG", "SA", "SB", "STRM", "STRN", "VWM", "VWN"};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* CLBlast's defaults are restored by overriding with the database's "all
 * devices" default of CLBlast 1.5.3 (what a device without an entry gets). */
static const char *const clblast_default = "0,1,32,2,8,8,32,16,16,32,1,1,0,0,4,2";

static int apply(cl_device_id device, const char *set) {
  if (strcmp(set, "default") == 0)
    set = clblast_default;
  size_t values[16];
  int count = 0;
  const char *p = set;
  while (count < 16 && *p) {
    char *end = NULL;
    values[count++] = strtoul(p, &end, 10);
    if (end == p)
      break;
    p = *end == ',' ? end + 1 : end;
  }
  if (count != 16 || *p) {
    fprintf(stderr, "sweep: '%s' does not hold 16 values\n", set);
    return 1;
  }
  CLBlastStatusCode code =
      CLBlastOverrideParameters(device, "Xgemm", CLBlastPrecisionSingle, 16, names, values);
  if (code != CLBlastSuccess) {
    fprintf(stderr, "sweep: CLBlastOverrideParameters('%s') failed with %d\n", set, (int)code);
    return 1;
  }
  return 0;
}

static int die_cl(cl_int error, const char *what) {
  fprintf(stderr, "sweep: %s failed with OpenCL error %d\n", what, (int)error);
  return 1;
}

static double time_gemm(cl_command_queue queue, int transpose_a, int transpose_b, size_t m, size_t n,
                        size_t k, cl_mem a, cl_mem b, cl_mem c, int reps, int *failed) {
  double best = 0.0;
  for (int r = 0; r <= reps; r++) {
    clFinish(queue);
    double t0 = now_ms();
    size_t lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
    CLBlastStatusCode code = CLBlastSgemm(
        CLBlastLayoutRowMajor, transpose_a ? CLBlastTransposeYes : CLBlastTransposeNo,
        transpose_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, 1.0f, a, 0, lda, b, 0, ldb,
        0.0f, c, 0, n, &queue, NULL);
    clFinish(queue);
    if (code != CLBlastSuccess) {
      fprintf(stderr, "sweep: CLBlastSgemm %zux%zux%zu failed with %d\n", m, n, k, (int)code);
      *failed = 1;
      return 0.0;
    }
    double elapsed = now_ms() - t0;
    if (r > 0 && (best == 0.0 || elapsed < best))
      best = elapsed;
  }
  return 2.0 * (double)m * (double)n * (double)k / (best * 1e6);
}

int main(int argc, char **argv) {
  size_t C = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
  size_t d = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
  size_t f = argc > 3 ? strtoul(argv[3], NULL, 10) : 3072;
  int reps = argc > 4 ? atoi(argv[4]) : 2;
  if (!C || !d || !f || reps < 1) {
    fprintf(stderr, "usage: clblast_sgemm_sweep [C] [d] [f] [reps] [default | 16 values ...]\n");
    return 2;
  }
  cl_platform_id platforms[8];
  cl_uint platform_count = 0;
  cl_int error = clGetPlatformIDs(8, platforms, &platform_count);
  if (error != CL_SUCCESS || platform_count == 0)
    return die_cl(error, "clGetPlatformIDs");
  int wanted = getenv("SWEEP_DEVICE") ? atoi(getenv("SWEEP_DEVICE")) : 0, index = 0;
  cl_device_id device = NULL;
  for (cl_uint p = 0; p < platform_count && !device; p++) {
    cl_device_id ids[16];
    cl_uint count = 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 16, ids, &count) != CL_SUCCESS)
      continue;
    for (cl_uint i = 0; i < count && !device; i++, index++)
      if (index == wanted)
        device = ids[i];
  }
  if (!device) {
    fprintf(stderr, "sweep: no device %d\n", wanted);
    return 1;
  }
  char name[256] = "";
  clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name, name, NULL);
  cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &error);
  if (error != CL_SUCCESS)
    return die_cl(error, "clCreateContext");
  cl_command_queue queue = clCreateCommandQueue(context, device, 0, &error);
  if (error != CL_SUCCESS)
    return die_cl(error, "clCreateCommandQueue");
  size_t biggest = C * 2 * f > d * 2 * f ? C * 2 * f : d * 2 * f;
  cl_mem buffers[3];
  float *host = malloc(biggest * sizeof(float));
  if (!host)
    return 1;
  for (size_t i = 0; i < biggest; i++)
    host[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
  for (int i = 0; i < 3; i++) {
    buffers[i] = clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR,
                                biggest * sizeof(float), host, &error);
    if (error != CL_SUCCESS)
      return die_cl(error, "clCreateBuffer");
  }
  free(host);
  printf("device: %s; C=%zu d=%zu f=%zu; best of %d\n", name, C, d, f, reps);
  printf("%-52s %-11s %-11s %-11s  %-16s %6s  %s\n",
         "GEMMK,KREG,KWG,KWI,MDIMA,MDIMC,MWG,NDIMB,NDIMC,NWG,SA,SB,STRM,STRN,VWM,VWN",
         "NT cand/base", "NN cand/base", "TN cand/base", "ratio NT NN TN", "s", "rel.err");
  /* Each candidate is measured in `rounds` rounds of (baseline, candidate),
   * so that both see the same load: the ratio is what to compare on a
   * shared machine. The baseline is CLBlast's own choice unless
   * SWEEP_BASELINE gives 16 values. */
  const char *baseline = getenv("SWEEP_BASELINE");
  float *reference = malloc(3 * biggest * sizeof(float)), *candidate = malloc(3 * biggest * sizeof(float));
  if (!reference || !candidate)
    return 1;
  int rounds = getenv("SWEEP_ROUNDS") ? atoi(getenv("SWEEP_ROUNDS")) : 2;
  if (rounds < 1)
    rounds = 1;
  for (int a = 5; a < argc || a == 5; a++) {
    const char *set = a < argc ? argv[a] : "default";
    double sum[2][3] = {{0}}, t0 = now_ms();
    int failed = 0;
    for (int round = 0; round < rounds && !failed; round++)
      for (int which = 0; which < 2 && !failed; which++) {
        const char *use = which == 0 ? (baseline ? baseline : "default") : set;
        if (which == 0 && a == 5 && round == 0 && argc <= 5)
          use = "default";
        if (apply(device, use) != 0) {
          failed = 1;
          break;
        }
        double r[3];
        const size_t out_floats[3] = {C * 2 * f, C * f, d * f};
        for (int p = 0; p < 3 && !failed; p++) {
          if (p == 0)
            r[p] = time_gemm(queue, 0, 1, C, 2 * f, d, buffers[0], buffers[1], buffers[2], reps, &failed);
          else if (p == 1)
            r[p] = time_gemm(queue, 0, 0, C, f, d, buffers[0], buffers[1], buffers[2], reps, &failed);
          else
            r[p] = time_gemm(queue, 1, 0, d, f, C, buffers[0], buffers[1], buffers[2], reps, &failed);
          sum[which][p] += r[p] / rounds;
          /* The product just written: the candidate's must match the baseline's. */
          if (!failed && round == 0)
            clEnqueueReadBuffer(queue, buffers[2], CL_TRUE, 0, out_floats[p] * sizeof(float),
                                (which == 0 ? reference : candidate) + p * biggest, 0, NULL, NULL);
        }
      }
    double worst = 0.0, scale = 0.0;
    const size_t out_floats[3] = {C * 2 * f, C * f, d * f};
    for (int p = 0; p < 3 && !failed; p++)
      for (size_t i = 0; i < out_floats[p]; i++) {
        double diff = fabs((double)candidate[p * biggest + i] - (double)reference[p * biggest + i]);
        if (!(diff <= worst))
          worst = diff;
        if (fabs((double)reference[p * biggest + i]) > scale)
          scale = fabs((double)reference[p * biggest + i]);
      }
    if (failed)
      continue;
    printf("%-52s %5.1f/%-5.1f %5.1f/%-5.1f %5.1f/%-5.1f  x%.2f %.2f %.2f  %6.1f  %.1e\n", set, sum[1][0],
           sum[0][0], sum[1][1], sum[0][1], sum[1][2], sum[0][2], sum[1][0] / sum[0][0],
           sum[1][1] / sum[0][1], sum[1][2] / sum[0][2], (now_ms() - t0) * 1e-3, worst / (scale > 0 ? scale : 1));
    fflush(stdout);
  }
  free(reference);
  free(candidate);
  for (int i = 0; i < 3; i++)
    clReleaseMemObject(buffers[i]);
  clReleaseCommandQueue(queue);
  clReleaseContext(context);
  return 0;
}
