/* OpenCL devices, programs, buffers and launches, with every error turned
 * into a status and a message. */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "kernel_sources.h"
#include "runtime.h"
#include "gemm.h"

struct named_kernel {
  char *name;
  cl_kernel kernel;
};

#define MAX_PLATFORMS 16
#define MAX_DEVICES_PER_PLATFORM 64

int runtime_check(const clttt_device *device, cl_int error, const char *what) {
  if (error == CL_SUCCESS)
    return CLTTT_SUCCESS;
  return clttt_fail(error, "%s: %s on device '%s'", what, clttt_status_name(error),
                    device ? device->info.name : "(none)");
}

/* ---------------------------------------------------------------- */
/* Discovery                                                          */

/* Drivers refuse a buffer shorter than the whole string (PoCL's version
 * string runs past 64 characters), so read it whole and keep what fits. */
static void device_string(cl_device_id id, cl_device_info what, char *out, size_t capacity) {
  out[0] = '\0';
  size_t size = 0;
  if (clGetDeviceInfo(id, what, 0, NULL, &size) != CL_SUCCESS || size == 0)
    return;
  char *whole = malloc(size + 1);
  if (!whole)
    return;
  if (clGetDeviceInfo(id, what, size, whole, NULL) == CL_SUCCESS) {
    whole[size] = '\0';
    snprintf(out, capacity, "%s", whole);
  }
  free(whole);
}

