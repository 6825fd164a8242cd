/* Weights: a checkpoint (or any tensor source) read tensor by tensor into
 * device buffers, q/k/v and gate/up stacked so that one GEMM computes each
 * group. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "rope.h"
#include "weights.h"

typedef struct {
  clttt_model *model;
  clttt_device *device;  /* of the part being loaded */
  int part;
  const tensor_source *source;
  float *scratch;        /* one tensor converted to fp32, when it is stored otherwise */
  size_t scratch_floats; /* its capacity, grown to the largest such tensor so far */
  int check_weights;     /* refuse non-finite values */
} loader;

/* Points `data` at tensor `name` of `shape` (count elements) as the source
 * stores it. */
static clttt_status read_tensor(loader *load, const char *name, const int64_t *shape, int ndim, size_t count,
                                tensor_data *data) {
  CLTTT_TRY(load->source->read(load->source->context, name, shape, ndim, data));
  for (size_t i = 0; load->check_weights && i < count; i++) {
    float value = packed_gemm_element(data->type, data->data, i);
    if (!isfinite(value))
      return clttt_fail(CLTTT_ERROR_NOT_FINITE, "tensor %s: element %zu of %zu is %g", name, i, count,
                        (double)value);
  }
  return CLTTT_SUCCESS;
}

/* Tensor `name` as fp32: the source's own elements when it stores fp32,
 * else a conversion in the staging buffer, which grows to fit. */
static clttt_status read_floats(loader *load, const char *name, const int64_t *shape, int ndim, size_t count,
                                const float **floats) {
  tensor_data data;
  CLTTT_TRY(read_tensor(load, name, shape, ndim, count, &data));
  if (data.type == PACKED_GEMM_F32 && ((uintptr_t)data.data % sizeof(float)) == 0) {
    *floats = data.data;
    return CLTTT_SUCCESS;
  }
  if (count > load->scratch_floats) {
    float *grown = realloc(load->scratch, count * sizeof(float));
    if (!grown)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "converting tensor %s to fp32 (%zu bytes)", name,
                        count * sizeof(float));
    load->scratch = grown;
    load->scratch_floats = count;
  }
  for (size_t i = 0; i < count; i++)
    load->scratch[i] = packed_gemm_element(data.type, data.data, i);
  *floats = load->scratch;
  return CLTTT_SUCCESS;
}

/* Reads tensor `name` (rows x columns, or a vector when columns == 0) into
 * the fp32 `buffer` at `offset_floats`. */
static clttt_status load_into(loader *load, const char *name, int64_t rows, int64_t columns,
                              cl_mem buffer, size_t offset_floats) {
  int64_t shape[2] = {rows, columns};
  int ndim = columns ? 2 : 1;
  size_t count = (size_t)rows * (size_t)(columns ? columns : 1);
  const float *floats = NULL;
  CLTTT_TRY(read_floats(load, name, shape, ndim, count, &floats));
  return runtime_upload(load->device, buffer, offset_floats * sizeof(float), count * sizeof(float), floats, name);
}

/* Counts `bytes` of weights on the part being loaded. */
static void count_weight(loader *load, uint64_t bytes) {
  load->model->weight_bytes += bytes;
  load->model->parts[load->part].weight_bytes += bytes;
}

static clttt_status allocate_weight(loader *load, size_t bytes, const char *what, cl_mem *buffer) {
  count_weight(load, bytes);
  return runtime_alloc(load->device, bytes, what, buffer);
}

/* An fp32 matrix or vector tensor of one layer into its own buffer. */
static clttt_status load_tensor(loader *load, const char *name, int64_t rows, int64_t columns,
                                cl_mem *buffer) {
  CLTTT_TRY(allocate_weight(load, (size_t)rows * (size_t)(columns ? columns : 1) * sizeof(float), name, buffer));
  return load_into(load, name, rows, columns, *buffer, 0);
}

/* How a linear weight of the model's type is laid out: our GEMM's panels
 * when `pack` (the device's choice for fp32) or when the type is 16-bit,
 * else row-major. `pack` = -1 asks for row-major in any type. */
static clttt_status linear_layout(const clttt_device *device, packed_gemm_type type, int pack, size_t n, size_t k,
                                  packed_gemm_layout *layout, int *packed) {
  *packed = pack > 0 || (pack == 0 && type != PACKED_GEMM_F32);
  if (*packed)
    return packed_gemm_layout_for(&device->tuning.gemm, type, n, k, layout);
  return packed_gemm_row_major_layout(type, n, k, layout);
}


/* The weight of a linear product, from one or several tensors stacked
 * row-wise (q, k, v; gate, up), each `columns` wide. fp32 row-major goes
 * up tensor by tensor; every other layout is written by packed_gemm_pack
 * straight from the source's elements into the mapped device buffer (on a
 * CPU device that is the buffer's own memory), so no host copy of the
 * weight exists beside the source and the device. */
