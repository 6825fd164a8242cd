/* Per-device performance parameters of our kernels, passed to the OpenCL
 * compiler as -D options; the host launches every kernel with the local sizes
 * of the same set. Each .cl file has a default for each of its parameters
 * (#ifndef RMSNORM_WGS / #define RMSNORM_WGS 64), so it also compiles alone.
 * The launch geometry that goes with each parameter lives in the op of its
 * kernel (ops.c).
 *
 * The set in use comes from the per-user tuning cache written by
 * `clttt tune` when it holds an entry for this exact (platform, device,
 * driver), else from the built-in per-vendor defaults. */
#ifndef CLTTT_TUNING_H
#define CLTTT_TUNING_H

#include <stddef.h>

#include "clttt.h"

/* The parameters of our packed GEMM kernels (src/packed_gemm.h), part of
 * each device's set. */
typedef enum { PACKED_GEMM_CPU = 0, PACKED_GEMM_GPU = 1 } packed_gemm_variant;

/* The tunables of cl/gemm.cl; names in comments are its -D options. */
typedef struct {
  packed_gemm_variant variant; /* GEMM_VARIANT */
  int nr;                      /* GEMM_NR: panel width (output features); GPU: work-group column tile */
  int mr;                      /* GEMM_MR: CPU rows per register tile */
  int row_block;               /* GEMM_ROW_BLOCK: CPU rows per work-item */
  int local_k;                 /* GEMM_LOCAL_K: CPU, bf16/fp16: k converted to fp32 in local memory per slice (0: none) */
  int gemv_panels;             /* GEMM_GEMV_PANELS: CPU, one row (decode): panels one work-item streams at once */
  int gemv_prefetch;           /* GEMM_GEMV_PREFETCH: CPU, one row: k ahead each panel is prefetched (0: none) */
  int k_slice;                 /* GEMM_K_SLICE: CPU, fp32: k per pass of a row block over its panel (0: all of k) */
  int prefetch;                /* GEMM_PREFETCH: CPU: k ahead a register tile prefetches its panel (0: none) */
  int tile_m;                  /* GEMM_TILE_M: GPU rows per work-group */
  int tile_k;                  /* GEMM_TILE_K: GPU k per local-memory step; also the packed k padding */
  int item_m, item_n;          /* GEMM_ITEM_M / GEMM_ITEM_N: GPU outputs per work-item */
} packed_gemm_params;

/* The tunables of cl/gemm_update.cl. */
typedef struct {
  packed_gemm_variant variant; /* UPDATE_VARIANT */
  int nr;                      /* UPDATE_NR: CPU columns of W per work-item (multiple of 16) */
  int mr;                      /* UPDATE_MR: CPU rows per register tile */
  int row_block;               /* UPDATE_ROW_BLOCK: CPU rows of W per work-item */
  int local_t;                 /* UPDATE_LOCAL_T: CPU t per slice staged in local memory (0: none) */
  int panels;                  /* UPDATE_PANELS: CPU column slices of nr per work-item (sharing V) */
  int packed;                  /* UPDATE_PACKED: CPU: V and h packed once per call, one pass over t (1), or
                                  staged per work-item in slices of local_t (0) */
  int tile_m, tile_n, tile_k;  /* UPDATE_TILE_M/N/K: GPU work-group tile of W, and t per step */
  int item_m, item_n;          /* UPDATE_ITEM_M / UPDATE_ITEM_N: GPU outputs per work-item */
} packed_gemm_update_params;

