// nanodiff eval: sample quality of a class-conditional checkpoint. Draws n guided samples a class, scores
// them with the independent evaluation classifier (accuracy and confidence of the requested class) and
// compares its features of the samples with those of real test images (Fréchet distance, beside the
// real-vs-real floor).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sample.h"
#include "eval.h"


// What one run measured, for the table and the JSON file.
typedef struct eval_result {
    const char *ckpt, *data, *sampler, *start;
    int steps, per_class, classes;
    double w, eta;
    uint64_t seed;
    bool ema, unit_range;
    int img_size;
    const nd_evaluator *ev;
    nd_eval_report report;
    nd_eval_floor_stats floor;
    double sample_seconds, total_seconds;
} eval_result;

// Fashion-MNIST's name of class k, else "class k" in buf.
static const char *class_name(const eval_result *r, int k, char *buf, size_t size) {
    if (r->classes == 10 && strcmp(r->data, "fashion-mnist") == 0) return nd_fashion_mnist_classes[k];
    snprintf(buf, size, "class %d", k);
    return buf;
}

// Writes s as a JSON string (quotes, backslashes and control characters escaped).
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

// A finite number, or null (JSON has no NaN).
static void json_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

// The same numbers as the table, written atomically.
static bool write_json(const char *path, const eval_result *r) {
    char name[32];
    nd_atomic_file af;
    nd_error err;
    if (!nd_atomic_open(&af, path, &err)) {
        fprintf(stderr, "nanodiff eval: --json: %s\n", err.msg);
        return false;
    }
    FILE *f = af.f;
    const nd_eval_report *rep = &r->report;
    fprintf(f, "{\n  \"checkpoint\": ");
    json_string(f, r->ckpt);
    fprintf(f, ",\n  \"data\": ");
    json_string(f, r->data);
    fprintf(f, ",\n  \"img_size\": %d,\n  \"unit_range\": %s,\n  \"sampler\": \"%s\",\n  \"steps\": %d,\n", r->img_size,
            r->unit_range ? "true" : "false", r->sampler, r->steps);
    fprintf(f, "  \"w\": %.6g,\n  \"eta\": %.6g,\n  \"seed\": %llu,\n  \"ema\": %s,\n  \"per_class\": %d,\n", r->w,
            r->eta, (unsigned long long)r->seed, r->ema ? "true" : "false", r->per_class);
    fprintf(f, "  \"start\": \"%s\",\n", r->start);
    fprintf(f, "  \"classifier_random_flip\": %s,\n", r->ev->classifier.random_flip ? "true" : "false");
    fprintf(f, "  \"classifier_test_accuracy\": ");
    json_number(f, r->ev->test_accuracy);
    fprintf(f, ",\n  \"classes\": [\n");
    for (int k = 0; k < r->classes; k++) {
        fprintf(f, "    {\"class\": %d, \"name\": ", k);
        json_string(f, class_name(r, k, name, sizeof name));
        fprintf(f, ", \"n\": %lld, \"accuracy\": ", (long long)rep->count[k]);
        json_number(f, nd_eval_class_accuracy(rep, k));
        fprintf(f, ", \"confidence\": ");
        json_number(f, nd_eval_class_confidence(rep, k));
        fprintf(f, "}%s\n", k + 1 < r->classes ? "," : "");
    }
    fprintf(f, "  ],\n  \"accuracy\": ");
    json_number(f, rep->accuracy);
    fprintf(f, ",\n  \"confidence\": ");
    json_number(f, rep->confidence);
    fprintf(f, ",\n  \"fd\": ");
    json_number(f, rep->fd);
    fprintf(f, ",\n  \"fd_floor\": ");
    json_number(f, r->floor.mean);
    fprintf(f, ",\n  \"fd_floor_min\": ");
    json_number(f, r->floor.min);
    fprintf(f, ",\n  \"fd_floor_max\": ");
    json_number(f, r->floor.max);
    fprintf(f, ",\n  \"fd_floor_draws\": %d,\n  \"fd_floor_images\": %lld,\n  \"fd_reference_images\": %lld,\n",
            r->floor.draws, (long long)r->floor.images, (long long)r->ev->n_reference);
    fprintf(f, "  \"sample_seconds\": %.3f,\n  \"seconds\": %.3f\n}\n", r->sample_seconds, r->total_seconds);
    bool ok = nd_atomic_commit(&af, &err);
    if (!ok) fprintf(stderr, "nanodiff eval: --json: %s\n", err.msg);
    return ok;
}

// The classifier, the per-class table, the distances and the time, on stdout.
// ", eta 0.5" for DDIM, nothing for the DDPM samplers.
static const char *eta_text(const eval_result *r, char *buf, size_t size) {
    if (strcmp(r->sampler, "ddim") == 0) snprintf(buf, size, ", eta %g", r->eta);
    else buf[0] = 0;
    return buf;
}

