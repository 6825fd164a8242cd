/* Our own GEMM kernels (internal, not public API):
 *
 *  - packed_gemm_run: out = beta * out + x W^T, the nn.Linear product, with
 *    the weight W (n x k) repacked once on the host into column panels
 *    (cl/gemm.cl states the layout) of fp32, bf16 or fp16 elements;
 *  - packed_gemm_update: the TTT update W += eta V^T h on fp32 row-major
 *    operands (cl/gemm_update.cl);
 *  - packed_gemm_update_panels: the same update into a W kept in
 *    packed_gemm_run's fp32 panels (CPU variant, cl/gemm.cl).
 *
 * Each has a CPU variant (a work-item per column panel and row block, float16
 * register tiles; measured under PoCL) and a GPU variant (work-groups sharing
 * local-memory tiles; reasoned per vendor). Every tunable lives in the params
 * structs below, so a tuner can pass candidates; *_defaults fills the
 * per-device choice. These are not part of src/tuning.c's parameter set.
 *
 * Typical use, per weight at load time: packed_gemm_defaults, then
 * packed_gemm_layout_for, a host buffer of packed_gemm_bytes, one
 * packed_gemm_pack per source tensor (e.g. q, k, v rows of a stacked
 * projection), runtime_upload; per call packed_gemm_run with the same params. */
#ifndef CLTTT_PACKED_GEMM_H
#define CLTTT_PACKED_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "runtime.h"


/* Element types, numbered as cl/gemm.cl's WEIGHT_TYPE. bf16 and fp16 are raw
 * 16-bit values in host memory, as a safetensors checkpoint stores them. */
typedef enum { PACKED_GEMM_F32 = 0, PACKED_GEMM_BF16 = 1, PACKED_GEMM_F16 = 2 } packed_gemm_type;

/* One packed weight: W (n x k) in panels of panel_width output features,
 * n padded with zero rows to panels * panel_width, k with zero columns to
 * k_padded. Element (row, j) of W sits at element
 * ((row / panel_width) * k_padded + j) * panel_width + row % panel_width. */
typedef struct {
  packed_gemm_variant variant;
  packed_gemm_type type; /* element type stored */
  size_t n, k;
  size_t panel_width;
  size_t panels;   /* ceil(n / panel_width) */
  size_t k_padded; /* k (CPU) or k rounded up to tile_k (GPU) */
} packed_gemm_layout;

/* ---- Parameters ------------------------------------------------------ */

/* The widest panel (GEMM_NR) any variant accepts. */
#define PACKED_GEMM_MAX_NR 256

/* Per-device defaults: the CPU variant on CPUs (panel and register tile by
 * vector width), the GPU variant on GPUs with tiles per vendor. */
void packed_gemm_defaults(const clttt_device_info *info, packed_gemm_params *params);
void packed_gemm_update_defaults(const clttt_device_info *info, packed_gemm_update_params *params);
/* 1 when the kernel can be built and launched with these values on this
 * device; otherwise 0 and a reason ("GEMM_NR=24 is not a multiple of 16"). */
int packed_gemm_params_valid(const clttt_device_info *info, const packed_gemm_params *params, char *why,
                             size_t capacity);
int packed_gemm_update_params_valid(const clttt_device_info *info, const packed_gemm_update_params *params,
                                    char *why, size_t capacity);
/* "-DGEMM_VARIANT=0 -DWEIGHT_TYPE=1 -DGEMM_NR=32 ..." into buffer. */
void packed_gemm_defines(const packed_gemm_params *params, packed_gemm_type type, char *buffer, size_t capacity);
void packed_gemm_update_defines(const packed_gemm_update_params *params, char *buffer, size_t capacity);
/* The whole build options of gemm.cl (for one weight type) and of
 * gemm_update.cl, as packed_gemm_kernels_create passes them. */
void packed_gemm_options(const packed_gemm_params *params, packed_gemm_type type, char *buffer, size_t capacity);
void packed_gemm_update_options(const packed_gemm_update_params *params, char *buffer, size_t capacity);

/* ---- Packing (host memory) ------------------------------------------ */

/* The layout these params give an n x k weight of element type `type`.
 * CLTTT_ERROR_INVALID_ARGUMENT for zero or oversized dimensions or invalid
 * params (the message names them). */
clttt_status packed_gemm_layout_for(const packed_gemm_params *params, packed_gemm_type type, size_t n, size_t k,
                                    packed_gemm_layout *layout);
/* Row-major n x k of `type` described as panels of one row (element
 * (row, j) at row * k + j): packed_gemm_pack then converts and copies
 * row-major weights. Not a layout packed_gemm_run accepts. */
clttt_status packed_gemm_row_major_layout(packed_gemm_type type, size_t n, size_t k, packed_gemm_layout *layout);
size_t packed_gemm_element_size(packed_gemm_type type);
/* Bytes of the whole packed buffer, padding included. */
size_t packed_gemm_bytes(const packed_gemm_layout *layout);
/* The element where (row, j) of W lies in the layout (see above). */
size_t packed_gemm_index(const packed_gemm_layout *layout, size_t row, size_t j);

/* Packs rows [row0, row0 + count) of W from `source`, `count` rows of
 * layout->k elements of `source_type`, consecutive rows `source_ld`
 * elements apart (>= k), into `packed` (packed_gemm_bytes(layout) bytes).
 * Calls for disjoint row ranges may come in any order: once every row of
 * [0, n) has been packed, every byte of the buffer is written, padding
 * included (each call writes its rows' k padding; the call that packs row
 * n - 1 also writes the padding rows). A source of the layout's type is
 * copied bit for bit; fp32 to bf16/fp16 rounds to nearest even (overflow to
 * infinity, NaN stays NaN); bf16/fp16 to fp32 widens exactly; between bf16 and
 * fp16 the value is widened exactly, then rounded once. */
