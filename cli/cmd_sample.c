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
        if (end == p) return 0;
        ws[n++] = (float)v;
        p = end;
        while (*p == ',' || isspace((unsigned char)*p)) p++;
    }
    return *p ? 0 : n;
}

typedef struct strip_state {
    float *frames;  // (frames, n, C, H, W)
    int every, stored, max, n;
    int64_t image;
} strip_state;

static void keep_frame(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    strip_state *s = user;
    if (step_index < 0) return; // x_T: the strip starts after the first step
    if ((step_index % s->every != s->every - 1 && t != 0) || s->stored >= s->max) return;
    nd_copy_to_host(ctx, x, s->frames + (int64_t)s->stored * s->n * s->image);
    s->stored++;
}

static bool write_grid(const char *path, const float *images, int n, const nd_model_config *mc, int nrow,
                       bool unit_range) {
    nd_image8 grid;
    nd_error err;
    if (!nd_image_grid(&grid, images, n, mc->img_ch, mc->img_size, mc->img_size, nrow, 2, unit_range, &err) ||
        !nd_png_write(path, &grid, &err)) {
        fprintf(stderr, "nanodiff sample: %s\n", err.msg);
        return false;
    }
    nd_image8_free(&grid);
    printf("wrote %s\n", path);
    return true;
}

