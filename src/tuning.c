/* Per-device kernel parameters: built-in defaults per vendor, and the
 * per-user cache of tuned values that overrides them. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device_text.h"
#include "error.h"
#include "log.h"
#include "file.h"
#include "packed_gemm.h"
#include "tuning.h"

/* The attention tile's local memory is 2 * ATTENTION_BLOCK_K * HEAD_DIM
 * floats; head_dim is not known at device open, so values are checked
 * against the head size of the models we run (Qwen3, LLaMA-3: 128). */
#define TYPICAL_HEAD_DIM 128

const tuning_parameter tuning_parameters[] = {
    {"RMSNORM_WGS", offsetof(tuning_params, rmsnorm_work_group_size), 1, 0, 1, 1},
    {"ATTENTION_BLOCK_Q", offsetof(tuning_params, attention_block_q), 1, 256, 0, 1},
    {"ATTENTION_BLOCK_K", offsetof(tuning_params, attention_block_k), 1, 256, 0, 0},
    {"ATTENTION_GEMM_MIN_QUERIES", offsetof(tuning_params, attention_gemm_min_queries), 0, 1 << 20, 0, 0},
    {"ATTENTION_DECODE_ROWS", offsetof(tuning_params, attention_decode_rows), 0, 2, 0, 0},
    {"ATTENTION_DECODE_KEYS", offsetof(tuning_params, attention_decode_keys), 1, 1 << 20, 0, 0},
    {"ATTENTION_SHORT_SPLIT", offsetof(tuning_params, attention_short_split), 0, 1, 0, 0},
    {"ATTENTION_TILES", offsetof(tuning_params, attention_tiles), 0, 1, 0, 0},
    {"ATTENTION_TILE_ROWS", offsetof(tuning_params, attention_tile_rows), 1, 16, 0, 0},
    {"ATTENTION_TILE_KEYS", offsetof(tuning_params, attention_tile_keys), 16, 256, 0, 0},
    {"ATTENTION_TILE_SHARE", offsetof(tuning_params, attention_tile_share), 1, 16, 0, 0},
    {"ATTENTION_TILE_PREFETCH", offsetof(tuning_params, attention_tile_prefetch), 0, 256, 0, 0},
    {"ATTENTION_TILE_VALUES", offsetof(tuning_params, attention_tile_values), 1, 8, 0, 0},
    {"SOFTMAX_WGS", offsetof(tuning_params, softmax_work_group_size), 1, 0, 1, 1},
    {"ROPE_WGS", offsetof(tuning_params, rope_work_group_size), 1, 0, 0, 1},
    {"ROPE_HEAD_LANES", offsetof(tuning_params, rope_head_lanes), 0, 1, 0, 0},
    {"ELEMENTWISE_WGS", offsetof(tuning_params, elementwise_work_group_size), 1, 0, 0, 1},
    {"VECTOR_WIDTH", offsetof(tuning_params, vector_width), 1, 16, 1, 0},
    {"TTT_CONV_ROWS", offsetof(tuning_params, conv_rows), 1, 64, 0, 0},
    {"TTT_CONV_CHANNELS", offsetof(tuning_params, conv_channels), 1, 16, 0, 0},
    {"GEMV_ROW_PER_ITEM", offsetof(tuning_params, gemv_row_per_item), 0, 1, 0, 0},
    {"GEMV_WGS", offsetof(tuning_params, gemv_work_group_size), 1, 0, 1, 1},
    {"GEMM_PACKED", offsetof(tuning_params, gemm_packed), 0, 1, 0, 0},
    {"UPDATE_OWN", offsetof(tuning_params, update_own), 0, 1, 0, 0},
    /* Our packed GEMM's (cl/gemm.cl); packed_gemm_params_valid checks how
     * they fit together and the device. */
    {"GEMM_VARIANT", offsetof(tuning_params, gemm.variant), 0, 1, 0, 0},
    {"GEMM_NR", offsetof(tuning_params, gemm.nr), 1, 256, 0, 0},
    {"GEMM_MR", offsetof(tuning_params, gemm.mr), 1, 16, 0, 0},
    {"GEMM_ROW_BLOCK", offsetof(tuning_params, gemm.row_block), 1, 4096, 0, 0},
    {"GEMM_LOCAL_K", offsetof(tuning_params, gemm.local_k), 0, 4096, 0, 0},
    {"GEMM_GEMV_PANELS", offsetof(tuning_params, gemm.gemv_panels), 1, 16, 0, 0},
    {"GEMM_GEMV_PREFETCH", offsetof(tuning_params, gemm.gemv_prefetch), 0, 4096, 0, 0},
    {"GEMM_K_SLICE", offsetof(tuning_params, gemm.k_slice), 0, 1 << 20, 0, 0},
    {"GEMM_PREFETCH", offsetof(tuning_params, gemm.prefetch), 0, 4096, 0, 0},
    {"GEMM_TILE_M", offsetof(tuning_params, gemm.tile_m), 1, 256, 0, 0},
    {"GEMM_TILE_K", offsetof(tuning_params, gemm.tile_k), 1, 256, 0, 0},
    {"GEMM_ITEM_M", offsetof(tuning_params, gemm.item_m), 1, 16, 0, 0},
    {"GEMM_ITEM_N", offsetof(tuning_params, gemm.item_n), 1, 16, 0, 0},
    /* Our TTT update kernel's (cl/gemm_update.cl); checked together by
     * packed_gemm_update_params_valid. */
    {"UPDATE_VARIANT", offsetof(tuning_params, update.variant), 0, 1, 0, 0},
    {"UPDATE_NR", offsetof(tuning_params, update.nr), 16, 256, 0, 0},
    {"UPDATE_MR", offsetof(tuning_params, update.mr), 1, 16, 0, 0},
    {"UPDATE_ROW_BLOCK", offsetof(tuning_params, update.row_block), 1, 4096, 0, 0},
    {"UPDATE_LOCAL_T", offsetof(tuning_params, update.local_t), 0, 4096, 0, 0},
    {"UPDATE_PANELS", offsetof(tuning_params, update.panels), 1, 1024, 0, 0},
    {"UPDATE_PACKED", offsetof(tuning_params, update.packed), 0, 1, 0, 0},
    {"UPDATE_TILE_M", offsetof(tuning_params, update.tile_m), 1, 256, 0, 0},
    {"UPDATE_TILE_N", offsetof(tuning_params, update.tile_n), 1, 256, 0, 0},
    {"UPDATE_TILE_K", offsetof(tuning_params, update.tile_k), 1, 256, 0, 0},
    {"UPDATE_ITEM_M", offsetof(tuning_params, update.item_m), 1, 16, 0, 0},
    {"UPDATE_ITEM_N", offsetof(tuning_params, update.item_n), 1, 16, 0, 0},
};
const int tuning_parameter_count = (int)(sizeof tuning_parameters / sizeof tuning_parameters[0]);

