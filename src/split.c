/* Layer split: which consecutive layers each device of a pipeline holds,
 * sized by the cost model and checked against each device's free memory
 * before anything is allocated (clttt_plan_split). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "session.h"
#include "ttt.h"

/* More parts than this is a mistake (and the messages list them). */
#define MAX_PARTS 256

/* A layer's share of a session: its K and V caches, and its fast weight
 * and pending rows in a TTT layer (the update's workspace is the part's,
 * counted once per part by session_part_bytes). */
static uint64_t layer_session_bytes(const clttt_config *config, const clttt_session_params *resolved, int index) {
  const uint64_t all = session_part_bytes(config, resolved, index, 1, 0, 0);
  const uint64_t none = session_part_bytes(config, resolved, index, 0, 0, 0);
  const int learns = resolved->ttt && config->ttt_mode && clttt_config_is_ttt_layer(config, index);
  const uint64_t workspace = learns ? ttt_workspace_bytes(resolved->chunk, config->hidden_size,
                                                       config->intermediate_size, resolved->ttt_clip_tau > 0.0f)
                                 : 0;
  return all - none - workspace;
}

/* Memory of `device` not held by clttt's buffers; 0 when it does not say. */
static uint64_t free_memory(const clttt_device *device) {
  uint64_t in_use = 0;
  runtime_memory_usage(device->context, &in_use, NULL, 0);
  const uint64_t total = device->info.global_memory;
  return total > in_use ? total - in_use : 0;
}

static int occurrences(clttt_device *const *devices, int count, const clttt_device *device) {
  int n = 0;
  for (int i = 0; i < count; i++)
    n += devices[i] == device;
  return n;
}

/* Layers per part in proportion to what each device has left after its
 * fixed share: each part p takes layers until the cost so far reaches the
 * p-th cumulative share, rounding at the middle of a layer, and every part
 * keeps at least one layer. */
static clttt_status automatic_split(const clttt_config *config, packed_gemm_type type,
                                    const clttt_session_params *resolved, clttt_device *const *devices, int count,
                                    int *layers) {
  const int total_layers = config->num_hidden_layers;
  double available[MAX_PARTS], sum_available = 0.0, total_cost = 0.0;
  int unknown = 0;
  for (int p = 0; p < count; p++) {
    const int head_beside_embedding = devices[count - 1] == devices[0];
    /* A part with no layer: its fixed weights alone. */
    double fixed = (double)weights_part_bytes(config, type, devices[p], 0, 0, p == 0, p == count - 1,
                                              head_beside_embedding, NULL);
    if (resolved)
      fixed += (double)session_part_bytes(config, resolved, 0, 0, p == 0, p == count - 1);
    /* A device listed twice shares its memory between its parts. */
    double free_bytes = (double)free_memory(devices[p]) / occurrences(devices, count, devices[p]);
    unknown |= devices[p]->info.global_memory == 0;
    available[p] = free_bytes > fixed ? free_bytes - fixed : 0.0;
    sum_available += available[p];
  }
  if (unknown || sum_available <= 0.0) {
    /* Nothing to go by: equal shares (the fit check names what is short). */
    for (int p = 0; p < count; p++)
      available[p] = 1.0;
    sum_available = count;
  }
  double *cost = malloc((size_t)total_layers * sizeof *cost);
  if (!cost)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "planning the split of %d layers", total_layers);
  for (int i = 0; i < total_layers; i++) {
    /* The first device's layout stands for all: the padding is small. */
    cost[i] = (double)weights_part_bytes(config, type, devices[0], i, 1, 0, 0, 1, NULL) -
              (double)weights_part_bytes(config, type, devices[0], i, 0, 0, 0, 1, NULL);
    if (resolved)
      cost[i] += (double)layer_session_bytes(config, resolved, i);
    total_cost += cost[i];
  }
  int next = 0;
  double so_far = 0.0, share = 0.0;
  for (int p = 0; p < count; p++) {
    share += available[p] / sum_available;
    const int left_for_later = count - 1 - p;
    int taken = 0;
    while (next < total_layers - left_for_later &&
           (taken == 0 || p == count - 1 || so_far + cost[next] / 2.0 <= share * total_cost)) {
      so_far += cost[next++];
      taken++;
    }
    layers[p] = taken;
  }
  free(cost);
  return CLTTT_SUCCESS;
}

static void describe_part(char *text, size_t size, const clttt_split_part *part) {
  snprintf(text, size, "layers %d..%d%s%s", part->first_layer, part->first_layer + part->layer_count - 1,
           part->has_embedding ? ", embedding" : "", part->has_head ? ", LM head" : "");
}

