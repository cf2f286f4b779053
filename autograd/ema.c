// An exponential moving average of the flat parameter buffer.
#include "backend.h"

void nd_ema_init(nd_ema *ema, const nd_params *params, nd_ctx *ctx, float decay) {
    *ema = (nd_ema){.decay = decay, .n = params->total, .device = ctx->device};
    ema->shadow = ctx->be->alloc((size_t)(ema->n ? ema->n : 1) * sizeof(float));
    ctx->be->copy(ema->shadow, params->data, ema->n);
}

void nd_ema_update(nd_ema *ema, const nd_params *params, nd_ctx *ctx) {
    ctx->be->ema_update(ema->shadow, params->data, ema->decay, ema->n);
}

void nd_ema_free(nd_ema *ema) {
    const nd_backend *be = nd_backend_for(ema->device);
    if (ema->shadow) be->free(ema->shadow);
    *ema = (nd_ema){0};
}
