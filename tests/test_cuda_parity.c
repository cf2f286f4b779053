// CUDA parity: every op case of the shared registry (tests/gc_cases.c), plus larger shapes that span many
// blocks, warps and grid-stride turns, runs on the CPU and on the GPU from the same inputs. Outputs and every
// input gradient of loss = sum(out * R) must agree by normalized MSE and be finite, and the GPU must write
// exactly the step-arena memory the CPU writes (the arena is filled with a guard pattern first, so a write
// out of bounds or a missing write shows). Then: random draws bit-identical, optimizer updates equal.
// Without a usable GPU it prints the reason and exits 77 (ctest: skipped).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "elementwise_math.h"
#include "gradcheck.h"
#include "test.h"

// DESIGN.md's bar: every CUDA op matches the CPU op to normalized MSE <= 1e-7 with TF32 off. Summation
// order and the GPU's expf/logf/erff (a few ulp from glibc's) are the only differences left, about 1e-12.
#define PARITY_NMSE 1e-7
#define ARENA_BYTES ((size_t)32 << 20) // holds the largest case below with room to spare (checked)
#define GUARD_BITS 0x7fedcba9u         // a quiet NaN whose payload no arithmetic produces
#define SEED 20240611u
#define PROJECTION_OFFSET (1ull << 36) // Philox counters of R, far from the inputs'

// ---------------------------------------------------------------------------------------------------
// larger shapes than the registry's (which fit in one warp): every skeleton past one block and one wave

#define IN(...) {.shape = GC_SHAPE(__VA_ARGS__)}
#define IN_POS(...) {.shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_POSITIVE}
#define IN_CLASSES(n, ...) {.shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_CLASSES, .classes = (n)}

static nd_tensor *add(nd_ctx *c, nd_tensor **x) { return nd_add(c, x[0], x[1]); }
static nd_tensor *div_(nd_ctx *c, nd_tensor **x) { return nd_div(c, x[0], x[1]); }
static nd_tensor *gelu(nd_ctx *c, nd_tensor **x) { return nd_gelu(c, x[0]); }
static nd_tensor *sum_last(nd_ctx *c, nd_tensor **x) { return nd_sum(c, x[0], ((int[]){-1}), 1, false); }
static nd_tensor *sum_first(nd_ctx *c, nd_tensor **x) { return nd_sum(c, x[0], ((int[]){0}), 1, false); }
static nd_tensor *sum_outer_inner(nd_ctx *c, nd_tensor **x) { return nd_sum(c, x[0], ((int[]){0, 2}), 2, true); }
static nd_tensor *mean_all(nd_ctx *c, nd_tensor **x) { return nd_mean_all(c, x[0]); }
static nd_tensor *softmax_last(nd_ctx *c, nd_tensor **x) { return nd_softmax(c, x[0], -1); }
static nd_tensor *softmax_mid(nd_ctx *c, nd_tensor **x) { return nd_softmax(c, x[0], 1); }
static nd_tensor *log_softmax(nd_ctx *c, nd_tensor **x) { return nd_log_softmax(c, x[0], -1); }
static nd_tensor *cross_entropy(nd_ctx *c, nd_tensor **x) { return nd_cross_entropy(c, x[0], x[1]); }
static nd_tensor *mse_loss(nd_ctx *c, nd_tensor **x) { return nd_mse_loss(c, x[0], x[1]); }
static nd_tensor *matmul(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], false, false); }
static nd_tensor *matmul_tt(nd_ctx *c, nd_tensor **x) { return nd_matmul(c, x[0], x[1], true, true); }
static nd_tensor *linear(nd_ctx *c, nd_tensor **x) { return nd_linear(c, x[0], x[1], x[2]); }
static nd_tensor *permute(nd_ctx *c, nd_tensor **x) { return nd_permute(c, x[0], ((int[]){3, 1, 0, 2})); }
static nd_tensor *concat(nd_ctx *c, nd_tensor **x) { return nd_concat(c, x, 2, 1); }
static nd_tensor *embedding(nd_ctx *c, nd_tensor **x) { return nd_embedding(c, x[0], x[1]); }
static nd_tensor *layer_norm(nd_ctx *c, nd_tensor **x) { return nd_layer_norm(c, x[0], x[1], x[2], 1e-5f); }
static nd_tensor *group_norm(nd_ctx *c, nd_tensor **x) { return nd_group_norm(c, x[0], 8, x[1], x[2], 1e-5f); }
static nd_tensor *batch_norm(nd_ctx *c, nd_tensor **x) {
    int64_t channels = x[0]->shape.d[1];
    nd_tensor *running_mean = nd_zeros(c, ND_SHAPE(channels)), *running_var = nd_full(c, ND_SHAPE(channels), 1.0f);
    return nd_batch_norm2d(c, x[0], x[1], x[2], running_mean, running_var, true, 0.1f, 1e-5f);
}
static nd_tensor *conv2d(nd_ctx *c, nd_tensor **x) { return nd_conv2d(c, x[0], x[1], x[2], 1, 1); }
static nd_tensor *conv_transpose2d(nd_ctx *c, nd_tensor **x) {
    return nd_conv_transpose2d(c, x[0], x[1], x[2], 2, 1, 0);
}
static nd_tensor *conv_transpose2d_k2s2(nd_ctx *c, nd_tensor **x) {
    return nd_conv_transpose2d(c, x[0], x[1], x[2], 2, 0, 0);
}
static nd_tensor *max_pool(nd_ctx *c, nd_tensor **x) { return nd_max_pool2d(c, x[0], 3, 2); }
static nd_tensor *upsample(nd_ctx *c, nd_tensor **x) { return nd_upsample_nearest(c, x[0], 2); }
static nd_tensor *attention_causal(nd_ctx *c, nd_tensor **x) { return nd_attention(c, x[0], x[1], x[2], true); }
static nd_tensor *dropout(nd_ctx *c, nd_tensor **x) { return nd_dropout(c, x[0], 0.25f, true); }

