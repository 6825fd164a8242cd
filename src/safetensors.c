/* safetensors reader: the whole file is mapped read-only and every header
 * entry is checked against the mapping before any tensor is handed out, so
 * that no later read can run past the file whatever the header claims. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "file.h"
#include "safetensors.h"

#define HEADER_LENGTH_BYTES 8
/* The format's own limit: a header this long is not a real checkpoint. */
#define SAFETENSORS_MAX_HEADER_BYTES 100000000ull

const char *safetensors_dtype_name(safetensors_dtype dtype) {
  switch (dtype) {
    case SAFETENSORS_F32: return "F32";
    case SAFETENSORS_F16: return "F16";
    case SAFETENSORS_BF16: return "BF16";
  }
  return "unknown";
}

static size_t dtype_size(safetensors_dtype dtype) { return dtype == SAFETENSORS_F32 ? 4 : 2; }

static int dtype_from_name(const char *name, safetensors_dtype *dtype) {
  if (strcmp(name, "F32") == 0)
    *dtype = SAFETENSORS_F32;
  else if (strcmp(name, "F16") == 0)
    *dtype = SAFETENSORS_F16;
  else if (strcmp(name, "BF16") == 0)
    *dtype = SAFETENSORS_BF16;
  else
    return 0;
  return 1;
}

void safetensors_close(safetensors_file *file) {
  if (!file)
    return;
  if (file->map && file->map != MAP_FAILED)
    munmap(file->map, file->map_size);
  for (int i = 0; i < file->count; i++)
    free(file->tensors[i].name);
  free(file->tensors);
  free(file->path);
  memset(file, 0, sizeof *file);
}

/* Jansson keeps integers as json_int_t; offsets and dims must be whole,
 * non-negative numbers to mean anything. */
static int non_negative_integer(const json_t *value, uint64_t *out) {
  if (!json_is_integer(value) || json_integer_value(value) < 0)
    return 0;
  *out = (uint64_t)json_integer_value(value);
  return 1;
}

static clttt_status read_entry(const safetensors_file *file, const char *name, const json_t *entry,
                               size_t data_size, const unsigned char *data_area,
                               safetensors_tensor *tensor, uint64_t *begin_out) {
  const char *path = file->path;
  if (!json_is_object(entry))
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s: header entry is not an object",
                      path, name);

  const json_t *dtype_value = json_object_get(entry, "dtype");
  if (!json_is_string(dtype_value))
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s: dtype missing or not a string",
                      path, name);
  const char *dtype_text = json_string_value(dtype_value);
  if (!dtype_from_name(dtype_text, &tensor->dtype))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                      "%s: tensor %s has dtype %s; only F32, F16 and BF16 are supported", path,
                      name, dtype_text);

  const json_t *shape = json_object_get(entry, "shape");
  if (!json_is_array(shape))
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s: shape missing or not an array",
                      path, name);
  size_t ndim = json_array_size(shape);
  if (ndim > SAFETENSORS_MAX_DIMS)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s has %zu dimensions, at most %d allowed",
                      path, name, ndim, SAFETENSORS_MAX_DIMS);
  /* The element count is accumulated in bytes with an overflow check, since
   * a hostile header can list dims whose product wraps around. */
  uint64_t expected_bytes = dtype_size(tensor->dtype);
  for (size_t i = 0; i < ndim; i++) {
    uint64_t dim = 0;
    if (!non_negative_integer(json_array_get(shape, i), &dim))
      return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                        "%s: tensor %s: shape entry %zu is not a non-negative integer", path, name, i);
    tensor->shape[i] = (int64_t)dim;
    if (dim != 0 && expected_bytes > UINT64_MAX / dim)
      return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s: shape is too large", path, name);
    expected_bytes *= dim;
  }
  tensor->ndim = (int)ndim;

  const json_t *offsets = json_object_get(entry, "data_offsets");
  uint64_t begin = 0, end = 0;
  if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
      !non_negative_integer(json_array_get(offsets, 0), &begin) ||
      !non_negative_integer(json_array_get(offsets, 1), &end))
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: tensor %s: data_offsets must be [begin, end] of non-negative integers",
                      path, name);
  if (begin > end)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: tensor %s: data_offsets begin %llu is after end %llu", path, name,
                      (unsigned long long)begin, (unsigned long long)end);
  if (end > data_size)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: tensor %s: data_offsets [%llu, %llu] past end of the %zu-byte data area "
                      "(truncated file?)",
                      path, name, (unsigned long long)begin, (unsigned long long)end, data_size);
  if (end - begin != expected_bytes)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: tensor %s: data_offsets span %llu bytes but shape and dtype %s need %llu",
                      path, name, (unsigned long long)(end - begin), dtype_text,
                      (unsigned long long)expected_bytes);

  tensor->data = data_area + begin;
  tensor->nbytes = (size_t)(end - begin);
  *begin_out = begin;
  return CLTTT_SUCCESS;
}

