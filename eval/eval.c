// Sample-quality evaluation: the classifier from the cache (or trained and cached), its features of the
// real test images, and the scores of given images (guided samples, or real images standing in for them).
#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval.h"

#define ND_EVAL_CLASSIFIER_SEED 0 // one classifier per (data, size, range): its weights never depend on a flag

// mkdir -p; false with err naming the directory that could not be made.
static bool make_dirs(const char *dir, nd_error *err) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return nd_error_set(err, "%s: directory name too long", dir);
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return nd_error_set(err, "%s: cannot create the cache directory: %s", path, strerror(errno));
            if (end) return true;
            *p = '/';
        }
    }
}

// A split of setup->data resized to the evaluated size, checked against the model's channels and classes.
static bool load_split(nd_dataset *ds, const nd_eval_setup *setup, nd_split split, nd_error *err) {
    if (!nd_dataset_load(ds, setup->data, split, err)) return false;
    bool ok = true;
    if (ds->c != setup->img_ch)
        ok = nd_error_set(err, "%s: images have %d channels, the model's %d", setup->data, ds->c, setup->img_ch);
    else if (!ds->labels || ds->num_classes != setup->classes)
        ok = nd_error_set(err, "%s: %d classes, the model's context has %d", setup->data, ds->num_classes,
                          setup->classes);
    else if (ds->h != setup->img_size || ds->w != setup->img_size)
        ok = nd_dataset_resize(ds, setup->img_size, setup->img_size, err); // as nd_ddpm_train resizes
    if (!ok) nd_dataset_free(ds);
    return ok;
}

// Loads the cached classifier, else trains one on the train split and caches it.
static bool get_classifier(nd_evaluator *ev, const nd_eval_setup *setup, nd_ctx *ctx, nd_error *err) {
    nd_eval_classifier *c = &ev->classifier;
    char dir[1024] = "";
    if (setup->cache_dir) {
        snprintf(dir, sizeof dir, "%s", setup->cache_dir);
    } else if (!nd_eval_default_cache_dir(dir, sizeof dir)) {
        dir[0] = '\0';
        if (setup->log)
            fprintf(setup->log, "note: neither XDG_CACHE_HOME nor HOME is set: the classifier is not cached\n");
    }
    if (*dir)
        nd_eval_cache_path(ev->cache_path, sizeof ev->cache_path, dir, setup->data, setup->img_size, setup->unit_range,
                           setup->random_flip);
    nd_error why;
    if (*ev->cache_path && access(ev->cache_path, F_OK) == 0) {
        if (nd_eval_classifier_load(ev->cache_path, c, ctx, &why)) return true;
        if (setup->log)
            fprintf(setup->log, "note: the cached classifier cannot be used (%s): training a new one\n", why.msg);
    }
    nd_dataset train = {0};
    if (!load_split(&train, setup, ND_SPLIT_TRAIN, err)) return false;
    if (setup->log)
        fprintf(setup->log, "training the evaluation classifier on %s (%dx%d, %s%s)%s%s\n", setup->data,
                setup->img_size, setup->img_size, setup->unit_range ? "[0, 1]" : "[-1, 1]",
                setup->random_flip ? ", random flips" : "", *ev->cache_path ? "; it is cached in " : "",
                ev->cache_path);
    bool ok = nd_eval_classifier_train(c, &train, &setup->train, ctx, &ev->train_seconds, err);
    nd_dataset_free(&train);
    ev->trained = ok;
    if (ok && *ev->cache_path && (!make_dirs(dir, &why) || !nd_eval_classifier_save(ev->cache_path, c, ctx, &why))) {
        if (setup->log) fprintf(setup->log, "note: the classifier is not cached: %s\n", why.msg);
        ev->cache_path[0] = '\0';
    }
    return ok;
}

