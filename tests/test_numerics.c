// Non-finite values: every activation lets a NaN through (forward) and passes the gradient where PyTorch does
// (backward), so a diverged network cannot hide behind a finite loss; --check-numerics names the first op
// whose output is not finite.
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "test.h"

// torch.relu(nan) = nan, and threshold_backward cuts the gradient only where the output is <= 0, so a NaN
// input passes its gradient through; -1 and 2 are the ordinary cases beside it.
static void test_relu_propagates_nan(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    float values[3] = {NAN, -1.0f, 2.0f};
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(3), values); // (3)
    nd_requires_grad(&ctx, x, false);
    nd_tensor *y = nd_relu(&ctx, x); // (3)
    float out[3], grad[3];
    nd_copy_to_host(&ctx, y, out);
    CHECK(isnan(out[0]), "relu(nan) = %g, want nan (torch.relu propagates NaN)", out[0]);
    CHECK(out[1] == 0.0f && out[2] == 2.0f, "relu(-1), relu(2) = %g, %g", out[1], out[2]);
    nd_tensor *weights = nd_from_host(&ctx, ND_SHAPE(3), (float[]){3.0f, 3.0f, 3.0f}); // (3)
    nd_backward(&ctx, nd_sum_all(&ctx, nd_mul(&ctx, nd_relu(&ctx, x), weights)));
    nd_grad_to_host(&ctx, x, grad);
    CHECK(grad[0] == 3.0f, "d relu/dx at nan passes the gradient (threshold_backward): got %g, want 3", grad[0]);
    CHECK(grad[1] == 0.0f && grad[2] == 3.0f, "d relu/dx at -1, 2 = %g, %g, want 0, 3", grad[1], grad[2]);
    nd_ctx_free(&ctx);
}

// Every other activation and unary op: NaN in, NaN out.
static void test_unary_ops_propagate_nan(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    nd_unary_kind kinds[] = {ND_UNARY_GELU, ND_UNARY_SILU, ND_UNARY_SIGMOID, ND_UNARY_TANH, ND_UNARY_EXP,
                             ND_UNARY_SQUARE, ND_UNARY_NEG, ND_UNARY_SIN};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(2), (float[]){NAN, 0.5f}); // (2)
        float out[2];
        nd_copy_to_host(&ctx, nd_unary_at(&ctx, kinds[k], x, 0.0f, 0.0f, ND_HERE), out);
        CHECK(isnan(out[0]) && isfinite(out[1]), "%s(nan, 0.5) = (%g, %g), want (nan, finite)",
              nd_unary_name(kinds[k]), out[0], out[1]);
    }
    nd_ctx_free(&ctx);
}

// --check-numerics: the first op whose output holds a NaN or inf is named, later ones do not replace it.
static void test_check_numerics(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 0);
    ctx.check_numerics = true;
    nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(2), (float[]){-1.0f, 1.0f}); // (2)
    nd_tensor *y = nd_exp(&ctx, nd_mul(&ctx, x, x));                      // (2) finite
    CHECK(ctx.numerics_first[0] == '\0', "finite outputs flagged: %s", ctx.numerics_first);
    nd_tensor *z = nd_log(&ctx, nd_neg(&ctx, y)); // (2) log of negatives: nan
    nd_relu(&ctx, nd_sqrt(&ctx, z));
    CHECK(strstr(ctx.numerics_first, "log") && strstr(ctx.numerics_first, "nan") &&
              strstr(ctx.numerics_first, "op 4 "),
          "the first non-finite output is log's, the 4th op: got \"%s\"", ctx.numerics_first);
    nd_ctx_free(&ctx);
}

int main(void) {
    test_relu_propagates_nan();
    test_unary_ops_propagate_nan();
    test_check_numerics();
    return test_finish("numerics");
}
