// CPU matrix products through OpenBLAS's cblas_sgemm.
#include <cblas.h>

#include "cpu.h"

// Small products in a large batch run one per thread; large ones let OpenBLAS use every thread. A batch
// whose total work is below ND_CPU_GEMM_PARALLEL_MIN runs on one thread: waking a team costs more.
#define ND_CPU_GEMM_SMALL_FLOPS (64 * 64 * 64)
#define ND_CPU_GEMM_PARALLEL_MIN (1 << 20)

void nd_cpu_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                 int64_t stride_a, const float *b, int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                 int64_t stride_c, int64_t batch) {
    if (m == 0 || n == 0) return;
    enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    bool small = m * n * k < ND_CPU_GEMM_SMALL_FLOPS && batch > 1 && stride_c != 0 &&
                 m * n * k * batch >= ND_CPU_GEMM_PARALLEL_MIN;
#pragma omp parallel for if (small)
    for (int64_t i = 0; i < batch; i++)
        cblas_sgemm(CblasRowMajor, ta, tb, (blasint)m, (blasint)n, (blasint)k, alpha, a + i * stride_a, (blasint)lda,
                    b + i * stride_b, (blasint)ldb, beta, c + i * stride_c, (blasint)ldc);
}

void nd_cpu_add_bias(float *y, const float *bias, int64_t rows, int64_t cols) {
#pragma omp parallel for if (rows * cols > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) y[r * cols + j] += bias[j];
}
