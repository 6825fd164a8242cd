/* Per-device kernel parameters: built-in defaults per vendor. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tuning.h"

static int contains_ignoring_case(const char *haystack, const char *needle) {
  size_t length = strlen(needle);
  for (; *haystack; haystack++)
    if (strncasecmp(haystack, needle, length) == 0)
      return 1;
  return 0;
}

void tuning_defaults(const clttt_device_info *info, tuning_params *params) {
  /* CPUs (PoCL) vectorise across work-items, so large groups help and the
   * attention tile is sized for cache; GPUs want warp/wavefront multiples. */
  params->work_group_size = 64;
  params->vector_width = 4;
  params->attention_block_q = 16;
  params->attention_block_k = 32;
  params->has_fp16 = info->has_fp16;
  if (strcmp(info->type, "CPU") == 0) {
    params->work_group_size = 64;
    params->attention_block_q = 16;
    params->attention_block_k = 64;
  } else if (contains_ignoring_case(info->vendor, "nvidia")) {
    params->work_group_size = 128;
    params->attention_block_q = 32;
    params->attention_block_k = 32;
  } else if (contains_ignoring_case(info->vendor, "advanced micro") ||
             contains_ignoring_case(info->vendor, "amd")) {
    params->work_group_size = 64;
    params->attention_block_q = 64;
    params->attention_block_k = 32;
  } else if (contains_ignoring_case(info->vendor, "intel")) {
    params->work_group_size = 64;
    params->attention_block_q = 16;
    params->attention_block_k = 32;
  }
  if ((size_t)params->work_group_size > info->max_work_group_size && info->max_work_group_size > 0)
    params->work_group_size = (int)info->max_work_group_size;
  if ((size_t)params->attention_block_q > info->max_work_group_size && info->max_work_group_size > 0)
    params->attention_block_q = (int)info->max_work_group_size;
}

void tuning_defines(const tuning_params *params, char *buffer, size_t capacity) {
  snprintf(buffer, capacity,
           "-DWGS=%d -DVECTOR_WIDTH=%d -DATTENTION_BLOCK_Q=%d -DATTENTION_BLOCK_K=%d -DHAS_FP16=%d",
           params->work_group_size, params->vector_width, params->attention_block_q,
           params->attention_block_k, params->has_fp16);
}
