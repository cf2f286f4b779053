// Notebook 05, "CLIP": one space for pictures and words, then words as the U-Net's context.
//
// The lesson in order. CLIP is two encoders trained together on (caption, image) pairs: a Transformer over
// BPE tokens and a ViT over patches, each ending in a projection into one shared space, where a matching
// caption and image point the same way. The course downloads OpenAI's ViT-B/32 (512-d, 338 MB); here nanodiff
// trains its own small CLIP on 16x16 Fashion-MNIST with captions measured on each image (docs/clip.md), 64-d.
// Then, as the notebook: tokenize prompts, encode three images (get_img_encodings) and three prompts,
// L2-normalise both, and compare every image with every prompt by the dot product: the 3x3 cosine-similarity
// table, whose largest entry in each row should be the matching prompt. Then CLIP's text features become the
// U-Net's context: a text-to-image U-Net learns from each image's caption, and samples follow a prompt.
//
//   05_clip [--quick] [--w W] [--out DIR]   figures: 05_images.png, 05_similarity.png, 05_samples.png
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notebook.h"

#define N_PAIRS 3
#define CELL 24 // pixels per cell of the similarity figure

// get_img_encodings: clip_preprocess each image (ToTensor, then x * 2 - 1 as in CLIP's training), stack them
// into one batch and run the image encoder -> (n, E), not normalised.
static nd_tensor *get_img_encodings(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds, const int64_t *idx, int n) {
    long image = (long)ds->c * ds->h * ds->w;
    float *processed_imgs = malloc((size_t)(n * image) * sizeof(float)); // np.stack's (n, C, S, S)
    for (int i = 0; i < n; i++) nd_dataset_sample(processed_imgs + i * image, ds, idx[i], false, false);
    nd_tensor *clip_imgs = nd_from_host(ctx, ND_SHAPE(n, ds->c, ds->h, ds->w), processed_imgs);
    free(processed_imgs);
    return nd_clip_encode_image(ctx, clip, clip_imgs);
}