static const gc_case large_cases[] = {
    {.name = "large_add_broadcast", .n_inputs = 2, .inputs = {IN(64, 33, 70), IN(33, 1)}, .build = add},
    {.name = "large_div_broadcast", .n_inputs = 2, .inputs = {IN(40, 1, 500), IN_POS(7, 500)}, .build = div_},
    {.name = "large_gelu", .n_inputs = 1, .inputs = {IN(300, 700)}, .build = gelu},
    {.name = "large_sum_rows", .n_inputs = 1, .inputs = {IN(300, 1000)}, .build = sum_last},
    {.name = "large_sum_many_rows", .n_inputs = 1, .inputs = {IN(17000, 4)}, .build = sum_last},
    {.name = "large_sum_cols", .n_inputs = 1, .inputs = {IN(1000, 300)}, .build = sum_first},
    {.name = "large_sum_outer_inner", .n_inputs = 1, .inputs = {IN(20, 50, 40)}, .build = sum_outer_inner},
    {.name = "large_mean_all", .n_inputs = 1, .inputs = {IN(1000, 300)}, .build = mean_all},
    {.name = "large_softmax", .n_inputs = 1, .inputs = {IN(50, 2000)}, .build = softmax_last},
    {.name = "large_softmax_many_rows", .n_inputs = 1, .inputs = {IN(16500, 3)}, .build = softmax_last},
    {.name = "large_softmax_axis1", .n_inputs = 1, .inputs = {IN(4, 700, 9)}, .build = softmax_mid},
    {.name = "large_log_softmax", .n_inputs = 1, .inputs = {IN(30, 1500)}, .build = log_softmax},
    {.name = "large_cross_entropy", .n_inputs = 2, .inputs = {IN(500, 1000), IN_CLASSES(1000, 500)},
     .build = cross_entropy},
    {.name = "large_mse_loss", .n_inputs = 2, .inputs = {IN(300, 400), IN(300, 400)}, .build = mse_loss},
    {.name = "large_matmul_shared_b", .n_inputs = 2, .inputs = {IN(3, 130, 70), IN(70, 90)}, .build = matmul},
    {.name = "large_matmul_batched_trans", .n_inputs = 2, .inputs = {IN(3, 70, 130), IN(3, 90, 70)},
     .build = matmul_tt},
    {.name = "large_matmul_shared_a", .n_inputs = 2, .inputs = {IN(130, 70), IN(3, 70, 90)}, .build = matmul},
    {.name = "large_linear", .n_inputs = 3, .inputs = {IN(4, 50, 300), IN(200, 300), IN(200)}, .build = linear},
    {.name = "large_permute", .n_inputs = 1, .inputs = {IN(6, 20, 30, 40)}, .build = permute},
    {.name = "large_concat", .n_inputs = 2, .inputs = {IN(30, 50, 70), IN(30, 20, 70)}, .build = concat},
    {.name = "large_embedding", .n_inputs = 2, .inputs = {IN(50, 64), IN_CLASSES(50, 40, 30)}, .build = embedding},
    {.name = "large_layer_norm", .n_inputs = 3, .inputs = {IN(64, 768), IN(768), IN(768)}, .build = layer_norm},
    {.name = "large_group_norm", .n_inputs = 3, .inputs = {IN(8, 32, 16, 16), IN(32), IN(32)}, .build = group_norm},
    {.name = "large_batch_norm", .n_inputs = 3, .inputs = {IN(16, 24, 12, 12), IN(24), IN(24)}, .build = batch_norm},
    {.name = "large_conv2d", .n_inputs = 3, .inputs = {IN(4, 16, 20, 20), IN(32, 16, 3, 3), IN(32)}, .build = conv2d},
    {.name = "large_conv_transpose2d", .n_inputs = 3, .inputs = {IN(4, 16, 10, 10), IN(16, 8, 4, 4), IN(8)},
     .build = conv_transpose2d},
    // the U-Net's convolutions: on the CPU through the backend's conv_forward / conv_backward (oneDNN where the
    // build has it; the arenas then differ by the GPU's column scratch and only values are compared), on the
    // GPU as im2col + cuBLAS
    {.name = "unet_conv2d_64ch", .n_inputs = 3, .inputs = {IN(4, 64, 8, 8), IN(64, 64, 3, 3), IN(64)},
     .build = conv2d},
    {.name = "unet_conv_transpose2d_k2s2", .n_inputs = 3, .inputs = {IN(4, 128, 4, 4), IN(128, 64, 2, 2), IN(64)},
     .build = conv_transpose2d_k2s2},
    {.name = "large_max_pool_overlap", .n_inputs = 1, .inputs = {IN(4, 16, 33, 33)}, .build = max_pool},
    {.name = "large_upsample", .n_inputs = 1, .inputs = {IN(4, 16, 20, 20)}, .build = upsample},
    {.name = "large_attention_causal", .n_inputs = 3, .inputs = {IN(2, 4, 64, 32), IN(2, 4, 64, 32), IN(2, 4, 64, 32)},
     .build = attention_causal},
    {.name = "large_dropout", .n_inputs = 1, .inputs = {IN(300, 500)}, .build = dropout},
};