// Scores the whole test split and cuts its features into the reference and held-out halves.
static bool score_test_split(nd_evaluator *ev, const nd_eval_setup *setup, nd_ctx *ctx, nd_error *err) {
    nd_dataset test = {0};
    if (!load_split(&test, setup, ND_SPLIT_TEST, err)) return false;
    const nd_eval_classifier *c = &ev->classifier;
    int64_t n = test.n, image = (int64_t)c->img_ch * c->img_size * c->img_size;
    float *images = nd_xmalloc((size_t)(n * image) * sizeof(float));              // (n, C, S, S)
    float *logits = nd_xmalloc((size_t)(n * c->classes) * sizeof(float));         // (n, classes)
    float *features = nd_xmalloc((size_t)(n * ND_EVAL_FEATURES) * sizeof(float)); // (n, 128)
    for (int64_t i = 0; i < n; i++) // mirrored by a fixed coin when the model learned from mirrored images
        nd_dataset_sample(images + i * image, &test, i, c->random_flip && nd_flip_coin(ND_EVAL_CLASSIFIER_SEED, 0, i),
                          c->unit_range);
    nd_eval_classifier_run(ctx, c, images, n, logits, features);
    nd_eval_report report;
    nd_eval_report_init(&report, c->classes);
    nd_eval_report_add(&report, logits, test.labels, n);
    ev->test_accuracy = report.accuracy;

    ev->reference = nd_xmalloc((size_t)(n * ND_EVAL_FEATURES) * sizeof(float));
    ev->held = nd_xmalloc((size_t)(n * ND_EVAL_FEATURES) * sizeof(float));
    ev->held_labels = nd_xmalloc((size_t)n * sizeof(int32_t));
    int64_t seen[ND_EVAL_MAX_CLASSES] = {0};
    size_t row = ND_EVAL_FEATURES * sizeof(float);
    double hf_sum = 0.0; // the samples' high-frequency energy is compared with the same reference images' mean
    for (int64_t i = 0; i < n; i++) {
        int k = test.labels[i];
        if (seen[k]++ % 2) {
            memcpy(ev->reference + ev->n_reference++ * ND_EVAL_FEATURES, features + i * ND_EVAL_FEATURES, row);
            hf_sum += nd_hf_energy(images + i * image, 1, c->img_ch, c->img_size);
        } else {
            memcpy(ev->held + ev->n_held * ND_EVAL_FEATURES, features + i * ND_EVAL_FEATURES, row);
            ev->held_labels[ev->n_held++] = k;
        }
    }
    free(images);
    free(logits);
    free(features);
    nd_dataset_free(&test);
    if (ev->n_reference < 2) return nd_error_set(err, "%s: the test split holds too few images", setup->data);
    ev->hf_energy_real = hf_sum / (double)ev->n_reference;
    return true;
}

bool nd_evaluator_init(nd_evaluator *ev, const nd_eval_setup *setup, nd_ctx *ctx, nd_error *err) {
    *ev = (nd_evaluator){0};
    struct stat st;
    if (strcmp(setup->data, "fashion-mnist") != 0 && (stat(setup->data, &st) != 0 || !S_ISDIR(st.st_mode)))
        return nd_error_set(err,
                            "%s: evaluation needs a data set with train and test splits: fashion-mnist or a "
                            "directory of IDX files",
                            setup->data);
    if (setup->img_size < 4 || setup->classes < 2 || setup->classes > ND_EVAL_MAX_CLASSES)
        return nd_error_set(err, "images of %dx%d with %d classes: evaluation needs at least 4x4 and 2..%d classes",
                            setup->img_size, setup->img_size, setup->classes, ND_EVAL_MAX_CLASSES);
    nd_rng saved = ctx->rng;
    ctx->rng = (nd_rng){.seed = ND_EVAL_CLASSIFIER_SEED, .offset = 0};
    nd_eval_classifier_create(&ev->classifier, setup->data, setup->img_ch, setup->img_size, setup->unit_range,
                              setup->classes, ctx);
    ev->classifier.random_flip = setup->random_flip;
    bool ok = get_classifier(ev, setup, ctx, err) && score_test_split(ev, setup, ctx, err);
    ctx->rng = saved;
    if (!ok) nd_evaluator_free(ev);
    return ok;
}

