// nanodiff captions, train-clip and clip-eval: the captions CLIP learns from, its contrastive training, and its
// zero-shot accuracy or an image x prompt similarity table.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train.h"

#define HEAT_CELL 24 // pixels per cell of the similarity heat map

int nd_cmd_captions(int argc, char **argv) {
    const char *data = "fashion-mnist";
    int64_t n = 20, seed = 0, img_size = 16;
    bool help = false;
    const nd_flag flags[] = {
        {"--n", ND_FLAG_INT, &n, "captions to print"},
        {"--seed", ND_FLAG_INT, &seed, "seed of the template and flip draws"},
        {"--data", ND_FLAG_STRING, &data, "fashion-mnist or an IDX directory with its 10 classes"},
        {"--img-size", ND_FLAG_INT, &img_size, "images are measured at this size (CLIP's)"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "print training captions: image index, label, flip, caption";
    if (!nd_flags_parse("captions", argc, argv, 2, flags, n_flags) || help) {
        nd_flags_usage("captions", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    if (n < 1 || img_size < 4) {
        fprintf(stderr, "nanodiff captions: --n must be positive and --img-size at least 4\n");
        return 1;
    }
    nd_dataset ds = {0};
    nd_captioner cap;
    nd_error err;
    if (!nd_dataset_load(&ds, data, ND_SPLIT_TRAIN, &err) ||
        (ds.h != img_size && !nd_dataset_resize(&ds, (int)img_size, (int)img_size, &err)) ||
        !nd_captioner_init(&cap, &ds, (uint64_t)seed, &err)) {
        fprintf(stderr, "nanodiff captions: %s\n", err.msg);
        nd_dataset_free(&ds);
        return 1;
    }
    printf("index  label       flip  caption\n");
    for (int64_t k = 0; k < n && k < ds.n; k++) {
        bool flip = nd_flip_coin((uint64_t)seed, 0, k); // as epoch 0 of a run with this seed shows image k
        char caption[ND_CAPTION_MAX];
        nd_caption_make(&cap, &ds, k, flip, 0, caption, NULL);
        printf("%5lld  %-10s  %-4s  %s\n", (long long)k, nd_caption_class_names[ds.labels[k]], flip ? "yes" : "no",
               caption);
    }
    nd_dataset_free(&ds);
    return 0;
}

int nd_cmd_train_clip(int argc, char **argv) {
    nd_clip_train_config cfg = nd_clip_train_defaults();
    nd_cli_training t = {.data = "fashion-mnist",
                         .out = "runs/clip",
                         .device = "auto",
                         .precision = "f32",
                         .epochs = cfg.epochs,
                         .batch = cfg.batch_size,
                         .lr = cfg.lr,
                         .weight_decay = cfg.weight_decay};
    int64_t vocab = cfg.vocab_size, context = cfg.model.context_length, warmup = cfg.warmup_steps;
    int64_t width = cfg.model.text_width, layers = cfg.model.vision_layers;
    nd_flag flags[ND_CLI_TRAINING_FLAGS + 5] = {
        {"--warmup", ND_FLAG_INT, &warmup, "warm-up steps (AdamW, then a cosine decay of --lr)"},
        {"--width", ND_FLAG_INT, &width, "width of both towers and of the shared space"},
        {"--vision-layers", ND_FLAG_INT, &layers, "ViT blocks"},
        {"--vocab", ND_FLAG_INT, &vocab, "BPE vocabulary size to aim for (bytes + merges + 2)"},
        {"--context", ND_FLAG_INT, &context, "tokens per prompt, start and end included"},
    };
    int n_flags = 5 + nd_cli_training_flags(&t, "fashion-mnist or an IDX directory with its 10 classes",
                                            "output directory: clip.h5, loss.csv", flags + 5);
    const char *summary = "train a CLIP (contrastive image/text model) on captioned Fashion-MNIST";
    if (!nd_flags_parse("train-clip", argc, argv, 2, flags, n_flags) || t.help) {
        nd_flags_usage("train-clip", summary, flags, n_flags);
        return t.help ? 0 : 1;
    }
    int dev;
    if (!nd_cli_training_check("train-clip", &t, 2, &dev) ||
        !nd_cli_precision("train-clip", t.precision, dev, &cfg.precision))
        return 1;
    if (warmup < 1 || vocab < 258 || vocab > 65536 || context < 4 || context > 1024 || width < 4 || width % 4 ||
        layers < 1) {
        fprintf(stderr, "nanodiff train-clip: need positive --warmup and --vision-layers, --vocab in 258..65536, "
                        "--context in 4..1024, --width a positive multiple of 4\n");
        return 1;
    }
    snprintf(cfg.data, sizeof cfg.data, "%s", t.data);
    cfg.epochs = (int)t.epochs, cfg.batch_size = (int)t.batch, cfg.max_steps = t.max_steps;
    cfg.lr = (float)t.lr, cfg.weight_decay = (float)t.weight_decay, cfg.warmup_steps = warmup;
    cfg.vocab_size = (int)vocab, cfg.model.context_length = (int)context;
    cfg.model.text_width = cfg.model.vision_width = cfg.model.embed_dim = (int)width;
    cfg.model.vision_layers = (int)layers;
    cfg.random_flip = !t.no_flip, cfg.seed = (uint64_t)t.seed, cfg.checkpoint_every = t.checkpoint_every;
    nd_clip_train_result result;
    nd_error err;
    if (!nd_clip_train(&cfg, t.out, t.resume, (nd_device)dev, !t.quiet, &result, &err)) {
        fprintf(stderr, "nanodiff train-clip: %s\n", err.msg);
        return 1;
    }
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/clip.h5", t.out);
    int rc = nd_cli_training_done(result.steps, result.seconds, result.images_per_second, result.last_loss, ckpt,
                                  result.interrupted);
    return result.interrupted ? 128 + result.signal : rc; // 130 for Ctrl-C, 143 for SIGTERM
}

// Splits "p1;p2;p3" in place into at most max prompts; returns the count.
static int split_prompts(char *list, char **prompts, int max) {
    int n = 0;
    for (char *p = list; n < max;) {
        char *semi = strchr(p, ';');
        if (semi) *semi = 0;
        prompts[n++] = p;
        if (!semi) break;
        p = semi + 1;
    }
    return n;
}

// The images down the left, a cell per prompt to their right: blue (lowest similarity in the table) to red.
static bool write_heat_map(const char *path, const float *images, int n, int size, const float *sim, int n_prompts,
                           nd_error *err) {
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n * n_prompts; i++) lo = fminf(lo, sim[i]), hi = fmaxf(hi, sim[i]);
    nd_image8 img = {.height = n * HEAT_CELL, .width = (1 + n_prompts) * HEAT_CELL, .channels = 3};
    img.pixels = nd_xcalloc((size_t)img.height * img.width * 3, 1);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < HEAT_CELL; y++)
            for (int x = 0; x < (1 + n_prompts) * HEAT_CELL; x++) {
                uint8_t *px = img.pixels + (((size_t)i * HEAT_CELL + y) * img.width + x) * 3;
                if (x < HEAT_CELL) { // nearest-neighbour thumbnail of image i
                    float v = images[(size_t)i * size * size + (y * size / HEAT_CELL) * size + x * size / HEAT_CELL];
                    px[0] = px[1] = px[2] = (uint8_t)lrintf(fminf(fmaxf((v + 1) * 0.5f, 0), 1) * 255);
                } else {
                    float t = hi > lo ? (sim[i * n_prompts + x / HEAT_CELL - 1] - lo) / (hi - lo) : 0.5f;
                    px[0] = (uint8_t)lrintf(255 * t), px[1] = (uint8_t)lrintf(64 * (1 - fabsf(2 * t - 1)));
                    px[2] = (uint8_t)lrintf(255 * (1 - t));
                }
            }
    bool ok = nd_png_write(path, &img, err);
    nd_image8_free(&img);
    return ok;
}

// --images FILE --prompts "p1;p2": the lesson's similarity table.
static int similarity_table(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const char *file,
                            const char *prompt_list, int64_t max_images) {
    nd_dataset ds = {0};
    nd_error err;
    int size = clip->config.img_size;
    if (!nd_dataset_load(&ds, file, ND_SPLIT_TEST, &err) ||
        (ds.h != size || ds.w != size ? !nd_dataset_resize(&ds, size, size, &err) : false)) {
        fprintf(stderr, "nanodiff clip-eval: %s\n", err.msg);
        nd_dataset_free(&ds);
        return 1;
    }
    if (ds.c != clip->config.img_ch) {
        fprintf(stderr, "nanodiff clip-eval: %s: images have %d channels, the CLIP takes %d\n", file, ds.c,
                clip->config.img_ch);
        nd_dataset_free(&ds);
        return 1;
    }
    char *list = nd_xmalloc(strlen(prompt_list) + 1);
    strcpy(list, prompt_list);
    char *prompts[64];
    int n_prompts = split_prompts(list, prompts, 64);
    int n = (int)(ds.n < max_images ? ds.n : max_images);
    int64_t image = (int64_t)ds.c * size * size;
    float *images = nd_xmalloc((size_t)n * image * sizeof *images); // (n, C, S, S)
    float *sim = nd_xmalloc((size_t)n * n_prompts * sizeof *sim);   // (n, n_prompts)
    for (int i = 0; i < n; i++) nd_dataset_sample(images + i * image, &ds, i, false, false);
    nd_clip_similarity(ctx, clip, tok, images, n, (const char *const *)prompts, n_prompts, sim);
    printf("cosine similarity  ");
    for (int j = 0; j < n_prompts; j++) printf("  [%d] %s", j, prompts[j]);
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("image %-4d       ", i);
        int best = 0;
        for (int j = 0; j < n_prompts; j++) {
            printf("  %7.4f", sim[i * n_prompts + j]);
            if (sim[i * n_prompts + j] > sim[i * n_prompts + best]) best = j;
        }
        printf("   best [%d]\n", best);
    }
    char path[1100];
    const char *dot = strrchr(file, '.');
    int stem = dot && !strchr(dot, '/') ? (int)(dot - file) : (int)strlen(file);
    snprintf(path, sizeof path, "%.*s-similarity.png", stem, file);
    int rc = 0;
    if (!write_heat_map(path, images, n, size, sim, n_prompts, &err)) {
        fprintf(stderr, "nanodiff clip-eval: %s\n", err.msg);
        rc = 1;
    } else {
        printf("heat map: %s\n", path);
    }
    free(images), free(sim), free(list);
    nd_dataset_free(&ds);
    return rc;
}

int nd_cmd_clip_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = "fashion-mnist", *images = NULL, *prompts = NULL, *device = "auto";
    int64_t max_images = 16, limit = 0;
    bool help = false;
    const nd_flag flags[] = {
        {"--ckpt", ND_FLAG_STRING, &ckpt, "CLIP checkpoint (clip.h5 of train-clip)"},
        {"--data", ND_FLAG_STRING, &data, "zero-shot on this set's test split (fashion-mnist or an IDX directory)"},
        {"--limit", ND_FLAG_INT, &limit, "score only the first N test images (0: all)"},
        {"--images", ND_FLAG_STRING, &images, "HDF5 images (as sample --h5 writes): similarity table instead"},
        {"--prompts", ND_FLAG_STRING, &prompts, "prompts for --images, separated by ';'"},
        {"--max-images", ND_FLAG_INT, &max_images, "rows of the similarity table"},
        {"--device", ND_FLAG_STRING, &device, "auto, cpu or cuda"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "CLIP zero-shot accuracy (\"a photo of a {class}\"), or an image x prompt similarity table";
    if (!nd_flags_parse("clip-eval", argc, argv, 2, flags, n_flags) || help || !ckpt) {
        if (!help && !ckpt) fprintf(stderr, "nanodiff clip-eval: give --ckpt\n");
        nd_flags_usage("clip-eval", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    if (!images != !prompts || max_images < 1 || limit < 0) {
        fprintf(stderr, "nanodiff clip-eval: --images and --prompts go together; --max-images must be positive, "
                        "--limit >= 0\n");
        return 1;
    }
    int dev;
    if (!nd_cli_device("clip-eval", device, &dev)) return 1;
    nd_ctx ctx;
    nd_ctx_init(&ctx, (nd_device)dev, 16 << 20, 0);
    nd_clip clip;
    nd_tokenizer tok;
    nd_error err;
    if (!nd_clip_load(ckpt, &clip, &tok, &ctx, &err)) {
        fprintf(stderr, "nanodiff clip-eval: %s\n", err.msg);
        nd_ctx_free(&ctx);
        return 1;
    }
    int rc = 0;
    if (images) {
        rc = similarity_table(&ctx, &clip, &tok, images, prompts, max_images);
    } else {
        nd_dataset ds = {0};
        int size = clip.config.img_size;
        bool ok = nd_dataset_load(&ds, data, ND_SPLIT_TEST, &err);
        if (ok && (ds.num_classes != 10 || ds.c != 1))
            ok = nd_error_set(&err,
                              "%s: zero-shot needs 10 labelled classes of grey images, found %d classes of %d "
                              "channels",
                              data, ds.num_classes, ds.c);
        ok = ok && (ds.h == size || nd_dataset_resize(&ds, size, size, &err));
        if (!ok) {
            fprintf(stderr, "nanodiff clip-eval: %s\n", err.msg);
            rc = 1;
        } else {
            int64_t n = limit > 0 && limit < ds.n ? limit : ds.n, image = (int64_t)size * size, correct[10], count[10];
            float *x = nd_xmalloc((size_t)n * image * sizeof *x); // (n, 1, S, S)
            for (int64_t i = 0; i < n; i++) nd_dataset_sample(x + i * image, &ds, i, false, false);
            double acc = nd_clip_zero_shot(&ctx, &clip, &tok, x, n, ds.labels, correct, count);
            char prompt[ND_CAPTION_MAX];
            printf("zero-shot classification of %lld %s test images by \"a photo of a {class}\"\n", (long long)n, data);
            for (int k = 0; k < 10; k++) {
                nd_caption_class_prompt(k, prompt, sizeof prompt);
                printf("  %-24s %5.1f%%  (%lld images)\n", prompt,
                       count[k] ? 100.0 * (double)correct[k] / (double)count[k] : 0.0, (long long)count[k]);
            }
            printf("zero_shot_acc=%.3f\n", acc);
            free(x);
        }
        nd_dataset_free(&ds);
    }
    nd_tokenizer_free(&tok);
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
    return rc;
}

int nd_clip_info(const char *path) {
    nd_clip_train_config cfg;
    nd_train_state state;
    nd_error err;
    if (!nd_clip_checkpoint_read_config(path, &cfg, &err)) {
        fprintf(stderr, "nanodiff info: %s\n", err.msg);
        return 1;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_clip clip;
    nd_tokenizer tok;
    nd_clip_create(&clip, cfg.model, &ctx);
    bool ok = nd_clip_checkpoint_load(path, &clip, &tok, NULL, &state, NULL, &ctx, &err);
    if (ok) {
        const nd_clip_config *m = &cfg.model;
        float scale;
        nd_copy_to_host(&ctx, clip.logit_scale, &scale);
        printf("%s: CLIP trained on %s, %lld steps (%d epochs of batch %d, lr %g)\n", path, cfg.data,
               (long long)state.step, cfg.epochs, cfg.batch_size, cfg.lr);
        printf("  text:  %d tokens (BPE: 256 bytes + %d merges + start/end), context %d, width %d, %d layers, "
               "%d heads\n",
               m->vocab_size, tok.n_merges, m->context_length, m->text_width, m->text_layers, m->text_heads);
        printf("  image: ViT %dx%dx%d in %dx%d patches, width %d, %d layers, %d heads\n", m->img_ch, m->img_size,
               m->img_size, m->patch_size, m->patch_size, m->vision_width, m->vision_layers, m->vision_heads);
        printf("  shared space %d, logit scale exp(%.4f) = %.2f; %lld parameters\n", m->embed_dim, scale, expf(scale),
               (long long)clip.params.total);
        nd_tokenizer_free(&tok);
    } else {
        fprintf(stderr, "nanodiff info: %s\n", err.msg);
    }
    nd_clip_free(&clip);
    nd_ctx_free(&ctx);
    return ok ? 0 : 1;
}
