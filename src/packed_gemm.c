/* Host side of cl/gemm.cl and cl/gemm_update.cl: per-device parameters,
 * weight packing, launches. */
#include "packed_gemm.h" /* first: it fixes the OpenCL version (runtime.h) */

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "profile.h"

/* ---------------------------------------------------------------- */
/* Scalar conversions                                                 */

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

uint16_t packed_gemm_float_to_bf16(float value) {
  uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a (quiet) NaN, never round it to infinity */
    return (uint16_t)((bits >> 16) | 0x0040u);
  /* Round to nearest even on the 16 dropped bits; a carry out of the
   * mantissa moves the exponent, up to infinity for the largest floats. */
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)(bits >> 16);
}

float packed_gemm_bf16_to_float(uint16_t value) { return bits_float((uint32_t)value << 16); }

uint16_t packed_gemm_float_to_half(float value) {
  uint32_t bits = float_bits(value);
  uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) /* NaN: quiet, keeping the top payload bits */
    return (uint16_t)(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  int exponent = (int)(magnitude >> 23) - 127;
  if (exponent > 15) /* infinity, or beyond the largest half */
    return (uint16_t)(sign | 0x7c00u);
  uint32_t mantissa = magnitude & 0x7fffffu;
  if (exponent >= -14) {
    /* Normal half: 10 of 23 mantissa bits, rounded to nearest even; a carry
     * ripples into the exponent (65520 and up become infinity). */
    uint32_t half = ((uint32_t)(exponent + 15) << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
      half++;
    return (uint16_t)(sign | half);
  }
  /* Subnormal half (units of 2^-24) or zero; float subnormals are far below
   * half's smallest subnormal and round to zero here too. */
  if (exponent < -25)
    return sign;
  uint32_t significand = mantissa | 0x800000u; /* value = significand * 2^(exponent - 23) */
  int shift = -(exponent + 1);                 /* 14..24 */
  uint32_t quotient = significand >> shift;
  uint32_t rest = significand & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (quotient & 1u)))
    quotient++; /* may become 0x400, the smallest normal: the right encoding */
  return (uint16_t)(sign | quotient);
}

float packed_gemm_half_to_float(uint16_t value) {
  uint32_t sign = (uint32_t)(value & 0x8000u) << 16;
  uint32_t exponent = (value >> 10) & 0x1fu, mantissa = value & 0x3ffu;
  if (exponent == 0x1fu) /* infinity or NaN */
    return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0)
      return bits_float(sign);
    /* Subnormal half, normal float: normalise the mantissa. */
    int shift = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      shift++;
    }
    mantissa &= 0x3ffu;
    return bits_float(sign | ((uint32_t)(127 - 15 + 1 - shift) << 23) | (mantissa << 13));
  }
  return bits_float(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

/* ---------------------------------------------------------------- */
/* Packing (the parameters are in packed_gemm_params.c) */

static const char *type_name(packed_gemm_type type) {
  switch (type) {
    case PACKED_GEMM_F32: return "fp32";
    case PACKED_GEMM_BF16: return "bf16";
    case PACKED_GEMM_F16: return "fp16";
    default: return "unknown type";
  }
}

static int type_known(packed_gemm_type type) {
  return type == PACKED_GEMM_F32 || type == PACKED_GEMM_BF16 || type == PACKED_GEMM_F16;
}

size_t packed_gemm_element_size(packed_gemm_type type) { return type == PACKED_GEMM_F32 ? 4 : 2; }

static size_t k_padding_of(const packed_gemm_params *params) {
  return params->variant == PACKED_GEMM_GPU ? (size_t)params->tile_k : 1;
}

clttt_status packed_gemm_layout_for(const packed_gemm_params *params, packed_gemm_type type, size_t n, size_t k,
                                    packed_gemm_layout *layout) {
  memset(layout, 0, sizeof *layout);
  if (!type_known(type))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packed GEMM layout: weight type %d is not fp32, bf16 or fp16",
                      (int)type);
  if (params->variant != PACKED_GEMM_CPU && params->variant != PACKED_GEMM_GPU)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packed GEMM layout: variant %d is neither CPU nor GPU",
                      (int)params->variant);
  size_t width = (size_t)params->nr, multiple = k_padding_of(params);
  if (params->nr < 1 || multiple < 1)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packed GEMM layout: panel width %d, k multiple %zu",
                      params->nr, multiple);
  size_t k_padded = (k + multiple - 1) / multiple * multiple;
  size_t panels = (n + width - 1) / width;
  /* The kernels index with int: every row, column and in-panel offset must fit. */
  if (n == 0 || k == 0 || n > (size_t)INT_MAX - width || k_padded > (size_t)INT_MAX / width)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "packed GEMM layout: weight %zu x %zu (%s) is empty or too large for panels of %zu", n, k,
                      type_name(type), width);
  layout->variant = params->variant;
  layout->type = type;
  layout->n = n;
  layout->k = k;
  layout->panel_width = width;
  layout->panels = panels;
  layout->k_padded = k_padded;
  return CLTTT_SUCCESS;
}