static clttt_status load_linear(loader *load, const char *const *names, const int64_t *rows, int count,
                                int64_t columns, int pack, linear_weight *weight) {
  clttt_model *model = load->model;
  size_t total_rows = 0;
  for (int i = 0; i < count; i++)
    total_rows += (size_t)rows[i];
  weight->out_features = total_rows;
  weight->in_features = (size_t)columns;
  CLTTT_TRY(linear_layout(load->device, model->weight_type, pack, total_rows, (size_t)columns, &weight->layout,
                          &weight->packed));
  const size_t bytes = packed_gemm_bytes(&weight->layout);
  CLTTT_TRY(allocate_weight(load, bytes, names[0], &weight->buffer));
  if (!weight->packed && weight->layout.type == PACKED_GEMM_F32) {
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
      CLTTT_TRY(load_into(load, names[i], rows[i], columns, weight->buffer, offset));
      offset += (size_t)rows[i] * (size_t)columns;
    }
    return CLTTT_SUCCESS;
  }
  void *mapped = NULL;
  CLTTT_TRY(runtime_map_for_writing(load->device, weight->buffer, bytes, names[0], &mapped));
  clttt_status status = CLTTT_SUCCESS;
  size_t row0 = 0;
  for (int i = 0; i < count && status == CLTTT_SUCCESS; i++) {
    int64_t shape[2] = {rows[i], columns};
    tensor_data data;
    status = read_tensor(load, names[i], shape, 2, (size_t)rows[i] * (size_t)columns, &data);
    if (status == CLTTT_SUCCESS)
      status = packed_gemm_pack(&weight->layout, mapped, row0, (size_t)rows[i], data.data, data.type,
                                (size_t)columns);
    row0 += (size_t)rows[i];
  }
  clttt_status unmapped = runtime_unmap(load->device, weight->buffer, mapped, names[0]);
  return status != CLTTT_SUCCESS ? status : unmapped;
}

/* One layer's stacked linear weight `prefix.{names}.weight`. */
static clttt_status load_stacked_linear(loader *load, const char *prefix, const char *const *names,
                                        const int64_t *rows, int count, int64_t columns, int pack,
                                        linear_weight *weight) {
  char full[3][256];
  const char *full_names[3];
  for (int i = 0; i < count && i < 3; i++) {
    snprintf(full[i], sizeof full[i], "%s.%s.weight", prefix, names[i]);
    full_names[i] = full[i];
  }
  return load_linear(load, full_names, rows, count, columns, pack, weight);
}

/* Several fp32 vectors stacked into one buffer (q, k, v; gate, up biases). */
static clttt_status load_stacked(loader *load, const char *prefix, const char *const *names,
                                 const int64_t *rows, int count, const char *suffix, cl_mem *buffer) {
  size_t total_rows = 0;
  for (int i = 0; i < count; i++)
    total_rows += (size_t)rows[i];
  char name[256];
  snprintf(name, sizeof name, "%s.{stacked}.%s", prefix, suffix);
  CLTTT_TRY(allocate_weight(load, total_rows * sizeof(float), name, buffer));
  size_t offset = 0;
  for (int i = 0; i < count; i++) {
    snprintf(name, sizeof name, "%s.%s.%s", prefix, names[i], suffix);
    CLTTT_TRY(load_into(load, name, rows[i], 0, *buffer, offset));
    offset += (size_t)rows[i];
  }
  return CLTTT_SUCCESS;
}

/* A TTT layer's ttt_proj P (d x d, always fp32), used as V = tc P:
 * row-major for CLBlast's NN product, or, where the device runs its fp32
 * weight products through our GEMM (GEMM_PACKED), P^T packed like a weight,
 * the product then being tc (P^T)^T. The transpose needs one d x d host
 * buffer while it is packed. */
