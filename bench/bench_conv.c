// Times nd_conv2d forward and forward+backward on the 3x3 64->64 convolutions that dominate training the
// course U-Net on the CPU, runs the PyTorch twin (bench_conv.py) on the same cases with as many threads,
// and prints both and their ratio.
//
//   [OMP_NUM_THREADS=N] bench_conv [--chunk-mib N] [--no-torch] [--python PATH]
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
    bool torch = true;
    const char *python = "/usr/bin/python3";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chunk-mib") == 0 && i + 1 < argc) {
            chunk_bytes = (size_t)(atof(argv[++i]) * (1 << 20));
        } else if (strcmp(argv[i], "--no-torch") == 0) {
            torch = false;
        } else if (strcmp(argv[i], "--python") == 0 && i + 1 < argc) {
            python = argv[++i];
        } else {
            fprintf(stderr,
                    "bench_conv: unknown argument \"%s\"\n"
                    "usage: bench_conv [--chunk-mib N] [--no-torch] [--python PATH]\n",
                    argv[i]);
            return 1;
        }
    }
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