clttt_status packed_gemm_row_major_layout(packed_gemm_type type, size_t n, size_t k, packed_gemm_layout *layout) {
  memset(layout, 0, sizeof *layout);
  if (!type_known(type) || n == 0 || k == 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "row-major layout: %zu x %zu of type %d", n, k, (int)type);
  layout->variant = PACKED_GEMM_CPU;
  layout->type = type;
  layout->n = n;
  layout->k = k;
  layout->panel_width = 1;
  layout->panels = n;
  layout->k_padded = k;
  return CLTTT_SUCCESS;
}

size_t packed_gemm_bytes(const packed_gemm_layout *layout) {
  return layout->panels * layout->k_padded * layout->panel_width * packed_gemm_element_size(layout->type);
}

size_t packed_gemm_index(const packed_gemm_layout *layout, size_t row, size_t j) {
  return (row / layout->panel_width * layout->k_padded + j) * layout->panel_width + row % layout->panel_width;
}

float packed_gemm_element(packed_gemm_type type, const void *elements, size_t j) {
  const unsigned char *row = elements;
  if (type == PACKED_GEMM_F32) {
    float value;
    memcpy(&value, row + 4 * j, sizeof value);
    return value;
  }
  uint16_t raw;
  memcpy(&raw, row + 2 * j, sizeof raw);
  return type == PACKED_GEMM_BF16 ? packed_gemm_bf16_to_float(raw) : packed_gemm_half_to_float(raw);
}

/* Element j of a source row, as the bits of the target type. */
static void convert_element(packed_gemm_type source_type, const unsigned char *row, size_t j,
                            packed_gemm_type target_type, unsigned char *target) {
  if (source_type == target_type) {
    size_t size = packed_gemm_element_size(target_type);
    memcpy(target, row + size * j, size);
    return;
  }
  float value = packed_gemm_element(source_type, row, j);
  if (target_type == PACKED_GEMM_F32) {
    memcpy(target, &value, sizeof value);
    return;
  }
  uint16_t raw = target_type == PACKED_GEMM_BF16 ? packed_gemm_float_to_bf16(value) : packed_gemm_float_to_half(value);
  memcpy(target, &raw, sizeof raw);
}

clttt_status packed_gemm_pack(const packed_gemm_layout *layout, void *packed, size_t row0, size_t count,
                              const void *source, packed_gemm_type source_type, size_t source_ld) {
  if (!type_known(source_type) || !type_known(layout->type))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packing a weight: source type %d or packed type %d unknown",
                      (int)source_type, (int)layout->type);
  if (row0 > layout->n || count > layout->n - row0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "packing rows %zu..%zu of a %zu x %zu weight: past its last row", row0, row0 + count,
                      layout->n, layout->k);
  if (source_ld < layout->k)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "packing a %zu x %zu weight: source rows %zu elements apart are shorter than k", layout->n,
                      layout->k, source_ld);
  if (!packed || (count > 0 && !source))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packing a %zu x %zu weight: NULL buffer", layout->n,
                      layout->k);
  const size_t width = layout->panel_width, kp = layout->k_padded, k = layout->k;
  const size_t size = packed_gemm_element_size(layout->type), source_size = packed_gemm_element_size(source_type);
  unsigned char *out = packed;
  const unsigned char *in = source;
  /* Panel by panel, k outermost inside a panel: the writes stream through
   * the panel while the reads are one sequential stream per source row. */
  for (size_t row = row0; row < row0 + count;) {
    size_t panel = row / width, lane0 = row % width;
    size_t lanes = width - lane0 < row0 + count - row ? width - lane0 : row0 + count - row;
    unsigned char *base = out + panel * kp * width * size;
    for (size_t j = 0; j < kp; j++) {
      unsigned char *target = base + (j * width + lane0) * size;
      for (size_t lane = 0; lane < lanes; lane++, target += size) {
        if (j < k)
          convert_element(source_type, in + (row - row0 + lane) * source_ld * source_size, j, layout->type,
                          target);
        else
          memset(target, 0, size);
      }
    }
    row += lanes;
  }
  /* The zero rows that pad n up to whole panels. */
  if (row0 + count == layout->n && layout->n % width != 0) {
    size_t panel = layout->panels - 1, lane0 = layout->n % width;
    unsigned char *base = out + panel * kp * width * size;
    for (size_t j = 0; j < kp; j++)
      memset(base + (j * width + lane0) * size, 0, (width - lane0) * size);
  }
  return CLTTT_SUCCESS;
}