// The images down the left, a cell per prompt to their right, from blue (the table's lowest) to red (highest).
static bool write_similarity(const nb_args *args, const float *images, int size, const float *sim) {
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < N_PAIRS * N_PAIRS; i++) lo = fminf(lo, sim[i]), hi = fmaxf(hi, sim[i]);
    nd_image8 img = {.height = N_PAIRS * CELL, .width = (1 + N_PAIRS) * CELL, .channels = 3};
    img.pixels = calloc((size_t)img.height * img.width * 3, 1);
    for (int y = 0; y < img.height; y++)
        for (int x = 0; x < img.width; x++) {
            uint8_t *px = img.pixels + ((size_t)y * img.width + x) * 3;
            int i = y / CELL;
            if (x < CELL) { // the image, nearest-neighbour scaled
                float v = images[(long)i * size * size + (y % CELL * size / CELL) * size + x * size / CELL];
                px[0] = px[1] = px[2] = (uint8_t)lrintf(fminf(fmaxf((v + 1) * 0.5f, 0), 1) * 255);
            } else {
                float t = hi > lo ? (sim[i * N_PAIRS + x / CELL - 1] - lo) / (hi - lo) : 0.5f;
                px[0] = (uint8_t)lrintf(255 * t), px[1] = (uint8_t)lrintf(64 * (1 - fabsf(2 * t - 1)));
                px[2] = (uint8_t)lrintf(255 * (1 - t));
            }
        }
    char path[1100];
    nd_error err;
    bool ok = nd_png_write(nb_path(path, args, "05_similarity.png"), &img, &err);
    nd_image8_free(&img);
    if (!ok)
        fprintf(stderr, "%s\n", err.msg);
    else
        printf("wrote %s\n", path);
    return ok;
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "05_clip", "notebook 05: CLIP, and its text features as the U-Net's context", &args))
        return 1;
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);
    nd_error err;

    // Train the CLIP (the course loads clip.load("ViT-B/32") instead): 3 epochs of batch 256 by default,
    // the contrastive loss over each batch's pairs.
    nd_clip_train_config ccfg = nd_clip_train_defaults();
    snprintf(ccfg.data, sizeof ccfg.data, "%s", args.data);
    if (args.quick) ccfg.max_steps = 20, ccfg.batch_size = 64, ccfg.warmup_steps = 5;
    nd_clip_train_result cres;
    char clip_dir[1100], clip_path[1200];
    nb_path(clip_dir, &args, "clip");
    snprintf(clip_path, sizeof clip_path, "%s/clip.h5", clip_dir);
    if (!nd_clip_train(&ccfg, clip_dir, false, ctx.device, true, &cres, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("trained the CLIP for %lld steps in %.1f s; mean loss of the last epoch: %.4f\n", (long long)cres.steps,
           cres.seconds, cres.last_loss);
    nd_clip clip;
    nd_tokenizer tok;
    if (!nd_clip_load(clip_path, &clip, &tok, &ctx, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const nd_clip_config *cc = &clip.config;
    printf("CLIP: %lld parameters, %dx%d images in %dx%d patches, a %d-token context; CLIP_FEATURES = %d\n",
           (long long)clip.params.total, cc->img_size, cc->img_size, cc->patch_size, cc->patch_size, cc->context_length,
           cc->embed_dim);

    // clip.tokenize: start token, the prompt's BPE tokens, end token, zero padding to the context.
    const char *text_list[N_PAIRS] = {"a photo of an ankle boot", "a photo of a trouser", "a photo of a bag"};
    const int labels[N_PAIRS] = {9, 1, 8};
    int32_t *ids = malloc((size_t)N_PAIRS * cc->context_length * sizeof *ids); // (3, 77)
    nd_tokenizer_encode_batch(&tok, text_list, N_PAIRS, ids);
    printf("tokenize(\"%s\") = [", text_list[0]);
    for (int j = 0; j < 12; j++) printf("%d%s", ids[j], j < 11 ? ", " : ", ...]");
    printf(" (start %d, end %d, vocabulary %d)\n", tok.sot, tok.eot, tok.vocab_size);

    // Three test images, one of each prompt's class, as CLIP sees them (resized to 16x16, in [-1, 1]).
    nd_dataset ds;
    if (!nd_dataset_load(&ds, args.data, ND_SPLIT_TEST, &err) ||
        !nd_dataset_resize(&ds, cc->img_size, cc->img_size, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t idx[N_PAIRS];
    for (int k = 0; k < N_PAIRS; k++)
        for (idx[k] = 0; ds.labels[idx[k]] != labels[k]; idx[k]++) {}
    long image = (long)ds.c * ds.h * ds.w;
    float *images = malloc((size_t)(N_PAIRS * image) * sizeof(float));
    for (int k = 0; k < N_PAIRS; k++) nd_dataset_sample(images + k * image, &ds, idx[k], false, false);
    nb_write_grid(&args, "05_images.png", images, N_PAIRS, ds.c, ds.h, N_PAIRS, false);

    nd_tensor *img_enc = get_img_encodings(&ctx, &clip, &ds, idx, N_PAIRS);     // (3, E)
    nd_tensor *text_enc = nd_clip_encode_text(&ctx, &clip, ids, N_PAIRS, NULL); // (3, E): the end token's feature
    char a[64], b[64];
    printf("encode_image: %s, encode_text: %s\n", nd_shape_str(img_enc->shape, a, sizeof a),
           nd_shape_str(text_enc->shape, b, sizeof b));

    // Cosine similarity: L2-normalise both, then the dot product; all pairs at once as a matrix product.
    nd_tensor *img_n = nd_l2_normalize(&ctx, img_enc), *text_n = nd_l2_normalize(&ctx, text_enc);
    nd_tensor *sim_t = nd_matmul(&ctx, img_n, text_n, false, true); // (3 images, 3 prompts)
    float sim[N_PAIRS * N_PAIRS];
    nd_copy_to_host(&ctx, sim_t, sim);
    printf("cosine similarity of the %s with each prompt:", nd_fashion_mnist_classes[labels[0]]);
    for (int j = 0; j < N_PAIRS; j++) printf(" %.4f", sim[j]);
    printf("\n\n%-12s", "image \\ text");
    for (int j = 0; j < N_PAIRS; j++) printf(" %26s", text_list[j]);
    printf("\n");
    int matched = 0;
    for (int i = 0; i < N_PAIRS; i++) {
        int best = 0;
        for (int j = 1; j < N_PAIRS; j++) best = sim[i * N_PAIRS + j] > sim[i * N_PAIRS + best] ? j : best;
        matched += best == i;
        printf("%-12s", nd_fashion_mnist_classes[labels[i]]);
        for (int j = 0; j < N_PAIRS; j++) printf(" %25.4f%s", sim[i * N_PAIRS + j], j == best ? "*" : " ");
        printf("\n");
    }
    printf("the matching prompt scores highest (*) for %d of %d images\n", matched, N_PAIRS);
    write_similarity(&args, images, ds.h, sim);
    nd_ctx_step_end(&ctx);

    // CLIP embeddings as context. The course trains its U-Net on the pooled CLIP *image* embedding of each flower
    // and samples with the pooled *text* embedding of a prompt. The lesson's pipeline, which nanodiff follows,
    // conditions on the text encoder's whole token sequence (77 x 64 after the final LayerNorm) through
    // cross-attention, trained on each image's caption ("a dark sneaker facing left", ...) with the empty prompt
    // in its place 10% of the time. The CLIP stays frozen: only the U-Net learns. The course's settings otherwise:
    // T = 150, 3 epochs of batch 128, Adam 1e-3.
    nd_ddpm_config cfg = nd_ddpm_defaults();
    cfg.model = nd_model_config_default(ND_MODEL_T2I_UNET, 1, cc->img_size, 0); // context width: the CLIP's
    snprintf(cfg.data, sizeof cfg.data, "%s", args.data);
    if (strlen(clip_path) >= sizeof cfg.clip) {
        fprintf(stderr, "05_clip: %s: the path is longer than %zu bytes\n", clip_path, sizeof cfg.clip - 1);
        return 1;
    }
    memcpy(cfg.clip, clip_path, strlen(clip_path) + 1);
    nd_model model;
    if (!nb_train_ddpm(&args, &cfg, &ctx, &model)) return 1;
    nd_text_encoder *te;
    char path[1100];
    if (!nd_t2i_open_text(nb_path(path, &args, "model.h5"), &cfg, NULL, ctx.device, &te, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("t2i-unet: %lld parameters; a prompt's context is (%d, %d): every token's feature, not the pooled (%d)\n",
           (long long)model.params.total, nd_text_encoder_tokens(te), nd_text_encoder_width(te), cc->embed_dim);

    // Sampling: the prompt's features in the guided half, the empty prompt's in the unconditional half,
    // e = e_u + s (e_c - e_u) with s = 1 + w, and the lesson's step over all T steps (x0_hat clamped to [-1, 1],
    // the posterior's mean and variance).
    const char *sample_prompts[4] = {"a photo of a sneaker", "a photo of a trouser", "a dark bag",
                                     "a sandal facing right"};
    const int per = args.quick ? 2 : 8, n = 4 * per;
    const char *list[4 * 8];
    for (int i = 0; i < n; i++) list[i] = sample_prompts[i / per];
    nd_tensor *context = nd_text_encoder_context(te, &ctx, list, n, true); // (n, 77, 64)
    nd_tensor *null_context = nd_t2i_empty_context(te, &ctx, n);
    nd_schedule sched;
    nd_ddpm_schedule(&cfg, &sched);
    nd_sample_config sc = nb_sample_config(&args, true, 3);
    if (!args.quick) sc.sampler = ND_SAMPLER_DDPM_CLAMPED; // the lesson's step
    sc.clamp_x0 = true;                                    // and x0_hat clamped in --quick's DDIM too
    float *samples = malloc((size_t)(n * image) * sizeof(float));
    nd_sample_images(&ctx, &model, &sched, &sc, n, context, null_context, samples, NULL, NULL);
    for (int k = 0; k < 4; k++)
        printf("row %d: \"%s\" (guidance scale s = %.1f)\n", k + 1, sample_prompts[k], 1.0f + sc.w);
    nb_write_grid(&args, "05_samples.png", samples, n, 1, cc->img_size, per, false);

    free(samples);
    nd_schedule_free(&sched);
    nd_text_encoder_close(te);
    nd_model_free(&model);

    free(images);
    free(ids);
    nd_dataset_free(&ds);
    nd_tokenizer_free(&tok);
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
    return 0;
}
