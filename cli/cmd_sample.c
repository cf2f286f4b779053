// nanodiff sample: draws guided samples from a checkpoint into a PNG grid (a row per class), a w sweep,
// a denoising-progression strip, and optionally an HDF5 file of the raw samples.
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "sample.h"
#include "train.h"

// "all", a class number, or a Fashion-MNIST class name -> first class and count; false for a bad value.
static bool parse_class(const char *text, int classes, int *first, int *count) {
    if (strcmp(text, "all") == 0) {
        *first = 0, *count = classes;
        return true;
    }
    char *end;
    long v = strtol(text, &end, 10);
    if (end != text && !*end && v >= 0 && v < classes) {
        *first = (int)v, *count = 1;
        return true;
    }
    for (int k = 0; classes == 10 && k < 10; k++)
        if (strcasecmp(text, nd_fashion_mnist_classes[k]) == 0) {
            *first = k, *count = 1;
            return true;
        }
    return false;
}

// Parses "-2,-1,0,1" into ws; returns how many (0 on a bad list).
static int parse_list(const char *text, float *ws, int max) {
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        char *end;
        double v = strtod(p, &end);
        nd_error err;
        if (end == p) return 0;
        if (!nd_limit_check(ND_LIMIT_GUIDANCE, v, "--w-sweep", &err)) { // a NaN weight draws NaN images
            fprintf(stderr, "nanodiff sample: %s\n", err.msg);
            return 0;
        }
        ws[n++] = (float)v;
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
    return *p ? 0 : n;
}

typedef struct strip_state {
    float *frames; // (frames, n, C, H, W)
    int every, stored, max, n;
    int64_t image;
} strip_state;

static void keep_frame(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    strip_state *s = user;
    if (step_index < 0) return; // x_T: the strip starts after the first step
    if (step_index % s->every != s->every - 1 && t != 0) return;
    if (s->stored == s->max) {
        if (t != 0) return;
        s->stored--; // the strip always ends on the finished image, in the last frame's place
    }
    nd_copy_to_host(ctx, x, s->frames + (int64_t)s->stored * s->n * s->image);
    s->stored++;
}

// What sample draws beyond the shared sampling flags.
typedef struct sample_options {
    nd_cli_sampling sampling;
    const char *class_spec, *out, *h5, *strip, *sweep;
    int64_t n, scale;
    bool profile; // print the time per op at the end
} sample_options;

// The draw: classes first..first+count-1, per_class images each, for each of the n_w guidance weights ws.
typedef struct sample_plan {
    int first, count, per_class, total, n_w;
    float ws[32];
    int64_t image; // floats per image
} sample_plan;

