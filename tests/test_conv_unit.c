// Unit tests of the convolution family beyond the gradient checks: shape errors name the op and both
// shapes, max pooling routes a tied window's gradient to its first maximum (as PyTorch), the column
// scratch of a convolution goes back to the step arena when the op returns, one input's gradient does
// not depend on which others require one, and the backend's convolution library (oneDNN, where the build
// has it) agrees with the im2col + GEMM path on the U-Net's shapes, in training and in inference (its
// Winograd kernels and the weights it keeps between calls, which must follow every change to them), and
// conv2d + group norm + activation in one call equals the three ops.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "test.h"

static nd_ctx error_ctx;

static nd_tensor *zeros(int64_t n, int64_t c, int64_t h, int64_t w) {
    return nd_zeros(&error_ctx, ND_SHAPE(n, c, h, w));
}

static void conv2d_channels(void) { nd_conv2d(&error_ctx, zeros(2, 3, 8, 8), zeros(4, 5, 3, 3), NULL, 1, 1); }
static void conv2d_bias(void) {
    nd_conv2d(&error_ctx, zeros(2, 3, 8, 8), zeros(4, 3, 3, 3), nd_zeros(&error_ctx, ND_SHAPE(5)), 1, 1);
}
static void conv2d_kernel(void) { nd_conv2d(&error_ctx, zeros(2, 3, 2, 2), zeros(4, 3, 5, 5), NULL, 1, 0); }
static void conv_transpose2d_channels(void) {
    nd_conv_transpose2d(&error_ctx, zeros(2, 3, 8, 8), zeros(4, 6, 2, 2), NULL, 2, 0, 0);
}
static void max_pool2d_kernel(void) { nd_max_pool2d(&error_ctx, zeros(2, 3, 2, 7), 3, 2); }
static void pixel_unshuffle_size(void) { nd_pixel_unshuffle(&error_ctx, zeros(2, 3, 5, 6), 2); }
static void upsample_rank(void) { nd_upsample_nearest(&error_ctx, nd_zeros(&error_ctx, ND_SHAPE(3, 4, 4)), 2); }

static void expect_abort(void (*fn)(void), const char *op, const char *shape_a, const char *shape_b) {
    char err[2048];
    bool aborted = test_aborts_with(fn, err, sizeof err);
    CHECK(aborted, "%s must abort", op);
    CHECK(strstr(err, op) && strstr(err, shape_a) && (!shape_b || strstr(err, shape_b)),
          "message lacks %s / %s / %s: %s", op, shape_a, shape_b ? shape_b : "", err);
    CHECK(strstr(err, "test_conv_unit.c:"), "message lacks the caller's location: %s", err);
}

static void test_shape_errors(void) {
    nd_ctx_init(&error_ctx, ND_CPU, 1 << 20, 0);
    expect_abort(conv2d_channels, "nd_conv2d", "(2,3,8,8)", "(4,5,3,3)");
    expect_abort(conv2d_bias, "nd_conv2d", "(5)", "(4,3,3,3)");
    expect_abort(conv2d_kernel, "nd_conv2d", "(2,3,2,2)", "(4,3,5,5)");
    expect_abort(conv_transpose2d_channels, "nd_conv_transpose2d", "(2,3,8,8)", "(4,6,2,2)");
    expect_abort(max_pool2d_kernel, "nd_max_pool2d", "(2,3,2,7)", NULL);
    expect_abort(pixel_unshuffle_size, "nd_pixel_unshuffle", "(2,3,5,6)", NULL);
    expect_abort(upsample_rank, "nd_upsample_nearest", "(3,4,4)", NULL);
    nd_ctx_free(&error_ctx);
}

// F.max_pool2d(x, 2, 2).backward(ones) on a window of equal values: the gradient goes to its first element.
static void test_max_pool_ties(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    const float values[16] = {1, 1, 2, 0, 1, 1, 2, 2, 0, 3, 5, 5, 3, 3, 4, 5};
    const float want[16] = {1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(1, 1, 4, 4), values); // (1, 1, 4, 4)
    nd_requires_grad(&ctx, x, false);
    nd_backward(&ctx, nd_sum_all(&ctx, nd_max_pool2d(&ctx, x, 2, 2)));
    float got[16];
    nd_grad_to_host(&ctx, x, got);
    CHECK(memcmp(got, want, sizeof got) == 0, "tied maxima must route to the first element of each window");
    nd_ctx_free(&ctx);
}

