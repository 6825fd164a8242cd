/* The device's FMA peak, measured in the run that uses it (fma_peak.c). */
#ifndef CLTTT_BENCH_FMA_PEAK_H
#define CLTTT_BENCH_FMA_PEAK_H

#include "runtime.h"

/* Best of `reps` runs of a kernel of independent FMA chains, one
 * work-item per compute unit: GFLOP/s of wall time and per CPU-second of
 * this process (0 where the device's time is not this process's). */
clttt_status bench_fma_peak(clttt_device *device, int reps, double *gflops, double *cpu_gflops);

#endif