static clttt_status load_projection(loader *load, const char *name, int64_t d, layer_weights *layer) {
  clttt_device *device = load->device;
  layer->ttt_proj_packed = device->tuning.gemm_packed != 0;
  if (!layer->ttt_proj_packed)
    return load_tensor(load, name, d, d, &layer->ttt_proj);
  const size_t n = (size_t)d;
  int64_t shape[2] = {d, d};
  const float *p = NULL;
  CLTTT_TRY(read_floats(load, name, shape, 2, n * n, &p));
  float *transposed = malloc(n * n * sizeof *transposed);
  if (!transposed)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "transposing tensor %s (%zu bytes)", name, n * n * sizeof(float));
  for (size_t c = 0; c < n; c++)
    for (size_t e = 0; e < n; e++)
      transposed[e * n + c] = p[c * n + e];
  clttt_status status = packed_gemm_layout_for(&device->tuning.gemm, PACKED_GEMM_F32, n, n, &layer->ttt_proj_layout);
  const size_t bytes = packed_gemm_bytes(&layer->ttt_proj_layout);
  if (status == CLTTT_SUCCESS)
    status = allocate_weight(load, bytes, name, &layer->ttt_proj);
  void *mapped = NULL;
  if (status == CLTTT_SUCCESS)
    status = runtime_map_for_writing(device, layer->ttt_proj, bytes, name, &mapped);
  if (status == CLTTT_SUCCESS)
    status = packed_gemm_pack(&layer->ttt_proj_layout, mapped, 0, n, transposed, PACKED_GEMM_F32, n);
  if (mapped) {
    clttt_status unmapped = runtime_unmap(device, layer->ttt_proj, mapped, name);
    if (status == CLTTT_SUCCESS)
      status = unmapped;
  }
  free(transposed);
  return status;
}

static clttt_status load_layer(loader *load, int index) {
  clttt_model *model = load->model;
  const clttt_config *config = &model->config;
  layer_weights *layer = &model->layers[index];
  const int64_t d = config->hidden_size, f = config->intermediate_size;
  char prefix[128], name[256];
  snprintf(prefix, sizeof prefix, "model.layers.%d", index);

#define LAYER_TENSOR(suffix, rows, columns, field)                  \
  do {                                                              \
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);           \
    CLTTT_TRY(load_tensor(load, name, rows, columns, &layer->field)); \
  } while (0)

  LAYER_TENSOR("input_layernorm.weight", d, 0, input_norm);
  LAYER_TENSOR("post_attention_layernorm.weight", d, 0, post_norm);

  char attention_prefix[160];
  snprintf(attention_prefix, sizeof attention_prefix, "%s.self_attn", prefix);
  static const char *const qkv_names[] = {"q_proj", "k_proj", "v_proj"};
  const int64_t qkv_rows[] = {model->q_dim, model->kv_dim, model->kv_dim};
  const int pack = load->device->tuning.gemm_packed ? 1 : 0;
  CLTTT_TRY(load_stacked_linear(load, attention_prefix, qkv_names, qkv_rows, 3, d, pack, &layer->qkv));
  static const char *const o_names[] = {"o_proj"};
  const int64_t o_rows[] = {d};
  CLTTT_TRY(load_stacked_linear(load, attention_prefix, o_names, o_rows, 1, model->q_dim, pack, &layer->o));
  if (config->attention_bias) {
    CLTTT_TRY(load_stacked(load, attention_prefix, qkv_names, qkv_rows, 3, "bias", &layer->qkv_bias));
    LAYER_TENSOR("self_attn.o_proj.bias", d, 0, o_bias);
  }
  if (config->arch == CLTTT_ARCH_QWEN3) {
    LAYER_TENSOR("self_attn.q_norm.weight", config->head_dim, 0, q_norm);
    LAYER_TENSOR("self_attn.k_norm.weight", config->head_dim, 0, k_norm);
  }

  char mlp_prefix[160];
  snprintf(mlp_prefix, sizeof mlp_prefix, "%s.mlp", prefix);
  static const char *const gate_up_names[] = {"gate_proj", "up_proj"};
  const int64_t gate_up_rows[] = {f, f};
  CLTTT_TRY(load_stacked_linear(load, mlp_prefix, gate_up_names, gate_up_rows, 2, d, pack, &layer->gate_up));
  /* A TTT layer's W_down is laid out like every other weight, so that our
   * GEMM runs it with TTT off (row-major fp32 sent it through CLBlast, at
   * about a quarter of the packed GEMM's speed on PoCL); the fast weight
   * starts as its row-major fp32 copy, unpacked from the panels (ttt.c). */
  layer->is_ttt = config->ttt_mode && clttt_config_is_ttt_layer(config, index);
  static const char *const down_names[] = {"down_proj"};
  const int64_t down_rows[] = {d};
  CLTTT_TRY(load_stacked_linear(load, mlp_prefix, down_names, down_rows, 1, f, pack, &layer->down));
  if (config->mlp_bias) {
    CLTTT_TRY(load_stacked(load, mlp_prefix, gate_up_names, gate_up_rows, 2, "bias", &layer->gate_up_bias));
    LAYER_TENSOR("mlp.down_proj.bias", d, 0, down_bias);
  }

  if (layer->is_ttt) {
    /* ttt_conv is stored as Conv1d's d x 1 x 5. */
    snprintf(name, sizeof name, "%s.mlp.ttt_conv.weight", prefix);
    int64_t conv_shape[3] = {d, 1, 5};
    const float *conv = NULL;
    CLTTT_TRY(allocate_weight(load, (size_t)d * 5 * sizeof(float), name, &layer->ttt_conv));
    CLTTT_TRY(read_floats(load, name, conv_shape, 3, (size_t)d * 5, &conv));
    CLTTT_TRY(runtime_upload(load->device, layer->ttt_conv, 0, (size_t)d * 5 * sizeof(float), conv, name));
    if (config->ttt_proj) {
      snprintf(name, sizeof name, "%s.mlp.ttt_proj.weight", prefix);
      CLTTT_TRY(load_projection(load, name, d, layer));
    }
  }
