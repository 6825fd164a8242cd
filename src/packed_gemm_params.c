/* The parameters of our packed GEMM and update kernels: per-device
 * defaults, validity, and the -D options they build with. Plain C, no
 * OpenCL calls, so the tuning cache (and its fuzzer) can use it alone. */
#include <stdio.h>
#include <string.h>

#include "device_text.h"
#include "packed_gemm.h"

static int is_cpu(const clttt_device_info *info) { return strcmp(info->type, "CPU") == 0; }

/* GPU tiles per vendor; all reasoned, none measured (no GPU was at hand). */
static void gpu_tiles(const clttt_device_info *info, int *tile_m, int *tile_n, int *tile_k, int *item_m,
                      int *item_n) {
  *tile_k = 16;
  *item_m = 4;
  *item_n = 4;
  if (device_text_contains(info->vendor, "nvidia") || device_text_contains(info->vendor, "advanced micro") ||
      device_text_contains(info->vendor, "amd")) {
    /* 64 x 64 outputs per group of 16 x 16 = 256 work-items: 8 warps or 4
     * wavefronts; 16 accumulators per work-item leave registers for
     * occupancy; 8.3 KiB of local memory per group. */
    *tile_m = 64;
    *tile_n = 64;
  } else {
    /* Intel GPUs and anything else: smaller register files and sub-groups
     * of 8-32, so 32 x 32 tiles in groups of 8 x 8 = 64. */
    *tile_m = 32;
    *tile_n = 32;
  }
}

static size_t gpu_local_bytes(int tile_m, int tile_n, int tile_k) {
  return ((size_t)tile_k * (size_t)(tile_m + 1) + (size_t)tile_k * (size_t)tile_n) * sizeof(float);
}

static int gpu_tiles_fit(const clttt_device_info *info, int tile_m, int tile_n, int tile_k, int item_m, int item_n) {
  size_t group = (size_t)(tile_n / item_n) * (size_t)(tile_m / item_m);
  return (info->max_work_group_size == 0 || group <= info->max_work_group_size) &&
         (info->local_memory == 0 || gpu_local_bytes(tile_m, tile_n, tile_k) <= info->local_memory);
}