/* ---------------------------------------------------------------- */
/* Launches                                                           */

static clttt_status buffer_size(const clttt_device *device, cl_mem buffer, const char *what, size_t *bytes) {
  char label[256];
  snprintf(label, sizeof label, "%s: querying a buffer's size", what);
  return runtime_check(device, clGetMemObjectInfo(buffer, CL_MEM_SIZE, sizeof *bytes, bytes, NULL), label);
}

/* Whether a rows x columns view with `ld` fits its buffer (sizes in floats). */
static clttt_status check_view(const clttt_device *device, const char *what, const char *product,
                               const char *name, matrix_view view, size_t rows, size_t columns) {
  if (!view.buffer)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: %s is a NULL buffer on device '%s'", what, product,
                      name, device->info.name);
  if (view.ld < columns || view.ld > INT_MAX)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: %s has leading dimension %zu for rows of %zu (at most %d) on device '%s'", what,
                      product, name, view.ld, columns, INT_MAX, device->info.name);
  size_t bytes = 0;
  CLTTT_TRY(buffer_size(device, view.buffer, what, &bytes));
  size_t needed = (view.offset + (rows - 1) * view.ld + columns) * sizeof(float);
  if (needed > bytes)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: %s (%zu x %zu at offset %zu, ld %zu) needs %zu bytes; its buffer has %zu on device '%s'",
                      what, product, name, rows, columns, view.offset, view.ld, needed, bytes, device->info.name);
  return CLTTT_SUCCESS;
}

void packed_gemm_options(const packed_gemm_params *params, packed_gemm_type type, char *buffer, size_t capacity) {
  char defines[256];
  packed_gemm_defines(params, type, defines, sizeof defines);
  snprintf(buffer, capacity, "-cl-std=CL1.2 %s", defines);
}

void packed_gemm_update_options(const packed_gemm_update_params *params, char *buffer, size_t capacity) {
  char defines[256];
  packed_gemm_update_defines(params, defines, sizeof defines);
  snprintf(buffer, capacity, "-cl-std=CL1.2 %s", defines);
}

clttt_status packed_gemm_kernels_create(packed_gemm_kernels *kernels, clttt_device *device,
                                        const packed_gemm_params *params,
                                        const packed_gemm_update_params *update_params) {
  memset(kernels, 0, sizeof *kernels);
  kernels->device = device;
  kernels->params = *params;
  if (update_params)
    kernels->update_params = *update_params;
  char why[256];
  if (!packed_gemm_params_valid(&device->info, params, why, sizeof why))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "packed GEMM parameters: %s on device '%s'", why,
                      device->info.name);
  if (update_params && !packed_gemm_update_params_valid(&device->info, update_params, why, sizeof why))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "GEMM update parameters: %s on device '%s'", why,
                      device->info.name);
  char options[320];
  clttt_status status = CLTTT_SUCCESS;
  for (int type = 0; type < 3 && status == CLTTT_SUCCESS; type++) {
    packed_gemm_options(params, (packed_gemm_type)type, options, sizeof options);
    cl_program program = NULL;
    status = runtime_program(device, "gemm.cl", options, &program);
    if (status == CLTTT_SUCCESS)
      status = runtime_create_kernel(device, program, "gemm.cl", "packed_gemm", &kernels->gemm[type]);
    if (status == CLTTT_SUCCESS && params->variant == PACKED_GEMM_CPU)
      status = runtime_create_kernel(device, program, "gemm.cl", "packed_gemv", &kernels->gemv[type]);
    if (status == CLTTT_SUCCESS)
      status = runtime_create_kernel(device, program, "gemm.cl", "pack_panels", &kernels->pack[type]);
    if (status == CLTTT_SUCCESS && params->variant == PACKED_GEMM_CPU && type == PACKED_GEMM_F32)
      status = runtime_create_kernel(device, program, "gemm.cl", "packed_update", &kernels->update_panels);
    if (status == CLTTT_SUCCESS && params->variant == PACKED_GEMM_CPU && type == PACKED_GEMM_F32)
      status = runtime_create_kernel(device, program, "gemm.cl", "pack_tile_rows", &kernels->pack_tile_rows);
  }
  if (status == CLTTT_SUCCESS && update_params) {
    packed_gemm_update_options(update_params, options, sizeof options);
    cl_program program = NULL;
    status = runtime_program(device, "gemm_update.cl", options, &program);
    if (status == CLTTT_SUCCESS)
      status = runtime_create_kernel(device, program, "gemm_update.cl", "gemm_update", &kernels->update);
    if (status == CLTTT_SUCCESS && update_params->variant == PACKED_GEMM_CPU)
      status = runtime_create_kernel(device, program, "gemm_update.cl", "gemm_update_packed",
                                     &kernels->update_packed);
    if (status == CLTTT_SUCCESS && update_params->variant == PACKED_GEMM_CPU)
      status = runtime_create_kernel(device, program, "gemm_update.cl", "pack_h_panels", &kernels->pack_h_panels);
    if (status == CLTTT_SUCCESS && update_params->variant == PACKED_GEMM_CPU)
      status = runtime_create_kernel(device, program, "gemm_update.cl", "transpose_v", &kernels->transpose_v);
  }
  if (status != CLTTT_SUCCESS)
    packed_gemm_kernels_release(kernels);
  return status;
}

