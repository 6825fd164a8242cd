/* The OpenCL programs clttt would build on a GPU this machine does not have,
 * with their exact build options: the built-in defaults of a described
 * device (NVIDIA, AMD or Intel), and optionally every candidate `clttt tune`
 * would build there. Nothing is built and no device is opened: the options
 * come from the library's own tuning_defaults, kernel_set_options,
 * packed_gemm_options and autotune_list, so they are the library's, not a
 * copy. bench/gpu_offline_build.sh compiles each line for NVIDIA's and AMD's
 * instruction sets and reports registers, spills and local memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autotune.h"
#include "kernel_sources.h"
#include "ops.h"
#include "packed_gemm.h"
#include "tuning.h"

#define MAX_FILES 16
#define MAX_LINES 4096
#define OPTIONS_CAPACITY 1152

typedef struct {
  const char *file;
  char options[OPTIONS_CAPACITY];
} program_line;

typedef struct {
  program_line *lines;
  int count;
} line_set;

/* What each vendor's OpenCL driver reports for its current GPUs: NVIDIA
 * 48 KiB of local memory per group and no cl_khr_fp16, AMD (ROCm) 64 KiB
 * and groups of at most 256, Intel 64 KiB. */
typedef struct {
  const char *name, *platform, *vendor;
  uint64_t local_memory;
  size_t max_work_group_size;
  int has_fp16;
} vendor_preset;

static const vendor_preset vendor_presets[] = {
    {"nvidia", "NVIDIA CUDA", "NVIDIA Corporation", 48 * 1024, 1024, 0},
    {"amd", "AMD Accelerated Parallel Processing", "Advanced Micro Devices, Inc.", 64 * 1024, 256, 1},
    {"intel", "Intel(R) OpenCL Graphics", "Intel(R) Corporation", 64 * 1024, 1024, 1},
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: kernel_options [--vendor nvidia|amd|intel] [--local-memory BYTES]\n"
          "                      [--max-work-group N] [--head-dim N] [--kv f16|f32] [--candidates]\n"
          "                      [--quick]\n"
          "Prints FILE<TAB>LABEL<TAB>OPTIONS, one line per distinct program: the cl/ files clttt\n"
          "builds on a GPU of this description with the library's built-in defaults (LABEL\n"
          "'defaults'), and with --candidates every other program `clttt tune` would build there\n"
          "(LABEL 'family: values', the first candidate that needs it). Nothing is built.\n"
          "  --vendor         the device's vendor class (default nvidia)\n"
          "  --local-memory   bytes of local memory per work-group (default: 49152 NVIDIA,\n"
          "                   65536 AMD and Intel)\n"
          "  --max-work-group the device's largest work-group (default: 1024 NVIDIA and Intel,\n"
          "                   256 AMD)\n"
          "  --head-dim       HEAD_DIM of the attention and RoPE programs (default 128)\n"
          "  --kv             the KV cache element type (default f16, the library's)\n"
          "  --candidates     also the tuner's candidates (its full lists; --quick: its quick ones)\n"
          "  --help           this text\n");
}

static int parse_int(const char *text, long minimum, long maximum, long *value) {
  char *end = NULL;
  long parsed = strtol(text, &end, 10);
  if (!end || end == text || *end != '\0' || parsed < minimum || parsed > maximum)
    return 0;
  *value = parsed;
  return 1;
}

/* Adds (file, options) unless an earlier line has both; 0 when full. */
static int add_line(line_set *set, const char *file, const char *label, const char *options) {
  for (int i = 0; i < set->count; i++)
    if (strcmp(set->lines[i].file, file) == 0 && strcmp(set->lines[i].options, options) == 0)
      return 1;
  if (set->count == MAX_LINES)
    return 0;
  program_line *line = &set->lines[set->count++];
  line->file = file;
  snprintf(line->options, sizeof line->options, "%s", options);
  printf("%s\t%s\t%s\n", file, label, options);
  return 1;
}

/* 1 when `file`'s text uses a parameter whose value differs between `a` and
 * `b`: every file of a kernel set gets the whole option string, so a
 * candidate that changes only RMSNORM_WGS would otherwise count as a new
 * build of every file. */
static int file_sees_difference(const char *file, const tuning_params *a, const tuning_params *b) {
  const char *text = NULL;
  for (int i = 0; i < kernel_source_count && !text; i++)
    if (strcmp(kernel_sources[i].name, file) == 0)
      text = kernel_sources[i].text;
  if (!text)
    return 1;
  for (int i = 0; i < tuning_parameter_count; i++)
    if (tuning_get(a, &tuning_parameters[i]) != tuning_get(b, &tuning_parameters[i]) &&
        strstr(text, tuning_parameters[i].name))
      return 1;
  return 0;
}

/* Every program a kernel set with `params` builds whose build differs from
 * the one with `defaults` in something the file reads, the packed GEMM's
 * three weight types and its update kernel included (the tuner builds those
 * on every device, even where CLBlast keeps the products by default). */
