// Writes checkpoints and the matching forward passes for tests/checkpoint_torch_check.py: for each model,
// <dir>/<name>.h5 and <dir>/<name>.ndfx holding a fixed input batch and the model's output for it.
//   dli-unet         notebook 04's class-conditional U-Net (16x16, 10 classes) after one Adam step, with EMA
//   dli-unet-uncond  notebook 03's U-Net without context
//   dli-unet-v1      notebook 02's BatchNorm U-Net, running statistics moved by a training-mode forward,
//                    evaluated in eval mode
// With --load CKPT..., it creates each checkpoint's model from the checkpoint's configuration and loads it
// (the checkpoints tools/checkpoint_convert.py writes must load here).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

enum { BATCH = 4 };

// .ndfx (tests/fixtures/ndfx.py): b"NDFX0001", u32 count, then per tensor u32 name length, name, u32 ndim,
// i64 dims, f32 data; little endian, as this host is.
static bool ndfx_write(const char *path, nd_ctx *ctx, int count, const char *const *names, nd_tensor *const *ts) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    uint32_t n = (uint32_t)count;
    fwrite("NDFX0001", 1, 8, f);
    fwrite(&n, 4, 1, f);
    for (int i = 0; i < count; i++) {
        uint32_t len = (uint32_t)strlen(names[i]), ndim = (uint32_t)ts[i]->shape.ndim;
        float *host = malloc((size_t)ts[i]->numel * sizeof(float));
        nd_copy_to_host(ctx, ts[i], host);
        fwrite(&len, 4, 1, f);
        fwrite(names[i], 1, len, f);
        fwrite(&ndim, 4, 1, f);
        fwrite(ts[i]->shape.d, sizeof(int64_t), ndim, f);
        fwrite(host, sizeof(float), (size_t)ts[i]->numel, f);
        free(host);
    }
    return fclose(f) == 0;
}