void nd_evaluator_free(nd_evaluator *ev) {
    nd_eval_classifier_free(&ev->classifier);
    free(ev->reference);
    free(ev->held);
    free(ev->held_labels);
    *ev = (nd_evaluator){0};
}

bool nd_eval_images(const nd_evaluator *ev, nd_ctx *ctx, const float *images, const int32_t *labels, int64_t n,
                    nd_eval_report *report, nd_error *err) {
    const nd_eval_classifier *c = &ev->classifier;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c->classes)
            return nd_error_set(err, "label %d of image %lld: expected 0..%d", labels[i], (long long)i, c->classes - 1);
    int64_t values = n * c->img_ch * c->img_size * c->img_size;
    int64_t bad = nd_first_nonfinite(images, values);
    if (bad >= 0) // a diverged model's samples are not graded as black images
        return nd_error_set(err,
                            "sample %lld holds %g: refusing to grade non-finite samples (the model or the "
                            "guidance weight diverged)",
                            (long long)(bad / (values / n)), images[bad]);
    float lo = c->unit_range ? 0.0f : -1.0f;
    float *clamped = nd_xmalloc((size_t)values * sizeof(float));                  // (n, C, S, S)
    float *logits = nd_xmalloc((size_t)(n * c->classes) * sizeof(float));         // (n, classes)
    float *features = nd_xmalloc((size_t)(n * ND_EVAL_FEATURES) * sizeof(float)); // (n, 128)
    for (int64_t i = 0; i < values; i++) clamped[i] = fminf(fmaxf(images[i], lo), 1.0f);
    nd_eval_classifier_run(ctx, c, clamped, n, logits, features);
    nd_eval_report_init(report, c->classes);
    nd_eval_report_add(report, logits, labels, n);
    report->hf_energy = nd_hf_energy(clamped, n, c->img_ch, c->img_size);
    bool ok = nd_frechet_distance(features, n, ev->reference, ev->n_reference, ND_EVAL_FEATURES, &report->fd, err);
    free(clamped);
    free(logits);
    free(features);
    return ok;
}

bool nd_eval_floor(const nd_evaluator *ev, int per_class, nd_eval_floor_stats *floor, nd_error *err) {
    int classes = ev->classifier.classes;
    int64_t count[ND_EVAL_MAX_CLASSES] = {0}, fewest = INT64_MAX;
    for (int64_t i = 0; i < ev->n_held; i++) count[ev->held_labels[i]]++;
    for (int k = 0; k < classes; k++) fewest = count[k] < fewest ? count[k] : fewest;
    int draws = per_class > 0 && fewest / per_class > 1 ? (int)(fewest / per_class) : 1;
    *floor = (nd_eval_floor_stats){.mean = 0.0, .min = INFINITY, .max = -INFINITY, .draws = draws};
    float *chosen = nd_xmalloc((size_t)(ev->n_held ? ev->n_held : 1) * ND_EVAL_FEATURES * sizeof(float)); // (m, 128)
    bool ok = true;
    for (int d = 0; ok && d < draws; d++) {
        int64_t seen[ND_EVAL_MAX_CLASSES] = {0}, m = 0;
        for (int64_t i = 0; i < ev->n_held; i++) {
            int64_t rank = seen[ev->held_labels[i]]++;
            if (rank >= (int64_t)d * per_class && rank < (int64_t)(d + 1) * per_class)
                memcpy(chosen + m++ * ND_EVAL_FEATURES, ev->held + i * ND_EVAL_FEATURES,
                       ND_EVAL_FEATURES * sizeof(float));
        }
        double fd = NAN;
        ok = nd_frechet_distance(chosen, m, ev->reference, ev->n_reference, ND_EVAL_FEATURES, &fd, err);
        floor->mean += fd / draws;
        floor->min = fmin(floor->min, fd);
        floor->max = fmax(floor->max, fd);
        if (d == 0) floor->images = m;
    }
    free(chosen);
    return ok;
}
