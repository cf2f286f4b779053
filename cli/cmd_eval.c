// nanodiff eval: sample quality of a class-conditional checkpoint. Draws n guided samples a class, scores
// them with the independent evaluation classifier (accuracy and confidence of the requested class) and
// compares its features of the samples with those of real test images (Fréchet distance, beside the
// real-vs-real floor); the high-frequency energy of the samples beside that of the same real images.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sample.h"
#include "eval.h"

// What one run measured, for the table and the JSON file.
typedef struct eval_result {
    const char *ckpt, *data, *sampler, *spacing, *start;
    int steps, evaluations, per_class, classes;
    bool clip_x0;
    double w, eta, guidance_rescale;
    double sigma_min, sigma_max; // the guidance interval (0, inf: every step)
    uint64_t seed;
    bool ema, unit_range;
    bool prompted; // a text-to-image model asked "a photo of a {class}"
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
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

// A finite number, or null (JSON has no NaN).
static void json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
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
    fprintf(f, "  \"guidance_rescale\": %.6g,\n", r->guidance_rescale);
    if (isinf(r->sigma_max)) // JSON has no infinity: null, no upper bound
        fprintf(f, "  \"guidance_interval\": [%.6g, null],\n", r->sigma_min);
    else
        fprintf(f, "  \"guidance_interval\": [%.6g, %.6g],\n", r->sigma_min, r->sigma_max);
    fprintf(f, "  \"w\": %.6g,\n  \"eta\": %.6g,\n  \"seed\": %llu,\n  \"ema\": %s,\n  \"per_class\": %d,\n", r->w,
            r->eta, (unsigned long long)r->seed, r->ema ? "true" : "false", r->per_class);
    fprintf(f, "  \"model_calls\": %d,\n  \"spacing\": \"%s\",\n  \"clip_x0\": %s,\n", r->evaluations, r->spacing,
            r->clip_x0 ? "true" : "false");
    fprintf(f, "  \"start\": \"%s\",\n  \"prompted\": %s,\n", r->start, r->prompted ? "true" : "false");
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
    fprintf(f, "  \"hf_energy\": ");
    json_number(f, rep->hf_energy);
    fprintf(f, ",\n  \"hf_energy_real\": ");
    json_number(f, r->ev->hf_energy_real);
    fprintf(f, ",\n  \"hf_energy_ratio\": ");
    json_number(f, rep->hf_energy / r->ev->hf_energy_real);
    fprintf(f, ",\n  \"sample_seconds\": %.3f,\n  \"seconds\": %.3f\n}\n", r->sample_seconds, r->total_seconds);
    bool ok = nd_atomic_commit(&af, &err);
    if (!ok) fprintf(stderr, "nanodiff eval: --json: %s\n", err.msg);
    return ok;
}

// The classifier, the per-class table, the distances and the time, on stdout.
// What else the sampler was told: ", eta 0.5" for DDIM, a spacing other than linspace, Heun's model calls,
// x0 clipping; nothing for the course's DDPM.
static const char *sampler_text(const eval_result *r, char *buf, size_t size) {
    int len = 0;
    buf[0] = 0;
    if (strcmp(r->sampler, "ddim") == 0) len += snprintf(buf + len, size - (size_t)len, ", eta %g", r->eta);
    if (strcmp(r->spacing, "linspace") != 0 && strncmp(r->sampler, "ddpm", 4) != 0)
        len += snprintf(buf + len, size - (size_t)len, ", %s spacing", r->spacing);
    if (r->evaluations != r->steps) len += snprintf(buf + len, size - (size_t)len, " (%d model calls)", r->evaluations);
    if (r->clip_x0) snprintf(buf + len, size - (size_t)len, ", x0 clipped");
    return buf;
}

