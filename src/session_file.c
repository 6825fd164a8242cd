/* Session files: a session's state written to a file and read back into a
 * new session of the same model, and the in-memory copy (fork). The format
 * is described in README.md, "Session files"; in short:
 *
 *   header (64 bytes): magic, version, section count, file size, check
 *   sections, each a 32-byte header (kind, layer, device, header check,
 *   payload bytes, payload XXH3-64) and its payload, in a fixed order:
 *     MODEL   the model's fingerprint (configuration, TTT layers, weights hash)
 *     PARAMS  session parameters, position, pending TTT rows, KV dtype
 *     TOKENS  position x int32
 *     KV      one per layer: K rows then V rows, position x kv_dim each
 *     TTT     one per TTT layer (TTT on): W (d x f), pending h rows
 *             (pending x f), pending t rows (pending x d)
 *
 * Every field is little-endian and fixed-width (configure rejects big-endian
 * hosts, so payloads are host memory as it is). Every size a file states is
 * checked against what its own fingerprint and parameters imply, and their
 * sum against the file's length, before anything is sized from it.
 * Version 1 files (crc32 checksums) are still read; only version 2 is
 * written. */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "config.h"
#include "error.h"
#include "session.h"
#include "session_file.h"

#define MAGIC "CLTTTSES"
#define FORMAT_VERSION 2
#define OLDEST_VERSION 1
#define HEADER_BYTES 64
#define SECTION_HEADER_BYTES 32
#define PARAMS_BYTES 48
#define NO_LAYER 0xffffffffu
#define KV_DTYPE_F32 0u
#define KV_DTYPE_F16 1u
/* Host staging between device and file: large enough that per-call costs
 * vanish, small enough to be no burden next to a model. */
#define STAGING_BYTES ((size_t)16 << 20)
size_t session_file_staging_bytes = STAGING_BYTES;
/* Bounds on what a file may claim, checked before anything is sized from it. */
#define MAX_LAYERS 65536
#define MAX_WIDTH (1 << 24)
#define MAX_CONTEXT (1 << 28)

enum { SECTION_MODEL = 1, SECTION_PARAMS = 2, SECTION_TOKENS = 3, SECTION_KV = 4, SECTION_TTT = 5 };

void (*session_file_test_hook)(int stage) = NULL;
int session_file_write_version = FORMAT_VERSION;

static void test_hook(int stage) {
  if (session_file_test_hook)
    session_file_test_hook(stage);
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}
static float bits_float(uint32_t bits) {
  float value;
  memcpy(&value, &bits, sizeof value);
  return value;
}

static const char *section_name(uint32_t kind) {
  switch (kind) {
    case SECTION_MODEL: return "MODEL";
    case SECTION_PARAMS: return "PARAMS";
    case SECTION_TOKENS: return "TOKENS";
    case SECTION_KV: return "KV";
    case SECTION_TTT: return "TTT";
    default: return "unknown";
  }
}

/* ---------------------------------------------------------------- */
/* The model's fingerprint                                            */

/* The MODEL section: these fields as u32 (floats as their bits), then the
 * TTT layer list. */
enum {
  FP_ARCH, FP_HIDDEN, FP_INTERMEDIATE, FP_LAYERS, FP_HEADS, FP_KV_HEADS, FP_HEAD_DIM, FP_VOCAB,
  FP_MAX_POSITIONS, FP_TIE, FP_ATTENTION_BIAS, FP_MLP_BIAS, FP_RMS_EPS, FP_ROPE_THETA, FP_ROPE_TYPE,
  FP_ROPE_FACTOR, FP_TTT_MODE, FP_TTT_CHUNK, FP_TTT_LR, FP_TTT_PROJ, FP_TTT_TARGET, FP_TTT_CLIP_TAU,
  FP_WEIGHT_BYTES_LOW, FP_WEIGHT_BYTES_HIGH, FP_WEIGHTS_HASH_LOW, FP_WEIGHTS_HASH_HIGH, FP_TTT_LAYER_COUNT,
  FP_FIELDS
};

static const struct {
  const char *name;
  int is_float;
} fingerprint_fields[FP_FIELDS] = {
    {"architecture", 0},      {"hidden_size", 0},           {"intermediate_size", 0},
    {"num_hidden_layers", 0}, {"num_attention_heads", 0},   {"num_key_value_heads", 0},
    {"head_dim", 0},          {"vocab_size", 0},            {"max_position_embeddings", 0},
    {"tie_word_embeddings", 0}, {"attention_bias", 0},      {"mlp_bias", 0},
    {"rms_norm_eps", 1},      {"rope_theta", 1},            {"rope_scaling type", 0},
    {"rope_scaling factor", 1}, {"ttt_mode", 0},            {"ttt_chunk", 0},
    {"ttt_lr", 1},            {"ttt_proj", 0},              {"ttt_target", 0},
    {"ttt_clip_tau", 1},      {"weight bytes (low word)", 0}, {"weight bytes (high word)", 0},
    {"weights hash (low word)", 0}, {"weights hash (high word)", 0}, {"TTT layer count", 0},
};

/* ---------------------------------------------------------------- */
/* Checksums                                                          */

/* A payload's checksum as its file's version defines it: XXH3-64 from
 * version 2 on (5 GB/s on one core here, where zlib's crc32 runs at 1.9
 * and alone took half of a 1 GB/s save), zlib's crc32 in version 1. */
typedef struct {
  uint32_t version;
  uLong crc;
  XXH3_state_t *state; /* version 2: allocated once per reader or writer */
} checksum;

static clttt_status checksum_open(checksum *c, uint32_t version) {
  c->version = version;
  c->state = NULL;
  if (version >= 2 && !(c->state = XXH3_createState()))
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating a checksum state");
  return CLTTT_SUCCESS;
}

static void checksum_close(checksum *c) {
  if (c->state)
    XXH3_freeState(c->state);
  c->state = NULL;
}

static void checksum_begin(checksum *c) {
  if (c->state)
    (void)XXH3_64bits_reset(c->state);
  else
    c->crc = crc32(0L, Z_NULL, 0);
}

static void checksum_add(checksum *c, const void *data, size_t bytes) {
  if (c->state)
    (void)XXH3_64bits_update(c->state, data, bytes);
  else
    c->crc = crc32_z(c->crc, data, bytes);
}

static uint64_t checksum_end(const checksum *c) { return c->state ? XXH3_64bits_digest(c->state) : c->crc; }

/* The check of a fixed header's first `bytes` (the check's own field excluded). */
static uint32_t header_check(uint32_t version, const uint8_t *header, size_t bytes) {
  return version >= 2 ? (uint32_t)XXH3_64bits(header, bytes) : (uint32_t)crc32(0L, header, (uInt)bytes);
}

/* ---------------------------------------------------------------- */
/* The weights hash                                                   */

/* One weight buffer into the running hash (version 2) or hashes (version
 * 1: crc32 and adler32), its size first so that the same bytes cut
 * differently hash differently. */
static clttt_status hash_buffer(const clttt_device *device, cl_mem buffer, uint8_t *staging, checksum *c,
                                uLong *adler) {
  size_t size = 0;
  CLTTT_TRY(runtime_check(device, clGetMemObjectInfo(buffer, CL_MEM_SIZE, sizeof size, &size, NULL),
                          "reading a weight buffer's size"));
  uint8_t size_bytes[8];
  put64(size_bytes, (uint64_t)size);
  checksum_add(c, size_bytes, sizeof size_bytes);
  for (size_t done = 0; done < size;) {
    size_t piece = size - done < STAGING_BYTES ? size - done : STAGING_BYTES;
    CLTTT_TRY(runtime_download(device, buffer, done, piece, staging, "a weight, for the model's hash"));
    checksum_add(c, staging, piece);
    if (c->version < 2)
      *adler = adler32_z(*adler, staging, piece);
    done += piece;
  }
  return CLTTT_SUCCESS;
}

static clttt_status hash_weights(clttt_model *model, checksum *c, uLong *adler, uint8_t *staging) {
  /* A tied head is the embedding, also where a split keeps a copy of it:
   * the hash is that of the model, wherever it is placed. */
  const int own_head = model->lm_head.buffer != model->embedding.buffer && !model->config.tie_word_embeddings;
  cl_mem globals[] = {model->embedding.buffer, own_head ? model->lm_head.buffer : NULL, model->final_norm,
                      model->rope_inverse_frequency};
  const clttt_device *global_devices[] = {model->device, head_device(model), head_device(model), model->device};
  for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
    if (globals[i])
      CLTTT_TRY(hash_buffer(global_devices[i], globals[i], staging, c, adler));
  for (int l = 0; l < model->config.num_hidden_layers; l++) {
    const layer_weights *layer = &model->layers[l];
    cl_mem buffers[] = {layer->input_norm,     layer->qkv.buffer,    layer->qkv_bias,    layer->o.buffer,
                        layer->o_bias,         layer->q_norm,        layer->k_norm,      layer->post_norm,
                        layer->gate_up.buffer, layer->gate_up_bias,  layer->down.buffer, layer->down_bias,
                        layer->ttt_conv,       layer->ttt_proj};
    for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++)
      if (buffers[b])
        CLTTT_TRY(hash_buffer(layer_device(model, l), buffers[b], staging, c, adler));
  }
  return CLTTT_SUCCESS;
}