static void describe_device(cl_platform_id platform, cl_device_id id, int index,
                            clttt_device_info *info) {
  memset(info, 0, sizeof *info);
  info->index = index;
  if (clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof info->platform, info->platform, NULL) !=
      CL_SUCCESS)
    info->platform[0] = '\0';
  info->platform[sizeof info->platform - 1] = '\0';
  device_string(id, CL_DEVICE_NAME, info->name, sizeof info->name);
  device_string(id, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
  device_string(id, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
  device_string(id, CL_DEVICE_VERSION, info->device_version, sizeof info->device_version);

  cl_device_type type = 0;
  clGetDeviceInfo(id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  strcpy(info->type, (type & CL_DEVICE_TYPE_GPU)           ? "GPU"
                     : (type & CL_DEVICE_TYPE_CPU)         ? "CPU"
                     : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "ACCELERATOR"
                                                           : "OTHER");
  cl_uint units = 0, clock = 0;
  cl_ulong global = 0, local = 0, allocation = 0;
  size_t group = 0;
  clGetDeviceInfo(id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
  clGetDeviceInfo(id, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof clock, &clock, NULL);
  clGetDeviceInfo(id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
  clGetDeviceInfo(id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
  clGetDeviceInfo(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof allocation, &allocation, NULL);
  clGetDeviceInfo(id, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof group, &group, NULL);
  info->compute_units = units;
  info->clock_mhz = clock;
  info->global_memory = global;
  info->local_memory = local;
  info->max_allocation = allocation;
  info->max_work_group_size = group;

  size_t extensions_size = 0;
  if (clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, 0, NULL, &extensions_size) == CL_SUCCESS &&
      extensions_size > 0) {
    char *extensions = malloc(extensions_size + 1);
    if (extensions &&
        clGetDeviceInfo(id, CL_DEVICE_EXTENSIONS, extensions_size, extensions, NULL) == CL_SUCCESS) {
      extensions[extensions_size] = '\0';
      info->has_fp16 = strstr(extensions, "cl_khr_fp16") != NULL;
      info->has_fp64 = strstr(extensions, "cl_khr_fp64") != NULL;
    }
    free(extensions);
  }
}

/* Calls visit(platform, device, index) for every device of every platform.
 * Platforms that fail to report devices are skipped: one broken ICD must not
 * hide the others. */
typedef int (*device_visitor)(cl_platform_id, cl_device_id, int, void *);

static clttt_status for_each_device(device_visitor visit, void *context, int *count) {
  cl_platform_id platforms[MAX_PLATFORMS];
  cl_uint platform_count = 0;
  cl_int error = clGetPlatformIDs(MAX_PLATFORMS, platforms, &platform_count);
  *count = 0;
  if (error == CL_PLATFORM_NOT_FOUND_KHR || platform_count == 0)
    return CLTTT_SUCCESS;
  if (error != CL_SUCCESS)
    return runtime_check(NULL, error, "listing OpenCL platforms");
  if (platform_count > MAX_PLATFORMS)
    platform_count = MAX_PLATFORMS;
  for (cl_uint p = 0; p < platform_count; p++) {
    cl_device_id devices[MAX_DEVICES_PER_PLATFORM];
    cl_uint device_count = 0;
    if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES_PER_PLATFORM, devices,
                       &device_count) != CL_SUCCESS)
      continue;
    if (device_count > MAX_DEVICES_PER_PLATFORM)
      device_count = MAX_DEVICES_PER_PLATFORM;
    for (cl_uint d = 0; d < device_count; d++) {
      if (visit(platforms[p], devices[d], *count, context))
        return CLTTT_SUCCESS;
      (*count)++;
    }
  }
  return CLTTT_SUCCESS;
}

typedef struct {
  clttt_device_info *infos;
  int capacity;
} list_context;

static int list_visitor(cl_platform_id platform, cl_device_id id, int index, void *context) {
  list_context *list = context;
  if (index < list->capacity)
    describe_device(platform, id, index, &list->infos[index]);
  return 0;
}

clttt_status clttt_list_devices(clttt_device_info *infos, int capacity, int *count) {
  if (!count || capacity < 0 || (capacity > 0 && !infos))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_list_devices: bad arguments");
  list_context list = {infos, capacity};
  return for_each_device(list_visitor, &list, count);
}

/* ---------------------------------------------------------------- */
/* Opening a device                                                   */

static int contains_ignoring_case(const char *haystack, const char *needle) {
  size_t length = strlen(needle);
  for (; *haystack; haystack++)
    if (strncasecmp(haystack, needle, length) == 0)
      return 1;
  return 0;
}

static int is_decimal(const char *text) {
  if (!*text)
    return 0;
  for (; *text; text++)
    if (!isdigit((unsigned char)*text))
      return 0;
  return 1;
}

typedef struct {
  const char *selector; /* NULL: default choice */
  int wanted_index;     /* >= 0 when the selector is a number */
  int found;
  int first_gpu_found;
  cl_platform_id platform;
  cl_device_id id;
  int index;
} select_context;

static int select_visitor(cl_platform_id platform, cl_device_id id, int index, void *context) {
  select_context *select = context;
  clttt_device_info info;
  describe_device(platform, id, index, &info);
  int match;
  if (select->wanted_index >= 0)
    match = index == select->wanted_index;
  else if (select->selector)
    match = contains_ignoring_case(info.name, select->selector) ||
            contains_ignoring_case(info.vendor, select->selector) ||
            contains_ignoring_case(info.platform, select->selector);
  else {
    /* Default: the first GPU, else the first device. */
    if (!select->found || (!select->first_gpu_found && strcmp(info.type, "GPU") == 0)) {
      select->found = 1;
      select->first_gpu_found = strcmp(info.type, "GPU") == 0;
      select->platform = platform;
      select->id = id;
      select->index = index;
    }
    return 0;
  }
  if (match) {
    select->found = 1;
    select->platform = platform;
    select->id = id;
    select->index = index;
    return 1;
  }
  return 0;
}

clttt_status clttt_device_open(clttt_device **device_out, const char *selector) {
  if (!device_out)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_device_open: device is NULL");
  *device_out = NULL;
  if (!selector || !*selector)
    selector = getenv("CLTTT_DEVICE");
  if (selector && !*selector)
    selector = NULL;

  select_context select = {selector, -1, 0, 0, NULL, NULL, -1};
  if (selector && is_decimal(selector))
    select.wanted_index = atoi(selector);
  int count = 0;
  CLTTT_TRY(for_each_device(select_visitor, &select, &count));
  if (count == 0 && !select.found)
    return clttt_fail(CLTTT_ERROR_NO_DEVICE,
                      "no OpenCL device found: install an OpenCL driver "
                      "(for the CPU: apt-get install pocl-opencl-icd)");
  if (!select.found)
    return clttt_fail(CLTTT_ERROR_NO_DEVICE,
                      "no OpenCL device matches '%s' (%d device%s present; see 'clttt devices')",
                      selector, count, count == 1 ? "" : "s");

  clttt_device *device = calloc(1, sizeof *device);
  if (!device)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "opening device: out of host memory");
  device->platform = select.platform;
  device->id = select.id;
  describe_device(select.platform, select.id, select.index, &device->info);
  /* Never fails: a bad tuning cache only costs a warning and the defaults. */
  tuning_load_for_device(&device->info, &device->tuning, device->tuning_source,
                         sizeof device->tuning_source);
  gemm_configure_device(device, &device->clblast_tuned);

  cl_int error = CL_SUCCESS;
  cl_context_properties properties[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)select.platform,
                                        0};
  device->context = clCreateContext(properties, 1, &device->id, NULL, NULL, &error);
  if (error != CL_SUCCESS) {
    int status = runtime_check(device, error, "creating an OpenCL context");
    clttt_device_close(device);
    return status;
  }
  device->queue = clCreateCommandQueue(device->context, device->id, 0, &error);
  if (error != CL_SUCCESS) {
    int status = runtime_check(device, error, "creating a command queue");
    clttt_device_close(device);
    return status;
  }
  *device_out = device;
  return CLTTT_SUCCESS;
}