int tuning_get(const tuning_params *params, const tuning_parameter *parameter) {
  int value;
  memcpy(&value, (const char *)params + parameter->offset, sizeof value);
  return value;
}

void tuning_set(tuning_params *params, const tuning_parameter *parameter, int value) {
  memcpy((char *)params + parameter->offset, &value, sizeof value);
}

int tuning_equal(const tuning_params *a, const tuning_params *b) {
  for (int i = 0; i < tuning_parameter_count; i++)
    if (tuning_get(a, &tuning_parameters[i]) != tuning_get(b, &tuning_parameters[i]))
      return 0;
  return a->has_fp16 == b->has_fp16;
}

static int largest_power_of_two_at_most(size_t limit) {
  int value = 1;
  while ((size_t)value * 2 <= limit && value < (1 << 20))
    value *= 2;
  return value;
}

void tuning_defaults(const clttt_device_info *info, tuning_params *params) {
  /* Anything unknown (accelerators, other GPUs): small groups every device accepts. */
  *params = (tuning_params){
      .rmsnorm_work_group_size = 64,
      .attention_block_q = 16,
      .attention_block_k = 32,
      .attention_gemm_min_queries = 32,
      /* Enough work-items for any device at a few hundred keys: 64 ranges
       * x heads. Ranges of 128 keys ran 2x slower than of 32 on PoCL at
       * 1300 keys with the kernel of bench/RESULTS.md section 10. */
      .attention_decode_keys = 32,
      .attention_tile_rows = 6,
      .attention_tile_keys = 64,
      .attention_tile_share = 2,
      .attention_tile_values = 4,
      .softmax_work_group_size = 64,
      .rope_work_group_size = 64,
      .elementwise_work_group_size = 64,
      .vector_width = 1,
      .conv_rows = 1,
      .conv_channels = 1,
      .gemv_row_per_item = 0,
      .gemv_work_group_size = 64,
  };
  if (strcmp(info->type, "CPU") == 0) {
    /* PoCL turns a work-group into a loop over work-items and vectorises
     * across them, so groups are the unit of a thread's work: big enough to
     * amortise the per-group overhead, small enough to keep both cores busy
     * on short rows. Measured with `clttt tune` (two full runs) on a 2-core
     * AMD EPYC (AVX-512) with PoCL 3.1: 8-wide swiglu/add ran 1.4-2.7x faster
     * than 4-wide (2-wide was the slowest of all), 8 conv rows per work-item
     * 1.08-1.10x faster than 4; the other families' best candidates beat
     * these values by less than the run-to-run noise (up to 30% on a shared
     * machine), so they stay. */
    /* rmsnorm and the q/k norm + RoPE as one work-item per row or token
     * (RMSNORM_WGS / ROPE_WGS 1: straight-line vector code, no barriers):
     * in a 1024-token prefill of the 8-layer d 1024 Qwen3 (16 calls each)
     * rmsnorm took 11.8 ms against 36-48 with groups of 64, and q/k norm +
     * RoPE 36-38 ms against 63-77, alternated three times (2-core Xeon,
     * PoCL 3.1; bench/RESULTS.md section 14). */
    params->rmsnorm_work_group_size = 1;
    params->attention_block_q = 16;
    params->attention_block_k = 64;
    /* Attention at d=512 (8 heads, 4 KV heads of 64), measured on the same
     * machine: the GEMM path ran 1.3-5.6x faster than the flash kernel for
     * 16-512 queries over 1024+ cached keys (44-47 GFLOP/s against 8-9 from
     * 128 queries on), and lost by at most 1.5x from position 0 with 64-256
     * queries, where CLBlast's small-product kernel is slow, so the
     * threshold was 64 then. One work-item per score row streamed the
     * softmax at 24 GB/s against 17-20 for 4-16. With the register tiles as
     * the long-batch path (ATTENTION_TILES, below) it is 4: feeding a
     * 512-token text in pieces of 4 / 16 queries took 9.5 / 4.5 s through
     * the tiles against 12.1 / 7.2 s through the flash kernel, 1536 tokens
     * in pieces of 8 / 32 19.3 / 9.5 s against 37.3 / 28.4 s; pieces of 2
     * lost (30.3 s against 21.3: three launches per kv head for two
     * queries). 8-layer d 1024 Qwen3, f16 KV, 2-core Xeon. */
    params->attention_gemm_min_queries = 4;
    /* Decode attention (16 heads, 8 KV heads of 128, f16 cache; the kernel
     * alone with the caches evicted between runs, as a decode step leaves
     * them): a work-item per (range, head) reads each head's 256-byte slices
     * of 2 KiB cache rows, strided, twice per KV head; a work-item per range
     * reading whole rows in order, every head from the row while it is in
     * L1, ran 1.18x faster at 512 keys, 1.13-1.22x at 1290, 1.4-1.6x at 4096
     * (2-core Xeon, PoCL 3.1). Its kernel now takes each tile's KV heads in
     * turn with two query heads' accumulators in registers and the next
     * tile prefetched into L2: 8 layers' caches streamed back to back on a
     * 2-core Zen 4 EPYC, the form before took 2.7x the time at 512 keys,
     * 1.6x at 4096, 1.3x at 16384, and compiled for AVX2 on the same
     * machine (its two heads' accumulators spilled) 1.1-1.8x (bench/RESULTS.md
     * section 27). */
    params->attention_decode_rows = 1;
    /* That kernel in ranges of at least 128 keys rather than 32 (fewer,
     * longer streams, each range's first tile unprefetched): decode
     * attention alone over 8 layers' caches (bench_decode_attention, tuning
     * files alternated twice; 2-core Zen 4 EPYC, PoCL 3.1) took 0.098 /
     * 0.078 ms a layer against 0.227 / 0.146 at 512 keys, 0.222 / 0.151
     * against 0.371 / 0.312 at 1024, 0.810 / 0.761 against 1.218 / 0.868 at
     * 4096; 256 and 512 did no better, and leave a many-core CPU idle at a
     * few hundred keys (bench/RESULTS.md section 27). */
    params->attention_decode_keys = 128;
    /* Pieces of 2 and 3 queries (below the tiles' threshold) through the
     * split kernels too: a 1024-token feed of the 8-layer d 1024 Qwen3 (f16
     * KV) in pieces of 3 took 18.4-19.5 s against 33.7-34.4 s through the
     * flash kernel, in pieces of 2 23.3-25.0 s against 44.4-46.5,
     * alternated twice; at 8 and 12 queries the split kernels and the
     * tiles ran level, so the threshold stays 4 (2-core AVX2 EPYC, PoCL
     * 3.1; bench/RESULTS.md section 25). */
    params->attention_short_split = 1;
    /* Prefill attention in one pass of register tiles (6 queries x 64 keys:
     * 24 of AVX-512's 32 registers) instead of two GEMMs per head with the
     * score matrix between them: see cl/attention_tiles.cl; measured in
     * bench/RESULTS.md section 12. Eight tiles per work-item share each key
     * block while it is in cache: with four, a 4096-token prefill's
     * attention (pieces of 512, K and V of a kv head 4 MiB, from L3) took
     * 3.7-4.4 s against 4.1-4.9 s with two and 4.8-5.4 s with one; with the
     * prefetch below, eight took 7.7% less time than four at 8192 tokens
     * (medians of six pairs) and 9-10% less at 15602 (the whole prefill
     * 6-7% less), level at 4096 and within the noise at 2048 (section 18). */
    params->attention_tiles = 1;
    params->attention_tile_share = 8;
    /* On AVX2 (16 registers) the 6 x 64 tile spills: 4 queries x 16 keys
     * (8 registers) took 29-30% less attention time in a 2048-token
     * prefill, alternated twice (1891-2021 ms against 2704-2849; 8 x 16
     * took 2425-2444); clttt tune put it first of 16 candidates in one run
     * (1.67x) and third in the other (1.48x, against 1.56x for 8 x 64);
     * 2-core AVX2 EPYC, PoCL 3.1, bench/RESULTS.md section 20. */
    if (!device_cpu_has_avx512(info)) {
      params->attention_tile_rows = 4;
      params->attention_tile_keys = 16;
      /* and its P V product one float16 of output per query a pass (8
       * registers): with four (32, the AVX-512 count) a 2048-token prefill's
       * attention took 1936-1985 ms, with two 1318-1440, with one 1074-1078
       * (8-layer d 1024 Qwen3, f32 KV, alternated twice; later pairs of one
       * 1218-1445 with 4 x 16 and 1151-1568 with 6 x 16, the machine
       * swinging); 2-core AVX2 EPYC, PoCL 3.1, bench/RESULTS.md section 23. */
      params->attention_tile_values = 1;
    }
    /* Each product prefetches 4 rows ahead: 4096-token prefills' attention
     * took 4-12% less time than without, alternated; 2 or 8 rows, or K or
     * V alone, gained less (bench/RESULTS.md section 18). */
    params->attention_tile_prefetch = 4;
    params->softmax_work_group_size = 1;
    params->rope_work_group_size = 1;
    params->elementwise_work_group_size = 64;
    params->vector_width = 8;
    /* The conv in float16 vectors of 16 channels: one channel per work-item
     * ran at 3 GB/s (PoCL's work-item loop did not vectorise its window).
     * `clttt tune --kernels conv` (2-core Xeon, PoCL 3.1, two runs): 3.1 ms
     * with one channel and 8 rows per work-item; with 16 channels 0.42 /
     * 0.60 ms with 16 rows against 0.59 / 0.65 with 8 and 1.8 with 1.
     * GPUs keep one channel per work-item: coalesced, and no 16-wide window
     * of registers per work-item. */
    params->conv_channels = 16;
    params->conv_rows = 16;
    /* A decode GEMV row per work-item streams contiguous memory in each SIMD
     * lane: 7-11 GB/s of a 12-14 GB/s copy at 3072 x 1024, against 1.5-3 GB/s
     * for a work-group per row and 0.5-1 GB/s for CLBlast's SGEMV/SGEMM. */
    params->gemv_row_per_item = 1;
    params->gemv_work_group_size = 16;
  } else if (device_text_contains(info->vendor, "nvidia")) {
    /* Reasoned, not measured (no NVIDIA GPU was at hand): multiples of the
     * 32-wide warp; 8 warps reduce a 1024-wide row in one pass; one warp of
     * queries per attention group keeps the per-query private arrays
     * (2 x HEAD_DIM floats) from starving occupancy, and a 32-key tile is
     * 32 KiB of local memory at head_dim 128, inside the 48 KiB every
     * NVIDIA OpenCL device offers. float4 loads are what coalesces best. */
    params->rmsnorm_work_group_size = 256;
    params->attention_block_q = 32;
    params->attention_block_k = 32;
    params->rope_work_group_size = 64;
    /* q/k norm + RoPE with its lanes along the head: reasoned from the
     * offline build (a head per work-item kept it on a 1 KiB stack on
     * sm_90), not timed; `clttt tune --kernels rope_lanes` measures it. */
    params->rope_head_lanes = 1;
    params->elementwise_work_group_size = 256;
    /* The flash kernel runs one work-item per (query, head) that walks every
     * key serially: below a few hundred queries that cannot fill a GPU, while
     * CLBlast's products spread over keys too. 32 queries (a warp of score
     * rows per head) is where the per-head GEMM launches should stop
     * dominating; a row per 256-wide group streams the softmax coalesced. */
    params->attention_gemm_min_queries = 32;
    params->softmax_work_group_size = 256;
    params->vector_width = 4;
    params->conv_rows = 4;
    params->gemv_row_per_item = 0; /* a warp-multiple group per row reads it coalesced */
    params->gemv_work_group_size = 128;
    /* Decode attention as a group per (range, head), its lanes along the
     * head: reasoned from the offline build (bench/gpu_offline_build.sh,
     * bench/RESULTS.md section 24), not timed: the work-item per (range,
     * head) took 255 registers and spilled on sm_90, and gave a GPU only
     * 64 ranges x heads work-items; the groups read each key row
     * coalesced and hold 4 floats of the head per lane. */
    params->attention_decode_rows = 2;
    /* Short batches (a chat turn of a few tokens after a long context)
     * through the same split kernels, a query per group row: the flash
     * kernel gives a batch of n queries n x heads work-items, each walking
     * the whole context, so 8 queries of 32 heads at 32k keys would keep 256
     * work-items busy on a GPU of 132 SMs; split, any such batch fills
     * about 64 x heads groups of 32 lanes. Reasoned, not timed; `clttt tune
     * --kernels attention_short` measures it. */
    params->attention_short_split = 1;
  } else if (device_text_contains(info->vendor, "advanced micro") ||
             device_text_contains(info->vendor, "amd")) {
    /* Reasoned: multiples of the 64-wide wavefront; 64 KiB of LDS holds a
     * 32-key tile for a 64-query group. */
    params->rmsnorm_work_group_size = 256;
    params->attention_block_q = 64;
    params->attention_block_k = 32;
    params->rope_work_group_size = 64;
    params->elementwise_work_group_size = 256;
    params->attention_gemm_min_queries = 32; /* as for NVIDIA */
    params->rope_head_lanes = 1;             /* as for NVIDIA (176 VGPRs on gfx1030) */
    params->softmax_work_group_size = 256;
    params->vector_width = 4;
    params->conv_rows = 4;
    params->gemv_row_per_item = 0;
    params->gemv_work_group_size = 128;
    params->attention_decode_rows = 2; /* as for NVIDIA (256 VGPRs and 7 KB of scratch on gfx1030) */
    params->attention_short_split = 1; /* as for NVIDIA */
  } else if (device_text_contains(info->vendor, "intel")) {
    /* Reasoned: Intel GPUs run sub-groups of 8-32 lanes with smaller
     * register files, so smaller groups and tiles. */
    params->rmsnorm_work_group_size = 128;
    params->attention_block_q = 16;
    params->attention_block_k = 32;
    params->rope_work_group_size = 32;
    params->elementwise_work_group_size = 128;
    params->attention_gemm_min_queries = 32; /* as for NVIDIA */
    params->rope_head_lanes = 1;             /* as for NVIDIA */
    params->softmax_work_group_size = 128;
    params->vector_width = 4;
    params->conv_rows = 2;
    params->gemv_row_per_item = 0;
    params->gemv_work_group_size = 64;
    params->attention_decode_rows = 2; /* as for NVIDIA */
    params->attention_short_split = 1; /* as for NVIDIA */
  }
  params->has_fp16 = info->has_fp16;
  /* Our packed GEMM ran 3-5x faster than CLBlast on PoCL CPUs and the update
   * kernel about 3x (bench/RESULTS.md); on GPUs it is unmeasured, so CLBlast
   * keeps those products until a measurement says otherwise. */
  const int cpu = strcmp(info->type, "CPU") == 0;
  params->gemm_packed = cpu;
  params->update_own = cpu;
  packed_gemm_defaults(info, &params->gemm);
  packed_gemm_update_defaults(info, &params->update);

  /* Small embedded devices may allow fewer work-items than the vendor's norm. */
  if (info->max_work_group_size > 0) {
    int largest = largest_power_of_two_at_most(info->max_work_group_size);
    for (int i = 0; i < tuning_parameter_count; i++) {
      const tuning_parameter *parameter = &tuning_parameters[i];
      if (parameter->is_work_group_size && tuning_get(params, parameter) > largest)
        tuning_set(params, parameter, largest);
    }
  }
  size_t tile_bytes = 2 * (size_t)TYPICAL_HEAD_DIM * sizeof(float);
  while (info->local_memory > 0 && params->attention_block_k > 1 &&
         (size_t)params->attention_block_k * tile_bytes > info->local_memory)
    params->attention_block_k /= 2;
}