typedef struct {
  uint64_t begin, end;
  size_t index;
} span;

static int compare_span(const void *a, const void *b) {
  const span *left = a, *right = b;
  if (left->begin != right->begin)
    return left->begin < right->begin ? -1 : 1;
  return left->end < right->end ? -1 : left->end > right->end ? 1 : 0;
}

static int compare_tensor_name(const void *a, const void *b) {
  return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

/* The format lays tensors out back to back from the start of the data area
 * to its end, so in offset order each tensor begins exactly where the one
 * before ended, and the last ends at the end of the file. Anything else is
 * an overlap, a gap or trailing bytes: a writer or a copy went wrong. */
static clttt_status check_layout(const safetensors_file *file, span *spans, size_t data_size,
                                 uint64_t data_start) {
  if (file->count > 0)
    qsort(spans, (size_t)file->count, sizeof *spans, compare_span);
  const safetensors_tensor *previous = NULL;
  uint64_t position = 0;
  for (int i = 0; i < file->count; i++) {
    const safetensors_tensor *tensor = &file->tensors[spans[i].index];
    if (spans[i].begin < position)
      return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                        "%s: tensors %s and %s overlap in the data area (%s ends at %llu, %s begins at %llu)",
                        file->path, previous->name, tensor->name, previous->name,
                        (unsigned long long)position, tensor->name,
                        (unsigned long long)spans[i].begin);
    if (spans[i].begin > position)
      return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                        "%s: gap of unused bytes [%llu, %llu) in the data area between %s and tensor %s "
                        "(file offsets %llu to %llu)",
                        file->path, (unsigned long long)position, (unsigned long long)spans[i].begin,
                        previous ? previous->name : "its start", tensor->name,
                        (unsigned long long)(data_start + position),
                        (unsigned long long)(data_start + spans[i].begin));
    previous = tensor;
    position = spans[i].end;
  }
  if (position != data_size)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: %llu trailing bytes: the tensors end at data offset %llu but the data area "
                      "is %zu bytes (file offsets %llu to %llu)",
                      file->path, (unsigned long long)(data_size - position),
                      (unsigned long long)position, data_size,
                      (unsigned long long)(data_start + position),
                      (unsigned long long)(data_start + data_size));
  return CLTTT_SUCCESS;
}

static clttt_status parse_header(safetensors_file *file, const unsigned char *header,
                                 size_t header_size, const unsigned char *data_area,
                                 size_t data_size) {
  const uint64_t data_start = HEADER_LENGTH_BYTES + (uint64_t)header_size;
  json_error_t error;
  json_t *root = json_loadb((const char *)header, header_size, JSON_REJECT_DUPLICATES, &error);
  if (!root)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: malformed JSON header at line %d column %d: %s", file->path, error.line,
                      error.column, error.text);
  if (!json_is_object(root)) {
    json_decref(root);
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: JSON header is not an object", file->path);
  }

  size_t capacity = json_object_size(root);
  file->tensors = calloc(capacity ? capacity : 1, sizeof *file->tensors);
  span *spans = calloc(capacity ? capacity : 1, sizeof *spans);
  if (!file->tensors || !spans) {
    free(spans);
    json_decref(root);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for %zu tensor entries",
                      file->path, capacity);
  }

  clttt_status status = CLTTT_SUCCESS;
  const char *key;
  json_t *value;
  json_object_foreach(root, key, value) {
    if (strcmp(key, "__metadata__") == 0)
      continue;
    safetensors_tensor *tensor = &file->tensors[file->count];
    tensor->name = strdup(key);
    if (!tensor->name) {
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for tensor name %s",
                          file->path, key);
      break;
    }
    /* Counted before validation so that close frees the name on failure. */
    file->count++;
    uint64_t begin = 0;
    status = read_entry(file, key, value, data_size, data_area, tensor, &begin);
    if (status != CLTTT_SUCCESS)
      break;
    spans[file->count - 1].begin = begin;
    spans[file->count - 1].end = begin + tensor->nbytes;
    spans[file->count - 1].index = (size_t)(file->count - 1);
  }
  json_decref(root);

  if (status == CLTTT_SUCCESS)
    status = check_layout(file, spans, data_size, data_start);
  free(spans);
  /* Sorted by name so that lookups can use binary search. */
  if (status == CLTTT_SUCCESS && file->count > 0)
    qsort(file->tensors, (size_t)file->count, sizeof *file->tensors, compare_tensor_name);
  return status;
}

