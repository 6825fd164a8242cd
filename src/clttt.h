/* clttt: In-Place Test-Time Training on any OpenCL device.
 *
 * The one public header. Every function that can fail returns a
 * clttt_status; on failure clttt_last_error() holds a message naming the
 * file, tensor, device or OpenCL error involved. The library never exits or
 * aborts, and it prints nothing itself: warnings go to the log callback.
 *
 * Threads. Objects are independent unless stated: two threads may feed two
 * different sessions at the same time, also sessions of one model on one
 * device (each session has its own kernel objects; the device's program
 * cache and memory accounting are locked). What is not allowed: two threads
 * using one session at once, or freeing a model, device or tokenizer while
 * another thread still uses it or a session of it. A tokenizer is read-only
 * after loading and may serve several threads; a sampler and a tokenizer
 * stream belong to one thread at a time. Error messages are per thread. */
#ifndef CLTTT_H
#define CLTTT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: only what carries CLTTT_API
 * is exported. */
#if defined(__GNUC__) || defined(__clang__)
#define CLTTT_API __attribute__((visibility("default")))
#else
#define CLTTT_API
#endif

#define CLTTT_VERSION_MAJOR 0
#define CLTTT_VERSION_MINOR 2
#define CLTTT_VERSION_PATCH 0
#define CLTTT_VERSION_STRING "0.2.0"

/* The version of the library actually loaded ("0.2.0"), which may differ
 * from the header's CLTTT_VERSION_STRING when linked dynamically. */
CLTTT_API const char *clttt_version(void);

/* Status codes. Negative values up to -1000 are OpenCL's own error codes
 * (CL_OUT_OF_RESOURCES = -5 ...), passed through unchanged; clttt's own
 * errors live in a separate range starting at -2000. */
typedef enum {
  CLTTT_SUCCESS = 0,
  CLTTT_ERROR_INVALID_ARGUMENT = -2000,
  CLTTT_ERROR_OUT_OF_HOST_MEMORY = -2001,
  CLTTT_ERROR_IO = -2002,                 /* file missing, unreadable, mmap failed */
  CLTTT_ERROR_NO_DEVICE = -2003,          /* no OpenCL device, or none matches a selector */
  CLTTT_ERROR_KERNEL_BUILD = -2004,       /* message carries the device's build log */
  CLTTT_ERROR_BAD_CHECKPOINT = -2005,     /* malformed safetensors file or tensor */
  CLTTT_ERROR_BAD_CONFIG = -2006,         /* malformed or inconsistent config.json */
  CLTTT_ERROR_UNSUPPORTED = -2007,        /* unknown architecture, dtype, tokenizer type... */
  CLTTT_ERROR_MISSING_TENSOR = -2008,
  CLTTT_ERROR_SHAPE_MISMATCH = -2009,
  CLTTT_ERROR_CONTEXT_FULL = -2010,       /* more tokens than the session's context */
  CLTTT_ERROR_CLBLAST = -2011,            /* CLBlast returned one of its own codes */
  CLTTT_ERROR_BAD_TOKENIZER = -2012,
  CLTTT_ERROR_BAD_TUNING_FILE = -2013,
  CLTTT_ERROR_NOT_FINITE = -2014,         /* NaN or inf in logits, activations or weights */
  CLTTT_ERROR_BAD_SESSION_FILE = -2015    /* truncated, corrupt, or saved from another model */
} clttt_status;

/* Name of a status: "CL_OUT_OF_RESOURCES", "CLTTT_ERROR_BAD_CHECKPOINT"... */
CLTTT_API const char *clttt_status_name(int status);
/* Message of the last failure in this thread ("" when none). */
CLTTT_API const char *clttt_last_error(void);

/* ------------------------------------------------------------------ */
/* Log                                                                  */

typedef enum { CLTTT_LOG_WARNING = 0, CLTTT_LOG_INFO = 1 } clttt_log_level;

/* Receives each message the library has for a person (a tuning cache it
 * ignored, a checkpoint key it skipped), one line without "\n". May be
 * called from any thread that calls into the library. */
typedef void (*clttt_log_callback)(clttt_log_level level, const char *message, void *user_data);

/* Installs `callback` for the whole process; NULL restores the default,
 * which writes "clttt: warning: <message>" lines to stderr and drops INFO. */
CLTTT_API void clttt_set_log_callback(clttt_log_callback callback, void *user_data);

/* ------------------------------------------------------------------ */
/* Devices                                                              */

typedef struct {
  int index;                 /* position in the flat list over all platforms */
  char platform[128];
  char name[128];
  char vendor[128];
  char driver_version[128];
  char device_version[128];
  char type[16];             /* "GPU", "CPU", "ACCELERATOR", "OTHER" */
  unsigned compute_units;
  unsigned clock_mhz;
  uint64_t global_memory;
  uint64_t local_memory;
  uint64_t max_allocation;
  size_t max_work_group_size;
  int has_fp16;
  int has_fp64;
} clttt_device_info;