// ---------------------------------------------------------------------------------------------------
// one case on one device

typedef struct case_run {
    float *out;                          // (out numel)
    int64_t out_n;
    float *grad[ND_NODE_MAX_INPUTS];     // (input numel) each, NULL for inputs without a gradient
    uint32_t *arena;                     // the step arena up to its peak, as bits
    size_t arena_words;
    bool overflowed;                     // the arena spilled into extra blocks, which the guards miss
} case_run;

// An input of the case's fill kind, drawn on the host so both devices start from the same bits. Fills that
// only shape values for finite differences (away from 0, distinct maxima) are plain N(0, 1) here: parity
// needs the same numbers on both devices, not well-conditioned differences.
static float *make_input(const gc_input *in, uint64_t offset) {
    int64_t n = nd_shape_numel(in->shape);
    float *host = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        if (in->fill == GC_FILL_POSITIVE) host[i] = 0.5f + 1.5f * nd_philox_uniform(SEED, offset, i);
        else if (in->fill == GC_FILL_CLASSES)
            host[i] = fminf(floorf(in->classes * nd_philox_uniform(SEED, offset, i)), (float)(in->classes - 1));
        else host[i] = nd_philox_normal(SEED, offset, i);
    }
    return host;
}

// R of loss = sum(out * R): N(0, 1) from counters of its own, the same on both devices.
static float *make_projection(int64_t n) {
    float *host = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) host[i] = nd_philox_normal(SEED, PROJECTION_OFFSET, i);
    return host;
}