clttt_status safetensors_open(safetensors_file *file, const char *path) {
  if (!file || !path)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "safetensors_open: file and path are required");
  memset(file, 0, sizeof *file);
  file->path = strdup(path);
  if (!file->path)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", path);

  int descriptor;
  uint64_t file_size;
  clttt_status opened = file_open_regular(path, &descriptor, &file_size);
  if (opened != CLTTT_SUCCESS) {
    safetensors_close(file);
    return opened;
  }
  if (file_size < HEADER_LENGTH_BYTES) {
    close(descriptor);
    safetensors_close(file);
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: file is %llu bytes, shorter than the 8-byte header length", path,
                      (unsigned long long)file_size);
  }
  if (file_size > SIZE_MAX) {
    close(descriptor);
    safetensors_close(file);
    return clttt_fail(CLTTT_ERROR_IO, "%s: file too large to map", path);
  }
  size_t size = (size_t)file_size;
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, descriptor, 0);
  int saved = errno;
  close(descriptor);
  if (map == MAP_FAILED) {
    safetensors_close(file);
    return clttt_fail(CLTTT_ERROR_IO, "%s: mmap failed: %s", path, strerror(saved));
  }
  file->map = map;
  file->map_size = size;

  const unsigned char *bytes = map;
  uint64_t header_size = 0;
  for (int i = HEADER_LENGTH_BYTES - 1; i >= 0; i--)
    header_size = (header_size << 8) | bytes[i];
  if (header_size > size - HEADER_LENGTH_BYTES) {
    safetensors_close(file);
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: header length %llu past end of file (%zu bytes)", path,
                      (unsigned long long)header_size, size);
  }
  if (header_size > SAFETENSORS_MAX_HEADER_BYTES) {
    safetensors_close(file);
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: header length %llu (file offsets 8 to %llu) is over the format's cap of %llu "
                      "bytes",
                      path, (unsigned long long)header_size,
                      (unsigned long long)header_size + HEADER_LENGTH_BYTES,
                      (unsigned long long)SAFETENSORS_MAX_HEADER_BYTES);
  }
  const unsigned char *data_area = bytes + HEADER_LENGTH_BYTES + header_size;
  size_t data_size = size - HEADER_LENGTH_BYTES - (size_t)header_size;
  clttt_status status =
      parse_header(file, bytes + HEADER_LENGTH_BYTES, (size_t)header_size, data_area, data_size);
  if (status != CLTTT_SUCCESS)
    safetensors_close(file);
  return status;
}

const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name) {
  if (!file || !name || file->count == 0)
    return NULL;
  safetensors_tensor key = {0};
  key.name = (char *)name;
  return bsearch(&key, file->tensors, (size_t)file->count, sizeof *file->tensors,
                 compare_tensor_name);
}

/* IEEE binary16 to binary32 by bit manipulation: every half value, subnormals,
 * infinities and NaN payloads included, has an exact float32 counterpart. */
static float half_to_float(uint16_t half) {
  uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    /* A subnormal half is normal in float32: shift until the implicit bit
     * appears, lowering the exponent once per shift. */
    uint32_t float_exponent = 127 - 15 + 1;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      float_exponent--;
    }
    bits = sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

/* The file is little-endian; reading byte by byte keeps that true on any
 * host and never assumes the mapping is aligned for the element type. */
static uint16_t read_u16_le(const unsigned char *bytes) {
  return (uint16_t)(bytes[0] | (bytes[1] << 8));
}

void safetensors_to_f32(const safetensors_tensor *tensor, float *out) {
  if (!tensor || !out)
    return;
  const unsigned char *data = tensor->data;
  switch (tensor->dtype) {
    case SAFETENSORS_F32:
      for (size_t i = 0; i < tensor->nbytes / 4; i++) {
        const unsigned char *bytes = data + 4 * i;
        uint32_t bits = (uint32_t)bytes[0] | ((uint32_t)bytes[1] << 8) |
                        ((uint32_t)bytes[2] << 16) | ((uint32_t)bytes[3] << 24);
        memcpy(&out[i], &bits, sizeof bits);
      }
      break;
    case SAFETENSORS_F16:
      for (size_t i = 0; i < tensor->nbytes / 2; i++)
        out[i] = half_to_float(read_u16_le(data + 2 * i));
      break;
    case SAFETENSORS_BF16:
      for (size_t i = 0; i < tensor->nbytes / 2; i++) {
        uint32_t bits = (uint32_t)read_u16_le(data + 2 * i) << 16;
        memcpy(&out[i], &bits, sizeof bits);
      }
      break;
  }
}

void safetensors_release_pages(const safetensors_file *file, const safetensors_tensor *tensor) {
  if (!file || !file->map || !tensor || tensor->nbytes == 0)
    return;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0)
    return;
  /* Whole pages around the tensor: a neighbour's page dropped too is only
   * read again from the file if it is touched (the mapping is private and
   * never written, so nothing is lost). */
  uintptr_t begin = (uintptr_t)tensor->data / (uintptr_t)page * (uintptr_t)page;
  uintptr_t end = (uintptr_t)tensor->data + tensor->nbytes;
  uintptr_t map_begin = (uintptr_t)file->map;
  if (begin < map_begin)
    begin = map_begin;
  /* Advice only: a failure leaves the pages resident, nothing more. */
  (void)madvise((void *)begin, (size_t)(end - begin), MADV_DONTNEED);
}
