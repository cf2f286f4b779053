// bfloat16 products (--precision bf16). unit: the conversion rounds to nearest even and keeps NaN and
// infinity; the CPU check agrees with the kernel's flags; the bf16 GEMM, in every layout the backend entry
// takes, equals a float32 product of the rounded inputs; matmul, conv2d and conv_transpose2d, forward and
// backward, in a bf16 context equal a float32 context's on rounded inputs (so the outputs and gradients are
// float32) and lie within bf16's rounding of its results on the raw inputs; products too small to gain stay
// float32; bf16 is refused, with why, on CUDA, for a bad name, and where oneDNN may not use AVX512_BF16;
// nanodiff sample runs with it. train: a tiny DDPM trained in bf16 follows the float32 run's loss.
//   test_bf16 unit NANODIFF | test_bf16 train
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cpu/cpu_bf16.h"
#include "test.h"
#include "train.h"

static char bf16_why[512];

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float round_bf16(float x) { return nd_bf16_to_float(nd_bf16_from_float(x)); }

// The bf16 nearest to a finite x, ties to the even one, found in double arithmetic from the two candidates.
static uint16_t reference_bf16(float x) {
    uint16_t low = (uint16_t)(bits_of(x) >> 16), high = (uint16_t)(low + 1); // truncated, one ulp further out
    double below = fabs((double)x) - fabs((double)nd_bf16_to_float(low));
    // one past bf16's largest is infinity, which rounding places at 2^128, where the next value would be
    double next = (high & 0x7fff) == 0x7f80 ? ldexp(1.0, 128) : fabs((double)nd_bf16_to_float(high));
    double above = next - fabs((double)x);
    if (below != above) return below < above ? low : high;
    return (low & 1) ? high : low;
}

static void test_conversion(void) {
    static const struct {
        uint32_t in;
        uint16_t out;
        const char *what;
    } cases[] = {
        {0x3f800000, 0x3f80, "1 is exact"},
        {0x3f807fff, 0x3f80, "below half an ulp: down"},
        {0x3f808000, 0x3f80, "a tie to the even 0x3f80: down"},
        {0x3f818000, 0x3f82, "a tie from the odd 0x3f81: up"},
        {0x3f808001, 0x3f81, "above half an ulp: up"},
        {0xbf808001, 0xbf81, "negative, above half an ulp: away from 0"},
        {0x7f800000, 0x7f80, "+inf"},
        {0xff800000, 0xff80, "-inf"},
        {0x7f7f0000, 0x7f7f, "bf16's largest"},
        {0x7f7fffff, 0x7f80, "float32's largest rounds to inf"},
        {0x80000000, 0x8000, "-0"},
        {0x00010000, 0x0001, "a bf16 subnormal is kept"},
        {0x00018000, 0x0002, "a subnormal tie from the odd 0x0001: up"},
        {0x00000001, 0x0000, "the smallest float32 subnormal rounds to 0"},
        {0x7fc00000, 0x7fc0, "quiet NaN"},
        {0xffc00001, 0xffc0, "negative NaN keeps its sign"},
        {0x7f800001, 0x7fc0, "a NaN whose payload is in the low half stays NaN, not inf"},
        {0x7f80ffff, 0x7fc0, "a NaN that would round up into the exponent stays NaN"},
    };
    for (int i = 0; i < ND_COUNT(cases); i++) {
        uint16_t got = nd_bf16_from_float(float_of(cases[i].in));
        CHECK(got == cases[i].out, "%s: 0x%08x -> 0x%04x, expected 0x%04x", cases[i].what, cases[i].in, got,
              cases[i].out);
    }
    int wrong = 0;
    for (uint32_t h = 0; h < 65536; h++) { // every bf16 converts back to itself; NaNs stay NaN
        float x = nd_bf16_to_float((uint16_t)h);
        uint16_t back = nd_bf16_from_float(x);
        if (isnan(x) ? !isnan(nd_bf16_to_float(back)) : back != h) wrong++;
    }
    CHECK(wrong == 0, "%d of the 65536 bf16 values do not survive float32 and back", wrong);
    // random finite float32 bit patterns against the nearest-even reference, through the array conversion
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof(float));
    uint16_t *h = malloc(N * sizeof(uint16_t));
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        uint32_t u = (uint32_t)state;
        if ((u & 0x7f800000u) == 0x7f800000u) u &= 0xbfffffffu; // finite
        x[i] = float_of(u);
    }
    nd_cpu_to_bf16(h, x, N);
    wrong = 0;
    int first = -1;
    for (int i = 0; i < N; i++)
        if (h[i] != reference_bf16(x[i]) || h[i] != nd_bf16_from_float(x[i])) wrong++, first = first < 0 ? i : first;
    CHECK(wrong == 0, "%d of %d random floats round wrongly (first 0x%08x -> 0x%04x, nearest even 0x%04x)", wrong, N,
          first < 0 ? 0 : bits_of(x[first]), first < 0 ? 0 : h[first], first < 0 ? 0 : reference_bf16(x[first]));
    free(x);
    free(h);
}