void packed_gemm_kernels_release(packed_gemm_kernels *kernels) {
  for (int type = 0; type < 3; type++) {
    if (kernels->gemm[type])
      clReleaseKernel(kernels->gemm[type]);
    if (kernels->gemv[type])
      clReleaseKernel(kernels->gemv[type]);
    if (kernels->pack[type])
      clReleaseKernel(kernels->pack[type]);
  }
  cl_kernel *updates[] = {&kernels->update, &kernels->update_packed, &kernels->pack_h_panels, &kernels->transpose_v,
                          &kernels->update_panels, &kernels->pack_tile_rows};
  for (size_t i = 0; i < sizeof updates / sizeof updates[0]; i++)
    if (*updates[i])
      clReleaseKernel(*updates[i]);
  memset(kernels, 0, sizeof *kernels);
}

clttt_status packed_gemm_run(const packed_gemm_kernels *kernels, const char *what, const packed_gemm_layout *layout,
                             size_t rows, matrix_view x, cl_mem packed, size_t packed_offset, float beta,
                             matrix_view out) {
  clttt_device *device = kernels->device;
  const packed_gemm_params *params = &kernels->params;
  char product[160];
  snprintf(product, sizeof product, "packed GEMM %zux%zux%zu (rows x n x k, %s weights, %s variant)", rows,
           layout->n, layout->k, type_name(layout->type), params->variant == PACKED_GEMM_CPU ? "CPU" : "GPU");
  if (rows == 0)
    return CLTTT_SUCCESS;
  char why[256];
  if (!packed_gemm_params_valid(&device->info, params, why, sizeof why))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: %s on device '%s'", what, product, why,
                      device->info.name);
  if (layout->variant != params->variant || layout->panel_width != (size_t)params->nr ||
      layout->k_padded != (layout->k + k_padding_of(params) - 1) / k_padding_of(params) * k_padding_of(params) ||
      !type_known(layout->type))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: the weight was packed for other parameters (panels of %zu, k padded to %zu) on "
                      "device '%s'", what, product, layout->panel_width, layout->k_padded, device->info.name);
  if (rows > INT_MAX)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: more than %d rows on device '%s'", what, product,
                      INT_MAX, device->info.name);
  CLTTT_TRY(check_view(device, what, product, "x", x, rows, layout->k));
  CLTTT_TRY(check_view(device, what, product, "out", out, rows, layout->n));
  size_t packed_bytes = 0;
  CLTTT_TRY(buffer_size(device, packed, what, &packed_bytes));
  size_t needed = packed_offset * packed_gemm_element_size(layout->type) + packed_gemm_bytes(layout);
  if (needed > packed_bytes)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: the packed weight at element %zu needs %zu bytes; its buffer has %zu on device '%s'",
                      what, product, packed_offset, needed, packed_bytes, device->info.name);

  /* The one-row kernel reads bf16 pairs as uints: an even element offset. */
  const int one_row = rows == 1 && kernels->gemv[layout->type] != NULL && packed_offset % 2 == 0;
  cl_kernel kernel = one_row ? kernels->gemv[layout->type] : kernels->gemm[layout->type];
  cl_ulong out_offset = out.offset, x_offset = x.offset, w_offset = packed_offset;
  int out_ld = (int)out.ld, x_ld = (int)x.ld, m = (int)rows, n = (int)layout->n, k = (int)layout->k;
  CLTTT_TRY(runtime_set_args(device, kernel, product, 12, sizeof(cl_mem), &out.buffer, sizeof(cl_ulong),
                             &out_offset, sizeof(int), &out_ld, sizeof(cl_mem), &x.buffer, sizeof(cl_ulong),
                             &x_offset, sizeof(int), &x_ld, sizeof(cl_mem), &packed, sizeof(cl_ulong), &w_offset,
                             sizeof(int), &m, sizeof(int), &n, sizeof(int), &k, sizeof(float), &beta));
  size_t global[2], local[2];
  if (one_row) {
    global[0] = (layout->panels + (size_t)params->gemv_panels - 1) / (size_t)params->gemv_panels;
    global[1] = 1;
    local[0] = local[1] = 1;
  } else if (params->variant == PACKED_GEMM_CPU) {
    global[0] = layout->panels;
    global[1] = (rows + (size_t)params->row_block - 1) / (size_t)params->row_block;
    local[0] = local[1] = 1;
  } else {
    local[0] = (size_t)(params->nr / params->item_n);
    local[1] = (size_t)(params->tile_m / params->item_m);
    global[0] = layout->panels * local[0];
    global[1] = (rows + (size_t)params->tile_m - 1) / (size_t)params->tile_m * local[1];
  }
  /* Named by the product, so that a profile (profile.h) tells them apart. */
  char label[96];
  snprintf(label, sizeof label, "%s (%s, %s)", what, one_row ? "packed GEMV" : "packed GEMM", type_name(layout->type));
  profile_expect_flops(device, 2.0 * (double)rows * (double)layout->n * (double)layout->k);
  clttt_status status = runtime_launch(device, kernel, label, 2, global, local);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "%s: %s", what, product);
  return CLTTT_SUCCESS;
}