int nd_cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *sampler = "ddpm", *class_spec = "all", *out = "samples.png", *h5 = NULL;
    const char *start_spec = "auto";
    const char *strip = NULL, *sweep = NULL, *device = "auto";
    int64_t n = 8, steps = 50, seed = 0;
    double w = 2.0, scale = NAN, eta = 0.0;
    bool use_ema = false, no_tf32 = false, help = false;
    const nd_flag flags[] = {
        {"--ckpt", ND_FLAG_STRING, &ckpt, "checkpoint written by nanodiff train (required)"},
        {"--sampler", ND_FLAG_STRING, &sampler, "ddpm (the course's), ddpm-posterior or ddim"},
        {"--steps", ND_FLAG_INT, &steps, "DDIM steps (the DDPM samplers take all T)"},
        {"--eta", ND_FLAG_FLOAT, &eta, "DDIM eta: 0 deterministic, 1 DDPM-like noise"},
        {"--start", ND_FLAG_STRING, &start_spec, "x_T: noise (the course's N(0, I)), matched (q(x_T)'s moments) or "
                                                 "auto (matched for ddim)"},
        {"--w", ND_FLAG_FLOAT, &w, "guidance weight, the course's (1 + w) e_c - w e_u"},
        {"--guidance-scale", ND_FLAG_FLOAT, &scale, "guidance as e_u + s (e_c - e_u), s = 1 + w (overrides --w)"},
        {"--class", ND_FLAG_STRING, &class_spec, "all, a class number, or a Fashion-MNIST name (\"ankle boot\")"},
        {"--n", ND_FLAG_INT, &n, "samples per class (a row each)"},
        {"--seed", ND_FLAG_INT, &seed, "seed of the initial noise and every step's noise"},
        {"--ema", ND_FLAG_BOOL, &use_ema, "sample from the EMA weights"},
        {"--w-sweep", ND_FLAG_STRING, &sweep, "comma list of w: a grid with a row per w, a column per class"},
        {"--strip", ND_FLAG_STRING, &strip, "also write a denoising strip (10 frames a class) to this PNG"},
        {"--h5", ND_FLAG_STRING, &h5, "also write the raw samples (in [0, 1]) and their labels to this HDF5 file"},
        {"-o", ND_FLAG_STRING, &out, "output PNG"},
        {"--device", ND_FLAG_STRING, &device, "auto, cpu or cuda"},
        {"--no-tf32", ND_FLAG_BOOL, &no_tf32, "full float32 matrix products on the GPU (TF32 is on by default)"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "draw classifier-free-guided samples from a checkpoint";
    if (!nd_flags_parse("sample", argc, argv, 2, flags, n_flags) || help || !ckpt) {
        if (!help && !ckpt) fprintf(stderr, "nanodiff sample: --ckpt is required\n");
        nd_flags_usage("sample", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    nd_sample_config sc;
    if (!nd_cli_sampler("sample", sampler, steps, eta, seed, &sc)) return 1;
    if (n < 1 || n > 1024) {
        fprintf(stderr, "nanodiff sample: --n must be in [1, 1024], got %lld\n", (long long)n);
        return 1;
    }
    sc.w = isnan(scale) ? (float)w : (float)(scale - 1.0);
    int dev;
    if (!nd_cli_device("sample", device, &dev)) return 1;
    if (no_tf32) nd_cuda_set_tf32(false);

    nd_ctx ctx;
    nd_ctx_init(&ctx, (nd_device)dev, 64 << 20, 0);
    nd_model model;
    nd_ddpm_config cfg;
    nd_error err;
    if (!nd_checkpoint_load_model(ckpt, use_ema, &model, &cfg, &ctx, &err)) {
        fprintf(stderr, "nanodiff sample: %s\n", err.msg);
        nd_ctx_free(&ctx);
        return 1;
    }
    const nd_model_config *mc = &model.config;
    int classes = mc->c_embed_dim, first = 0, count = 1;
    if (classes > 0 && !parse_class(class_spec, classes, &first, &count)) {
        fprintf(stderr, "nanodiff sample: --class expects all, 0..%d%s, got \"%s\"\n", classes - 1,
                classes == 10 ? " or a Fashion-MNIST class name" : "", class_spec);
        nd_model_free(&model);
        nd_ctx_free(&ctx);
        return 1;
    }
    float ws[32];
    int n_w = sweep ? parse_list(sweep, ws, 32) : 1;
    if (sweep && n_w == 0) {
        fprintf(stderr, "nanodiff sample: --w-sweep expects a comma list of numbers, got \"%s\"\n", sweep);
        nd_model_free(&model);
        nd_ctx_free(&ctx);
        return 1;
    }
    if (!sweep) ws[0] = sc.w;
    // a sweep draws one sample a class for each w; otherwise n a class
    int per_class = sweep ? 1 : (int)n, total = count * per_class;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    float *images = nd_xmalloc((size_t)(total * n_w) * (size_t)image * sizeof(float));
    int32_t *labels = nd_xmalloc((size_t)total * sizeof(int32_t));
    for (int i = 0; i < total; i++) labels[i] = first + i / per_class;
    nd_tensor *context = nd_class_context(&ctx, labels, total, classes, true);
    nd_schedule sched;
    nd_schedule_linear(&sched, mc->T, cfg.beta_start, cfg.beta_end);
    float *start_mean = NULL, *start_std = NULL;
    int status = nd_cli_start("sample", start_spec, &cfg, &sched, &sc, &start_mean, &start_std) ? 0 : 1;
    strip_state st = {0};
    double start = nd_seconds();
    for (int k = 0; status == 0 && k < n_w; k++) {
        sc.w = ws[k];
        if (strip && k == 0) {
            int taken = sc.sampler == ND_SAMPLER_DDIM ? (int)(steps < mc->T ? steps : mc->T) : mc->T;
            st = (strip_state){.every = taken >= 10 ? taken / 10 : 1, .max = 10, .n = total, .image = image};
            st.frames = nd_xmalloc((size_t)(10 * total) * (size_t)image * sizeof(float));
        }
        nd_sample_images(&ctx, &model, &sched, &sc, total, context, NULL, images + (int64_t)k * total * image,
                         strip && k == 0 ? keep_frame : NULL, &st);
    }
    if (status == 0) { // (else nd_cli_start said why)
        fprintf(stderr, "sampled %d images with %s from %s in %.1f s\n", total * n_w, nd_sampler_name(sc.sampler),
                sc.start_mean ? "q(x_T)'s moments" : "N(0, I)", nd_seconds() - start);
        // a sweep's grid: rows = w, columns = class, as the course's sample_w
        bool written = sweep ? write_grid(out, images, total * n_w, mc, total, cfg.unit_range)
                             : write_grid(out, images, total, mc, per_class, cfg.unit_range);
        status = written ? 0 : 1;
    }
    if (strip && st.frames && status == 0) {
        // frames are stored step-major; the strip shows each sample's frames left to right
        float *ordered = nd_xmalloc((size_t)(st.stored * total) * (size_t)image * sizeof(float));
        for (int i = 0; i < total; i++)
            for (int f = 0; f < st.stored; f++)
                memcpy(ordered + ((int64_t)i * st.stored + f) * image, st.frames + ((int64_t)f * total + i) * image,
                       (size_t)image * sizeof(float));
        status = write_grid(strip, ordered, st.stored * total, mc, st.stored, cfg.unit_range) ? 0 : 1;
        free(ordered);
    }
    if (h5 && status == 0) {
        int64_t values = (int64_t)total * n_w * image;
        for (int64_t i = 0; i < values; i++) {
            float v = cfg.unit_range ? images[i] : (images[i] + 1.0f) * 0.5f;
            images[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        if (!nd_samples_write_hdf5(h5, images, total * n_w, mc->img_ch, mc->img_size, mc->img_size,
                                   sweep ? NULL : labels, &err)) {
            fprintf(stderr, "nanodiff sample: %s\n", err.msg);
            status = 1;
        } else {
            printf("wrote %s\n", h5);
        }
    }
    free(st.frames);
    free(start_mean);
    free(start_std);
    free(images);
    free(labels);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return status;
}
