/* Matching the strings an OpenCL driver reports for a device (name,
 * vendor, platform). Drivers spell them with any case ("NVIDIA
 * Corporation", "AuthenticAMD", "pthread-znver4-..."), so every choice made
 * from them (device selection, per-vendor defaults) matches ignoring case.
 * Plain C, so the tuning cache's fuzzer links it without OpenCL. */
#ifndef CLTTT_DEVICE_TEXT_H
#define CLTTT_DEVICE_TEXT_H

#include "clttt.h"

/* 1 when `needle` occurs in `haystack`, ignoring ASCII case; else 0. */
int device_text_contains(const char *haystack, const char *needle);

/* 1 when a CPU device's name says it has AVX-512's 32 vector registers
 * (PoCL names its CPU device after LLVM's CPU); 0 for AVX2 and for any
 * name that gives no hint. Register tiles are sized by it. */
int device_cpu_has_avx512(const clttt_device_info *info);

#endif