/* The weights are hashed as they are on the device, downloaded once at the
 * first save or load. Why not the checkpoint's files: a hash of their
 * headers cannot tell two checkpoints of the same shape apart, hashing
 * their bytes at every load would tax every user for a feature few use,
 * and synthetic models have no files at all. The device copy is exactly
 * what computes the logits, whatever it was loaded from. The hash is 64
 * bits, as two words of the fingerprint: XXH3-64 (low word first) from
 * version 2 on, crc32 and adler32 in version 1. */
static clttt_status weights_hash(clttt_model *model, uint32_t version, uint32_t words[2]) {
  const int index = version >= 2 ? 1 : 0;
  pthread_mutex_lock(&model->fingerprint_lock);
  clttt_status status = CLTTT_SUCCESS;
  if (!model->weights_hash_ready[index]) {
    uint8_t *staging = malloc(STAGING_BYTES);
    checksum c = {0};
    uLong adler = adler32(0L, Z_NULL, 0);
    status = staging ? checksum_open(&c, version)
                     : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating %zu bytes to hash the weights",
                                  (size_t)STAGING_BYTES);
    if (status == CLTTT_SUCCESS) {
      checksum_begin(&c);
      status = hash_weights(model, &c, &adler, staging);
    }
    if (status == CLTTT_SUCCESS) {
      const uint64_t hash = checksum_end(&c);
      model->weights_hash[index][0] = (uint32_t)hash; /* XXH3-64's low word, or crc32 */
      model->weights_hash[index][1] = version >= 2 ? (uint32_t)(hash >> 32) : (uint32_t)adler;
      model->weights_hash_ready[index] = 1;
    }
    checksum_close(&c);
    free(staging);
  }
  words[0] = model->weights_hash[index][0];
  words[1] = model->weights_hash[index][1];
  pthread_mutex_unlock(&model->fingerprint_lock);
  return status == CLTTT_SUCCESS ? CLTTT_SUCCESS : clttt_fail_context(status, "hashing the model's weights");
}

/* The MODEL payload of `model` (malloc'ed). */
static clttt_status model_fingerprint(clttt_model *model, uint32_t version, uint8_t **payload, size_t *bytes) {
  const clttt_config *c = &model->config;
  uint32_t hash[2] = {0, 0};
  CLTTT_TRY(weights_hash(model, version, hash));
  const int ttt_count = config_ttt_layer_count(c);
  uint32_t fields[FP_FIELDS] = {
      [FP_ARCH] = (uint32_t)c->arch,
      [FP_HIDDEN] = (uint32_t)c->hidden_size,
      [FP_INTERMEDIATE] = (uint32_t)c->intermediate_size,
      [FP_LAYERS] = (uint32_t)c->num_hidden_layers,
      [FP_HEADS] = (uint32_t)c->num_attention_heads,
      [FP_KV_HEADS] = (uint32_t)c->num_key_value_heads,
      [FP_HEAD_DIM] = (uint32_t)c->head_dim,
      [FP_VOCAB] = (uint32_t)c->vocab_size,
      [FP_MAX_POSITIONS] = (uint32_t)c->max_position_embeddings,
      [FP_TIE] = (uint32_t)c->tie_word_embeddings,
      [FP_ATTENTION_BIAS] = (uint32_t)c->attention_bias,
      [FP_MLP_BIAS] = (uint32_t)c->mlp_bias,
      [FP_RMS_EPS] = float_bits(c->rms_norm_eps),
      [FP_ROPE_THETA] = float_bits(c->rope_theta),
      [FP_ROPE_TYPE] = (uint32_t)c->rope_type,
      [FP_ROPE_FACTOR] = float_bits(c->rope_factor),
      [FP_TTT_MODE] = (uint32_t)c->ttt_mode,
      [FP_TTT_CHUNK] = (uint32_t)c->ttt_chunk,
      [FP_TTT_LR] = float_bits(c->ttt_lr),
      [FP_TTT_PROJ] = (uint32_t)c->ttt_proj,
      [FP_TTT_TARGET] = (uint32_t)c->ttt_target,
      [FP_TTT_CLIP_TAU] = float_bits(c->ttt_clip_tau),
      [FP_WEIGHT_BYTES_LOW] = (uint32_t)model->weight_bytes,
      [FP_WEIGHT_BYTES_HIGH] = (uint32_t)(model->weight_bytes >> 32),
      [FP_WEIGHTS_HASH_LOW] = hash[0],
      [FP_WEIGHTS_HASH_HIGH] = hash[1],
      [FP_TTT_LAYER_COUNT] = (uint32_t)ttt_count,
  };
  *bytes = (size_t)(FP_FIELDS + ttt_count) * 4;
  *payload = malloc(*bytes);
  if (!*payload)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's fingerprint");
  for (int i = 0; i < FP_FIELDS; i++)
    put32(*payload + 4 * i, fields[i]);
  for (int i = 0; i < ttt_count; i++)
    put32(*payload + 4 * (FP_FIELDS + i), (uint32_t)c->ttt_layers[i]);
  return CLTTT_SUCCESS;
}

static void describe_field(char *text, size_t capacity, int field, uint32_t value) {
  if (fingerprint_fields[field].is_float)
    snprintf(text, capacity, "%g", (double)bits_float(value));
  else if (field == FP_WEIGHTS_HASH_LOW || field == FP_WEIGHTS_HASH_HIGH)
    snprintf(text, capacity, "%08x", value);
  else
    snprintf(text, capacity, "%u", value);
}

/* Names the first difference between the file's fingerprint and the model's. */
static clttt_status compare_fingerprints(const char *path, const uint8_t *file, size_t file_bytes,
                                         const uint8_t *model, size_t model_bytes) {
  for (int i = 0; i < FP_FIELDS; i++) {
    uint32_t saved = get32(file + 4 * i), here = get32(model + 4 * i);
    if (saved == here)
      continue;
    char saved_text[32], here_text[32];
    describe_field(saved_text, sizeof saved_text, i, saved);
    describe_field(here_text, sizeof here_text, i, here);
    const int weights = i >= FP_WEIGHT_BYTES_LOW && i <= FP_WEIGHTS_HASH_HIGH;
    return clttt_fail(CLTTT_ERROR_BAD_SESSION_FILE,
                      "session file '%s' was saved from another model: %s is %s in the file, %s in this "
                      "model%s",
                      path, fingerprint_fields[i].name, saved_text, here_text,
                      weights ? " (the same configuration with other weights, or the same weights laid out "
                                "otherwise on the device: other GEMM parameters, or a file from a build before "
                                "a TTT layer's fp32 W_down was packed)"
                              : "");
  }
  /* Equal counts, hence equal sizes: the layer lists remain. */
  for (size_t at = 4 * FP_FIELDS; at < file_bytes && at < model_bytes; at += 4)
    if (get32(file + at) != get32(model + at))
      return clttt_fail(CLTTT_ERROR_BAD_SESSION_FILE,
                        "session file '%s' was saved from another model: TTT layer %zu is layer %u in the "
                        "file, layer %u in this model",
                        path, (at - 4 * FP_FIELDS) / 4, get32(file + at), get32(model + at));
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Layout: the sections a state implies                               */

/* What the sizes of a file's sections follow from. */
typedef struct {
  int layers, d, f, kv_dim;
  int ttt_layer_count;
  const uint8_t *ttt_layers; /* the fingerprint's list, u32 each */
  int position, pending, ttt_state;
  clttt_session_params params;
  uint32_t kv_dtype;
} layout;

/* A run of bytes of a section: in a device buffer (at offset) or in host
 * memory; neither when the bytes are only checked (clttt_session_read_info). */
typedef struct {
  const clttt_device *device; /* the buffer's: in a split, the layer's */
  cl_mem buffer;
  size_t offset;
  void *host;
  size_t bytes;
  /* Non-NULL: the buffer holds an n x k fp32 matrix (offset 0) in these
   * panels, which the file holds row-major (a TTT fast weight, src/ttt.h). */
  const packed_gemm_layout *panels;
} segment;

typedef struct {
  uint32_t kind, layer;
  segment parts[3];
  int part_count;
  uint64_t bytes;
} section;

static void add_part(section *s, const clttt_device *device, cl_mem buffer, void *host, size_t bytes) {
  segment part = {device, buffer, 0, host, bytes, NULL};
  s->parts[s->part_count++] = part;
  s->bytes += bytes;
}

static int section_count_of(const layout *l) { return 3 + l->layers + (l->ttt_state ? l->ttt_layer_count : 0); }

/* The sections of `l`, in file order. With a session, the parts point at
 * its buffers; model and params payloads may be NULL (read elsewhere), but
 * model_bytes is always the MODEL section's size. */
static clttt_status plan_sections(const layout *l, const clttt_session *session, uint8_t *model_payload,
                                  size_t model_bytes, uint8_t *params_payload, section **out, int *count) {
  *count = section_count_of(l);
  section *sections = calloc((size_t)*count, sizeof *sections);
  if (!sections)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "planning %d sections", *count);
  const size_t F = sizeof(float), P = (size_t)l->position;
  const size_t KV = l->kv_dtype == KV_DTYPE_F16 ? 2 : sizeof(float); /* bytes per cached element */
  int n = 0;
  sections[n] = (section){.kind = SECTION_MODEL, .layer = NO_LAYER};
  add_part(&sections[n++], NULL, NULL, model_payload, model_bytes);
  sections[n] = (section){.kind = SECTION_PARAMS, .layer = NO_LAYER};
  add_part(&sections[n++], NULL, NULL, params_payload, PARAMS_BYTES);
  sections[n] = (section){.kind = SECTION_TOKENS, .layer = NO_LAYER};
  add_part(&sections[n++], NULL, NULL, session ? session->history : NULL, P * sizeof(int32_t));
  /* The file does not depend on how the model is split: each buffer is
   * read or written through its own layer's device. */
  for (int i = 0; i < l->layers; i++) {
    const clttt_device *device = session ? layer_device(session->model, i) : NULL;
    sections[n] = (section){.kind = SECTION_KV, .layer = (uint32_t)i};
    add_part(&sections[n], device, session ? session->k_cache[i] : NULL, NULL, P * (size_t)l->kv_dim * KV);
    add_part(&sections[n++], device, session ? session->v_cache[i] : NULL, NULL, P * (size_t)l->kv_dim * KV);
  }
  for (int t = 0; l->ttt_state && t < l->ttt_layer_count; t++) {
    const uint32_t layer = get32(l->ttt_layers + 4 * t);
    const ttt_layer_state *state = session ? &session->ttt.layers[layer] : NULL;
    const clttt_device *device = session ? layer_device(session->model, (int)layer) : NULL;
    sections[n] = (section){.kind = SECTION_TTT, .layer = layer};
    add_part(&sections[n], device, state ? state->fast_weight : NULL, NULL, (size_t)l->d * (size_t)l->f * F);
    if (state && state->in_panels)
      sections[n].parts[0].panels = &state->panels;
    add_part(&sections[n], device, state ? state->pending_h : NULL, NULL, (size_t)l->pending * (size_t)l->f * F);
    add_part(&sections[n++], device, state ? state->pending_t : NULL, NULL, (size_t)l->pending * (size_t)l->d * F);
  }
  *out = sections;
  return CLTTT_SUCCESS;
}