clttt_status packed_gemm_pack_device(const packed_gemm_kernels *kernels, const char *what,
                                     const packed_gemm_layout *layout, cl_mem packed, size_t packed_offset,
                                     cl_mem source,
                                     packed_gemm_type source_type, size_t source_offset, size_t row_stride,
                                     size_t column_stride, float scale) {
  clttt_device *device = kernels->device;
  if (layout->type != PACKED_GEMM_F32 || !type_known(source_type) || !kernels->pack[source_type] ||
      row_stride > INT_MAX || column_stride > INT_MAX || layout->panels * layout->panel_width > INT_MAX)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: packing a %zu x %zu matrix on device '%s': an fp32 layout, a known source type and "
                      "strides below 2^31 are needed",
                      what, layout->n, layout->k, device->info.name);
  size_t packed_bytes = 0;
  CLTTT_TRY(buffer_size(device, packed, what, &packed_bytes));
  if (packed_offset > packed_bytes / sizeof(float) ||
      packed_gemm_bytes(layout) > packed_bytes - packed_offset * sizeof(float))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %zu x %zu panels at float %zu need %zu bytes; the buffer has %zu on device '%s'", what,
                      layout->n, layout->k, packed_offset, packed_gemm_bytes(layout), packed_bytes,
                      device->info.name);
  cl_kernel kernel = kernels->pack[source_type];
  cl_ulong offset = source_offset, destination_offset = packed_offset;
  int rows_stride = (int)row_stride, columns_stride = (int)column_stride, n = (int)layout->n, k = (int)layout->k,
      k_padded = (int)layout->k_padded;
  CLTTT_TRY(runtime_set_args(device, kernel, "pack_panels", 10, sizeof(cl_mem), &packed, sizeof(cl_ulong),
                             &destination_offset, sizeof(cl_mem), &source,
                             sizeof(cl_ulong), &offset, sizeof(int), &rows_stride, sizeof(int), &columns_stride,
                             sizeof(int), &n, sizeof(int), &k, sizeof(int), &k_padded, sizeof(float), &scale));
  const size_t global[2] = {layout->k_padded, layout->panels}, local[2] = {16, 1};
  char label[96];
  snprintf(label, sizeof label, "%s (packing)", what);
  return runtime_launch(device, kernel, label, 2, global, local);
}

/* At least `rows` rounded up to any panel width (GEMM_NR <= 256) or row
 * group (GEMM_MR <= 32) packed_gemm_params_valid accepts: rounding to 256
 * alone would not do (256 rows in panels of 48 take 288). */