#undef LAYER_TENSOR
  return CLTTT_SUCCESS;
}

static clttt_status check_supported(const clttt_config *config) {
  if (config->head_dim % 2 != 0 || config->head_dim > 512)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "head_dim %d: even sizes up to 512 are supported",
                      config->head_dim);
  if (config->ttt_mode && (config->ttt_chunk < 1 || !(config->ttt_lr == config->ttt_lr)))
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "ttt_chunk %d / ttt_lr %g: invalid", config->ttt_chunk,
                      (double)config->ttt_lr);
  return CLTTT_SUCCESS;
}

clttt_model_params clttt_model_default_params(void) {
  clttt_model_params params;
  memset(&params, 0, sizeof params);
  params.weights = CLTTT_WEIGHTS_AUTO;
  params.split_kv_type = CLTTT_KV_F16;
  return params;
}

const char *clttt_weight_type_name(clttt_weight_type type) {
  switch (type) {
    case CLTTT_WEIGHTS_AUTO: return "auto";
    case CLTTT_WEIGHTS_F32: return "f32";
    case CLTTT_WEIGHTS_F16: return "f16";
    case CLTTT_WEIGHTS_BF16: return "bf16";
  }
  return "unknown";
}

clttt_status clttt_weight_type_parse(const char *name, clttt_weight_type *type) {
  static const clttt_weight_type types[] = {CLTTT_WEIGHTS_AUTO, CLTTT_WEIGHTS_F32, CLTTT_WEIGHTS_F16,
                                            CLTTT_WEIGHTS_BF16};
  for (size_t i = 0; name && type && i < sizeof types / sizeof types[0]; i++)
    if (strcmp(name, clttt_weight_type_name(types[i])) == 0) {
      *type = types[i];
      return CLTTT_SUCCESS;
    }
  return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "weight type '%s': expected auto, f32, f16 or bf16",
                    name ? name : "(null)");
}

static clttt_weight_type public_type(packed_gemm_type type) {
  return type == PACKED_GEMM_F32 ? CLTTT_WEIGHTS_F32 : type == PACKED_GEMM_BF16 ? CLTTT_WEIGHTS_BF16 : CLTTT_WEIGHTS_F16;
}

clttt_status weights_resolve_type(clttt_weight_type requested, const tensor_source *source, packed_gemm_type *type) {
  int stored = source ? source->stored_type(source->context, "model.embed_tokens.weight") : -1;
  if (requested != CLTTT_WEIGHTS_AUTO && requested != CLTTT_WEIGHTS_F32 && requested != CLTTT_WEIGHTS_F16 &&
      requested != CLTTT_WEIGHTS_BF16)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "weight type %d: expected auto, f32, f16 or bf16",
                      (int)requested);
  if (requested == CLTTT_WEIGHTS_AUTO)
    *type = stored < 0 ? PACKED_GEMM_F32 : (packed_gemm_type)stored;
  else
    *type = weights_element_type(requested);
  /* Widening to fp32 is exact; any other change of type rounds. */
  if (stored >= 0 && *type != (packed_gemm_type)stored && *type != PACKED_GEMM_F32)
    log_warning("weights stored as %s are converted to %s on the device: the logits will differ from the "
                "checkpoint's own", clttt_weight_type_name(public_type((packed_gemm_type)stored)), clttt_weight_type_name(public_type(*type)));
  return CLTTT_SUCCESS;
}

/* The bytes one linear weight takes, as linear_layout lays it out; an
 * oversized one counts unpadded (its load fails with a message anyway). */
static uint64_t linear_bytes(const clttt_device *device, packed_gemm_type type, int pack, uint64_t n, uint64_t k) {
  packed_gemm_layout layout;
  int packed = 0;
  if (device && linear_layout(device, type, pack, (size_t)n, (size_t)k, &layout, &packed) == CLTTT_SUCCESS)
    return packed_gemm_bytes(&layout);
  return n * k * packed_gemm_element_size(type);
}

/* Adds one buffer of `bytes` to the total, keeping the largest. */
static void count_buffer(uint64_t bytes, uint64_t *total, uint64_t *largest) {
  *total += bytes;
  if (bytes > *largest)
    *largest = bytes;
}

