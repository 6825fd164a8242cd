/* OpenCL programs, buffers and launches, with every error turned into a
 * status and a message. */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "profile.h"
#include "kernel_sources.h"
#include "runtime.h"

int runtime_check(const clttt_device *device, cl_int error, const char *what) {
  if (error == CL_SUCCESS)
    return CLTTT_SUCCESS;
  return clttt_fail(error, "%s: %s on device '%s'", what, clttt_status_name(error),
                    device ? device->info.name : "(none)");
}

/* ---------------------------------------------------------------- */
/* Programs and kernels                                               */

static char *duplicate(const char *text) {
  size_t length = strlen(text) + 1;
  char *copy = malloc(length);
  if (copy)
    memcpy(copy, text, length);
  return copy;
}

clttt_status runtime_kernel_source(const char *file, char **text) {
  *text = NULL;
  const char *directory = getenv("CLTTT_KERNEL_DIR");
  if (directory && *directory) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, file);
    FILE *stream = fopen(path, "rb");
    if (!stream)
      return clttt_fail(CLTTT_ERROR_IO, "CLTTT_KERNEL_DIR: cannot open kernel file '%s'", path);
    fseek(stream, 0, SEEK_END);
    long size = ftell(stream);
    fseek(stream, 0, SEEK_SET);
    char *buffer = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (!buffer || fread(buffer, 1, (size_t)size, stream) != (size_t)size) {
      free(buffer);
      fclose(stream);
      return clttt_fail(CLTTT_ERROR_IO, "CLTTT_KERNEL_DIR: cannot read kernel file '%s'", path);
    }
    fclose(stream);
    buffer[size] = '\0';
    *text = buffer;
    return CLTTT_SUCCESS;
  }
  for (int i = 0; i < kernel_source_count; i++)
    if (strcmp(kernel_sources[i].name, file) == 0) {
      *text = duplicate(kernel_sources[i].text);
      return *text ? CLTTT_SUCCESS
                   : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "copying kernel source %s", file);
    }
  return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "no embedded kernel file named '%s'", file);
}

clttt_status runtime_build_source(clttt_device *device, const char *label, const char *source,
                                  const char *options, cl_program *program_out) {
  cl_int error = CL_SUCCESS;
  *program_out = NULL;
  cl_program program = clCreateProgramWithSource(device->context, 1, &source, NULL, &error);
  if (error != CL_SUCCESS) {
    char what[256];
    snprintf(what, sizeof what, "creating program %s", label);
    return runtime_check(device, error, what);
  }
  error = clBuildProgram(program, 1, &device->id, options, NULL, NULL);
  if (error != CL_SUCCESS) {
    size_t log_size = 0;
    clGetProgramBuildInfo(program, device->id, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size);
    char *log = malloc(log_size + 1);
    if (log) {
      if (clGetProgramBuildInfo(program, device->id, CL_PROGRAM_BUILD_LOG, log_size, log, NULL) !=
          CL_SUCCESS)
        log_size = 0;
      log[log_size] = '\0';
    }
    clttt_fail(CLTTT_ERROR_KERNEL_BUILD, "building %s (%s) for device '%s' failed: %s\nbuild log:\n%s",
               label, options ? options : "", device->info.name, clttt_status_name(error),
               log ? log : "(out of memory reading the log)");
    free(log);
    clReleaseProgram(program);
    return CLTTT_ERROR_KERNEL_BUILD;
  }
  *program_out = program;
  return CLTTT_SUCCESS;
}

clttt_status runtime_program(clttt_device *device, const char *file, const char *options,
                             cl_program *program_out) {
  *program_out = NULL;
  pthread_mutex_lock(&device->program_lock);
  clttt_status status = CLTTT_SUCCESS;
  for (int p = 0; p < device->program_count; p++)
    if (strcmp(device->programs[p].file, file) == 0 && strcmp(device->programs[p].options, options) == 0) {
      *program_out = device->programs[p].program;
      pthread_mutex_unlock(&device->program_lock);
      return CLTTT_SUCCESS;
    }
  if (device->program_count == device->program_capacity) {
    int capacity = device->program_capacity ? device->program_capacity * 2 : 8;
    built_program *grown = realloc(device->programs, (size_t)capacity * sizeof *grown);
    if (!grown)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching program %s", file);
    else {
      device->programs = grown;
      device->program_capacity = capacity;
    }
  }
  char *source = NULL;
  if (status == CLTTT_SUCCESS)
    status = runtime_kernel_source(file, &source);
  cl_program program = NULL;
  if (status == CLTTT_SUCCESS)
    status = runtime_build_source(device, file, source, options, &program);
  free(source);
  if (status == CLTTT_SUCCESS) {
    built_program *entry = &device->programs[device->program_count];
    entry->file = duplicate(file);
    entry->options = duplicate(options);
    entry->program = program;
    if (!entry->file || !entry->options) {
      free(entry->file);
      free(entry->options);
      clReleaseProgram(program);
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching program %s", file);
    } else {
      device->program_count++;
      *program_out = program;
    }
  }
  pthread_mutex_unlock(&device->program_lock);
  return status;
}