void tuning_defines(const tuning_params *params, char *buffer, size_t capacity) {
  size_t used = 0;
  buffer[0] = '\0';
  for (int i = 0; i < tuning_parameter_count && used < capacity; i++) {
    int written = snprintf(buffer + used, capacity - used, "-D%s=%d ", tuning_parameters[i].name,
                           tuning_get(params, &tuning_parameters[i]));
    if (written < 0)
      return;
    used += (size_t)written;
  }
  if (used < capacity)
    snprintf(buffer + used, capacity - used, "-DHAS_FP16=%d", params->has_fp16);
}

static int is_power_of_two(int value) { return value > 0 && (value & (value - 1)) == 0; }

int tuning_valid(const clttt_device_info *info, const tuning_params *params, char *why,
                 size_t capacity) {
  for (int i = 0; i < tuning_parameter_count; i++) {
    const tuning_parameter *parameter = &tuning_parameters[i];
    int value = tuning_get(params, parameter);
    long maximum = parameter->maximum;
    if (maximum == 0)
      maximum = info->max_work_group_size > 0 ? (long)info->max_work_group_size : 1024;
    if (parameter->is_work_group_size && info->max_work_group_size > 0 &&
        (size_t)value > info->max_work_group_size) {
      snprintf(why, capacity, "%s=%d exceeds the device's largest work-group (%zu)", parameter->name,
               value, info->max_work_group_size);
      return 0;
    }
    if (value < parameter->minimum || value > maximum) {
      snprintf(why, capacity, "%s=%d is outside %d..%ld", parameter->name, value, parameter->minimum,
               maximum);
      return 0;
    }
    if (parameter->power_of_two && !is_power_of_two(value)) {
      snprintf(why, capacity, "%s=%d is not a power of two", parameter->name, value);
      return 0;
    }
  }
  if (!packed_gemm_params_valid(info, &params->gemm, why, capacity) ||
      !packed_gemm_update_params_valid(info, &params->update, why, capacity))
    return 0;
  if (params->attention_tile_keys % 16 != 0) {
    snprintf(why, capacity, "ATTENTION_TILE_KEYS=%d is not a multiple of 16", params->attention_tile_keys);
    return 0;
  }
  size_t tile_bytes = 2 * (size_t)params->attention_block_k * TYPICAL_HEAD_DIM * sizeof(float);
  if (info->local_memory > 0 && tile_bytes > info->local_memory) {
    snprintf(why, capacity,
             "ATTENTION_BLOCK_K=%d needs %zu bytes of local memory at head_dim %d; the device has %llu",
             params->attention_block_k, tile_bytes, TYPICAL_HEAD_DIM,
             (unsigned long long)info->local_memory);
    return 0;
  }
  return 1;
}

