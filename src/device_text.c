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