uint64_t weights_part_bytes(const clttt_config *config, packed_gemm_type type, const clttt_device *device,
                            int first_layer, int layer_count, int has_embedding, int has_head,
                            int head_beside_embedding, uint64_t *largest_buffer) {
  const uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
  const uint64_t q_dim = (uint64_t)config_q_dim(config), kv_dim = (uint64_t)config_kv_dim(config);
  const int pack = device && device->tuning.gemm_packed ? 1 : 0;
  uint64_t floats = 0, bytes = 0, largest = 0;
  int ttt_layers = 0;
  for (int i = first_layer; i < first_layer + layer_count; i++) {
    const int is_ttt = config->ttt_mode && clttt_config_is_ttt_layer(config, i);
    floats += 2 * d; /* the two norms */
    count_buffer(linear_bytes(device, type, pack, q_dim + 2 * kv_dim, d), &bytes, &largest);
    count_buffer(linear_bytes(device, type, pack, d, q_dim), &bytes, &largest);
    count_buffer(linear_bytes(device, type, pack, 2 * f, d), &bytes, &largest);
    count_buffer(linear_bytes(device, type, pack, d, f), &bytes, &largest);
    if (config->attention_bias)
      floats += q_dim + 2 * kv_dim + d;
    if (config->mlp_bias)
      floats += 2 * f + d;
    if (config->arch == CLTTT_ARCH_QWEN3)
      floats += 2 * (uint64_t)config->head_dim;
    if (is_ttt)
      floats += 5 * d;
    if (is_ttt && config->ttt_proj) /* fp32: packed where fp32 weights are */
      count_buffer(linear_bytes(device, PACKED_GEMM_F32, pack ? 1 : -1, d, d), &bytes, &largest);
    ttt_layers += is_ttt;
  }
  const uint64_t vocab = (uint64_t)config->vocab_size;
  if (has_embedding)
    count_buffer(linear_bytes(device, type, 0, vocab, d), &bytes, &largest); /* the embedding: packed when 16-bit */
  if (has_head && !config->tie_word_embeddings)
    count_buffer(linear_bytes(device, type, pack, vocab, d), &bytes, &largest);
  else if (has_head && !head_beside_embedding) /* a copy of the embedding, laid out alike */
    count_buffer(linear_bytes(device, type, 0, vocab, d), &bytes, &largest);
  if (has_head)
    floats += d;
  floats += (uint64_t)config->head_dim / 2; /* RoPE frequencies, on every part */
  if (largest_buffer)
    *largest_buffer = largest;
  return bytes + floats * sizeof(float);
}

uint64_t weights_bytes(const clttt_config *config, packed_gemm_type type, const clttt_device *device,
                       uint64_t *largest_buffer) {
  return weights_part_bytes(config, type, device, 0, config->num_hidden_layers, 1, 1, 1, largest_buffer);
}

packed_gemm_type weights_element_type(clttt_weight_type type) {
  return type == CLTTT_WEIGHTS_BF16 ? PACKED_GEMM_BF16 : type == CLTTT_WEIGHTS_F16 ? PACKED_GEMM_F16 : PACKED_GEMM_F32;
}

/* Only to see whether the exact sum could overflow 64 bits. */
static double weight_bytes_approximately(const clttt_config *config) {
  double d = config->hidden_size, f = config->intermediate_size, heads = config->num_attention_heads;
  double kv_heads = config->num_key_value_heads, head_dim = config->head_dim;
  double per_layer = 2 * d + (heads + 2 * kv_heads) * head_dim * d + d * heads * head_dim + 3 * d * f +
                     (heads + 2 * kv_heads) * head_dim + 2 * f + 2 * d + 2 * head_dim + 5 * d + d * d;
  return 4.0 * (per_layer * config->num_hidden_layers + 2 * (double)config->vocab_size * d + d + head_dim);
}

uint64_t clttt_estimate_weight_bytes(const clttt_config *config, clttt_weight_type type, const clttt_device *device) {
  if (!config)
    return 0;
  if (weight_bytes_approximately(config) >= 1.8e19)
    return UINT64_MAX;
  return weights_bytes(config, weights_element_type(type), device, NULL);
}

/* A model on one device (all of it, or a slice) must fit beside what the
 * device already holds, checked before the first allocation. */
