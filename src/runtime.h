/* The OpenCL layer: devices, programs built per device, buffers, launches.
 * Every OpenCL failure becomes a status plus a message naming the OpenCL
 * error, what was being done and the device. */
#ifndef CLTTT_RUNTIME_H
#define CLTTT_RUNTIME_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <stddef.h>

#include "clttt.h"
#include "tuning.h"

typedef struct {
  char *file;    /* "attention.cl" */
  char *options; /* full build options: the program's identity together with file */
  cl_program program;
  struct named_kernel *kernels;
  int kernel_count;
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
  built_program *programs; /* built once per (file, options), kept for the device's life */
  int program_count;
  int program_capacity;
};

/* Turns a failing cl_int into a status with a message "<what>: CL_... on <device>". */
int runtime_check(const clttt_device *device, cl_int error, const char *what);

/* The kernel `kernel_name` of cl/<file>, built for this device with the
 * device's tuning #defines plus `extra_options` (may be NULL: e.g.
 * "-DHEAD_DIM=128"). Built programs are cached per (file, options). */
clttt_status runtime_kernel(clttt_device *device, const char *file, const char *kernel_name,
                            const char *extra_options, cl_kernel *kernel);
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
clttt_status runtime_finish(const clttt_device *device);
void runtime_release(cl_mem *buffer);

#endif
