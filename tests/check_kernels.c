/* Our own kernels against plain C computations of the same math, in every
 * variant a device's parameter set can select. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"
#include "gemm.h"
#include "test_util.h"

static cl_mem upload(clttt_device *device, const float *host, size_t count) {
  cl_mem buffer = NULL;
  ck_assert_int_eq(runtime_alloc(device, count * sizeof(float), "test data", &buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, buffer, 0, count * sizeof(float), host, "test data"), CLTTT_SUCCESS);
  return buffer;
}

/* gemv.cl in both access patterns, with offsets, a leading dimension wider
 * than the row, lengths that are not multiples of the vector width, and beta.
 * fp32 sums of up to 301 products of values below 1: error ~ 301 * 6e-8 of
 * the row's absolute sum, so 1e-5 relative to that sum is a safe bound. */
START_TEST(test_gemv_variants_match_plain_c) {
  clttt_device *device = test_open_device();
  const int out = 37, in = 301, ld = 305, W_offset = 3, x_offset = 2, y_offset = 5;
  float *W = malloc((size_t)(W_offset + out * ld) * sizeof *W), *x = malloc((size_t)(x_offset + in) * sizeof *x);
  float *y0 = malloc((size_t)(y_offset + out) * sizeof *y0), *y = malloc((size_t)(y_offset + out) * sizeof *y);
  fixture_fill(W, W_offset + out * ld, 1, "W", 1.0f, 0.0f);
  fixture_fill(x, x_offset + in, 2, "x", 1.0f, 0.0f);
  fixture_fill(y0, y_offset + out, 3, "y", 1.0f, 0.0f);
  cl_mem W_buffer = upload(device, W, (size_t)(W_offset + out * ld));
  cl_mem x_buffer = upload(device, x, (size_t)(x_offset + in));
  static const struct { int row_per_item, work_group_size; } variants[] = {{1, 16}, {1, 1}, {0, 64}, {0, 128}, {0, 8}, {0, 512}};
  const float betas[] = {0.0f, 0.5f};
  for (int v = 0; v < 6; v++) {
    for (int b = 0; b < 2; b++) {
      cl_mem y_buffer = upload(device, y0, (size_t)(y_offset + out));
      /* Installed as the device's parameter set, as a tuning cache would. */
      device->tuning.gemv_row_per_item = variants[v].row_per_item;
      device->tuning.gemv_work_group_size = variants[v].work_group_size;
      char options[64];
      snprintf(options, sizeof options, "GEMV_ROW_PER_ITEM=%d GEMV_WGS=%d", variants[v].row_per_item,
               variants[v].work_group_size);
      cl_kernel kernel = NULL;
      int status = runtime_kernel(device, "gemv.cl", "gemv", NULL, &kernel);
      ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", options, clttt_last_error());
      float beta = betas[b];
      ck_assert_int_eq(runtime_set_args(device, kernel, "gemv", 10, sizeof(cl_mem), &y_buffer, sizeof(int), &y_offset,
                                        sizeof(cl_mem), &x_buffer, sizeof(int), &x_offset, sizeof(cl_mem), &W_buffer,
                                        sizeof(int), &W_offset, sizeof(int), &ld, sizeof(int), &out, sizeof(int), &in,
                                        sizeof(float), &beta),
                       CLTTT_SUCCESS);
      tuning_launch geometry = tuning_launch_gemv(&device->tuning, (size_t)out);
      ck_assert_int_eq(runtime_launch(device, kernel, "gemv", 1, geometry.global, geometry.local), CLTTT_SUCCESS);
      ck_assert_int_eq(runtime_download(device, y_buffer, 0, (size_t)(y_offset + out) * sizeof(float), y, "y"),
                       CLTTT_SUCCESS);
      for (int i = 0; i < y_offset; i++)
        ck_assert_msg(y[i] == y0[i], "%s: wrote before the offset", options);
      for (int row = 0; row < out; row++) {
        double expected = beta * (double)y0[y_offset + row], magnitude = fabs(expected);
        for (int c = 0; c < in; c++) {
          double term = (double)W[W_offset + row * ld + c] * (double)x[x_offset + c];
          expected += term;
          magnitude += fabs(term);
        }
        ck_assert_msg(fabs(y[y_offset + row] - expected) <= 1e-5 * magnitude, "%s beta %g row %d: %g vs %g", options,
                      (double)beta, row, (double)y[y_offset + row], expected);
      }
      runtime_release(&y_buffer);
    }
  }
  /* The dispatcher: gemm_linear with one row takes this path on any device. */
  cl_mem y_buffer = upload(device, y0, (size_t)(y_offset + out));
  ck_assert_int_eq(gemm_linear(device, "one row", 1, (size_t)out, (size_t)in, view(x_buffer, (size_t)x_offset, (size_t)in),
                               view(W_buffer, (size_t)W_offset, (size_t)ld), 0.0f, view(y_buffer, (size_t)y_offset, 1)),
                   CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_download(device, y_buffer, 0, (size_t)(y_offset + out) * sizeof(float), y, "y"), CLTTT_SUCCESS);
  double expected = 0;
  for (int c = 0; c < in; c++)
    expected += (double)W[W_offset + c] * (double)x[x_offset + c];
  ck_assert_double_eq_tol(y[y_offset], expected, 1e-4);
  runtime_release(&y_buffer);
  runtime_release(&W_buffer);
  runtime_release(&x_buffer);
  free(W);
  free(x);
  free(y0);
  free(y);
  clttt_device_close(device);
}
END_TEST

static Suite *kernels_suite(void) {
  Suite *suite = suite_create("kernels");
  TCase *gemv = tcase_create("gemv");
  tcase_add_test(gemv, test_gemv_variants_match_plain_c);
  suite_add_tcase(suite, gemv);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(kernels_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