clttt_status runtime_create_kernel(const clttt_device *device, cl_program program, const char *file,
                                   const char *name, cl_kernel *kernel) {
  cl_int error = CL_SUCCESS;
  *kernel = clCreateKernel(program, name, &error);
  if (error == CL_SUCCESS)
    return CLTTT_SUCCESS;
  *kernel = NULL;
  char what[256];
  snprintf(what, sizeof what, "creating kernel %s from %s", name, file);
  return runtime_check(device, error, what);
}

clttt_status runtime_set_args(const clttt_device *device, cl_kernel kernel, const char *kernel_name,
                              int count, ...) {
  va_list args;
  va_start(args, count);
  for (int i = 0; i < count; i++) {
    size_t size = va_arg(args, size_t);
    const void *value = va_arg(args, const void *);
    cl_int error = clSetKernelArg(kernel, (cl_uint)i, size, value);
    if (error != CL_SUCCESS) {
      va_end(args);
      char what[256];
      snprintf(what, sizeof what, "setting argument %d of kernel %s", i, kernel_name);
      return runtime_check(device, error, what);
    }
  }
  va_end(args);
  return CLTTT_SUCCESS;
}

clttt_status runtime_launch(const clttt_device *device, cl_kernel kernel, const char *kernel_name,
                            cl_uint dimensions, const size_t *global, const size_t *local) {
  size_t rounded[3];
  for (cl_uint i = 0; i < dimensions; i++) {
    rounded[i] = global[i];
    if (local && local[i] > 0)
      rounded[i] = (global[i] + local[i] - 1) / local[i] * local[i];
    if (rounded[i] == 0)
      return CLTTT_SUCCESS; /* nothing to do */
  }
  cl_int error =
      clEnqueueNDRangeKernel(device->queue, kernel, dimensions, NULL, rounded, local, 0, NULL, NULL);
  if (error != CL_SUCCESS) {
    char what[256];
    snprintf(what, sizeof what, "launching kernel %s", kernel_name);
    return runtime_check(device, error, what);
  }
  profile_mark(device, kernel_name);
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Buffers                                                            */

/* Device memory held by clttt's buffers, per OpenCL context, so benchmarks
 * can compare the peak with the cost model. runtime_release knows only the
 * buffer, hence a small process-wide table keyed by context. */
typedef struct {
  cl_context context;
  int64_t current, peak;
} memory_account;

#define MAX_MEMORY_ACCOUNTS 64
static memory_account memory_accounts[MAX_MEMORY_ACCOUNTS];
static pthread_mutex_t memory_lock = PTHREAD_MUTEX_INITIALIZER;

static memory_account *memory_find(cl_context context, int create) {
  for (int i = 0; i < MAX_MEMORY_ACCOUNTS; i++)
    if (memory_accounts[i].context == context)
      return &memory_accounts[i];
  for (int i = 0; create && i < MAX_MEMORY_ACCOUNTS; i++)
    if (memory_accounts[i].context == NULL) {
      memory_accounts[i].context = context;
      memory_accounts[i].current = memory_accounts[i].peak = 0;
      return &memory_accounts[i];
    }
  return NULL;
}

static void memory_count(cl_context context, int64_t bytes) {
  pthread_mutex_lock(&memory_lock);
  memory_account *account = memory_find(context, 1);
  if (account) {
    account->current += bytes;
    if (account->current > account->peak)
      account->peak = account->current;
  }
  pthread_mutex_unlock(&memory_lock);
}

void runtime_memory_forget(cl_context context) {
  pthread_mutex_lock(&memory_lock);
  memory_account *account = memory_find(context, 0);
  if (account)
    account->context = NULL;
  pthread_mutex_unlock(&memory_lock);
}

void runtime_memory_usage(cl_context context, uint64_t *current, uint64_t *peak, int reset_peak) {
  pthread_mutex_lock(&memory_lock);
  memory_account *account = memory_find(context, 1);
  int64_t now = account ? account->current : 0, highest = account ? account->peak : 0;
  if (account && reset_peak)
    account->peak = account->current;
  pthread_mutex_unlock(&memory_lock);
  if (current)
    *current = (uint64_t)now;
  if (peak)
    *peak = (uint64_t)highest;
}

clttt_status runtime_alloc(const clttt_device *device, size_t bytes, const char *what,
                           cl_mem *buffer) {
  cl_int error = CL_SUCCESS;
  *buffer = NULL;
  if (bytes == 0)
    bytes = 4; /* OpenCL rejects empty buffers; a tiny one keeps the code uniform */
  if (bytes > device->info.max_allocation && device->info.max_allocation > 0)
    return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                      "allocating %s: %zu bytes exceed the largest allocation of device '%s' "
                      "(%llu bytes)",
                      what, bytes, device->info.name,
                      (unsigned long long)device->info.max_allocation);
  *buffer = clCreateBuffer(device->context, CL_MEM_READ_WRITE, bytes, NULL, &error);
  if (error == CL_SUCCESS)
    memory_count(device->context, (int64_t)bytes);
  if (error != CL_SUCCESS) {
    char message[256];
    snprintf(message, sizeof message, "allocating %s (%zu bytes)", what, bytes);
    return runtime_check(device, error, message);
  }
  return CLTTT_SUCCESS;
}

