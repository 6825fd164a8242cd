/* Matrix products through CLBlast, with its status codes turned into ours. */
#include "gemm.h" /* first: it fixes the OpenCL version clblast_c.h sees */

#include <clblast_c.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "weights.h"
#include "log.h"
#include "profile.h"

static pthread_mutex_t clblast_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *clblast_status_name(CLBlastStatusCode code) {
  switch (code) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    case CLBlastDatabaseError: return "CLBlastDatabaseError";
    case CLBlastUnknownError: return "CLBlastUnknownError";
    case CLBlastUnexpectedError: return "CLBlastUnexpectedError";
    default: return "CLBlast error";
  }
}

/* CLBlast parameters measured on PoCL 3.1 (2-core AMD EPYC, AVX-512) with
 * bench/clblast_sgemm_sweep.c, each candidate alternated with the baseline in
 * one process and its results compared: 88-107 GFLOP/s for 1024-3072 sized
 * products against 8-25 for CLBlast's generic defaults, which it falls back
 * to because its database has no entry for PoCL's "AuthenticAMD" vendor
 * string. Small products (C <= 512 times d) also go through the tuned
 * indirect kernel instead of the slow direct one. See bench/RESULTS.md. */
typedef struct {
  const char *kernel;
  int count;
  const char *names[16];
  size_t values[16];
} clblast_override;

static const clblast_override pocl_cpu_overrides[] = {
    {"Xgemm",
     16,
     {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB", "STRM", "STRN",
      "VWM", "VWN"},
     {0, 1, 64, 2, 8, 8, 64, 8, 8, 64, 1, 1, 0, 0, 8, 8}},
    {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}, {256}},
};

void gemm_configure_device(const clttt_device *device, int *applied) {
  *applied = 0;
  const char *setting = getenv("CLTTT_CLBLAST_TUNING");
  if (setting && strcmp(setting, "off") == 0)
    return;
  if (strcmp(device->info.type, "CPU") != 0 || strstr(device->info.platform, "Portable Computing Language") == NULL)
    return;
  for (size_t i = 0; i < sizeof pocl_cpu_overrides / sizeof pocl_cpu_overrides[0]; i++) {
    const clblast_override *entry = &pocl_cpu_overrides[i];
    CLBlastStatusCode code = CLBlastOverrideParameters(device->id, entry->kernel, CLBlastPrecisionSingle,
                                                       (size_t)entry->count, (const char **)entry->names, entry->values);
    if (code != CLBlastSuccess) {
      log_warning("CLBlast refused our %s parameters for '%s' (%s); keeping its own", entry->kernel,
                  device->info.name, clblast_status_name(code));
      return;
    }
  }
  *applied = 1;
}

clttt_status gemm(clttt_device *device, const char *what, gemm_transpose transpose_a,
                  gemm_transpose transpose_b, size_t m, size_t n, size_t k, float alpha,
                  matrix_view a, matrix_view b, float beta, matrix_view c) {
  if (m == 0 || n == 0)
    return CLTTT_SUCCESS;
  /* CLBlast says it is thread-safe, but multi-threaded calls have been
   * reported unreliable; its calls only enqueue (after a first compile), so
   * one lock costs little. */
  profile_expect_flops(device, 2.0 * (double)m * (double)n * (double)k);
  pthread_mutex_lock(&clblast_lock);
  CLBlastStatusCode code = CLBlastSgemm(
      CLBlastLayoutRowMajor, transpose_a ? CLBlastTransposeYes : CLBlastTransposeNo,
      transpose_b ? CLBlastTransposeYes : CLBlastTransposeNo, m, n, k, alpha, a.buffer, a.offset,
      a.ld, b.buffer, b.offset, b.ld, beta, c.buffer, c.offset, c.ld, &device->queue, NULL);
  pthread_mutex_unlock(&clblast_lock);
  if (code == CLBlastSuccess) {
    if (device->profile) {
      char label[96];
      snprintf(label, sizeof label, "%s (CLBlast)", what);
      profile_mark(device, label);
    }
    return CLTTT_SUCCESS;
  }
  /* Codes above -1000 are OpenCL's own and keep their number. */
  if (code > -1000)
    return clttt_fail(code, "%s: CLBlast SGEMM %zux%zux%zu failed with %s on device '%s'", what, m, n,
                      k, clttt_status_name(code), device->info.name);
  return clttt_fail(CLTTT_ERROR_CLBLAST, "%s: CLBlast SGEMM %zux%zux%zu failed with %s (%d) on device '%s'",
                    what, m, n, k, clblast_status_name(code), (int)code, device->info.name);
}

clttt_status gemm_linear(const kernel_set *kernels, const char *what, size_t rows, size_t out_features,
                         size_t in_features, matrix_view x, matrix_view weight, float beta,
                         matrix_view y) {
  /* One row is a matrix-vector product: our GEMV, unless its int offsets
   * cannot address the operands. */
  const size_t int_limit = 0x7fffffff;
  if (rows == 1 && in_features <= int_limit && out_features <= int_limit && weight.offset <= int_limit &&
      x.offset <= int_limit && y.offset <= int_limit && weight.ld <= int_limit)
    return op_gemv(kernels, what, out_features, in_features, x, weight, beta, y);
  /* y (rows x out) = x (rows x in) * W^T (in x out) */
  return gemm(kernels->device, what, GEMM_NO_TRANSPOSE, GEMM_TRANSPOSE, rows, out_features, in_features, 1.0f,
              x, weight, beta, y);
}

clttt_status gemm_weight(const kernel_set *kernels, const char *what, size_t rows, matrix_view x,
                         const struct linear_weight *weight, float beta, matrix_view y) {
  if (weight->packed) {
    if (!kernels->has_packed)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: a packed weight, kernels built without the packed GEMM",
                        what);
    /* Decode's single row too: the CPU variant then streams each panel
     * contiguously, which is what a matrix-vector product wants. */
    return packed_gemm_run(&kernels->packed, what, &weight->layout, rows, x, weight->buffer, 0, beta, y);
  }
  return gemm_linear(kernels, what, rows, weight->out_features, weight->in_features, x,
                     view(weight->buffer, 0, weight->in_features), beta, y);
}
