// Finiteness: where the first non-finite value of a flat parameter buffer sits, and the op-by-op output
// check behind --check-numerics (torch.autograd.set_detect_anomaly's forward half).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

int64_t nd_first_nonfinite(const float *host, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(host[i])) return i;
    return -1;
}

// The parameter holding flat index at, or NULL.
static const nd_param *param_at(const nd_params *p, int64_t at) {
    for (int i = 0; i < p->n; i++)
        if (at >= p->items[i].offset && at < p->items[i].offset + p->items[i].tensor->numel) return &p->items[i];
    return NULL;
}

bool nd_params_find_nonfinite(const nd_params *p, const float *host, char *where, size_t size) {
    int64_t at = nd_first_nonfinite(host, p->total);
    if (at < 0) return false;
    const nd_param *item = param_at(p, at);
    char shape[64];
    if (item)
        snprintf(where, size, "'%s' %s holds %g at flat index %lld", item->name,
                 nd_shape_str(item->tensor->shape, shape, sizeof shape), host[at], (long long)(at - item->offset));
    else
        snprintf(where, size, "flat index %lld holds %g", (long long)at, host[at]);
    return true;
}

bool nd_params_locate_nonfinite(const nd_params *p, const float *buffer, char *where, size_t size) {
    float *host = malloc((size_t)(p->total ? p->total : 1) * sizeof(float));
    if (!host) {
        snprintf(where, size, "(no memory to locate the non-finite value)");
        return true;
    }
    nd_buffer_download(p->device, host, buffer, p->total);
    bool found = nd_params_find_nonfinite(p, host, where, size);
    if (!found && p->total > 0) { // every value finite: the sum of squares overflowed; name the largest
        int64_t top = 0;
        for (int64_t i = 1; i < p->total; i++)
            if (fabsf(host[i]) > fabsf(host[top])) top = i;
        const nd_param *item = param_at(p, top);
        snprintf(where, size, "every value is finite but their squares overflow float32; the largest, %g, is in "
                 "'%s'", host[top], item ? item->name : "?");
    }
    free(host);
    return found;
}

void nd_numerics_check(nd_ctx *ctx, const char *op, const nd_tensor *out) {
    ctx->numerics_ops++;
    if (ctx->numerics_first[0] || out->numel == 0) return;
    float *host = malloc((size_t)out->numel * sizeof(float));
    if (!host) return;
    nd_buffer_download(ctx->device, host, out->data, out->numel);
    int64_t at = nd_first_nonfinite(host, out->numel);
    if (at >= 0) {
        char shape[64];
        snprintf(ctx->numerics_first, sizeof ctx->numerics_first, "op %lld of the step, %s, output %s holds %g at "
                 "flat index %lld", (long long)ctx->numerics_ops, op, nd_shape_str(out->shape, shape, sizeof shape),
                 host[at], (long long)at);
    }
    free(host);
}