/* Every device holds what its parts need (parts on one device summed). */
static clttt_status check_parts_fit(clttt_device *const *devices, int count, const clttt_split_part *parts,
                                    int split_context) {
  for (int p = 0; p < count; p++) {
    uint64_t weights = 0, session = 0;
    for (int q = 0; q < count; q++)
      if (devices[q] == devices[p]) {
        weights += parts[q].weight_bytes;
        session += parts[q].session_bytes;
      }
    const clttt_device_info *info = &devices[p]->info;
    if (info->global_memory == 0 || weights + session <= parts[p].free_bytes)
      continue;
    char what[160], session_text[96] = "";
    describe_part(what, sizeof what, &parts[p]);
    if (split_context > 0)
      snprintf(session_text, sizeof session_text, ", a session of %d tokens %.1f MiB", split_context,
               (double)session / 1048576.0);
    return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                      "device %d of the split, '%s' (%s), cannot hold its share: it needs %.1f MiB (weights "
                      "%.1f MiB%s) and has %.1f MiB free of its %.1f MiB",
                      p, info->name, what, (double)(weights + session) / 1048576.0, (double)weights / 1048576.0,
                      session_text, (double)parts[p].free_bytes / 1048576.0,
                      (double)info->global_memory / 1048576.0);
  }
  return CLTTT_SUCCESS;
}

clttt_status clttt_plan_split(const clttt_config *config, clttt_weight_type weights, clttt_device *const *devices,
                              int device_count, const int *split, int split_context, clttt_split_part *parts) {
  return clttt_plan_split_kv(config, weights, devices, device_count, split, split_context, CLTTT_KV_F16, parts);
}

clttt_status clttt_plan_split_kv(const clttt_config *config, clttt_weight_type weights, clttt_device *const *devices,
                                 int device_count, const int *split, int split_context, clttt_kv_type kv_type,
                                 clttt_split_part *parts) {
  const packed_gemm_type type = weights_element_type(weights);
  if (!config || !devices || !parts)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_plan_split: NULL argument");
  const int total_layers = config->num_hidden_layers;
  if (device_count < 1 || device_count > MAX_PARTS)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a split over %d devices: 1..%d are supported", device_count,
                      MAX_PARTS);
  for (int p = 0; p < device_count; p++)
    if (!devices[p])
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "device %d of the split is NULL", p);
  if (split_context < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "split_context %d: must be 0 (weights only) or a context",
                      split_context);
  if (device_count > total_layers)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "a split over %d devices of a model with %d layers: every device needs at least one layer",
                      device_count, total_layers);
  clttt_session_params resolved;
  if (split_context > 0) {
    if (kv_type != CLTTT_KV_F32 && kv_type != CLTTT_KV_F16)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "split: KV cache type %d is neither f32 (0) nor f16 (1)",
                        (int)kv_type);
    clttt_session_params given = clttt_session_default_params();
    given.context = split_context;
    given.kv_type = kv_type;
    CLTTT_TRY(session_resolve_params(config, &given, &resolved));
  }
  int layers[MAX_PARTS];
  if (split) {
    int covered = 0;
    for (int p = 0; p < device_count; p++) {
      if (split[p] < 1)
        return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "split: device %d gets %d layers, every device needs at least one",
                          p, split[p]);
      if (split[p] > total_layers - covered)
        return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                          "split: the first %d devices get more than the model's %d layers", p + 1, total_layers);
      layers[p] = split[p];
      covered += split[p];
    }
    if (covered != total_layers)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                        "split: the %d devices get %d layers, the model has %d: the split must cover every layer",
                        device_count, covered, total_layers);
  } else {
    CLTTT_TRY(automatic_split(config, type, split_context > 0 ? &resolved : NULL, devices, device_count, layers));
  }

  int first = 0;
  for (int p = 0; p < device_count; p++) {
    clttt_split_part *part = &parts[p];
    memset(part, 0, sizeof *part);
    part->device = devices[p];
    part->first_layer = first;
    part->layer_count = layers[p];
    part->has_embedding = p == 0;
    part->has_head = p == device_count - 1;
    uint64_t largest = 0;
    part->weight_bytes = weights_part_bytes(config, type, devices[p], first, layers[p], part->has_embedding,
                                            part->has_head, devices[device_count - 1] == devices[0], &largest);
    const clttt_device_info *info = &devices[p]->info;
    if (info->max_allocation > 0 && largest > info->max_allocation)
      return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                        "device %d of the split, '%s', cannot hold its share: its largest weight needs one buffer "
                        "of %.1f MiB, and it allocates at most %.1f MiB at once",
                        p, info->name, (double)largest / 1048576.0, (double)info->max_allocation / 1048576.0);
    if (split_context > 0)
      part->session_bytes = session_part_bytes(config, &resolved, first, layers[p], part->has_embedding,
                                               part->has_head);
    part->free_bytes = free_memory(devices[p]);
    first += layers[p];
  }
  return check_parts_fit(devices, device_count, parts, split_context);
}