/* Fills up to `capacity` entries of `infos`; `*count` receives how many
 * devices exist (may exceed capacity). Zero devices is not an error here. */
CLTTT_API clttt_status clttt_list_devices(clttt_device_info *infos, int capacity, int *count);

/* A device opened for computation: its context, queue, built programs and
 * kernel parameters. */
typedef struct clttt_device clttt_device;

/* selector: NULL or "" = the CLTTT_DEVICE environment variable, else the
 * first GPU, else device 0; a decimal number = that index; anything else =
 * first device whose name, vendor or platform contains it (case-insensitive). */
CLTTT_API clttt_status clttt_device_open(clttt_device **device, const char *selector);
CLTTT_API void clttt_device_close(clttt_device *device);
CLTTT_API const clttt_device_info *clttt_device_get_info(const clttt_device *device);
/* Device memory held by clttt's buffers on this device now, and the most
 * held at once (since open or the last reset_peak). */
CLTTT_API clttt_status clttt_device_memory(const clttt_device *device, uint64_t *current, uint64_t *peak,
                                           int reset_peak);
/* Per-op timing, to find what a prefill or decode spends its time on: while
 * on, every kernel launch, GEMM and blocking transfer on the device waits
 * for the device and charges the wall time since the previous one to its
 * name (kernel name, or the product: "q, k, v projections (packed GEMM,
 * bf16)"); the time between two feeds is nobody's. Runs slower than
 * without (no overlap); for one thread at a time.
 * Turning it on starts an empty table. */
CLTTT_API clttt_status clttt_device_set_profiling(clttt_device *device, int enable);
/* The table so far, most expensive first (op, calls, ms, share), into text;
 * `reset` empties it and restarts the clock. CLTTT_ERROR_INVALID_ARGUMENT
 * when profiling is off. */
CLTTT_API clttt_status clttt_device_profile_report(clttt_device *device, char *text, size_t capacity, int reset);

/* The kernel parameters the device was opened with: how many there are, the
 * name and value of each ("RMSNORM_WGS", 64), where the set came from
 * ("built-in defaults" or "tuning cache /path"), and whether clttt installed
 * its measured CLBlast GEMM parameters for this device. */
CLTTT_API int clttt_device_parameter_count(void);
CLTTT_API const char *clttt_device_parameter_name(int index);
CLTTT_API int clttt_device_parameter_value(const clttt_device *device, int index);
CLTTT_API const char *clttt_device_parameter_source(const clttt_device *device);
CLTTT_API int clttt_device_clblast_tuned(const clttt_device *device);

/* ------------------------------------------------------------------ */
/* Tuning (clttt tune)                                                  */

typedef enum { CLTTT_TUNE_MEASURED = 0, CLTTT_TUNE_MISMATCH = 1, CLTTT_TUNE_FAILED = 2 } clttt_tune_state;

/* One candidate parameter set of one kernel family, as it was tried. */
typedef struct {
  const char *family;   /* "rmsnorm" */
  const char *label;    /* "RMSNORM_WGS=128" */
  clttt_tune_state state;
  double median_ms;     /* per run of the family's kernels, when measured */
  double error;         /* largest relative deviation from the host reference */
  int is_default;       /* the family's built-in defaults */
  int is_winner;
  const char *failure;  /* why, when not measured ("" otherwise) */
} clttt_tune_candidate;

typedef struct {
  const char *families; /* "rmsnorm,attention", or NULL / "all" */
  int quick;            /* shorter shapes, fewer candidates */
  /* Called after each candidate (may be NULL): long searches show progress. */
  void (*progress)(const clttt_tune_candidate *candidate, void *user_data);
  void *user_data;
} clttt_tune_params;

typedef struct clttt_tune_result clttt_tune_result;

CLTTT_API clttt_tune_params clttt_tune_default_params(void);
/* "d 1024, f 3072, ..." : the shapes and repetitions `params` tunes at.
 * An unknown family name: CLTTT_ERROR_INVALID_ARGUMENT naming it. */
CLTTT_API clttt_status clttt_tune_describe(const clttt_tune_params *params, char *text, size_t capacity);
/* Tries every candidate of the chosen families on `device`, each checked
 * against a host computation before it is timed. The device keeps the
 * parameters it was opened with. */
CLTTT_API clttt_status clttt_tune(clttt_tune_result **result, clttt_device *device,
                                  const clttt_tune_params *params);
