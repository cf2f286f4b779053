// Times nd_conv2d forward and forward+backward on the 3x3 64->64 convolutions that dominate training the
// course U-Net on the CPU, runs the PyTorch twin (bench_conv.py) on the same cases with as many threads,
// and prints both and their ratio.
//
//   [OMP_NUM_THREADS=N] bench_conv [--chunk-mib N] [--no-torch] [--python PATH]
//   [OMP_NUM_THREADS=N] bench_conv --sampling [--batch N]
//
// --sampling times, instead, the inference (no-grad) 3x3 convolutions of guided sampling with the
// dli-unet on 16x16 images (the sampler runs its 200 images, conditional and unconditional, 50 at a time:
// --batch sets that, default 50), each shape by our Winograd F(4x4, 3x3) (ND_CONV_WINOGRAD=1), by the
// backend's library path (ND_CONV_WINOGRAD=0: oneDNN, its own Winograd where it has one for the shape and
// this CPU), by oneDNN's direct kernels (the forward of the same convolution with gradients on, which never
// takes Winograd) and by im2col + GEMM. Each is the median of SAMPLING_REPEATS calls, with the process's
// CPU time per call beside it (a shared machine's wall times depend on when the cores were free).
//
// --chunk-mib sets the convolution's column scratch per chunk (default: the library's); --python names
// an interpreter with torch (default /usr/bin/python3, Debian's python3-torch). Timings need an otherwise
// idle machine: with more runnable threads than cores, every synchronisation inside a GEMM waits for a
// descheduled thread and the times say more about the load than about the code. Both sides run with
// OpenMP threads sleeping at barriers (OMP_WAIT_POLICY=passive unless set), as the nanodiff program does.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "autograd.h"

#define REPEATS 10
#define WARMUP 2 // the first step also grows the arena to its peak

typedef struct bench_case {
    const char *name;
    int64_t batch, channels, size;
} bench_case;

static const bench_case cases[] = {
    {"3x3_64ch_16px", 128, 64, 16},
    {"3x3_64ch_28px", 128, 64, 28},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

typedef struct timing {
    double fwd_ms, fwd_bwd_ms;
} timing;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// Best of REPEATS runs of one step, the forward alone (no grad) or forward + backward of sum(y): on a
// shared machine the fastest run is the one least disturbed by other work.
static double time_step(nd_ctx *ctx, nd_tensor *x, nd_tensor *w, nd_tensor *b, bool backward) {
    double best = 0.0;
    bool previous = nd_ctx_set_grad(ctx, backward);
    for (int i = 0; i < WARMUP + REPEATS; i++) {
        double start = now_ms();
        nd_tensor *y = nd_conv2d(ctx, x, w, b, 1, 1); // (N, C, H, W)
        if (backward) nd_backward(ctx, nd_sum_all(ctx, y));
        nd_ctx_step_end(ctx);
        double ms = now_ms() - start;
        if (i >= WARMUP && (best == 0.0 || ms < best)) best = ms;
    }
    nd_ctx_set_grad(ctx, previous);
    return best;
}

static timing bench_nanodiff(const bench_case *c, size_t chunk_bytes) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 256u << 20, 0);
    ctx.conv_chunk_bytes = chunk_bytes;
    nd_tensor *x = nd_empty_persistent(&ctx, ND_SHAPE(c->batch, c->channels, c->size, c->size)); // (N, C, H, W)
    nd_tensor *w = nd_empty_persistent(&ctx, ND_SHAPE(c->channels, c->channels, 3, 3));          // (O, C, 3, 3)
    nd_tensor *b = nd_empty_persistent(&ctx, ND_SHAPE(c->channels));                             // (O)
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_rand_normal(&ctx, w, 0.0f, 0.05f);
    nd_fill(&ctx, b, 0.0f);
    nd_requires_grad(&ctx, x, true);
    nd_requires_grad(&ctx, w, true);
    nd_requires_grad(&ctx, b, true);
    timing t = {time_step(&ctx, x, w, b, false), time_step(&ctx, x, w, b, true)};
    nd_ctx_free(&ctx);
    return t;
}

// ---------------------------------------------------------------------------------------------------
// --sampling

#define SAMPLING_REPEATS 15

