/* The search behind `clttt tune`: for each kernel family, every candidate
 * parameter set allowed on the device is built, run at model-sized shapes,
 * checked against a plain host computation, and the ones that agree are
 * timed (median of several runs); the fastest one wins. */
#ifndef CLTTT_AUTOTUNE_H
#define CLTTT_AUTOTUNE_H

#include "runtime.h"

typedef enum {
  AUTOTUNE_RMSNORM,
  AUTOTUNE_ATTENTION,
  AUTOTUNE_ATTENTION_TILES,  /* the register-tile prefill attention's tile */
  AUTOTUNE_ATTENTION_VALUES, /* its P V product's output vectors per pass */
  AUTOTUNE_ATTENTION_SHARE,  /* its register tiles per work-item, sharing each key block */
  AUTOTUNE_ATTENTION_PREFETCH, /* how far ahead its CPU products prefetch keys and values */
  AUTOTUNE_ATTENTION_CHOICE, /* long prefill batches: register tiles or GEMMs and a softmax */
  AUTOTUNE_ATTENTION_DECODE, /* decode attention's layout of the work and its ranges (ATTENTION_DECODE_ROWS, _KEYS) */
  AUTOTUNE_ATTENTION_SHORT,  /* short batches: the split kernels or the flash kernel (ATTENTION_SHORT_SPLIT) */
  AUTOTUNE_ROPE,
  AUTOTUNE_ROPE_LANES, /* q/k norm + RoPE: lanes along the head or over its slots (ROPE_HEAD_LANES) */
  AUTOTUNE_ELEMENTWISE,
  AUTOTUNE_CONV,
  AUTOTUNE_GEMV,
  AUTOTUNE_GEMM,        /* our packed GEMM's CPU panel and register tile */
  AUTOTUNE_GEMM_BLOCKS, /* its CPU row block and bf16/fp16 staging */
  AUTOTUNE_GEMM_GPU,    /* its GPU work-group tile */
  AUTOTUNE_GEMM_CHOICE, /* fp32 weight products: our packed GEMM or CLBlast */
  AUTOTUNE_GEMM_DECODE, /* its CPU one-row kernel (decode): panels per work-item */
  AUTOTUNE_GEMM_SLICES, /* its CPU slices of a long k (fp32) */
  AUTOTUNE_GEMM_PREFETCH, /* how far ahead its CPU register tiles prefetch their panels */
  AUTOTUNE_UPDATE,        /* our TTT update kernel's CPU column slice and register tile */
  AUTOTUNE_UPDATE_BLOCKS, /* its CPU row block and form (one pass or staged) */
  AUTOTUNE_UPDATE_GPU,    /* its GPU work-group tile */
  AUTOTUNE_UPDATE_CHOICE, /* the TTT update: our kernel or CLBlast */
  AUTOTUNE_FAMILY_COUNT
} autotune_family;

#define AUTOTUNE_ALL_FAMILIES ((1u << AUTOTUNE_FAMILY_COUNT) - 1u)

/* 0 for a GEMM or update family of the variant these parameters do not use (the
 * CPU variant's panel tiles on a GPU-variant device, and the reverse), and
 * for the CPU variant's row-major update tiles where a fast weight of
 * `hidden` rows goes into the GEMM's panels (its update then runs with the
 * GEMM's tiles): autotune_run skips it. */
int autotune_family_applies(autotune_family family, const tuning_params *params, int hidden);

/* Rows of gemm_decode's bf16 tuning weight, `columns` wide: minimum_rows, or
 * more until the weight is four times the device's last cache (`cache`
 * bytes, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE), so that it streams from memory
 * as a decode step's weights do; capped at 512 MiB, at a sixteenth of the
 * device's memory (a small GPU's) and at its largest buffer (0: unknown,
 * no cap). */
size_t autotune_decode_weight_rows(uint64_t cache, uint64_t global_memory, uint64_t max_allocation, size_t columns,
                                   size_t minimum_rows);