static uint64_t panel_rows_bound(size_t rows) { return (uint64_t)rows + PACKED_GEMM_MAX_NR; }

uint64_t packed_gemm_update_scratch_bytes(size_t d, size_t f, size_t c) {
  /* cl/gemm_update.cl: panels of 16 columns, each 16 floats longer than c
   * rows of them, then V transposed with rows of c + 16. */
  const uint64_t one_pass =
      (((uint64_t)f + 15) / 16 * ((uint64_t)c * 16 + 16) + (uint64_t)d * ((uint64_t)c + 16)) * sizeof(float);
  /* packed_gemm_update_panels: h^T (f x c) in groups of at least one row,
   * 16 floats of padding each, and eta V^T (d x c) in panels. */
  const uint64_t panels =
      ((panel_rows_bound(f) + panel_rows_bound(d)) * (uint64_t)c + 16 * (uint64_t)f) * sizeof(float);
  return one_pass > panels ? one_pass : panels;
}

/* The CPU variant's work-items, either form: UPDATE_PANELS column slices of
 * UPDATE_NR by UPDATE_ROW_BLOCK rows of W each. */
static void update_cpu_global(const packed_gemm_update_params *params, size_t d, size_t f, size_t global[2]) {
  const size_t columns = (size_t)params->nr * (size_t)params->panels;
  global[0] = (f + columns - 1) / columns;
  global[1] = (d + (size_t)params->row_block - 1) / (size_t)params->row_block;
}

/* The one-pass form: pack h in panels of 16 and V transposed into the
 * scratch, then one kernel adds the whole sum into W. */
static clttt_status update_one_pass(const packed_gemm_kernels *kernels, const char *what, const char *product, int d,
                                    int f, int c, float eta, matrix_view v, matrix_view h, matrix_view w,
                                    cl_mem scratch) {
  char label[3][128];
  snprintf(label[0], sizeof label[0], "%s (h packed for the one-pass update)", what);
  snprintf(label[1], sizeof label[1], "%s (V transposed for the one-pass update)", what);
  snprintf(label[2], sizeof label[2], "%s (our one-pass update kernel)", what);
  clttt_device *device = kernels->device;
  const packed_gemm_update_params *params = &kernels->update_params;
  cl_ulong h_offset = h.offset, v_offset = v.offset, w_offset = w.offset;
  cl_ulong vt_offset = ((cl_ulong)f + 15) / 16 * ((cl_ulong)c * 16 + 16);
  int h_ld = (int)h.ld, v_ld = (int)v.ld, w_ld = (int)w.ld;
  CLTTT_TRY(runtime_set_args(device, kernels->pack_h_panels, product, 6, sizeof(cl_mem), &scratch, sizeof(cl_mem),
                             &h.buffer, sizeof(cl_ulong), &h_offset, sizeof(int), &h_ld, sizeof(int), &c,
                             sizeof(int), &f));
  const size_t h_global[2] = {((size_t)f + 15) / 16, (size_t)c};
  CLTTT_TRY(runtime_launch(device, kernels->pack_h_panels, label[0], 2, h_global, NULL));
  CLTTT_TRY(runtime_set_args(device, kernels->transpose_v, product, 7, sizeof(cl_mem), &scratch, sizeof(cl_ulong),
                             &vt_offset, sizeof(cl_mem), &v.buffer, sizeof(cl_ulong), &v_offset, sizeof(int), &v_ld,
                             sizeof(int), &c, sizeof(int), &d));
  const size_t v_global[2] = {(size_t)d, (size_t)c};
  CLTTT_TRY(runtime_launch(device, kernels->transpose_v, label[1], 2, v_global, NULL));
  CLTTT_TRY(runtime_set_args(device, kernels->update_packed, product, 9, sizeof(cl_mem), &w.buffer,
                             sizeof(cl_ulong), &w_offset, sizeof(int), &w_ld, sizeof(cl_mem), &scratch,
                             sizeof(cl_ulong), &vt_offset, sizeof(int), &d, sizeof(int), &f, sizeof(int), &c,
                             sizeof(float), &eta));
  size_t global[2];
  update_cpu_global(params, (size_t)d, (size_t)f, global);
  const size_t local[2] = {1, 1};
  profile_expect_flops(device, 2.0 * (double)d * (double)f * (double)c);
  return runtime_launch(device, kernels->update_packed, label[2], 2, global, local);
}