CLTTT_API int clttt_tune_candidate_count(const clttt_tune_result *result);
CLTTT_API const clttt_tune_candidate *clttt_tune_get_candidate(const clttt_tune_result *result, int index);
/* Milliseconds of a family's defaults and of its winner (0 when not tuned). */
CLTTT_API double clttt_tune_default_ms(const clttt_tune_result *result, const char *family);
CLTTT_API double clttt_tune_best_ms(const clttt_tune_result *result, const char *family);
/* The winning set as -D options ("-DRMSNORM_WGS=64 ..."). */
CLTTT_API void clttt_tune_describe_best(const clttt_tune_result *result, char *text, size_t capacity);
/* Stores the winners as this device's entry of the tuning cache at `path`
 * (NULL: the per-user cache); `written` receives the path used. */
CLTTT_API clttt_status clttt_tune_store(const clttt_tune_result *result, const char *path, char *written,
                                        size_t capacity);
CLTTT_API void clttt_tune_result_free(clttt_tune_result *result);

/* ------------------------------------------------------------------ */
/* Models                                                               */

typedef enum { CLTTT_ARCH_LLAMA = 0, CLTTT_ARCH_QWEN3 = 1 } clttt_arch;
typedef enum { CLTTT_ROPE_DEFAULT = 0, CLTTT_ROPE_LLAMA3 = 1, CLTTT_ROPE_YARN = 2 } clttt_rope_type;
typedef enum { CLTTT_TARGET_HIDDEN_STATES = 0, CLTTT_TARGET_INPUT_EMBED = 1 } clttt_ttt_target;

typedef struct {
  clttt_arch arch;
  int hidden_size;            /* d */
  int intermediate_size;      /* f */
  int num_hidden_layers;
  int num_attention_heads;
  int num_key_value_heads;
  int head_dim;
  int vocab_size;
  int max_position_embeddings;
  float rms_norm_eps;
  float rope_theta;
  int tie_word_embeddings;
  int attention_bias;
  int mlp_bias;
  int bos_token_id;           /* -1 when absent */
  int eos_token_id;           /* -1 when absent */
  /* rope_scaling */
  clttt_rope_type rope_type;
  float rope_factor;
  float rope_low_freq_factor;               /* llama3 */
  float rope_high_freq_factor;              /* llama3 */
  int rope_original_max_position_embeddings;/* llama3, yarn */
  float rope_beta_fast;                     /* yarn */
  float rope_beta_slow;                     /* yarn */
  float rope_attention_factor;              /* yarn; 0 = derived from factor */
  int rope_truncate;                        /* yarn; transformers' default true */
  /* In-Place TTT (SPEC.md section 2) */
  int ttt_mode;
  /* The TTT layers, ascending, distinct, each in 0..num_hidden_layers-1;
   * empty when ttt_mode is false. A config filled by clttt_config_load or
   * clttt_synthetic_config owns this list (clttt_config_free releases it);
   * one built by hand points at the caller's own array. */
  int ttt_layer_count;
  int *ttt_layers;
  int ttt_chunk;                            /* C */
  float ttt_lr;                             /* eta */
  int ttt_proj;
  clttt_ttt_target ttt_target;
  /* Clipping of each chunk's update (paper, Appendix C.2; not in the
   * released code): eta V^T h is scaled so its Frobenius norm is at most
   * tau. 0 = off. */
  float ttt_clip_tau;
} clttt_config;

/* Reads only dir/config.json (no weights): for inspecting a model. */
CLTTT_API clttt_status clttt_config_load(clttt_config *config, const char *dir);
/* Releases the TTT layer list of a config filled by the library. */
CLTTT_API void clttt_config_free(clttt_config *config);
/* 1 when `layer` is one of the config's TTT layers. */
CLTTT_API int clttt_config_is_ttt_layer(const clttt_config *config, int layer);

typedef struct clttt_model clttt_model;

/* The element type of a model's matrices on the device. Norm weights,
 * biases, the TTT conv and projection stay fp32 whatever the choice, and a
 * TTT layer's fast weight is always fp32 (it accumulates updates). Every
 * kernel reading a half-precision weight widens it to fp32 and computes in
 * fp32 (bit shifts for bf16, vload_half for fp16: no `half` arithmetic, so
 * devices without cl_khr_fp16, NVIDIA's included, run them too). */
typedef enum {
  CLTTT_WEIGHTS_AUTO = 0, /* as the checkpoint stores them (fp32 for synthetic models) */
  CLTTT_WEIGHTS_F32 = 1,
  CLTTT_WEIGHTS_F16 = 2,
  CLTTT_WEIGHTS_BF16 = 3
} clttt_weight_type;

/* "auto", "f32", "f16", "bf16". */
CLTTT_API const char *clttt_weight_type_name(clttt_weight_type type);
/* Parses one of those names; CLTTT_ERROR_INVALID_ARGUMENT otherwise. */
CLTTT_API clttt_status clttt_weight_type_parse(const char *name, clttt_weight_type *type);

