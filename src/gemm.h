/* Matrix products, row-major: C = alpha * op(A) op(B) + beta * C, with
 * op(A) m x k, op(B) k x n, C m x n. Offsets and leading dimensions are in
 * floats. CLBlast does the work. */
#ifndef CLTTT_GEMM_H
#define CLTTT_GEMM_H

#include "ops.h"

typedef enum { GEMM_NO_TRANSPOSE = 0, GEMM_TRANSPOSE = 1 } gemm_transpose;

/* Gives CLBlast our measured GEMM parameters for devices its own database
 * does not know (PoCL on CPUs, where its generic fallback ran 3.5-5.7x
 * slower). Called at device open; a failure only warns. Setting
 * CLTTT_CLBLAST_TUNING=off keeps CLBlast's own choice. *applied receives
 * whether parameters were installed. */
void gemm_configure_device(const clttt_device *device, int *applied);

clttt_status gemm(clttt_device *device, const char *what, gemm_transpose transpose_a,
                  gemm_transpose transpose_b, size_t m, size_t n, size_t k, float alpha,
                  matrix_view a, matrix_view b, float beta, matrix_view c);

/* y = x W^T + beta y: the nn.Linear product. x: rows x in, W: out x in,
 * y: rows x out. One row goes through op_gemv (decode), more through gemm. */
clttt_status gemm_linear(const kernel_set *kernels, const char *what, size_t rows, size_t out_features,
                         size_t in_features, matrix_view x, matrix_view weight, float beta,
                         matrix_view y);

struct linear_weight;

/* y (rows x out) = x (rows x in) W^T + beta y for a model weight, through
 * our packed GEMM when the weight is packed, else gemm_linear. */
clttt_status gemm_weight(const kernel_set *kernels, const char *what, size_t rows, matrix_view x,
                         const struct linear_weight *weight, float beta, matrix_view y);

#endif
