/* The OpenCL layer: programs built per device, buffers, launches.
 * Every OpenCL failure becomes a status plus a message naming the OpenCL
 * error, what was being done and the device. */
#ifndef CLTTT_RUNTIME_H
#define CLTTT_RUNTIME_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "clttt.h"
#include "tuning.h"

struct op_profile;

typedef struct {
  char *file;    /* "attention.cl" */
  char *options; /* full build options: the program's identity together with file */
  cl_program program;
} built_program;

struct clttt_device {
  cl_platform_id platform;
  cl_device_id id;
  cl_context context;
  cl_command_queue queue;
  clttt_device_info info;
  tuning_params tuning;   /* per-device kernel parameters */
  char tuning_source[4200]; /* where they came from: "built-in defaults" or "tuning cache <path>" */
  int clblast_tuned;        /* our CLBlast GEMM parameters installed (gemm_configure_device) */
  /* Built once per (file, options), kept for the device's life; sessions on
   * other threads may build at the same time, hence the lock. */
  built_program *programs;
  int program_count;
  int program_capacity;
  pthread_mutex_t program_lock;
  int lock_ready;
  struct op_profile *profile; /* per-op timing (profile.h), NULL when off */
};

/* A matrix inside a buffer, row-major; offset and leading dimension in
 * elements. */
typedef struct {
  cl_mem buffer;
  size_t offset; /* floats */
  size_t ld;     /* floats between consecutive rows as stored */
} matrix_view;

static inline matrix_view view(cl_mem buffer, size_t offset, size_t ld) {
  matrix_view v = {buffer, offset, ld};
  return v;
}

/* Turns a failing cl_int into a status with a message "<what>: CL_... on <device>". */
int runtime_check(const clttt_device *device, cl_int error, const char *what);

/* The program of cl/<file> built for this device with `options`, cached per
 * (file, options) for the device's life. Safe to call from several threads. */
clttt_status runtime_program(clttt_device *device, const char *file, const char *options,
                             cl_program *program);
/* A new kernel object of `program` (the caller releases it): each user of a
 * kernel needs its own, since arguments live in the object. */
clttt_status runtime_create_kernel(const clttt_device *device, cl_program program, const char *file,
                                   const char *name, cl_kernel *kernel);
/* Builds a program from source text; on failure the status is
 * CLTTT_ERROR_KERNEL_BUILD and the message carries the device's build log. */
clttt_status runtime_build_source(clttt_device *device, const char *label, const char *source,
                                  const char *options, cl_program *program);
/* Kernel source text of cl/<file>: from $CLTTT_KERNEL_DIR when set, else embedded.
 * *text must be freed by the caller. */
clttt_status runtime_kernel_source(const char *file, char **text);

/* Sets `count` arguments given as (size_t size, const void *value) pairs. */
clttt_status runtime_set_args(const clttt_device *device, cl_kernel kernel, const char *kernel_name,
                              int count, ...);
/* Enqueues an NDRange; global sizes are rounded up to multiples of local ones
 * (kernels guard their own bounds). local may be NULL. */
clttt_status runtime_launch(const clttt_device *device, cl_kernel kernel, const char *kernel_name,
                            cl_uint dimensions, const size_t *global, const size_t *local);

clttt_status runtime_alloc(const clttt_device *device, size_t bytes, const char *what, cl_mem *buffer);
clttt_status runtime_upload(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                            const void *data, const char *what);
clttt_status runtime_download(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                              void *data, const char *what);
clttt_status runtime_copy(const clttt_device *device, cl_mem destination, size_t destination_offset,
                          cl_mem source, size_t source_offset, size_t bytes, const char *what);
clttt_status runtime_zero(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                          const char *what);
/* The first `bytes` of `buffer` mapped for writing only (their old contents
 * are not read back): on a CPU device the buffer's own memory, so filling
 * it needs no staging copy. Every mapping is unmapped with runtime_unmap. */
clttt_status runtime_map_for_writing(const clttt_device *device, cl_mem buffer, size_t bytes, const char *what,
                                     void **host);
clttt_status runtime_unmap(const clttt_device *device, cl_mem buffer, void *host, const char *what);
clttt_status runtime_finish(const clttt_device *device);
void runtime_release(cl_mem *buffer);

/* Device memory held by our buffers per OpenCL context (all devices'
 * accounts live in one process-wide table). */
void runtime_memory_usage(cl_context context, uint64_t *current, uint64_t *peak, int reset_peak);
void runtime_memory_forget(cl_context context);

#endif