// Builds the case on `device` from the host inputs, runs backward of sum(out * R), downloads everything.
static case_run run_case(nd_device device, const gc_case *c, float *const *inputs) {
    case_run run = {0};
    nd_ctx ctx;
    nd_ctx_init(&ctx, device, ARENA_BYTES, SEED);
    uint32_t *guard = malloc(ctx.step.data_cap);
    for (size_t i = 0; i < ctx.step.data_cap / sizeof(uint32_t); i++) guard[i] = GUARD_BITS;
    ctx.be->upload(ctx.step.data, guard, ctx.step.data_cap);
    free(guard);

    // inputs and their gradients in the step arena too, inside the guarded block
    nd_tensor *in[ND_NODE_MAX_INPUTS];
    for (int i = 0; i < c->n_inputs; i++) {
        in[i] = nd_empty(&ctx, c->inputs[i].shape);
        nd_copy_from_host(&ctx, in[i], inputs[i]);
        if (c->inputs[i].fill != GC_FILL_CLASSES) nd_requires_grad(&ctx, in[i], false);
    }
    nd_tensor *out = c->build(&ctx, in);
    run.out_n = out->numel;
    run.out = malloc((size_t)(out->numel ? out->numel : 1) * sizeof(float));
    nd_copy_to_host(&ctx, out, run.out);
    if (out->requires_grad) {
        float *proj = make_projection(out->numel);
        nd_tensor *r = nd_from_host(&ctx, out->shape, proj);
        nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, out, r)));
        free(proj);
    }
    for (int i = 0; i < c->n_inputs; i++) {
        if (!in[i]->grad) continue;
        run.grad[i] = malloc((size_t)(in[i]->numel ? in[i]->numel : 1) * sizeof(float));
        nd_grad_to_host(&ctx, in[i], run.grad[i]);
    }
    run.overflowed = ctx.step.overflow != NULL;
    size_t used = ctx.step.data_peak < ctx.step.data_cap ? ctx.step.data_peak : ctx.step.data_cap;
    run.arena_words = used / sizeof(uint32_t);
    run.arena = malloc(used ? used : 1);
    ctx.be->download(run.arena, ctx.step.data, used);
    nd_ctx_free(&ctx);
    return run;
}

static void case_run_free(case_run *run) {
    free(run->out);
    for (int i = 0; i < ND_NODE_MAX_INPUTS; i++) free(run->grad[i]);
    free(run->arena);
}

// sum (gpu - cpu)^2 / sum cpu^2 over the pairs where both are finite; *nonfinite counts the other pairs.
static double nmse(const float *gpu, const float *cpu, int64_t n, int64_t *nonfinite) {
    double err = 0.0, ref = 0.0;
    *nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(gpu[i]) || !isfinite(cpu[i])) {
            (*nonfinite)++;
            continue;
        }
        double d = (double)gpu[i] - cpu[i];
        err += d * d;
        ref += (double)cpu[i] * cpu[i];
    }
    return ref > 0.0 ? err / ref : err > 0.0 ? INFINITY : 0.0;
}

typedef struct arena_diff {
    int64_t stray, missing, nonfinite_mismatch; // GPU wrote where the CPU did not; and the reverse
    int64_t first_stray, first_missing;         // float offsets in the arena, -1 when none
    double nmse;                                 // over everything both wrote (finite on both)
} arena_diff;

static bool same_nonfinite(float a, float b) { return isnan(a) ? isnan(b) : a == b; }

