// The CPU backend's Winograd F(4x4, 3x3) inference convolutions (cpu/cpu_winograd.c): F.conv2d(x, w, b, 1, 1)
// against a double-precision direct convolution on shapes that exercise the tiling (sizes not multiples
// of 4, 1x1 and 5x5 images, several chunks of tiles, channels not multiples of 16, with and without bias),
// against the backend's other convolution paths, the ND_CONV_WINOGRAD switch and the default choice, the
// training path (never Winograd), the fused conv + group norm + activation, and the cached transformed
// filters after the weights change in place (a single value, an optimizer step, EMA weights copied in).
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "test.h"
#include "winograd_math.h"

#ifndef ND_TEST_HAVE_DNNL
#define ND_TEST_HAVE_DNNL 0
#endif

typedef struct conv_case {
    const char *name;
    int64_t batch, in_c, out_c, h, w;
    bool bias;
} conv_case;

static const conv_case cases[] = {
    {"16->16 8x8", 1, 16, 16, 8, 8, true},   {"20->24 7x9 batch 3", 3, 20, 24, 7, 9, false},
    {"17->5 1x1", 2, 17, 5, 1, 1, true},     {"32->33 5x5", 2, 32, 33, 5, 5, false},
    {"3->8 13x6", 4, 3, 8, 13, 6, true},     {"64->48 19x21, two chunks of tiles", 6, 64, 48, 19, 21, true},
    {"128->64 4x4", 5, 128, 64, 4, 4, true}, {"256->64 16x16", 2, 256, 64, 16, 16, false},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

// y (batch, out_c, h, w) = conv2d(x, w, b, stride 1, padding 1) summed in double.
static void conv_direct_double(double *y, const float *x, const float *w, const float *b, const conv_case *c) {
    for (int64_t n = 0; n < c->batch; n++)
        for (int64_t o = 0; o < c->out_c; o++)
            for (int64_t i = 0; i < c->h; i++)
                for (int64_t j = 0; j < c->w; j++) {
                    double sum = b ? b[o] : 0.0;
                    for (int64_t ch = 0; ch < c->in_c; ch++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int64_t yy = i + ki - 1, xx = j + kj - 1;
                                if (yy < 0 || yy >= c->h || xx < 0 || xx >= c->w) continue;
                                sum += (double)x[((n * c->in_c + ch) * c->h + yy) * c->w + xx] *
                                       (double)w[((o * c->in_c + ch) * 3 + ki) * 3 + kj];
                            }
                    y[((n * c->out_c + o) * c->h + i) * c->w + j] = sum;
                }
}

static void fill_normal(float *v, int64_t n, float std, unsigned *state) {
    for (int64_t i = 0; i < n; i += 2) { // Box-Muller from a small LCG: reproducible and independent of the library
        double u1, u2;
        *state = *state * 1664525u + 1013904223u, u1 = ((*state >> 8) + 1.0) / 16777217.0;
        *state = *state * 1664525u + 1013904223u, u2 = (*state >> 8) / 16777216.0;
        double r = sqrt(-2.0 * log(u1));
        v[i] = (float)(std * r * cos(6.283185307179586 * u2));
        if (i + 1 < n) v[i + 1] = (float)(std * r * sin(6.283185307179586 * u2));
    }
}

static void set_mode(const char *mode) {
    if (mode)
        setenv("ND_CONV_WINOGRAD", mode, 1);
    else
        unsetenv("ND_CONV_WINOGRAD");
}

// y = nd_conv2d(x, w, b, 1, 1) in inference (no grad) with ND_CONV_WINOGRAD = mode (NULL: unset), or by
// im2col + GEMM with `gemm`; with `train`, grad on and x requiring it (the training path).
static void run_conv(float *y, const float *x, const float *w, const float *b, const conv_case *c, const char *mode,
                     bool gemm, bool train) {
    set_mode(mode);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 1);
    ctx.conv_gemm = gemm;
    nd_tensor *tx = nd_from_host(&ctx, ND_SHAPE(c->batch, c->in_c, c->h, c->w), x); // (N, C, H, W)
    nd_tensor *tw = nd_from_host(&ctx, ND_SHAPE(c->out_c, c->in_c, 3, 3), w);       // (O, C, 3, 3)
    nd_tensor *tb = c->bias ? nd_from_host(&ctx, ND_SHAPE(c->out_c), b) : NULL;     // (O)
    bool previous = nd_ctx_set_grad(&ctx, train);
    if (train) nd_requires_grad(&ctx, tx, true);
    nd_copy_to_host(&ctx, nd_conv2d(&ctx, tx, tw, tb, 1, 1), y);
    nd_ctx_set_grad(&ctx, previous);
    nd_ctx_free(&ctx);
    set_mode(NULL);
}

