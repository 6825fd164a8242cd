/* Per-op timing of one device (clttt_device_set_profiling): every kernel
 * launch, GEMM and blocking transfer waits for the queue and charges the
 * wall time since the previous one to its name, so a prefill's time splits
 * into the ops that spent it (launch overhead included, overlap lost). */
#ifndef CLTTT_PROFILE_H
#define CLTTT_PROFILE_H

#include "runtime.h"

typedef struct op_profile op_profile;

clttt_status profile_create(op_profile **profile);
void profile_free(op_profile *profile);
/* Starts the clock again (the time since the last mark is nobody's). */
void profile_restart(op_profile *profile);
/* After `label`'s work was enqueued on `device`: waits for it and charges
 * the time since the previous mark. Nothing when profiling is off. */
void profile_mark(const clttt_device *device, const char *label);
/* The floating-point operations of the work the next mark charges (a
 * product's 2 m n k), for the table's GFLOP/s column. Nothing when
 * profiling is off. Like the marks, it follows one thread's work. */
void profile_expect_flops(const clttt_device *device, double flops);
/* The table, most expensive first, into text; `reset` empties it. */
void profile_report(op_profile *profile, char *text, size_t capacity, int reset);

#endif