// nd_cpu_has_avx512_bf16 (cpuid) against the kernel's list of the CPU's flags.
static void test_cpu_check(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[8192];
    int flags_lines = 0, with_bf16 = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) flags_lines++, with_bf16 += strstr(line, " avx512_bf16") != NULL;
    fclose(f);
    if (flags_lines == 0) return; // not an x86 kernel's format
    CHECK(nd_cpu_has_avx512_bf16() == (with_bf16 == flags_lines), "cpuid says %s, /proc/cpuinfo %d of %d",
          nd_cpu_has_avx512_bf16() ? "AVX512_BF16" : "none", with_bf16, flags_lines);
}

static void test_refusals(void) {
    nd_error err = {{0}};
    nd_precision p;
    CHECK(nd_precision_parse("bf16", &p) && p == ND_PRECISION_BF16 && nd_precision_parse("f32", &p) &&
              p == ND_PRECISION_F32 && !nd_precision_parse("fp16", &p) && !nd_precision_parse("BF16", &p),
          "nd_precision_parse");
    CHECK(!nd_precision_supported(ND_CUDA, ND_PRECISION_BF16, &err) && strstr(err.msg, "CPU") &&
              strstr(err.msg, "--precision f32"),
          "bf16 on CUDA: %s", err.msg);
    CHECK(nd_precision_supported(ND_CPU, ND_PRECISION_F32, NULL), "f32 on the CPU refused");
    nd_ctx cuda = {.device = ND_CUDA}; // never allocated from: only its device is read
    CHECK(!nd_ctx_set_precision(&cuda, ND_PRECISION_BF16, &err) && cuda.be == NULL &&
              cuda.precision == ND_PRECISION_F32,
          "a refused precision changed the context");
    bool available = nd_backend_cpu_bf16(bf16_why, sizeof bf16_why) != NULL;
    CHECK(available == nd_precision_supported(ND_CPU, ND_PRECISION_BF16, &err), "two answers to one question");
    if (!available) CHECK(strstr(bf16_why, "--precision f32") != NULL, "a refusal that says no way out: %s", bf16_why);
}

// One cblas-style call: batch products of op(A) (m, k) and op(B) (k, n) into C (m, n) with leading dimensions
// padded, A or B shared by the batch (stride 0), and C shared (stride 0: the products summed into it).
typedef struct gemm_case {
    bool trans_a, trans_b;
    int64_t m, n, k, pad, batch;
    bool shared_a, shared_b, shared_c;
    float alpha, beta;
} gemm_case;