/* ---------------------------------------------------------------- */
/* The cache file                                                     */

clttt_status tuning_cache_path(char *path, size_t capacity) {
  const char *explicit_path = getenv("CLTTT_TUNING_FILE");
  const char *cache_home = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  int written;
  if (explicit_path && *explicit_path)
    written = snprintf(path, capacity, "%s", explicit_path);
  else if (cache_home && *cache_home)
    written = snprintf(path, capacity, "%s/clttt/tuning.json", cache_home);
  else if (home && *home)
    written = snprintf(path, capacity, "%s/.cache/clttt/tuning.json", home);
  else
    return clttt_fail(CLTTT_ERROR_IO,
                      "no tuning cache location: set CLTTT_TUNING_FILE, XDG_CACHE_HOME or HOME");
  if (written < 0 || (size_t)written >= capacity)
    return clttt_fail(CLTTT_ERROR_IO, "tuning cache path is too long");
  return CLTTT_SUCCESS;
}

static int entry_matches(json_t *entry, const clttt_device_info *info) {
  const char *platform = json_string_value(json_object_get(entry, "platform"));
  const char *device = json_string_value(json_object_get(entry, "device"));
  const char *driver = json_string_value(json_object_get(entry, "driver"));
  return platform && device && driver && strcmp(platform, info->platform) == 0 &&
         strcmp(device, info->name) == 0 && strcmp(driver, info->driver_version) == 0;
}