static uint64_t file_bytes_of(const section *sections, int count) {
  uint64_t total = HEADER_BYTES;
  for (int i = 0; i < count; i++)
    total += SECTION_HEADER_BYTES + sections[i].bytes;
  return total;
}

static void encode_params(uint8_t *p, const layout *l) {
  memset(p, 0, PARAMS_BYTES);
  put32(p + 0, (uint32_t)l->params.context);
  put32(p + 4, (uint32_t)l->params.ttt);
  put32(p + 8, (uint32_t)l->params.chunk);
  put32(p + 12, float_bits(l->params.eta));
  put32(p + 16, float_bits(l->params.ttt_clip_tau));
  put32(p + 20, (uint32_t)l->params.logits);
  put32(p + 24, l->kv_dtype);
  put32(p + 28, (uint32_t)l->position);
  put32(p + 32, (uint32_t)l->pending);
  put32(p + 36, (uint32_t)l->ttt_state);
  /* 40..47: reserved, zero. */
}

static clttt_status bad(const char *path, const char *format, ...) CLTTT_PRINTF(2, 3);
static clttt_status bad(const char *path, const char *format, ...) {
  char message[1024];
  va_list list;
  va_start(list, format);
  vsnprintf(message, sizeof message, format, list);
  va_end(list);
  return clttt_fail(CLTTT_ERROR_BAD_SESSION_FILE, "session file '%s': %s", path, message);
}

/* Checks a file's fingerprint and parameters on their own (no model) and
 * derives the layout from them. */