typedef struct error_stats {
    double max_abs, rms_rel; // largest |y - ref|; RMS error over RMS of ref
} error_stats;

static error_stats errors(const float *y, const double *ref, int64_t n) {
    error_stats s = {0};
    double err2 = 0.0, ref2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - ref[i]);
        if (d > s.max_abs || isnan(d)) s.max_abs = isnan(d) ? INFINITY : d;
        err2 += d * d, ref2 += ref[i] * ref[i];
    }
    s.rms_rel = sqrt(err2 / (ref2 > 0 ? ref2 : 1.0));
    return s;
}

static double max_abs_of(const float *v, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
    return m;
}

// The bound on |y - ref| for F(4x4, 3x3) in float32: ND_WINO_ERROR_FACTOR * eps * sqrt(in_c) * max|x| * max|w|.
// Why this form: each output is A^T [sum over in_c of (G g G^T) .* (B^T d B)] A. The transforms are fixed
// 6x6 linear maps, so each transformed value is off by a few eps relative to max|x| (resp. max|w|) times the
// sum of the absolute entries of its row (at most ~5 for B^T, ~1.2 for G, ~8 for A^T); the sum over the
// in_c channels, rounded in float32 by the GEMM, adds errors that grow like a random walk, sqrt(in_c), as
// do the products' transform errors (independent between channels). What is left is a constant made of
// those row sums, measured at 0.8 to 12.8 over these cases (unit normal x, w ~ N(0, 1/(9 in_c)) as a trained
// network's, unit normal bias; oneDNN's own Winograd shows the same errors); 32 leaves room for unlucky
// draws, while a transform with one wrong constant is off by ~1e-3 * max|y| (max|y| ~ 4 here), about a
// hundred times this bound (~3e-5 at 256 channels).
#define ND_WINO_ERROR_FACTOR 32.0

static double error_bound(const conv_case *c, const float *x, const float *w) {
    int64_t nx = c->batch * c->in_c * c->h * c->w, nw = c->out_c * c->in_c * 9;
    return ND_WINO_ERROR_FACTOR * FLT_EPSILON * sqrt((double)c->in_c) * max_abs_of(x, nx) * max_abs_of(w, nw);
}

