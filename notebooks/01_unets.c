// Notebook 01, "From U-Net to Diffusion": a U-Net learns to remove noise from Fashion-MNIST images.
//
// The lesson in order: the data (16x16 grey images in [-1, 1]); the BatchNorm/ReLU/MaxPool U-Net and its
// parameter count; noise added as x_noisy = 0.5 x + 0.5 e (no timesteps yet); training the net to predict
// the clean image (MSE(x, model(x_noisy))); then the net's reconstructions and its attempt to "generate"
// from pure noise, which gives the ink blots the notebook shows: one step cannot make an image from noise.
//
//   01_unets [--quick] [--out DIR]      figures: 01_data.png, 01_reconstructions.png, 01_generated.png
#include <stdio.h>
#include <stdlib.h>

#include "notebook.h"
#include "train.h"

#define IMG_SIZE 16
#define BATCH_SIZE 128

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "01_unets", "notebook 01: a U-Net that removes noise in one step", &args)) return 1;
    nd_error err;

    // The data: train + test (70,000 images) resized to 16x16, RandomHorizontalFlip, scaled to [-1, 1].
    nd_dataset ds;
    if (!nd_dataset_load(&ds, args.data, ND_SPLIT_ALL, &err) || !nd_dataset_resize(&ds, IMG_SIZE, IMG_SIZE, &err)) {
        fprintf(stderr, "01_unets: %s\n", err.msg);
        return 1;
    }
    printf("data: %lld images of %dx%dx%d\n", (long long)ds.n, ds.c, ds.h, ds.w);
    const long image = (long)ds.c * IMG_SIZE * IMG_SIZE;
    float *first = malloc((size_t)(8 * image) * sizeof(float)); // (8, 1, 16, 16)
    for (int i = 0; i < 8; i++) nd_dataset_sample(first + i * image, &ds, i, false, false);
    nb_write_grid(&args, "01_data.png", first, 8, ds.c, IMG_SIZE, 8, false);

    // The model: notebook 01's U-Net (down_chs 16, 32, 64; no time input). dense_emb is counted but unused.
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET_V1, ds.c, IMG_SIZE, 0);
    mc.t_embed_dim = 0;
    nd_model model;
    nd_model_create(&model, mc, &ctx);
    nd_model_summary(&ctx, &model, stdout); // Num params: 234977

    // Training: Adam(lr 1e-4), 2 epochs, loss = MSE(x, model(0.5 x + 0.5 e)).
    nd_adam_config ac = nd_adam_defaults();
    ac.lr = 1e-4f;
    nd_adam opt;
    nd_adam_init(&opt, &model.params, &ctx, ac);
    nd_loader_config lc = {.batch_size = BATCH_SIZE, .shuffle = true, .drop_last = true, .random_flip = true};
    nd_loader *loader = nd_loader_create(&ds, &lc, 0, 0, &err);
    if (!loader) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t per_epoch = nd_loader_batches_per_epoch(loader), epochs = 2;
    int64_t total = args.quick ? 3 : epochs * per_epoch;
    nd_shape batch_shape = ND_SHAPE(BATCH_SIZE, ds.c, IMG_SIZE, IMG_SIZE);
    for (int64_t step = 0; step < total; step++) {
        const nd_batch *batch = nd_loader_next(loader);
        nd_tensor *x = nd_from_host(&ctx, batch_shape, batch->images); // (B, 1, 16, 16)
        nd_tensor *noise = nd_empty(&ctx, batch_shape);
        nd_rand_normal(&ctx, noise, 0.0f, 1.0f);
        nd_tensor *x_noisy = nd_add(&ctx, nd_mul_scalar(&ctx, x, 0.5f), nd_mul_scalar(&ctx, noise, 0.5f));
        nd_tensor *pred = nd_model_forward(&ctx, &model, x_noisy, NULL, NULL, true);
        nd_tensor *loss = nd_mse_loss(&ctx, x, pred);
        nd_backward(&ctx, loss);
        nd_adam_step(&opt, &model.params, &ctx);
        nd_params_zero_grad(&model.params, &ctx);
        if (step % 100 == 0 || step == total - 1)
            printf("Epoch %lld | Step %03lld | Loss: %.4f\n", (long long)(step / per_epoch),
                   (long long)(step % per_epoch), nd_item(&ctx, loss));
        nd_ctx_step_end(&ctx);
    }
    nd_loader_free(loader);

    // Reconstructions: a row of originals, a row of noisy inputs, a row of the model's predictions.
    nd_ctx_set_grad(&ctx, false);
    float *figure = malloc((size_t)(24 * image) * sizeof(float)); // (3 rows of 8, 1, 16, 16)
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(8, ds.c, IMG_SIZE, IMG_SIZE), first);
    nd_tensor *noise = nd_empty(&ctx, x->shape);
    nd_rand_normal(&ctx, noise, 0.0f, 1.0f);
    nd_tensor *x_noisy = nd_add(&ctx, nd_mul_scalar(&ctx, x, 0.5f), nd_mul_scalar(&ctx, noise, 0.5f));
    nd_copy_to_host(&ctx, x, figure);
    nd_copy_to_host(&ctx, x_noisy, figure + 8 * image);
    nd_copy_to_host(&ctx, nd_model_forward(&ctx, &model, x_noisy, NULL, NULL, false), figure + 16 * image);
    nb_write_grid(&args, "01_reconstructions.png", figure, 24, ds.c, IMG_SIZE, 8, false);
    nd_ctx_step_end(&ctx);

    // "Generation" in one step from pure noise: blots, not garments. Diffusion (notebook 02) takes many steps.
    nd_tensor *z = nd_empty(&ctx, ND_SHAPE(8, ds.c, IMG_SIZE, IMG_SIZE));
    nd_rand_normal(&ctx, z, 0.0f, 1.0f);
    nd_copy_to_host(&ctx, nd_model_forward(&ctx, &model, z, NULL, NULL, false), figure);
    nb_write_grid(&args, "01_generated.png", figure, 8, ds.c, IMG_SIZE, 8, false);

    free(figure);
    free(first);
    nd_adam_free(&opt);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    nd_dataset_free(&ds);
    return 0;
}