/* What the KV cache holds. f16 halves its memory and what decode reads;
 * the logits move by the rounding of K and V (README, "Memory"). */
typedef enum { CLTTT_KV_F32 = 0, CLTTT_KV_F16 = 1 } clttt_kv_type;

/* How a model is loaded. */
typedef struct {
  /* 1: refuse a checkpoint holding a NaN or infinite weight, naming the
   * tensor and the element (every weight is scanned once more on the host). */
  int check_weights;
  /* Layer split (a pipeline over several devices): device_count > 0 places
   * the model on devices[0 .. device_count - 1] in this order (one device
   * may appear more than once), each holding a consecutive range of layers
   * with its own kernels and tuned parameters; the `device` argument of
   * clttt_model_load / clttt_model_synthetic is then ignored (may be NULL).
   * The embedding lives on the first device, the final norm and the LM head
   * on the last (a tied head is a second copy of the embedding there when
   * the two differ). Between devices the residual stream (batch x d floats,
   * and the input embeddings for a TTT target of input_embed) passes through
   * host memory. 0: everything on `device`. */
  clttt_device *const *devices;
  int device_count;
  /* Layers per device: device_count entries, each >= 1, summing to
   * num_hidden_layers. NULL: automatic, in proportion to each device's free
   * memory after its fixed share (clttt_plan_split). */
  const int *split;
  /* Tokens of context of the session the split plans memory for (a default
   * session of that context: f16 KV cache, TTT on); 0: weights only. The
   * session's own fit is checked again at clttt_session_create. */
  int split_context;
  /* That session's KV cache type (clttt_model_default_params: f16). */
  clttt_kv_type split_kv_type;
  /* A slice of the model, one stage of a pipeline whose other stages run
   * elsewhere (other processes, e.g. 'mpirun clttt'): only layers
   * first_layer .. first_layer + layer_count - 1 are loaded, on one device,
   * with the embedding when the slice starts at layer 0 and the final norm
   * and LM head when it ends at the last layer. Its sessions are fed with
   * clttt_session_feed_slice. layer_count 0: the whole model. */
  int first_layer, layer_count;
  /* Element type of the matrices on the device. Converting to a narrower
   * type than the checkpoint's (fp32 to bf16, bf16 to fp16...) logs a
   * warning: the logits will differ from the checkpoint's own. */
  clttt_weight_type weights;
} clttt_model_params;

/* Nothing checked beyond the format, one device. */
CLTTT_API clttt_model_params clttt_model_default_params(void);

/* One device's share of a split model. */
typedef struct {
  clttt_device *device;
  int first_layer, layer_count;
  int has_embedding;          /* the token embedding lives here (the first part) */
  int has_head;               /* the final norm and LM head live here (the last part) */
  uint64_t weight_bytes;      /* the cost model's weights of this part, laid out for its device */
  uint64_t session_bytes;     /* the cost model's session of split_context tokens here; 0 without one */
  uint64_t free_bytes;        /* the device's memory not held by clttt's buffers when planned */
} clttt_split_part;

/* The placement clttt_model_load makes with these devices, split and
 * split_context (see clttt_model_params) for matrices of `weights` (AUTO
 * counts as fp32), without loading anything: parts receives device_count
 * entries. A split that does not cover the layers
 * gives CLTTT_ERROR_INVALID_ARGUMENT, a device that cannot hold its share
 * CL_MEM_OBJECT_ALLOCATION_FAILURE naming the device, what it needs and
 * what it has. Automatic: the layers go in order, each device's share of
 * the layers' cost (weights, KV cache, TTT state) in proportion to its free
 * memory after its fixed share (activations; embedding on the first, LM
 * head on the last), every device at least one layer. */
CLTTT_API clttt_status clttt_plan_split(const clttt_config *config, clttt_weight_type weights,
                                        clttt_device *const *devices, int device_count, const int *split,
                                        int split_context, clttt_split_part *parts);
/* The same with the session's KV cache type (clttt_plan_split: f16). */
CLTTT_API clttt_status clttt_plan_split_kv(const clttt_config *config, clttt_weight_type weights,
                                           clttt_device *const *devices, int device_count, const int *split,
                                           int split_context, clttt_kv_type kv_type, clttt_split_part *parts);

/* How a loaded model is placed: the number of parts (1 on one device) and
 * part `index` as clttt_plan_split described it. */
CLTTT_API int clttt_model_part_count(const clttt_model *model);
CLTTT_API clttt_status clttt_model_get_part(const clttt_model *model, int index, clttt_split_part *part);

/* Loads a HuggingFace model directory (config.json + safetensors, single or
 * sharded) onto `device`, or split over params->devices. The model keeps a
 * reference to the devices. params NULL means the defaults. */
