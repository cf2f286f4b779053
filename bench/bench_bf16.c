// Float32 against bfloat16 products on this CPU, for the shapes a dli-unet training step runs: the matrix
// products (OpenBLAS's cblas_sgemm against the bf16 GEMM with its input conversions, and which of the two
// nd_cpu_gemm_bf16 picks), and the convolutions (nd_conv2d / nd_conv_transpose2d in an f32 and in a bf16
// context: forward, and forward + backward).
//
//   bench_bf16 [--repeats N]
//
// Each time is the process's CPU time (all threads, which sleep at barriers: OMP_WAIT_POLICY=passive), the
// best of N runs (default 10) after a warm-up: on a machine shared with other work the wall time says when
// the cores were free, the CPU time what the work cost. Needs AVX512_BF16 and oneDNN (it says why not).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu_bf16.h"

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

typedef struct gemm_case {
    const char *what;
    bool trans_a, trans_b;
    int64_t m, n, k;
} gemm_case;

// dli-unet at batch 128: the dense bottleneck (16x16: 2048 <-> 64; 28x28: 6272 <-> 64) forward and backward,
// the embedding blocks' layers, the im2col GEMMs of a 3x3 64-channel convolution over 16 images of 16x16
// (the path without oneDNN), and a large square product for reference.
static const gemm_case gemm_cases[] = {
    {"dense_emb.0 fwd (16px)", false, true, 128, 64, 2048}, {"dense_emb.0 dx", false, false, 128, 2048, 64},
    {"dense_emb.0 dw", true, false, 64, 2048, 128},         {"dense_emb.4 fwd (16px)", false, true, 128, 2048, 64},
    {"dense_emb.4 dw", true, false, 2048, 64, 128},         {"dense_emb.0 fwd (28px)", false, true, 128, 64, 6272},
    {"dense_emb.4 fwd (28px)", false, true, 128, 6272, 64}, {"temb_1 fc1 (8 -> 128)", false, true, 128, 128, 8},
    {"temb_2 fc2 (64 -> 64)", false, true, 128, 64, 64},    {"temb_1 fc2 (128 -> 128)", false, true, 128, 128, 128},
    {"im2col conv fwd", false, false, 64, 4096, 576},       {"im2col conv dw", false, true, 64, 576, 4096},
    {"im2col conv dcol", true, false, 576, 4096, 64},       {"square 1024", false, false, 1024, 1024, 1024},
};

typedef void gemm_fn(bool, bool, int64_t, int64_t, int64_t, float, const float *, int64_t, int64_t, const float *,
                     int64_t, int64_t, float, float *, int64_t, int64_t, int64_t);

static double time_gemm(gemm_fn *gemm, const gemm_case *c, const float *a, const float *b, float *out, int repeats) {
    int64_t lda = c->trans_a ? c->m : c->k, ldb = c->trans_b ? c->k : c->n;
    double best = 0.0;
    for (int r = 0; r < repeats + 1; r++) {
        double start = cpu_ms();
        gemm(c->trans_a, c->trans_b, c->m, c->n, c->k, 1.0f, a, lda, 0, b, ldb, 0, 0.0f, out, c->n, 0, 1);
        double ms = cpu_ms() - start;
        if (r > 0 && (best == 0.0 || ms < best)) best = ms;
    }
    return best;
}

typedef struct conv_case {
    const char *name;
    int64_t batch, in_c, out_c, size, kernel, stride, padding;
    bool transposed;
} conv_case;

// Every convolution shape of the dli-unet at batch 128 on 16x16 images (channels 64, 64, 128); T: transposed.
static const conv_case conv_cases[] = {
    {"3x3 1->64 16px", 128, 1, 64, 16, 3, 1, 1, false},     {"3x3 64->64 16px", 128, 64, 64, 16, 3, 1, 1, false},
    {"3x3 256->64 8px", 128, 256, 64, 8, 3, 1, 1, false},   {"3x3 64->64 8px", 128, 64, 64, 8, 3, 1, 1, false},
    {"3x3 64->128 8px", 128, 64, 128, 8, 3, 1, 1, false},   {"3x3 128->128 8px", 128, 128, 128, 8, 3, 1, 1, false},
    {"3x3 512->128 4px", 128, 512, 128, 4, 3, 1, 1, false}, {"3x3 128->128 4px", 128, 128, 128, 4, 3, 1, 1, false},
    {"T2x2 256->64 4px", 128, 256, 64, 4, 2, 2, 0, true},   {"T2x2 128->64 8px", 128, 128, 64, 8, 2, 2, 0, true},
    {"3x3 128->64 16px", 128, 128, 64, 16, 3, 1, 1, false}, {"3x3 64->1 16px", 128, 64, 1, 16, 3, 1, 1, false},
};

// What a run times: the forward alone, or forward and backward for the input's or the weight's gradient.
typedef enum { PASS_FORWARD, PASS_DX, PASS_DW, N_PASSES } conv_pass;

