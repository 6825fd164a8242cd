/* Every OpenCL program clttt builds on a GPU, with the options the library
 * gives it on NVIDIA, AMD and Intel devices (bench/kernel_options), built
 * offline for those GPUs by bench/gpu_offline_build.sh: clang-15 and
 * libclc-15 for NVIDIA's PTX, AMD's gfx1030 and Intel's SPIR front end, and
 * ptxas where the CUDA toolkit is installed. No GPU is lent to CI; this is
 * what catches, before a user does, a kernel NVIDIA's compiler would refuse
 * (half arithmetic without cl_khr_fp16, which NVIDIA lacks) or a tile that
 * outgrows a GPU's local memory. The local memory the compilers report is
 * also held against the library's own formula for the GEMM tiles
 * (packed_gemm_params.c), which decides which tiles a device may use. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops.h"
#include "test_util.h"

#define OUTPUT_CAPACITY (1 << 20)

static char script[1024], kernel_options[1024];

/* The script's standard output for `vendor`, and its exit status. */
static char *run_build(const char *vendor, const char *options_program, int *exit_status) {
  char command[3200];
  snprintf(command, sizeof command, "'%s' --vendor %s --kernel-options '%s'", script, vendor, options_program);
  FILE *pipe = popen(command, "r");
  ck_assert_msg(pipe != NULL, "cannot start %s", command);
  char *output = calloc(OUTPUT_CAPACITY, 1);
  ck_assert_ptr_nonnull(output);
  size_t used = fread(output, 1, OUTPUT_CAPACITY - 1, pipe);
  output[used] = '\0';
  int status = pclose(pipe);
  *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

/* The first line of `output` that contains `pattern`, into `line`; NULL
 * when none does. Result lines are vendor, file, label, kernel, verdict and
 * details, tab-separated. */
static const char *find_line(const char *output, const char *pattern, char *line, size_t capacity) {
  const char *at = strstr(output, pattern);
  if (!at)
    return NULL;
  while (at > output && at[-1] != '\n')
    at--;
  size_t length = strcspn(at, "\n");
  if (length >= capacity)
    length = capacity - 1;
  memcpy(line, at, length);
  line[length] = '\0';
  return line;
}

/* Every program file of a kernel set, and the GEMM's, appear in `output`
 * with no failure. */
static void check_all_files_built(const char *vendor, const char *output, int exit_status) {
  ck_assert_msg(exit_status == 0, "%s: gpu_offline_build exited with %d:\n%s", vendor, exit_status, output);
  ck_assert_msg(strstr(output, "\tFAIL\t") == NULL, "%s: a program failed:\n%s", vendor, output);
  const char *files[18];
  int count = 0;
  kernel_set_files(files, 16, &count);
  ck_assert_int_ge(count, 7);
  ck_assert_int_le(count, 16);
  files[count++] = "gemm.cl";
  files[count++] = "gemm_update.cl";
  for (int i = 0; i < count; i++) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%s\t%s\tdefaults", vendor, files[i]);
    ck_assert_msg(strstr(output, pattern) != NULL, "%s: no result for %s:\n%s", vendor, files[i], output);
  }
}

START_TEST(test_nvidia) {
  int status = 0;
  char *output = run_build("nvidia", kernel_options, &status);
  check_all_files_built("nvidia", output, status);
  char line[1024];
  if (find_line(output, "\tgemm.cl\tdefaults (bf16 weights)\tpacked_gemm\t", line, sizeof line)) {
    /* ptxas ran: NVIDIA's defaults, 64 x 64 tiles 16 deep (src/packed_gemm_params.c), hold
     * (16 x (64 + 1) + 16 x 64) floats of local memory, and a 16 x 16 group */
    ck_assert_msg(strstr(line, " 8256 bytes shared") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "work-group 256 fixed") != NULL, "%s", line);
    ck_assert_msg(strstr(line, " 0 bytes spilled") != NULL, "the GEMM tile spills: %s", line);
  } else {
    ck_assert_msg(strstr(output, "\tPTX only\t") != NULL, "neither ptxas counts nor PTX:\n%s", output);
  }
  free(output);
}
END_TEST