static void print_table(const eval_result *r) {
    char eta_buf[32];
    const nd_evaluator *ev = r->ev;
    const nd_eval_report *rep = &r->report;
    char name[32];
    printf("classifier: CNN on %s at %dx%d in %s%s, test accuracy %.2f%% (%s)\n", r->data, r->img_size,
           r->img_size, r->unit_range ? "[0, 1]" : "[-1, 1]",
           ev->classifier.random_flip ? ", images mirrored at random as the model's" : "", 100.0 * ev->test_accuracy,
           ev->trained ? "trained now" : "from the cache");
    printf("samples: %d a class, %s with %d steps%s, w = %g, from %s, seed %llu%s\n\n", r->per_class, r->sampler,
           r->steps, eta_text(r, eta_buf, sizeof eta_buf), r->w, r->start, (unsigned long long)r->seed,
           r->ema ? ", EMA weights" : "");
    printf("  %-12s %9s %11s\n", "class", "accuracy", "confidence");
    for (int k = 0; k < r->classes; k++)
        printf("  %-12s %8.1f%% %11.3f\n", class_name(r, k, name, sizeof name), 100.0 * nd_eval_class_accuracy(rep, k),
               nd_eval_class_confidence(rep, k));
    printf("  %-12s %8.1f%% %11.3f\n\n", "overall", 100.0 * rep->accuracy, rep->confidence);
    printf("FD, samples vs real test images:  %8.3f  (%lld samples vs %lld test images)\n", rep->fd,
           (long long)rep->n, (long long)ev->n_reference);
    printf("FD floor, real vs real:           %8.3f  (%lld other test images vs the same %lld; ", r->floor.mean,
           (long long)r->floor.images, (long long)ev->n_reference);
    if (r->floor.draws > 1)
        printf("mean of %d disjoint draws, %.3f to %.3f)\n", r->floor.draws, r->floor.min, r->floor.max);
    else
        printf("one draw)\n");
    printf("time: %.1f s (sampling %.1f s)\n", r->total_seconds, r->sample_seconds);
}

// Draws per_class guided samples of every class, class by class, in batches of at most batch images.
static void draw_samples(nd_ctx *ctx, const nd_model *model, const nd_ddpm_config *cfg, const nd_sample_config *sc,
                         int per_class, int batch, float *images, int32_t *labels) {
    const nd_model_config *mc = &model->config;
    int classes = mc->c_embed_dim, total = classes * per_class;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    nd_schedule sched;
    nd_schedule_linear(&sched, mc->T, cfg->beta_start, cfg->beta_end);
    for (int i = 0; i < total; i++) labels[i] = i / per_class;
    for (int first = 0, chunk = 0; first < total; first += batch, chunk++) {
        int n = total - first < batch ? total - first : batch;
        nd_arena_mark mark = nd_arena_get_mark(&ctx->pool);
        nd_tensor *context = nd_class_context(ctx, labels + first, n, classes, true);
        nd_sample_config chunk_cfg = *sc;
        chunk_cfg.seed = sc->seed + ((uint64_t)chunk << 32); // every batch its own noise, reproducible from --seed
        nd_sample_images(ctx, model, &sched, &chunk_cfg, n, context, NULL, images + (int64_t)first * image, NULL,
                         NULL);
        nd_arena_release(&ctx->pool, mark);
        fprintf(stderr, "\rsampled %d/%d", first + n, total);
        fflush(stderr);
    }
    fputc('\n', stderr);
    nd_schedule_free(&sched);
}

