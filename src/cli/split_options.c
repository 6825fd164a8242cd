/* --devices SEL,SEL,... and --split auto|N,N,...: opening the devices of a
 * layer split, reading the split, and printing a placement. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int split_devices_open(const char *list, split_devices *devices) {
  memset(devices, 0, sizeof *devices);
  const char *start = list;
  while (start && *start) {
    const char *comma = strchr(start, ',');
    size_t length = comma ? (size_t)(comma - start) : strlen(start);
    char selector[256];
    if (length == 0 || length >= sizeof selector) {
      fprintf(stderr, "clttt: --devices expects device selectors separated by commas, got '%s'\n", list);
      split_devices_close(devices);
      return 0;
    }
    if (devices->count == SPLIT_MAX_DEVICES) {
      fprintf(stderr, "clttt: --devices: at most %d devices\n", SPLIT_MAX_DEVICES);
      split_devices_close(devices);
      return 0;
    }
    memcpy(selector, start, length);
    selector[length] = '\0';
    /* A selector given twice opens the device twice: two contexts that
     * each hold their own layers, as two devices would. */
    int status = clttt_device_open(&devices->device[devices->count], selector);
    if (status != CLTTT_SUCCESS) {
      char what[320];
      snprintf(what, sizeof what, "opening device '%s' of --devices", selector);
      cli_report(what, status);
      split_devices_close(devices);
      return 0;
    }
    devices->count++;
    start = comma ? comma + 1 : NULL;
  }
  if (devices->count == 0) {
    fprintf(stderr, "clttt: --devices expects at least one device selector\n");
    return 0;
  }
  return 1;
}

void split_devices_close(split_devices *devices) {
  for (int i = 0; i < devices->count; i++)
    clttt_device_close(devices->device[i]);
  memset(devices, 0, sizeof *devices);
}

int split_parse(const char *text, int device_count, int *layers, int *automatic) {
  *automatic = !text || strcmp(text, "auto") == 0;
  if (*automatic)
    return 1;
  int count = 0;
  const char *start = text;
  while (*start) {
    char *end = NULL;
    long value = strtol(start, &end, 10);
    if (end == start || (*end != ',' && *end != '\0') || value < 1 || value > 1000000 || count == SPLIT_MAX_DEVICES) {
      fprintf(stderr, "clttt: --split expects auto or layer counts >= 1 separated by commas, got '%s'\n", text);
      return 0;
    }
    layers[count++] = (int)value;
    start = *end ? end + 1 : end;
  }
  if (count != device_count) {
    fprintf(stderr, "clttt: --split gives %d layer counts for the %d devices of --devices\n", count, device_count);
    return 0;
  }
  return 1;
}

void split_print_placement(const clttt_split_part *parts, int count, int context) {
  printf("placement:    %d devices\n", count);
  for (int p = 0; p < count; p++) {
    const clttt_split_part *part = &parts[p];
    const clttt_device_info *info = clttt_device_get_info(part->device);
    char extras[64] = "";
    snprintf(extras, sizeof extras, "%s%s", part->has_embedding ? " + embedding" : "",
             part->has_head ? " + LM head" : "");
    printf("  [%d] %-40.40s layers %d..%d%s\n", p, info->name, part->first_layer,
           part->first_layer + part->layer_count - 1, extras);
    printf("      %.1f MiB weights + %.1f MiB session of %d tokens, %.1f MiB free of %.1f MiB\n",
           (double)part->weight_bytes / 1048576.0, (double)part->session_bytes / 1048576.0, context,
           (double)part->free_bytes / 1048576.0, (double)info->global_memory / 1048576.0);
  }
}

int split_info(const clttt_config *config, clttt_weight_type weights, const char *device_list, const char *split_text,
               int context, clttt_kv_type kv_type) {
  split_devices devices;
  int layers[SPLIT_MAX_DEVICES], automatic = 0;
  if (!split_devices_open(device_list, &devices))
    return 1;
  if (!split_parse(split_text, devices.count, layers, &automatic)) {
    split_devices_close(&devices);
    return 2;
  }
  clttt_split_part parts[SPLIT_MAX_DEVICES];
  int status =
      clttt_plan_split_kv(config, weights, devices.device, devices.count, automatic ? NULL : layers, context, kv_type,
                          parts);
  if (status == CLTTT_SUCCESS)
    split_print_placement(parts, devices.count, context);
  else
    cli_report("planning the split", status);
  split_devices_close(&devices);
  return status == CLTTT_SUCCESS ? 0 : 1;
}