static clttt_status decode_layout(const char *path, const uint8_t *model, size_t model_bytes,
                                  const uint8_t *params, layout *l) {
  memset(l, 0, sizeof *l);
  if (model_bytes < 4 * FP_FIELDS)
    return bad(path, "MODEL section of %zu bytes: at least %d expected", model_bytes, 4 * FP_FIELDS);
  const uint32_t layers = get32(model + 4 * FP_LAYERS), ttt_count = get32(model + 4 * FP_TTT_LAYER_COUNT);
  const uint32_t widths[] = {get32(model + 4 * FP_HIDDEN), get32(model + 4 * FP_INTERMEDIATE),
                             get32(model + 4 * FP_KV_HEADS), get32(model + 4 * FP_HEAD_DIM)};
  if (layers < 1 || layers > MAX_LAYERS)
    return bad(path, "%u layers: 1..%d expected", layers, MAX_LAYERS);
  for (int i = 0; i < 4; i++)
    if (widths[i] < 1 || widths[i] > MAX_WIDTH)
      return bad(path, "%s %u: 1..%d expected", fingerprint_fields[FP_HIDDEN + (i < 2 ? i : i + 2)].name,
                 widths[i], MAX_WIDTH);
  const uint64_t kv_dim = (uint64_t)widths[2] * widths[3];
  if (kv_dim > MAX_WIDTH)
    return bad(path, "kv_dim %llu: at most %d expected", (unsigned long long)kv_dim, MAX_WIDTH);
  if (ttt_count > layers)
    return bad(path, "%u TTT layers in a model of %u layers", ttt_count, layers);
  if (model_bytes != 4 * ((size_t)FP_FIELDS + ttt_count))
    return bad(path, "MODEL section of %zu bytes for %u TTT layers: %zu expected", model_bytes, ttt_count,
               4 * ((size_t)FP_FIELDS + ttt_count));
  for (uint32_t t = 0; t < ttt_count; t++) {
    uint32_t layer = get32(model + 4 * (FP_FIELDS + t));
    if (layer >= layers || (t > 0 && layer <= get32(model + 4 * (FP_FIELDS + t - 1))))
      return bad(path, "TTT layer list: entry %u is %u (ascending, below %u expected)", t, layer, layers);
  }
  l->layers = (int)layers;
  l->d = (int)widths[0];
  l->f = (int)widths[1];
  l->kv_dim = (int)kv_dim;
  l->ttt_layer_count = (int)ttt_count;
  l->ttt_layers = model + 4 * FP_FIELDS;

  clttt_session_params *p = &l->params;
  const uint32_t context = get32(params + 0), ttt = get32(params + 4), chunk = get32(params + 8);
  const uint32_t logits = get32(params + 20), position = get32(params + 28), pending = get32(params + 32);
  const uint32_t ttt_state = get32(params + 36);
  p->eta = bits_float(get32(params + 12));
  p->ttt_clip_tau = bits_float(get32(params + 16));
  l->kv_dtype = get32(params + 24);
  if (context < 1 || context > MAX_CONTEXT)
    return bad(path, "context %u: 1..%d expected", context, MAX_CONTEXT);
  if (position > context)
    return bad(path, "position %u beyond the context of %u tokens", position, context);
  if (ttt > 1 || logits > 1 || ttt_state > 1)
    return bad(path, "PARAMS: ttt %u, logits mode %u, TTT state %u: 0 or 1 expected", ttt, logits, ttt_state);
  if (chunk < 1 || chunk > MAX_CONTEXT)
    return bad(path, "chunk %u: 1..%d expected", chunk, MAX_CONTEXT);
  if (!isfinite(p->eta) || !isfinite(p->ttt_clip_tau) || p->ttt_clip_tau < 0.0f)
    return bad(path, "eta %g, ttt_clip_tau %g: finite (tau >= 0) expected", (double)p->eta,
               (double)p->ttt_clip_tau);
  if (l->kv_dtype != KV_DTYPE_F32 && l->kv_dtype != KV_DTYPE_F16)
    return bad(path, "KV cache dtype %u: 0 (float32) or 1 (float16) expected", l->kv_dtype);
  const uint32_t expected_state = ttt && get32(model + 4 * FP_TTT_MODE) && ttt_count > 0;
  if (ttt_state != expected_state)
    return bad(path, "TTT state flag %u, but ttt %u with %u TTT layers implies %u", ttt_state, ttt, ttt_count,
               expected_state);
  if (ttt_state ? pending >= chunk || pending > position : pending != 0)
    return bad(path, "%u pending TTT rows at position %u with chunk %u", pending, position, chunk);
  p->context = (int)context;
  p->ttt = (int)ttt;
  p->chunk = (int)chunk;
  p->logits = (clttt_logits_mode)logits;
  p->kv_type = l->kv_dtype == KV_DTYPE_F16 ? CLTTT_KV_F16 : CLTTT_KV_F32;
  l->position = (int)position;
  l->pending = (int)pending;
  l->ttt_state = (int)ttt_state;
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Writing                                                            */

/* A second thread that runs one pread or pwrite at a time, so that the
 * disk's time overlaps this thread's transfers and checksums: a save or
 * load moves each piece through two buffers, one on its way to or from the
 * disk while the other is filled or consumed here. Without the thread
 * (pthread_create failed) every job runs in the caller, in order. */
typedef struct {
  int fd;
  pthread_t thread;
  int started;
  int lock_ready;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int busy, quit;
  /* The job, and its outcome once busy is 0 again. */
  uint8_t *data;
  size_t bytes;
  uint64_t offset;
  int write, start_write_back;
  size_t done;  /* bytes moved: short only at the end of the file */
  int error;    /* errno, 0 when fine */
} io_thread;

static void io_run(io_thread *io) {
  io->done = 0;
  io->error = 0;
  while (io->done < io->bytes) {
    ssize_t moved = io->write ? pwrite(io->fd, io->data + io->done, io->bytes - io->done,
                                       (off_t)(io->offset + io->done))
                              : pread(io->fd, io->data + io->done, io->bytes - io->done,
                                      (off_t)(io->offset + io->done));
    if (moved < 0 && errno == EINTR)
      continue;
    if (moved < 0) {
      io->error = errno;
      return;
    }
    if (moved == 0) {
      if (io->write)
        io->error = EIO;
      return;
    }
    io->done += (size_t)moved;
  }
#ifdef SYNC_FILE_RANGE_WRITE
  /* Without O_DIRECT: starts the disk write of this piece now, so that
   * the final fsync (which alone guarantees it) has little left to do. */
  if (io->write && io->start_write_back)
    sync_file_range(io->fd, (off_t)io->offset, (off_t)io->bytes, SYNC_FILE_RANGE_WRITE);
#endif
}

static void *io_main(void *argument) {
  io_thread *io = argument;
  pthread_mutex_lock(&io->lock);
  for (;;) {
    while (!io->busy && !io->quit)
      pthread_cond_wait(&io->changed, &io->lock);
    if (!io->busy)
      break;
    pthread_mutex_unlock(&io->lock);
    io_run(io);
    pthread_mutex_lock(&io->lock);
    io->busy = 0;
    pthread_cond_broadcast(&io->changed);
  }
  pthread_mutex_unlock(&io->lock);
  return NULL;
}

static void io_open(io_thread *io, int fd) {
  memset(io, 0, sizeof *io);
  io->fd = fd;
  pthread_mutex_init(&io->lock, NULL);
  pthread_cond_init(&io->changed, NULL);
  io->lock_ready = 1;
  io->started = pthread_create(&io->thread, NULL, io_main, io) == 0;
}

/* Waits for the job in flight, if any. */
static void io_wait(io_thread *io) {
  if (!io->started)
    return;
  pthread_mutex_lock(&io->lock);
  while (io->busy)
    pthread_cond_wait(&io->changed, &io->lock);
  pthread_mutex_unlock(&io->lock);
}

/* Starts a job; the previous one must be finished (io_wait). */
static void io_submit(io_thread *io, uint8_t *data, size_t bytes, uint64_t offset, int write) {
  io->data = data;
  io->bytes = bytes;
  io->offset = offset;
  io->write = write;
  if (!io->started) {
    io_run(io);
    return;
  }
  pthread_mutex_lock(&io->lock);
  io->busy = 1;
  pthread_cond_broadcast(&io->changed);
  pthread_mutex_unlock(&io->lock);
}

static void io_close(io_thread *io) {
  if (io->started) {
    pthread_mutex_lock(&io->lock);
    while (io->busy)
      pthread_cond_wait(&io->changed, &io->lock);
    io->quit = 1;
    pthread_cond_broadcast(&io->changed);
    pthread_mutex_unlock(&io->lock);
    pthread_join(io->thread, NULL);
    io->started = 0;
  }
  if (io->lock_ready) {
    pthread_mutex_destroy(&io->lock);
    pthread_cond_destroy(&io->changed);
    io->lock_ready = 0;
  }
}

/* The file is produced as one stream through two aligned staging buffers:
 * this thread downloads and checksums into one while the I/O thread
 * writes the other. Writes bypass the page cache (O_DIRECT) where the file
 * system allows it: on the development VM a buffered write of a few hundred
 * MB ran at about 0.5 GB/s, a direct one at 1.3-1.6 GB/s. Direct I/O takes
 * whole aligned blocks: the last one is padded and the file truncated to
 * its length afterwards. A section header's checksum is known only after
 * its payload: it is filled in while its block is still in this thread's
 * buffer, which is nearly always, and otherwise patched into the written
 * file at the end. */
#define BLOCK_BYTES 4096

/* session_file_staging_bytes where it is whole blocks, at least the two
 * that a patch rewrites, else the default. */
static size_t staging_size(uint64_t file_bytes) {
  const size_t bytes = session_file_staging_bytes;
  const size_t staging = bytes >= 2 * BLOCK_BYTES && bytes % BLOCK_BYTES == 0 ? bytes : STAGING_BYTES;
  /* A small file needs no more than itself (in whole blocks, two at least). */
  const uint64_t needed = (file_bytes + BLOCK_BYTES - 1) / BLOCK_BYTES * BLOCK_BYTES;
  return needed < staging ? (needed > 2 * BLOCK_BYTES ? (size_t)needed : 2 * BLOCK_BYTES) : staging;
}

typedef struct {
  const char *path; /* the temporary file, for messages */
  int fd;
  uint32_t version;
  checksum sum;
  io_thread io;
  int io_open;
  size_t staging;     /* bytes of each buffer */
  uint8_t *buffer[2];
  int current;        /* the buffer being filled */
  size_t fill;        /* bytes in it */
  uint64_t flushed;   /* file offset of its first byte */
} writer;

static clttt_status writer_open(writer *w, uint64_t file_bytes) {
  w->staging = staging_size(file_bytes);
  for (int i = 0; i < 2; i++) {
    w->buffer[i] = aligned_alloc(BLOCK_BYTES, w->staging);
    if (!w->buffer[i])
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating %zu bytes of staging", w->staging);
  }
  CLTTT_TRY(checksum_open(&w->sum, w->version));
  /* Not every file system takes O_DIRECT (tmpfs does not): then the page
   * cache it is, with each piece's write-back started early. */
  int flags = fcntl(w->fd, F_GETFL);
  const int direct = flags != -1 && fcntl(w->fd, F_SETFL, flags | O_DIRECT) == 0;
  io_open(&w->io, w->fd);
  w->io.start_write_back = !direct;
  w->io_open = 1;
  return CLTTT_SUCCESS;
}

static void writer_close(writer *w) {
  /* The thread is gone before the buffers are freed. */
  if (w->io_open)
    io_close(&w->io);
  w->io_open = 0;
  checksum_close(&w->sum);
  free(w->buffer[0]);
  free(w->buffer[1]);
  w->buffer[0] = w->buffer[1] = NULL;
}

/* Waits until the thread has written everything handed to it. */
static clttt_status writer_idle(writer *w) {
  io_wait(&w->io);
  if (w->io.error)
    return clttt_fail(CLTTT_ERROR_IO, "writing '%s' at byte %llu: %s", w->path,
                      (unsigned long long)(w->io.offset + w->io.done), strerror(w->io.error));
  return CLTTT_SUCCESS;
}

static uint64_t writer_offset(const writer *w) { return w->flushed + w->fill; }

/* Hands the current buffer's first `bytes` (its fill, or the fill padded
 * to whole blocks at the end) to the thread and starts on the other one,
 * which is free once the previous piece is written. */
static clttt_status flush(writer *w, size_t bytes) {
  CLTTT_TRY(writer_idle(w));
  io_submit(&w->io, w->buffer[w->current], bytes, w->flushed, 1);
  w->flushed += w->fill;
  w->fill = 0;
  w->current ^= 1;
  return CLTTT_SUCCESS;
}

/* Appends host bytes or, with a buffer, device bytes downloaded straight
 * into the stream; `sum` (NULL: none) takes them in. */
static clttt_status append(writer *w, const void *host, const clttt_device *device, cl_mem buffer, size_t offset,
                           size_t bytes, checksum *sum, const char *what) {
  const uint8_t *p = host;
  while (bytes > 0) {
    size_t piece = w->staging - w->fill < bytes ? w->staging - w->fill : bytes;
    uint8_t *target = w->buffer[w->current] + w->fill;
    if (buffer)
      CLTTT_TRY(runtime_download(device, buffer, offset, piece, target, what));
    else
      memcpy(target, p + offset, piece);
    if (sum)
      checksum_add(sum, target, piece);
    w->fill += piece;
    offset += piece;
    bytes -= piece;
    if (w->fill == w->staging)
      CLTTT_TRY(flush(w, w->staging));
  }
  return CLTTT_SUCCESS;
}

/* Panel p of `layout` as a layout of its own: its rows, one panel. */
static packed_gemm_layout one_panel(const packed_gemm_layout *layout, size_t p) {
  packed_gemm_layout panel = *layout;
  const size_t first = p * layout->panel_width;
  panel.n = layout->n - first < layout->panel_width ? layout->n - first : layout->panel_width;
  panel.panels = 1;
  return panel;
}

/* The rows of n x k fp32 panels (segment.panels) into the stream, row-major:
 * one panel (panel_width rows) downloaded at a time and its rows gathered. */
static clttt_status append_from_panels(writer *w, const segment *part, checksum *sum, const char *what) {
  const packed_gemm_layout *layout = part->panels;
  const size_t width = layout->panel_width, k = layout->k, panel_floats = width * layout->k_padded;
  if (part->offset != 0 || part->bytes != layout->n * k * sizeof(float))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %zu bytes of a %zu x %zu matrix in panels", what,
                      part->bytes, layout->n, k);
  float *panel = malloc(panel_floats * sizeof *panel), *row = malloc(k * sizeof *row);
  clttt_status status = panel && row ? CLTTT_SUCCESS
                                     : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: a panel of %zu floats", what,
                                                  panel_floats);
  for (size_t p = 0; p < layout->panels && status == CLTTT_SUCCESS; p++) {
    status = runtime_download(part->device, part->buffer, p * panel_floats * sizeof(float),
                              panel_floats * sizeof(float), panel, what);
    const packed_gemm_layout rows = one_panel(layout, p);
    for (size_t lane = 0; lane < rows.n && status == CLTTT_SUCCESS; lane++) {
      for (size_t j = 0; j < k; j++)
        row[j] = panel[packed_gemm_index(&rows, lane, j)];
      status = append(w, row, NULL, NULL, 0, k * sizeof(float), sum, what);
    }
  }
  free(panel);
  free(row);
  return status;
}