/* The parsed file, after checking that it is ours: its "entries" array. */
static clttt_status read_cache_file(const char *path, json_t **root_out, json_t **entries_out,
                                    int *missing) {
  *root_out = NULL;
  *entries_out = NULL;
  *missing = 0;
  if (access(path, F_OK) != 0 && errno == ENOENT) {
    *missing = 1;
    return CLTTT_SUCCESS;
  }
  /* Device open reads this file, so a FIFO or a device under its name must
   * cost an error, not a hang or all memory. */
  char *text = NULL;
  size_t size = 0;
  if (file_read_all(path, FILE_CAP_TUNING_CACHE, "a tuning cache", &text, &size) != CLTTT_SUCCESS)
    return CLTTT_ERROR_BAD_TUNING_FILE;
  json_error_t error;
  json_t *root = json_loadb(text, size, 0, &error);
  free(text);
  if (!root)
    return clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: not readable as JSON (line %d: %s)", path,
                      error.line, error.text);
  const char *format = json_string_value(json_object_get(root, "format"));
  json_t *version = json_object_get(root, "version");
  json_t *entries = json_object_get(root, "entries");
  clttt_status status = CLTTT_SUCCESS;
  if (!json_is_object(root) || !format || strcmp(format, TUNING_FILE_FORMAT) != 0)
    status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: \"format\" is not \"%s\"", path,
                        TUNING_FILE_FORMAT);
  else if (!json_is_integer(version) || json_integer_value(version) != TUNING_FILE_VERSION)
    status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: \"version\" is not %d", path,
                        TUNING_FILE_VERSION);
  else if (!json_is_array(entries))
    status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: \"entries\" is not an array", path);
  if (status != CLTTT_SUCCESS) {
    json_decref(root);
    return status;
  }
  *root_out = root;
  *entries_out = entries;
  return CLTTT_SUCCESS;
}

