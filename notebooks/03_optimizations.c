// Notebook 03, "Optimizations": the U-Net the rest of the course uses, and why each change helps.
//
// The lesson in order: GroupNorm instead of BatchNorm (statistics per image, not per batch); GELU instead of
// ReLU (no dead units); RearrangePoolBlock (space-to-depth, then a conv) instead of max pooling, so no pixel
// is thrown away; ResidualConvBlock (x1 + conv(x1)); a sinusoidal embedding of t / T instead of the raw
// scalar; UpBlocks with kernel-2 transposed convolutions and four GELUConvBlocks; an extra skip from down0
// to the output, which the notebook says did most against the checkerboard. 1,979,777 parameters, trained
// 5 epochs with Adam(1e-3) on the noise's MSE, then sampled with the course's DDPM step.
//
//   03_optimizations [--quick] [--out DIR]   figures: 03_progression.png, 03_samples.png
#include <stdio.h>
#include <stdlib.h>

#include "notebook.h"

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "03_optimizations", "notebook 03: the GroupNorm/GELU U-Net", &args)) return 1;
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);

    // Blocks one by one on a (1, 64, 16, 16) input: shapes in, shapes out.
    nd_params params;
    nd_params_init(&params);
    nd_down_block down;
    nd_down_block_init(&down, &params, "down", 64, 64, 32);
    nd_residual_conv_block res;
    nd_residual_conv_block_init(&res, &params, "res", 1, 64, 8);
    nd_params_alloc(&params, &ctx);
    nd_tensor *x = nd_empty(&ctx, ND_SHAPE(1, 1, 16, 16));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_tensor *h = nd_residual_conv_block_forward(&ctx, &res, x); // (1, 64, 16, 16)
    nd_tensor *d = nd_down_block_forward(&ctx, &down, h);         // (1, 64, 8, 8)
    float ts[3] = {0.0f, 0.5f, 140.0f / 150.0f};
    nd_tensor *emb = nd_sinusoidal_embed(&ctx, nd_from_host(&ctx, ND_SHAPE(3), ts), 8); // (3, 8)
    float emb_host[24];
    nd_copy_to_host(&ctx, emb, emb_host);
    char a[64], b[64], c[64];
    printf("ResidualConvBlock(1, 64): %s -> %s\nDownBlock(64, 64): %s -> %s\n", nd_shape_str(x->shape, a, sizeof a),
           nd_shape_str(h->shape, b, sizeof b), b, nd_shape_str(d->shape, c, sizeof c));
    for (int i = 0; i < 3; i++) {
        printf("sinusoidal embedding of t/T = %.3f:", ts[i]);
        for (int k = 0; k < 8; k++) printf(" %7.4f", emb_host[i * 8 + k]);
        printf("\n");
    }
    nd_ctx_step_end(&ctx);
    nd_params_free(&params);

    // The model and its training (unconditional: no class context yet).
    nd_ddpm_config cfg = nd_ddpm_defaults();
    cfg.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 0);
    snprintf(cfg.data, sizeof cfg.data, "%s", args.data);
    cfg.epochs = 5;
    cfg.cfg_drop = 0.0f;
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_model_summary(&ctx, &model, stdout); // Num params: 1979777
    nd_model_free(&model);
    if (!nb_train_ddpm(&args, &cfg, &ctx, &model)) return 1;

    // Sampling as in notebook 02, now without the checkerboard.
    const int T = cfg.model.T;
    const long image = 16 * 16;
    nd_schedule sched;
    nd_schedule_linear(&sched, T, cfg.beta_start, cfg.beta_end);
    nd_sample_config sc = nb_sample_config(&args, false, 1);
    nb_strip progression;
    nb_strip_init(&progression, args.quick ? sc.steps : T, 15, 1, image);
    float *samples = malloc((size_t)(10 * image) * sizeof(float));
    nd_sample_images(&ctx, &model, &sched, &sc, 1, NULL, NULL, samples, nb_strip_step, &progression);
    nb_strip_write(&args, "03_progression.png", &progression, 1, 16, false);
    nd_sample_images(&ctx, &model, &sched, &sc, 10, NULL, NULL, samples, NULL, NULL);
    nb_write_grid(&args, "03_samples.png", samples, 10, 1, 16, 10, false);

    nb_strip_free(&progression);
    free(samples);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return 0;
}