// Best of `repeats` runs of one convolution: the forward alone, or forward + backward of sum(y) into x's or w's
// gradient.
static double time_conv(nd_ctx *ctx, const conv_case *c, conv_pass pass, int repeats) {
    nd_shape ws = c->transposed ? ND_SHAPE(c->in_c, c->out_c, c->kernel, c->kernel)
                                : ND_SHAPE(c->out_c, c->in_c, c->kernel, c->kernel);
    double best = 0.0;
    bool backward = pass != PASS_FORWARD, previous = nd_ctx_set_grad(ctx, backward);
    for (int r = 0; r < repeats + 1; r++) {
        nd_tensor *x = nd_empty(ctx, ND_SHAPE(c->batch, c->in_c, c->size, c->size));
        nd_tensor *w = nd_empty(ctx, ws), *bias = nd_empty(ctx, ND_SHAPE(c->out_c));
        nd_rand_normal(ctx, x, 0.0f, 1.0f), nd_rand_normal(ctx, w, 0.0f, 0.05f), nd_fill(ctx, bias, 0.1f);
        if (backward) nd_requires_grad(ctx, pass == PASS_DX ? x : w, false);
        double start = cpu_ms();
        nd_tensor *y = c->transposed ? nd_conv_transpose2d(ctx, x, w, bias, c->stride, c->padding, 0)
                                     : nd_conv2d(ctx, x, w, bias, c->stride, c->padding);
        if (backward) nd_backward(ctx, nd_sum_all(ctx, y));
        double ms = cpu_ms() - start;
        nd_ctx_step_end(ctx);
        if (r > 0 && (best == 0.0 || ms < best)) best = ms;
    }
    nd_ctx_set_grad(ctx, previous);
    return best;
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    int repeats = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_bf16 [--repeats N]\n");
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    char why[512];
    if (!nd_backend_cpu_bf16(why, sizeof why)) {
        fprintf(stderr, "bench_bf16: %s\n", why);
        return 1;
    }

    printf("%-24s %5s %5s %5s  %9s %7s  %9s %7s  %6s  %s\n", "matrix product", "m", "n", "k", "f32 ms", "GF/s",
           "bf16 ms", "GF/s", "f32/bf16", "bf16 mode runs");
    for (int i = 0; i < ND_COUNT(gemm_cases); i++) {
        const gemm_case *c = &gemm_cases[i];
        float *a = malloc((size_t)(c->m * c->k) * sizeof(float)), *b = malloc((size_t)(c->k * c->n) * sizeof(float));
        float *out = malloc((size_t)(c->m * c->n) * sizeof(float));
        for (int64_t j = 0; j < c->m * c->k; j++) a[j] = (float)((j * 7919) % 1000) / 500.0f - 1.0f;
        for (int64_t j = 0; j < c->k * c->n; j++) b[j] = (float)((j * 104729) % 1000) / 500.0f - 1.0f;
        double f32 = time_gemm(nd_cpu_gemm, c, a, b, out, repeats);
        double bf = time_gemm(nd_cpu_gemm_bf16_always, c, a, b, out, repeats);
        double gflop = 2.0 * (double)(c->m * c->n * c->k) * 1e-9;
        printf("%-24s %5lld %5lld %5lld  %9.3f %7.1f  %9.3f %7.1f  %6.2fx  %s\n", c->what, (long long)c->m,
               (long long)c->n, (long long)c->k, f32, gflop / (f32 * 1e-3), bf, gflop / (bf * 1e-3), f32 / bf,
               nd_cpu_gemm_bf16_pays(c->m, c->n, c->k, 1) ? "bf16" : "f32");
        free(a), free(b), free(out);
    }

    nd_ctx f32_ctx, bf16_ctx;
    nd_ctx_init(&f32_ctx, ND_CPU, 64 << 20, 1);
    nd_ctx_init(&bf16_ctx, ND_CPU, 64 << 20, 1);
    nd_error err;
    if (!nd_ctx_set_precision(&bf16_ctx, ND_PRECISION_BF16, &err)) {
        fprintf(stderr, "bench_bf16: %s\n", err.msg);
        return 1;
    }
    printf("\n%-20s  %8s %8s %6s  %8s %8s %6s  %8s %8s %6s\n", "conv (batch 128)", "fwd f32", "bf16", "ratio",
           "+dx f32", "bf16", "ratio", "+dw f32", "bf16", "ratio");
    for (int i = 0; i < ND_COUNT(conv_cases); i++) {
        const conv_case *c = &conv_cases[i];
        printf("%-20s", c->name);
        for (int pass = 0; pass < N_PASSES; pass++) {
            double f32 = time_conv(&f32_ctx, c, pass, repeats), bf = time_conv(&bf16_ctx, c, pass, repeats);
            printf("  %8.2f %8.2f %5.2fx", f32, bf, f32 / bf);
        }
        printf("\n");
        fflush(stdout);
    }
    printf("CPU ms, best of %d; ratio = f32 time / bf16 time (above 1: bf16 is faster)\n", repeats);
    nd_ctx_free(&f32_ctx);
    nd_ctx_free(&bf16_ctx);
    return 0;
}
