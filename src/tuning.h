/* Per-device performance parameters of our kernels, passed to the OpenCL
 * compiler as -D options. Each .cl file has a default for each parameter
 * (#ifndef WGS / #define WGS 64), so it also compiles alone. */
#ifndef CLTTT_TUNING_H
#define CLTTT_TUNING_H

#include <stddef.h>

#include "clttt.h"

typedef struct {
  int work_group_size;     /* WGS: row-wise kernels (norms, softmax rows, gating) */
  int vector_width;        /* VECTOR_WIDTH: elementwise kernels */
  int attention_block_q;   /* ATTENTION_BLOCK_Q: queries per work-group */
  int attention_block_k;   /* ATTENTION_BLOCK_K: keys staged in local memory per step */
  int has_fp16;            /* HAS_FP16 */
} tuning_params;

/* Built-in defaults by device type and vendor (NVIDIA, AMD, Intel GPU, CPU). */
void tuning_defaults(const clttt_device_info *info, tuning_params *params);
/* "-DWGS=64 -DVECTOR_WIDTH=4 ..." into buffer. */
void tuning_defines(const tuning_params *params, char *buffer, size_t capacity);

#endif