clttt_status tuning_cache_lookup(const char *path, const clttt_device_info *info,
                                 tuning_params *params, int *found) {
  *found = 0;
  json_t *root = NULL, *entries = NULL;
  int missing = 0;
  CLTTT_TRY(read_cache_file(path, &root, &entries, &missing));
  if (missing)
    return CLTTT_SUCCESS;
  json_t *match = NULL;
  size_t index;
  json_t *entry;
  json_array_foreach(entries, index, entry) {
    if (json_is_object(entry) && entry_matches(entry, info))
      match = entry;
  }
  if (!match) {
    json_decref(root);
    return CLTTT_SUCCESS;
  }
  json_t *values = json_object_get(match, "parameters");
  clttt_status status = CLTTT_SUCCESS;
  tuning_params candidate = *params;
  if (!json_is_object(values))
    status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: the entry for '%s' has no \"parameters\" object",
                        path, info->name);
  for (int i = 0; i < tuning_parameter_count && status == CLTTT_SUCCESS; i++) {
    json_t *value = json_object_get(values, tuning_parameters[i].name);
    if (!value)
      continue;
    json_int_t number = json_integer_value(value);
    /* The parameter's own minimum: some allow 0 (GEMV_ROW_PER_ITEM, ATTENTION_GEMM_MIN_QUERIES). */
    if (!json_is_integer(value) || number < tuning_parameters[i].minimum || number > 1 << 20)
      status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: %s of '%s' is not an integer in %d..%d", path,
                          tuning_parameters[i].name, info->name, tuning_parameters[i].minimum, 1 << 20);
    else
      tuning_set(&candidate, &tuning_parameters[i], (int)number);
  }
  char why[256];
  if (status == CLTTT_SUCCESS && !tuning_valid(info, &candidate, why, sizeof why))
    status = clttt_fail(CLTTT_ERROR_BAD_TUNING_FILE, "%s: entry for '%s': %s", path, info->name, why);
  json_decref(root);
  if (status != CLTTT_SUCCESS)
    return status;
  *params = candidate;
  *found = 1;
  return CLTTT_SUCCESS;
}

