// GPU matrix products through cuBLAS, and the bias add that follows a linear layer's product.
#include <limits.h>

#include "cuda_common.h"

// y (rows, cols) += bias (cols) on every row
static __global__ void add_bias_kernel(float *y, const float *bias, int64_t n, int64_t cols) {
    ND_CUDA_FOR_EACH(i, n) y[i] += bias[i % cols];
}

// cuBLAS takes int sizes; a larger one is a caller's bug, reported rather than truncated.
static int gemm_int(int64_t value, const char *what) {
    if (value < 0 || value > INT_MAX) {
        fprintf(stderr, "nanodiff: nd_cuda_gemm: %s = %lld is outside cuBLAS's int range\n", what, (long long)value);
        abort();
    }
    return (int)value;
}

extern "C" {

// Row-major C = alpha op(A) op(B) + beta C. cuBLAS is column-major, where a row-major matrix reads as its
// transpose: it computes C^T = op(B)^T op(A)^T, so B goes first and m, n swap.
void nd_cuda_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                  int64_t stride_c, int64_t batch) {
    if (m == 0 || n == 0 || batch == 0) return;
    cublasHandle_t handle = nd_cuda_cublas();
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    int im = gemm_int(m, "m"), in = gemm_int(n, "n"), ik = gemm_int(k, "k");
    // cuBLAS rejects a leading dimension below 1 even for an operand without elements (k == 0)
    int ilda = gemm_int(lda > 0 ? lda : 1, "lda"), ildb = gemm_int(ldb > 0 ? ldb : 1, "ldb");
    int ildc = gemm_int(ldc, "ldc");
    if (stride_c == 0 && batch > 1) {
        // every product lands on the same C: run them in order, as the CPU does, instead of racing
        for (int64_t i = 0; i < batch; i++)
            ND_CUBLAS_CHECK(cublasSgemm(handle, op_b, op_a, in, im, ik, &alpha, b + i * stride_b, ildb,
                                        a + i * stride_a, ilda, &beta, c, ildc));
        return;
    }
    ND_CUBLAS_CHECK(cublasSgemmStridedBatched(handle, op_b, op_a, in, im, ik, &alpha, b, ildb, stride_b, a, ilda,
                                              stride_a, &beta, c, ildc, stride_c, gemm_int(batch, "batch")));
}

// Elementwise map over rows * cols.
void nd_cuda_add_bias(float *y, const float *bias, int64_t rows, int64_t cols) {
    ND_CUDA_MAP(rows * cols, add_bias_kernel, y, bias, rows * cols, cols);
}

} // extern "C"
