/* The public device API: discovery, selection, open and close, and what a
 * device was opened with. Opening is where the per-device parameters are
 * chosen (tuning cache or defaults) and CLBlast is given ours. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_text.h"
#include "error.h"
#include "profile.h"
#include "gemm.h"
#include "runtime.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES_PER_PLATFORM 64

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
    match = device_text_contains(info.name, select->selector) ||
            device_text_contains(info.vendor, select->selector) ||
            device_text_contains(info.platform, select->selector);
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
  if (pthread_mutex_init(&device->program_lock, NULL) != 0) {
    free(device);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "opening device: cannot create a lock");
  }
  device->lock_ready = 1;
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

void clttt_device_close(clttt_device *device) {
  if (!device)
    return;
  if (device->queue)
    clFinish(device->queue);
  for (int p = 0; p < device->program_count; p++) {
    built_program *program = &device->programs[p];
    clReleaseProgram(program->program);
    free(program->file);
    free(program->options);
  }
  free(device->programs);
  if (device->queue)
    clReleaseCommandQueue(device->queue);
  if (device->context) {
    runtime_memory_forget(device->context);
    clReleaseContext(device->context);
  }
  if (device->lock_ready)
    pthread_mutex_destroy(&device->program_lock);
  profile_free(device->profile);
  free(device);
}

const clttt_device_info *clttt_device_get_info(const clttt_device *device) {
  return device ? &device->info : NULL;
}


clttt_status clttt_device_memory(const clttt_device *device, uint64_t *current, uint64_t *peak, int reset_peak) {
  if (!device)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_device_memory: device is NULL");
  runtime_memory_usage(device->context, current, peak, reset_peak);
  return CLTTT_SUCCESS;
}

int clttt_device_parameter_count(void) { return tuning_parameter_count; }

const char *clttt_device_parameter_name(int index) {
  return index >= 0 && index < tuning_parameter_count ? tuning_parameters[index].name : NULL;
}

int clttt_device_parameter_value(const clttt_device *device, int index) {
  if (!device || index < 0 || index >= tuning_parameter_count)
    return -1;
  return tuning_get(&device->tuning, &tuning_parameters[index]);
}

const char *clttt_device_parameter_source(const clttt_device *device) {
  return device ? device->tuning_source : "";
}

int clttt_device_clblast_tuned(const clttt_device *device) { return device ? device->clblast_tuned : 0; }

clttt_status clttt_device_set_profiling(clttt_device *device, int enable) {
  if (!device)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_device_set_profiling: NULL device");
  runtime_finish(device);
  profile_free(device->profile);
  device->profile = NULL;
  return enable ? profile_create(&device->profile) : CLTTT_SUCCESS;
}

clttt_status clttt_device_profile_report(clttt_device *device, char *text, size_t capacity, int reset) {
  if (!device || !text || capacity == 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_device_profile_report: NULL argument");
  if (!device->profile)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "device '%s': profiling is off (clttt_device_set_profiling)",
                      device->info.name);
  profile_report(device->profile, text, capacity, reset);
  return CLTTT_SUCCESS;
}