// A convolution's forward and backward leave the step arena holding only outputs and gradients: the column
// scratch (here 8 images x 144 columns x 144 rows, 648 KiB) goes back when the op returns.
static void test_scratch_released(void) {
    const size_t slack = 4096; // the arena's alignment padding of a few buffers
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 0);
    nd_tensor *x = nd_zeros(&ctx, ND_SHAPE(8, 16, 12, 12)); // (N, C, H, W)
    nd_tensor *w = nd_zeros(&ctx, ND_SHAPE(16, 16, 3, 3));  // (O, C, kh, kw)
    nd_requires_grad(&ctx, x, false);
    nd_requires_grad(&ctx, w, false);
    size_t at = ctx.step.data_used;
    nd_tensor *y = nd_conv2d(&ctx, x, w, NULL, 1, 1);              // (8, 16, 12, 12)
    nd_tensor *t = nd_conv_transpose2d(&ctx, y, w, NULL, 1, 1, 0); // (8, 16, 12, 12)
    nd_tensor *loss = nd_sum_all(&ctx, t);
    size_t outputs = (size_t)(y->numel + t->numel + loss->numel) * sizeof(float);
    CHECK(ctx.step.data_used - at <= outputs + slack, "forward kept %zu bytes for %zu bytes of outputs",
          ctx.step.data_used - at, outputs);
    at = ctx.step.data_used;
    nd_backward(&ctx, loss); // allocates one gradient per output
    CHECK(ctx.step.data_used - at <= outputs + slack, "backward kept %zu bytes for %zu bytes of gradients",
          ctx.step.data_used - at, outputs);
    nd_ctx_free(&ctx);
}

// The gradient of each of x, weight and bias alone equals its gradient when all three require one: the
// backward's branches that skip an input must not change the others.
static void partial_gradients(bool transpose) {
    const int64_t x_shape[4] = {3, 4, 5, 5}, w_shape[4] = {4, 4, 3, 3};
    float *want[3] = {0};
    for (int only = -1; only < 3; only++) {
        nd_ctx ctx;
        nd_ctx_init(&ctx, ND_CPU, 1 << 20, 7);
        nd_tensor *in[3] = {
            nd_empty(&ctx, nd_shape_from(x_shape, 4)), // (N, C, H, W)
            nd_empty(&ctx, nd_shape_from(w_shape, 4)), // (O, C, 3, 3) or (C_in, C_out, 3, 3)
            nd_empty(&ctx, ND_SHAPE(4)),               // (O) or (C_out)
        };
        for (int i = 0; i < 3; i++) {
            nd_rand_normal(&ctx, in[i], 0.0f, 1.0f);
            if (only < 0 || only == i) nd_requires_grad(&ctx, in[i], false);
        }
        nd_tensor *y = transpose ? nd_conv_transpose2d(&ctx, in[0], in[1], in[2], 2, 1, 1)
                                 : nd_conv2d(&ctx, in[0], in[1], in[2], 2, 1);
        nd_tensor *r = nd_empty(&ctx, y->shape);
        nd_rand_normal(&ctx, r, 0.0f, 1.0f);
        nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, y, r)));
        for (int i = 0; i < 3; i++) {
            if (only >= 0 && only != i) continue;
            size_t bytes = (size_t)in[i]->numel * sizeof(float);
            float *grad = malloc(bytes);
            nd_grad_to_host(&ctx, in[i], grad);
            if (only < 0) {
                want[i] = grad;
                continue;
            }
            CHECK(memcmp(grad, want[i], bytes) == 0, "%s: gradient of input %d alone differs",
                  transpose ? "nd_conv_transpose2d" : "nd_conv2d", i);
            free(grad);
        }
        nd_ctx_free(&ctx);
    }
    for (int i = 0; i < 3; i++) free(want[i]);
}

typedef struct path_case {
    const char *name;
    int64_t x[4], w[4];
    bool transposed, bias;
    int stride, padding, output_padding;
} path_case;

