// Times one DDPM training step (forward, backward, Adam) of the course's dli-unet at batch 128 on 16x16
// and 28x28 images, and 150 guided DDPM sampling steps for 100 images, then runs the PyTorch twin
// (bench_train_step.py, eager mode) on the same cases and prints both and their ratio.
//
//   bench_train_step [--device cpu|cuda] [--repeats N] [--no-torch] [--python PATH] [--no-sampling]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "train.h"

typedef struct bench_case {
    const char *name;
    int size, batch;
} bench_case;

static const bench_case cases[] = {{"train_step_16px_b128", 16, 128}, {"train_step_28px_b128", 28, 128}};

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median seconds of a training step after two warm-up steps (the first grows the arena to its peak).
static double time_train_step(nd_device device, const bench_case *c, int repeats, size_t *peak) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, device, 64 << 20, 0);
    nd_model model;
    nd_model_create(&model, nd_model_config_default(ND_MODEL_DLI_UNET, 1, c->size, 10), &ctx);
    nd_adam opt;
    nd_adam_init(&opt, &model.params, &ctx, nd_adam_defaults());
    nd_schedule sched;
    nd_schedule_linear(&sched, 150, 1e-4, 0.02);
    int b = c->batch;
    float *x_host = malloc((size_t)b * c->size * c->size * sizeof(float)), *onehot = calloc((size_t)b * 10, sizeof(float));
    float *t_host = malloc((size_t)b * sizeof(float));
    int *t_int = malloc((size_t)b * sizeof(int));
    for (int i = 0; i < b * c->size * c->size; i++) x_host[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
    for (int i = 0; i < b; i++) t_int[i] = (i * 37) % 150, t_host[i] = (float)t_int[i], onehot[i * 10 + i % 10] = 1.0f;
    double *times = malloc((size_t)(repeats + 2) * sizeof(double));
    for (int r = 0; r < repeats + 2; r++) {
        double start = nd_seconds();
        nd_tensor *x0 = nd_from_host(&ctx, ND_SHAPE(b, 1, c->size, c->size), x_host);
        nd_tensor *noise = nd_empty(&ctx, x0->shape);
        nd_rand_normal(&ctx, noise, 0.0f, 1.0f);
        nd_tensor *x_t = nd_schedule_q(&ctx, &sched, x0, noise, t_int);
        nd_tensor *t = nd_from_host(&ctx, ND_SHAPE(b), t_host);
        nd_tensor *cls = nd_from_host(&ctx, ND_SHAPE(b, 10), onehot);
        nd_tensor *mask = nd_empty(&ctx, cls->shape);
        nd_rand_bernoulli(&ctx, mask, 0.9f);
        nd_tensor *pred = nd_model_forward(&ctx, &model, x_t, t, nd_mul(&ctx, cls, mask), true);
        nd_tensor *loss = nd_mse_loss(&ctx, noise, pred);
        nd_backward(&ctx, loss);
        nd_adam_step(&opt, &model.params, &ctx);
        nd_params_zero_grad(&model.params, &ctx);
        (void)nd_item(&ctx, loss); // waits for the device, as logging the loss does
        nd_ctx_step_end(&ctx);
        times[r] = nd_seconds() - start;
    }
    *peak = nd_ctx_peak_bytes(&ctx);
    qsort(times + 2, (size_t)repeats, sizeof *times, by_value);
    double median = times[2 + repeats / 2];
    free(times), free(x_host), free(onehot), free(t_host), free(t_int);
    nd_schedule_free(&sched);
    nd_adam_free(&opt);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return median;
}

// Seconds for 150 guided DDPM steps drawing 100 images (10 a class) at 16x16.
static double time_sampling(nd_device device, size_t *peak) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, device, 64 << 20, 0);
    nd_model model;
    nd_model_create(&model, nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10), &ctx);
    nd_schedule sched;
    nd_schedule_linear(&sched, 150, 1e-4, 0.02);
    float *onehot = calloc(100 * 10, sizeof(float)), *out = malloc(100 * 256 * sizeof(float));
    for (int i = 0; i < 100; i++) onehot[i * 10 + i / 10] = 1.0f;
    nd_tensor *context = nd_empty_persistent(&ctx, ND_SHAPE(100, 10));
    nd_copy_from_host(&ctx, context, onehot);
    nd_sample_config sc = nd_sample_defaults();
    double start = nd_seconds();
    nd_sample_images(&ctx, &model, &sched, &sc, 100, context, NULL, out, NULL, NULL);
    double seconds = nd_seconds() - start;
    *peak = nd_ctx_peak_bytes(&ctx);
    free(onehot), free(out);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return seconds;
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv); // as the nanodiff program runs
    nd_device device = ND_CPU;
    int repeats = 5;
    bool torch = true, sampling = true;
    const char *python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = strcmp(argv[++i], "cuda") == 0 ? ND_CUDA : ND_CPU;
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-torch") == 0) torch = false;
        else if (strcmp(argv[i], "--no-sampling") == 0) sampling = false;
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) python = argv[++i];
        else {
            fprintf(stderr, "usage: bench_train_step [--device cpu|cuda] [--repeats N] [--no-torch] [--no-sampling] "
                            "[--python PATH]\n");
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    double ours[3] = {0};
    size_t peak;
    for (int k = 0; k < 2; k++) {
        ours[k] = time_train_step(device, &cases[k], repeats, &peak);
        printf("nanodiff %-24s %9.1f ms  (step arena peak %.1f MiB)\n", cases[k].name, 1e3 * ours[k], peak / 1048576.0);
        fflush(stdout);
    }
    if (sampling) {
        ours[2] = time_sampling(device, &peak);
        printf("nanodiff %-24s %9.1f ms  (step arena peak %.1f MiB)\n", "sample_150_steps_100img", 1e3 * ours[2],
               peak / 1048576.0);
        fflush(stdout);
    }
    if (!torch) return 0;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s/bench_train_step.py --device %s --repeats %d%s", python, ND_BENCH_DIR,
             device == ND_CUDA ? "cuda" : "cpu", repeats, sampling ? "" : " --no-sampling");
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char name[128];
        double ms;
        if (sscanf(line, "torch %127s %lf", name, &ms) != 2) {
            fputs(line, stdout);
            continue;
        }
        for (int k = 0; k < 3; k++) {
            const char *ours_name = k < 2 ? cases[k].name : "sample_150_steps_100img";
            if (strcmp(name, ours_name) == 0 && ours[k] > 0)
                printf("torch    %-24s %9.1f ms  -> nanodiff is %.2fx %s\n", name, ms, ms / (1e3 * ours[k]),
                       ms >= 1e3 * ours[k] ? "faster" : "slower (ratio = torch time / nanodiff time)");
        }
    }
    return pclose(p) == 0 ? 0 : 1;
}
