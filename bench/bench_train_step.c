// Times one DDPM training step (forward, backward, Adam) of the course's dli-unet at batch 128 on 16x16
// and 28x28 images and of the text-to-image t2i-unet at batch 64 (t2i-quick's) on 16x16 images, and 150
// guided DDPM sampling steps of the dli-unet for 100 images, then runs the PyTorch twin
// (bench_train_step.py, eager mode) on the same cases and prints both and their ratio.
//
//   bench_train_step [--device cpu|cuda] [--repeats N] [--no-torch] [--python PATH] [--cases LIST]
//                    [--no-sampling] [--sample-steps N] [--no-training] [--precision f32|bf16]
//
// --cases picks the cases by a comma-separated list of t2i, 16 (dli-unet 16x16), 28 (dli-unet 28x28) and
// sample; by default all four run, in that order (smallest peak memory first). --no-training drops the
// three training cases, --no-sampling the sampling one.
//
// The t2i-unet's context is the frozen CLIP text encoder's token sequence (B, tokens, D); the encoder is
// not part of the training step (it runs without gradients on the captions, before the step), so the step
// here takes 8 tokens of width 64 as random inputs. The twin builds the same network
// (tests/fixtures/t2i_unet_twin.py, the PyTorch model the test suite checks nn/t2i_unet.c against) and
// asserts that its parameter count equals nanodiff's, which this program passes to it.
//
// Each side reports wall time and its process's CPU time (all threads). On a machine shared with other
// work the wall times depend on when each side got the cores; the CPU times (threads sleep at barriers on
// both sides, OMP_WAIT_POLICY=passive) count the work itself, so their ratio is printed as well.
// --sample-steps times the first N of the 150 sampling steps (each step is the same work). --precision bf16
// runs nanodiff's products in bf16 (nd_ctx_set_precision) and the twin's under torch.autocast(bfloat16).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nd_random.h"
#include "sample.h"
#include "train.h"

typedef struct bench_case {
    const char *name, *key; // key: its name in --cases
    nd_model_kind kind;
    int size, batch;
} bench_case;

// Smallest peak memory first: each line's resident-memory figure is the peak so far.
static const bench_case cases[] = {{"train_step_t2i_16px_b64", "t2i", ND_MODEL_T2I_UNET, 16, 64},
                                   {"train_step_16px_b128", "16", ND_MODEL_DLI_UNET, 16, 128},
                                   {"train_step_28px_b128", "28", ND_MODEL_DLI_UNET, 28, 128}};
#define N_TRAIN ND_COUNT(cases)
#define T2I_TOKENS 8 // the text context of the t2i case: (B, T2I_TOKENS, T2I_WIDTH)
#define T2I_WIDTH 64