// The output, then the gradients of x, w and bias, of sum(conv(x, w, b) * r) on one path; with `inference`
// nothing requires a gradient and only the output is made (the gradients' sizes are 0).
static void run_path(const path_case *pc, bool gemm, bool inference, float **results, int64_t *sizes) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 7); // same seed: same inputs on both paths
    ctx.conv_gemm = gemm;
    nd_tensor *x = nd_empty(&ctx, nd_shape_from(pc->x, 4)), *w = nd_empty(&ctx, nd_shape_from(pc->w, 4));
    nd_tensor *b = pc->bias ? nd_empty(&ctx, ND_SHAPE(pc->transposed ? pc->w[1] : pc->w[0])) : NULL;
    nd_tensor *in[3] = {x, w, b};
    for (int i = 0; i < 3; i++) {
        if (!in[i]) continue;
        nd_rand_normal(&ctx, in[i], 0.0f, 1.0f);
        if (!inference) nd_requires_grad(&ctx, in[i], false);
    }
    nd_tensor *y = pc->transposed ? nd_conv_transpose2d(&ctx, x, w, b, pc->stride, pc->padding, pc->output_padding)
                                  : nd_conv2d(&ctx, x, w, b, pc->stride, pc->padding);
    if (!inference) {
        nd_tensor *r = nd_empty(&ctx, y->shape);
        nd_rand_normal(&ctx, r, 0.0f, 1.0f);
        nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, y, r)));
    }
    nd_tensor *values[4] = {y, x, w, b};
    for (int i = 0; i < 4; i++) {
        sizes[i] = values[i] && (i == 0 || !inference) ? values[i]->numel : 0;
        results[i] = malloc((size_t)(sizes[i] ? sizes[i] : 1) * sizeof(float));
        if (!sizes[i]) continue;
        if (i == 0)
            nd_copy_to_host(&ctx, values[i], results[i]);
        else
            nd_grad_to_host(&ctx, values[i], results[i]);
    }
    nd_ctx_free(&ctx);
}

static double max_abs(const float *v, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

static void test_library_matches_gemm(bool inference) {
    const path_case cases[] = {
        {"conv 1->64 (first layer)", {3, 1, 16, 16}, {64, 1, 3, 3}, false, true, 1, 1, 0},
        {"conv 64->64", {3, 64, 8, 8}, {64, 64, 3, 3}, false, true, 1, 1, 0},
        {"conv 64->64, 16x16 (Winograd's tiles across the image)",
         {2, 64, 16, 16},
         {64, 64, 3, 3},
         false,
         true,
         1,
         1,
         0},
        {"conv 256->64 (after rearrange pooling)", {3, 256, 4, 4}, {64, 256, 3, 3}, false, true, 1, 1, 0},
        {"conv 64->1 (last layer)", {2, 64, 8, 8}, {1, 64, 3, 3}, false, true, 1, 1, 0},
        {"conv 32->48 without bias", {2, 32, 6, 6}, {48, 32, 3, 3}, false, false, 1, 1, 0},
        {"conv stride 2, last window short", {2, 8, 7, 7}, {16, 8, 3, 3}, false, true, 2, 1, 0},
        {"conv 1x1 without bias", {2, 16, 5, 5}, {8, 16, 1, 1}, false, false, 1, 0, 0},
        {"conv_transpose 256->64 k2 s2 (up block)", {3, 256, 4, 4}, {256, 64, 2, 2}, true, true, 2, 0, 0},
        {"conv_transpose k3 s2 output_padding 1", {2, 8, 5, 5}, {8, 4, 3, 3}, true, true, 2, 1, 1},
    };
    const char *what[4] = {"output", "x gradient", "weight gradient", "bias gradient"};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        float *lib[4], *gemm[4];
        int64_t lib_n[4], gemm_n[4];
        run_path(&cases[k], false, inference, lib, lib_n);
        run_path(&cases[k], true, inference, gemm, gemm_n);
        for (int i = 0; i < 4; i++) {
            CHECK(lib_n[i] == gemm_n[i], "%s: %s sizes differ", cases[k].name, what[i]);
            // both sum the same products in different orders: float rounding of sums of up to 2304 terms of
            // unit-variance inputs. Winograd's transforms (inference) add and subtract inputs before the
            // products, so its rounding scales with the outputs' size (here up to ~200), not each output's
            long long worst;
            double atol = inference ? 2e-6 * max_abs(gemm[i], gemm_n[i]) + 1e-4 : 1e-4;
            double v = lib_n[i] == gemm_n[i] ? test_max_violation(lib[i], gemm[i], lib_n[i], atol, 1e-4, &worst) : 0;
            if (lib_n[i] == gemm_n[i] && lib_n[i] > 0)
                CHECK(v <= 1.0, "%s%s: %s differs between the library and GEMM paths (violation %.2f at %lld)",
                      cases[k].name, inference ? " (inference)" : "", what[i], v, worst);
            free(lib[i]);
            free(gemm[i]);
        }
    }
}