START_TEST(test_amd) {
  int status = 0;
  char *output = run_build("amd", kernel_options, &status);
  check_all_files_built("amd", output, status);
  char line[1024];
  /* AMD's defaults are NVIDIA's tiles (64 wavefront lanes x 4 = a 256 group) */
  ck_assert_msg(find_line(output, "\tgemm.cl\tdefaults (fp32 weights)\tpacked_gemm\t", line, sizeof line),
                "%s", output);
  ck_assert_msg(strstr(line, "LDS 8256 bytes") != NULL, "%s", line);
  ck_assert_msg(strstr(line, "scratch 0 bytes") != NULL, "the GEMM tile spills: %s", line);
  /* the update: V's and h's 64 x 16 slices, 2 x 16 x 64 floats */
  ck_assert_msg(find_line(output, "\tgemm_update.cl\tdefaults\tgemm_update\t", line, sizeof line), "%s", output);
  ck_assert_msg(strstr(line, "LDS 8192 bytes") != NULL, "%s", line);
  free(output);
}
END_TEST

START_TEST(test_intel) {
  int status = 0;
  char *output = run_build("intel", kernel_options, &status);
  check_all_files_built("intel", output, status);
  free(output);
}
END_TEST

START_TEST(test_oversized_tile_fails) {
  /* A tile past AMD's 64 KiB of LDS: 64 x (128 + 1) + 64 x 128 floats =
   * 65792 bytes, and a GEMM file that does not compile: both must be
   * reported, with exit status 1. */
  char directory[512], fake[700];
  test_make_temporary_directory(directory, sizeof directory);
  snprintf(fake, sizeof fake, "%s/fake_options", directory);
  test_write_text(directory, "fake_options",
                  "#!/bin/sh\n"
                  "printf 'gemm.cl\\tbig tile\\t-cl-std=CL1.2 -DGEMM_VARIANT=1 -DWEIGHT_TYPE=0 -DGEMM_NR=128 "
                  "-DGEMM_TILE_M=128 -DGEMM_TILE_K=64 -DGEMM_ITEM_M=8 -DGEMM_ITEM_N=8\\n'\n"
                  "printf 'gemm.cl\\tbad type\\t-cl-std=CL1.2 -DGEMM_VARIANT=1 -DWEIGHT_TYPE=7\\n'\n");
  ck_assert_int_eq(chmod(fake, 0755), 0);
  int status = 0;
  char *output = run_build("amd", fake, &status);
  ck_assert_msg(status == 1, "exit status %d:\n%s", status, output);
  char line[1024];
  ck_assert_msg(find_line(output, "\tgemm.cl\tbad type\t", line, sizeof line), "%s", output);
  ck_assert_msg(strstr(line, "\tFAIL\t") && strstr(line, "WEIGHT_TYPE must be"), "%s", line);
  ck_assert_msg(find_line(output, "\tgemm.cl\tbig tile\t", line, sizeof line), "%s", output);
  ck_assert_msg(strstr(line, "\tFAIL\t") != NULL, "the 65792-byte tile passed: %s", line);
  free(output);
  test_remove_directory(directory);
}
END_TEST

int main(void) {
  const char *data = getenv("CLTTT_TEST_DATA"), *build = getenv("CLTTT_BUILD_DIR");
  if (!data || !build) {
    fprintf(stderr, "check_gpu_build: CLTTT_TEST_DATA and CLTTT_BUILD_DIR are set by make check\n");
    return 1;
  }
  snprintf(script, sizeof script, "%s/../bench/gpu_offline_build.sh", data);
  snprintf(kernel_options, sizeof kernel_options, "%s/bench/kernel_options", build);
  /* The compilers come from Debian's clang-15, llvm-15 and libclc-15 (the
   * README's first command and CI install them); without them the suite
   * reports itself skipped, which CI never accepts. */
  if (system("command -v clang-15 llvm-link-15 opt-15 llc-15 llvm-dis-15 > /dev/null && "
             "test -f /usr/lib/clc/nvptx64--nvidiacl.bc && test -f /usr/lib/clc/amdgcn--amdhsa.bc") != 0) {
    fprintf(stderr, "check_gpu_build: skipped: needs clang-15, llvm-15 and libclc-15 (apt-get install)\n");
    return 77;
  }
  Suite *suite = suite_create("gpu_build");
  TCase *vendors = tcase_create("vendors");
  tcase_set_timeout(vendors, 600);
  tcase_add_test(vendors, test_nvidia);
  tcase_add_test(vendors, test_amd);
  tcase_add_test(vendors, test_intel);
  tcase_add_test(vendors, test_oversized_tile_fails);
  suite_add_tcase(suite, vendors);
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? 0 : 1;
}
