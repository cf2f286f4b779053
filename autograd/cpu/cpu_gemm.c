// CPU matrix products: oneDNN's sgemm where the build has oneDNN, else OpenBLAS's cblas_sgemm.
//
// The products of the networks' linear layers are tall and thin (thousands of rows by 64 to 512 columns):
// a res-unet training step ran its nd_linear at ~21 GFLOP/s through OpenBLAS and at ~48 through oneDNN's
// sgemm (`nanodiff train --model res-unet --max-steps 12 --profile`, 2 cores, AVX2), the whole step 15% faster.
// Batches of small products (attention's) still run one product per thread through OpenBLAS, whose
// single-threaded calls cost less to start.
#include <cblas.h>
#ifdef ND_WITH_DNNL
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#endif

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
#ifdef ND_WITH_DNNL
    if (!small && k > 0) { // k = 0 (C = beta C) goes to OpenBLAS, which takes its empty A and B
        for (int64_t i = 0; i < batch; i++) {
            dnnl_status_t status = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                                              a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c,
                                              ldc);
            if (status != dnnl_success) {
                fprintf(stderr, "nanodiff: oneDNN's sgemm failed with status %d (m %lld, n %lld, k %lld)\n",
                        (int)status, (long long)m, (long long)n, (long long)k);
                abort();
            }
        }
        return;
    }
#endif
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