static void fill_uniform(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((seed >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
    }
}

// c = the call's result in double, inputs rounded to bf16 when `round`; bound = what the error of a float32
// accumulation is measured against (sum of |terms|).
static void reference_gemm(const gemm_case *g, const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                           int64_t sb, double *c, double *bound, int64_t ldc, int64_t sc, bool round) {
    for (int64_t i = 0; i < g->batch; i++)
        for (int64_t r = 0; r < g->m; r++)
            for (int64_t j = 0; j < g->n; j++) {
                double sum = 0, mag = 0;
                for (int64_t q = 0; q < g->k; q++) {
                    float av = a[i * sa + (g->trans_a ? q * lda + r : r * lda + q)];
                    float bv = b[i * sb + (g->trans_b ? j * ldb + q : q * ldb + j)];
                    if (round) av = round_bf16(av), bv = round_bf16(bv);
                    sum += (double)av * bv, mag += fabs((double)av * bv);
                }
                double *out = &c[i * sc + r * ldc + j];
                bound[i * sc + r * ldc + j] = fabs(g->alpha) * mag + fabs(g->beta * *out);
                *out = g->alpha * sum + g->beta * *out;
            }
}

static void test_gemm(void) {
    static const gemm_case cases[] = {
        {false, false, 40, 48, 56, 0, 1, false, false, false, 1.0f, 0.0f},
        {true, false, 33, 20, 17, 3, 1, false, false, false, 0.5f, 1.0f},
        {false, true, 17, 31, 64, 0, 3, false, true, false, 1.0f, 0.25f},
        {true, true, 24, 16, 40, 5, 4, true, false, false, 1.0f, 0.0f},
        {false, false, 16, 24, 32, 0, 5, false, false, true, 1.0f, 1.0f},
        {false, true, 20, 18, 22, 2, 3, true, false, false, -2.0f, 0.5f},
        {true, false, 18, 20, 24, 1, 3, true, true, false, 1.0f, 0.0f},
    };
    for (int t = 0; t < ND_COUNT(cases); t++) {
        const gemm_case *g = &cases[t];
        int64_t rows_a = g->trans_a ? g->k : g->m, cols_a = g->trans_a ? g->m : g->k;
        int64_t rows_b = g->trans_b ? g->n : g->k, cols_b = g->trans_b ? g->k : g->n;
        int64_t lda = cols_a + g->pad, ldb = cols_b + g->pad, ldc = g->n + g->pad;
        int64_t sa = g->shared_a ? 0 : rows_a * lda, sb = g->shared_b ? 0 : rows_b * ldb;
        int64_t sc = g->shared_c ? 0 : g->m * ldc, nc = g->shared_c ? g->m * ldc : g->batch * g->m * ldc;
        float *a = malloc((size_t)(g->batch * rows_a * lda) * sizeof(float));
        float *b = malloc((size_t)(g->batch * rows_b * ldb) * sizeof(float));
        float *c = malloc((size_t)nc * sizeof(float));
        double *want = malloc((size_t)nc * sizeof(double)), *raw = malloc((size_t)nc * sizeof(double));
        double *bound = malloc((size_t)nc * sizeof(double));
        fill_uniform(a, g->batch * rows_a * lda, 1 + t), fill_uniform(b, g->batch * rows_b * ldb, 100 + t);
        fill_uniform(c, nc, 200 + t);
        for (int64_t i = 0; i < nc; i++) want[i] = raw[i] = c[i];
        reference_gemm(g, a, lda, sa, b, ldb, sb, want, bound, ldc, sc, true);
        reference_gemm(g, a, lda, sa, b, ldb, sb, raw, bound, ldc, sc, false);
        nd_cpu_gemm_bf16_always(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, a, lda, sa, b, ldb, sb, g->beta, c,
                                ldc, sc, g->batch);
        // float32 accumulation of k products: a few k * 2^-24 of the terms' magnitude (1e-5 covers k = 64 with
        // room); unrounded inputs would be ~2^-9 of each term off, far outside it
        double worst = 0, worst_raw = 0;
        for (int64_t i = 0; i < nc; i++) {
            if (i % ldc >= g->n) { // the padding between rows is never written
                worst = fmax(worst, c[i] == (float)want[i] ? 0 : INFINITY);
                continue;
            }
            double allowed = 1e-5 * bound[i] + 1e-6;
            worst = fmax(worst, fabs(c[i] - want[i]) / allowed);
            worst_raw = fmax(worst_raw, fabs(c[i] - raw[i]) / allowed);
        }
        CHECK(worst <= 1.0, "gemm case %d: %.3g of the tolerance from the product of rounded inputs", t, worst);
        CHECK(worst_raw > 1.0, "gemm case %d: equals the float32 product of the unrounded inputs", t);
        free(a), free(b), free(c), free(want), free(raw), free(bound);
    }
    // the rule: sums against a vector and products of a few thousand flops stay float32, bit for bit
    CHECK(!nd_cpu_gemm_bf16_pays(4096, 1, 4096, 1) && !nd_cpu_gemm_bf16_pays(128, 128, 8, 1) &&
              nd_cpu_gemm_bf16_pays(128, 64, 64, 1) && nd_cpu_gemm_bf16_pays(64, 64, 16, 16),
          "nd_cpu_gemm_bf16_pays");
    float a[8 * 8], b[8 * 8], c32[8 * 8], c16[8 * 8];
    fill_uniform(a, 64, 7), fill_uniform(b, 64, 8);
    nd_cpu_gemm(false, false, 8, 8, 8, 1.0f, a, 8, 0, b, 8, 0, 0.0f, c32, 8, 0, 1);
    nd_cpu_gemm_bf16(false, false, 8, 8, 8, 1.0f, a, 8, 0, b, 8, 0, 0.0f, c16, 8, 0, 1);
    CHECK(memcmp(c32, c16, sizeof c32) == 0, "a small product left float32 changed");
}

// An op under test: y = op(x, w, bias) in ctx (bias may be NULL).
typedef nd_tensor *op_fn(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias);

static nd_tensor *op_matmul(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_matmul(ctx, x, w, false, false);
}
static nd_tensor *op_conv(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_conv2d(ctx, x, w, bias, 1, 1);
}
static nd_tensor *op_conv_strided(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_conv2d(ctx, x, w, bias, 2, 1);
}
static nd_tensor *op_conv_pointwise(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_conv2d(ctx, x, w, bias, 1, 0);
}
static nd_tensor *op_conv_transpose(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_conv_transpose2d(ctx, x, w, bias, 2, 1, 0);
}
static nd_tensor *op_conv_transpose_2x2(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *bias) {
    return nd_conv_transpose2d(ctx, x, w, bias, 2, 0, 0);
}

typedef struct op_case {
    const char *name;
    op_fn *op;
    nd_shape x, w;
    int64_t bias; // channels, 0: none
    enum { MATMUL, CONV, CONV_TRANSPOSED } kind;
} op_case;

enum { Y, DX, DW, DB, N_OUT };
static const char *const out_names[N_OUT] = {"y", "dx", "dw", "dbias"};

// y = op(x, w, bias) and the gradients of sum(y * r) in a fresh context of `precision`, x, w and r rounded to
// bf16 first when `round` (the bias is added in float32 either way); out[Y..DB] are malloc'd host copies
// (out[DB] NULL without bias), n their sizes.
static void run_op(const op_case *c, nd_precision precision, bool round, bool conv_gemm, float *out[N_OUT],
                   int64_t n[N_OUT]) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 5);
    nd_error err;
    CHECK(nd_ctx_set_precision(&ctx, precision, &err), "%s", err.msg);
    ctx.conv_gemm = conv_gemm;
    nd_tensor *in[3] = {nd_empty(&ctx, c->x), nd_empty(&ctx, c->w), c->bias ? nd_empty(&ctx, ND_SHAPE(c->bias)) : NULL};
    for (int i = 0; i < 3; i++) {
        if (!in[i]) continue;
        float *host = malloc((size_t)in[i]->numel * sizeof(float));
        fill_uniform(host, in[i]->numel, 31 + i);
        if (round && i < 2)
            for (int64_t j = 0; j < in[i]->numel; j++) host[j] = round_bf16(host[j]);
        nd_copy_from_host(&ctx, in[i], host);
        nd_requires_grad(&ctx, in[i], false);
        free(host);
    }
    nd_tensor *y = c->op(&ctx, in[0], in[1], in[2]);
    float *r = malloc((size_t)y->numel * sizeof(float));
    fill_uniform(r, y->numel, 77);
    if (round)
        for (int64_t j = 0; j < y->numel; j++) r[j] = round_bf16(r[j]);
    nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, y, nd_from_host(&ctx, y->shape, r))));
    free(r);
    const nd_tensor *src[N_OUT] = {y, in[0], in[1], in[2]};
    for (int i = 0; i < N_OUT; i++) {
        out[i] = NULL, n[i] = src[i] ? src[i]->numel : 0;
        if (!src[i]) continue;
        out[i] = malloc((size_t)n[i] * sizeof(float));
        if (i == Y)
            nd_copy_to_host(&ctx, src[i], out[i]);
        else
            nd_grad_to_host(&ctx, src[i], out[i]);
    }
    nd_ctx_free(&ctx);
}

