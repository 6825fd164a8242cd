/* clttt: In-Place Test-Time Training on any OpenCL device.
 *
 * The one public header. Every function returns a clttt_status; on failure
 * clttt_last_error() holds a message naming the file, tensor, device or
 * OpenCL error involved. The library never exits or aborts. */
#ifndef CLTTT_H
#define CLTTT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
  CLTTT_ERROR_BAD_TUNING_FILE = -2013
} clttt_status;

/* Name of a status: "CL_OUT_OF_RESOURCES", "CLTTT_ERROR_BAD_CHECKPOINT"... */
const char *clttt_status_name(int status);
/* Message of the last failure in this thread ("" when none). */
const char *clttt_last_error(void);

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
clttt_status clttt_list_devices(clttt_device_info *infos, int capacity, int *count);

/* A device opened for computation: its context, queue and built programs. */
typedef struct clttt_device clttt_device;

/* selector: NULL or "" = the CLTTT_DEVICE environment variable, else the
 * first GPU, else device 0; a decimal number = that index; anything else =
 * first device whose name, vendor or platform contains it (case-insensitive). */
clttt_status clttt_device_open(clttt_device **device, const char *selector);
void clttt_device_close(clttt_device *device);
const clttt_device_info *clttt_device_get_info(const clttt_device *device);
/* Device memory held by clttt's buffers on this device now, and the most
 * held at once (since open or the last reset_peak). */
clttt_status clttt_device_memory(const clttt_device *device, uint64_t *current, uint64_t *peak, int reset_peak);

/* ------------------------------------------------------------------ */
/* Models                                                               */

typedef enum { CLTTT_ARCH_LLAMA = 0, CLTTT_ARCH_QWEN3 = 1 } clttt_arch;
typedef enum { CLTTT_ROPE_DEFAULT = 0, CLTTT_ROPE_LLAMA3 = 1, CLTTT_ROPE_YARN = 2 } clttt_rope_type;
typedef enum { CLTTT_TARGET_HIDDEN_STATES = 0, CLTTT_TARGET_INPUT_EMBED = 1 } clttt_ttt_target;

#define CLTTT_MAX_LAYERS 256

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
  int ttt_layer[CLTTT_MAX_LAYERS];          /* 1 where layer L is a TTT layer */
  int ttt_chunk;                            /* C */
  float ttt_lr;                             /* eta */
  int ttt_proj;
  clttt_ttt_target ttt_target;
} clttt_config;

typedef struct clttt_model clttt_model;

/* Loads a HuggingFace model directory (config.json + safetensors, single or
 * sharded) onto `device`. The model keeps a reference to the device. */
clttt_status clttt_model_load(clttt_model **model, clttt_device *device, const char *dir);
void clttt_model_free(clttt_model *model);
const clttt_config *clttt_model_get_config(const clttt_model *model);
/* Bytes the model's weights occupy on the device. */
uint64_t clttt_model_weight_bytes(const clttt_model *model);

/* Reads only dir/config.json (no weights): for inspecting a model. */
clttt_status clttt_config_load(clttt_config *config, const char *dir);
/* Device memory, in bytes, of the weights (fp32) and of one session of
 * `context` tokens (KV cache, activations of one batch and, with TTT on, one
 * fast weight plus one chunk of pending rows per TTT layer): the cost model
 * that 'clttt info' prints and the benchmarks check. */
uint64_t clttt_estimate_weight_bytes(const clttt_config *config);
uint64_t clttt_estimate_session_bytes(const clttt_config *config, int context, int ttt_enabled, int chunk);

/* A model with seeded random weights built in memory (no files): for the
 * demo and the benchmarks. Its text is meaningless; its speed and memory are
 * those of a real model of the same shape. `config` must be complete (see
 * clttt_synthetic_config). */
clttt_status clttt_model_synthetic(clttt_model **model, clttt_device *device, const clttt_config *config,
                                   uint64_t seed);
/* A Qwen3-style configuration of the given sizes, with TTT layers every
 * `ttt_every` layers starting at 0 (0 = none), chunk C and eta. */
void clttt_synthetic_config(clttt_config *config, int hidden_size, int intermediate_size, int layers,
                            int heads, int kv_heads, int head_dim, int vocab_size, int max_positions,
                            int ttt_every, int chunk, float eta);

/* A session: KV cache, position and TTT state of one sequence. Sessions on one
 * model are independent. max_context = 0 means the model's
 * max_position_embeddings. */
typedef struct clttt_session clttt_session;
clttt_status clttt_session_create(clttt_session **session, clttt_model *model, int max_context);
void clttt_session_free(clttt_session *session);

/* Feeds n tokens. When `logits` is not NULL it receives n x vocab_size floats
 * (row i = the logits after token i); with logits_last_only it receives only
 * the last row (vocab_size floats). */
clttt_status clttt_session_feed(clttt_session *session, const int32_t *tokens, int n,
                                float *logits, int logits_last_only);
int clttt_session_position(const clttt_session *session);

/* Forgets everything: KV cache, position, and resets fast weights to the
 * checkpoint's W_down. */
clttt_status clttt_session_reset(clttt_session *session);
/* Resets only the fast weights and pending chunk rows (a document boundary),
 * keeping the KV cache. */
clttt_status clttt_session_reset_fast_weights(clttt_session *session);
/* TTT on or off at run time (off = the plain base model with W_down).
 * Only allowed at position 0. */
clttt_status clttt_session_set_ttt(clttt_session *session, int enabled);
int clttt_session_ttt_enabled(const clttt_session *session);
/* Override chunk size and eta (0 keeps the checkpoint's). Only at position 0. */
clttt_status clttt_session_set_ttt_params(clttt_session *session, int chunk, float eta);

#ifdef __cplusplus
}
#endif
#endif
