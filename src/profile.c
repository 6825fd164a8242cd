/* Per-op timing: a small table of labels, filled from runtime_launch, the
 * GEMMs and the transfers while profiling is on. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "profile.h"

#define PROFILE_LABELS 96
#define PROFILE_LABEL_BYTES 64

typedef struct {
  char label[PROFILE_LABEL_BYTES];
  long calls;
  double seconds;
  double flops;
} profile_entry;

struct op_profile {
  pthread_mutex_t lock;
  double last;
  double pending_flops; /* of the next mark's work */
  int count;
  profile_entry entries[PROFILE_LABELS];
};

static double now_seconds(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return (double)time.tv_sec + 1e-9 * (double)time.tv_nsec;
}

clttt_status profile_create(op_profile **profile) {
  *profile = calloc(1, sizeof **profile);
  if (!*profile)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the op profile");
  pthread_mutex_init(&(*profile)->lock, NULL);
  (*profile)->last = now_seconds();
  return CLTTT_SUCCESS;
}

void profile_free(op_profile *profile) {
  if (!profile)
    return;
  pthread_mutex_destroy(&profile->lock);
  free(profile);
}

void profile_restart(op_profile *profile) {
  pthread_mutex_lock(&profile->lock);
  profile->last = now_seconds();
  pthread_mutex_unlock(&profile->lock);
}

void profile_mark(const clttt_device *device, const char *label) {
  op_profile *profile = device->profile;
  if (!profile)
    return;
  clFinish(device->queue);
  pthread_mutex_lock(&profile->lock);
  const double now = now_seconds();
  int i = 0;
  while (i < profile->count && strncmp(profile->entries[i].label, label, PROFILE_LABEL_BYTES - 1) != 0)
    i++;
  if (i == profile->count && profile->count < PROFILE_LABELS) {
    /* A fresh entry: after a reset the slot still holds the counts of
     * whatever label had it before. */
    memset(&profile->entries[i], 0, sizeof profile->entries[i]);
    snprintf(profile->entries[i].label, PROFILE_LABEL_BYTES, "%s", label);
    profile->count++;
  }
  if (i < profile->count) { /* a full table drops new labels, never counts them under another */
    profile->entries[i].calls++;
    profile->entries[i].seconds += now - profile->last;
    profile->entries[i].flops += profile->pending_flops;
  }
  profile->pending_flops = 0;
  profile->last = now;
  pthread_mutex_unlock(&profile->lock);
}

void profile_expect_flops(const clttt_device *device, double flops) {
  op_profile *profile = device->profile;
  if (!profile)
    return;
  pthread_mutex_lock(&profile->lock);
  profile->pending_flops = flops;
  pthread_mutex_unlock(&profile->lock);
}

static int by_time(const void *a, const void *b) {
  const profile_entry *x = a, *y = b;
  return (x->seconds < y->seconds) - (x->seconds > y->seconds);
}

void profile_report(op_profile *profile, char *text, size_t capacity, int reset) {
  if (capacity == 0)
    return;
  text[0] = '\0';
  pthread_mutex_lock(&profile->lock);
  profile_entry sorted[PROFILE_LABELS];
  memcpy(sorted, profile->entries, (size_t)profile->count * sizeof *sorted);
  qsort(sorted, (size_t)profile->count, sizeof *sorted, by_time);
  double total = 0;
  for (int i = 0; i < profile->count; i++)
    total += sorted[i].seconds;
  size_t used =
      (size_t)snprintf(text, capacity, "%-48s %8s %10s %6s %9s\n", "op", "calls", "ms", "share", "GFLOP/s");
  for (int i = 0; i < profile->count && used < capacity; i++) {
    char rate[16] = "";
    if (sorted[i].flops > 0 && sorted[i].seconds > 0)
      snprintf(rate, sizeof rate, "%9.1f", sorted[i].flops / sorted[i].seconds * 1e-9);
    used += (size_t)snprintf(text + used, capacity - used, "%-48s %8ld %10.2f %5.1f%% %s\n", sorted[i].label,
                             sorted[i].calls, 1e3 * sorted[i].seconds,
                             total > 0 ? 100.0 * sorted[i].seconds / total : 0.0, rate);
  }
  if (used < capacity)
    snprintf(text + used, capacity - used, "%-48s %8s %10.2f\n", "total", "", 1e3 * total);
  if (reset) {
    profile->count = 0;
    profile->last = now_seconds();
  }
  pthread_mutex_unlock(&profile->lock);
}
