// Notebook 04, "Classifier-Free Diffusion Guidance": ask for a class, and turn up how much it is asked for.
//
// The lesson in order: the class as a one-hot context c, embedded by EmbedBlocks that *scale* the up path
// channel-wise while the time *shifts* it (c_emb * h + t_emb); label dropout while training (each element
// of the one-hot kept with probability 1 - 0.1, so the model also learns the unconditional noise for the
// all-zero context); guided sampling in one doubled batch, the first half with the class, the second with
// zeros, combined as e = (1 + w) e_c - w e_u. A w sweep shows what w does: negative w gives the wrong
// garment, 0 plain conditional samples, larger w class-consistent, exaggerated ones.
// 2,002,561 parameters, 3 epochs of Adam(1e-3). (The notebook's second part, the flowers data set, is not
// public; its model is the same class with down_chs (256, 256, 512) at 32x32x3.)
//
//   04_classifier_free_guidance [--quick] [--w W] [--out DIR]   figures: 04_w_sweep.png, 04_progression.png
#include <stdio.h>
#include <stdlib.h>

#include "notebook.h"

#define CLASSES 10

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "04_classifier_free_guidance", "notebook 04: class context and guidance", &args))
        return 1;
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);
    for (int k = 0; k < CLASSES; k++) printf("%d: %s\n", k, nd_fashion_mnist_classes[k]);

    // The conditional U-Net: notebook 03's plus c_embed1 / c_embed2 (EmbedBlock(10, 128), EmbedBlock(10, 64)).
    nd_ddpm_config cfg = nd_ddpm_defaults(); // 16x16, T = 150, 3 epochs, batch 128, lr 1e-3, c_drop_prob 0.1
    cfg.model.c_embed_dim = CLASSES;
    snprintf(cfg.data, sizeof cfg.data, "%s", args.data);
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_model_summary(&ctx, &model, stdout); // Num params: 2002561
    nd_model_free(&model);

    // get_context_mask(c, 0.1) on a batch of labels: one_hot(c) * bernoulli(ones - 0.1), element by element.
    int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    float onehot[8 * CLASSES] = {0}, kept[8 * CLASSES];
    for (int i = 0; i < 8; i++) onehot[i * CLASSES + labels[i]] = 1.0f;
    nd_tensor *c = nd_from_host(&ctx, ND_SHAPE(8, CLASSES), onehot);
    nd_tensor *mask = nd_empty(&ctx, c->shape);
    nd_rand_bernoulli(&ctx, mask, 1.0f - cfg.cfg_drop);
    nd_copy_to_host(&ctx, nd_mul(&ctx, c, mask), kept);
    printf("context after the mask (a dropped label is an all-zero row):\n");
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < CLASSES; k++) printf(" %.0f", kept[i * CLASSES + k]);
        printf("\n");
    }
    nd_ctx_step_end(&ctx);

    if (!nb_train_ddpm(&args, &cfg, &ctx, &model)) return 1;

    // The w sweep of sample_w: a row per w, a column per class.
    const float w_tests[] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 2.0f};
    const int n_w = args.quick ? 2 : 7;
    const long image = 16 * 16;
    nd_schedule sched;
    nd_schedule_linear(&sched, cfg.model.T, cfg.beta_start, cfg.beta_end);
    float classes_onehot[CLASSES * CLASSES] = {0};
    for (int k = 0; k < CLASSES; k++) classes_onehot[k * CLASSES + k] = 1.0f;
    nd_tensor *context = nd_empty_persistent(&ctx, ND_SHAPE(CLASSES, CLASSES)); // (10, 10) one class per image
    nd_copy_from_host(&ctx, context, classes_onehot);
    float *sweep = malloc((size_t)(7 * CLASSES * image) * sizeof(float));
    for (int i = 0; i < n_w; i++) {
        nd_sample_config sc = nb_sample_config(&args, true, 1);
        sc.w = w_tests[args.quick ? 3 * i + 3 : i];
        nd_sample_images(&ctx, &model, &sched, &sc, CLASSES, context, NULL, sweep + i * CLASSES * image, NULL, NULL);
        printf("w = %+.1f sampled\n", sc.w);
    }
    nb_write_grid(&args, "04_w_sweep.png", sweep, n_w * CLASSES, 1, 16, CLASSES, false);

    // One row per class, noise to garment, at --w (default 2).
    nd_sample_config sc = nb_sample_config(&args, true, 2);
    nb_strip progression;
    nb_strip_init(&progression, args.quick ? sc.steps : cfg.model.T, 10, CLASSES, image);
    nd_sample_images(&ctx, &model, &sched, &sc, CLASSES, context, NULL, sweep, nb_strip_step, &progression);
    nb_strip_write(&args, "04_progression.png", &progression, 1, 16, false);

    nb_strip_free(&progression);
    free(sweep);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return 0;
}
