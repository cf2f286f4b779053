// Where a step's time goes, op by op (nanodiff train|sample --profile): wall time of each op's forward
// (charged when the op records itself, so everything since the previous op counts) and of each backward
// node, their calls, and GFLOP/s for the ops that report their floating-point work.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define ND_PROFILE_MAX_OPS 96

typedef struct profile_row {
    const char *op;
    int64_t calls[2]; // forward, backward
    double seconds[2], flops[2];
} profile_row;

struct nd_profile {
    profile_row rows[ND_PROFILE_MAX_OPS];
    int n_rows;
    double mark;          // when the last charged interval ended
    double pending_flops; // the work of the op about to record itself
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void nd_profile_begin(nd_ctx *ctx) {
    if (!ctx->profile) {
        ctx->profile = calloc(1, sizeof *ctx->profile);
        if (!ctx->profile) {
            fprintf(stderr, "nanodiff: out of host memory for the profile\n");
            abort();
        }
    }
    ctx->profile->mark = now();
}

static profile_row *row_of(nd_profile *p, const char *op) {
    for (int i = 0; i < p->n_rows; i++)
        if (p->rows[i].op == op || strcmp(p->rows[i].op, op) == 0) return &p->rows[i];
    if (p->n_rows == ND_PROFILE_MAX_OPS) return &p->rows[ND_PROFILE_MAX_OPS - 1]; // the last row takes the rest
    p->rows[p->n_rows].op = op;
    return &p->rows[p->n_rows++];
}

// Device work is asynchronous on a GPU: reading back one float of the output waits for it, so each op is
// charged its own kernels. On the CPU the copy is four bytes.
static void wait_for(nd_ctx *ctx, const nd_tensor *out) {
    float sink;
    if (out && out->numel > 0) ctx->be->download(&sink, out->data, sizeof sink);
}

void nd_profile_charge(nd_ctx *ctx, const char *op, int pass, const nd_tensor *out, double flops) {
    nd_profile *p = ctx->profile;
    wait_for(ctx, out);
    double t = now();
    profile_row *r = row_of(p, op);
    r->calls[pass]++;
    r->seconds[pass] += t - p->mark;
    r->flops[pass] += flops;
    p->mark = t;
}

void nd_profile_flops(nd_ctx *ctx, double flops) {
    if (ctx->profile) ctx->profile->pending_flops = flops;
}

double nd_profile_take_flops(nd_ctx *ctx) {
    double f = ctx->profile->pending_flops;
    ctx->profile->pending_flops = 0.0;
    return f;
}

static int by_time(const void *a, const void *b) {
    const profile_row *x = a, *y = b;
    double tx = x->seconds[0] + x->seconds[1], ty = y->seconds[0] + y->seconds[1];
    return (tx < ty) - (tx > ty);
}

void nd_profile_report(nd_ctx *ctx, FILE *out) {
    nd_profile *p = ctx->profile;
    if (!p) return;
    qsort(p->rows, (size_t)p->n_rows, sizeof p->rows[0], by_time);
    double total = 0.0;
    for (int i = 0; i < p->n_rows; i++) total += p->rows[i].seconds[0] + p->rows[i].seconds[1];
    fprintf(out, "profile (%s, %s): %.2f s in ops\n", nd_device_name(ctx->device), nd_precision_name(ctx->precision),
            total);
    fprintf(out, "  %-30s %8s %10s %8s %8s %10s %8s %6s\n", "op", "fwd", "fwd ms", "GFLOP/s", "bwd", "bwd ms",
            "GFLOP/s", "share");
    for (int i = 0; i < p->n_rows; i++) {
        profile_row *r = &p->rows[i];
        char rate[2][16];
        for (int k = 0; k < 2; k++) {
            if (r->flops[k] > 0 && r->seconds[k] > 0)
                snprintf(rate[k], sizeof rate[k], "%.1f", r->flops[k] / r->seconds[k] * 1e-9);
            else
                snprintf(rate[k], sizeof rate[k], "-");
        }
        fprintf(out, "  %-30s %8lld %10.1f %8s %8lld %10.1f %8s %5.1f%%\n", r->op, (long long)r->calls[0],
                1e3 * r->seconds[0], rate[0], (long long)r->calls[1], 1e3 * r->seconds[1], rate[1],
                total > 0 ? 100.0 * (r->seconds[0] + r->seconds[1]) / total : 0.0);
    }
    free(p);
    ctx->profile = NULL;
}
