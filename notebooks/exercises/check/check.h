// What every checker shares: its main (signals turned into advice), and comparisons that say what is wrong.
// A checker defines `static bool check(nd_ctx *ctx)`, printing "FAIL: ..." lines for what it finds, and
// includes this header last.
#ifndef ND_CHECK_H
#define ND_CHECK_H

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exercise.h"

static bool check(nd_ctx *ctx);

// Prints "FAIL: <message>" and returns false.
__attribute__((format(printf, 1, 2))) static bool ck_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return false;
}

// A tensor the student returned: not NULL and of the expected shape.
static bool ck_shape(const char *what, const nd_tensor *t, nd_shape expected) {
    char a[64], b[64];
    if (!t) return ck_fail("%s is NULL: a FIXME is still 0 where a tensor belongs", what);
    if (!nd_shape_equal(t->shape, expected))
        return ck_fail("%s has shape %s, expected %s", what, nd_shape_str(t->shape, a, sizeof a),
                       nd_shape_str(expected, b, sizeof b));
    return true;
}

static float *ck_host(nd_ctx *ctx, const nd_tensor *t) {
    float *h = malloc((size_t)t->numel * sizeof(float));
    nd_copy_to_host(ctx, t, h);
    return h;
}

// Largest |got - want| over the elements (index of it in *at).
static double ck_max_diff(nd_ctx *ctx, const nd_tensor *got, const nd_tensor *want, int64_t *at) {
    float *g = ck_host(ctx, got), *w = ck_host(ctx, want);
    double worst = 0;
    *at = 0;
    for (int64_t i = 0; i < got->numel; i++) {
        double d = fabs((double)g[i] - (double)w[i]);
        if (!(d <= worst)) worst = d, *at = i; // NaN counts as the worst
    }
    free(g);
    free(w);
    return worst;
}

static bool ck_close_to(nd_ctx *ctx, const nd_tensor *got, const nd_tensor *want, double tol) {
    int64_t at;
    return ck_max_diff(ctx, got, want, &at) <= tol;
}

// got against the reference: shape, then values within tol; the message names the worst element.
static bool ck_close(nd_ctx *ctx, const char *what, const nd_tensor *got, const nd_tensor *want, double tol) {
    if (!ck_shape(what, got, want->shape)) return false;
    int64_t at;
    double worst = ck_max_diff(ctx, got, want, &at);
    if (worst <= tol) return true;
    float *g = ck_host(ctx, got), *w = ck_host(ctx, want);
    char idx[96] = "";
    int64_t rest = at;
    for (int d = got->shape.ndim - 1; d >= 0; d--) { // flat index -> (i, j, ...)
        char part[24];
        snprintf(part, sizeof part, "%lld%s", (long long)(rest % got->shape.d[d]), d == got->shape.ndim - 1 ? "" : ",");
        memmove(idx + strlen(part), idx, strlen(idx) + 1);
        memcpy(idx, part, strlen(part));
        rest /= got->shape.d[d];
    }
    ck_fail("%s differs from the reference by up to %.3g (tolerance %.0e): at [%s] it is %.6g, expected %.6g", what,
            worst, tol, idx, g[at], w[at]);
    free(g);
    free(w);
    return false;
}

// A parameter registered under name with the expected shape.
static bool ck_param(const nd_params *p, const char *name, nd_shape expected) {
    const nd_param *q = nd_params_find(p, name);
    char a[64], b[64];
    if (!q) return ck_fail("no parameter named %s", name);
    if (!nd_shape_equal(q->tensor->shape, expected))
        return ck_fail("%s has shape %s, expected %s", name, nd_shape_str(q->tensor->shape, a, sizeof a),
                       nd_shape_str(expected, b, sizeof b));
    return true;
}

// Least-squares fit got = a u + b v over all elements: which combination of u and v the student computed.
static void ck_fit2(nd_ctx *ctx, const nd_tensor *got, const nd_tensor *u, const nd_tensor *v, double *a, double *b) {
    float *g = ck_host(ctx, got), *x = ck_host(ctx, u), *y = ck_host(ctx, v);
    double xx = 0, xy = 0, yy = 0, gx = 0, gy = 0;
    for (int64_t i = 0; i < got->numel; i++)
        xx += x[i] * x[i], xy += x[i] * y[i], yy += y[i] * y[i], gx += g[i] * x[i], gy += g[i] * y[i];
    double det = xx * yy - xy * xy;
    *a = (gx * yy - gy * xy) / det;
    *b = (gy * xx - gx * xy) / det;
    free(g), free(x), free(y);
}

// A small conditional dli-unet (8x8, 3 classes, T = 10) with random weights: enough to tell combinations apart.
static void ck_tiny_model(nd_ctx *ctx, nd_model *m, int T) {
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 8, 3);
    mc.T = T;
    mc.down_chs[0] = 8, mc.down_chs[1] = 8, mc.down_chs[2] = 16;
    mc.small_groups = 2, mc.big_groups = 4;
    nd_model_create(m, mc, ctx);
}

static nd_tensor *ck_randn(nd_ctx *ctx, nd_shape shape) {
    nd_tensor *t = nd_empty(ctx, shape);
    nd_rand_normal(ctx, t, 0.0f, 1.0f);
    return t;
}

static void on_signal(int sig) {
    static const char segv[] = "FAIL: the program crashed (invalid memory access): a FIXME still 0 where a tensor or "
                                "pointer belongs is a NULL pointer; fill in every FIXME\n";
    static const char abrt[] = "FAIL: stopped by a library check: the message above names the op, the shapes and "
                               "the line of your file\n";
    static const char fpe[] = "FAIL: arithmetic error (a division by zero?)\n";
    const char *m = sig == SIGSEGV || sig == SIGBUS ? segv : sig == SIGABRT ? abrt : fpe;
    ssize_t w = write(1, m, strlen(m));
    (void)w;
    _exit(1);
}

int main(void) {
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGFPE, on_signal);
    setvbuf(stdout, NULL, _IONBF, 0);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 1234);
    bool ok = check(&ctx);
    nd_ctx_free(&ctx);
    return ok ? 0 : 1;
}

#endif