clttt_status packed_gemm_update(const packed_gemm_kernels *kernels, const char *what, size_t d, size_t f, size_t c,
                                float eta, matrix_view v, matrix_view h, matrix_view w, cl_mem scratch) {
  clttt_device *device = kernels->device;
  const packed_gemm_update_params *params = &kernels->update_params;
  if (!kernels->update)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: packed GEMM kernels made without the update", what);
  char product[160];
  snprintf(product, sizeof product, "GEMM update W += eta V^T h (d %zu x f %zu over %zu rows, %s variant)", d, f,
           c, params->variant == PACKED_GEMM_CPU ? "CPU" : "GPU");
  if (d == 0 || f == 0 || c == 0)
    return CLTTT_SUCCESS;
  char why[256];
  if (!packed_gemm_update_params_valid(&device->info, params, why, sizeof why))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: %s on device '%s'", what, product, why,
                      device->info.name);
  if (d > INT_MAX - 1024 || f > INT_MAX - 1024 || c > INT_MAX - 1024)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: sizes past %d on device '%s'", what, product,
                      INT_MAX - 1024, device->info.name);
  CLTTT_TRY(check_view(device, what, product, "V", v, c, d));
  CLTTT_TRY(check_view(device, what, product, "h", h, c, f));
  CLTTT_TRY(check_view(device, what, product, "W", w, d, f));

  if (scratch && params->packed && params->variant == PACKED_GEMM_CPU && kernels->update_packed) {
    size_t scratch_size = 0;
    const uint64_t needed = packed_gemm_update_scratch_bytes(d, f, c);
    CLTTT_TRY(buffer_size(device, scratch, what, &scratch_size));
    if (needed > scratch_size)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                        "%s: %s: the packed V and h need %llu bytes of scratch; its buffer has %zu on device '%s'",
                        what, product, (unsigned long long)needed, scratch_size, device->info.name);
    clttt_status status = update_one_pass(kernels, what, product, (int)d, (int)f, (int)c, eta, v, h, w, scratch);
    if (status != CLTTT_SUCCESS)
      return clttt_fail_context(status, "%s: %s", what, product);
    return CLTTT_SUCCESS;
  }
  cl_kernel kernel = kernels->update;
  cl_ulong w_offset = w.offset, v_offset = v.offset, h_offset = h.offset;
  int w_ld = (int)w.ld, v_ld = (int)v.ld, h_ld = (int)h.ld, di = (int)d, fi = (int)f, ci = (int)c;
  CLTTT_TRY(runtime_set_args(device, kernel, product, 13, sizeof(cl_mem), &w.buffer, sizeof(cl_ulong), &w_offset,
                             sizeof(int), &w_ld, sizeof(cl_mem), &v.buffer, sizeof(cl_ulong), &v_offset,
                             sizeof(int), &v_ld, sizeof(cl_mem), &h.buffer, sizeof(cl_ulong), &h_offset,
                             sizeof(int), &h_ld, sizeof(int), &di, sizeof(int), &fi, sizeof(int), &ci,
                             sizeof(float), &eta));
  size_t global[2], local[2];
  if (params->variant == PACKED_GEMM_CPU) {
    update_cpu_global(params, d, f, global);
    local[0] = local[1] = 1;
  } else {
    local[0] = (size_t)(params->tile_n / params->item_n);
    local[1] = (size_t)(params->tile_m / params->item_m);
    global[0] = (f + (size_t)params->tile_n - 1) / (size_t)params->tile_n * local[0];
    global[1] = (d + (size_t)params->tile_m - 1) / (size_t)params->tile_m * local[1];
  }
  char label[96];
  snprintf(label, sizeof label, "%s (our update kernel)", what);
  profile_expect_flops(device, 2.0 * (double)d * (double)f * (double)c);
  clttt_status status = runtime_launch(device, kernel, label, 2, global, local);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "%s: %s", what, product);
  return CLTTT_SUCCESS;
}