static json_t *entry_for(const clttt_device_info *info, const tuning_params *params) {
  json_t *values = json_object();
  for (int i = 0; i < tuning_parameter_count; i++)
    json_object_set_new(values, tuning_parameters[i].name,
                        json_integer(tuning_get(params, &tuning_parameters[i])));
  json_t *entry = json_object();
  json_object_set_new(entry, "platform", json_string(info->platform));
  json_object_set_new(entry, "device", json_string(info->name));
  json_object_set_new(entry, "driver", json_string(info->driver_version));
  json_object_set_new(entry, "parameters", values);
  return entry;
}

/* mkdir -p of the directory part of `path`. */
static clttt_status make_parent_directories(const char *path) {
  char directory[4096];
  if (snprintf(directory, sizeof directory, "%s", path) >= (int)sizeof directory)
    return clttt_fail(CLTTT_ERROR_IO, "tuning cache path is too long");
  char *slash = strrchr(directory, '/');
  if (!slash || slash == directory)
    return CLTTT_SUCCESS;
  *slash = '\0';
  for (char *at = directory + 1; *at; at++) {
    if (*at != '/')
      continue;
    *at = '\0';
    if (mkdir(directory, 0755) != 0 && errno != EEXIST)
      return clttt_fail(CLTTT_ERROR_IO, "creating directory %s: %s", directory, strerror(errno));
    *at = '/';
  }
  if (mkdir(directory, 0755) != 0 && errno != EEXIST)
    return clttt_fail(CLTTT_ERROR_IO, "creating directory %s: %s", directory, strerror(errno));
  return CLTTT_SUCCESS;
}