clttt_status packed_gemm_pack(const packed_gemm_layout *layout, void *packed, size_t row0, size_t count,
                              const void *source, packed_gemm_type source_type, size_t source_ld);

/* Scalar conversions the packing uses (also for references in tests). */
uint16_t packed_gemm_float_to_bf16(float value);
uint16_t packed_gemm_float_to_half(float value);
float packed_gemm_bf16_to_float(uint16_t value);
float packed_gemm_half_to_float(uint16_t value);
/* Element j of `elements` (little-endian, possibly unaligned) of `type`, widened. */
float packed_gemm_element(packed_gemm_type type, const void *elements, size_t j);

/* ---- Launches -------------------------------------------------------- */

/* out (rows x layout->n) = beta * out + x (rows x layout->k) W^T, W the packed
 * weight in `packed` starting `packed_offset` elements in. The params must be
 * the ones the layout was made with (same variant, panel width and k
 * padding). beta == 0 never reads out. Offsets and leading dimensions of x
 * and out are in floats, as in gemm.h. Buffer sizes are checked; errors
 * (CLTTT_ERROR_INVALID_ARGUMENT, build or launch failures) name `what`, the
 * product's sizes and the device. */
/* The kernels of one parameter set, resolved once (the programs are the
 * device's, cached; the kernel objects are this set's own, so one set
 * belongs to one thread at a time, like a kernel_set). */
typedef struct {
  clttt_device *device;
  packed_gemm_params params;
  packed_gemm_update_params update_params;
  cl_kernel gemm[3]; /* by packed_gemm_type */
  cl_kernel gemv[3]; /* one row (decode), CPU variant only */
  cl_kernel pack[3]; /* device-side packing from a source of that type */
  cl_kernel update;
  /* The CPU variant's one-pass update (UPDATE_PACKED) and its packing. */
  cl_kernel update_packed, pack_h_panels, transpose_v;
  /* The CPU variant's update of a W kept in fp32 panels (gemm.cl, built
   * with these params: the panel width is theirs). */
  cl_kernel update_panels, pack_tile_rows;
} packed_gemm_kernels;

/* Builds (or finds) gemm.cl for every weight type and gemm_update.cl with
 * these parameters; update_params NULL leaves the update kernel out. */
clttt_status packed_gemm_kernels_create(packed_gemm_kernels *kernels, clttt_device *device,
                                        const packed_gemm_params *params,
                                        const packed_gemm_update_params *update_params);
void packed_gemm_kernels_release(packed_gemm_kernels *kernels);

clttt_status packed_gemm_run(const packed_gemm_kernels *kernels, const char *what,
                             const packed_gemm_layout *layout, size_t rows, matrix_view x, cl_mem packed,
                             size_t packed_offset, float beta, matrix_view out);

/* Packs S (layout->n x layout->k; element (row, j) at element
 * source_offset + row * row_stride + j * column_stride of `source`, of
 * source_type: fp32 or fp16) times `scale` on the device into `packed` from
 * float packed_offset on, in `layout` (fp32 elements), for products whose
 * "weight" changes every call (attention's K and V^T, the TTT update's
 * operands). */
clttt_status packed_gemm_pack_device(const packed_gemm_kernels *kernels, const char *what,
                                     const packed_gemm_layout *layout, cl_mem packed, size_t packed_offset,
                                     cl_mem source,
                                     packed_gemm_type source_type, size_t source_offset, size_t row_stride,
                                     size_t column_stride, float scale);

/* Bytes of scratch either update packs V and h into, whatever the
 * parameters, so that a workspace can be sized before they are known: the
 * one-pass update's h in panels of 16 columns and V transposed, each stream
 * padded by 16 floats (cl/gemm_update.cl), or packed_gemm_update_panels'
 * h^T and eta V^T in panels. */
uint64_t packed_gemm_update_scratch_bytes(size_t d, size_t f, size_t c);

/* w (d x f) += eta * v^T h, v: c x d, h: c x f, all fp32 row-major views.
 * With a scratch buffer of at least packed_gemm_update_scratch_bytes and
 * UPDATE_PACKED in the CPU variant, v and h are packed there first and
 * the kernel adds into w once; with scratch NULL the staged kernel runs. */
clttt_status packed_gemm_update(const packed_gemm_kernels *kernels, const char *what,
                                size_t d, size_t f, size_t c, float eta, matrix_view v, matrix_view h,
                                matrix_view w, cl_mem scratch);


/* W += eta * v^T h with W (d x f = layout->n x layout->k) kept in `layout`,
 * the fp32 panels packed_gemm_run multiplies by (CPU variant only), from
 * element 0 of w: a TTT fast weight that its apply reads as it is (src/ttt.c).
 * v: c x d, h: c x f, fp32 row-major; both are packed into scratch (at least
 * packed_gemm_update_scratch_bytes) first. Padding lanes of W's last panel
 * stay as they were (zero). */
clttt_status packed_gemm_update_panels(const packed_gemm_kernels *kernels, const char *what,
                                       const packed_gemm_layout *layout, size_t c, float eta, matrix_view v,
                                       matrix_view h, cl_mem w, cl_mem scratch);

#endif