static clttt_status check_fits(const clttt_config *config, packed_gemm_type type, const clttt_split_part *part) {
  const clttt_device *device = part->device;
  const clttt_device_info *info = &device->info;
  uint64_t largest = 0, in_use = 0;
  const uint64_t needed = weights_part_bytes(config, type, device, part->first_layer, part->layer_count,
                                             part->has_embedding, part->has_head, 1, &largest);
  if (info->max_allocation > 0 && largest > info->max_allocation)
    return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                      "the model's largest weight (%s) needs one buffer of %.1f MiB; device '%s' allocates at "
                      "most %.1f MiB at once",
                      clttt_weight_type_name(public_type(type)), (double)largest / 1048576.0, info->name,
                      (double)info->max_allocation / 1048576.0);
  runtime_memory_usage(device->context, &in_use, NULL, 0);
  if (info->global_memory == 0 || needed + in_use <= info->global_memory)
    return CLTTT_SUCCESS;
  return clttt_fail(CL_MEM_OBJECT_ALLOCATION_FAILURE,
                    "the model's weights (%s matrices) need %.1f MiB; device '%s' has %.1f MiB, %.1f MiB of it "
                    "in use",
                    clttt_weight_type_name(public_type(type)), (double)needed / 1048576.0, info->name,
                    (double)info->global_memory / 1048576.0, (double)in_use / 1048576.0);
}

/* Where every part goes: the plan of a split (checked and sized before
 * anything is allocated), or all of it, or a slice, on `device`. */
static clttt_status place_parts(clttt_model *model, clttt_device *device, const clttt_model_params *params) {
  const int split = params && params->device_count > 0;
  const int layers = model->config.num_hidden_layers;
  const int sliced = params && params->layer_count != 0;
  const int first = sliced ? params->first_layer : 0, count = sliced ? params->layer_count : layers;
  if (sliced && (first < 0 || count < 1 || first > layers - count))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a slice of layers %d..%d of a model with %d layers", first,
                      first + count - 1, layers);
  if (sliced && split)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "a model slice runs on one device: give a device, not a split");
  const int part_count = split ? params->device_count : 1;
  clttt_split_part *placement = calloc((size_t)part_count, sizeof *placement);
  model->parts = calloc((size_t)part_count, sizeof *model->parts);
  clttt_status status = CLTTT_SUCCESS;
  if (!placement || !model->parts) {
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's %d parts", part_count);
  } else if (split) {
    status = clttt_plan_split_kv(&model->config, public_type(model->weight_type), params->devices, part_count,
                                 params->split, params->split_context, params->split_kv_type, placement);
  } else {
    placement[0] = (clttt_split_part){.device = device, .first_layer = first, .layer_count = count,
                                      .has_embedding = first == 0, .has_head = first + count == layers};
    status = check_fits(&model->config, model->weight_type, &placement[0]);
  }
  if (status == CLTTT_SUCCESS) {
    model->part_count = part_count;
    for (int p = 0; p < part_count; p++) {
      model->parts[p].placement = placement[p];
      for (int i = 0; i < placement[p].layer_count; i++)
        model->layers[placement[p].first_layer + i].part = p;
    }
    model->device = placement[0].device;
  }
  free(placement);
  return status;
}

/* The final norm and the LM head, on the last part. A tied head on another
 * device than the embedding is a copy of it there, laid out alike, which
 * is not the model's own weight (weight_bytes, the session files' hash);
 * in a slice without the embedding it is the only copy, and counts. */
static clttt_status load_head(loader *load) {
  clttt_model *model = load->model;
  const clttt_config *config = &model->config;
  const int64_t d = config->hidden_size;
  CLTTT_TRY(load_tensor(load, "model.norm.weight", d, 0, &model->final_norm));
  if (config->tie_word_embeddings && model->embedding.buffer && load->device == model->device) {
    model->lm_head = model->embedding;
    return CLTTT_SUCCESS;
  }
  const int64_t vocab_rows[] = {config->vocab_size};
  if (config->tie_word_embeddings) {
    static const char *const embedding_names[] = {"model.embed_tokens.weight"};
    CLTTT_TRY(load_linear(load, embedding_names, vocab_rows, 1, d, 0, &model->lm_head));
    if (model->embedding.buffer)
      model->weight_bytes -= packed_gemm_bytes(&model->lm_head.layout);
    return CLTTT_SUCCESS;
  }
  static const char *const head_names[] = {"lm_head.weight"};
  return load_linear(load, head_names, vocab_rows, 1, d, load->device->tuning.gemm_packed ? 1 : 0, &model->lm_head);
}

/* Points the loader at part `index`. */
static void load_on_part(loader *load, int index) {
  load->part = index;
  load->device = load->model->parts[index].placement.device;
}

/* The RoPE frequencies every part's attention reads, a copy per part; the
 * first part's is the model's (weight_bytes, the hash), the others' count
 * only on their part. */
static clttt_status load_rope(loader *load) {
  clttt_model *model = load->model;
  const clttt_config *config = &model->config;
  float inverse_frequency[256];
  rope_inverse_frequencies(config, inverse_frequency, &model->rope_attention_scaling);
  const size_t bytes = (size_t)config->head_dim / 2 * sizeof(float);
  for (int p = 0; p < model->part_count; p++) {
    load_on_part(load, p);
    cl_mem *buffer = &model->parts[p].rope_inverse_frequency;
    CLTTT_TRY(allocate_weight(load, bytes, "RoPE frequencies", buffer));
    if (p > 0)
      model->weight_bytes -= bytes;
    CLTTT_TRY(runtime_upload(load->device, *buffer, 0, bytes, inverse_frequency, "RoPE frequencies"));
  }
  model->rope_inverse_frequency = model->parts[0].rope_inverse_frequency;
  return CLTTT_SUCCESS;
}