CLTTT_API clttt_status clttt_model_load(clttt_model **model, clttt_device *device, const char *dir,
                                        const clttt_model_params *params);
CLTTT_API void clttt_model_free(clttt_model *model);
CLTTT_API const clttt_config *clttt_model_get_config(const clttt_model *model);
/* Bytes the model's weights occupy on the device. */
CLTTT_API uint64_t clttt_model_weight_bytes(const clttt_model *model);
/* The element type its matrices have on the device (never AUTO). */
CLTTT_API clttt_weight_type clttt_model_weight_type(const clttt_model *model);
/* What CLTTT_WEIGHTS_AUTO means for the checkpoint in `dir`: the type of
 * model.embed_tokens.weight (reads only the safetensors headers). */
CLTTT_API clttt_status clttt_checkpoint_weight_type(const char *dir, clttt_weight_type *type);

/* A model with seeded random weights built in memory (no files): for the
 * demo and the benchmarks. Its text is meaningless; its speed and memory are
 * those of a real model of the same shape. `config` must be complete (see
 * clttt_synthetic_config). */
CLTTT_API clttt_status clttt_model_synthetic(clttt_model **model, clttt_device *device,
                                             const clttt_config *config, const clttt_model_params *params,
                                             uint64_t seed);
/* A Qwen3-style configuration of the given sizes, with TTT layers every
 * `ttt_every` layers starting at 0 (0 = none), chunk C and eta. Free it with
 * clttt_config_free. */
CLTTT_API clttt_status clttt_synthetic_config(clttt_config *config, int hidden_size, int intermediate_size,
                                              int layers, int heads, int kv_heads, int head_dim,
                                              int vocab_size, int max_positions, int ttt_every, int chunk,
                                              float eta);

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

/* Which rows of logits a session can return: its logits buffer is sized
 * for this, so LAST saves batch x vocab floats of device memory. */
typedef enum {
  CLTTT_LOGITS_ALL = 0,  /* a row per fed token (perplexity, scoring) */
  CLTTT_LOGITS_LAST = 1  /* only the row of the last fed token (generation) */
} clttt_logits_mode;

/* Everything a session is sized and run with, fixed at creation. */
typedef struct {
  int context;               /* tokens the session can hold; 0 = max_position_embeddings */
  int ttt;                   /* 1: TTT layers learn (checkpoints with ttt_mode); 0: the base model */
  int chunk;                 /* C; 0 = the checkpoint's ttt_chunk */
  float eta;                 /* step size; 0 = the checkpoint's ttt_lr; must be finite */
  /* Update clipping: > 0 clips each chunk's update to Frobenius norm tau;
   * 0 = the checkpoint's ttt_clip_tau (itself 0 = off); < 0 = off. */
  float ttt_clip_tau;
  clttt_logits_mode logits;
  clttt_kv_type kv_type;
  /* 1: check every layer's output and fail at the first layer (and
   * position) that is not finite; costs a device round trip per layer.
   * The logits themselves are always checked. */
  int check_finite;
} clttt_session_params;

/* context 0, TTT on, the checkpoint's chunk, eta and clipping, all logits,
 * an f16 KV cache. */
CLTTT_API clttt_session_params clttt_session_default_params(void);

/* A session: KV cache, position and TTT state of one sequence. Sessions on
 * one model are independent. params NULL means the defaults. Invalid
 * parameters (negative sizes, non-finite eta) fail before anything is
 * allocated. */
typedef struct clttt_session clttt_session;
CLTTT_API clttt_status clttt_session_create(clttt_session **session, clttt_model *model,
                                            const clttt_session_params *params);
CLTTT_API void clttt_session_free(clttt_session *session);
/* The parameters in force, with every 0 ("the checkpoint's") resolved. */
CLTTT_API clttt_session_params clttt_session_get_params(const clttt_session *session);

/* Feeds n tokens. When `logits` is not NULL it receives n x vocab_size floats
 * (row i = the logits after token i) or, with logits_last_only, only the
 * last row (vocab_size floats). A session created with CLTTT_LOGITS_LAST
 * returns only last rows. Logits that are not finite (NaN, inf) give
 * CLTTT_ERROR_NOT_FINITE naming the first such position; the tokens have
 * then been consumed (the position advanced) and the logits written. After
 * any other failure (check_finite's included) part of the batch may have
 * gone through some layers: reset the session before feeding it again. */
CLTTT_API clttt_status clttt_session_feed(clttt_session *session, const int32_t *tokens, int n, float *logits,
                                          int logits_last_only);
CLTTT_API int clttt_session_position(const clttt_session *session);
/* 1 when the session's TTT layers learn (TTT on and the model has some). */
CLTTT_API int clttt_session_ttt_enabled(const clttt_session *session);