static void print_table(const eval_result *r) {
    char sampler_buf[96];
    const nd_evaluator *ev = r->ev;
    const nd_eval_report *rep = &r->report;
    char name[32];
    printf("classifier: CNN on %s at %dx%d in %s%s, test accuracy %.2f%% (%s)\n", r->data, r->img_size, r->img_size,
           r->unit_range ? "[0, 1]" : "[-1, 1]",
           ev->classifier.random_flip ? ", images mirrored at random as the model's" : "", 100.0 * ev->test_accuracy,
           ev->trained ? "trained now" : "from the cache");
    if (r->prompted)
        printf("prompts: \"a photo of a {class}\", guidance scale %g (the empty prompt unconditional)\n", 1.0 + r->w);
    char rescale_buf[96] = "";
    int used = 0;
    if (r->guidance_rescale > 0) used = snprintf(rescale_buf, sizeof rescale_buf, ", rescaled %g", r->guidance_rescale);
    if (r->sigma_min > 0 || !isinf(r->sigma_max))
        snprintf(rescale_buf + used, sizeof rescale_buf - (size_t)used, ", guided where sigma_t in (%g, %g]",
                 r->sigma_min, r->sigma_max);
    printf("samples: %d a class, %s with %d steps%s, w = %g%s, from %s, seed %llu%s\n\n", r->per_class, r->sampler,
           r->steps, sampler_text(r, sampler_buf, sizeof sampler_buf), r->w, rescale_buf, r->start,
           (unsigned long long)r->seed, r->ema ? ", EMA weights" : "");
    printf("  %-12s %9s %11s\n", "class", "accuracy", "confidence");
    for (int k = 0; k < r->classes; k++)
        printf("  %-12s %8.1f%% %11.3f\n", class_name(r, k, name, sizeof name), 100.0 * nd_eval_class_accuracy(rep, k),
               nd_eval_class_confidence(rep, k));
    printf("  %-12s %8.1f%% %11.3f\n\n", "overall", 100.0 * rep->accuracy, rep->confidence);
    printf("FD, samples vs real test images:  %8.3f  (%lld samples vs %lld test images)\n", rep->fd, (long long)rep->n,
           (long long)ev->n_reference);
    printf("FD floor, real vs real:           %8.3f  (%lld other test images vs the same %lld; ", r->floor.mean,
           (long long)r->floor.images, (long long)ev->n_reference);
    if (r->floor.draws > 1)
        printf("mean of %d disjoint draws, %.3f to %.3f)\n", r->floor.draws, r->floor.min, r->floor.max);
    else
        printf("one draw)\n");
    printf("HF energy, samples vs real images:%8.4f  vs %.4f (the same %lld test images), ratio %.3f\n", rep->hf_energy,
           ev->hf_energy_real, (long long)ev->n_reference, rep->hf_energy / ev->hf_energy_real);
    printf("time: %.1f s (sampling %.1f s)\n", r->total_seconds, r->sample_seconds);
}

// Draws per_class guided samples of each of classes classes, class by class, in batches of at most batch
// images, with a progress line unless quiet; a text-to-image model (text not NULL) is asked for the prompt
// "a photo of a {class}".
static void draw_samples(nd_cli_session *s, nd_text_encoder *text, int classes, int per_class, int batch, bool quiet,
                         float *images, int32_t *labels) {
    nd_ctx *ctx = &s->ctx;
    const nd_model *model = &s->model;
    const nd_sample_config *sc = &s->sc;
    const nd_model_config *mc = &model->config;
    int total = classes * per_class;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    for (int i = 0; i < total; i++) labels[i] = i / per_class;
    nd_cli_progress progress;
    nd_cli_progress_begin(&progress, "eval", !quiet, sc, &s->sched, (total + batch - 1) / batch);
    for (int first = 0, chunk = 0; first < total; first += batch, chunk++) {
        int n = total - first < batch ? total - first : batch;
        nd_arena_mark mark = nd_arena_get_mark(&ctx->pool);
        nd_tensor *context, *null_context = NULL;
        if (text) {
            context = nd_t2i_class_context(text, ctx, labels + first, n);
            null_context = nd_t2i_empty_context(text, ctx, n);
        } else {
            context = nd_class_context(ctx, labels + first, n, classes, true);
        }
        nd_sample_config chunk_cfg = *sc;
        chunk_cfg.seed = sc->seed + ((uint64_t)chunk << 32); // every batch its own noise, reproducible from --seed
        nd_cli_progress_batch(&progress, chunk, n, NULL, NULL);
        nd_sample_images(ctx, model, &s->sched, &chunk_cfg, n, context, null_context, images + (int64_t)first * image,
                         nd_cli_progress_step, &progress);
        nd_arena_release(&ctx->pool, mark);
    }
}

