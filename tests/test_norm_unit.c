// Unit tests of the norm and attention ops beyond their gradient checks: batch norm's running statistics
// against PyTorch (fixture tensors batch_norm2d_running/* in norm.ndfx), group norm with its activation
// in one op against the two ops it replaces, and the shape errors of every op.
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test.h"

// A running statistic is one blend of float32 values computed from a float64 reference: a few ulps.
#define RUNNING_ATOL 1e-6
#define RUNNING_RTOL 1e-5

static void compare(const char *what, const float *got, const fx_tensor *want) {
    long long worst;
    double v = test_max_violation(got, want->data, want->numel, RUNNING_ATOL, RUNNING_RTOL, &worst);
    printf("batch norm %s (%lld values): %.3f of tolerance\n", what, (long long)want->numel, v);
    CHECK(v <= 1.0, "%s differs from PyTorch (worst at %lld: %g vs %g)", what, worst, worst >= 0 ? got[worst] : 0.0,
          worst >= 0 ? want->data[worst] : 0.0);
}

static void test_running_statistics(const char *path) {
    fx_file f;
    if (!fx_load(&f, path)) {
        CHECK(false, "cannot load %s", path);
        return;
    }
    const fx_tensor *x = fx_get(&f, "batch_norm2d_running/x"), *mean_in = fx_get(&f, "batch_norm2d_running/mean_in");
    const fx_tensor *var_in = fx_get(&f, "batch_norm2d_running/var_in");
    const fx_tensor *mean_out = fx_get(&f, "batch_norm2d_running/mean_out");
    const fx_tensor *var_out = fx_get(&f, "batch_norm2d_running/var_out");
    if (!x || !mean_in || !var_in || !mean_out || !var_out) {
        CHECK(false, "%s lacks the batch_norm2d_running tensors (regenerate the fixtures)", path);
        fx_free(&f);
        return;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_tensor *input = nd_from_host(&ctx, x->shape, x->data);            // (N, C, H, W)
    nd_tensor *running_mean = nd_empty_persistent(&ctx, mean_in->shape); // (C,)
    nd_tensor *running_var = nd_empty_persistent(&ctx, var_in->shape);   // (C,)
    nd_copy_from_host(&ctx, running_mean, mean_in->data);
    nd_copy_from_host(&ctx, running_var, var_in->data);
    // momentum 0.1 and eps 1e-5, as make_fixtures.py (nn.BatchNorm2d's defaults)
    nd_batch_norm2d(&ctx, input, NULL, NULL, running_mean, running_var, true, 0.1f, 1e-5f);
    compare("running_mean after a training forward", running_mean->data, mean_out);
    compare("running_var after a training forward (unbiased)", running_var->data, var_out);
    nd_batch_norm2d(&ctx, input, NULL, NULL, running_mean, running_var, false, 0.1f, 1e-5f);
    compare("running_mean after an eval forward (unchanged)", running_mean->data, mean_out);
    compare("running_var after an eval forward (unchanged)", running_var->data, var_out);
    nd_ctx_free(&ctx);
    fx_free(&f);
}

// ---------------------------------------------------------------------------------------------------
// group norm with its activation

// The output and the gradients of x, weight and bias of sum(act(group_norm(x)) * r), fused or as two ops;
// also the step arena's bytes after the forward.
static void group_norm_act_run(nd_unary_kind act, bool fused, float **out, size_t *forward_bytes) {
    const int64_t shape[4] = {2, 64, 8, 8}; // a GELUConvBlock's: 32 groups of 2 channels
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 11); // same seed: same inputs both ways
    nd_tensor *in[3] = {nd_empty(&ctx, nd_shape_from(shape, 4)), nd_empty(&ctx, ND_SHAPE(64)),
                        nd_empty(&ctx, ND_SHAPE(64))};
    for (int i = 0; i < 3; i++) {
        nd_rand_normal(&ctx, in[i], 0.0f, 1.0f);
        nd_requires_grad(&ctx, in[i], false);
    }
    size_t before = ctx.step.data_used;
    nd_tensor *y = fused ? nd_group_norm_act(&ctx, in[0], 32, in[1], in[2], 1e-5f, act)
                         : nd_unary_at(&ctx, act, nd_group_norm(&ctx, in[0], 32, in[1], in[2], 1e-5f), 0.0f, 0.0f,
                                       ND_HERE);
    *forward_bytes = ctx.step.data_used - before;
    nd_tensor *r = nd_empty(&ctx, y->shape);
    nd_rand_normal(&ctx, r, 0.0f, 1.0f);
    nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, y, r)));
    nd_tensor *values[4] = {y, in[0], in[1], in[2]};
    for (int i = 0; i < 4; i++) {
        out[i] = malloc((size_t)values[i]->numel * sizeof(float));
        if (i == 0)
            nd_copy_to_host(&ctx, y, out[0]);
        else
            nd_grad_to_host(&ctx, values[i], out[i]);
    }
    nd_ctx_free(&ctx);
}