// Ours against double, and the backend's other paths (ND_CONV_WINOGRAD=0: oneDNN where built with it, else
// im2col; and im2col + GEMM) against double, for the record.
static void test_against_double(void) {
    unsigned seed = 12345;
    for (int k = 0; k < N_CASES; k++) {
        const conv_case *c = &cases[k];
        int64_t nx = c->batch * c->in_c * c->h * c->w, nw = c->out_c * c->in_c * 9,
                ny = c->batch * c->out_c * c->h * c->w;
        float *x = malloc((size_t)nx * sizeof(float)), *w = malloc((size_t)nw * sizeof(float));
        float *b = malloc((size_t)c->out_c * sizeof(float)), *y = malloc((size_t)ny * sizeof(float));
        float *y_other = malloc((size_t)ny * sizeof(float)), *y_gemm = malloc((size_t)ny * sizeof(float));
        double *ref = malloc((size_t)ny * sizeof(double));
        fill_normal(x, nx, 1.0f, &seed);
        fill_normal(w, nw, (float)(1.0 / sqrt(9.0 * (double)c->in_c)), &seed);
        fill_normal(b, c->out_c, 1.0f, &seed);
        conv_direct_double(ref, x, w, c->bias ? b : NULL, c);
        run_conv(y, x, w, b, c, "1", false, false);
        run_conv(y_other, x, w, b, c, "0", false, false);
        run_conv(y_gemm, x, w, b, c, "0", true, false);
        double bound = error_bound(c, x, w);
        error_stats ours = errors(y, ref, ny), other = errors(y_other, ref, ny), gemm = errors(y_gemm, ref, ny);
        double to_other = 0.0; // ours against the regular path
        for (int64_t i = 0; i < ny; i++) to_other = fmax(to_other, fabs((double)y[i] - (double)y_other[i]));
        printf("%-36s winograd max %.2e (bound %.2e, %.2f of eps sqrt(C) |x| |w|) rms %.2e; "
               "regular max %.2e rms %.2e; im2col max %.2e rms %.2e; winograd - regular max %.2e\n",
               c->name, ours.max_abs, bound, ours.max_abs * ND_WINO_ERROR_FACTOR / bound, ours.rms_rel, other.max_abs,
               other.rms_rel, gemm.max_abs, gemm.rms_rel, to_other);
        CHECK(to_other <= 2.0 * bound, "%s: Winograd and the regular path differ by %.3e", c->name, to_other);
        CHECK(ours.max_abs <= bound, "%s: Winograd off by %.3e from double, bound %.3e", c->name, ours.max_abs, bound);
        // the regular paths are direct sums: well within the same bound
        CHECK(other.max_abs <= bound && gemm.max_abs <= bound, "%s: regular path off by %.3e / %.3e, bound %.3e",
              c->name, other.max_abs, gemm.max_abs, bound);
        free(x), free(w), free(b), free(y), free(y_other), free(y_gemm), free(ref);
    }
}

static bool same(const float *a, const float *b, int64_t n) { return memcmp(a, b, (size_t)n * sizeof(float)) == 0; }

// Which path ran, told apart by the bits of the output: ours and the regular path round differently, and
// each is deterministic.
static void test_switch(void) {
    const conv_case odd = {"20->24", 2, 20, 24, 9, 7, true}, narrow = {"8->16", 2, 8, 16, 9, 7, true},
                    wide = {"64->64", 2, 64, 64, 8, 8, true}, thin = {"32->3", 2, 32, 3, 8, 8, true};
    const conv_case *all[4] = {&odd, &narrow, &wide, &thin};
    unsigned seed = 777;
    for (int k = 0; k < 4; k++) {
        const conv_case *c = all[k];
        int64_t nx = c->batch * c->in_c * c->h * c->w, nw = c->out_c * c->in_c * 9,
                ny = c->batch * c->out_c * c->h * c->w;
        float *x = malloc((size_t)nx * sizeof(float)), *w = malloc((size_t)nw * sizeof(float));
        float *b = malloc((size_t)c->out_c * sizeof(float)), *ours = malloc((size_t)ny * sizeof(float));
        float *never = malloc((size_t)ny * sizeof(float)), *unset = malloc((size_t)ny * sizeof(float));
        float *train_on = malloc((size_t)ny * sizeof(float)), *train_off = malloc((size_t)ny * sizeof(float));
        fill_normal(x, nx, 1.0f, &seed);
        fill_normal(w, nw, 0.1f, &seed);
        fill_normal(b, c->out_c, 1.0f, &seed);
        run_conv(ours, x, w, b, c, "1", false, false);
        run_conv(never, x, w, b, c, "0", false, false);
        run_conv(unset, x, w, b, c, NULL, false, false);
        run_conv(train_on, x, w, b, c, "1", false, true);
        run_conv(train_off, x, w, b, c, "0", false, true);
        CHECK(!same(ours, never, ny), "%s: ND_CONV_WINOGRAD=1 and =0 gave the same bits", c->name);
        CHECK(same(train_on, train_off, ny), "%s: the training path changed with ND_CONV_WINOGRAD=1", c->name);
        if (c == &odd) // ours by default where the build has no oneDNN; with it, where oneDNN has no Winograd
            CHECK(same(unset, ours, ny) || (ND_TEST_HAVE_DNNL && same(unset, never, ny)),
                  "%s: unset ran neither ours nor the library", c->name);
        if (c == &narrow) // fewer than 16 input channels: not ours by default
            CHECK(same(unset, never, ny), "%s: unset ran ours below 16 input channels", c->name);
        if (c == &thin && !ND_TEST_HAVE_DNNL) // 3 output channels: ours by default all the same
            CHECK(same(unset, ours, ny), "%s: unset did not run ours", c->name);
        free(x), free(w), free(b), free(ours), free(never), free(unset), free(train_on), free(train_off);
    }
}

