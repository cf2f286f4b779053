// Notebook 02, "Diffusion Models": noise added over T = 150 small steps, a U-Net that predicts that noise at
// any step, and sampling by walking the steps back.
//
// The lesson in order: the linear schedule beta = linspace(1e-4, 0.02, 150) and its closed form
// q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), shown as a strip of one image noised to t = 0, 10, ..;
// the U-Net of notebook 01 given the time t / T through EmbedBlocks added to the up path (240,385
// parameters); training on MSE(noise, model(x_t, t)) at uniform t; sampling with the course's reverse_q
// (sigma_t = sqrt(beta[t - 1]), no noise at t = 0) and the denoising progression it plots.
//
//   02_diffusion_models [--quick] [--out DIR]   figures: 02_noising.png, 02_progression.png, 02_samples.png
#include <stdio.h>
#include <stdlib.h>

#include "notebook.h"
#include "train.h"

#define IMG_SIZE 16
#define BATCH_SIZE 128
#define NCOLS 15

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "02_diffusion_models", "notebook 02: DDPM with the BatchNorm U-Net", &args)) return 1;
    nd_error err;
    nd_dataset ds;
    if (!nd_dataset_load(&ds, args.data, ND_SPLIT_ALL, &err) || !nd_dataset_resize(&ds, IMG_SIZE, IMG_SIZE, &err)) {
        fprintf(stderr, "02_diffusion_models: %s\n", err.msg);
        return 1;
    }
    const long image = (long)ds.c * IMG_SIZE * IMG_SIZE;
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);

    // The schedule: T = nrows * ncols = 150 steps.
    const int T = 10 * NCOLS;
    nd_schedule sched;
    nd_schedule_linear(&sched, T, 1e-4, 0.02);
    printf("T = %d, beta[0] = %.4f, beta[T-1] = %.4f, abar[T-1] = %.4f\n", T, sched.beta[0], sched.beta[T - 1],
           sched.alpha_bar[T - 1]);

    // q(x_t | x_0) in one step: the first image at t = 0, 10, ..., 140 with one noise draw.
    float *strip = malloc((size_t)(NCOLS * image) * sizeof(float)); // (15, 1, 16, 16)
    nd_dataset_sample(strip, &ds, 0, false, false);
    nd_tensor *x0 = nd_from_host(&ctx, ND_SHAPE(1, ds.c, IMG_SIZE, IMG_SIZE), strip);
    nd_tensor *noise = nd_empty(&ctx, x0->shape);
    nd_rand_normal(&ctx, noise, 0.0f, 1.0f);
    for (int i = 0; i < NCOLS; i++) {
        int t = i * T / NCOLS;
        nd_copy_to_host(&ctx, nd_schedule_q(&ctx, &sched, x0, noise, &t), strip + i * image);
    }
    nd_ctx_step_end(&ctx);
    nb_write_grid(&args, "02_noising.png", strip, NCOLS, ds.c, IMG_SIZE, NCOLS, false);

    // The model: notebook 01's U-Net with t / T through EmbedBlock(1, 64) and EmbedBlock(1, 32) on the up path.
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET_V1, ds.c, IMG_SIZE, 0);
    mc.T = T;
    nd_model model;
    nd_model_create(&model, mc, &ctx);
    nd_model_summary(&ctx, &model, stdout); // Num params: 240385

    // Training: Adam(lr 1e-3), 3 epochs; t ~ randint(0, T); loss = MSE(noise, model(q(x_0, t), t)).
    nd_adam_config ac = nd_adam_defaults();
    nd_adam opt;
    nd_adam_init(&opt, &model.params, &ctx, ac);
    nd_loader_config lc = {.batch_size = BATCH_SIZE, .shuffle = true, .drop_last = true, .random_flip = true};
    nd_loader *loader = nd_loader_create(&ds, &lc, 0, 0, &err);
    if (!loader) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t per_epoch = nd_loader_batches_per_epoch(loader), epochs = 3;
    int64_t total = args.quick ? 3 : epochs * per_epoch;
    nd_shape batch_shape = ND_SHAPE(BATCH_SIZE, ds.c, IMG_SIZE, IMG_SIZE);
    int t_host[BATCH_SIZE];
    float t_values[BATCH_SIZE];
    nd_tensor *draw = nd_empty_persistent(&ctx, ND_SHAPE(BATCH_SIZE)); // (B,) uniform [0, 1) for the timesteps
    float draw_host[BATCH_SIZE];
    for (int64_t step = 0; step < total; step++) {
        const nd_batch *batch = nd_loader_next(loader);
        nd_rand_uniform(&ctx, draw, 0.0f, 1.0f);
        nd_copy_to_host(&ctx, draw, draw_host);
        for (int i = 0; i < BATCH_SIZE; i++) {
            t_host[i] = (int)(draw_host[i] * T) < T ? (int)(draw_host[i] * T) : T - 1;
            t_values[i] = (float)t_host[i];
        }
        nd_tensor *x = nd_from_host(&ctx, batch_shape, batch->images); // (B, 1, 16, 16)
        nd_tensor *e = nd_empty(&ctx, batch_shape);
        nd_rand_normal(&ctx, e, 0.0f, 1.0f);
        nd_tensor *x_t = nd_schedule_q(&ctx, &sched, x, e, t_host);
        nd_tensor *t = nd_from_host(&ctx, ND_SHAPE(BATCH_SIZE), t_values);
        nd_tensor *loss = nd_mse_loss(&ctx, e, nd_model_forward(&ctx, &model, x_t, t, NULL, true));
        nd_backward(&ctx, loss);
        nd_adam_step(&opt, &model.params, &ctx);
        nd_params_zero_grad(&model.params, &ctx);
        if (step % 100 == 0 || step == total - 1)
            printf("Epoch %lld | Step %03lld | Loss: %.4f\n", (long long)(step / per_epoch),
                   (long long)(step % per_epoch), nd_item(&ctx, loss));
        nd_ctx_step_end(&ctx);
    }
    nd_loader_free(loader);

    // Sampling: x_T ~ N(0, I), then reverse_q from t = 149 down to 0; a frame every T / ncols steps. The
    // checkerboard "pixelation" the notebook points out comes from the transposed convolutions; notebook 03
    // fixes it.
    nd_sample_config sc = nd_sample_defaults();
    sc.guided = false;
    sc.seed = 1;
    nb_strip progression;
    nb_strip_init(&progression, T, NCOLS, 1, image);
    float *samples = malloc((size_t)(10 * image) * sizeof(float));
    nd_sample_images(&ctx, &model, &sched, &sc, 1, NULL, NULL, samples, nb_strip_step, &progression);
    nb_strip_write(&args, "02_progression.png", &progression, ds.c, IMG_SIZE, false);
    nd_sample_images(&ctx, &model, &sched, &sc, 10, NULL, NULL, samples, NULL, NULL);
    nb_write_grid(&args, "02_samples.png", samples, 10, ds.c, IMG_SIZE, 10, false);

    nb_strip_free(&progression);
    free(samples);
    free(strip);
    nd_adam_free(&opt);
    nd_model_free(&model);
    nd_schedule_free(&sched);
    nd_ctx_free(&ctx);
    nd_dataset_free(&ds);
    return 0;
}