/* A section header as `version` lays it out (README, "Session files"). */
static void encode_section_header(uint8_t header[SECTION_HEADER_BYTES], uint32_t version, const section *s,
                                  uint64_t payload_check) {
  memset(header, 0, SECTION_HEADER_BYTES);
  put32(header + 0, s->kind);
  put32(header + 4, s->layer);
  put32(header + 8, 0); /* device: see README, "Session files" */
  put64(header + 16, s->bytes);
  if (version >= 2) {
    put64(header + 24, payload_check);
    put32(header + 12, header_check(version, header, SECTION_HEADER_BYTES));
  } else {
    put32(header + 24, (uint32_t)payload_check);
    put32(header + 28, header_check(version, header, 28));
  }
}

/* A section into the stream, its header zero for now; `header` receives
 * the header to patch in at `header_offset` unless it could be filled in
 * inside the buffer (then `header_offset` is UINT64_MAX). */
static clttt_status write_section(writer *w, const section *s, uint64_t *header_offset,
                                  uint8_t header[SECTION_HEADER_BYTES]) {
  *header_offset = writer_offset(w);
  memset(header, 0, SECTION_HEADER_BYTES);
  CLTTT_TRY(append(w, header, NULL, NULL, 0, SECTION_HEADER_BYTES, NULL, "a section header"));
  checksum_begin(&w->sum);
  for (int i = 0; i < s->part_count; i++) {
    const segment *part = &s->parts[i];
    if (part->bytes > 0 && part->panels)
      CLTTT_TRY(append_from_panels(w, part, &w->sum, section_name(s->kind)));
    else if (part->bytes > 0)
      CLTTT_TRY(append(w, part->host, part->device, part->buffer, part->offset, part->bytes, &w->sum,
                       section_name(s->kind)));
  }
  encode_section_header(header, w->version, s, checksum_end(&w->sum));
  if (*header_offset >= w->flushed) {
    memcpy(w->buffer[w->current] + (*header_offset - w->flushed), header, SECTION_HEADER_BYTES);
    *header_offset = UINT64_MAX;
  }
  return CLTTT_SUCCESS;
}

/* Writes `bytes` at `offset` inside the written (block-padded) file by
 * rewriting the whole blocks around them. */
static clttt_status patch(writer *w, uint64_t offset, const uint8_t *bytes, size_t count, uint8_t *blocks) {
  const uint64_t first = offset / BLOCK_BYTES * BLOCK_BYTES;
  const size_t span = (size_t)((offset + count + BLOCK_BYTES - 1) / BLOCK_BYTES * BLOCK_BYTES - first);
  io_submit(&w->io, blocks, span, first, 0);
  io_wait(&w->io);
  if (w->io.error || w->io.done != span)
    return clttt_fail(CLTTT_ERROR_IO, "reading back '%s' at byte %llu: %s", w->path, (unsigned long long)first,
                      w->io.error ? strerror(w->io.error) : "short read");
  memcpy(blocks + (offset - first), bytes, count);
  io_submit(&w->io, blocks, span, first, 1);
  return writer_idle(w);
}

/* The directory holding `path`, synced so that the rename itself is durable. */
static clttt_status sync_directory(const char *path) {
  char directory[4096];
  const char *slash = strrchr(path, '/');
  if (!slash)
    snprintf(directory, sizeof directory, ".");
  else if (slash == path)
    snprintf(directory, sizeof directory, "/");
  else
    snprintf(directory, sizeof directory, "%.*s", (int)(slash - path), path);
  int fd = open(directory, O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return clttt_fail(CLTTT_ERROR_IO, "opening directory '%s' to sync it: %s", directory, strerror(errno));
  int synced = fsync(fd);
  int error = errno;
  close(fd);
  /* Some file systems cannot sync a directory; they order renames anyway. */
  if (synced != 0 && error != EINVAL && error != ENOTSUP)
    return clttt_fail(CLTTT_ERROR_IO, "syncing directory '%s': %s", directory, strerror(error));
  return CLTTT_SUCCESS;
}

static clttt_status write_sections(writer *w, const section *sections, int count, uint64_t *header_offsets,
                                   uint8_t (*headers)[SECTION_HEADER_BYTES]) {
  uint8_t header[HEADER_BYTES] = {0};
  memcpy(header, MAGIC, 8);
  put32(header + 8, w->version);
  put32(header + 12, HEADER_BYTES);
  put32(header + 16, (uint32_t)count);
  put32(header + 20, 0); /* flags */
  put64(header + 24, file_bytes_of(sections, count));
  put32(header + 32, 1); /* devices the state is split over */
  put32(header + 60, header_check(w->version, header, 60));
  CLTTT_TRY(append(w, header, NULL, NULL, 0, sizeof header, NULL, "the header"));
  test_hook(0);
  for (int i = 0; i < count; i++) {
    CLTTT_TRY(write_section(w, &sections[i], &header_offsets[i], headers[i]));
    test_hook(i + 1);
  }
  const uint64_t length = writer_offset(w);
  const size_t padded = (w->fill + BLOCK_BYTES - 1) / BLOCK_BYTES * BLOCK_BYTES;
  memset(w->buffer[w->current] + w->fill, 0, padded - w->fill);
  if (w->fill > 0)
    CLTTT_TRY(flush(w, padded));
  CLTTT_TRY(writer_idle(w));
  /* The thread is idle: a staging buffer serves as the blocks to patch. */
  for (int i = 0; i < count; i++)
    if (header_offsets[i] != UINT64_MAX)
      CLTTT_TRY(patch(w, header_offsets[i], headers[i], SECTION_HEADER_BYTES, w->buffer[0]));
  if (ftruncate(w->fd, (off_t)length) != 0)
    return clttt_fail(CLTTT_ERROR_IO, "truncating '%s' to %llu bytes: %s", w->path, (unsigned long long)length,
                      strerror(errno));
  if (fsync(w->fd) != 0)
    return clttt_fail(CLTTT_ERROR_IO, "syncing '%s': %s", w->path, strerror(errno));
  return CLTTT_SUCCESS;
}

static clttt_status write_file(writer *w, const section *sections, int count) {
  uint64_t *header_offsets = calloc((size_t)count, sizeof *header_offsets);
  uint8_t(*headers)[SECTION_HEADER_BYTES] = calloc((size_t)count, sizeof *headers);
  clttt_status status = header_offsets && headers
                            ? write_sections(w, sections, count, header_offsets, headers)
                            : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating %d section headers", count);
  free(header_offsets);
  free(headers);
  return status;
}

static layout session_layout(const clttt_session *session) {
  const clttt_config *c = &session->model->config;
  layout l;
  memset(&l, 0, sizeof l);
  l.layers = c->num_hidden_layers;
  l.d = c->hidden_size;
  l.f = c->intermediate_size;
  l.kv_dim = session->model->kv_dim;
  l.ttt_layer_count = config_ttt_layer_count(c);
  l.position = session->position;
  l.pending = session->uses_ttt ? session->ttt.pending : 0;
  l.ttt_state = session->uses_ttt;
  l.params = session->params;
  l.kv_dtype = session->params.kv_type == CLTTT_KV_F16 ? KV_DTYPE_F16 : KV_DTYPE_F32;
  return l;
}

static void *close_descriptor(void *argument) {
  close((int)(intptr_t)argument);
  return NULL;
}

/* Closes a descriptor of the file a save replaced, in a thread of its own:
 * the last reference to a replaced file frees its blocks, which took ext4
 * here 57 ms for 192 MiB, a quarter of the save, inside rename() when
 * nothing else held the file open. The new file is durable before this;
 * only the old one's freeing moves off the caller's time. */
static void release_in_background(int fd) {
  if (fd < 0)
    return;
  pthread_attr_t attributes;
  pthread_t thread;
  int started = 0;
  if (pthread_attr_init(&attributes) == 0) {
    started = pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED) == 0 &&
              pthread_create(&thread, &attributes, close_descriptor, (void *)(intptr_t)fd) == 0;
    pthread_attr_destroy(&attributes);
  }
  if (!started)
    close(fd);
}