// Parses argv into o; returns -1 to go on, else the exit status (help shown, or a bad flag).
static int parse_flags(int argc, char **argv, sample_options *o) {
    *o = (sample_options){
        .sampling = nd_cli_sampling_defaults(), .class_spec = "all", .out = "samples.png", .n = 8, .scale = 1};
    bool help = false;
    nd_flag flags[ND_CLI_SAMPLING_FLAGS + 9];
    int n_flags = nd_cli_sampling_flags(&o->sampling, flags);
    const nd_flag own[] = {
        {"--class", ND_FLAG_STRING, &o->class_spec, "all, a class number, or a Fashion-MNIST name (\"ankle boot\")"},
        {"--n", ND_FLAG_INT, &o->n, "samples per class (a row each)"},
        {"--w-sweep", ND_FLAG_STRING, &o->sweep, "comma list of w: a grid with a row per w, a column per class"},
        {"--strip", ND_FLAG_STRING, &o->strip, "also write a denoising strip (10 frames a class) to this PNG"},
        {"--h5", ND_FLAG_STRING, &o->h5, "also write the raw samples (in [0, 1]) and their labels to this HDF5 file"},
        {"-o", ND_FLAG_STRING, &o->out, "output PNG"},
        {"--scale", ND_FLAG_INT, &o->scale, "PNG pixels per sample pixel, each way (nearest neighbour), 1 to 16"},
        {"--profile", ND_FLAG_BOOL, &o->profile,
         "print where the time went, op by op (calls, ms, GFLOP/s), at the end"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    for (int i = 0; i < ND_COUNT(own); i++) flags[n_flags++] = own[i];
    const char *summary = "draw classifier-free-guided samples from a checkpoint (a text-to-image one: --ckpt FILE "
                          "--help shows the prompt flags)";
    if (!nd_flags_parse("sample", argc, argv, 2, flags, n_flags) || help || !o->sampling.ckpt) {
        if (!help && !o->sampling.ckpt) fprintf(stderr, "nanodiff sample: --ckpt is required\n");
        nd_flags_usage("sample", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    if (o->n < 1 || o->n > 1024) {
        fprintf(stderr, "nanodiff sample: --n must be in [1, 1024], got %lld\n", (long long)o->n);
        return 1;
    }
    return -1;
}

// The classes and guidance weights to draw for the loaded model; false (printed why) for a bad --class or
// --w-sweep.
static bool make_plan(const sample_options *o, const nd_cli_session *s, sample_plan *p) {
    const nd_model_config *mc = &s->model.config;
    int classes = mc->c_embed_dim;
    *p = (sample_plan){.count = 1, .n_w = 1};
    if (classes > 0 && !parse_class(o->class_spec, classes, &p->first, &p->count)) {
        fprintf(stderr, "nanodiff sample: --class expects all, 0..%d%s, got \"%s\"\n", classes - 1,
                classes == 10 ? " or a Fashion-MNIST class name" : "", o->class_spec);
        return false;
    }
    if (o->sweep) {
        p->n_w = parse_list(o->sweep, p->ws, ND_COUNT(p->ws));
        if (p->n_w == 0) {
            fprintf(stderr, "nanodiff sample: --w-sweep expects a comma list of numbers, got \"%s\"\n", o->sweep);
            return false;
        }
    } else {
        p->ws[0] = s->sc.w;
    }
    // a sweep draws one sample a class for each w; otherwise n a class
    p->per_class = o->sweep ? 1 : (int)o->n;
    p->total = p->count * p->per_class;
    p->image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    return true;
}

// Draws every image of the plan into images (n_w * total images, w-major), the strip's frames into st when
// asked for (the first w's).
static void draw(nd_cli_session *s, const sample_options *o, const sample_plan *p, const int32_t *labels, float *images,
                 strip_state *st) {
    const nd_model_config *mc = &s->model.config;
    nd_tensor *context = nd_class_context(&s->ctx, labels, p->total, mc->c_embed_dim, true);
    nd_sample_config sc = s->sc;
    double start = nd_seconds();
    if (o->profile) nd_profile_begin(&s->ctx);
    nd_cli_progress progress; // a sweep draws a batch per w
    nd_cli_progress_begin(&progress, "sample", !o->sampling.quiet, &sc, &s->sched, p->n_w);
    for (int k = 0; k < p->n_w; k++) {
        sc.w = p->ws[k];
        if (o->strip && k == 0) {
            int steps = nd_sample_steps(&sc, mc->T);
            *st = (strip_state){.every = steps >= 10 ? steps / 10 : 1, .max = 10, .n = p->total, .image = p->image};
            st->frames = nd_xmalloc((size_t)(10 * p->total) * (size_t)p->image * sizeof(float));
        }
        nd_cli_progress_batch(&progress, k, p->total, o->strip && k == 0 ? keep_frame : NULL, st);
        nd_sample_images(&s->ctx, &s->model, &s->sched, &sc, p->total, context, NULL,
                         images + (int64_t)k * p->total * p->image, nd_cli_progress_step, &progress);
    }
    fprintf(stderr, "sampled %d images with %s from %s in %.1f s\n", p->total * p->n_w, nd_sampler_name(sc.sampler),
            sc.start_mean ? "q(x_T)'s moments" : "N(0, I)", nd_seconds() - start);
    if (o->profile) nd_profile_report(&s->ctx, stderr);
}

// The denoising strip: frames are stored step-major, the strip shows each sample's frames left to right.
static bool write_strip(const char *path, const strip_state *st, const sample_plan *p, const nd_cli_session *s,
                        int scale) {
    float *ordered = nd_xmalloc((size_t)(st->stored * p->total) * (size_t)p->image * sizeof(float));
    for (int i = 0; i < p->total; i++)
        for (int f = 0; f < st->stored; f++)
            memcpy(ordered + ((int64_t)i * st->stored + f) * p->image,
                   st->frames + ((int64_t)f * p->total + i) * p->image, (size_t)p->image * sizeof(float));
    bool ok = nd_cli_write_grid("sample", path, ordered, st->stored * p->total, &s->model.config, st->stored,
                                s->cfg.unit_range, scale);
    free(ordered);
    return ok;
}

int nd_cmd_sample(int argc, char **argv) {
    if (nd_cli_is_prompt_sampling(argc, argv)) return nd_cmd_sample_prompt(argc, argv);
    sample_options o;
    int status = parse_flags(argc, argv, &o);
    if (status >= 0) return status;
    nd_cli_session s;
    if (!nd_cli_session_open("sample", &o.sampling, &s)) return 1;
    sample_plan p;
    if (!make_plan(&o, &s, &p)) {
        nd_cli_session_close(&s);
        return 1;
    }
    const nd_model_config *mc = &s.model.config;
    float *images = nd_xmalloc((size_t)(p.total * p.n_w) * (size_t)p.image * sizeof(float));
    int32_t *labels = nd_xmalloc((size_t)p.total * sizeof(int32_t)); // (total)
    for (int i = 0; i < p.total; i++) labels[i] = p.first + i / p.per_class;
    strip_state st = {0};
    draw(&s, &o, &p, labels, images, &st);
    bool finite = nd_cli_samples_finite("sample", images, (int64_t)p.total * p.n_w, p.image);
    // a sweep's grid: rows = w, columns = class, as the course's sample_w
    bool ok = finite && nd_cli_write_grid("sample", o.out, images, p.total * p.n_w, mc, o.sweep ? p.total : p.per_class,
                                          s.cfg.unit_range, (int)o.scale);
    if (ok && o.strip) ok = write_strip(o.strip, &st, &p, &s, (int)o.scale);
    if (ok && o.h5)
        ok = nd_cli_write_samples_h5("sample", o.h5, images, (int64_t)p.total * p.n_w, mc, o.sweep ? NULL : labels,
                                     s.cfg.unit_range);
    free(st.frames);
    free(images);
    free(labels);
    nd_cli_session_close(&s);
    return ok ? 0 : 1;
}