// conv2d + group norm + GELU in one call, with ND_CONV_WINOGRAD=1: the fused path steps aside and the
// three ops (with our convolution) give the same bits as calling them one by one.
static void test_fused_falls_back(void) {
    set_mode("1");
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 3);
    nd_ctx_set_grad(&ctx, false);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(4, 64, 16, 16)),
              *w = nd_empty(&ctx, ND_SHAPE(64, 64, 3, 3)); // (N, C, H, W), (O, C, 3, 3)
    nd_tensor *b = nd_empty(&ctx, ND_SHAPE(64)), *nw = nd_empty(&ctx, ND_SHAPE(64)), *nb = nd_empty(&ctx, ND_SHAPE(64));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_rand_normal(&ctx, w, 0.0f, 0.05f);
    nd_rand_normal(&ctx, b, 0.0f, 0.5f);
    nd_rand_normal(&ctx, nw, 1.0f, 0.2f);
    nd_rand_normal(&ctx, nb, 0.0f, 0.2f);
    int64_t n = 4 * 64 * 16 * 16;
    float *fused = malloc((size_t)n * sizeof(float)), *three = malloc((size_t)n * sizeof(float));
    nd_copy_to_host(&ctx, nd_conv2d_group_norm_act(&ctx, x, w, b, 1, 1, 8, nw, nb, 1e-5f, ND_UNARY_GELU), fused);
    nd_copy_to_host(&ctx, nd_group_norm_act(&ctx, nd_conv2d(&ctx, x, w, b, 1, 1), 8, nw, nb, 1e-5f, ND_UNARY_GELU),
                    three);
    CHECK(same(fused, three, n), "fused conv + group norm + GELU differs from the three ops with our convolution");
    free(fused), free(three);
    nd_ctx_free(&ctx);
    set_mode(NULL);
}