static double norm_relative_error(const float *a, const float *b, int64_t n) {
    double diff = 0, ref = 0;
    for (int64_t i = 0; i < n; i++) diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), ref += (double)b[i] * b[i];
    return sqrt(diff / ref);
}

static void test_ops(void) {
    // Sizes that put every product of the forward and backward above nd_cpu_gemm_bf16_pays' 1 MFLOP, in the
    // GEMM path too (im2col's columns: every image of the batch), so all of them run in bf16.
    const op_case cases[] = {
        {"matmul", op_matmul, ND_SHAPE(2, 64, 96), ND_SHAPE(96, 80), 0, MATMUL},
        {"conv2d 3x3", op_conv, ND_SHAPE(4, 16, 10, 10), ND_SHAPE(24, 16, 3, 3), 24, CONV},
        {"conv2d 3x3 stride 2", op_conv_strided, ND_SHAPE(4, 16, 12, 12), ND_SHAPE(32, 16, 3, 3), 32, CONV},
        {"conv2d 3x3, 256 channels", op_conv, ND_SHAPE(2, 256, 6, 6), ND_SHAPE(16, 256, 3, 3), 16, CONV},
        {"conv2d 1x1", op_conv_pointwise, ND_SHAPE(8, 64, 8, 8), ND_SHAPE(64, 64, 1, 1), 0, CONV},
        {"conv_transpose2d 4x4 stride 2", op_conv_transpose, ND_SHAPE(4, 32, 6, 6), ND_SHAPE(32, 16, 4, 4), 16,
         CONV_TRANSPOSED},
        {"conv_transpose2d 2x2 stride 2", op_conv_transpose_2x2, ND_SHAPE(8, 64, 4, 4), ND_SHAPE(64, 32, 2, 2), 32,
         CONV_TRANSPOSED},
    };
    for (int t = 0; t < ND_COUNT(cases); t++) {
        const op_case *c = &cases[t];
        for (int gemm = 0; gemm < 2; gemm++) { // oneDNN's primitives, then im2col + the bf16 GEMM
            float *f32[N_OUT], *rounded[N_OUT], *bf[N_OUT];
            int64_t n[N_OUT];
            run_op(c, ND_PRECISION_F32, false, gemm, f32, n);
            run_op(c, ND_PRECISION_F32, true, gemm, rounded, n);
            run_op(c, ND_PRECISION_BF16, false, gemm, bf, n);
            // oneDNN's weight gradients where bf16 does not pay are float32's (nd_cpu_conv_bf16_weights_pay)
            bool f32_weights = !gemm && c->kind != MATMUL &&
                               !nd_cpu_conv_bf16_weights_pay(c->x.d[1], c->w.d[0], c->kind == CONV_TRANSPOSED);
            for (int i = 0; i < N_OUT; i++) {
                if (!f32[i]) continue;
                // bf16's 8-bit significand: each input off by up to 2^-9 relative, so a sum of products by
                // ~2^-9 / sqrt(terms) of its size on random data (measured ~3e-3); 1e-2 as the issue asks
                double err = norm_relative_error(bf[i], f32[i], n[i]);
                CHECK(err < 1e-2, "%s%s %s: %.2g relative to float32", c->name, gemm ? " (GEMM)" : "", out_names[i],
                      err);
                // The same products of rounded inputs accumulated in float32 in another order: within a few
                // float32 roundings. The bias gradient of the GEMM path is a sum against ones, which stays
                // float32 on the unrounded gradient (nd_cpu_gemm_bf16_pays).
                if (gemm && i == DB) continue;
                const float *want = f32_weights && (i == DW || i == DB) ? f32[i] : rounded[i];
                long long worst_index;
                double worst = test_max_violation(bf[i], want, n[i], 1e-4, 1e-4, &worst_index);
                CHECK(worst <= 1.0, "%s%s %s: %.3g of the tolerance from float32 on %s inputs at %lld (%g vs %g)",
                      c->name, gemm ? " (GEMM)" : "", out_names[i], worst, want == f32[i] ? "the raw" : "rounded",
                      worst_index, bf[i][worst_index], want[worst_index]);
            }
            for (int i = 0; i < N_OUT; i++) free(f32[i]), free(rounded[i]), free(bf[i]);
        }
    }
}