clttt_status clttt_session_save(const clttt_session *session, const char *path) {
  if (!session || !path || !path[0])
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_save: NULL argument or empty path");
  if (model_is_slice(session->model))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "clttt_session_save: a session of a model slice holds part of a state");
  const uint32_t version = (uint32_t)session_file_write_version;
  if (version < OLDEST_VERSION || version > FORMAT_VERSION)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_save: format version %u: %d..%d expected",
                      version, OLDEST_VERSION, FORMAT_VERSION);
  uint8_t *model_payload = NULL, params_payload[PARAMS_BYTES];
  size_t model_bytes = 0;
  CLTTT_TRY(model_fingerprint(session->model, version, &model_payload, &model_bytes));
  layout l = session_layout(session);
  l.ttt_layers = model_payload + 4 * FP_FIELDS;
  encode_params(params_payload, &l);
  section *sections = NULL;
  int count = 0;
  clttt_status status = plan_sections(&l, session, model_payload, model_bytes, params_payload, &sections, &count);

  /* Beside the target, so that the rename stays inside one file system. */
  char temporary[4200];
  int written = snprintf(temporary, sizeof temporary, "%s.tmp-XXXXXX", path);
  writer w;
  memset(&w, 0, sizeof w);
  w.path = temporary;
  w.fd = -1;
  w.version = version;
  if (status == CLTTT_SUCCESS && (written < 0 || (size_t)written >= sizeof temporary))
    status = clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "session file path of %zu characters: too long",
                        strlen(path));
  if (status == CLTTT_SUCCESS) {
    w.fd = mkstemp(temporary);
    if (w.fd < 0)
      status = clttt_fail(CLTTT_ERROR_IO, "creating '%s': %s", temporary, strerror(errno));
  }
  if (status == CLTTT_SUCCESS)
    status = writer_open(&w, file_bytes_of(sections, count));
  if (status == CLTTT_SUCCESS)
    status = write_file(&w, sections, count);
  /* The thread is gone before the file is closed. */
  writer_close(&w);
  if (w.fd >= 0 && close(w.fd) != 0 && status == CLTTT_SUCCESS)
    status = clttt_fail(CLTTT_ERROR_IO, "closing '%s': %s", temporary, strerror(errno));
  int replaced = -1;
  if (status == CLTTT_SUCCESS) {
    test_hook(-1);
    replaced = open(path, O_RDONLY | O_CLOEXEC);
    if (rename(temporary, path) != 0)
      status = clttt_fail(CLTTT_ERROR_IO, "renaming '%s' to '%s': %s", temporary, path, strerror(errno));
  }
  if (status != CLTTT_SUCCESS && w.fd >= 0)
    unlink(temporary);
  if (status == CLTTT_SUCCESS) {
    test_hook(-2);
    status = sync_directory(path);
  }
  release_in_background(replaced);
  free(sections);
  free(model_payload);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "saving the session to '%s'", path);
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Reading                                                            */

/* The file is read as one stream of staging-sized blocks through two
 * buffers: the I/O thread reads the next block while this thread checks
 * and uploads the current one. */
typedef struct {
  const char *path;
  int fd;
  uint64_t size;   /* of the file */
  uint64_t offset; /* of the next byte handed out */
  uint32_t section_count;
  uint32_t version;
  checksum sum;
  io_thread io;
  int io_open;
  size_t staging;          /* bytes of each buffer and block */
  uint8_t *buffer[2];
  int current;             /* the buffer holding the block at `block_start` */
  uint64_t block_start;
  size_t block_bytes;      /* 0 until the first block */
  int ahead;               /* the other buffer has a read in flight */
} reader;

static size_t block_length(const reader *r, uint64_t start) {
  return r->size - start < r->staging ? (size_t)(r->size - start) : r->staging;
}

/* Makes the block holding r->offset current and starts reading the one
 * after it. */
static clttt_status next_block(reader *r) {
  const uint64_t start = r->offset / r->staging * r->staging;
  const size_t length = block_length(r, start);
  if (r->ahead && r->io.offset == start) {
    io_wait(&r->io);
    r->current ^= 1;
  } else {
    io_wait(&r->io);
    io_submit(&r->io, r->buffer[r->current], length, start, 0);
    io_wait(&r->io);
  }
  r->ahead = 0;
  if (r->io.error)
    return clttt_fail(CLTTT_ERROR_IO, "reading '%s' at byte %llu: %s", r->path,
                      (unsigned long long)(start + r->io.done), strerror(r->io.error));
  if (r->io.done != length)
    return bad(r->path, "truncated while being read: %zu bytes at byte %llu, %zu expected", r->io.done,
               (unsigned long long)start, length);
  r->block_start = start;
  r->block_bytes = length;
  if (start + length < r->size) {
    io_submit(&r->io, r->buffer[r->current ^ 1], block_length(r, start + length), start + length, 0);
    r->ahead = 1;
  }
  return CLTTT_SUCCESS;
}

/* The next bytes of the stream, at most `bytes` of them (all that are left
 * in the current block): `*data` stays valid until the next call. */
static clttt_status take(reader *r, size_t bytes, const uint8_t **data, size_t *got, const char *what) {
  if (bytes > r->size - r->offset)
    return bad(r->path, "truncated: %s needs %zu bytes at byte %llu, the file has %llu", what, bytes,
               (unsigned long long)r->offset, (unsigned long long)r->size);
  if (r->block_bytes == 0 || r->offset >= r->block_start + r->block_bytes)
    CLTTT_TRY(next_block(r));
  const size_t left = (size_t)(r->block_start + r->block_bytes - r->offset);
  *got = bytes < left ? bytes : left;
  *data = r->buffer[r->current] + (r->offset - r->block_start);
  r->offset += *got;
  return CLTTT_SUCCESS;
}

static clttt_status read_bytes(reader *r, void *data, size_t bytes, const char *what) {
  uint8_t *p = data;
  while (bytes > 0) {
    const uint8_t *piece = NULL;
    size_t got = 0;
    CLTTT_TRY(take(r, bytes, &piece, &got, what));
    memcpy(p, piece, got);
    p += got;
    bytes -= got;
  }
  return CLTTT_SUCCESS;
}

