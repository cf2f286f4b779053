// A checkpoint's model, ready for sampling or evaluation.
#include "train.h"

bool nd_checkpoint_load_model(const char *path, bool use_ema, nd_model *model, nd_ddpm_config *cfg, nd_ctx *ctx,
                              nd_error *err) {
    if (!nd_checkpoint_read_config(path, cfg, err)) return false;
    if (use_ema && !(cfg->ema_decay > 0))
        return nd_error_set(err, "%s: the run kept no EMA of the weights (train with --ema to sample from one)", path);
    nd_model_create(model, cfg->model, ctx);
    nd_ema ema = {0};
    if (use_ema) nd_ema_init(&ema, &model->params, ctx, cfg->ema_decay);
    bool ok = nd_checkpoint_load(path, model, cfg, NULL, NULL, use_ema ? &ema : NULL, ctx, err);
    if (ok && use_ema) nd_buffer_copy(ctx, model->params.data, ema.shadow, model->params.total);
    if (use_ema) nd_ema_free(&ema);
    if (!ok) nd_model_free(model);
    return ok;
}