// Runs `ENV NANODIFF ARGS` with stderr captured; returns the exit status.
static int run_cli(const char *env, const char *nanodiff, const char *args, char *out, size_t size) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s %s 2>&1 >/dev/null", env, nanodiff, args);
    FILE *p = popen(cmd, "r");
    size_t got = p ? fread(out, 1, size - 1, p) : 0;
    out[got] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_cli(const char *nanodiff, bool available) {
    char dir[] = "/tmp/nd_test_bf16_XXXXXX", args[1024], out[8192];
    if (!mkdtemp(dir)) return;
    char ckpt[128];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 8, 2);
    mc.down_chs[0] = mc.down_chs[1] = mc.down_chs[2] = 8;
    mc.small_groups = 2, mc.big_groups = 4;
    nd_model m;
    nd_model_create(&m, mc, &ctx);
    nd_error err;
    CHECK(nd_checkpoint_save(ckpt, &m, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    nd_model_free(&m);
    nd_ctx_free(&ctx);

    snprintf(args, sizeof args,
             "sample --ckpt %s --device cpu --start noise -o %s/out.png --n 2 --sampler ddim "
             "--steps 3 --quiet --precision fp16",
             ckpt, dir);
    int status = run_cli("", nanodiff, args, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--precision expects f32 or bf16, got \"fp16\""), "fp16: %d\n%s", status, out);
    args[strlen(args) - strlen("fp16")] = '\0';
    strcat(args, "bf16");
    status = run_cli("", nanodiff, args, out, sizeof out);
    if (available)
        CHECK(status == 0, "sample --precision bf16: %d\n%s", status, out);
    else
        CHECK(status == 1 && strstr(out, "--precision bf16: "), "sample --precision bf16 here: %d\n%s", status, out);
    // oneDNN kept from AVX512_BF16: refused before any data is read (the data set named does not exist)
    snprintf(args, sizeof args, "train --device cpu --precision bf16 --data %s/none.h5 --out %s/run --max-steps 1", dir,
             dir);
    status = run_cli("ONEDNN_MAX_CPU_ISA=AVX512_CORE", nanodiff, args, out, sizeof out);
    CHECK(status == 1 && strstr(out, "nanodiff train: --precision bf16: bf16 ") && !strstr(out, "none.h5"),
          "train --precision bf16 without AVX512_BF16 in oneDNN: %d\n%s", status, out);
    if (available)
        CHECK(strstr(out, "ONEDNN_MAX_CPU_ISA=AVX512_CORE") != NULL, "the refusal does not name the cap:\n%s", out);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

// n 8x8 images of 4 classes: class k a bright bar at rows 2k..2k+1 (test_ddpm's data).
static void write_bars(const char *path, int n) {
    float *images = malloc((size_t)n * 64 * sizeof(float));
    int32_t *labels = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        labels[i] = i % 4;
        for (int p = 0; p < 64; p++)
            images[i * 64 + p] = (p / 16 == labels[i] ? 0.9f : 0.1f) + 0.05f * (float)((i * 7 + p) % 3);
    }
    nd_error err;
    CHECK(nd_samples_write_hdf5(path, images, n, 1, 8, 8, labels, &err), "%s", err.msg);
    free(images);
    free(labels);
}