typedef struct timing {
    double wall, cpu; // seconds
} timing;

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The process's peak resident memory so far (MiB); cases run smallest first, as in the twin.
static double max_rss_mib(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss / 1024.0;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median seconds of a training step after two warm-up steps (the first grows the arena to its peak).
// A context on `device` whose products run in `precision` (checked in main).
static void ctx_open(nd_ctx *ctx, nd_device device, nd_precision precision) {
    nd_ctx_init(ctx, device, 64 << 20, 0);
    if (!nd_ctx_set_precision(ctx, precision, NULL)) abort();
}

static timing time_train_step(nd_device device, nd_precision precision, const bench_case *c, int repeats, size_t *peak,
                              int64_t *params) {
    nd_ctx ctx;
    ctx_open(&ctx, device, precision);
    bool t2i = c->kind == ND_MODEL_T2I_UNET;
    nd_model model;
    nd_model_create(&model, nd_model_config_default(c->kind, 1, c->size, t2i ? T2I_WIDTH : 10), &ctx);
    *params = model.params.total;
    nd_adam opt;
    nd_adam_init(&opt, &model.params, &ctx, nd_adam_defaults());
    nd_schedule sched;
    nd_schedule_linear(&sched, 150, 1e-4, 0.02);
    int b = c->batch;
    float *x_host = malloc((size_t)b * c->size * c->size * sizeof(float)),
          *onehot = calloc((size_t)b * 10, sizeof(float));
    float *t_host = malloc((size_t)b * sizeof(float));
    int *t_int = malloc((size_t)b * sizeof(int));
    for (int i = 0; i < b * c->size * c->size; i++) x_host[i] = (float)((i * 7919) % 255) / 127.5f - 1.0f;
    for (int i = 0; i < b; i++) t_int[i] = (i * 37) % 150, t_host[i] = (float)t_int[i], onehot[i * 10 + i % 10] = 1.0f;
    // t2i: the text encoder's output stands in as fixed random tokens (the encoder is frozen, outside the step)
    float *tokens = NULL;
    if (t2i) {
        tokens = malloc((size_t)b * T2I_TOKENS * T2I_WIDTH * sizeof(float));
        for (int i = 0; i < b * T2I_TOKENS * T2I_WIDTH; i++) tokens[i] = nd_philox_normal(7, 0, i);
    }
    double *times = malloc((size_t)(repeats + 2) * sizeof(double)),
           *cpu = malloc((size_t)(repeats + 2) * sizeof(double));
    for (int r = 0; r < repeats + 2; r++) {
        double start = nd_seconds(), cpu_start = cpu_seconds();
        nd_tensor *x0 = nd_from_host(&ctx, ND_SHAPE(b, 1, c->size, c->size), x_host);
        nd_tensor *noise = nd_empty(&ctx, x0->shape);
        nd_rand_normal(&ctx, noise, 0.0f, 1.0f);
        nd_tensor *x_t = nd_schedule_q(&ctx, &sched, x0, noise, t_int);
        nd_tensor *t = nd_from_host(&ctx, ND_SHAPE(b), t_host);
        nd_tensor *context;
        if (t2i) {
            context = nd_from_host(&ctx, ND_SHAPE(b, T2I_TOKENS, T2I_WIDTH), tokens);
        } else {
            nd_tensor *cls = nd_from_host(&ctx, ND_SHAPE(b, 10), onehot);
            nd_tensor *mask = nd_empty(&ctx, cls->shape);
            nd_rand_bernoulli(&ctx, mask, 0.9f);
            context = nd_mul(&ctx, cls, mask);
        }
        nd_tensor *pred = nd_model_forward(&ctx, &model, x_t, t, context, true);
        nd_tensor *loss = nd_mse_loss(&ctx, noise, pred);
        nd_backward(&ctx, loss);
        nd_adam_step(&opt, &model.params, &ctx);
        nd_params_zero_grad(&model.params, &ctx);
        (void)nd_item(&ctx, loss); // waits for the device, as logging the loss does
        nd_ctx_step_end(&ctx);
        times[r] = nd_seconds() - start;
        cpu[r] = cpu_seconds() - cpu_start;
    }
    *peak = nd_ctx_peak_bytes(&ctx);
    qsort(times + 2, (size_t)repeats, sizeof *times, by_value);
    qsort(cpu + 2, (size_t)repeats, sizeof *cpu, by_value);
    timing median = {times[2 + repeats / 2], cpu[2 + repeats / 2]};
    free(times), free(cpu), free(x_host), free(onehot), free(t_host), free(t_int), free(tokens);
    nd_schedule_free(&sched);
    nd_adam_free(&opt);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return median;
}

// Seconds for `steps` guided DDPM steps drawing 100 images (10 a class) at 16x16.
static timing time_sampling(nd_device device, nd_precision precision, int steps, size_t *peak) {
    nd_ctx ctx;
    ctx_open(&ctx, device, precision);
    nd_model model;
    nd_model_create(&model, nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10), &ctx);
    nd_schedule sched;
    nd_schedule_linear(&sched, steps, 1e-4, 0.02);
    float *onehot = calloc(100 * 10, sizeof(float)), *out = malloc(100 * 256 * sizeof(float));
    for (int i = 0; i < 100; i++) onehot[i * 10 + i / 10] = 1.0f;
    nd_tensor *context = nd_empty_persistent(&ctx, ND_SHAPE(100, 10));
    nd_copy_from_host(&ctx, context, onehot);
    nd_sample_config sc = nd_sample_defaults();
    double start = nd_seconds(), cpu_start = cpu_seconds();
    nd_sample_images(&ctx, &model, &sched, &sc, 100, context, NULL, out, NULL, NULL);
    timing seconds = {nd_seconds() - start, cpu_seconds() - cpu_start};
    *peak = nd_ctx_peak_bytes(&ctx);
    free(onehot), free(out);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return seconds;
}

// One line of the comparison; torch's CPU time and memory are 0 when its twin did not report them.
static void print_ratio(const char *name, double torch_ms, double torch_cpu_ms, double torch_rss, timing ours) {
    double wall = torch_ms / (1e3 * ours.wall);
    printf("torch    %-24s %9.1f ms  (cpu %9.1f ms)  rss %7.1f MiB  -> nanodiff is %.2fx %s", name, torch_ms,
           torch_cpu_ms, torch_rss, wall, wall >= 1.0 ? "faster" : "slower");
    if (torch_cpu_ms > 0) printf("; by CPU time %.2fx", torch_cpu_ms / (1e3 * ours.cpu));
    printf("\n");
}