void packed_gemm_defaults(const clttt_device_info *info, packed_gemm_params *params) {
  int tile_m, tile_n, tile_k, item_m, item_n;
  gpu_tiles(info, &tile_m, &tile_n, &tile_k, &item_m, &item_n);
  *params = (packed_gemm_params){.variant = PACKED_GEMM_GPU, .nr = tile_n, .mr = 8, .row_block = 128,
                                 .local_k = 0, .gemv_panels = 4, .tile_m = tile_m, .tile_k = tile_k, .item_m = item_m,
                                 .item_n = item_n};
  /* A device too small for the tiles, or a CPU: the CPU variant, whose
   * work-groups are single work-items and need no local memory. */
  if (is_cpu(info) || !gpu_tiles_fit(info, tile_m, tile_n, tile_k, item_m, item_n)) {
    int wide = device_cpu_has_avx512(info);
    params->variant = PACKED_GEMM_CPU;
    /* On AVX-512 (32 registers): 8 rows x 32 columns = 16 float16
     * accumulators on AMD, 6 x 64 = 24 on Intel; on AVX2 (16 registers,
     * float16 = 2 of them) 6 x 16 = 12. On a 2-core Zen 4 EPYC 8 x 32 ran
     * fp32 at 0.84-0.97 of the FMA peak (bench/RESULTS.md section 19). On
     * 2-core Xeons (Sapphire Rapids class, PoCL 3.1) 6 x 64 ran within 5% of
     * 8 x 32 (sections 9-14), then 1.15x (section 21), and whole prefills
     * of the 8-layer bench model 1.04-1.36x faster in eight alternated
     * pairings on two boots (section 22); 12 x 32 was slower. On a 2-core
     * AVX2 EPYC, clttt tune twice, 6 x 16 and 4 x 16 ran level and every
     * 32- to 64-column tile 2.3-3x slower, spilled (section 20). bf16/fp16
     * panels converted 256 k at a time into local memory ran 1.05-1.25x
     * faster than converting in the inner loop; for fp32 weights the
     * staging lost 5-10%, so they never stage. */
    if (!wide) {
      params->nr = 16;
      params->mr = 6;
    } else if (device_text_contains(info->vendor, "GenuineIntel")) {
      params->nr = 64;
      params->mr = 6;
    } else {
      params->nr = 32;
      params->mr = 8;
    }
    /* Rows a work-item sweeps over its panel. 256 against 128, alternated
     * call by call in one process with 64 MiB of other memory written
     * between calls (median of 10-16 pairs): 1.06-1.13x on the prefill's
     * products at 512 rows (q/k/v, gate/up, down, LM head of the 8-layer d
     * 1024 Qwen3), 1.12x on 1024 x 6144 x 1024, 1.00-1.06x at Qwen3-4B and
     * 8B shapes; 512 was as good at d 1024 but 0.96x at k 12288. The
     * products of a 1024-token prefill took 0.89-0.99x the time with 256
     * (four alternated runs). */
    params->row_block = 256;
    /* On a 2-core Zen 4 EPYC (32 KiB L1d, 1 MiB L2 per core) 512 k per
     * stage ran bf16/fp16 at 0.83-0.91 of the peak against 0.80-0.87 for
     * 256, three alternated rounds of bench_gemm, and clttt tune chose it
     * (bench/RESULTS.md section 19); the Xeon's 256 is kept elsewhere. On
     * a 2-core AVX2 EPYC the two were level within its noise (section 20). */
    params->local_k = device_text_contains(info->vendor, "AuthenticAMD") ? 512 : 256;
    /* Decode's one-row kernel: panels streamed at once per work-item, so
     * that more of the weight is in flight per core. Decode of the 8-layer
     * d 1024 bench model from an empty context (2-core Xeon, PoCL 3.1, two
     * rounds alternated): bf16 60.9 / 56.3 tokens/s with 8, 57.9 / 52.2
     * with 4, 52.8 / 48.1 with 2; f16 53.2 / 53.1 against 47.9 / 52.1 and
     * fp32 the same or better; `clttt tune`'s gemm_decode agreed (1.15x).
     * On a 2-core Zen 4 EPYC (32 MiB L3, PoCL 3.1) 2 panels with no
     * prefetch beat 8 with 16 k of prefetch in each of five alternated
     * rounds of the same decode: bf16 88-107 tokens/s against 70-87, f16
     * 92-115 against 77-87, fp32 47-63 against 34-49 (bench/RESULTS.md
     * section 26); a Zen 3 EPYC was not measured, so it keeps 8 and 16. */
    const int zen4 = wide && device_text_contains(info->vendor, "AuthenticAMD");
    params->gemv_panels = zen4 ? 2 : 8;
    /* ... and prefetched 16 k ahead. Decode of the same model (2-core Xeon
     * VM with a 480 MiB L3, PoCL 3.1, tuning files alternated, two rounds
     * of 2): bf16 80-88 tokens/s with 8, 16, 32 or 64 against 72-73 with
     * none, f16 79-84 against 69-71; fp32 42-44 either way (its loop has
     * half the instructions per byte and already kept the memory busy). */
    params->gemv_prefetch = zen4 ? 0 : 16;
    /* fp32 panels swept in slices of k beyond this length, so a panel's
     * slice stays in L2 (512 KiB) while the row block's tiles pass over it.
     * Alternated call by call against one pass (2-core Xeon, PoCL 3.1, 256-
     * row blocks, median of 8 pairs): 1.29x at 512 x 4096 x 12288
     * (Qwen3-8B's down projection), 1.14x at 512 x 2560 x 9728 (Qwen3-4B's);
     * slices of 1024 did as well there (1.35x, 1.16x) but lost 3-10% at k
     * 3072 and 4096, which slices of 4096 leave in one pass. */
    params->k_slice = 4096;
    /* Each register tile prefetches its panel 16 k ahead: bench_gemm
     * (2-core Xeon VM, PoCL 3.1, fp32, alternated through CLTTT_KERNEL_DIR,
     * twice): 1024 x 3072 x 1024 at 323-330 GFLOP/s against 287-302
     * without, 512 x 9728 x 2560 at 297-304 against 279-292; 8 and 32 k
     * ahead were no better than 16, and prefetching the rows of x as well
     * lost 10-25%. */
    params->prefetch = 16;
  }
}