clttt_status runtime_upload(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                            const void *data, const char *what) {
  if (bytes == 0)
    return CLTTT_SUCCESS;
  cl_int error =
      clEnqueueWriteBuffer(device->queue, buffer, CL_TRUE, offset, bytes, data, 0, NULL, NULL);
  profile_mark(device, "host to device transfers");
  char message[256];
  snprintf(message, sizeof message, "uploading %s", what);
  return runtime_check(device, error, message);
}

clttt_status runtime_map_for_writing(const clttt_device *device, cl_mem buffer, size_t bytes, const char *what,
                                     void **host) {
  cl_int error = CL_SUCCESS;
  *host = clEnqueueMapBuffer(device->queue, buffer, CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, 0, bytes ? bytes : 1, 0,
                             NULL, NULL, &error);
  char message[256];
  snprintf(message, sizeof message, "mapping %s (%zu bytes) for writing", what, bytes);
  if (error != CL_SUCCESS)
    *host = NULL;
  return runtime_check(device, error, message);
}

clttt_status runtime_unmap(const clttt_device *device, cl_mem buffer, void *host, const char *what) {
  if (!host)
    return CLTTT_SUCCESS;
  char message[256];
  snprintf(message, sizeof message, "unmapping %s", what);
  cl_int error = clEnqueueUnmapMemObject(device->queue, buffer, host, 0, NULL, NULL);
  if (error == CL_SUCCESS)
    error = clFinish(device->queue);
  return runtime_check(device, error, message);
}

clttt_status runtime_download(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                              void *data, const char *what) {
  if (bytes == 0)
    return CLTTT_SUCCESS;
  cl_int error =
      clEnqueueReadBuffer(device->queue, buffer, CL_TRUE, offset, bytes, data, 0, NULL, NULL);
  profile_mark(device, "device to host transfers");
  char message[256];
  snprintf(message, sizeof message, "downloading %s", what);
  return runtime_check(device, error, message);
}

clttt_status runtime_copy(const clttt_device *device, cl_mem destination, size_t destination_offset,
                          cl_mem source, size_t source_offset, size_t bytes, const char *what) {
  if (bytes == 0)
    return CLTTT_SUCCESS;
  cl_int error = clEnqueueCopyBuffer(device->queue, source, destination, source_offset,
                                     destination_offset, bytes, 0, NULL, NULL);
  char message[256];
  snprintf(message, sizeof message, "copying %s", what);
  return runtime_check(device, error, message);
}

clttt_status runtime_zero(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                          const char *what) {
  if (bytes == 0)
    return CLTTT_SUCCESS;
  const float zero = 0.0f;
  cl_int error = clEnqueueFillBuffer(device->queue, buffer, &zero, sizeof zero, offset, bytes, 0,
                                     NULL, NULL);
  char message[256];
  snprintf(message, sizeof message, "zeroing %s", what);
  return runtime_check(device, error, message);
}

clttt_status runtime_finish(const clttt_device *device) {
  return runtime_check(device, clFinish(device->queue), "waiting for the command queue");
}

void runtime_release(cl_mem *buffer) {
  if (*buffer) {
    cl_context context = NULL;
    size_t bytes = 0;
    /* clttt holds one reference to each of its buffers and never retains
     * them, so this release ends its hold. The reference count is no guide:
     * PoCL keeps its own references while a queued command still uses the
     * buffer, which left a released buffer counted at random. */
    if (clGetMemObjectInfo(*buffer, CL_MEM_CONTEXT, sizeof context, &context, NULL) == CL_SUCCESS &&
        clGetMemObjectInfo(*buffer, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) == CL_SUCCESS)
      memory_count(context, -(int64_t)bytes);
    clReleaseMemObject(*buffer);
  }
  *buffer = NULL;
}
