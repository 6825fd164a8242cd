/* The device's memory bandwidth in the same run as a benchmark: a read-only
 * stream (the roofline of work that only reads, as decode reads its weights
 * and KV cache) and our copy kernel (read + write). */
#ifndef CLTTT_BENCH_STREAM_BANDWIDTH_H
#define CLTTT_BENCH_STREAM_BANDWIDTH_H

#include "runtime.h"

/* Bytes per second over 256 MiB, best of five runs after a first that
 * touches the pages; 1 on success, 0 when a step failed (clttt_last_error
 * says which). */
int stream_bandwidths(clttt_device *device, double *copy_rate, double *read_rate);

#endif
