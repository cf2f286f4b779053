// An MLP classifier (Linear -> ReLU -> Linear -> ReLU -> Linear) trained with Adam and cross-entropy.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nn.h"
#include "train.h"

nd_classifier_config nd_classifier_defaults(void) {
    return (nd_classifier_config){.data = "fashion-mnist",
                                  .epochs = 3,
                                  .batch_size = 128,
                                  .hidden = 256,
                                  .lr = 1e-3f,
                                  .seed = 0,
                                  .device = ND_CPU,
                                  .progress = true};
}

typedef struct mlp {
    nd_linear_layer fc[3];
} mlp;

// x (B, D) -> logits (B, classes)
static nd_tensor *mlp_forward(nd_ctx *ctx, const mlp *m, nd_tensor *x) {
    nd_tensor *h = nd_relu(ctx, nd_linear_layer_forward(ctx, &m->fc[0], x));
    h = nd_relu(ctx, nd_linear_layer_forward(ctx, &m->fc[1], h));
    return nd_linear_layer_forward(ctx, &m->fc[2], h);
}

static void labels_to_float(float *dst, const int32_t *labels, int n) {
    for (int i = 0; i < n; i++) dst[i] = (float)labels[i];
}

static double evaluate(nd_ctx *ctx, const mlp *m, const nd_dataset *test, int batch_size) {
    nd_loader_config lc = {.batch_size = batch_size, .seed = 0};
    int64_t batches = nd_batches_per_epoch(test->n, batch_size, false), correct = 0;
    int64_t dim = (int64_t)test->c * test->h * test->w, classes = m->fc[2].out_features;
    float *images = nd_xmalloc((size_t)batch_size * (size_t)dim * sizeof(float));
    int32_t *labels = nd_xmalloc((size_t)batch_size * sizeof(int32_t));
    float *logits = nd_xmalloc((size_t)batch_size * (size_t)classes * sizeof(float));
    int64_t *order = nd_xmalloc((size_t)test->n * sizeof(int64_t));
    for (int64_t i = 0; i < test->n; i++) order[i] = i;
    bool grad = nd_ctx_set_grad(ctx, false);
    for (int64_t b = 0; b < batches; b++) {
        nd_batch batch = {.images = images, .labels = labels};
        nd_batch_fill(&batch, test, &lc, order, 0, b);
        nd_tensor *x = nd_from_host(ctx, ND_SHAPE(batch.size, dim), images);
        nd_tensor *out = mlp_forward(ctx, m, x);
        nd_copy_to_host(ctx, out, logits);
        for (int i = 0; i < batch.size; i++) {
            int best = 0;
            for (int k = 1; k < classes; k++)
                if (logits[i * classes + k] > logits[i * classes + best]) best = k;
            correct += best == labels[i];
        }
        nd_ctx_step_end(ctx);
    }
    nd_ctx_set_grad(ctx, grad);
    free(images);
    free(labels);
    free(logits);
    free(order);
    return (double)correct / (double)test->n;
}

bool nd_classifier_train(const nd_classifier_config *cfg, nd_classifier_result *result, nd_error *err) {
    nd_dataset train = {0}, test = {0};
    if (!nd_dataset_load(&train, cfg->data, ND_SPLIT_TRAIN, err)) return false;
    if (!nd_dataset_load(&test, cfg->data, ND_SPLIT_TEST, err)) {
        nd_dataset_free(&train);
        return false;
    }
    if (train.num_classes < 2 || test.c != train.c || test.h != train.h || test.w != train.w) {
        nd_error_set(err, "%s: a classifier needs labelled train and test splits of the same image size", cfg->data);
        nd_dataset_free(&train);
        nd_dataset_free(&test);
        return false;
    }
    int64_t dim = (int64_t)train.c * train.h * train.w;
    nd_ctx ctx;
    nd_ctx_init(&ctx, cfg->device, 16 << 20, cfg->seed);
    nd_params params;
    nd_params_init(&params);
    mlp m;
    nd_linear_layer_init(&m.fc[0], &params, "fc.0", dim, cfg->hidden, true);
    nd_linear_layer_init(&m.fc[1], &params, "fc.2", cfg->hidden, cfg->hidden, true);
    nd_linear_layer_init(&m.fc[2], &params, "fc.4", cfg->hidden, train.num_classes, true);
    nd_params_alloc(&params, &ctx);
    nd_adam_config ac = nd_adam_defaults();
    ac.lr = cfg->lr;
    nd_adam opt;
    nd_adam_init(&opt, &params, &ctx, ac);

    nd_loader_config lc = {.batch_size = cfg->batch_size, .shuffle = true, .drop_last = true, .seed = cfg->seed};
    nd_loader *loader = nd_loader_create(&train, &lc, 0, 0, err);
    bool ok = loader != NULL;
    int64_t per_epoch = ok ? nd_loader_batches_per_epoch(loader) : 0, steps = per_epoch * cfg->epochs;
    float *labels = nd_xmalloc((size_t)cfg->batch_size * sizeof(float));
    nd_progress progress;
    nd_progress_init(&progress, "classifier", steps, 0);
    double start = nd_seconds(), epoch_loss = 0.0;
    for (int64_t step = 0; ok && step < steps; step++) {
        const nd_batch *batch = nd_loader_next(loader);
        if (step % per_epoch == 0) epoch_loss = 0.0;
        nd_tensor *x = nd_from_host(&ctx, ND_SHAPE(batch->size, dim), batch->images);
        labels_to_float(labels, batch->labels, batch->size);
        nd_tensor *y = nd_from_host(&ctx, ND_SHAPE(batch->size), labels);
        nd_tensor *loss = nd_cross_entropy(&ctx, mlp_forward(&ctx, &m, x), y);
        nd_backward(&ctx, loss);
        nd_adam_step(&opt, &params, &ctx);
        nd_params_zero_grad(&params, &ctx);
        double value = nd_item(&ctx, loss);
        epoch_loss += value;
        nd_ctx_step_end(&ctx);
        if (cfg->progress) nd_progress_update(&progress, step, step / per_epoch, cfg->epochs, value, batch->size);
    }
    if (ok) {
        result->seconds = nd_seconds() - start;
        result->last_loss = per_epoch ? epoch_loss / (double)per_epoch : NAN;
        result->parameters = params.total;
        result->test_accuracy = evaluate(&ctx, &m, &test, 1000);
    }
    free(labels);
    if (loader) nd_loader_free(loader);
    nd_adam_free(&opt);
    nd_params_free(&params);
    nd_ctx_free(&ctx);
    nd_dataset_free(&train);
    nd_dataset_free(&test);
    return ok;
}
