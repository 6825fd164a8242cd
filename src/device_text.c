#include <string.h>
#include <strings.h>

#include "device_text.h"

int device_text_contains(const char *haystack, const char *needle) {
  size_t length = strlen(needle);
  for (; *haystack; haystack++)
    if (strncasecmp(haystack, needle, length) == 0)
      return 1;
  return 0;
}

/* PoCL's names read "pthread-skylake-avx512-...", "pthread-znver4-...",
 * "pthread-haswell-...". Other CPU runtimes give no hint and get the narrow
 * tiles, which are merely smaller on an AVX-512 machine, while the wide
 * ones would spill on AVX2. */
int device_cpu_has_avx512(const clttt_device_info *info) {
  static const char *const names[] = {"avx512", "znver4", "znver5", "icelake", "tigerlake", "rocketlake",
                                      "cascadelake", "cooperlake", "cannonlake", "sapphirerapids",
                                      "emeraldrapids", "graniterapids", "diamondrapids"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (device_text_contains(info->name, names[i]))
      return 1;
  return 0;
}