/* Forgets everything: KV cache, position, and resets fast weights to the
 * checkpoint's W_down. */
CLTTT_API clttt_status clttt_session_reset(clttt_session *session);
/* Resets only the fast weights and pending chunk rows (a document boundary),
 * keeping the KV cache. */
CLTTT_API clttt_status clttt_session_reset_fast_weights(clttt_session *session);

/* The tokens fed since creation or the last clttt_session_reset, oldest
 * first: *count (may be NULL) receives how many, which is the position.
 * Valid until the next feed, reset or free; NULL when there are none. */
CLTTT_API const int32_t *clttt_session_tokens(const clttt_session *session, int *count);

/* Floats per token a pipeline passes into layer `layer` (0 < layer <
 * num_hidden_layers) of this session's model: the residual stream (d),
 * followed by the input embeddings (d more) when the session learns and a
 * TTT layer from `layer` on takes them as its target (ttt_target
 * input_embed). 0 for a layer out of range. */
CLTTT_API int clttt_session_activation_width(const clttt_session *session, int layer);

/* Feeds n tokens to a session of a model slice (clttt_model_params
 * first_layer / layer_count; also any other model, as the whole slice).
 * `tokens` are always given (the history, and the embedding in the first
 * slice). A slice that does not start at layer 0 reads `activations_in`
 * (n rows of clttt_session_activation_width(first_layer) floats: what the
 * previous slice wrote); one that does not end at the last layer writes
 * `activations_out` (n rows of activation_width(first_layer +
 * layer_count)) and no logits; the last slice writes `logits` as
 * clttt_session_feed does. Every slice of a pipeline is fed the same
 * tokens in the same pieces, each with the previous slice's output. */
CLTTT_API clttt_status clttt_session_feed_slice(clttt_session *session, const int32_t *tokens, int n,
                                                const float *activations_in, float *activations_out, float *logits,
                                                int logits_last_only);

/* Bytes of activations the session has moved between the devices of a
 * split model through host memory since creation (0 on one device): per
 * fed token and device boundary, d floats of the residual stream, plus d
 * of the input embeddings when TTT layers beyond the first device learn
 * from them (ttt_target input_embed). */
CLTTT_API uint64_t clttt_session_bytes_moved(const clttt_session *session);

/* ---- Session files (README.md, "Session files") ----------------------
 * A session's whole state: parameters, tokens, the filled part of the KV
 * cache, and each TTT layer's fast weight and pending chunk rows, with a
 * fingerprint of the model (its configuration and a hash of its weights).
 *
 * Saving is atomic: the file is written beside `path` under a temporary
 * name, synced, and renamed over `path`, so a crash at any moment leaves
 * either the old file or the new one, whole. A crash can leave the
 * temporary file ("<path>.tmp-XXXXXX") behind. The first save or load on a
 * model hashes its weights once (a download of every weight). */
CLTTT_API clttt_status clttt_session_save(const clttt_session *session, const char *path);
/* A new session of `model` in the saved state: feeding it continues exactly
 * where the saved session stopped. The file must come from the same model
 * (same configuration and weights); otherwise, or when it is truncated or
 * corrupt, CLTTT_ERROR_BAD_SESSION_FILE naming what differs, and *session
 * is NULL: nothing is allocated.
 * context: 0 = the saved session's; else the new session's, at least the
 * saved position (so a session saved full can grow). The state is the same
 * either way; the logits equal the original's bit for bit as long as each
 * feed is cut into the same batches (a batch holds min(512, context)
 * tokens, or C when 512 < C <= 2048), else up to the order of sums. */
CLTTT_API clttt_status clttt_session_load(clttt_session **session, clttt_model *model, const char *path,
                                          int context);
/* A new, independent session of the same model in the same state as
 * `source` (device copies, no file). `source` must not be fed meanwhile. */
CLTTT_API clttt_status clttt_session_fork(clttt_session **session, const clttt_session *source);

#define CLTTT_SESSION_INFO_TTT_LAYERS 256

/* What a session file holds, read without a model ('clttt session info'). */
typedef struct {
  int version;                 /* of the format */
  uint64_t file_bytes;
  int section_count;
  uint64_t state_bytes;        /* bytes of tokens, KV cache and TTT state */
  int position;                /* tokens so far */
  int pending;                 /* rows of the unfinished TTT chunk */
  int ttt_state;               /* 1: fast weights saved (TTT on, model with TTT layers) */
  clttt_session_params params; /* resolved */
  int kv_dtype;                /* 0: float32 */
  /* The model it was saved from. */
  clttt_arch arch;
  int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim;
  int vocab_size, max_position_embeddings;
  int ttt_mode, ttt_chunk, ttt_proj;
  float ttt_lr;
  clttt_ttt_target ttt_target;
  int ttt_layer_count;
  int ttt_layers[CLTTT_SESSION_INFO_TTT_LAYERS]; /* the first ones when there are more */
  uint64_t weight_bytes;
  uint64_t weights_hash;       /* XXH3-64 of the weights as on the device (version 1: crc32 << 32 | adler32) */
} clttt_session_file_info;