typedef struct {
  int rmsnorm_work_group_size;     /* RMSNORM_WGS: work-items reducing one row (power of two) */
  int attention_block_q;           /* ATTENTION_BLOCK_Q: queries (work-items) per work-group */
  int attention_block_k;           /* ATTENTION_BLOCK_K: keys staged in local memory per step */
  int attention_gemm_min_queries;  /* ATTENTION_GEMM_MIN_QUERIES: batches of at least this many
                                      queries take the GEMM + softmax path (0: never) */
  int attention_decode_rows;       /* ATTENTION_DECODE_ROWS: decode attention's work-item covers a key range
                                    * of every head, walking the cache row by row (1: CPUs), or of one
                                    * head (0), or a work-group covers a range of one head, its lanes
                                    * along the head (2: GPUs) */
  int attention_decode_keys;       /* ATTENTION_DECODE_KEYS: decode attention's keys per range, at least
                                    * (the keys split into up to 64 ranges of at least this many) */
  int attention_short_split;       /* ATTENTION_SHORT_SPLIT: batches of 2 .. 64 queries too short for the
                                    * long-batch path through decode's split kernels (1: GPUs) instead of
                                    * the flash kernel (0) */
  int attention_tiles;             /* ATTENTION_TILES: that path's batches through the register-tile kernel
                                    * (cl/attention_tiles.cl, 1: CPUs) instead of GEMMs and a softmax (0) */
  int attention_tile_rows;         /* ATTENTION_TILE_ROWS: its register tile's queries */
  int attention_tile_keys;         /* ATTENTION_TILE_KEYS: its keys per block (a multiple of 16) */
  int attention_tile_share;        /* ATTENTION_TILE_SHARE: its register tiles per work-item, sharing each
                                    * key block */
  int attention_tile_prefetch;     /* ATTENTION_TILE_PREFETCH: CPU: rows ahead its products prefetch their
                                    * keys and values (0: none) */
  int attention_tile_values;       /* ATTENTION_TILE_VALUES: float16 vectors of output per query that its
                                    * P V product accumulates per pass over a key block (1-8, cut to
                                    * the largest power of two that divides head_dim / 16) */
  int softmax_work_group_size;     /* SOFTMAX_WGS: work-items per score row of that path (power of two) */
  int rope_work_group_size;        /* ROPE_WGS: most work-items per token (a work-group each) */
  int rope_head_lanes;             /* ROPE_HEAD_LANES: q/k norm + RoPE as a group of head_dim / 2 lanes per
                                    * head slot and token (1: GPUs) instead of ROPE_WGS items over a token's
                                    * slots (0) */
  int elementwise_work_group_size; /* ELEMENTWISE_WGS: swiglu, residual add, bias, gather, conv */
  int vector_width;                /* VECTOR_WIDTH: floats per work-item in swiglu and add (1,2,4,8,16) */
  int conv_rows;                   /* TTT_CONV_ROWS: chunk rows per work-item of the TTT conv */
  int conv_channels;               /* TTT_CONV_CHANNELS: its channels per work-item (16: one float16) */
  int gemv_row_per_item;           /* GEMV_ROW_PER_ITEM: decode GEMV access pattern (1 CPUs, 0 GPUs) */
  int gemv_work_group_size;        /* GEMV_WGS: work-items per row (pattern 0) or rows per group (1) */
  int gemm_packed;                 /* GEMM_PACKED: weight products through our packed GEMM (1) or CLBlast (0) */
  int update_own;                  /* UPDATE_OWN: the TTT update through our kernel (1) or CLBlast (0) */
  int has_fp16;                    /* HAS_FP16: a device property, never tuned */
  packed_gemm_params gemm;         /* the packed GEMM's tiles (GEMM_* of cl/gemm.cl) */
  packed_gemm_update_params update;/* the update kernel's (UPDATE_* of cl/gemm_update.cl) */
} tuning_params;

/* One tunable: its -D name, where it lives in tuning_params, and its bounds.
 * The cache file, validation and the tuner's table all walk this list. */
typedef struct {
  const char *name;        /* "RMSNORM_WGS" */
  size_t offset;           /* offsetof(tuning_params, ...) */
  int minimum, maximum;    /* a maximum of 0: the device's largest work-group */
  int power_of_two;        /* the kernel needs a power of two (tree reductions) */
  int is_work_group_size;  /* bounded by the device's largest work-group */
} tuning_parameter;

extern const tuning_parameter tuning_parameters[];
extern const int tuning_parameter_count;

int tuning_get(const tuning_params *params, const tuning_parameter *parameter);
void tuning_set(tuning_params *params, const tuning_parameter *parameter, int value);
int tuning_equal(const tuning_params *a, const tuning_params *b);

/* Built-in defaults by device type and vendor (NVIDIA, AMD, Intel GPU, CPU). */
void tuning_defaults(const clttt_device_info *info, tuning_params *params);
/* "-DRMSNORM_WGS=64 -DATTENTION_BLOCK_Q=16 ..." into buffer. */
void tuning_defines(const tuning_params *params, char *buffer, size_t capacity);
/* 1 when every value is allowed on this device; otherwise 0 and a reason
 * ("RMSNORM_WGS=96 is not a power of two") in `why`. */
int tuning_valid(const clttt_device_info *info, const tuning_params *params, char *why,
                 size_t capacity);

/* ---- The per-user cache file ---------------------------------------- */

#define TUNING_FILE_FORMAT "clttt-tuning"
#define TUNING_FILE_VERSION 1

/* $CLTTT_TUNING_FILE, else $XDG_CACHE_HOME/clttt/tuning.json, else
 * $HOME/.cache/clttt/tuning.json. CLTTT_ERROR_IO when none can be formed. */
clttt_status tuning_cache_path(char *path, size_t capacity);
/* Looks up the entry of (platform, device, driver) in the file at `path`.
 * A missing file or no matching entry: CLTTT_SUCCESS with *found = 0.
 * Unreadable JSON, a wrong format or version, or a matching entry with a
 * value this device cannot run: CLTTT_ERROR_BAD_TUNING_FILE and a message.
 * Parameters the entry leaves out keep the values already in *params. */
clttt_status tuning_cache_lookup(const char *path, const clttt_device_info *info,
                                 tuning_params *params, int *found);
/* Puts this device's entry into the file at `path` (replacing an older one,
 * keeping other devices' entries), creating its directory when needed. The
 * file is replaced atomically: written to a temporary file in the same
 * directory, flushed to disk, then renamed over the old one, so a reader
 * never sees half a file. A corrupt existing file is replaced. */
clttt_status tuning_cache_store(const char *path, const clttt_device_info *info,
                                const tuning_params *params);

/* What device open does: the built-in defaults, overridden by the cache's
 * entry for this device when there is a valid one. Never fails: a bad cache
 * costs a one-line warning through the log callback. `source` receives where the set came
 * from ("built-in defaults" or "tuning cache /path"). */
void tuning_load_for_device(const clttt_device_info *info, tuning_params *params, char *source,
                            size_t source_capacity);

#endif