// The cached transformed filter must follow the weights: a value changed in place, Adam steps of training
// (the weights' buffer is the parameters' flat buffer, updated in place), and EMA weights copied into that
// buffer for sampling. After each, our output must match the im2col path on the current weights.
static void test_filter_cache_follows_weights(void) {
    set_mode("1");
    nd_ctx ctx, ref;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 9);
    nd_ctx_init(&ref, ND_CPU, 64 << 20, 9);
    ref.conv_gemm = true;
    nd_params params;
    nd_params_init(&params);
    nd_tensor *w = nd_params_add(&params, "conv.weight", ND_SHAPE(32, 32, 3, 3), ND_INIT_UNIFORM, 1.0f / sqrtf(288.0f));
    nd_params_alloc(&params, &ctx);
    nd_ema ema;
    nd_ema_init(&ema, &params, &ctx, 0.5f);
    nd_adam opt;
    nd_adam_init(&opt, &params, &ctx, nd_adam_defaults());
    nd_tensor *x = nd_empty_persistent(&ctx, ND_SHAPE(2, 32, 10, 10)); // (N, C, H, W)
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    int64_t nx = x->numel, nw = w->numel, ny = 2 * 32 * 10 * 10;
    float *hx = malloc((size_t)nx * sizeof(float)), *hw = malloc((size_t)nw * sizeof(float));
    float *got = malloc((size_t)ny * sizeof(float)), *want = malloc((size_t)ny * sizeof(float));
    float *before = malloc((size_t)ny * sizeof(float));
    nd_copy_to_host(&ctx, x, hx);
    nd_tensor *rx = nd_empty_persistent(&ref, x->shape), *rw = nd_empty_persistent(&ref, w->shape);
    nd_copy_from_host(&ref, rx, hx);
    const char *what[4] = {"first call", "one value changed in place", "two Adam steps", "EMA weights copied in"};
    for (int change = 0; change < 4; change++) {
        if (change == 1) {
            nd_copy_to_host(&ctx, w, hw);
            hw[nw / 2] += 0.5f;
            nd_copy_from_host(&ctx, w, hw);
        } else if (change == 2) {
            for (int step = 0; step < 2; step++) {
                nd_ctx_set_grad(&ctx, true); // the parameters require gradients already
                nd_params_zero_grad(&params, &ctx);
                nd_backward(&ctx, nd_sum_all(&ctx, nd_square(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1))));
                nd_adam_step(&opt, &params, &ctx);
                nd_ema_update(&ema, &params, &ctx, step);
                nd_ctx_step_end(&ctx);
            }
        } else if (change == 3) {
            memcpy(params.data, ema.shadow, (size_t)params.total * sizeof(float)); // the CPU: host memory
        }
        nd_ctx_set_grad(&ctx, false);
        nd_copy_to_host(&ctx, w, hw);
        nd_copy_from_host(&ref, rw, hw);
        nd_copy_to_host(&ctx, nd_conv2d(&ctx, x, w, NULL, 1, 1), got);
        nd_copy_to_host(&ref, nd_conv2d(&ref, rx, rw, NULL, 1, 1), want);
        nd_ctx_step_end(&ctx);
        nd_ctx_step_end(&ref);
        long long worst;
        double v = test_max_violation(got, want, ny, 1e-5, 1e-4, &worst);
        CHECK(v <= 1.0, "after %s: violation %.2f at %lld (a stale transformed filter?)", what[change], v, worst);
        if (change > 0) CHECK(!same(got, before, ny), "after %s the output did not change", what[change]);
        memcpy(before, got, (size_t)ny * sizeof(float));
    }
    free(hx), free(hw), free(got), free(want), free(before);
    nd_adam_free(&opt);
    nd_ema_free(&ema);
    nd_params_free(&params);
    nd_ctx_free(&ref);
    nd_ctx_free(&ctx);
    set_mode(NULL);
}

// The transforms of winograd_math.h on single tiles: A^T [(G g G^T) .* (B^T d B)] A is the 4x4 correlation
// of the 6x6 tile d with the 3x3 filter g, to float32 rounding (one channel: a few eps of the terms' sum).
static void test_tile_math(void) {
    unsigned seed = 4242;
    double overall = 0.0;
    for (int trial = 0; trial < 100; trial++) {
        float d[ND_WINO_ELEMS], g[9], u[ND_WINO_ELEMS], v[ND_WINO_ELEMS], m[ND_WINO_ELEMS], y[16];
        fill_normal(d, ND_WINO_ELEMS, 1.0f, &seed);
        fill_normal(g, 9, 1.0f, &seed);
        nd_winograd_filter_tile(u, g);
        nd_winograd_input_tile(v, d);
        for (int e = 0; e < ND_WINO_ELEMS; e++) m[e] = u[e] * v[e];
        nd_winograd_output_tile(y, m);
        double worst = 0.0;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double want = 0.0, scale = 0.0;
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++) {
                        want += (double)d[(i + a) * 6 + j + b] * g[a * 3 + b];
                        scale += fabs((double)d[(i + a) * 6 + j + b] * g[a * 3 + b]);
                    }
                worst = fmax(worst, fabs(y[i * 4 + j] - want) / scale);
            }
        // relative to the sum of |terms|: a few dozen eps (the transforms' row sums), far below a wrong entry's
        CHECK(worst < 64 * FLT_EPSILON, "tile %d: error %.3e of the terms' magnitude", trial, worst);
        overall = fmax(overall, worst);
    }
    printf("single tiles: largest error %.1f eps of the sum of |terms|\n", overall / FLT_EPSILON);
}

int main(void) {
    test_tile_math();
    test_against_double();
    test_switch();
    test_fused_falls_back();
    test_filter_cache_follows_weights();
    return test_finish("winograd");
}