typedef struct sampling_case {
    int64_t in_c, out_c, size, per_step; // per_step: calls per sampling step and per batch
} sampling_case;

static const sampling_case sampling_cases[] = {
    {64, 64, 16, 7},  {128, 64, 16, 1}, {64, 1, 16, 1},   {64, 64, 8, 4},   {64, 128, 8, 1},
    {128, 128, 8, 1}, {256, 64, 8, 1},  {128, 128, 4, 1}, {512, 128, 4, 1},
};
#define N_SAMPLING_CASES (int)(sizeof sampling_cases / sizeof sampling_cases[0])

typedef enum conv_path { PATH_OURS, PATH_LIBRARY, PATH_DIRECT, PATH_IM2COL, N_PATHS } conv_path;
static const char *path_names[N_PATHS] = {"winograd", "library", "direct", "im2col"};

static double cpu_ms(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Median wall and CPU milliseconds of one inference call of the case on `path`.
static timing time_sampling_conv(const sampling_case *c, int64_t batch, conv_path path) {
    setenv("ND_CONV_WINOGRAD", path == PATH_OURS ? "1" : "0", 1);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 256u << 20, 0);
    ctx.conv_gemm = path == PATH_IM2COL;
    nd_tensor *x = nd_empty_persistent(&ctx, ND_SHAPE(batch, c->in_c, c->size, c->size)); // (N, C, H, W)
    nd_tensor *w = nd_empty_persistent(&ctx, ND_SHAPE(c->out_c, c->in_c, 3, 3));          // (O, C, 3, 3)
    nd_tensor *b = nd_empty_persistent(&ctx, ND_SHAPE(c->out_c));                         // (O)
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    nd_rand_normal(&ctx, w, 0.0f, 0.05f);
    nd_fill(&ctx, b, 0.0f);
    bool direct = path == PATH_DIRECT; // a training convolution's forward: oneDNN's direct kernels
    if (direct) nd_requires_grad(&ctx, x, true);
    bool previous = nd_ctx_set_grad(&ctx, direct);
    double wall[WARMUP + SAMPLING_REPEATS], cpu[WARMUP + SAMPLING_REPEATS];
    for (int i = 0; i < WARMUP + SAMPLING_REPEATS; i++) {
        double start = now_ms(), cpu_start = cpu_ms();
        nd_conv2d(&ctx, x, w, b, 1, 1); // (N, O, H, W)
        nd_ctx_step_end(&ctx);
        wall[i] = now_ms() - start, cpu[i] = cpu_ms() - cpu_start;
    }
    nd_ctx_set_grad(&ctx, previous);
    nd_ctx_free(&ctx);
    unsetenv("ND_CONV_WINOGRAD");
    qsort(wall + WARMUP, SAMPLING_REPEATS, sizeof *wall, by_value);
    qsort(cpu + WARMUP, SAMPLING_REPEATS, sizeof *cpu, by_value);
    return (timing){wall[WARMUP + SAMPLING_REPEATS / 2], cpu[WARMUP + SAMPLING_REPEATS / 2]};
}

static int bench_sampling(int64_t batch) {
    int threads = omp_get_max_threads();
    printf("inference conv2d 3x3 stride 1 pad 1, batch %lld, median of %d, ms per call: wall (cpu), %d CPU threads\n",
           (long long)batch, SAMPLING_REPEATS, threads);
    printf("%-18s %5s", "in->out size", "calls");
    for (int p = 0; p < N_PATHS; p++) printf(" %19s", path_names[p]);
    printf(" %9s\n", "lib/ours");
    double total[N_PATHS] = {0};
    for (int i = 0; i < N_SAMPLING_CASES; i++) {
        const sampling_case *c = &sampling_cases[i];
        char name[32];
        snprintf(name, sizeof name, "%lld->%lld %lldpx", (long long)c->in_c, (long long)c->out_c, (long long)c->size);
        printf("%-18s %5lld", name, (long long)c->per_step);
        timing t[N_PATHS];
        for (int p = 0; p < N_PATHS; p++) {
            t[p] = time_sampling_conv(c, batch, (conv_path)p);
            total[p] += t[p].fwd_ms * (double)c->per_step;
            printf(" %8.2f (%8.2f)", t[p].fwd_ms, t[p].fwd_bwd_ms);
        }
        printf(" %9.2f\n", t[PATH_LIBRARY].fwd_ms / t[PATH_OURS].fwd_ms);
        fflush(stdout);
    }
    printf("%-24s", "per step (wall, x calls)");
    for (int p = 0; p < N_PATHS; p++) printf(" %8.2f %10s", total[p], "");
    printf(" %9.2f\n", total[PATH_LIBRARY] / total[PATH_OURS]);
    printf("library: ND_CONV_WINOGRAD=0 (oneDNN, with its Winograd where it has one); direct: oneDNN's direct "
           "kernels (im2col where the build has no oneDNN)\n");
    return 0;
}