clttt_status packed_gemm_update_panels(const packed_gemm_kernels *kernels, const char *what,
                                       const packed_gemm_layout *layout, size_t c, float eta, matrix_view v,
                                       matrix_view h, cl_mem w, cl_mem scratch) {
  clttt_device *device = kernels->device;
  const size_t d = layout->n, f = layout->k;
  char product[160];
  snprintf(product, sizeof product, "GEMM update W += eta V^T h into panels (d %zu x f %zu over %zu rows)", d, f, c);
  if (!kernels->update_panels || !scratch)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: needs the CPU variant's kernels and a scratch buffer on device '%s'", what, product,
                      device->info.name);
  if (layout->variant != PACKED_GEMM_CPU || layout->type != PACKED_GEMM_F32 ||
      layout->panel_width != (size_t)kernels->params.nr || layout->k_padded != f)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: W is not in this device's fp32 CPU panels (panels of %zu, k padded to %zu) on "
                      "device '%s'", what, product, layout->panel_width, layout->k_padded, device->info.name);
  if (d == 0 || f == 0 || c == 0)
    return CLTTT_SUCCESS;
  if (c > INT_MAX / 2 || layout->panels * layout->panel_width > INT_MAX / 2 || f > INT_MAX / 2)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: sizes past %d on device '%s'", what, product,
                      INT_MAX / 2, device->info.name);
  CLTTT_TRY(check_view(device, what, product, "V", v, c, d));
  CLTTT_TRY(check_view(device, what, product, "h", h, c, f));
  size_t w_bytes = 0;
  CLTTT_TRY(buffer_size(device, w, what, &w_bytes));
  if (packed_gemm_bytes(layout) > w_bytes)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: %s: W's panels need %zu bytes; its buffer has %zu on "
                      "device '%s'", what, product, packed_gemm_bytes(layout), w_bytes, device->info.name);
  /* h^T (f x c) in groups of GEMM_MR rows, c * GEMM_MR + 16 floats apart,
   * then eta V^T (d x c) in panels (cl/gemm.cl, packed_update). */
  const size_t mr = (size_t)kernels->params.mr;
  const size_t vt_offset = (f + mr - 1) / mr * (mr * c + 16);
  packed_gemm_layout vt_layout;
  CLTTT_TRY(packed_gemm_layout_for(&kernels->params, PACKED_GEMM_F32, d, c, &vt_layout));
  size_t scratch_bytes = 0;
  CLTTT_TRY(buffer_size(device, scratch, what, &scratch_bytes));
  if ((vt_offset * sizeof(float) + packed_gemm_bytes(&vt_layout)) > scratch_bytes)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT,
                      "%s: %s: the packed V and h need %zu bytes of scratch; its buffer has %zu on device '%s'", what,
                      product, vt_offset * sizeof(float) + packed_gemm_bytes(&vt_layout), scratch_bytes,
                      device->info.name);
  cl_ulong h_offset = h.offset, ht_start = 0;
  int h_ld = (int)h.ld, fi = (int)f, ci = (int)c;
  clttt_status status = runtime_set_args(device, kernels->pack_tile_rows, product, 7, sizeof(cl_mem), &scratch,
                                         sizeof(cl_ulong), &ht_start, sizeof(cl_mem), &h.buffer, sizeof(cl_ulong),
                                         &h_offset, sizeof(int), &h_ld, sizeof(int), &ci, sizeof(int), &fi);
  char label[128];
  snprintf(label, sizeof label, "%s (h packed for the update into panels)", what);
  /* cl/gemm.cl: PACK_TILE_ROWS_T values of t per work-item */
  const size_t h_global[1] = {(c + 15) / 16}, h_local[1] = {1};
  if (status == CLTTT_SUCCESS)
    status = runtime_launch(device, kernels->pack_tile_rows, label, 1, h_global, h_local);
  if (status == CLTTT_SUCCESS)
    status = packed_gemm_pack_device(kernels, what, &vt_layout, scratch, vt_offset, v.buffer, PACKED_GEMM_F32,
                                     v.offset, 1, v.ld, eta);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "%s: %s", what, product);
  cl_ulong w_offset = 0, ht_offset = 0, vt_start = vt_offset;
  int di = (int)d;
  CLTTT_TRY(runtime_set_args(device, kernels->update_panels, product, 8, sizeof(cl_mem), &w, sizeof(cl_ulong),
                             &w_offset, sizeof(cl_mem), &scratch, sizeof(cl_ulong), &ht_offset, sizeof(cl_ulong),
                             &vt_start, sizeof(int), &di, sizeof(int), &fi, sizeof(int), &ci));
  const size_t global[2] = {layout->panels, (f + (size_t)kernels->params.row_block - 1) / (size_t)kernels->params.row_block};
  const size_t local[2] = {1, 1};
  snprintf(label, sizeof label, "%s (our update kernel, into panels)", what);
  profile_expect_flops(device, 2.0 * (double)d * (double)f * (double)c);
  status = runtime_launch(device, kernels->update_panels, label, 2, global, local);
  if (status != CLTTT_SUCCESS)
    return clttt_fail_context(status, "%s: %s", what, product);
  return CLTTT_SUCCESS;
}