// More distinct shapes than the library's primitive cache holds (64): the first shape, replaced meanwhile,
// computes the same output when it comes back.
static void test_many_shapes(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 3);
    nd_tensor *w = nd_empty(&ctx, ND_SHAPE(3, 2, 3, 3)), *x = nd_empty(&ctx, ND_SHAPE(1, 2, 4, 4));
    nd_rand_normal(&ctx, w, 0.0f, 1.0f);
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    float first[48], again[48];
    nd_copy_to_host(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1), first);
    for (int64_t b = 2; b <= 70; b++) nd_conv2d(&ctx, nd_zeros(&ctx, ND_SHAPE(b, 2, 4, 4)), w, NULL, 1, 1);
    nd_copy_to_host(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1), again);
    CHECK(memcmp(first, again, sizeof first) == 0, "a convolution's output changed after 70 other shapes");
    nd_ctx_free(&ctx);
}

// An inference convolution's weights are kept in the library's layout between calls. Changed in place (the
// same address, as an optimizer step or a loaded checkpoint changes them), even in one value, the output
// is the new weights' and not the kept ones'; a buffer at a new address gets its own entry.
static void test_inference_weights_follow_changes(void) {
    const int64_t x_shape[4] = {2, 64, 8, 8}, w_shape[4] = {64, 64, 3, 3}; // Winograd's shape
    nd_ctx ctx, ref;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 5);
    nd_ctx_init(&ref, ND_CPU, 16 << 20, 5); // the GEMM path: nothing kept
    ref.conv_gemm = true;
    nd_tensor *x = nd_empty(&ctx, nd_shape_from(x_shape, 4)), *w = nd_empty(&ctx, nd_shape_from(w_shape, 4));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    int64_t nx = x->numel, nw = w->numel, ny = nx; // 64 channels in and out, same size
    float *host_x = malloc((size_t)nx * sizeof(float)), *host_w = malloc((size_t)nw * sizeof(float));
    float *got = malloc((size_t)ny * sizeof(float)), *want = malloc((size_t)ny * sizeof(float));
    float *before = malloc((size_t)ny * sizeof(float));
    nd_copy_to_host(&ctx, x, host_x);
    nd_tensor *rx = nd_from_host(&ref, x->shape, host_x), *rw = nd_empty(&ref, w->shape);
    for (int change = 0; change < 4; change++) {
        if (change == 0 || change == 2) {
            nd_rand_normal(&ctx, w, 0.0f, 0.05f); // new weights at the same address
        } else if (change == 1) {
            nd_copy_to_host(&ctx, w, host_w); // one value, the last one compared
            host_w[nw - 1] += 1.0f;
            nd_copy_from_host(&ctx, w, host_w);
        } else { // other weights at another address
            w = nd_empty(&ctx, w->shape);
            nd_rand_normal(&ctx, w, 0.0f, 0.05f);
        }
        nd_copy_to_host(&ctx, w, host_w);
        nd_copy_from_host(&ref, rw, host_w);
        nd_copy_to_host(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1), got);
        nd_copy_to_host(&ref, nd_conv2d(&ref, rx, rw, NULL, 1, 1), want);
        long long worst;
        double v = test_max_violation(got, want, ny, 1e-4, 1e-4, &worst);
        CHECK(v <= 1.0, "inference conv after weight change %d: violation %.2f at %lld", change, v, worst);
        if (change > 0)
            CHECK(memcmp(got, before, (size_t)ny * sizeof(float)) != 0, "weight change %d left the output as it was",
                  change);
        memcpy(before, got, (size_t)ny * sizeof(float));
        // the same weights again: the kept copy, bit for bit the same output
        nd_copy_to_host(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1), got);
        CHECK(memcmp(got, before, (size_t)ny * sizeof(float)) == 0, "unchanged weights gave another output");
    }
    free(host_x), free(host_w), free(got), free(want), free(before);
    nd_ctx_free(&ctx);
    nd_ctx_free(&ref);
}