static void memory_forget(cl_context context);

void clttt_device_close(clttt_device *device) {
  if (!device)
    return;
  if (device->queue)
    clFinish(device->queue);
  for (int p = 0; p < device->program_count; p++) {
    built_program *program = &device->programs[p];
    for (int k = 0; k < program->kernel_count; k++) {
      clReleaseKernel(program->kernels[k].kernel);
      free(program->kernels[k].name);
    }
    free(program->kernels);
    clReleaseProgram(program->program);
    free(program->file);
    free(program->options);
  }
  free(device->programs);
  if (device->queue)
    clReleaseCommandQueue(device->queue);
  if (device->context) {
    memory_forget(device->context);
    clReleaseContext(device->context);
  }
  free(device);
}

const clttt_device_info *clttt_device_get_info(const clttt_device *device) {
  return device ? &device->info : NULL;
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

static clttt_status find_or_build_program(clttt_device *device, const char *file,
                                          const char *options, built_program **found) {
  for (int p = 0; p < device->program_count; p++)
    if (strcmp(device->programs[p].file, file) == 0 &&
        strcmp(device->programs[p].options, options) == 0) {
      *found = &device->programs[p];
      return CLTTT_SUCCESS;
    }
  if (device->program_count == device->program_capacity) {
    int capacity = device->program_capacity ? device->program_capacity * 2 : 8;
    built_program *grown = realloc(device->programs, (size_t)capacity * sizeof *grown);
    if (!grown)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching program %s", file);
    device->programs = grown;
    device->program_capacity = capacity;
  }
  char *source = NULL;
  CLTTT_TRY(runtime_kernel_source(file, &source));
  cl_program program = NULL;
  clttt_status status = runtime_build_source(device, file, source, options, &program);
  free(source);
  if (status != CLTTT_SUCCESS)
    return status;
  built_program *entry = &device->programs[device->program_count];
  memset(entry, 0, sizeof *entry);
  entry->file = duplicate(file);
  entry->options = duplicate(options);
  entry->program = program;
  if (!entry->file || !entry->options) {
    free(entry->file);
    free(entry->options);
    clReleaseProgram(program);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching program %s", file);
  }
  device->program_count++;
  *found = entry;
  return CLTTT_SUCCESS;
}

clttt_status runtime_kernel(clttt_device *device, const char *file, const char *kernel_name,
                            const char *extra_options, cl_kernel *kernel) {
  char options[1024];
  char defines[512];
  tuning_defines(&device->tuning, defines, sizeof defines);
  snprintf(options, sizeof options, "-cl-std=CL1.2 %s %s", defines, extra_options ? extra_options : "");
  built_program *program = NULL;
  CLTTT_TRY(find_or_build_program(device, file, options, &program));
  for (int k = 0; k < program->kernel_count; k++)
    if (strcmp(program->kernels[k].name, kernel_name) == 0) {
      *kernel = program->kernels[k].kernel;
      return CLTTT_SUCCESS;
    }
  struct named_kernel *grown =
      realloc(program->kernels, (size_t)(program->kernel_count + 1) * sizeof *grown);
  if (!grown)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching kernel %s", kernel_name);
  program->kernels = grown;
  cl_int error = CL_SUCCESS;
  cl_kernel created = clCreateKernel(program->program, kernel_name, &error);
  if (error != CL_SUCCESS) {
    char what[256];
    snprintf(what, sizeof what, "creating kernel %s from %s", kernel_name, file);
    return runtime_check(device, error, what);
  }
  char *name = duplicate(kernel_name);
  if (!name) {
    clReleaseKernel(created);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "caching kernel %s", kernel_name);
  }
  program->kernels[program->kernel_count].name = name;
  program->kernels[program->kernel_count].kernel = created;
  program->kernel_count++;
  *kernel = created;
  return CLTTT_SUCCESS;
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

static void memory_forget(cl_context context) {
  pthread_mutex_lock(&memory_lock);
  memory_account *account = memory_find(context, 0);
  if (account)
    account->context = NULL;
  pthread_mutex_unlock(&memory_lock);
}

clttt_status clttt_device_memory(const clttt_device *device, uint64_t *current, uint64_t *peak, int reset_peak) {
  if (!device)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_device_memory: device is NULL");
  pthread_mutex_lock(&memory_lock);
  memory_account *account = memory_find(device->context, 1);
  int64_t now = account ? account->current : 0, highest = account ? account->peak : 0;
  if (account && reset_peak)
    account->peak = account->current;
  pthread_mutex_unlock(&memory_lock);
  if (current)
    *current = (uint64_t)now;
  if (peak)
    *peak = (uint64_t)highest;
  return CLTTT_SUCCESS;
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
  char message[256];
  snprintf(message, sizeof message, "uploading %s", what);
  return runtime_check(device, error, message);
}

clttt_status runtime_download(const clttt_device *device, cl_mem buffer, size_t offset, size_t bytes,
                              void *data, const char *what) {
  if (bytes == 0)
    return CLTTT_SUCCESS;
  cl_int error =
      clEnqueueReadBuffer(device->queue, buffer, CL_TRUE, offset, bytes, data, 0, NULL, NULL);
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
    cl_uint references = 0;
    size_t bytes = 0;
    /* Only the last reference frees device memory. */
    if (clGetMemObjectInfo(*buffer, CL_MEM_REFERENCE_COUNT, sizeof references, &references, NULL) == CL_SUCCESS &&
        references == 1 &&
        clGetMemObjectInfo(*buffer, CL_MEM_CONTEXT, sizeof context, &context, NULL) == CL_SUCCESS &&
        clGetMemObjectInfo(*buffer, CL_MEM_SIZE, sizeof bytes, &bytes, NULL) == CL_SUCCESS)
      memory_count(context, -(int64_t)bytes);
    clReleaseMemObject(*buffer);
  }
  *buffer = NULL;
}
