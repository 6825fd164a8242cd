/* The benchmarks' clocks: wall time on the monotonic clock, and the CPU time
 * of this process. Included after a file's feature-test macros
 * (clock_gettime is POSIX). */
#ifndef CLTTT_BENCH_CLOCK_H
#define CLTTT_BENCH_CLOCK_H

#include <time.h>

static inline double now_seconds(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return (double)time.tv_sec + 1e-9 * (double)time.tv_nsec;
}

static inline double now_ms(void) { return 1e3 * now_seconds(); }

/* CPU time of the whole process, all threads: on a machine shared with other
 * work, FLOPs per CPU-second measure the cores while they ran our code, where
 * wall time also counts the time slices others took. */
static inline double cpu_ms(void) {
  struct timespec time;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time);
  return (double)time.tv_sec * 1e3 + (double)time.tv_nsec * 1e-6;
}

#endif