// Both arenas saw the same allocations, so each float offset holds the same buffer on both devices.
static arena_diff compare_arena(const case_run *gpu, const case_run *cpu) {
    arena_diff d = {.first_stray = -1, .first_missing = -1};
    double err = 0.0, ref = 0.0;
    for (size_t i = 0; i < cpu->arena_words; i++) {
        bool cpu_wrote = cpu->arena[i] != GUARD_BITS, gpu_wrote = gpu->arena[i] != GUARD_BITS;
        if (gpu_wrote && !cpu_wrote && d.stray++ == 0) d.first_stray = (int64_t)i;
        if (cpu_wrote && !gpu_wrote && d.missing++ == 0) d.first_missing = (int64_t)i;
        if (!cpu_wrote || !gpu_wrote) continue;
        float a, b;
        memcpy(&a, &gpu->arena[i], sizeof a);
        memcpy(&b, &cpu->arena[i], sizeof b);
        if (!isfinite(a) || !isfinite(b)) {
            if (!same_nonfinite(a, b)) d.nonfinite_mismatch++;
            continue;
        }
        err += ((double)a - b) * ((double)a - b);
        ref += (double)b * b;
    }
    d.nmse = ref > 0.0 ? err / ref : err > 0.0 ? INFINITY : 0.0;
    return d;
}

// Checks the GPU's run of a case against the CPU's: output, every input gradient, the arena.
static void compare_runs(const gc_case *c, const case_run *cpu, const case_run *gpu) {
    const char *name = c->name;
    CHECK(!cpu->overflowed && !gpu->overflowed,
          "%s: the step arena outgrew %zu MiB, past the guards: raise ARENA_BYTES", name, ARENA_BYTES >> 20);
    CHECK(cpu->out_n == gpu->out_n, "%s: output sizes differ: cpu %lld, gpu %lld", name, (long long)cpu->out_n,
          (long long)gpu->out_n);
    if (cpu->out_n != gpu->out_n) return;
    int64_t nonfinite;
    double e = nmse(gpu->out, cpu->out, cpu->out_n, &nonfinite), worst = e;
    CHECK(nonfinite == 0, "%s: %lld output values are NaN or Inf", name, (long long)nonfinite);
    CHECK(e <= PARITY_NMSE, "%s: output nmse %.3g > %.1g", name, e, PARITY_NMSE);
    for (int i = 0; i < c->n_inputs; i++) {
        CHECK(!cpu->grad[i] == !gpu->grad[i], "%s: input %d has a gradient on one device only", name, i);
        if (!cpu->grad[i] || !gpu->grad[i]) continue;
        e = nmse(gpu->grad[i], cpu->grad[i], nd_shape_numel(c->inputs[i].shape), &nonfinite);
        CHECK(nonfinite == 0, "%s: %lld values of input %d's gradient are NaN or Inf", name, (long long)nonfinite, i);
        CHECK(e <= PARITY_NMSE, "%s: gradient of input %d: nmse %.3g > %.1g", name, i, e, PARITY_NMSE);
        if (e > worst) worst = e;
    }
    if (cpu->arena_words != gpu->arena_words) {
        // a device-specific allocation (none today) would misalign the two arenas: say so, check the rest
        printf("note: %s: the devices allocated differently (%zu vs %zu floats); arena guards skipped\n", name,
               cpu->arena_words, gpu->arena_words);
    } else {
        arena_diff d = compare_arena(gpu, cpu);
        CHECK(d.stray == 0, "%s: the GPU wrote %lld floats the CPU left untouched (first at arena float %lld): an "
              "out-of-bounds write", name, (long long)d.stray, (long long)d.first_stray);
        CHECK(d.missing == 0, "%s: the GPU left %lld floats unwritten that the CPU wrote (first at arena float %lld)",
              name, (long long)d.missing, (long long)d.first_missing);
        CHECK(d.nonfinite_mismatch == 0, "%s: %lld arena values are NaN or Inf on one device only", name,
              (long long)d.nonfinite_mismatch);
        CHECK(d.nmse <= PARITY_NMSE, "%s: intermediate buffers differ: arena nmse %.3g > %.1g", name, d.nmse,
              PARITY_NMSE);
        if (d.nmse > worst) worst = d.nmse;
    }
    printf("parity %-34s worst nmse %.2e over %lld outputs, arena %zu KiB\n", name, worst, (long long)cpu->out_n,
           cpu->arena_words * sizeof(uint32_t) / 1024);
}

