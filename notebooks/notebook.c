// What every notebook program shares: flags, PNG figures, progression strips.
#include "notebook.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char out_dir[900];

bool nb_parse(int argc, char **argv, const char *name, const char *summary, nb_args *args) {
    setvbuf(stdout, NULL, _IOLBF, 0); // losses appear as they come, also in a log file
    *args = (nb_args){.data = "fashion-mnist", .w = 2.0f};
    snprintf(out_dir, sizeof out_dir, "notebooks-out/%s", name);
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--quick") == 0) {
            args->quick = true;
        } else if (strcmp(argv[i], "--out") == 0 && has_value) {
            snprintf(out_dir, sizeof out_dir, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--w") == 0 && has_value) {
            char *end;
            args->w = strtof(argv[++i], &end);
            if (end == argv[i] || *end) {
                fprintf(stderr, "%s: --w takes a number, not \"%s\"\n", name, argv[i]);
                return false;
            }
        } else if (strcmp(argv[i], "--data") == 0 && has_value) {
            args->data = argv[++i];
        } else if (strcmp(argv[i], "--device") == 0 && has_value &&
                   (!strcmp(argv[i + 1], "cpu") || !strcmp(argv[i + 1], "cuda"))) {
            args->gpu = strcmp(argv[++i], "cuda") == 0;
        } else {
            bool help = strcmp(argv[i], "--help") == 0;
            if (!help) fprintf(stderr, "%s: unknown flag or missing value: %s\n", name, argv[i]);
            fprintf(
                help ? stdout : stderr,
                "usage: %s [--quick] [--out DIR] [--data fashion-mnist|IDX-DIR|FILE.h5] [--device cpu|cuda] [--w W]\n"
                "  %s\n  --quick   a few steps of everything (a smoke run, not the course's numbers)\n"
                "  --out     where figures and checkpoints go (default notebooks-out/%s)\n"
                "  --w       guidance weight of the guided samples (default 2; 04 and 06)\n",
                name, summary, name);
            return false;
        }
    }
    char why[256];
    if (args->gpu && !nd_cuda_available(why, sizeof why)) {
        fprintf(stderr, "%s: --device cuda: %s\n", name, why);
        return false;
    }
    args->out = out_dir;
    char path[sizeof out_dir];
    snprintf(path, sizeof path, "%s", out_dir);
    for (char *p = path + 1;; p++) { // mkdir -p
        bool end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(path, 0777) != 0 && errno != EEXIST) {
                fprintf(stderr, "%s: cannot create %s: %s\n", name, path, strerror(errno));
                return false;
            }
            if (end) break;
            *p = '/';
        }
    }
    return true;
}

const char *nb_path(char *path, const nb_args *args, const char *file) {
    snprintf(path, 1100, "%s/%s", args->out, file);
    return path;
}

bool nb_write_grid(const nb_args *args, const char *file, const float *images, int n, int c, int s, int nrow,
                   bool unit_range) {
    char path[1100];
    nd_image8 grid;
    nd_error err;
    if (!nd_image_grid(&grid, images, n, c, s, s, nrow, 2, unit_range, &err) ||
        !nd_png_write(nb_path(path, args, file), &grid, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    nd_image8_free(&grid);
    printf("wrote %s\n", path);
    return true;
}

void nb_strip_init(nb_strip *s, int steps, int frames, int n, long image) {
    *s = (nb_strip){.every = steps / frames > 0 ? steps / frames : 1, .max = frames, .n = n, .image = image};
    s->frames = calloc((size_t)frames * (size_t)n * (size_t)image, sizeof(float));
}

void nb_strip_step(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    nb_strip *s = user;
    if (step_index < 0 || s->stored >= s->max) return; // x_T itself is not shown, as the course's plot
    if ((step_index + 1) % s->every != 0 && t != 0) return;
    nd_copy_to_host(ctx, x, s->frames + (long)s->stored * s->n * s->image);
    s->stored++;
}

bool nb_strip_write(const nb_args *args, const char *file, const nb_strip *s, int c, int size, bool unit_range) {
    // frames are stored (frame, image); the grid wants (image, frame)
    float *rows = malloc((size_t)s->stored * (size_t)s->n * (size_t)s->image * sizeof(float));
    for (int i = 0; i < s->n; i++)
        for (int f = 0; f < s->stored; f++)
            memcpy(rows + ((long)i * s->stored + f) * s->image, s->frames + ((long)f * s->n + i) * s->image,
                   (size_t)s->image * sizeof(float));
    bool ok = nb_write_grid(args, file, rows, s->n * s->stored, c, size, s->stored, unit_range);
    free(rows);
    return ok;
}

void nb_strip_free(nb_strip *s) { free(s->frames); }

bool nb_train_ddpm(const nb_args *args, nd_ddpm_config *cfg, nd_ctx *ctx, nd_model *model) {
    if (args->quick) cfg->max_steps = 2, cfg->batch_size = 16;
    nd_ddpm_result result;
    nd_error err;
    char path[1100];
    if (!nd_ddpm_train(cfg, args->out, false, ctx->device, true, &result, &err) ||
        !nd_checkpoint_load_model(nb_path(path, args, "model.h5"), false, model, cfg, ctx, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    printf("trained %lld steps in %.1f s (%.0f images/s); mean loss of the last epoch: %.4f\n", (long long)result.steps,
           result.seconds, result.images_per_second, result.last_loss);
    return true;
}

nd_sample_config nb_sample_config(const nb_args *args, bool guided, uint64_t seed) {
    nd_sample_config sc = nd_sample_defaults();
    sc.guided = guided;
    sc.w = args->w;
    sc.seed = seed;
    if (args->quick) sc.sampler = ND_SAMPLER_DDIM, sc.steps = 3;
    return sc;
}
