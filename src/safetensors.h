/* safetensors files, memory-mapped and validated before use.
 * Format: 8-byte little-endian header length N, N bytes of JSON, then the
 * data area. Each tensor's data_offsets are relative to the data area. */
#ifndef CLTTT_SAFETENSORS_H
#define CLTTT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clttt.h"

#define SAFETENSORS_MAX_DIMS 8

typedef enum { SAFETENSORS_F32, SAFETENSORS_F16, SAFETENSORS_BF16 } safetensors_dtype;

typedef struct {
  char *name;
  safetensors_dtype dtype;
  int ndim;
  int64_t shape[SAFETENSORS_MAX_DIMS];
  const unsigned char *data; /* inside the mapping */
  size_t nbytes;
} safetensors_tensor;

typedef struct {
  char *path;
  void *map;
  size_t map_size;
  safetensors_tensor *tensors;
  int count;
} safetensors_file;

/* Maps and validates `path`: header length within the file, JSON well formed,
 * dtype F32/F16/BF16 only, byte size = product of shape x dtype size, every
 * tensor's offsets inside the data area, and, as the format requires, a
 * header of at most 100 MB and tensors that fill the data area back to back
 * (no overlap, no gap, no trailing bytes). Only a regular file is opened.
 * "__metadata__" is allowed and ignored. Errors name the file, the tensor
 * and the offsets. */
clttt_status safetensors_open(safetensors_file *file, const char *path);
void safetensors_close(safetensors_file *file);
const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name);
/* Converts any supported dtype to float32 (the one place that knows dtypes). */
void safetensors_to_f32(const safetensors_tensor *tensor, float *out);
const char *safetensors_dtype_name(safetensors_dtype dtype);
/* Drops the file's pages under `tensor` from the process's resident memory
 * once the tensor is on the device: loading a checkpoint then never holds
 * the file and the device copy resident at once (on a CPU device both are
 * host memory). Touched again, the pages are read back from the file. */
void safetensors_release_pages(const safetensors_file *file, const safetensors_tensor *tensor);

#endif