static int add_programs(line_set *set, const tuning_params *params, const tuning_params *defaults, int head_dim,
                        int kv_half, const char *label) {
  const char *files[MAX_FILES];
  int count = 0;
  kernel_set_files(files, MAX_FILES, &count);
  char options[OPTIONS_CAPACITY];
  kernel_set_options(params, head_dim, kv_half, options, sizeof options);
  for (int i = 0; i < count && i < MAX_FILES; i++)
    if ((params == defaults || file_sees_difference(files[i], params, defaults)) &&
        !add_line(set, files[i], label, options))
      return 0;
  static const char *const weight_types[3] = {"fp32", "bf16", "fp16"};
  for (int type = 0; type < 3; type++) {
    char typed_label[200];
    snprintf(typed_label, sizeof typed_label, "%s (%s weights)", label, weight_types[type]);
    packed_gemm_options(&params->gemm, (packed_gemm_type)type, options, sizeof options);
    if (!add_line(set, "gemm.cl", typed_label, options))
      return 0;
  }
  packed_gemm_update_options(&params->update, options, sizeof options);
  return add_line(set, "gemm_update.cl", label, options);
}

int main(int argc, char **argv) {
  const char *vendor = "nvidia";
  long local_memory = -1, max_work_group = -1, head_dim = 128;
  int kv_half = 1, candidates = 0, quick = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(arg, "--vendor") == 0 && value) {
      vendor = value;
      i++;
    } else if (strcmp(arg, "--local-memory") == 0 && value && parse_int(value, 1024, 1L << 30, &local_memory)) {
      i++;
    } else if (strcmp(arg, "--max-work-group") == 0 && value && parse_int(value, 1, 1L << 20, &max_work_group)) {
      i++;
    } else if (strcmp(arg, "--head-dim") == 0 && value && parse_int(value, 2, 512, &head_dim) && head_dim % 2 == 0) {
      i++;
    } else if (strcmp(arg, "--kv") == 0 && value && (strcmp(value, "f16") == 0 || strcmp(value, "f32") == 0)) {
      kv_half = strcmp(value, "f16") == 0;
      i++;
    } else if (strcmp(arg, "--candidates") == 0) {
      candidates = 1;
    } else if (strcmp(arg, "--quick") == 0) {
      quick = 1;
    } else {
      fprintf(stderr, "kernel_options: bad or incomplete argument '%s' (an even --head-dim of 2-512, --kv f16 "
                      "or f32, sizes as whole numbers)\n",
              arg);
      usage(stderr);
      return 2;
    }
  }

  clttt_device_info info;
  memset(&info, 0, sizeof info);
  snprintf(info.type, sizeof info.type, "GPU");
  info.compute_units = 64;
  info.global_memory = 16ull << 30;
  info.max_allocation = 4ull << 30;
  const vendor_preset *preset = NULL;
  for (size_t i = 0; i < sizeof vendor_presets / sizeof vendor_presets[0] && !preset; i++)
    if (strcmp(vendor, vendor_presets[i].name) == 0)
      preset = &vendor_presets[i];
  if (!preset) {
    fprintf(stderr, "kernel_options: --vendor '%s': nvidia, amd or intel\n", vendor);
    return 2;
  }
  snprintf(info.platform, sizeof info.platform, "%s", preset->platform);
  snprintf(info.vendor, sizeof info.vendor, "%s", preset->vendor);
  info.local_memory = preset->local_memory;
  info.max_work_group_size = preset->max_work_group_size;
  info.has_fp16 = preset->has_fp16;
  snprintf(info.name, sizeof info.name, "%s GPU (described, not opened)", vendor);
  if (local_memory > 0)
    info.local_memory = (uint64_t)local_memory;
  if (max_work_group > 0)
    info.max_work_group_size = (size_t)max_work_group;

  line_set set = {calloc(MAX_LINES, sizeof(program_line)), 0};
  if (!set.lines) {
    fprintf(stderr, "kernel_options: out of memory for %d lines\n", MAX_LINES);
    return 1;
  }
  tuning_params defaults;
  tuning_defaults(&info, &defaults);
  int ok = add_programs(&set, &defaults, &defaults, (int)head_dim, kv_half, "defaults");
  if (ok && candidates) {
    autotune_options options;
    autotune_options_init(&options, quick);
    options.families = AUTOTUNE_ALL_FAMILIES;
    options.shape.head_dim = (int)head_dim;
    autotune_result result;
    if (autotune_list(&info, &options, &result) != CLTTT_SUCCESS) {
      fprintf(stderr, "kernel_options: %s\n", clttt_last_error());
      free(set.lines);
      return 1;
    }
    for (int c = 0; c < result.candidate_count && ok; c++) {
      const autotune_candidate *candidate = &result.candidates[c];
      char label[160];
      snprintf(label, sizeof label, "%s: %s", autotune_family_name(candidate->family), candidate->label);
      ok = add_programs(&set, &candidate->params, &defaults, (int)head_dim, kv_half, label);
    }
    autotune_result_free(&result);
  }
  free(set.lines);
  if (!ok) {
    fprintf(stderr, "kernel_options: more than %d distinct programs\n", MAX_LINES);
    return 1;
  }
  return 0;
}
