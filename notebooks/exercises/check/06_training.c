// Checks the assessment's training blanks: c_drop_prob, the mask's keep rate, the labels, and the loss.
#include "check.h"

static bool check(nd_ctx *ctx) {
    bool ok = true;
    if (fabsf(ex_c_drop_prob - 0.1f) > 1e-6f)
        ok = ck_fail("c_drop_prob = %g: the course drops 10%% of the labels (0.1), so the model also learns the "
                     "unconditional prediction guidance needs", ex_c_drop_prob);
    enum { N = 4000, K = 10 };
    static float onehot[N * K];
    for (int i = 0; i < N; i++) onehot[i * K + i % K] = 1.0f;
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(N, K), onehot);
    nd_tensor *masked = ex_get_context_mask(ctx, c, 0.1f);
    if (ck_shape("get_context_mask's result", masked, c->shape)) {
        float *h = ck_host(ctx, masked);
        int kept = 0;
        for (int i = 0; i < N * K; i++) kept += h[i] != 0.0f;
        if (fabs(kept / (double)N - 0.9) > 0.03) // 4000 labels: the kept fraction's std is 0.005
            ok = ck_fail("get_context_mask(c, 0.1) kept %.1f%% of the labels, expected about 90%% (bernoulli of "
                         "1 - drop_prob)", 100.0 * kept / N);
        free(h);
    } else {
        ok = false;
    }
    int32_t labels[2] = {3, 5};
    nd_batch batch = {.labels = labels, .size = 2};
    if (ex_batch_labels(&batch) != labels) ok = ck_fail("the batch's labels are batch->labels (batch[1] in PyTorch)");

    nd_model model;
    ck_tiny_model(ctx, &model, 10);
    nd_schedule s;
    nd_schedule_linear(&s, 10, 1e-4, 0.02);
    const int t_host[2] = {2, 8};
    const float t_values[2] = {2, 8}, ctx_host[6] = {1, 0, 0, 0, 0, 1};
    nd_tensor *x0 = ck_randn(ctx, ND_SHAPE(2, 1, 8, 8)), *noise = ck_randn(ctx, ND_SHAPE(2, 1, 8, 8));
    nd_tensor *t = nd_from_host(ctx, ND_SHAPE(2), t_values), *context = nd_from_host(ctx, ND_SHAPE(2, 3), ctx_host);
    nd_tensor *loss = ex_get_loss(ctx, &model, &s, x0, t_host, t, noise, context);
    nd_tensor *pred = nd_model_forward(ctx, &model, nd_schedule_q(ctx, &s, x0, noise, t_host), t, context, true);
    nd_tensor *want = nd_mse_loss(ctx, noise, pred);
    if (!ck_shape("the loss", loss, want->shape)) {
        ok = false;
    } else if (!ck_close_to(ctx, loss, want, 1e-5)) {
        if (ck_close_to(ctx, loss, nd_mse_loss(ctx, x0, pred), 1e-5))
            ck_fail("your loss compares the prediction with x_0: the model predicts the noise");
        ok = ck_close(ctx, "the loss", loss, want, 1e-5);
    }
    nd_schedule_free(&s);
    nd_model_free(&model);
    return ok;
}
