// CUDA device: the backend table is complete (checked on every machine, GPU or not); on a GPU, the device's
// description, cuBLAS products (transposes, alpha/beta, batches, shared operands) against the CPU's, in
// FP32 and in TF32, and batch uploads overlapped with kernels. Without a usable GPU it prints the reason and
// exits 77 (ctest: skipped).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "elementwise_math.h"
#include "test.h"

#define FP32_NMSE 1e-7 // DESIGN.md's parity bar with TF32 off: only the summation order differs
// TF32 rounds each input to 10 mantissa bits (relative error up to 2^-11): a product's relative error is
// then about 4e-4 RMS, an nmse near 2e-7 for random data. 1e-5 leaves a factor of 50; a wrong transpose,
// stride or beta gives an nmse near 1.
#define TF32_NMSE 1e-5

typedef struct gemm_case {
    const char *name;
    bool trans_a, trans_b;
    int64_t m, n, k, batch;
    bool shared_b; // stride_b 0: one B for every batch
    bool shared_c; // stride_c 0: every product accumulates into one C, in order
    float alpha, beta;
} gemm_case;

static const gemm_case gemm_cases[] = {
    {"plain", false, false, 257, 129, 300, 1, false, false, 1.0f, 0.0f},
    {"trans_a_alpha_beta", true, false, 130, 70, 90, 1, false, false, 0.75f, 0.5f},
    {"trans_b_batched", false, true, 65, 33, 200, 3, false, false, 1.0f, 1.0f},
    {"trans_both_shared_b", true, true, 40, 50, 60, 4, true, false, -1.25f, 0.0f},
    {"shared_c_accumulating", false, false, 30, 20, 50, 3, false, true, 1.0f, 1.0f},
};

static float *random_floats(int64_t n, uint64_t offset) {
    float *host = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) host[i] = nd_philox_normal(7, offset, i);
    return host;
}

// C after the product on backend `be`, from the host operands.
static float *run_gemm(const nd_backend *be, const gemm_case *g, const float *a, const float *b, const float *c0,
                       int64_t na, int64_t nb, int64_t nc) {
    float *da = be->alloc((size_t)na * sizeof(float)), *db = be->alloc((size_t)nb * sizeof(float));
    float *dc = be->alloc((size_t)nc * sizeof(float));
    be->upload(da, a, (size_t)na * sizeof(float));
    be->upload(db, b, (size_t)nb * sizeof(float));
    be->upload(dc, c0, (size_t)nc * sizeof(float));
    int64_t lda = g->trans_a ? g->m : g->k, ldb = g->trans_b ? g->k : g->n;
    be->gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, da, lda, g->m * g->k, db, ldb,
             g->shared_b ? 0 : g->k * g->n, g->beta, dc, g->n, g->shared_c ? 0 : g->m * g->n, g->batch);
    float *c = malloc((size_t)nc * sizeof(float));
    be->download(c, dc, (size_t)nc * sizeof(float));
    be->free(da);
    be->free(db);
    be->free(dc);
    return c;
}

// Normalized MSE of the GPU's C against the CPU's for one case.
static double gemm_nmse(const gemm_case *g) {
    int64_t na = g->batch * g->m * g->k, nb = (g->shared_b ? 1 : g->batch) * g->k * g->n;
    int64_t nc = (g->shared_c ? 1 : g->batch) * g->m * g->n;
    float *a = random_floats(na, 1), *b = random_floats(nb, 2), *c0 = random_floats(nc, 3);
    float *cpu = run_gemm(nd_backend_cpu(), g, a, b, c0, na, nb, nc);
    float *gpu = run_gemm(nd_backend_cuda(), g, a, b, c0, na, nb, nc);
    double err = 0.0, ref = 0.0;
    for (int64_t i = 0; i < nc; i++) {
        double d = (double)gpu[i] - cpu[i];
        err += isfinite(gpu[i]) ? d * d : INFINITY;
        ref += (double)cpu[i] * cpu[i];
    }
    float *buffers[5] = {a, b, c0, cpu, gpu};
    for (int i = 0; i < 5; i++) free(buffers[i]);
    return err / ref;
}

// Prefetched batches on the GPU: batch k + 1 is put while kernels still read batch k (a chain of ops queued
// after the take), so a copy that did not wait for its lane, or a take not ordered after its upload, shows
// up as wrong sums. Returns the number of wrong values.
static int prefetch_errors(void) {
    enum { N = 1 << 20, BATCHES = 6, CHAIN = 20 };
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CUDA, 64 << 20, 0);
    nd_prefetch p;
    nd_prefetch_init(&p, &ctx, N * sizeof(float));
    float *batch = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
    int wrong = 0;
    for (int k = 0; k < BATCHES; k++) {
        if (k == 0) {
            for (int i = 0; i < N; i++) batch[i] = (float)(i % 1000);
            nd_prefetch_put(&p, batch, N * sizeof(float));
        }
        nd_tensor *x = nd_prefetch_take(&p, ND_SHAPE(N));
        nd_tensor *y = x;
        for (int j = 0; j < CHAIN; j++) y = nd_add(&ctx, y, x); // y = (CHAIN + 1) x, queued, not yet run
        for (int i = 0; i < N; i++) batch[i] = (float)(((k + 1) * 7 + i) % 1000);
        nd_prefetch_put(&p, batch, N * sizeof(float));
        nd_copy_to_host(&ctx, y, got);
        for (int i = 0; i < N; i++) wrong += got[i] != (float)(CHAIN + 1) * (float)((k * 7 + i) % 1000);
        nd_ctx_step_end(&ctx);
    }
    free(batch);
    free(got);
    nd_prefetch_free(&p);
    nd_ctx_free(&ctx);
    return wrong;
}

int main(void) {
    // nd_backend_cuda() aborts, naming the entry, when backend.h has an entry the CUDA table leaves unset
    const nd_backend *be = nd_backend_cuda();
    CHECK(be && strcmp(be->name, "cuda") == 0, "nd_backend_cuda() returned %s", be ? be->name : "NULL");
    char text[512];
    if (!nd_cuda_available(text, sizeof text)) {
        if (nd_test_failed) return test_finish("cuda.device");
        printf("cuda.device: skipped: %s (the backend table is complete)\n", text);
        return ND_TEST_SKIP;
    }
    nd_cuda_describe(text, sizeof text);
    printf("cuda.device: %s\n", text);

    nd_cuda_set_tf32(false);
    for (size_t i = 0; i < sizeof gemm_cases / sizeof gemm_cases[0]; i++) {
        double e = gemm_nmse(&gemm_cases[i]);
        printf("gemm %-24s FP32 nmse %.2e\n", gemm_cases[i].name, e);
        CHECK(e <= FP32_NMSE, "gemm %s: nmse %.3g > %.1g with TF32 off", gemm_cases[i].name, e, FP32_NMSE);
    }
    nd_cuda_set_tf32(true);
    double e = gemm_nmse(&gemm_cases[0]);
    printf("gemm %-24s TF32 nmse %.2e (GPUs before compute capability 8.0 compute in FP32)\n", gemm_cases[0].name, e);
    CHECK(e <= TF32_NMSE, "gemm %s: nmse %.3g > %.1g with TF32 on", gemm_cases[0].name, e, TF32_NMSE);
    int wrong = prefetch_errors();
    printf("prefetch: %d wrong values over 6 overlapped batches\n", wrong);
    CHECK(wrong == 0, "%d prefetched values wrong", wrong);
    return test_finish("cuda.device");
}
