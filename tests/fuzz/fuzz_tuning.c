/* libFuzzer target: tuning_cache_lookup on a cache file holding the input,
 * for a fixed device the seed corpus has entries for. */
#include <string.h>

#include "fuzz_common.h"
#include "tuning.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4096];
  fuzz_write_file("tuning.json", data, size, path, sizeof path);
  clttt_device_info info;
  memset(&info, 0, sizeof info);
  strcpy(info.platform, "Portable Computing Language");
  strcpy(info.name, "cpu-fuzz");
  strcpy(info.driver_version, "1.0");
  strcpy(info.type, "CPU");
  info.compute_units = 2;
  info.local_memory = 65536;
  info.max_allocation = 1u << 30;
  info.global_memory = 1u << 31;
  info.max_work_group_size = 1024;
  tuning_params params;
  tuning_defaults(&info, &params);
  int found = 0;
  if (tuning_cache_lookup(path, &info, &params, &found) == CLTTT_SUCCESS && found) {
    char defines[4096];
    tuning_defines(&params, defines, sizeof defines);
  }
  return 0;
}