enum { STEPS = 40 };

// Trains the tiny model STEPS steps in `precision` into dir/name; loss (STEPS) from its loss.csv.
static bool train_tiny(const char *dir, const char *data, const char *name, nd_precision precision, double *loss) {
    nd_ddpm_config c = nd_ddpm_defaults();
    c.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 8, -1);
    c.model.down_chs[0] = 16, c.model.down_chs[1] = 16, c.model.down_chs[2] = 32;
    c.model.small_groups = 4, c.model.big_groups = 8;
    c.model.T = 50, c.beta_end = 0.25;
    snprintf(c.data, sizeof c.data, "%s", data);
    c.batch_size = 16, c.epochs = 100, c.max_steps = STEPS, c.lr = 3e-3f, c.random_flip = false;
    c.precision = precision;
    char out[256], csv[300];
    snprintf(out, sizeof out, "%s/%s", dir, name);
    nd_ddpm_result r;
    nd_error err;
    bool ok = nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err);
    CHECK(ok, "%s: %s", name, ok ? "" : err.msg);
    snprintf(csv, sizeof csv, "%s/loss.csv", out);
    FILE *f = ok ? fopen(csv, "r") : NULL;
    char line[256];
    int rows = 0;
    if (f && fgets(line, sizeof line, f))
        while (rows < STEPS && fgets(line, sizeof line, f)) {
            long long step, epoch;
            if (sscanf(line, "%lld,%lld,%lf", &step, &epoch, &loss[rows]) == 3) rows++;
        }
    if (f) fclose(f);
    CHECK(rows == STEPS, "%s: %d loss rows of %d", name, rows, STEPS);
    return rows == STEPS;
}