static clttt_status open_reader(reader *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->path = path;
  r->fd = open(path, O_RDONLY);
  if (r->fd < 0)
    return clttt_fail(CLTTT_ERROR_IO, "opening session file '%s': %s", path, strerror(errno));
  struct stat info;
  if (fstat(r->fd, &info) != 0)
    return clttt_fail(CLTTT_ERROR_IO, "reading the size of '%s': %s", path, strerror(errno));
  r->size = (uint64_t)info.st_size;
  uint8_t header[HEADER_BYTES];
  if (r->size < HEADER_BYTES)
    return bad(path, "%llu bytes: too short for the %d-byte header", (unsigned long long)r->size, HEADER_BYTES);
  r->staging = staging_size(r->size);
  for (int i = 0; i < 2; i++)
    if (!(r->buffer[i] = malloc(r->staging)))
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating %zu bytes of staging", r->staging);
  (void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  io_open(&r->io, r->fd);
  r->io_open = 1;
  CLTTT_TRY(read_bytes(r, header, sizeof header, "the header"));
  if (memcmp(header, MAGIC, 8) != 0)
    return bad(path, "not a clttt session file (magic '%.8s', expected '%s')", (const char *)header, MAGIC);
  r->version = get32(header + 8);
  if (r->version < OLDEST_VERSION || r->version > FORMAT_VERSION)
    return bad(path, "format version %u: this version of clttt reads versions %d to %d", r->version,
               OLDEST_VERSION, FORMAT_VERSION);
  if (get32(header + 60) != header_check(r->version, header, 60))
    return bad(path, "header checksum mismatch");
  if (get32(header + 12) != HEADER_BYTES || get32(header + 32) != 1)
    return bad(path, "header of %u bytes for %u devices: %d bytes, 1 device expected", get32(header + 12),
               get32(header + 32), HEADER_BYTES);
  const uint64_t stated = get64(header + 24);
  if (stated != r->size)
    return bad(path, "%s: the header says %llu bytes, the file has %llu", stated > r->size ? "truncated" : "too long",
               (unsigned long long)stated, (unsigned long long)r->size);
  r->section_count = get32(header + 16);
  return checksum_open(&r->sum, r->version);
}

static void close_reader(reader *r) {
  /* The thread is gone before the file is closed or its buffers freed. */
  if (r->io_open)
    io_close(&r->io);
  r->io_open = 0;
  if (r->fd >= 0)
    close(r->fd);
  checksum_close(&r->sum);
  free(r->buffer[0]);
  free(r->buffer[1]);
  r->fd = -1;
  r->buffer[0] = r->buffer[1] = NULL;
}

/* Reads section `index`'s header and checks it is `expected` (kind, layer,
 * and size unless `bytes_limit` is nonzero: then any size up to it). */
static clttt_status read_section_header(reader *r, int index, const section *expected, uint64_t bytes_limit,
                                        uint64_t *bytes, uint64_t *check) {
  uint8_t header[SECTION_HEADER_BYTES];
  char what[64];
  snprintf(what, sizeof what, "section %d (%s)", index, section_name(expected->kind));
  CLTTT_TRY(read_bytes(r, header, sizeof header, what));
  uint32_t stated_check = 0, actual_check = 0;
  if (r->version >= 2) {
    stated_check = get32(header + 12);
    put32(header + 12, 0);
    actual_check = header_check(r->version, header, SECTION_HEADER_BYTES);
    *check = get64(header + 24);
  } else {
    stated_check = get32(header + 28);
    actual_check = header_check(r->version, header, 28);
    *check = get32(header + 24);
  }
  if (stated_check != actual_check)
    return bad(r->path, "%s: header checksum mismatch", what);
  const uint32_t kind = get32(header), layer = get32(header + 4);
  if (kind != expected->kind || layer != expected->layer)
    return bad(r->path, "section %d is %s of layer %d, expected %s of layer %d", index, section_name(kind),
               (int)layer, section_name(expected->kind), (int)expected->layer);
  if (get32(header + 8) != 0)
    return bad(r->path, "%s belongs to device %u of a split: this version reads single-device files", what,
               get32(header + 8));
  *bytes = get64(header + 16);
  if (bytes_limit ? *bytes > bytes_limit : *bytes != expected->bytes)
    return bad(r->path, "%s of %llu bytes: %s %llu", what, (unsigned long long)*bytes,
               bytes_limit ? "at most" : "the state it describes has", (unsigned long long)(bytes_limit ? bytes_limit : expected->bytes));
  if (*bytes > r->size - r->offset)
    return bad(r->path, "truncated: %s of %llu bytes at byte %llu, the file has %llu", what,
               (unsigned long long)*bytes, (unsigned long long)r->offset, (unsigned long long)r->size);
  return CLTTT_SUCCESS;
}

/* Row-major rows from the file into n x k fp32 panels (segment.panels):
 * one panel's rows gathered, packed into the panel (packed_gemm_pack: its
 * padding lanes zero) and uploaded at a time. */
static clttt_status read_into_panels(reader *r, const segment *part, const char *what) {
  const packed_gemm_layout *layout = part->panels;
  const size_t width = layout->panel_width, k = layout->k, panel_floats = width * layout->k_padded;
  if (part->offset != 0 || part->bytes != layout->n * k * sizeof(float))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %zu bytes of a %zu x %zu matrix in panels", what,
                      part->bytes, layout->n, k);
  float *panel = malloc(panel_floats * sizeof *panel), *rows = malloc(width * k * sizeof *rows);
  clttt_status status = panel && rows ? CLTTT_SUCCESS
                                      : clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: a panel of %zu floats",
                                                   what, panel_floats);
  for (size_t p = 0; p < layout->panels && status == CLTTT_SUCCESS; p++) {
    const packed_gemm_layout one = one_panel(layout, p);
    const size_t valid = one.n;
    uint8_t *target = (uint8_t *)rows;
    for (size_t done = 0; done < valid * k * sizeof(float) && status == CLTTT_SUCCESS;) {
      const uint8_t *piece = NULL;
      size_t got = 0;
      status = take(r, valid * k * sizeof(float) - done, &piece, &got, what);
      if (status == CLTTT_SUCCESS) {
        checksum_add(&r->sum, piece, got);
        memcpy(target + done, piece, got);
        done += got;
      }
    }
    if (status == CLTTT_SUCCESS)
      status = packed_gemm_pack(&one, panel, 0, valid, rows, PACKED_GEMM_F32, k);
    if (status == CLTTT_SUCCESS)
      status = runtime_upload(part->device, part->buffer, p * panel_floats * sizeof(float),
                              panel_floats * sizeof(float), panel, what);
  }
  free(panel);
  free(rows);
  return status;
}

/* A section's payload into its parts (device buffers, host memory, or
 * nowhere), its checksum compared at the end. */
static clttt_status read_payload(reader *r, int index, const section *s, uint64_t expected_check) {
  char what[64];
  snprintf(what, sizeof what, "section %d (%s)", index, section_name(s->kind));
  checksum_begin(&r->sum);
  for (int i = 0; i < s->part_count; i++) {
    const segment *part = &s->parts[i];
    if (part->panels && part->buffer) {
      CLTTT_TRY(read_into_panels(r, part, what));
      continue;
    }
    for (size_t done = 0; done < part->bytes;) {
      const uint8_t *piece = NULL;
      size_t got = 0;
      CLTTT_TRY(take(r, part->bytes - done, &piece, &got, what));
      checksum_add(&r->sum, piece, got);
      if (part->host)
        memcpy((uint8_t *)part->host + done, piece, got);
      else if (part->buffer)
        CLTTT_TRY(runtime_upload(part->device, part->buffer, part->offset + done, got, piece, what));
      done += got;
    }
  }
  const uint64_t actual = checksum_end(&r->sum);
  if (actual != expected_check)
    return bad(r->path, "%s: checksum mismatch (%s %0*llx, the file says %0*llx)", what,
               r->version >= 2 ? "XXH3-64" : "crc32", r->version >= 2 ? 16 : 8, (unsigned long long)actual,
               r->version >= 2 ? 16 : 8, (unsigned long long)expected_check);
  return CLTTT_SUCCESS;
}

/* Header, MODEL and PARAMS: everything a file's sizes follow from. The
 * MODEL payload (malloc'ed) stays with the caller; the layout points into it. */