clttt_status model_create(clttt_model **model_out, clttt_device *device, const clttt_config *config,
                          const clttt_model_params *params, const tensor_source *source) {
  *model_out = NULL;
  if (!device && !(params && params->device_count > 0))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "loading a model: no device given");
  CLTTT_TRY(check_supported(config));
  packed_gemm_type type = PACKED_GEMM_F32;
  CLTTT_TRY(weights_resolve_type(params ? params->weights : CLTTT_WEIGHTS_AUTO, source, &type));
  if (weight_bytes_approximately(config) >= 1.8e19)
    return clttt_fail(CLTTT_ERROR_BAD_CONFIG, "the model's sizes overflow any device's memory");
  clttt_model *model = calloc(1, sizeof *model);
  if (!model)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model");
  model->weight_type = type;
  pthread_mutex_init(&model->fingerprint_lock, NULL);
  clttt_status copied = config_copy(&model->config, config);
  if (copied != CLTTT_SUCCESS) {
    pthread_mutex_destroy(&model->fingerprint_lock);
    free(model);
    return copied;
  }
  model->q_dim = config_q_dim(config);
  model->kv_dim = config_kv_dim(config);
  model->qkv_width = model->q_dim + 2 * model->kv_dim;
  model->layers = calloc((size_t)config->num_hidden_layers, sizeof *model->layers);
  loader load = {model, NULL, 0, source, NULL, 0, params && params->check_weights};
  clttt_status status = CLTTT_SUCCESS;
  if (!model->layers)
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "allocating the model's %d layers",
                        config->num_hidden_layers);
  /* Every device's share is checked here, before the first allocation. */
  if (status == CLTTT_SUCCESS)
    status = place_parts(model, device, params);

  const int64_t d = config->hidden_size;
  /* The gather reads the embedding row-major when fp32 (and a tied head
   * then too), packed like the matrices when 16-bit. */
  static const char *const embedding_names[] = {"model.embed_tokens.weight"};
  const int64_t vocab_rows[] = {config->vocab_size};
  if (status == CLTTT_SUCCESS && model->parts[0].placement.has_embedding) {
    load_on_part(&load, 0);
    status = load_linear(&load, embedding_names, vocab_rows, 1, d, 0, &model->embedding);
  }
  const int first_layer = status == CLTTT_SUCCESS ? model_first_layer(model) : 0;
  const int end_layer = status == CLTTT_SUCCESS ? model_end_layer(model) : 0;
  for (int i = first_layer; i < end_layer && status == CLTTT_SUCCESS; i++) {
    load_on_part(&load, model->layers[i].part);
    status = load_layer(&load, i);
  }
  if (status == CLTTT_SUCCESS && model->parts[model->part_count - 1].placement.has_head) {
    load_on_part(&load, model->part_count - 1);
    status = load_head(&load);
  }
  if (status == CLTTT_SUCCESS)
    status = load_rope(&load);
  free(load.scratch);
  if (status != CLTTT_SUCCESS) {
    clttt_model_free(model);
    return status;
  }
  *model_out = model;
  return CLTTT_SUCCESS;
}

/* The checkpoint as a tensor source: each tensor is handed out in place,
 * inside the file's mapping, and its pages are dropped once the next one is
 * asked for (by then it is on the device). */
typedef struct {
  checkpoint ckpt;
  const safetensors_tensor *last;
  const safetensors_file *last_shard;
  float *converted; /* big-endian hosts only: the file is little-endian */
} checkpoint_reader;

static packed_gemm_type element_type_of(safetensors_dtype dtype) {
  return dtype == SAFETENSORS_F32 ? PACKED_GEMM_F32 : dtype == SAFETENSORS_BF16 ? PACKED_GEMM_BF16 : PACKED_GEMM_F16;
}

static void release_last(checkpoint_reader *reader) {
  if (reader->last)
    safetensors_release_pages(reader->last_shard, reader->last);
  reader->last = NULL;
}

