/* The kernel files of cl/, embedded at build time (see build-aux/embed-kernels.sh). */
#ifndef CLTTT_KERNEL_SOURCES_H
#define CLTTT_KERNEL_SOURCES_H

typedef struct {
  const char *name; /* "attention.cl" */
  const char *text;
} kernel_source;

extern const kernel_source kernel_sources[];
extern const int kernel_source_count;

#endif
