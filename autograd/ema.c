// An exponential moving average of the flat parameter buffer.
#include "backend.h"

void nd_ema_init(nd_ema *ema, const nd_params *params, nd_ctx *ctx, float decay) {
    *ema = (nd_ema){.decay = decay, .n = params->total, .device = ctx->device};
    ema->shadow = ctx->be->alloc((size_t)(ema->n ? ema->n : 1) * sizeof(float));
    ctx->be->copy(ema->shadow, params->data, ema->n);
}

float nd_ema_decay_at(float decay, int64_t step) {
    double warm = (1.0 + (double)step) / (10.0 + (double)step);
    return warm < (double)decay ? (float)warm : decay;
}

void nd_ema_update(nd_ema *ema, const nd_params *params, nd_ctx *ctx, int64_t step) {
    ctx->be->ema_update(ema->shadow, params->data, nd_ema_decay_at(ema->decay, step), ema->n);
}

void nd_ema_free(nd_ema *ema) {
    const nd_backend *be = nd_backend_for(ema->device);
    if (ema->shadow) be->free(ema->shadow);
    *ema = (nd_ema){0};
}