// Saves the model (with opt and ema when given) and writes x, t, context and the eval-mode output.
static bool export_model(const char *dir, const char *name, nd_ctx *ctx, nd_model *m, nd_adam *opt, nd_ema *ema) {
    const nd_model_config *c = &m->config;
    char path[1024];
    nd_error err = {{0}};
    nd_ddpm_config cfg = {.model = *c,
                          .data = "fashion-mnist",
                          .beta_start = 1e-4,
                          .beta_end = 0.02,
                          .epochs = 3,
                          .batch_size = 128,
                          .lr = 1e-3f,
                          .cfg_drop = 0.1f,
                          .seed = 2024};
    nd_train_state state = {.step = opt ? opt->step : 0, .rng = ctx->rng};
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    if (!nd_checkpoint_save(path, m, &cfg, &state, opt, ema, ctx, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    bool grad = nd_ctx_set_grad(ctx, false);
    nd_tensor *x = nd_empty(ctx, ND_SHAPE(BATCH, c->img_ch, c->img_size, c->img_size));
    nd_rand_normal(ctx, x, 0.0f, 1.0f);
    // raw step numbers, as the course passes them (the model divides by T)
    nd_tensor *t = nd_from_host(ctx, ND_SHAPE(BATCH), (const float[BATCH]){0.0f, 37.0f, 99.0f, (float)c->T - 1});
    nd_tensor *context = NULL;
    if (c->c_embed_dim > 0) {
        float *one_hot = calloc((size_t)(BATCH * c->c_embed_dim), sizeof(float));
        for (int b = 0; b < BATCH; b++) one_hot[b * c->c_embed_dim + (b * 3) % c->c_embed_dim] = 1.0f;
        context = nd_from_host(ctx, ND_SHAPE(BATCH, c->c_embed_dim), one_hot);
        free(one_hot);
    }
    nd_tensor *out = nd_model_forward(ctx, m, x, t, context, false);
    snprintf(path, sizeof path, "%s/%s.ndfx", dir, name);
    const char *names[4] = {"x", "t", "out", "context"};
    nd_tensor *tensors[4] = {x, t, out, context};
    bool ok = ndfx_write(path, ctx, context ? 4 : 3, names, tensors);
    if (!ok) fprintf(stderr, "%s: cannot write\n", path);
    nd_ctx_set_grad(ctx, grad);
    nd_ctx_step_end(ctx);
    return ok;
}

// One Adam step on random data, so the weights, moments and EMA all differ from their initial values.
static void adam_step(nd_ctx *ctx, nd_model *m, nd_adam *opt, nd_ema *ema) {
    const nd_model_config *c = &m->config;
    nd_shape image = ND_SHAPE(2, c->img_ch, c->img_size, c->img_size);
    nd_tensor *x = nd_empty(ctx, image), *noise = nd_empty(ctx, image), *t = nd_empty(ctx, ND_SHAPE(2));
    nd_rand_normal(ctx, x, 0.0f, 1.0f);
    nd_rand_normal(ctx, noise, 0.0f, 1.0f);
    nd_rand_uniform(ctx, t, 0.0f, (float)c->T);
    nd_tensor *context = nd_zeros(ctx, ND_SHAPE(2, c->c_embed_dim));
    nd_backward(ctx, nd_mse_loss(ctx, nd_model_forward(ctx, m, x, t, context, true), noise));
    nd_adam_step(opt, &m->params, ctx);
    nd_ema_update(ema, &m->params, ctx, opt->step - 1);
    nd_ctx_step_end(ctx);
}

// Creates the model path's configuration describes and loads the checkpoint into it.
static bool load_checkpoint(const char *path) {
    nd_ddpm_config cfg;
    nd_error err = {{0}};
    if (!nd_checkpoint_read_config(path, &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model m;
    nd_model_create(&m, cfg.model, &ctx);
    bool ok = nd_checkpoint_load(path, &m, NULL, NULL, NULL, NULL, &ctx, &err);
    if (ok)
        printf("%s: a %s of %lld parameters loads in nanodiff\n", path, nd_model_kind_name(cfg.model.kind),
               (long long)m.params.total);
    else
        fprintf(stderr, "%s\n", err.msg);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
    return ok;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--load") == 0) {
        bool ok = argc > 2;
        for (int i = 2; i < argc; i++) ok = load_checkpoint(argv[i]) && ok;
        return ok ? 0 : 1;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR | --load CKPT...\n", argv[0]);
        return 2;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 2024);
    nd_model unet, uncond, v1;
    nd_adam opt;
    nd_ema ema;
    nd_model_create(&unet, nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10), &ctx);
    nd_adam_init(&opt, &unet.params, &ctx, nd_adam_defaults());
    nd_ema_init(&ema, &unet.params, &ctx, 0.9f);
    adam_step(&ctx, &unet, &opt, &ema);
    bool ok = export_model(argv[1], "dli-unet", &ctx, &unet, &opt, &ema);

    nd_model_create(&uncond, nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 0), &ctx);
    ok = ok && export_model(argv[1], "dli-unet-uncond", &ctx, &uncond, NULL, NULL);

    nd_model_create(&v1, nd_model_config_default(ND_MODEL_DLI_UNET_V1, 1, 16, 0), &ctx);
    bool grad = nd_ctx_set_grad(&ctx, false);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(8, 1, 16, 16)), *t = nd_empty(&ctx, ND_SHAPE(8));
    nd_rand_normal(&ctx, x, 0.3f, 1.5f);
    nd_rand_uniform(&ctx, t, 0.0f, 150.0f);
    nd_model_forward(&ctx, &v1, x, t, NULL, true);
    nd_ctx_set_grad(&ctx, grad);
    nd_ctx_step_end(&ctx);
    ok = ok && export_model(argv[1], "dli-unet-v1", &ctx, &v1, NULL, NULL);

    nd_ema_free(&ema);
    nd_adam_free(&opt);
    nd_model_free(&unet);
    nd_model_free(&uncond);
    nd_model_free(&v1);
    nd_ctx_free(&ctx);
    return ok ? 0 : 1;
}