static clttt_status read_preamble(reader *r, const char *path, uint8_t **model, size_t *model_bytes,
                                  uint8_t *params, layout *l) {
  CLTTT_TRY(open_reader(r, path));
  uint64_t bytes = 0, crc = 0;
  section expected = {.kind = SECTION_MODEL, .layer = NO_LAYER};
  CLTTT_TRY(read_section_header(r, 0, &expected, 4 * ((uint64_t)FP_FIELDS + MAX_LAYERS), &bytes, &crc));
  *model_bytes = (size_t)bytes;
  *model = malloc(*model_bytes ? *model_bytes : 1);
  if (!*model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the MODEL section");
  add_part(&expected, NULL, NULL, *model, *model_bytes);
  CLTTT_TRY(read_payload(r, 0, &expected, crc));
  section params_section = {.kind = SECTION_PARAMS, .layer = NO_LAYER};
  add_part(&params_section, NULL, NULL, params, PARAMS_BYTES);
  CLTTT_TRY(read_section_header(r, 1, &params_section, 0, &bytes, &crc));
  CLTTT_TRY(read_payload(r, 1, &params_section, crc));
  CLTTT_TRY(decode_layout(path, *model, *model_bytes, params, l));
  if (r->section_count != (uint32_t)section_count_of(l))
    return bad(path, "%u sections; its model and parameters imply %d", r->section_count, section_count_of(l));
  return CLTTT_SUCCESS;
}

/* The sum of the sizes a layout implies against the file's length. */
static clttt_status check_size(const reader *r, const layout *l, const section *sections, int count) {
  const uint64_t needed = file_bytes_of(sections, count);
  if (needed != r->size)
    return bad(r->path, "position %d with %d pending TTT rows needs %llu bytes, the file has %llu", l->position,
               l->pending, (unsigned long long)needed, (unsigned long long)r->size);
  return CLTTT_SUCCESS;
}

/* Sections 2.. of `sections` from the file, each checked. */
static clttt_status read_state(reader *r, const layout *l, const section *sections, int count) {
  CLTTT_TRY(check_size(r, l, sections, count));
  for (int i = 2; i < count; i++) {
    uint64_t bytes = 0, crc = 0;
    CLTTT_TRY(read_section_header(r, i, &sections[i], 0, &bytes, &crc));
    CLTTT_TRY(read_payload(r, i, &sections[i], crc));
  }
  return CLTTT_SUCCESS;
}

static clttt_status load(clttt_session **out, clttt_model *model, const char *path, int context, reader *r) {
  uint8_t *saved = NULL, *here = NULL, params[PARAMS_BYTES];
  size_t saved_bytes = 0, here_bytes = 0;
  layout l;
  section *sections = NULL;
  int count = 0;
  clttt_session *session = NULL;
  clttt_status status = read_preamble(r, path, &saved, &saved_bytes, params, &l);
  if (status == CLTTT_SUCCESS && context > 0) {
    /* Only the KV buffers' size follows the context; no section does. */
    if (context < l.position || context > MAX_CONTEXT)
      status = clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a context of %d tokens for a session saved at position %d",
                          context, l.position);
    l.params.context = context;
  }
  if (status == CLTTT_SUCCESS)
    status = model_fingerprint(model, r->version, &here, &here_bytes);
  if (status == CLTTT_SUCCESS && here_bytes != saved_bytes)
    status = bad(path, "saved from another model: %zu TTT layers in the file, %zu in this model",
                 (saved_bytes - 4 * FP_FIELDS) / 4, (here_bytes - 4 * FP_FIELDS) / 4);
  if (status == CLTTT_SUCCESS)
    status = compare_fingerprints(path, saved, saved_bytes, here, here_bytes);
  /* Sizes checked against the file before the session is allocated. */
  if (status == CLTTT_SUCCESS)
    status = plan_sections(&l, NULL, NULL, saved_bytes, NULL, &sections, &count);
  if (status == CLTTT_SUCCESS)
    status = check_size(r, &l, sections, count);
  free(sections);
  sections = NULL;
  if (status == CLTTT_SUCCESS)
    status = session_create_resolved(&session, model, &l.params);
  if (status == CLTTT_SUCCESS && session->uses_ttt != l.ttt_state)
    status = bad(path, "TTT state flag %d, but a session of these parameters has %d", l.ttt_state,
                 session->uses_ttt);
  if (status == CLTTT_SUCCESS)
    status = session_reserve_history(session, l.position);
  if (status == CLTTT_SUCCESS)
    status = plan_sections(&l, session, NULL, saved_bytes, NULL, &sections, &count);
  if (status == CLTTT_SUCCESS)
    status = read_state(r, &l, sections, count);
  if (status == CLTTT_SUCCESS)
    status = session_finish(session);
  if (status == CLTTT_SUCCESS) {
    session->position = l.position;
    if (session->uses_ttt)
      session->ttt.pending = l.pending;
    *out = session;
  } else {
    clttt_session_free(session);
  }
  free(sections);
  free(saved);
  free(here);
  return status;
}

clttt_status clttt_session_load(clttt_session **session, clttt_model *model, const char *path, int context) {
  if (!session || !model || !path || context < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_load: NULL argument or negative context");
  *session = NULL;
  if (model_is_slice(model))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "clttt_session_load: a model slice holds part of a state");
  reader r = {.fd = -1};
  clttt_status status = load(session, model, path, context, &r);
  close_reader(&r);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "loading a session");
  return CLTTT_SUCCESS;
}

clttt_status clttt_session_read_info(const char *path, clttt_session_file_info *info) {
  if (!path || !info)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_read_info: NULL argument");
  memset(info, 0, sizeof *info);
  reader r = {.fd = -1};
  uint8_t *model = NULL, params[PARAMS_BYTES];
  size_t model_bytes = 0;
  layout l;
  section *sections = NULL;
  int count = 0;
  clttt_status status = read_preamble(&r, path, &model, &model_bytes, params, &l);
  if (status == CLTTT_SUCCESS)
    status = plan_sections(&l, NULL, NULL, model_bytes, NULL, &sections, &count);
  if (status == CLTTT_SUCCESS)
    status = read_state(&r, &l, sections, count);
  if (status == CLTTT_SUCCESS) {
    info->version = (int)r.version;
    info->file_bytes = r.size;
    info->section_count = count;
    for (int i = 2; i < count; i++)
      info->state_bytes += sections[i].bytes;
    info->position = l.position;
    info->pending = l.pending;
    info->ttt_state = l.ttt_state;
    info->params = l.params;
    info->kv_dtype = (int)l.kv_dtype;
#define FIELD(f) ((int)get32(model + 4 * (f)))
    info->arch = (clttt_arch)FIELD(FP_ARCH);
    info->hidden_size = FIELD(FP_HIDDEN);
    info->intermediate_size = FIELD(FP_INTERMEDIATE);
    info->num_hidden_layers = FIELD(FP_LAYERS);
    info->num_attention_heads = FIELD(FP_HEADS);
    info->num_key_value_heads = FIELD(FP_KV_HEADS);
    info->head_dim = FIELD(FP_HEAD_DIM);
    info->vocab_size = FIELD(FP_VOCAB);
    info->max_position_embeddings = FIELD(FP_MAX_POSITIONS);
    info->ttt_mode = FIELD(FP_TTT_MODE);
    info->ttt_chunk = FIELD(FP_TTT_CHUNK);
    info->ttt_proj = FIELD(FP_TTT_PROJ);
    info->ttt_target = (clttt_ttt_target)FIELD(FP_TTT_TARGET);
#undef FIELD
    info->ttt_lr = bits_float(get32(model + 4 * FP_TTT_LR));
    info->ttt_layer_count = l.ttt_layer_count;
    for (int t = 0; t < l.ttt_layer_count && t < CLTTT_SESSION_INFO_TTT_LAYERS; t++)
      info->ttt_layers[t] = (int)get32(l.ttt_layers + 4 * t);
    info->weight_bytes = (uint64_t)get32(model + 4 * FP_WEIGHT_BYTES_LOW) |
                         (uint64_t)get32(model + 4 * FP_WEIGHT_BYTES_HIGH) << 32;
    info->weights_hash = r.version >= 2 ? (uint64_t)get32(model + 4 * FP_WEIGHTS_HASH_HIGH) << 32 |
                                              get32(model + 4 * FP_WEIGHTS_HASH_LOW)
                                        : (uint64_t)get32(model + 4 * FP_WEIGHTS_HASH_LOW) << 32 |
                                              get32(model + 4 * FP_WEIGHTS_HASH_HIGH);
  }
  free(sections);
  free(model);
  close_reader(&r);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "reading a session file");
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Fork                                                               */

clttt_status clttt_session_fork(clttt_session **out, const clttt_session *source) {
  if (!out || !source)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_session_fork: NULL argument");
  *out = NULL;
  if (model_is_slice(source->model))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "clttt_session_fork: a session of a model slice");
  clttt_model *model = source->model;
  const size_t F = sizeof(float), d = (size_t)model->config.hidden_size, f = (size_t)model->config.intermediate_size;
  clttt_session *copy = NULL;
  clttt_status status = session_create_resolved(&copy, model, &source->params);
  if (status == CLTTT_SUCCESS)
    status = session_reserve_history(copy, source->position);
  const size_t kv_element = source->params.kv_type == CLTTT_KV_F16 ? 2 : sizeof(float);
  const size_t kv_bytes = (size_t)source->position * (size_t)model->kv_dim * kv_element;
  for (int i = 0; i < model->config.num_hidden_layers && status == CLTTT_SUCCESS; i++) {
    const clttt_device *device = layer_device(model, i);
    status = runtime_copy(device, copy->k_cache[i], 0, source->k_cache[i], 0, kv_bytes, "K cache rows");
    if (status == CLTTT_SUCCESS)
      status = runtime_copy(device, copy->v_cache[i], 0, source->v_cache[i], 0, kv_bytes, "V cache rows");
  }
  const size_t pending = source->uses_ttt ? (size_t)source->ttt.pending : 0;
  for (int i = 0; source->uses_ttt && i < source->ttt.layer_count && status == CLTTT_SUCCESS; i++) {
    const ttt_layer_state *from = &source->ttt.layers[i];
    ttt_layer_state *to = &copy->ttt.layers[i];
    if (!from->fast_weight)
      continue;
    const clttt_device *device = layer_device(model, i);
    status = runtime_copy(device, to->fast_weight, 0, from->fast_weight, 0, d * f * F, "TTT fast weight");
    if (status == CLTTT_SUCCESS)
      status = runtime_copy(device, to->pending_h, 0, from->pending_h, 0, pending * f * F, "TTT pending h rows");
    if (status == CLTTT_SUCCESS)
      status = runtime_copy(device, to->pending_t, 0, from->pending_t, 0, pending * d * F, "TTT pending t rows");
  }
  if (status == CLTTT_SUCCESS)
    status = session_finish(copy);
  if (status != CLTTT_SUCCESS) {
    clttt_session_free(copy);
    return clttt_fail_context(status, "forking a session at position %d", source->position);
  }
  if (source->position > 0)
    memcpy(copy->history, source->history, (size_t)source->position * sizeof *copy->history);
  copy->position = source->position;
  if (copy->uses_ttt)
    copy->ttt.pending = source->ttt.pending;
  *out = copy;
  return CLTTT_SUCCESS;
}