// Runs the twin and reads its "case <name> fwd_ms <ms> fwd_bwd_ms <ms>" lines; false when it cannot run.
static bool bench_torch(const char *python, int threads, timing *out) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/bench_conv.py --threads %d", python, ND_BENCH_DIR, threads);
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    char line[256], name[64];
    int found = 0;
    timing t;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "case %63s fwd_ms %lf fwd_bwd_ms %lf", name, &t.fwd_ms, &t.fwd_bwd_ms) == 3)
            for (int i = 0; i < N_CASES; i++)
                if (strcmp(name, cases[i].name) == 0) {
                    out[i] = t;
                    found++;
                }
    return pclose(p) == 0 && found == N_CASES;
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv); // as the nanodiff program runs; the PyTorch twin inherits the policy
    size_t chunk_bytes = 0;
    bool torch = true, sampling = false;
    int64_t batch = 50;
    const char *python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chunk-mib") == 0 && i + 1 < argc) {
            chunk_bytes = (size_t)(atof(argv[++i]) * (1 << 20));
        } else if (strcmp(argv[i], "--sampling") == 0) {
            sampling = true;
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            batch = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--no-torch") == 0) {
            torch = false;
        } else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) {
            python = argv[++i];
        } else {
            fprintf(stderr,
                    "bench_conv: unknown argument \"%s\"\n"
                    "usage: bench_conv [--chunk-mib N] [--no-torch] [--python PATH]\n"
                    "       bench_conv --sampling [--batch N]\n",
                    argv[i]);
            return 1;
        }
    }
    if (batch < 1) {
        fprintf(stderr, "bench_conv: --batch must be at least 1, got %lld\n", (long long)batch);
        return 1;
    }
    if (sampling) return bench_sampling(batch);
    timing ours[N_CASES], theirs[N_CASES];
    for (int i = 0; i < N_CASES; i++) ours[i] = bench_nanodiff(&cases[i], chunk_bytes);
    int threads = omp_get_max_threads();
    if (torch && !bench_torch(python, threads, theirs)) {
        fprintf(stderr,
                "bench_conv: %s bench_conv.py did not run (is python3-torch installed?); "
                "showing nanodiff alone\n",
                python);
        torch = false;
    }
    printf("conv2d 3x3 stride 1 pad 1, batch 128, best of %d, ms per iteration (%d CPU threads)\n", REPEATS, threads);
    printf("%-16s %10s %10s %8s %12s %12s %8s\n", "case", "fwd", "torch", "ratio", "fwd+bwd", "torch", "ratio");
    for (int i = 0; i < N_CASES; i++) {
        const bench_case *c = &cases[i];
        double gflop = 2.0 * c->batch * c->channels * c->channels * 9 * c->size * c->size * 1e-9;
        printf("%-16s %10.2f", c->name, ours[i].fwd_ms);
        if (torch)
            printf(" %10.2f %8.2f", theirs[i].fwd_ms, theirs[i].fwd_ms / ours[i].fwd_ms);
        else
            printf(" %10s %8s", "-", "-");
        printf(" %12.2f", ours[i].fwd_bwd_ms);
        if (torch)
            printf(" %12.2f %8.2f", theirs[i].fwd_bwd_ms, theirs[i].fwd_bwd_ms / ours[i].fwd_bwd_ms);
        else
            printf(" %12s %8s", "-", "-");
        printf("   (%.0f / %.0f GFLOP/s)\n", gflop / ours[i].fwd_ms * 1e3, 3 * gflop / ours[i].fwd_bwd_ms * 1e3);
    }
    printf("ratio = torch time / nanodiff time (above 1: nanodiff is faster)\n");
    return 0;
}