// The fused op computes each element with the same formulas as the two ops, in the same order: outputs and
// gradients agree exactly (a zero's sign aside: the two ops add the activation's gradient to a zeroed
// buffer). Its forward keeps one activation less (the norm's output).
static void test_group_norm_act_matches_two_ops(void) {
    const nd_unary_kind acts[] = {ND_UNARY_GELU, ND_UNARY_SILU, ND_UNARY_RELU, ND_UNARY_TANH};
    const char *what[4] = {"output", "x gradient", "weight gradient", "bias gradient"};
    const int64_t sizes[4] = {2 * 64 * 8 * 8, 2 * 64 * 8 * 8, 64, 64};
    for (int k = 0; k < 4; k++) {
        float *fused[4], *two[4];
        size_t fused_bytes, two_bytes;
        group_norm_act_run(acts[k], true, fused, &fused_bytes);
        group_norm_act_run(acts[k], false, two, &two_bytes);
        for (int i = 0; i < 4; i++) {
            long long worst;
            CHECK(test_max_violation(fused[i], two[i], sizes[i], 0.0, 0.0, &worst) == 0.0,
                  "nd_group_norm_act with %s: %s differs from the two ops' (at %lld)", nd_unary_name(acts[k]), what[i],
                  worst);
            free(fused[i]);
            free(two[i]);
        }
        size_t activation = (size_t)sizes[0] * sizeof(float);
        CHECK(fused_bytes + activation <= two_bytes, "fused forward kept %zu bytes, the two ops %zu", fused_bytes,
              two_bytes);
    }
}

// ---------------------------------------------------------------------------------------------------
// shape errors: each must abort naming the op and both shapes (or the shape and the bad number)

static nd_ctx err_ctx;
static nd_tensor *zeros(nd_shape s) { return nd_zeros(&err_ctx, s); }

static void group_norm_act_affine(void) {
    nd_group_norm_act(&err_ctx, zeros(ND_SHAPE(2, 6, 3, 3)), 3, NULL, NULL, 1e-5f, ND_UNARY_AFFINE);
}

static void group_norm_groups(void) { nd_group_norm(&err_ctx, zeros(ND_SHAPE(2, 6, 3, 3)), 4, NULL, NULL, 1e-5f); }
static void group_norm_weight(void) {
    nd_group_norm(&err_ctx, zeros(ND_SHAPE(2, 6, 3, 3)), 3, zeros(ND_SHAPE(5)), NULL, 1e-5f);
}
static void layer_norm_bias(void) {
    nd_layer_norm(&err_ctx, zeros(ND_SHAPE(2, 3, 5)), zeros(ND_SHAPE(5)), zeros(ND_SHAPE(4)), 1e-5f);
}
static void batch_norm_rank(void) {
    nd_batch_norm2d(&err_ctx, zeros(ND_SHAPE(2, 3, 4)), NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f);
}
static void batch_norm_running(void) {
    nd_batch_norm2d(&err_ctx, zeros(ND_SHAPE(2, 3, 3, 3)), NULL, NULL, zeros(ND_SHAPE(4)), zeros(ND_SHAPE(3)), false,
                    0.1f, 1e-5f);
}
static void batch_norm_single_value(void) {
    nd_batch_norm2d(&err_ctx, zeros(ND_SHAPE(1, 3, 1, 1)), NULL, NULL, NULL, NULL, true, 0.1f, 1e-5f);
}
static void attention_dim(void) {
    nd_attention(&err_ctx, zeros(ND_SHAPE(1, 2, 3, 4)), zeros(ND_SHAPE(1, 2, 5, 6)), zeros(ND_SHAPE(1, 2, 5, 3)),
                 false);
}
static void attention_keys(void) {
    nd_attention(&err_ctx, zeros(ND_SHAPE(1, 2, 3, 4)), zeros(ND_SHAPE(1, 2, 5, 4)), zeros(ND_SHAPE(1, 2, 6, 3)),
                 false);
}
static void attention_batch(void) {
    nd_attention(&err_ctx, zeros(ND_SHAPE(1, 2, 3, 4)), zeros(ND_SHAPE(1, 3, 5, 4)), zeros(ND_SHAPE(1, 3, 5, 3)), true);
}
static void masked_fill_shape(void) { nd_masked_fill(&err_ctx, zeros(ND_SHAPE(2, 3, 4)), zeros(ND_SHAPE(4, 3)), 0.0f); }

typedef struct shape_error {
    void (*fn)(void);
    const char *expect[3]; // substrings the message must hold
} shape_error;

static void test_shape_errors(void) {
    static const shape_error cases[] = {
        {group_norm_groups, {"nd_group_norm", "(2,6,3,3)", "4 groups"}},
        {group_norm_weight, {"nd_group_norm", "(5)", "(2,6,3,3)"}},
        {group_norm_act_affine, {"nd_group_norm_act", "activation", "without parameters"}},
        {layer_norm_bias, {"nd_layer_norm", "(4)", "(2,3,5)"}},
        {batch_norm_rank, {"nd_batch_norm2d", "(2,3,4)", "(N, C, H, W)"}},
        {batch_norm_running, {"nd_batch_norm2d", "(4)", "(2,3,3,3)"}},
        {batch_norm_single_value, {"nd_batch_norm2d", "(1,3,1,1)", "more than one value"}},
        {attention_dim, {"nd_attention", "(1,2,3,4)", "(1,2,5,6)"}},
        {attention_keys, {"nd_attention", "(1,2,5,4)", "(1,2,6,3)"}},
        {attention_batch, {"nd_attention", "(1,2,3,4)", "(1,3,5,4)"}},
        {masked_fill_shape, {"nd_masked_fill", "(2,3,4)", "(4,3)"}},
    };
    nd_ctx_init(&err_ctx, ND_CPU, 1 << 16, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[2048];
        bool aborted = test_aborts_with(cases[i].fn, err, sizeof err);
        bool named = aborted;
        for (int k = 0; k < 3; k++) named = named && strstr(err, cases[i].expect[k]);
        CHECK(named && strstr(err, "test_norm_unit.c:"), "case %zu must abort with %s, %s, %s and the caller: %s", i,
              cases[i].expect[0], cases[i].expect[1], cases[i].expect[2], err);
    }
    nd_ctx_free(&err_ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_norm_unit NORM_FIXTURE_FILE\n");
        return 2;
    }
    test_running_statistics(argv[1]);
    test_group_norm_act_matches_two_ops();
    test_shape_errors();
    return test_finish("norm");
}