/* Reads and checks a whole session file (every checksum) without a model:
 * CLTTT_ERROR_IO when it cannot be read, CLTTT_ERROR_BAD_SESSION_FILE when
 * it is malformed. */
CLTTT_API clttt_status clttt_session_read_info(const char *path, clttt_session_file_info *info);

/* Device memory, in bytes, of the weights with matrices of `type` (AUTO
 * counts as fp32) and of one session with `params` (KV cache, activations
 * of one batch and, with TTT on, one fast weight plus one chunk of pending
 * rows per TTT layer): the cost model that 'clttt info' prints. With a
 * device, the weights' figure includes the padding of that device's GEMM
 * panels and equals what clttt_model_load allocates there; NULL gives the
 * unpadded size. The session figure equals what clttt_session_create
 * allocates. params NULL means the defaults. */
CLTTT_API uint64_t clttt_estimate_weight_bytes(const clttt_config *config, clttt_weight_type type,
                                               const clttt_device *device);
CLTTT_API uint64_t clttt_estimate_session_bytes(const clttt_config *config, const clttt_session_params *params);

/* ------------------------------------------------------------------ */
/* Tokenizer                                                            */

/* Text <-> token ids, from what the model directory holds:
 *  - tokenizer.json (HuggingFace): byte-level BPE as Qwen2/Qwen3 and LLaMA-3
 *    use it. Added tokens (<|im_start|>, <|begin_of_text|>...) are matched in
 *    the raw text first and never split; the rest is split by the
 *    pre-tokenizer's regex (PCRE2, Unicode properties) and each piece is
 *    merged by rank.
 *  - tok*.bin (llama2.c): SentencePiece-like pieces with scores and
 *    <0xNN> byte fallback, encoded exactly as llama2.c's encode does. */
typedef struct clttt_tokenizer clttt_tokenizer;

/* Loads model_dir/tokenizer.json when present, else the first (by name)
 * model_dir/tok*.bin. Neither: CLTTT_ERROR_IO naming the directory.
 * Malformed files: CLTTT_ERROR_BAD_TOKENIZER naming file and what is wrong.
 * Model types other than BPE, non-byte-level pre-tokenizers, normalizers
 * other than none/NFC: CLTTT_ERROR_UNSUPPORTED naming the type.
 *
 * BOS/EOS of a tokenizer.json come from model_dir/tokenizer_config.json
 * (bos_token, eos_token) when present, else from a TemplateProcessing
 * post-processor's leading special token, else from well-known names
 * (<|begin_of_text|>, <s>; <|end_of_text|>, <|endoftext|>, </s>). Qwen-style
 * tokenizers have no BOS (clttt_tokenizer_bos returns -1). llama2.c files:
 * BOS 1, EOS 2.
 *
 * An NFC normalizer is accepted and treated as the identity: text that is
 * already NFC (nearly all text) encodes exactly as HuggingFace encodes it. */
CLTTT_API clttt_status clttt_tokenizer_load(clttt_tokenizer **tokenizer, const char *model_dir);
CLTTT_API void clttt_tokenizer_free(clttt_tokenizer *tokenizer);

/* Encodes NUL-terminated UTF-8 `text`. With add_bos and a tokenizer that has
 * a BOS, the BOS id comes first. *ids is malloc'ed (free() it; NULL when
 * *count is 0). Invalid UTF-8 is not an error: bytes that form no character
 * are encoded byte by byte. */
CLTTT_API clttt_status clttt_tokenizer_encode(const clttt_tokenizer *tokenizer, const char *text, int add_bos,
                                              int32_t **ids, int *count);

/* Decodes `count` ids into a malloc'ed NUL-terminated string (free() it).
 * Special tokens of a tokenizer.json decode to their text (as HuggingFace's
 * decode does by default), so decode(encode(s)) == s. llama2.c: BOS and EOS
 * decode to nothing, and the leading space of the piece right after a BOS
 * is dropped. An id outside the vocabulary: CLTTT_ERROR_INVALID_ARGUMENT. */
CLTTT_API clttt_status clttt_tokenizer_decode(const clttt_tokenizer *tokenizer, const int32_t *ids, int count,
                                              char **text);

