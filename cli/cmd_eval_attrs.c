// nanodiff eval --attributes: whether a text-to-image model obeys the attributes its captions taught it.
// "a photo of a dark {class}" against "a photo of a light {class}": the mean grey level of the inked pixels
// must move in the asked direction for every class; "... facing left/right" shoes must face the asked way,
// measured as the captions measure it (nd_caption_measure).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sample.h"
#include "train.h"

enum { CLASSES = 10, SHOES = 3 };
static const int shoe_labels[SHOES] = {5, 7, 9}; // sandal, sneaker, ankle boot

bool nd_cli_is_attribute_eval(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--attributes") == 0) return true;
    return false;
}

// n samples of each prompt into images (n_prompts * n, C, S, S), batch rows at a time, with a progress line
// unless quiet.
static void draw(nd_ctx *ctx, const nd_model *model, nd_text_encoder *text, const nd_schedule *sched,
                 const nd_sample_config *sc, char (*prompts)[ND_CAPTION_MAX], int n_prompts, int n, int batch,
                 bool quiet, float *images) {
    const nd_model_config *mc = &model->config;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    int total = n_prompts * n;
    const char **rows = nd_xmalloc((size_t)total * sizeof(char *));
    for (int i = 0; i < total; i++) rows[i] = prompts[i / n];
    nd_cli_progress progress;
    nd_cli_progress_begin(&progress, "eval", !quiet, sc, sched, (total + batch - 1) / batch);
    for (int first = 0, chunk = 0; first < total; first += batch, chunk++) {
        int b = total - first < batch ? total - first : batch;
        nd_arena_mark mark = nd_arena_get_mark(&ctx->pool);
        nd_tensor *context = nd_text_encoder_context(text, ctx, rows + first, b, true); // (b, S, D)
        nd_tensor *null_context = nd_t2i_empty_context(text, ctx, b);                   // (b, S, D)
        nd_sample_config chunk_cfg = *sc;
        chunk_cfg.seed = sc->seed + ((uint64_t)chunk << 32);
        nd_cli_progress_batch(&progress, chunk, b, NULL, NULL);
        nd_sample_images(ctx, model, sched, &chunk_cfg, b, context, null_context, images + (int64_t)first * image,
                         nd_cli_progress_step, &progress);
        nd_arena_release(&ctx->pool, mark);
    }
    free(rows);
}

