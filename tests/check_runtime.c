/* The OpenCL layer: discovery, selection, kernel builds, launches, errors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "ops.h"
#include "runtime.h"

/* In CI an OpenCL device (PoCL) always exists, so none is a failure. */
static clttt_device *open_default_device(void) {
  clttt_device *device = NULL;
  int status = clttt_device_open(&device, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "no device: %s", clttt_last_error());
  return device;
}

START_TEST(test_list_devices) {
  int count = -1;
  ck_assert_int_eq(clttt_list_devices(NULL, 0, &count), CLTTT_SUCCESS);
  ck_assert_int_ge(count, 1);
  clttt_device_info *infos = calloc((size_t)count, sizeof *infos);
  int again = 0;
  ck_assert_int_eq(clttt_list_devices(infos, count, &again), CLTTT_SUCCESS);
  ck_assert_int_eq(again, count);
  for (int i = 0; i < count; i++) {
    ck_assert_int_eq(infos[i].index, i);
    ck_assert_msg(infos[i].name[0] != '\0', "device %d has no name", i);
    ck_assert_uint_gt(infos[i].compute_units, 0);
    ck_assert_uint_gt(infos[i].global_memory, 0);
    ck_assert_uint_gt(infos[i].max_work_group_size, 0);
  }
  free(infos);
  ck_assert_int_eq(clttt_list_devices(NULL, 0, NULL), CLTTT_ERROR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(test_select_by_index_and_name) {
  clttt_device_info first;
  int count = 0;
  ck_assert_int_eq(clttt_list_devices(&first, 1, &count), CLTTT_SUCCESS);

  clttt_device *by_index = NULL;
  ck_assert_int_eq(clttt_device_open(&by_index, "0"), CLTTT_SUCCESS);
  ck_assert_str_eq(clttt_device_get_info(by_index)->name, first.name);

  /* A case-flipped substring of the name selects the same device. */
  char selector[8] = {0};
  snprintf(selector, sizeof selector, "%.4s", first.name);
  for (char *c = selector; *c; c++)
    *c = (char)((*c >= 'a' && *c <= 'z') ? *c - 32 : (*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
  clttt_device *by_name = NULL;
  ck_assert_int_eq(clttt_device_open(&by_name, selector), CLTTT_SUCCESS);
  ck_assert_str_eq(clttt_device_get_info(by_name)->name, first.name);

  /* Two open devices at once are independent handles. */
  ck_assert_ptr_ne(by_index, by_name);
  clttt_device_close(by_index);
  clttt_device_close(by_name);
}
END_TEST

START_TEST(test_select_nothing_matches) {
  clttt_device *device = (clttt_device *)0x1;
  ck_assert_int_eq(clttt_device_open(&device, "no-such-device-xyz"), CLTTT_ERROR_NO_DEVICE);
  ck_assert_ptr_null(device);
  ck_assert_msg(strstr(clttt_last_error(), "no-such-device-xyz") != NULL, "message: %s",
                clttt_last_error());
  ck_assert_int_eq(clttt_device_open(&device, "999"), CLTTT_ERROR_NO_DEVICE);
}
END_TEST

START_TEST(test_environment_selects_device) {
  setenv("CLTTT_DEVICE", "no-such-device-xyz", 1);
  clttt_device *device = NULL;
  int status = clttt_device_open(&device, NULL);
  unsetenv("CLTTT_DEVICE");
  ck_assert_int_eq(status, CLTTT_ERROR_NO_DEVICE);
  /* An explicit selector wins over the environment. */
  setenv("CLTTT_DEVICE", "no-such-device-xyz", 1);
  status = clttt_device_open(&device, "0");
  unsetenv("CLTTT_DEVICE");
  ck_assert_int_eq(status, CLTTT_SUCCESS);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_status_names) {
  ck_assert_str_eq(clttt_status_name(-5), "CL_OUT_OF_RESOURCES");
  ck_assert_str_eq(clttt_status_name(CL_BUILD_PROGRAM_FAILURE), "CL_BUILD_PROGRAM_FAILURE");
  ck_assert_str_eq(clttt_status_name(CL_INVALID_KERNEL_NAME), "CL_INVALID_KERNEL_NAME");
  ck_assert_str_eq(clttt_status_name(CLTTT_SUCCESS), "CLTTT_SUCCESS");
  ck_assert_str_eq(clttt_status_name(CLTTT_ERROR_BAD_CHECKPOINT), "CLTTT_ERROR_BAD_CHECKPOINT");
  ck_assert_str_eq(clttt_status_name(12345), "UNKNOWN_STATUS");
  clttt_device *device = open_default_device();
  int status = runtime_check(device, CL_OUT_OF_RESOURCES, "testing");
  ck_assert_int_eq(status, CL_OUT_OF_RESOURCES);
  ck_assert_msg(strstr(clttt_last_error(), "CL_OUT_OF_RESOURCES") != NULL, "%s", clttt_last_error());
  ck_assert_msg(strstr(clttt_last_error(), "testing") != NULL, "%s", clttt_last_error());
  ck_assert_msg(strstr(clttt_last_error(), device->info.name) != NULL, "%s", clttt_last_error());
  clttt_device_close(device);
}
END_TEST

START_TEST(test_embedded_kernels_build) {
  clttt_device *device = open_default_device();
  /* Every kernel of every embedded file, each checked against the argument
   * count its op passes. */
  kernel_set kernels;
  int status = kernel_set_create(&kernels, device, &device->tuning, 128, 0);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  for (int k = 0; k < KERNEL_COUNT; k++)
    ck_assert_ptr_nonnull(kernels.kernel[k]);
  /* Built once: a second set shares the programs, with kernel objects of its own. */
  int programs = device->program_count;
  kernel_set second;
  ck_assert_int_eq(kernel_set_create(&second, device, &device->tuning, 128, 0), CLTTT_SUCCESS);
  ck_assert_int_eq(device->program_count, programs);
  ck_assert_ptr_ne(second.kernel[KERNEL_RMSNORM], kernels.kernel[KERNEL_RMSNORM]);
  cl_program first_program = NULL, second_program = NULL;
  const char *options = "-cl-std=CL1.2";
  ck_assert_int_eq(runtime_program(device, "elementwise.cl", options, &first_program), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_program(device, "elementwise.cl", options, &second_program), CLTTT_SUCCESS);
  ck_assert_ptr_eq(first_program, second_program);
  kernel_set_release(&second);
  kernel_set_release(&kernels);

  cl_kernel missing = NULL;
  ck_assert_int_eq(runtime_create_kernel(device, first_program, "elementwise.cl", "no_such_kernel", &missing),
                   CL_INVALID_KERNEL_NAME);
  ck_assert_msg(strstr(clttt_last_error(), "no_such_kernel") != NULL, "%s", clttt_last_error());
  cl_program none = NULL;
  ck_assert_int_eq(runtime_program(device, "no_such_file.cl", options, &none), CLTTT_ERROR_INVALID_ARGUMENT);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_round_trip) {
  clttt_device *device = open_default_device();
  enum { COUNT = 1000 };
  float x[COUNT], y[COUNT], result[COUNT];
  for (int i = 0; i < COUNT; i++) {
    x[i] = (float)i * 0.5f;
    y[i] = 1.0f / (float)(i + 1);
  }
  cl_mem x_buffer = NULL, y_buffer = NULL;
  ck_assert_int_eq(runtime_alloc(device, sizeof x, "x", &x_buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_alloc(device, sizeof y, "y", &y_buffer), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, x_buffer, 0, sizeof x, x, "x"), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_upload(device, y_buffer, 0, sizeof y, y, "y"), CLTTT_SUCCESS);
  /* COUNT is no multiple of the group size: the launcher rounds up and the
   * kernel guards its bounds. */
  kernel_set kernels;
  ck_assert_int_eq(kernel_set_create(&kernels, device, &device->tuning, 128, 0), CLTTT_SUCCESS);
  ck_assert_int_eq(op_add_in_place(&kernels, x_buffer, y_buffer, COUNT), CLTTT_SUCCESS);
  kernel_set_release(&kernels);
  ck_assert_int_eq(runtime_download(device, x_buffer, 0, sizeof result, result, "x"), CLTTT_SUCCESS);
  for (int i = 0; i < COUNT; i++)
    ck_assert_float_eq(result[i], x[i] + y[i]); /* one rounding, the same on both sides */

  /* Zeroing and copying part of a buffer. */
  ck_assert_int_eq(runtime_zero(device, x_buffer, 4 * sizeof(float), 2 * sizeof(float), "x"), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_copy(device, y_buffer, 0, x_buffer, 0, 8 * sizeof(float), "x to y"), CLTTT_SUCCESS);
  ck_assert_int_eq(runtime_download(device, y_buffer, 0, 8 * sizeof(float), result, "y"), CLTTT_SUCCESS);
  ck_assert_float_eq(result[3], x[3] + 1.0f / 4.0f);
  ck_assert_float_eq(result[4], 0.0f);
  ck_assert_float_eq(result[5], 0.0f);
  ck_assert_float_eq(result[6], x[6] + 1.0f / 7.0f);

  /* Reading past the end of a buffer is an OpenCL error, reported by name. */
  int status = runtime_download(device, x_buffer, 0, sizeof result * 2, result, "x");
  ck_assert_int_eq(status, CL_INVALID_VALUE);
  ck_assert_msg(strstr(clttt_last_error(), "CL_INVALID_VALUE") != NULL, "%s", clttt_last_error());
  runtime_release(&x_buffer);
  runtime_release(&y_buffer);
  ck_assert_ptr_null(x_buffer);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_bad_kernel_gives_build_log) {
  clttt_device *device = open_default_device();
  cl_program program = NULL;
  const char *source = "__kernel void broken(__global float *x) { x[0] = undefined_name_here; }\n";
  int status = runtime_build_source(device, "broken.cl", source, "-cl-std=CL1.2", &program);
  ck_assert_int_eq(status, CLTTT_ERROR_KERNEL_BUILD);
  ck_assert_ptr_null(program);
  const char *message = clttt_last_error();
  ck_assert_msg(strstr(message, "broken.cl") != NULL, "%s", message);
  ck_assert_msg(strstr(message, "build log") != NULL, "%s", message);
  /* The compiler's own complaint names the undeclared identifier. */
  ck_assert_msg(strstr(message, "undefined_name_here") != NULL, "%s", message);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_kernel_directory_override) {
  char directory[] = "/tmp/clttt-kernels-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(directory));
  char path[256];
  snprintf(path, sizeof path, "%s/elementwise.cl", directory);
  FILE *file = fopen(path, "w");
  ck_assert_ptr_nonnull(file);
  fputs("__kernel void add_in_place(__global float *x, __global const float *y, const int n) {\n"
        "  int i = get_global_id(0); if (i < n) x[i] = 42.0f; }\n",
        file);
  fclose(file);
  setenv("CLTTT_KERNEL_DIR", directory, 1);
  char *text = NULL;
  ck_assert_int_eq(runtime_kernel_source("elementwise.cl", &text), CLTTT_SUCCESS);
  ck_assert_msg(strstr(text, "42.0f") != NULL, "override not read");
  free(text);
  ck_assert_int_eq(runtime_kernel_source("rmsnorm.cl", &text), CLTTT_ERROR_IO);
  ck_assert_msg(strstr(clttt_last_error(), "rmsnorm.cl") != NULL, "%s", clttt_last_error());
  unsetenv("CLTTT_KERNEL_DIR");
  ck_assert_int_eq(runtime_kernel_source("rmsnorm.cl", &text), CLTTT_SUCCESS);
  free(text);
  remove(path);
  rmdir(directory);
}
END_TEST

/* The per-op profile: off by default (a named error), on it charges a
 * feed's time to the ops that ran, by name, and their shares add up. */
START_TEST(test_profile_names_the_ops) {
  clttt_device *device = open_default_device();
  char table[8192];
  ck_assert_int_eq(clttt_device_profile_report(device, table, sizeof table, 0), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "profiling is off"));
  clttt_config config;
  /* Layer 0 a TTT layer, layer 1 plain (its down projection a GEMM). */
  ck_assert_int_eq(clttt_synthetic_config(&config, 64, 128, 2, 4, 2, 16, 256, 64, 2, 16, 1e-3f), CLTTT_SUCCESS);
  clttt_model *model = NULL;
  ck_assert_int_eq(clttt_model_synthetic(&model, device, &config, NULL, 1), CLTTT_SUCCESS);
  clttt_session *session = NULL;
  clttt_session_params params = clttt_session_default_params();
  params.context = 40;
  ck_assert_int_eq(clttt_session_create(&session, model, &params), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_device_set_profiling(device, 1), CLTTT_SUCCESS);
  int32_t tokens[33];
  for (int i = 0; i < 33; i++)
    tokens[i] = i * 7 % 256;
  float *logits = malloc(33 * 256 * sizeof *logits);
  ck_assert_int_eq(clttt_session_feed(session, tokens, 32, logits, 32), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(session, tokens + 32, 1, logits, 1), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_device_profile_report(device, table, sizeof table, 1), CLTTT_SUCCESS);
  /* Two layers, 32 + 1 rows: rmsnorm runs twice per layer and once for the
   * final norm per feed. */
  const char *rmsnorm = strstr(table, "\nrmsnorm ");
  ck_assert_msg(rmsnorm != NULL, "%s", table);
  long calls = 0;
  ck_assert_int_eq(sscanf(rmsnorm + 1, "rmsnorm %ld", &calls), 1);
  ck_assert_int_eq(calls, 2 * (2 * 2 + 1));
  ck_assert_msg(strstr(table, "q, k, v projections (") && strstr(table, "MLP down projection") &&
                    strstr(table, "TTT update") && strstr(table, "total"),
                "%s", table);
  double share = 0, sum = 0;
  for (const char *line = strchr(table, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
    const char *percent = strchr(line + 1, '%');
    const char *end = strchr(line + 1, '\n');
    if (percent && (!end || percent < end)) {
      const char *number = percent;
      while (number > line + 1 && number[-1] != ' ')
        number--;
      share = atof(number);
      sum += share;
    }
  }
  ck_assert_msg(sum > 99.0 && sum < 101.0, "shares add up to %g:\n%s", sum, table);
  /* After the reset, an empty table. */
  ck_assert_int_eq(clttt_device_profile_report(device, table, sizeof table, 0), CLTTT_SUCCESS);
  ck_assert_ptr_null(strstr(table, "rmsnorm"));
  /* The caller's time between feeds is charged to no op: two one-token
   * feeds of this 2-layer model take milliseconds (tens under sanitizers),
   * so their total stays far below the 600 ms slept between them, which the
   * first upload of the second feed used to absorb. */
  ck_assert_int_eq(clttt_session_feed(session, tokens, 1, logits, 1), CLTTT_SUCCESS);
  const struct timespec pause = {0, 600 * 1000 * 1000};
  nanosleep(&pause, NULL);
  ck_assert_int_eq(clttt_session_feed(session, tokens + 1, 1, logits, 1), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_device_profile_report(device, table, sizeof table, 1), CLTTT_SUCCESS);
  const char *total_line = strstr(table, "\ntotal ");
  double total_ms = 1e9;
  ck_assert_msg(total_line && sscanf(total_line + 1, "total %lf", &total_ms) == 1, "%s", table);
  ck_assert_msg(total_ms < 300.0, "two feeds with a pause between them: %g ms profiled\n%s", total_ms, table);
  /* Counts start from zero after a reset: each label gets a fresh entry,
   * not the counts its slot held before (rmsnorm's slot had the first two
   * feeds' 10 calls, which the table showed again as 20). */
  rmsnorm = strstr(table, "\nrmsnorm ");
  ck_assert_msg(rmsnorm && sscanf(rmsnorm + 1, "rmsnorm %ld", &calls) == 1, "%s", table);
  ck_assert_msg(calls == 2 * (2 * 2 + 1), "rmsnorm: %ld calls in two one-token feeds\n%s", calls, table);
  ck_assert_int_eq(clttt_device_set_profiling(device, 0), CLTTT_SUCCESS);
  free(logits);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_config_free(&config);
  clttt_device_close(device);
}
END_TEST

static Suite *runtime_suite(void) {
  Suite *suite = suite_create("runtime");
  TCase *core = tcase_create("core");
  tcase_set_timeout(core, 600);
  tcase_add_test(core, test_list_devices);
  tcase_add_test(core, test_select_by_index_and_name);
  tcase_add_test(core, test_select_nothing_matches);
  tcase_add_test(core, test_environment_selects_device);
  tcase_add_test(core, test_status_names);
  tcase_add_test(core, test_embedded_kernels_build);
  tcase_add_test(core, test_round_trip);
  tcase_add_test(core, test_bad_kernel_gives_build_log);
  tcase_add_test(core, test_kernel_directory_override);
  tcase_add_test(core, test_profile_names_the_ops);
  suite_add_tcase(suite, core);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(runtime_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