CLTTT_API int clttt_tokenizer_bos(const clttt_tokenizer *tokenizer);        /* -1 when none */
CLTTT_API int clttt_tokenizer_eos(const clttt_tokenizer *tokenizer);        /* -1 when none */
CLTTT_API int clttt_tokenizer_vocab_size(const clttt_tokenizer *tokenizer); /* highest id + 1 */
/* "bpe" (tokenizer.json) or "llama2c" (tok*.bin). */
CLTTT_API const char *clttt_tokenizer_kind_name(const clttt_tokenizer *tokenizer);

/* Id of a special token ("<|im_end|>") or of a vocabulary piece as the file
 * writes it ("Ġthe" in tokenizer.json, " the" in tok*.bin); for llama2.c
 * files "<s>" and "</s>" also name BOS and EOS. -1 when absent. */
CLTTT_API int32_t clttt_tokenizer_token_to_id(const clttt_tokenizer *tokenizer, const char *piece);
/* 1 for added special tokens (tokenizer.json) and BOS/EOS/unk (llama2.c). */
CLTTT_API int clttt_tokenizer_is_special(const clttt_tokenizer *tokenizer, int32_t id);

/* Streaming decode for printing tokens as they are generated. A character
 * whose UTF-8 bytes are split across tokens is held back until it is
 * complete; bytes that can never complete one are passed through as they
 * are, so the concatenation of everything put and flushed equals
 * clttt_tokenizer_decode of the same ids. */
typedef struct clttt_tokenizer_stream clttt_tokenizer_stream;

CLTTT_API clttt_status clttt_tokenizer_stream_create(clttt_tokenizer_stream **stream,
                                                     const clttt_tokenizer *tokenizer);
/* *text receives the newly complete text (possibly ""), valid until the next
 * call on this stream. */
CLTTT_API clttt_status clttt_tokenizer_stream_put(clttt_tokenizer_stream *stream, int32_t id, const char **text);
/* Emits whatever is still held back (an incomplete character at the end). */
CLTTT_API clttt_status clttt_tokenizer_stream_flush(clttt_tokenizer_stream *stream, const char **text);
/* Forgets held bytes and the previous token (a new, independent text). */
CLTTT_API void clttt_tokenizer_stream_reset(clttt_tokenizer_stream *stream);
CLTTT_API void clttt_tokenizer_stream_free(clttt_tokenizer_stream *stream);

/* ------------------------------------------------------------------ */
/* Sampler                                                              */

/* Choosing the next token from a row of logits. The filters run in the
 * order HuggingFace's generate applies its logits processors: repetition
 * penalty, temperature, top-k, top-p, min-p; then one token is drawn from
 * what is left. Randomness comes from the sampler's own generator
 * (xoshiro256**, seeded through splitmix64), so a seed gives the same tokens
 * on every machine and C library. */
typedef struct {
  /* 0: greedy (argmax, the lowest id on ties; the filters below cannot
   * change the argmax and are skipped). Otherwise logits are divided by it. */
  float temperature;
  /* Keep the top_k most likely tokens (and any tied with the k-th); 0: off. */
  int top_k;
  /* Keep the smallest set of most likely tokens whose probability reaches
   * top_p; in (0, 1], 1: off. */
  float top_p;
  /* Drop tokens less likely than min_p times the most likely one; in [0, 1],
   * 0: off. */
  float min_p;
  /* HuggingFace/CTRL repetition penalty for each distinct id among the last
   * repetition_window recent tokens: a positive logit is divided by it, any
   * other multiplied. 1: off; must be > 0. */
  float repetition_penalty;
  /* How many of the most recent tokens the penalty looks at; 0: all given. */
  int repetition_window;
  uint64_t seed;
} clttt_sampler_params;

typedef struct clttt_sampler clttt_sampler;

/* Greedy, every filter off, window 64, seed 0. */
CLTTT_API clttt_sampler_params clttt_sampler_default_params(void);

/* Parameters out of range: CLTTT_ERROR_INVALID_ARGUMENT naming the
 * parameter. params NULL means the defaults. */
CLTTT_API clttt_status clttt_sampler_create(clttt_sampler **sampler, const clttt_sampler_params *params,
                                            int vocab_size);
CLTTT_API void clttt_sampler_free(clttt_sampler *sampler);

/* Picks a token from `logits` (vocab_size entries; -inf masks a token, NaN
 * and +inf are rejected). `recent` holds the tokens so far, oldest first,
 * for the repetition penalty (may be NULL when recent_count is 0). The
 * logits are not modified. */
CLTTT_API clttt_status clttt_sampler_sample(clttt_sampler *sampler, const float *logits, const int32_t *recent,
                                            int recent_count, int32_t *token);

/* Restarts the random sequence as if the sampler were created with `seed`. */
CLTTT_API void clttt_sampler_reseed(clttt_sampler *sampler, uint64_t seed);
CLTTT_API const clttt_sampler_params *clttt_sampler_get_params(const clttt_sampler *sampler);

#ifdef __cplusplus
}
#endif
#endif