static clttt_status checkpoint_read(void *context, const char *name, const int64_t *shape, int ndim,
                                    tensor_data *out) {
  checkpoint_reader *reader = context;
  release_last(reader);
  const safetensors_tensor *tensor = NULL;
  const safetensors_file *shard = NULL;
  CLTTT_TRY(checkpoint_tensor(&reader->ckpt, name, shape, ndim, &tensor, &shard));
  reader->last = tensor;
  reader->last_shard = shard;
  out->data = tensor->data;
  out->type = element_type_of(tensor->dtype);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  size_t count = tensor->nbytes / (tensor->dtype == SAFETENSORS_F32 ? 4 : 2);
  free(reader->converted);
  reader->converted = malloc(count ? count * sizeof(float) : 1);
  if (!reader->converted)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "converting tensor %s", name);
  safetensors_to_f32(tensor, reader->converted);
  out->data = reader->converted;
  out->type = PACKED_GEMM_F32;
#endif
  return CLTTT_SUCCESS;
}

static int checkpoint_stored_type(void *context, const char *name) {
  const checkpoint_reader *reader = context;
  const safetensors_tensor *tensor = checkpoint_find(&reader->ckpt, name, NULL);
  return tensor ? (int)element_type_of(tensor->dtype) : -1;
}

clttt_status clttt_checkpoint_weight_type(const char *dir, clttt_weight_type *type) {
  if (!dir || !type)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_checkpoint_weight_type: NULL argument");
  checkpoint_reader reader;
  memset(&reader, 0, sizeof reader);
  CLTTT_TRY(checkpoint_open(&reader.ckpt, dir));
  int stored = checkpoint_stored_type(&reader, "model.embed_tokens.weight");
  checkpoint_close(&reader.ckpt);
  if (stored < 0)
    return clttt_fail(CLTTT_ERROR_MISSING_TENSOR, "%s: tensor model.embed_tokens.weight missing", dir);
  *type = public_type((packed_gemm_type)stored);
  return CLTTT_SUCCESS;
}

clttt_status clttt_model_load(clttt_model **model, clttt_device *device, const char *dir,
                              const clttt_model_params *params) {
  if (!model || !dir || (!device && !(params && params->device_count > 0)))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_load: NULL argument");
  *model = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/config.json", dir);
  clttt_config config;
  CLTTT_TRY(config_load(&config, path));
  checkpoint_reader reader;
  memset(&reader, 0, sizeof reader);
  clttt_status opened = checkpoint_open(&reader.ckpt, dir);
  if (opened != CLTTT_SUCCESS) {
    clttt_config_free(&config);
    return opened;
  }
  const tensor_source source = {checkpoint_read, checkpoint_stored_type, &reader};
  clttt_status status = model_create(model, device, &config, params, &source);
  release_last(&reader);
  free(reader.converted);
  checkpoint_close(&reader.ckpt);
  clttt_config_free(&config);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "loading model '%s'", dir);
  return CLTTT_SUCCESS;
}

void clttt_model_free(clttt_model *model) {
  if (!model)
    return;
  for (int i = 0; model->layers && i < model->config.num_hidden_layers; i++) {
    layer_weights *layer = &model->layers[i];
    cl_mem *buffers[] = {&layer->input_norm,     &layer->qkv.buffer, &layer->qkv_bias,   &layer->o.buffer,
                         &layer->o_bias,         &layer->q_norm,     &layer->k_norm,     &layer->post_norm,
                         &layer->gate_up.buffer, &layer->gate_up_bias, &layer->down.buffer, &layer->down_bias,
                         &layer->ttt_conv,       &layer->ttt_proj};
    for (size_t b = 0; b < sizeof buffers / sizeof buffers[0]; b++)
      runtime_release(buffers[b]);
  }
  free(model->layers);
  for (int p = 0; model->parts && p < model->part_count; p++)
    runtime_release(&model->parts[p].rope_inverse_frequency);
  free(model->parts);
  model->rope_inverse_frequency = NULL; /* part 0's, released above */
  if (model->lm_head.buffer != model->embedding.buffer)
    runtime_release(&model->lm_head.buffer);
  runtime_release(&model->embedding.buffer);
  runtime_release(&model->final_norm);
  clttt_config_free(&model->config);
  pthread_mutex_destroy(&model->fingerprint_lock);
  free(model);
}

const clttt_config *clttt_model_get_config(const clttt_model *model) {
  return model ? &model->config : NULL;
}

uint64_t clttt_model_weight_bytes(const clttt_model *model) { return model ? model->weight_bytes : 0; }

int clttt_model_part_count(const clttt_model *model) { return model ? model->part_count : 0; }

clttt_status clttt_model_get_part(const clttt_model *model, int index, clttt_split_part *part) {
  if (!model || !part || index < 0 || index >= model->part_count)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_model_get_part: part %d of %d", index,
                      model ? model->part_count : 0);
  *part = model->parts[index].placement;
  return CLTTT_SUCCESS;
}

clttt_weight_type clttt_model_weight_type(const clttt_model *model) {
  return model ? public_type(model->weight_type) : CLTTT_WEIGHTS_AUTO;
}

