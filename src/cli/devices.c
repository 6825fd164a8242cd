/* clttt devices: what OpenCL sees on this machine. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* The kernel parameters clttt would use on device `index` and where they
 * come from; opening the device is what loads the tuning cache. */
static void print_tuning(int index) {
  char selector[16];
  snprintf(selector, sizeof selector, "%d", index);
  clttt_device *device = NULL;
  if (clttt_device_open(&device, selector) != CLTTT_SUCCESS) {
    printf("    %-22s (device cannot be opened: %s)\n", "kernel parameters", clttt_last_error());
    return;
  }
  printf("    %-22s %s\n", "kernel parameters", clttt_device_parameter_source(device));
  for (int i = 0; i < clttt_device_parameter_count(); i++)
    printf("      %-20s %d\n", clttt_device_parameter_name(i), clttt_device_parameter_value(device, i));
  printf("    %-22s %s\n", "CLBlast GEMM",
         clttt_device_clblast_tuned(device) ? "clttt's measured parameters for this device (CLTTT_CLBLAST_TUNING=off: CLBlast's own)"
                               : "CLBlast's own database");
  clttt_device_close(device);
}

static void print_bytes(const char *label, uint64_t bytes) {
  if (bytes >= (1ull << 30))
    printf("    %-22s %.1f GiB\n", label, (double)bytes / (1ull << 30));
  else if (bytes >= (1ull << 20))
    printf("    %-22s %.1f MiB\n", label, (double)bytes / (1ull << 20));
  else
    printf("    %-22s %.1f KiB\n", label, (double)bytes / 1024.0);
}

int command_devices(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (cli_is_help(argv[i])) {
      printf("usage: clttt devices\n"
             "Lists every OpenCL device of every platform with the index that\n"
             "--device and CLTTT_DEVICE accept, and the kernel parameters clttt uses\n"
             "on it: from the tuning cache ('clttt tune') or the built-in defaults.\n");
      return 0;
    }
    fprintf(stderr, "clttt devices: unknown argument '%s' (see --help)\n", argv[i]);
    return 2;
  }
  int count = 0;
  int status = clttt_list_devices(NULL, 0, &count);
  if (status != CLTTT_SUCCESS) {
    cli_report("listing devices", status);
    return 1;
  }
  if (count == 0) {
    fprintf(stderr, "clttt: no OpenCL device found. Install a driver: NVIDIA's, AMD's, Intel's,\n"
                    "or PoCL for the CPU (apt-get install pocl-opencl-icd).\n");
    return 1;
  }
  clttt_device_info *infos = calloc((size_t)count, sizeof *infos);
  if (!infos) {
    fprintf(stderr, "clttt: out of memory\n");
    return 1;
  }
  status = clttt_list_devices(infos, count, &count);
  if (status != CLTTT_SUCCESS) {
    cli_report("listing devices", status);
    free(infos);
    return 1;
  }
  for (int i = 0; i < count; i++) {
    const clttt_device_info *info = &infos[i];
    printf("[%d] %s\n", info->index, info->name);
    printf("    %-22s %s\n", "platform", info->platform);
    printf("    %-22s %s\n", "vendor", info->vendor);
    printf("    %-22s %s\n", "driver version", info->driver_version);
    printf("    %-22s %s\n", "OpenCL version", info->device_version);
    printf("    %-22s %s\n", "type", info->type);
    printf("    %-22s %u\n", "compute units", info->compute_units);
    printf("    %-22s %u MHz\n", "clock", info->clock_mhz);
    print_bytes("global memory", info->global_memory);
    print_bytes("local memory", info->local_memory);
    print_bytes("max allocation", info->max_allocation);
    printf("    %-22s %zu\n", "max work-group size", info->max_work_group_size);
    printf("    %-22s %s\n", "fp16", info->has_fp16 ? "yes" : "no");
    printf("    %-22s %s\n", "fp64", info->has_fp64 ? "yes" : "no");
    print_tuning(info->index);
  }
  free(infos);
  return 0;
}