static double mean(const double *x, int from, int to) {
    double sum = 0;
    for (int i = from; i < to; i++) sum += x[i];
    return sum / (to - from);
}

static void test_training(void) {
    char dir[] = "/tmp/nd_test_bf16_train_XXXXXX", data[128];
    if (!mkdtemp(dir)) return;
    snprintf(data, sizeof data, "%s/bars.h5", dir);
    write_bars(data, 64);
    double f32[STEPS], bf[STEPS];
    if (train_tiny(dir, data, "f32", ND_PRECISION_F32, f32) && train_tiny(dir, data, "bf16", ND_PRECISION_BF16, bf)) {
        double first32 = mean(f32, 0, 10), first16 = mean(bf, 0, 10);
        double last32 = mean(f32, STEPS - 10, STEPS), last16 = mean(bf, STEPS - 10, STEPS);
        printf("loss, mean of steps 1-10 and %d-%d: f32 %.4f -> %.4f, bf16 %.4f -> %.4f (step 1: %.4f, %.4f)\n",
               STEPS - 9, STEPS, first32, last32, first16, last16, f32[0], bf[0]);
        // Same seed, data, noise and initial weights: step 1 differs only by bf16's rounding of the products
        // (measured 0.04% of the loss; 2% allowed); then the runs drift apart as any two orders of float32 sums
        // would, but learn alike: the last ten steps' means within 5% (measured 0.3%)
        CHECK(fabs(bf[0] - f32[0]) < 0.02 * f32[0], "step 1: bf16 %.5f, f32 %.5f", bf[0], f32[0]);
        CHECK(fabs(last16 - last32) < 0.05 * last32, "last 10 steps: bf16 %.4f, f32 %.4f", last16, last32);
        CHECK(last16 < 0.7 * first16, "bf16 did not learn: %.4f -> %.4f", first16, last16);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) {
        if (!nd_backend_cpu_bf16(bf16_why, sizeof bf16_why)) {
            printf("skipped: %s\n", bf16_why);
            return ND_TEST_SKIP;
        }
        test_training();
        return test_finish("bf16 training");
    }
    if (argc < 3 || strcmp(argv[1], "unit") != 0) {
        fprintf(stderr, "usage: test_bf16 unit NANODIFF | test_bf16 train\n");
        return 2;
    }
    test_conversion();
    test_cpu_check();
    test_refusals();
    bool available = nd_backend_cpu_bf16(bf16_why, sizeof bf16_why) != NULL;
#ifdef ND_TEST_DNNL
    bool products = available; // oneDNN's bf16 matmul: only where the CPU runs bf16 (it refuses on AVX2)
#else
    bool products = true; // without oneDNN, the emulation of the same sums, on any CPU
#endif
    if (products)
        test_gemm();
    else
        printf("bf16 products not checked: %s\n", bf16_why);
    if (available)
        test_ops();
    else
        printf("bf16 operations not checked: %s\n", bf16_why);
    test_cli(argv[2], available);
    return test_finish("bf16");
}