/* The sizes kernels are tuned at. */
typedef struct {
  int tokens;           /* prefill rows of rmsnorm, rope, swiglu, add */
  int attention_tokens; /* prefill length of attention (its cost grows as the square) */
  /* attention_share's and attention_prefetch's batch: the last
   * attention_tokens queries of a context this long, the keys before them
   * cached (at least attention_tokens). What sharing key blocks and a
   * prefetch gain shows only once a kv head's K and V outgrow the cache
   * next to the core, far into a long text. */
  int attention_context;
  int hidden;           /* d */
  int intermediate;     /* f */
  int heads, kv_heads, head_dim;
  int chunk;            /* rows of the TTT conv */
  /* gemm_slices' product, tokens x slices_n x slices_k: long k matters only
   * for the large models, so by default Qwen3-8B's down projection. */
  int slices_n, slices_k;
} autotune_shape;

typedef enum {
  AUTOTUNE_MEASURED,  /* agreed with the reference and was timed */
  AUTOTUNE_MISMATCH,  /* ran but disagreed with the reference: rejected */
  AUTOTUNE_FAILED     /* did not build or launch on this device: rejected */
} autotune_state;

typedef struct {
  autotune_family family;
  char label[96];        /* "RMSNORM_WGS=128" */
  tuning_params params;
  autotune_state state;
  double median_ms;      /* per run of the family's kernels */
  double error;          /* largest |got - expected| / max(1, |expected|) */
  int is_default;        /* the family's built-in default values */
  int is_winner;
  char failure[200];     /* why, when not measured */
} autotune_candidate;

typedef struct {
  autotune_shape shape;
  unsigned families;     /* bit (1u << family) per family to tune */
  int repetitions;       /* timed runs per candidate; the median counts */
  int quick;             /* fewer candidates per family */
  /* Called after each candidate (may be NULL): long searches show progress. */
  void (*progress)(const autotune_candidate *candidate, void *context);
  void *progress_context;
} autotune_options;

typedef struct {
  tuning_params start;   /* the set in use when tuning began */
  tuning_params best;    /* start with every tuned family's winner */
  autotune_candidate *candidates;
  int candidate_count;
  int candidate_capacity;
  /* Per family: time of the built-in defaults and of the winner (0 when not tuned). */
  double default_ms[AUTOTUNE_FAMILY_COUNT];
  double best_ms[AUTOTUNE_FAMILY_COUNT];
} autotune_result;

/* Qwen3-0.6B shapes (d 1024, f 3072, 16 query / 8 KV heads of 128, prefill
 * 2048, attention over 1024) or, when quick, shorter ones and fewer
 * candidates: a few minutes or well under two on two CPU cores. */
void autotune_options_init(autotune_options *options, int quick);

/* Tunes the families in options->families on `device`. The device's own
 * parameter set is left as it was; result->best holds the winners. Failing
 * candidates are recorded, not errors; an error is returned only when the
 * tuner itself cannot run (allocation, upload), or when even the defaults
 * of a family disagree with the reference (a kernel bug, not a tuning one). */
clttt_status autotune_run(clttt_device *device, const autotune_options *options,
                          autotune_result *result);
/* The candidates autotune_run would build for the families in
 * options->families on a device described by `info`, each family's with the
 * others at the built-in defaults, into result->candidates; nothing is built
 * or run, so no device is needed (bench/kernel_options.c compiles them for
 * GPUs this machine does not have). Skipped families list nothing. */
clttt_status autotune_list(const clttt_device_info *info, const autotune_options *options, autotune_result *result);
void autotune_result_free(autotune_result *result);

const char *autotune_family_name(autotune_family family);
/* "rmsnorm,attention" or "all" into a family mask; unknown names are an error. */
clttt_status autotune_parse_families(const char *list, unsigned *families);

#endif