static clttt_status write_all(int descriptor, const char *text, size_t length, const char *path) {
  while (length > 0) {
    ssize_t written = write(descriptor, text, length);
    if (written < 0 && errno == EINTR)
      continue;
    if (written <= 0)
      return clttt_fail(CLTTT_ERROR_IO, "writing %s: %s", path, strerror(errno));
    text += written;
    length -= (size_t)written;
  }
  return CLTTT_SUCCESS;
}

/* Makes the rename itself durable: without it a crash can lose the new name. */
static void sync_directory_of(const char *path) {
  char directory[4096];
  snprintf(directory, sizeof directory, "%s", path);
  char *slash = strrchr(directory, '/');
  if (!slash)
    snprintf(directory, sizeof directory, ".");
  else if (slash == directory)
    directory[1] = '\0';
  else
    *slash = '\0';
  int descriptor = open(directory, O_RDONLY);
  if (descriptor >= 0) {
    fsync(descriptor);
    close(descriptor);
  }
}

clttt_status tuning_cache_store(const char *path, const clttt_device_info *info,
                                const tuning_params *params) {
  char why[256];
  if (!tuning_valid(info, params, why, sizeof why))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "not storing tuning for '%s': %s", info->name, why);
  json_t *old_root = NULL, *old_entries = NULL;
  int missing = 0;
  if (read_cache_file(path, &old_root, &old_entries, &missing) != CLTTT_SUCCESS) {
    log_warning("replacing unusable tuning cache: %s", clttt_last_error());
    clttt_clear_error();
  }
  json_t *entries = json_array();
  size_t index;
  json_t *entry;
  if (old_entries)
    json_array_foreach(old_entries, index, entry) {
      if (json_is_object(entry) && !entry_matches(entry, info))
        json_array_append(entries, entry);
    }
  json_array_append_new(entries, entry_for(info, params));
  json_t *root = json_object();
  json_object_set_new(root, "format", json_string(TUNING_FILE_FORMAT));
  json_object_set_new(root, "version", json_integer(TUNING_FILE_VERSION));
  json_object_set_new(root, "entries", entries);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  json_decref(old_root);
  if (!text)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "formatting the tuning cache");

  clttt_status status = make_parent_directories(path);
  char temporary[4200];
  int descriptor = -1;
  if (status == CLTTT_SUCCESS) {
    snprintf(temporary, sizeof temporary, "%s.tmp-XXXXXX", path);
    descriptor = mkstemp(temporary);
    if (descriptor < 0)
      status = clttt_fail(CLTTT_ERROR_IO, "creating a temporary file next to %s: %s", path,
                          strerror(errno));
  }
  if (status == CLTTT_SUCCESS) {
    status = write_all(descriptor, text, strlen(text), temporary);
    if (status == CLTTT_SUCCESS)
      status = write_all(descriptor, "\n", 1, temporary);
    if (status == CLTTT_SUCCESS && fchmod(descriptor, 0644) != 0)
      status = clttt_fail(CLTTT_ERROR_IO, "chmod %s: %s", temporary, strerror(errno));
    if (status == CLTTT_SUCCESS && fsync(descriptor) != 0)
      status = clttt_fail(CLTTT_ERROR_IO, "flushing %s: %s", temporary, strerror(errno));
    if (close(descriptor) != 0 && status == CLTTT_SUCCESS)
      status = clttt_fail(CLTTT_ERROR_IO, "closing %s: %s", temporary, strerror(errno));
    if (status == CLTTT_SUCCESS && rename(temporary, path) != 0)
      status = clttt_fail(CLTTT_ERROR_IO, "renaming %s to %s: %s", temporary, path, strerror(errno));
    if (status != CLTTT_SUCCESS)
      unlink(temporary);
    else
      sync_directory_of(path);
  }
  free(text);
  return status;
}

void tuning_load_for_device(const clttt_device_info *info, tuning_params *params, char *source,
                            size_t source_capacity) {
  tuning_defaults(info, params);
  snprintf(source, source_capacity, "built-in defaults");
  char path[4096];
  if (tuning_cache_path(path, sizeof path) != CLTTT_SUCCESS) {
    clttt_clear_error();
    return;
  }
  tuning_params tuned = *params;
  int found = 0;
  if (tuning_cache_lookup(path, info, &tuned, &found) != CLTTT_SUCCESS) {
    log_warning("ignoring tuning cache (%s); using built-in defaults", clttt_last_error());
    clttt_clear_error();
    return;
  }
  if (!found)
    return;
  *params = tuned;
  snprintf(source, source_capacity, "tuning cache %s", path);
}