// Marks the cases named in `list` (comma-separated --cases keys; "sample" is the sampling case, index
// N_TRAIN) in run; false on an unknown name.
static bool parse_cases(const char *list, bool *run) {
    for (int k = 0; k <= N_TRAIN; k++) run[k] = false;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool found = false;
        for (int k = 0; k <= N_TRAIN; k++) {
            const char *key = k < N_TRAIN ? cases[k].key : "sample";
            if (strlen(key) == len && strncmp(p, key, len) == 0) run[k] = found = true;
        }
        if (!found && len > 0) return false;
        p += len + (p[len] == ',');
    }
    return true;
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv); // as the nanodiff program runs
    nd_device device = ND_CPU;
    int repeats = 5, sample_steps = 150;
    bool torch = true, run[N_TRAIN + 1];
    for (int k = 0; k <= N_TRAIN; k++) run[k] = true;
    const char *python = "/usr/bin/python3";
    nd_precision precision = ND_PRECISION_F32;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = strcmp(argv[++i], "cuda") == 0 ? ND_CUDA : ND_CPU;
        else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sample-steps") == 0 && i + 1 < argc)
            sample_steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-torch") == 0)
            torch = false;
        else if (strcmp(argv[i], "--no-sampling") == 0)
            run[N_TRAIN] = false;
        else if (strcmp(argv[i], "--no-training") == 0)
            for (int k = 0; k < N_TRAIN; k++) run[k] = false;
        else if (strcmp(argv[i], "--cases") == 0 && i + 1 < argc && parse_cases(argv[i + 1], run))
            i++;
        else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc)
            python = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc && nd_precision_parse(argv[i + 1], &precision))
            i++;
        else {
            fprintf(stderr, "usage: bench_train_step [--device cpu|cuda] [--repeats N] [--no-torch] [--cases LIST] "
                            "[--no-sampling] [--no-training] [--sample-steps N] [--python PATH] "
                            "[--precision f32|bf16]\n"
                            "  --cases: comma-separated, of t2i, 16, 28, sample (default: all)\n");
            return 2;
        }
    }
    nd_error err;
    if (!nd_precision_supported(device, precision, &err)) {
        fprintf(stderr, "bench_train_step: --precision %s: %s\n", nd_precision_name(precision), err.msg);
        return 1;
    }
    if (repeats < 1) repeats = 1;
    if (sample_steps < 1 || sample_steps > 150) {
        fprintf(stderr, "bench_train_step: --sample-steps must be in [1, 150], got %d\n", sample_steps);
        return 2;
    }
    char sample_name[64];
    snprintf(sample_name, sizeof sample_name, "sample_%d_steps_100img", sample_steps);
    const char *names[N_TRAIN + 1];
    for (int k = 0; k < N_TRAIN; k++) names[k] = cases[k].name;
    names[N_TRAIN] = sample_name;
    timing ours[N_TRAIN + 1] = {{0}};
    size_t peak;
    int64_t t2i_params = 0; // the t2i-unet's parameter count, for the twin to check its own against
    printf("precision %s\n", nd_precision_name(precision));
    for (int k = 0; k <= N_TRAIN; k++) {
        if (!run[k]) continue;
        int64_t params = 0;
        ours[k] = k < N_TRAIN ? time_train_step(device, precision, &cases[k], repeats, &peak, &params)
                              : time_sampling(device, precision, sample_steps, &peak);
        printf("nanodiff %-24s %9.1f ms  (cpu %9.1f ms)  rss %7.1f MiB  (step arena + library buffers %.1f MiB)\n",
               names[k], 1e3 * ours[k].wall, 1e3 * ours[k].cpu, max_rss_mib(), peak / 1048576.0);
        if (k < N_TRAIN && cases[k].kind == ND_MODEL_T2I_UNET) {
            t2i_params = params;
            printf("nanodiff t2i-unet parameters: %lld\n", (long long)params);
        }
        fflush(stdout);
    }
    if (!torch) return 0;
    char list[64] = "";
    for (int k = 0; k <= N_TRAIN; k++)
        if (run[k])
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? "," : "",
                     k < N_TRAIN ? cases[k].key : "sample");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s %s/bench_train_step.py --device %s --repeats %d --sample-steps %d --precision %s --cases=%s "
             "--t2i-params %lld",
             python, ND_BENCH_DIR, device == ND_CUDA ? "cuda" : "cpu", repeats, sample_steps,
             nd_precision_name(precision), list, (long long)t2i_params);
    FILE *p = popen(cmd, "r");
    if (!p) return 1;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char name[128];
        double ms, cpu_ms = 0.0, rss = 0.0;
        if (sscanf(line, "torch %127s %lf %lf %lf", name, &ms, &cpu_ms, &rss) < 2) {
            fputs(line, stdout);
            continue;
        }
        for (int k = 0; k <= N_TRAIN; k++)
            if (strcmp(name, names[k]) == 0 && ours[k].wall > 0) print_ratio(name, ms, cpu_ms, rss, ours[k]);
    }
    printf("ratio = torch time / nanodiff time (above 1: nanodiff is faster)\n");
    return pclose(p) == 0 ? 0 : 1;
}