// Runs one case on both devices from the same inputs and compares.
static void check_case(const gc_case *c) {
    float *inputs[ND_NODE_MAX_INPUTS];
    for (int i = 0; i < c->n_inputs; i++) inputs[i] = make_input(&c->inputs[i], (uint64_t)(i + 1) << 32);
    case_run cpu = run_case(ND_CPU, c, inputs), gpu = run_case(ND_CUDA, c, inputs);
    compare_runs(c, &cpu, &gpu);
    for (int i = 0; i < c->n_inputs; i++) free(inputs[i]);
    case_run_free(&cpu);
    case_run_free(&gpu);
}

// ---------------------------------------------------------------------------------------------------
// random draws and optimizer updates, straight through the two backend tables

// Copies n floats of device memory of `be` to a new host buffer.
static float *fetch(const nd_backend *be, const float *src, int64_t n) {
    float *host = malloc((size_t)n * sizeof(float));
    be->download(host, src, (size_t)n * sizeof(float));
    return host;
}

static void check_rng(void) {
    const nd_backend *backends[2] = {nd_backend_cpu(), nd_backend_cuda()};
    // past ND_CUDA_MAX_BLOCKS * ND_CUDA_BLOCK = 4194304 elements, so the grid-stride loop turns; odd, so the
    // last Philox block is partial
    const int64_t n = 5000011;
    const uint64_t seed = 0x0123456789abcdefull, offset = 12345;
    float *draws[3][2];
    for (int d = 0; d < 2; d++) {
        const nd_backend *be = backends[d];
        float *buf = be->alloc((size_t)n * sizeof(float));
        be->rand_uniform(buf, n, seed, offset, -1.5f, 2.5f);
        draws[0][d] = fetch(be, buf, n);
        be->rand_bernoulli(buf, n, seed, offset + 7, 0.3f);
        draws[1][d] = fetch(be, buf, n);
        be->rand_normal(buf, n, seed, offset + 99, 0.5f, 2.0f);
        draws[2][d] = fetch(be, buf, n);
        be->free(buf);
    }
    const char *names[2] = {"uniform", "bernoulli"};
    for (int k = 0; k < 2; k++) {
        int64_t differ = 0;
        for (int64_t i = 0; i < n; i++) differ += memcmp(&draws[k][0][i], &draws[k][1][i], sizeof(float)) != 0;
        CHECK(differ == 0, "rand_%s: %lld of %lld draws differ from the CPU's bits", names[k], (long long)differ,
              (long long)n);
    }
    // Normal draws go through logf and cosf, which CUDA computes within 1 and 2 ulp and glibc within 1: a few
    // ulp apart, so not bit-identical. 1e-5 relative is ~100 ulp of slack; a wrong counter or Box-Muller
    // pairing would differ by O(1).
    int64_t beyond = 0, equal = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = draws[2][1][i], b = draws[2][0][i];
        equal += a == b;
        beyond += !(fabsf(a - b) <= 1e-5f * fmaxf(fabsf(b), 1.0f));
    }
    CHECK(beyond == 0, "rand_normal: %lld of %lld draws differ from the CPU's by more than 1e-5 relative",
          (long long)beyond, (long long)n);
    printf("rng: %lld uniform and bernoulli draws bit-identical, normal %.4f%% bit-identical\n", (long long)n,
           100.0 * (double)equal / (double)n);
    for (int k = 0; k < 3; k++)
        for (int d = 0; d < 2; d++) free(draws[k][d]);
}