void packed_gemm_update_defaults(const clttt_device_info *info, packed_gemm_update_params *params) {
  int tile_m, tile_n, tile_k, item_m, item_n;
  gpu_tiles(info, &tile_m, &tile_n, &tile_k, &item_m, &item_n);
  *params = (packed_gemm_update_params){.variant = PACKED_GEMM_GPU, .nr = 32, .mr = 8, .row_block = 128,
                                        .panels = 1, .tile_m = tile_m, .tile_n = tile_n, .tile_k = tile_k,
                                        .item_m = item_m, .item_n = item_n};
  if (is_cpu(info) || !gpu_tiles_fit(info, tile_m, tile_n, tile_k, item_m, item_n)) {
    int wide = device_cpu_has_avx512(info);
    /* Measured as for the GEMM (PoCL 3.1, 2-core Xeon, d 1024, f 3072,
     * C 512 and 1024): staging 128 values of t of V and h in local memory ran
     * 2-4x faster than reading them in place (whose rows lie 4 and 12 KiB
     * apart); 6 x 64 register tiles 1.1-1.2x faster than 8 x 32; 4 column
     * slices per work-item sharing one staged V 1.1-1.6x faster than 1
     * (every slice needs all of V: 48 copies of it at f 3072 otherwise), 8
     * no better; 96 rows (16 tiles of 6) keep the staged slices at 48 + 32
     * KiB, in L2. */
    params->variant = PACKED_GEMM_CPU;
    params->nr = wide ? 64 : 16;
    params->mr = 6;
    params->row_block = 96;
    params->local_t = 128;
    params->panels = 4;
    /* V and h packed once per call, then one pass over t per register tile:
     * bench/bench_fast_weight's update step at d 1024, f 3072 (conv,
     * projection, packing and product; PoCL 3.1, 2-core Xeon, two alternated
     * runs of 3 rounds) took 0.89-0.93x the time of the staged form at C 512
     * and 0.83-0.90x at C 1024, where the staged form sweeps W 8 times. */
    params->packed = 1;
  }
}

/* The checks both kernel families share for their GPU tiles. */
static int gpu_tiles_valid(const clttt_device_info *info, const char *prefix, int tile_m, int tile_n, int tile_k,
                           int item_m, int item_n, char *why, size_t capacity) {
  if (tile_m < 1 || tile_n < 1 || tile_k < 1 || item_m < 1 || item_n < 1 || tile_m > 1024 || tile_n > 1024 ||
      tile_k > 1024) {
    snprintf(why, capacity, "%s tiles %d x %d x %d with %d x %d per work-item are outside 1..1024", prefix, tile_m,
             tile_n, tile_k, item_m, item_n);
    return 0;
  }
  if (tile_m % item_m != 0 || tile_n % item_n != 0) {
    snprintf(why, capacity, "%s tile %d x %d is not a whole number of %d x %d work-item tiles", prefix, tile_m,
             tile_n, item_m, item_n);
    return 0;
  }
  if (item_m * item_n > 64) {
    snprintf(why, capacity, "%s %d x %d outputs per work-item exceed 64 registers of accumulators", prefix, item_m,
             item_n);
    return 0;
  }
  int group = (tile_n / item_n) * (tile_m / item_m);
  if (info->max_work_group_size > 0 && (size_t)group > info->max_work_group_size) {
    snprintf(why, capacity, "%s work-group of %d exceeds the device's largest (%zu)", prefix, group,
             info->max_work_group_size);
    return 0;
  }
  if ((tile_m * tile_k) % group != 0 || (tile_n * tile_k) % group != 0) {
    snprintf(why, capacity, "%s local tiles %d x %d and %d x %d are not a whole number of loads for %d work-items",
             prefix, tile_k, tile_m, tile_k, tile_n, group);
    return 0;
  }
  size_t bytes = gpu_local_bytes(tile_m, tile_n, tile_k);
  if (info->local_memory > 0 && bytes > info->local_memory) {
    snprintf(why, capacity, "%s tiles need %zu bytes of local memory; the device has %llu", prefix, bytes,
             (unsigned long long)info->local_memory);
    return 0;
  }
  return 1;
}