typedef struct fused_case {
    const char *name;
    int64_t x[4], out_c;
    int groups;
    bool bias, affine;
    nd_unary_kind act;
} fused_case;

// act(group_norm(conv2d(x))) with nothing to differentiate: the backend's one call (oneDNN: normalized from
// the convolution's blocked output) against nd_conv2d then nd_group_norm_act on the GEMM path.
static void fused_run(const fused_case *fc, bool gemm, float *out) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 9); // same seed: same inputs on both paths
    ctx.conv_gemm = gemm;
    int64_t in_c = fc->x[1], out_c = fc->out_c;
    nd_tensor *x = nd_empty(&ctx, nd_shape_from(fc->x, 4)), *w = nd_empty(&ctx, ND_SHAPE(out_c, in_c, 3, 3));
    nd_tensor *b = nd_empty(&ctx, ND_SHAPE(out_c)), *nw = nd_empty(&ctx, ND_SHAPE(out_c));
    nd_tensor *nb = nd_empty(&ctx, ND_SHAPE(out_c));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_rand_normal(&ctx, w, 0.0f, 1.0f / 3.0f);
    nd_rand_normal(&ctx, b, 0.5f, 1.0f); // a mean far from 0, which the variance must not feel
    nd_rand_normal(&ctx, nw, 1.0f, 0.5f);
    nd_rand_normal(&ctx, nb, 0.0f, 0.5f);
    nd_tensor *y = nd_conv2d_group_norm_act(&ctx, x, w, fc->bias ? b : NULL, 1, 1, fc->groups, fc->affine ? nw : NULL,
                                            fc->affine ? nb : NULL, 1e-5f, fc->act);
    nd_copy_to_host(&ctx, y, out);
    nd_ctx_free(&ctx);
}

static void test_conv_norm_act_matches_three_ops(void) {
    const fused_case cases[] = {
        {"GELUConvBlock 64->64, 16x16, 32 groups", {2, 64, 16, 16}, 64, 32, true, true, ND_UNARY_GELU},
        {"first block 1->64, 8 groups", {2, 1, 16, 16}, 64, 8, true, true, ND_UNARY_GELU},
        {"256->64 at 4x4 (rearrange pooling)", {3, 256, 4, 4}, 64, 32, true, true, ND_UNARY_GELU},
        {"24 channels (a part block), groups across blocks", {2, 16, 6, 6}, 24, 2, true, true, ND_UNARY_SILU},
        {"5x5 positions (a part tile), no affine", {2, 32, 5, 5}, 32, 4, false, false, ND_UNARY_RELU},
        {"128 channels, 1 group", {1, 64, 8, 8}, 128, 1, true, true, ND_UNARY_TANH},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const fused_case *fc = &cases[k];
        int64_t n = fc->x[0] * fc->out_c * fc->x[2] * fc->x[3];
        float *fused = malloc((size_t)n * sizeof(float)), *three = malloc((size_t)n * sizeof(float));
        fused_run(fc, false, fused);
        fused_run(fc, true, three);
        // normalized outputs of O(1): the convolutions' rounding (Winograd's included) divided by the
        // groups' standard deviation
        long long worst;
        double v = test_max_violation(fused, three, n, 1e-4, 1e-4, &worst);
        CHECK(v <= 1.0, "%s: fused conv + group norm + act differs from the three ops (violation %.2f at %lld)",
              fc->name, v, worst);
        free(fused);
        free(three);
    }
}

int main(void) {
    test_shape_errors();
    test_max_pool_ties();
    test_scratch_released();
    partial_gradients(false);
    partial_gradients(true);
    test_library_matches_gemm(false);
    test_library_matches_gemm(true);
    test_inference_weights_follow_changes();
    test_conv_norm_act_matches_three_ops();
    test_many_shapes();
    return test_finish("conv_unit");
}