// Three Adam steps (then three EMA steps) over n parameters on backend `be`; results to the host arrays.
static void run_optimizers(const nd_backend *be, int64_t n, const float *param0, float *const *grads, bool decoupled,
                           float *param, float *m, float *v, float *ema) {
    size_t bytes = (size_t)n * sizeof(float);
    float *d_param = be->alloc(bytes), *d_m = be->alloc(bytes), *d_v = be->alloc(bytes), *d_grad = be->alloc(bytes);
    float *d_ema = be->alloc(bytes);
    be->upload(d_param, param0, bytes);
    be->upload(d_ema, param0, bytes);
    be->fill(d_m, 0.0f, n);
    be->fill(d_v, 0.0f, n);
    const float beta1 = 0.9f, beta2 = 0.999f;
    for (int step = 1; step <= 3; step++) {
        be->upload(d_grad, grads[step - 1], bytes);
        be->adam_update(d_param, d_m, d_v, d_grad, n, 1e-3f, beta1, beta2, 1e-8f, 0.01f, decoupled,
                        1.0f - powf(beta1, (float)step), 1.0f - powf(beta2, (float)step));
        be->ema_update(d_ema, d_param, 0.99f, n);
    }
    be->download(param, d_param, bytes);
    be->download(m, d_m, bytes);
    be->download(v, d_v, bytes);
    be->download(ema, d_ema, bytes);
    float *buffers[5] = {d_param, d_m, d_v, d_grad, d_ema};
    for (int k = 0; k < 5; k++) be->free(buffers[k]);
}

// Compared as updates (result - start): the parameters themselves agree to ~1e-14 whatever the update does.
static void check_optimizers(void) {
    const int64_t n = 100003;
    gc_input shape = {.shape = {.ndim = 1, .d = {n}}};
    float *param0 = make_input(&shape, 1), *grads[3];
    for (int k = 0; k < 3; k++) grads[k] = make_input(&shape, 2 + (uint64_t)k);
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        float *out[2][4]; // [device][param, m, v, ema]
        for (int d = 0; d < 2; d++) {
            for (int k = 0; k < 4; k++) out[d][k] = malloc((size_t)n * sizeof(float));
            run_optimizers(d ? nd_backend_cuda() : nd_backend_cpu(), n, param0, grads, decoupled, out[d][0],
                           out[d][1], out[d][2], out[d][3]);
            for (int64_t i = 0; i < n; i++) out[d][0][i] -= param0[i], out[d][3][i] -= param0[i];
        }
        const char *names[4] = {"parameter update", "first moment", "second moment", "ema update"};
        for (int k = 0; k < 4; k++) {
            int64_t nonfinite;
            double e = nmse(out[1][k], out[0][k], n, &nonfinite);
            CHECK(nonfinite == 0 && e <= PARITY_NMSE, "%s (%s): nmse %.3g, %lld non-finite",
                  decoupled ? "adamw" : "adam", names[k], e, (long long)nonfinite);
        }
        printf("optimizer %s: parameter update nmse %.2e\n", decoupled ? "adamw" : "adam",
               nmse(out[1][0], out[0][0], n, &(int64_t){0}));
        for (int d = 0; d < 2; d++)
            for (int k = 0; k < 4; k++) free(out[d][k]);
    }
    free(param0);
    for (int k = 0; k < 3; k++) free(grads[k]);
}

// With case names as arguments, runs only those (of the registry or the large set).
static const gc_case *find_case(const char *name) {
    const gc_case *c = gc_find(name);
    for (size_t i = 0; !c && i < sizeof large_cases / sizeof large_cases[0]; i++)
        if (strcmp(large_cases[i].name, name) == 0) c = &large_cases[i];
    return c;
}

int main(int argc, char **argv) {
    char text[512];
    if (!nd_cuda_available(text, sizeof text)) {
        printf("cuda.parity: skipped: %s\n", text);
        return ND_TEST_SKIP;
    }
    nd_cuda_set_tf32(false);
    nd_cuda_describe(text, sizeof text);
    printf("cuda.parity on %s\n", text);
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            const gc_case *c = find_case(argv[i]);
            CHECK(c != NULL, "no case named \"%s\"", argv[i]);
            if (c) check_case(c);
        }
        return test_finish("cuda.parity");
    }
    for (int i = 0; i < gc_count(); i++) check_case(gc_at(i));
    for (size_t i = 0; i < sizeof large_cases / sizeof large_cases[0]; i++) check_case(&large_cases[i]);
    check_rng();
    check_optimizers();
    return test_finish("cuda.parity");
}