static int cpu_tiles_valid(const char *prefix, int nr, int mr, int row_block, char *why, size_t capacity) {
  if (nr < 16 || nr > PACKED_GEMM_MAX_NR || nr % 16 != 0) {
    snprintf(why, capacity, "%s_NR=%d is not a multiple of 16 in 16..256", prefix, nr);
    return 0;
  }
  if (mr < 1 || mr > 32) {
    snprintf(why, capacity, "%s_MR=%d is outside 1..32", prefix, mr);
    return 0;
  }
  if (row_block < 1 || row_block > 1 << 20) {
    snprintf(why, capacity, "%s_ROW_BLOCK=%d is outside 1..%d", prefix, row_block, 1 << 20);
    return 0;
  }
  return 1;
}

int packed_gemm_params_valid(const clttt_device_info *info, const packed_gemm_params *params, char *why,
                             size_t capacity) {
  if (params->variant == PACKED_GEMM_CPU) {
    if (!cpu_tiles_valid("GEMM", params->nr, params->mr, params->row_block, why, capacity))
      return 0;
    size_t bytes = (size_t)(params->local_k > 0 ? params->local_k : 0) * (size_t)params->nr * sizeof(float);
    if (params->local_k < 0 || params->local_k > 1 << 20 ||
        (info->local_memory > 0 && bytes > info->local_memory)) {
      snprintf(why, capacity, "GEMM_LOCAL_K=%d needs %zu bytes of local memory; the device has %llu",
               params->local_k, bytes, (unsigned long long)info->local_memory);
      return 0;
    }
    if (params->k_slice < 0 || params->k_slice > 1 << 20) {
      snprintf(why, capacity, "GEMM_K_SLICE=%d is outside 0..%d", params->k_slice, 1 << 20);
      return 0;
    }
    if (params->gemv_panels < 1 || params->gemv_panels > 16) {
      snprintf(why, capacity, "GEMM_GEMV_PANELS=%d is outside 1..16", params->gemv_panels);
      return 0;
    }
    if (params->gemv_prefetch < 0 || params->gemv_prefetch > 4096) {
      snprintf(why, capacity, "GEMM_GEMV_PREFETCH=%d is outside 0..4096", params->gemv_prefetch);
      return 0;
    }
    if (params->prefetch < 0 || params->prefetch > 4096) {
      snprintf(why, capacity, "GEMM_PREFETCH=%d is outside 0..4096", params->prefetch);
      return 0;
    }
    return 1;
  }
  if (params->variant == PACKED_GEMM_GPU)
    return gpu_tiles_valid(info, "GEMM", params->tile_m, params->nr, params->tile_k, params->item_m,
                           params->item_n, why, capacity);
  snprintf(why, capacity, "GEMM_VARIANT=%d is neither 0 (CPU) nor 1 (GPU)", (int)params->variant);
  return 0;
}