int nd_cmd_eval_attributes(int argc, char **argv) {
    nd_cli_sampling f = nd_cli_sampling_defaults();
    const char *clip = NULL;
    int64_t n = 50, batch = 250;
    bool attributes = false, help = false;
    nd_flag flags[ND_CLI_SAMPLING_FLAGS + 5];
    int n_flags = nd_cli_sampling_flags(&f, flags);
    const nd_flag own[] = {
        {"--attributes", ND_FLAG_BOOL, &attributes, "this check: dark/light and facing left/right"},
        {"--n", ND_FLAG_INT, &n, "samples per prompt"},
        {"--batch", ND_FLAG_INT, &batch, "samples drawn at once"},
        {"--clip", ND_FLAG_STRING, &clip, "the CLIP checkpoint (default: clip.h5 beside --ckpt)"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    for (int i = 0; i < ND_COUNT(own); i++) flags[n_flags++] = own[i];
    const char *summary = "text-to-image attributes: \"dark\" vs \"light\" brightness per class, \"facing left/right\"";
    if (!nd_flags_parse("eval", argc, argv, 2, flags, n_flags) || help || !f.ckpt) {
        if (!help && !f.ckpt) fprintf(stderr, "nanodiff eval: --ckpt is required\n");
        nd_flags_usage("eval --attributes", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    const char *ckpt = f.ckpt;
    if (n < 1 || n > 100000 || batch < 1) {
        fprintf(stderr, "nanodiff eval: --n must be in [1, 100000] and --batch positive\n");
        return 1;
    }
    nd_ddpm_config cfg;
    nd_error err;
    if (!nd_checkpoint_read_config(ckpt, &cfg, &err)) {
        fprintf(stderr, "nanodiff eval: %s\n", err.msg);
        return 1;
    }
    if (cfg.model.kind != ND_MODEL_T2I_UNET) {
        fprintf(stderr, "nanodiff eval: --attributes checks text-to-image models; %s holds a %s model\n", ckpt,
                nd_model_kind_name(cfg.model.kind));
        return 1;
    }
    nd_dataset ds = {0};
    nd_captioner cap;
    if (!nd_dataset_load(&ds, cfg.data, ND_SPLIT_TRAIN, &err) ||
        (ds.h != cfg.model.img_size && !nd_dataset_resize(&ds, cfg.model.img_size, cfg.model.img_size, &err)) ||
        !nd_captioner_init(&cap, &ds, 0, &err)) {
        fprintf(stderr, "nanodiff eval: %s (the captions' data set)\n", err.msg);
        nd_dataset_free(&ds);
        return 1;
    }
    nd_dataset_free(&ds);
    nd_cli_session ses;
    if (!nd_cli_session_open("eval", &f, &ses)) return 1;
    nd_text_encoder *text = NULL;
    if (!nd_t2i_open_text(ckpt, &ses.cfg, clip, ses.ctx.device, &text, &err)) {
        fprintf(stderr, "nanodiff eval: %s\n", err.msg);
        nd_cli_session_close(&ses);
        return 1;
    }
    // prompts: dark and light of every class, then left and right of every shoe
    enum { N_PROMPTS = 2 * CLASSES + 2 * SHOES };
    char prompts[N_PROMPTS][ND_CAPTION_MAX];
    for (int k = 0; k < CLASSES; k++) {
        const char *name = nd_caption_class_names[k];
        snprintf(prompts[2 * k], ND_CAPTION_MAX, "a photo of a dark %s", name);
        snprintf(prompts[2 * k + 1], ND_CAPTION_MAX, "a photo of a light %s", name);
    }
    for (int s = 0; s < SHOES; s++) {
        char base[ND_CAPTION_MAX];
        nd_caption_class_prompt(shoe_labels[s], base, sizeof base);
        snprintf(prompts[2 * CLASSES + 2 * s], ND_CAPTION_MAX, "%.100s facing left", base);
        snprintf(prompts[2 * CLASSES + 2 * s + 1], ND_CAPTION_MAX, "%.100s facing right", base);
    }
    const nd_model_config *mc = &ses.model.config;
    int64_t hw = (int64_t)mc->img_size * mc->img_size;
    float *images = nd_xmalloc((size_t)(N_PROMPTS * n * hw) * sizeof(float)); // (prompts * n, 1, S, S)
    draw(&ses.ctx, &ses.model, text, &ses.sched, &ses.sc, prompts, N_PROMPTS, (int)n, (int)batch, f.quiet, images);
    // each sample as the captions measure an image: grey levels in [0, 1]
    double ink[N_PROMPTS] = {0};
    int64_t asked_way[N_PROMPTS] = {0};
    for (int p = 0; p < N_PROMPTS; p++)
        for (int i = 0; i < n; i++) {
            float *img = images + ((int64_t)p * n + i) * hw;
            for (int64_t j = 0; j < hw; j++) {
                float v = cfg.unit_range ? img[j] : (img[j] + 1.0f) * 0.5f;
                img[j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            }
            int label = p < 2 * CLASSES ? p / 2 : shoe_labels[(p - 2 * CLASSES) / 2];
            nd_caption_attrs a;
            nd_caption_measure(&cap, img, mc->img_size, mc->img_size, label, &a);
            ink[p] += a.ink / (double)n;
            nd_facing want = (p - 2 * CLASSES) % 2 == 0 ? ND_FACING_LEFT : ND_FACING_RIGHT;
            if (p >= 2 * CLASSES && a.facing == want) asked_way[p]++;
        }
    printf("attributes: %lld samples a prompt, %s, guidance scale %g, seed %llu%s\n\n", (long long)n,
           nd_sampler_name(ses.sc.sampler), 1.0 + ses.sc.w, (unsigned long long)ses.sc.seed,
           ses.ema ? ", EMA weights" : "");
    printf("  %-12s %10s %10s  %s\n", "class", "dark ink", "light ink", "darker when asked");
    int obeyed = 0;
    for (int k = 0; k < CLASSES; k++) {
        bool ok = ink[2 * k] < ink[2 * k + 1];
        obeyed += ok;
        printf("  %-12s %10.3f %10.3f  %s\n", nd_caption_class_names[k], ink[2 * k], ink[2 * k + 1], ok ? "yes" : "NO");
    }
    printf("\n  %-12s %12s %12s\n", "shoe", "left: left", "right: right");
    int64_t left = 0, right = 0;
    for (int s = 0; s < SHOES; s++) {
        int64_t l = asked_way[2 * CLASSES + 2 * s], r = asked_way[2 * CLASSES + 2 * s + 1];
        left += l, right += r;
        printf("  %-12s %11.1f%% %11.1f%%\n", nd_caption_class_names[shoe_labels[s]], 100.0 * (double)l / (double)n,
               100.0 * (double)r / (double)n);
    }
    double facing = (double)(left + right) / (double)(2 * SHOES * n);
    printf("\nbrightness: %d of %d classes darker for \"dark\" than for \"light\"\n", obeyed, CLASSES);
    printf("facing: %.1f%% of shoes face the asked way (left %.1f%%, right %.1f%%)\n", 100.0 * facing,
           100.0 * (double)left / (double)(SHOES * n), 100.0 * (double)right / (double)(SHOES * n));
    printf("brightness_ok=%d/%d facing_acc=%.3f\n", obeyed, CLASSES, facing);
    free(images);
    nd_text_encoder_close(text);
    nd_cli_session_close(&ses);
    return 0;
}