// What eval does beyond the shared sampling flags.
typedef struct eval_options {
    nd_cli_sampling sampling;
    const char *cache, *json, *data, *clip;
    int64_t n, batch;
} eval_options;

// Parses argv into o; returns -1 to go on, else the exit status (help shown, or a bad flag).
static int parse_flags(int argc, char **argv, eval_options *o) {
    *o = (eval_options){.sampling = nd_cli_sampling_defaults(), .n = 100, .batch = 250};
    bool help = false, attributes = false;
    nd_flag flags[ND_CLI_SAMPLING_FLAGS + 10];
    int n_flags = nd_cli_sampling_flags(&o->sampling, flags);
    const nd_flag own[] = {
        {"--clip", ND_FLAG_STRING, &o->clip, "text-to-image: the CLIP checkpoint (default: clip.h5 beside --ckpt)"},
        {"--attributes", ND_FLAG_BOOL, &attributes, "text-to-image: check dark/light and facing left/right instead"},
        {"--n", ND_FLAG_INT, &o->n, "samples per class"},
        {"--batch", ND_FLAG_INT, &o->batch, "samples drawn at once (memory grows with it)"},
        {"--data", ND_FLAG_STRING, &o->data,
         "real images: fashion-mnist or an IDX directory (default: the checkpoint's)"},
        {"--cache", ND_FLAG_STRING, &o->cache,
         "directory of the trained classifiers (default $XDG_CACHE_HOME/nanodiff "
         "or ~/.cache/nanodiff)"},
        {"--json", ND_FLAG_STRING, &o->json, "also write the numbers to this JSON file"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    for (int i = 0; i < ND_COUNT(own); i++) flags[n_flags++] = own[i];
    const char *summary = "sample quality: classifier accuracy per class, a classifier-feature FID, and the "
                          "high-frequency energy of samples and real images (the share of each image's spectral "
                          "energy above half the Nyquist radius)";
    if (!nd_flags_parse("eval", argc, argv, 2, flags, n_flags) || help || !o->sampling.ckpt) {
        if (!help && !o->sampling.ckpt) fprintf(stderr, "nanodiff eval: --ckpt is required\n");
        nd_flags_usage("eval", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    if (o->n < 2 || o->n > 100000 || o->batch < 1 || o->batch > 100000) {
        fprintf(stderr, "nanodiff eval: --n must be in [2, 100000] and --batch in [1, 100000]\n");
        return 1;
    }
    return -1;
}

// Why eval cannot score this model (class- or prompt-guided grey images only), or NULL.
static const char *model_problem(const nd_model_config *mc) {
    if (mc->kind == ND_MODEL_T2I_UNET) return NULL; // asked "a photo of a {class}"
    if (mc->c_embed_dim <= 0) return "is unconditional: eval scores class-guided samples";
    if (mc->img_ch != 1) return "makes images of more than one channel: eval's classifier takes grey images";
    return NULL;
}

// Draws the samples, scores them and the real-vs-real floor, prints the table and writes the JSON.
static bool run_eval(nd_cli_session *s, const eval_options *o, nd_evaluator *ev, nd_text_encoder *text,
                     const char *data, double start) {
    const nd_model_config *mc = &s->model.config;
    const nd_sample_config *sc = &s->sc;
    eval_result r = {.start = sc->start_mean ? "q(x_T)'s moments" : "N(0, I)",
                     .ckpt = o->sampling.ckpt,
                     .data = data,
                     .sampler = nd_sampler_name(sc->sampler),
                     .spacing = nd_spacing_name(sc->spacing),
                     .clip_x0 = sc->clamp_x0,
                     .steps = nd_sample_steps(sc, mc->T),
                     .evaluations = nd_sample_evaluations_done(sc, &s->sched, nd_sample_steps(sc, mc->T) - 1),
                     .per_class = (int)o->n,
                     .classes = text ? 10 : mc->c_embed_dim,
                     .prompted = text != NULL,
                     .w = sc->w,
                     .guidance_rescale = sc->guidance_rescale,
                     .sigma_min = sc->guidance_sigma_min,
                     .sigma_max = sc->guidance_sigma_max,
                     .eta = sc->eta,
                     .seed = sc->seed,
                     .ema = s->ema,
                     .unit_range = s->cfg.unit_range,
                     .img_size = mc->img_size,
                     .ev = ev};
    int total = r.classes * r.per_class;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    float *images = nd_xmalloc((size_t)total * (size_t)image * sizeof(float)); // (total, C, S, S)
    int32_t *labels = nd_xmalloc((size_t)total * sizeof(int32_t));             // (total)
    double sample_start = nd_seconds();
    draw_samples(s, text, r.classes, r.per_class, (int)o->batch, o->sampling.quiet, images, labels);
    r.sample_seconds = nd_seconds() - sample_start;
    nd_error err;
    bool ok = nd_eval_images(ev, &s->ctx, images, labels, total, &r.report, &err) &&
              nd_eval_floor(ev, r.per_class, &r.floor, &err);
    r.total_seconds = nd_seconds() - start;
    if (ok)
        print_table(&r);
    else
        fprintf(stderr, "nanodiff eval: %s\n", err.msg);
    if (ok && o->json) ok = write_json(o->json, &r);
    free(images);
    free(labels);
    return ok;
}

int nd_cmd_eval(int argc, char **argv) {
    if (nd_cli_is_attribute_eval(argc, argv)) return nd_cmd_eval_attributes(argc, argv);
    eval_options o;
    int status = parse_flags(argc, argv, &o);
    if (status >= 0) return status;
    double start = nd_seconds();
    nd_cli_session s;
    if (!nd_cli_session_open("eval", &o.sampling, &s)) return 1;
    const nd_model_config *mc = &s.model.config;
    const char *problem = model_problem(mc);
    if (problem) {
        fprintf(stderr, "nanodiff eval: %s: the %s model %s\n", o.sampling.ckpt, nd_model_kind_name(mc->kind), problem);
        nd_cli_session_close(&s);
        return 1;
    }
    nd_error err;
    nd_text_encoder *text = NULL;
    if (mc->kind == ND_MODEL_T2I_UNET &&
        !nd_t2i_open_text(o.sampling.ckpt, &s.cfg, o.clip, s.ctx.device, &text, &err)) {
        fprintf(stderr, "nanodiff eval: %s\n", err.msg);
        nd_cli_session_close(&s);
        return 1;
    }
    // a prompt names one of Fashion-MNIST's ten classes
    nd_eval_setup setup = {.data = o.data ? o.data : s.cfg.data,
                           .img_ch = mc->img_ch,
                           .img_size = mc->img_size,
                           .unit_range = s.cfg.unit_range,
                           .random_flip = s.cfg.random_flip,
                           .classes = text ? 10 : mc->c_embed_dim,
                           .cache_dir = o.cache,
                           .train = nd_eval_train_defaults(),
                           .log = stderr};
    nd_evaluator ev;
    if (!nd_evaluator_init(&ev, &setup, &s.ctx, &err)) {
        fprintf(stderr, "nanodiff eval: %s%s\n", err.msg, o.data ? "" : " (the checkpoint's data set; see --data)");
        nd_text_encoder_close(text);
        nd_cli_session_close(&s);
        return 1;
    }
    bool ok = run_eval(&s, &o, &ev, text, setup.data, start);
    nd_evaluator_free(&ev);
    nd_text_encoder_close(text);
    nd_cli_session_close(&s);
    return ok ? 0 : 1;
}