int nd_cmd_eval(int argc, char **argv) {
    const char *start_spec = "auto";
    const char *ckpt = NULL, *sampler = "ddpm", *cache = NULL, *json = NULL, *data = NULL, *device = "auto";
    int64_t n = 100, steps = 50, seed = 0, batch = 250;
    double w = 2.0, eta = 0.0;
    bool use_ema = false, help = false;
    const nd_flag flags[] = {
        {"--ckpt", ND_FLAG_STRING, &ckpt, "class-conditional checkpoint written by nanodiff train (required)"},
        {"--n", ND_FLAG_INT, &n, "samples per class"},
        {"--sampler", ND_FLAG_STRING, &sampler, "ddpm (the course's), ddpm-posterior or ddim"},
        {"--steps", ND_FLAG_INT, &steps, "DDIM steps (the DDPM samplers take all T)"},
        {"--eta", ND_FLAG_FLOAT, &eta, "DDIM eta: 0 deterministic, 1 DDPM-like noise"},
        {"--start", ND_FLAG_STRING, &start_spec, "x_T: noise (the course's N(0, I)), matched (q(x_T)'s moments) or "
                                                 "auto (matched for ddim)"},
        {"--w", ND_FLAG_FLOAT, &w, "guidance weight, the course's (1 + w) e_c - w e_u"},
        {"--seed", ND_FLAG_INT, &seed, "seed of the samples' noise"},
        {"--ema", ND_FLAG_BOOL, &use_ema, "sample from the EMA weights"},
        {"--batch", ND_FLAG_INT, &batch, "samples drawn at once (memory grows with it)"},
        {"--data", ND_FLAG_STRING, &data, "real images: fashion-mnist or an IDX directory (default: the checkpoint's)"},
        {"--cache", ND_FLAG_STRING, &cache, "directory of the trained classifiers (default $XDG_CACHE_HOME/nanodiff "
                                            "or ~/.cache/nanodiff)"},
        {"--json", ND_FLAG_STRING, &json, "also write the numbers to this JSON file"},
        {"--device", ND_FLAG_STRING, &device, "auto, cpu or cuda"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "sample quality: classifier accuracy per class and a classifier-feature FID";
    if (!nd_flags_parse("eval", argc, argv, 2, flags, n_flags) || help || !ckpt) {
        if (!help && !ckpt) fprintf(stderr, "nanodiff eval: --ckpt is required\n");
        nd_flags_usage("eval", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    nd_sample_config sc;
    if (!nd_cli_sampler("eval", sampler, steps, eta, seed, &sc)) return 1;
    if (n < 2 || n > 100000 || batch < 1 || batch > 100000) {
        fprintf(stderr, "nanodiff eval: --n must be in [2, 100000] and --batch in [1, 100000]\n");
        return 1;
    }
    sc.w = (float)w;
    int dev;
    if (!nd_cli_device("eval", device, &dev)) return 1;

    double start = nd_seconds();
    nd_ctx ctx;
    nd_ctx_init(&ctx, (nd_device)dev, 64 << 20, 0);
    nd_model model;
    nd_ddpm_config cfg;
    nd_error err;
    if (!nd_checkpoint_load_model(ckpt, use_ema, &model, &cfg, &ctx, &err)) {
        fprintf(stderr, "nanodiff eval: %s\n", err.msg);
        nd_ctx_free(&ctx);
        return 1;
    }
    const nd_model_config *mc = &model.config;
    const char *problem = NULL;
    if (mc->kind == ND_MODEL_T2I_UNET) problem = "is text-conditioned: eval scores class-guided samples";
    else if (mc->c_embed_dim <= 0) problem = "is unconditional: eval scores class-guided samples";
    else if (mc->img_ch != 1) problem = "makes images of more than one channel: eval's classifier takes grey images";
    if (problem) {
        fprintf(stderr, "nanodiff eval: %s: the %s model %s\n", ckpt, nd_model_kind_name(mc->kind), problem);
        nd_model_free(&model);
        nd_ctx_free(&ctx);
        return 1;
    }
    nd_eval_setup setup = {.data = data ? data : cfg.data, .img_ch = mc->img_ch, .img_size = mc->img_size,
                           .unit_range = cfg.unit_range, .random_flip = cfg.random_flip,
                           .classes = mc->c_embed_dim, .cache_dir = cache,
                           .train = nd_eval_train_defaults(), .log = stderr};
    nd_evaluator ev;
    if (!nd_evaluator_init(&ev, &setup, &ctx, &err)) {
        fprintf(stderr, "nanodiff eval: %s%s\n", err.msg, data ? "" : " (the checkpoint's data set; see --data)");
        nd_model_free(&model);
        nd_ctx_free(&ctx);
        return 1;
    }
    nd_schedule sched;
    nd_schedule_linear(&sched, mc->T, cfg.beta_start, cfg.beta_end);
    float *start_mean = NULL, *start_std = NULL;
    bool started = nd_cli_start("eval", start_spec, &cfg, &sched, &sc, &start_mean, &start_std);
    nd_schedule_free(&sched);
    if (!started) {
        nd_evaluator_free(&ev);
        nd_model_free(&model);
        nd_ctx_free(&ctx);
        return 1;
    }
    eval_result r = {.start = sc.start_mean ? "q(x_T)'s moments" : "N(0, I)", .ckpt = ckpt, .data = setup.data, .sampler = nd_sampler_name(sc.sampler),
                     .steps = sc.sampler == ND_SAMPLER_DDIM && sc.steps < mc->T ? sc.steps : mc->T, .per_class = (int)n,
                     .classes = mc->c_embed_dim, .w = w, .eta = eta, .seed = sc.seed, .ema = use_ema,
                     .unit_range = cfg.unit_range, .img_size = mc->img_size, .ev = &ev};
    int total = r.classes * r.per_class;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    float *images = nd_xmalloc((size_t)total * (size_t)image * sizeof(float)); // (total, C, S, S)
    int32_t *labels = nd_xmalloc((size_t)total * sizeof(int32_t));            // (total)
    double sample_start = nd_seconds();
    draw_samples(&ctx, &model, &cfg, &sc, r.per_class, (int)batch, images, labels);
    r.sample_seconds = nd_seconds() - sample_start;
    bool ok = nd_eval_images(&ev, &ctx, images, labels, total, &r.report, &err) &&
              nd_eval_floor(&ev, r.per_class, &r.floor, &err);
    r.total_seconds = nd_seconds() - start;
    if (ok) print_table(&r);
    else fprintf(stderr, "nanodiff eval: %s\n", err.msg);
    if (ok && json) ok = write_json(json, &r);
    free(images);
    free(labels);
    free(start_mean);
    free(start_std);
    nd_evaluator_free(&ev);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return ok ? 0 : 1;
}