int packed_gemm_update_params_valid(const clttt_device_info *info, const packed_gemm_update_params *params,
                                    char *why, size_t capacity) {
  if (params->variant == PACKED_GEMM_CPU) {
    if (!cpu_tiles_valid("UPDATE", params->nr, params->mr, params->row_block, why, capacity))
      return 0;
    if (params->panels < 1 || params->panels > 1024) {
      snprintf(why, capacity, "UPDATE_PANELS=%d is outside 1..1024", params->panels);
      return 0;
    }
    if (params->packed != 0 && params->packed != 1) {
      snprintf(why, capacity, "UPDATE_PACKED=%d is neither 0 (staged) nor 1 (packed, one pass)", params->packed);
      return 0;
    }
    size_t bytes = (size_t)(params->local_t > 0 ? params->local_t : 0) * (size_t)(params->nr + params->row_block) *
                   sizeof(float);
    if (params->local_t < 0 || params->local_t > 1 << 20 || (info->local_memory > 0 && bytes > info->local_memory)) {
      snprintf(why, capacity, "UPDATE_LOCAL_T=%d needs %zu bytes of local memory; the device has %llu",
               params->local_t, bytes, (unsigned long long)info->local_memory);
      return 0;
    }
    return 1;
  }
  if (params->variant == PACKED_GEMM_GPU)
    return gpu_tiles_valid(info, "UPDATE", params->tile_m, params->tile_n, params->tile_k, params->item_m,
                           params->item_n, why, capacity);
  snprintf(why, capacity, "UPDATE_VARIANT=%d is neither 0 (CPU) nor 1 (GPU)", (int)params->variant);
  return 0;
}

/* Only the options the chosen variant reads, so two parameter sets that
 * build the same kernel share one cached program. */
void packed_gemm_defines(const packed_gemm_params *params, packed_gemm_type type, char *buffer, size_t capacity) {
  if (params->variant == PACKED_GEMM_CPU)
    snprintf(buffer, capacity, "-DGEMM_VARIANT=0 -DWEIGHT_TYPE=%d -DGEMM_NR=%d -DGEMM_MR=%d -DGEMM_ROW_BLOCK=%d "
             "-DGEMM_LOCAL_K=%d -DGEMV_PANELS=%d -DGEMV_PREFETCH=%d -DGEMM_K_SLICE=%d -DGEMM_PREFETCH=%d",
             (int)type, params->nr, params->mr, params->row_block, type == PACKED_GEMM_F32 ? 0 : params->local_k,
             params->gemv_panels, params->gemv_prefetch, type == PACKED_GEMM_F32 ? params->k_slice : 0,
             params->prefetch);
  else
    snprintf(buffer, capacity, "-DGEMM_VARIANT=1 -DWEIGHT_TYPE=%d -DGEMM_NR=%d -DGEMM_TILE_M=%d -DGEMM_TILE_K=%d "
             "-DGEMM_ITEM_M=%d -DGEMM_ITEM_N=%d", (int)type, params->nr, params->tile_m, params->tile_k,
             params->item_m, params->item_n);
}

void packed_gemm_update_defines(const packed_gemm_update_params *params, char *buffer, size_t capacity) {
  if (params->variant == PACKED_GEMM_CPU)
    snprintf(buffer, capacity,
             "-DUPDATE_VARIANT=0 -DUPDATE_NR=%d -DUPDATE_MR=%d -DUPDATE_ROW_BLOCK=%d -DUPDATE_LOCAL_T=%d -DUPDATE_PANELS=%d",
             params->nr, params->mr, params->row_block, params->local_t, params->panels);
  else
    snprintf(buffer, capacity, "-DUPDATE_VARIANT=1 -DUPDATE_TILE_M=%d -DUPDATE_TILE_N=%d -DUPDATE_TILE_K=%d "
             "-DUPDATE_ITEM_M=%d -DUPDATE_ITEM_N=%d", params->tile_m, params->tile_n, params->tile_k,
             params->item_m, params->item_n);
}

