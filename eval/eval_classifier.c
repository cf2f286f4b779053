// The evaluation classifier: a small CNN trained by nanodiff itself on the train split, at the image size
// and value range of the model it judges. Its logits score generated samples; its post-ReLU penultimate
// activations are the features of the Fréchet distance.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "eval.h"

// Channels of the three convolutions: with BatchNorm they reach 91% on 16x16 Fashion-MNIST in 3 epochs, where
// the two-convolution net without it stalls near 88-90%.
#define CONV1_CHANNELS 32
#define CONV2_CHANNELS 64
#define CONV3_CHANNELS 128
#define RUN_BATCH 500 // images per forward when scoring (no gradient): bounds the step arena

nd_eval_train_config nd_eval_train_defaults(void) {
    return (nd_eval_train_config){
        .epochs = 3, .batch_size = 64, .lr = 3e-3f, .seed = 0, .max_steps = 0, .progress = true};
}

// Conv(in, out, 3, padding 1) without bias (the BatchNorm after it has one) and BatchNorm2d(out).
static void conv_bn_init(nd_conv2d_layer *conv, nd_batch_norm2d_layer *bn, nd_eval_classifier *c, int index, int64_t in,
                         int64_t out) {
    char name[ND_NAME_MAX];
    nd_conv2d_layer_init(conv, &c->params, nd_module_name(name, "conv%d", index), in, out, 3, 1, 1, false);
    nd_batch_norm2d_layer_init(bn, &c->params, &c->buffers, nd_module_name(name, "bn%d", index), out);
}

void nd_eval_classifier_create(nd_eval_classifier *c, const char *data, int img_ch, int img_size, bool unit_range,
                               int classes, nd_ctx *ctx) {
    if (img_ch < 1 || img_size < 4 || classes < 2 || classes > ND_EVAL_MAX_CLASSES)
        nd_abort_at(ND_HERE, "nd_eval_classifier_create",
                    "%d channels, size %d, %d classes: expected >= 1, >= 4, "
                    "2..%d",
                    img_ch, img_size, classes, ND_EVAL_MAX_CLASSES);
    *c = (nd_eval_classifier){.img_ch = img_ch, .img_size = img_size, .unit_range = unit_range, .classes = classes};
    snprintf(c->data, sizeof c->data, "%s", data);
    int pooled = img_size / 2 / 2; // two 2x2 max pools, flooring as F.max_pool2d does
    nd_params_init(&c->params);
    nd_params_init(&c->buffers);
    conv_bn_init(&c->conv1, &c->bn1, c, 1, img_ch, CONV1_CHANNELS);
    conv_bn_init(&c->conv2, &c->bn2, c, 2, CONV1_CHANNELS, CONV2_CHANNELS);
    conv_bn_init(&c->conv3, &c->bn3, c, 3, CONV2_CHANNELS, CONV3_CHANNELS);
    nd_linear_layer_init(&c->fc1, &c->params, "fc1", (int64_t)CONV3_CHANNELS * pooled * pooled, ND_EVAL_FEATURES, true);
    nd_linear_layer_init(&c->fc2, &c->params, "fc2", ND_EVAL_FEATURES, classes, true);
    nd_params_alloc(&c->params, ctx);
    nd_params_alloc(&c->buffers, ctx);
}

void nd_eval_classifier_free(nd_eval_classifier *c) {
    nd_params_free(&c->params);
    nd_params_free(&c->buffers);
    *c = (nd_eval_classifier){0};
}

// relu(bn(conv(x))): BatchNorm on the batch's statistics when training, on the running ones otherwise.
static nd_tensor *conv_bn_relu(nd_ctx *ctx, const nd_conv2d_layer *conv, const nd_batch_norm2d_layer *bn, nd_tensor *x,
                               bool training) {
    return nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, bn, nd_conv2d_layer_forward(ctx, conv, x), training));
}

// x (B, C, S, S) -> logits (B, classes); *features receives the post-ReLU fc1 activations (B, 128).
static nd_tensor *classifier_forward(nd_ctx *ctx, const nd_eval_classifier *c, nd_tensor *x, bool training,
                                     nd_tensor **features) {
    nd_tensor *h = nd_max_pool2d(ctx, conv_bn_relu(ctx, &c->conv1, &c->bn1, x, training), 2, 2); // (B,32,S/2,S/2)
    h = nd_max_pool2d(ctx, conv_bn_relu(ctx, &c->conv2, &c->bn2, h, training), 2, 2);            // (B,64,S/4,S/4)
    h = conv_bn_relu(ctx, &c->conv3, &c->bn3, h, training);                                      // (B,128,S/4,S/4)
    h = nd_reshape(ctx, h, ND_SHAPE(x->shape.d[0], -1));                                         // (B,128 (S/4)^2)
    nd_tensor *f = nd_relu(ctx, nd_linear_layer_forward(ctx, &c->fc1, h));                       // (B, 128)
    if (features) *features = f;
    return nd_linear_layer_forward(ctx, &c->fc2, f); // (B, classes)
}

void nd_eval_classifier_run(nd_ctx *ctx, const nd_eval_classifier *c, const float *images, int64_t n, float *logits,
                            float *features) {
    int64_t image = (int64_t)c->img_ch * c->img_size * c->img_size;
    bool grad = nd_ctx_set_grad(ctx, false);
    for (int64_t first = 0; first < n; first += RUN_BATCH) {
        int64_t b = n - first < RUN_BATCH ? n - first : RUN_BATCH;
        nd_tensor *x = nd_from_host(ctx, ND_SHAPE(b, c->img_ch, c->img_size, c->img_size), images + first * image);
        nd_tensor *f = NULL;
        nd_tensor *out = classifier_forward(ctx, c, x, false, &f);
        if (logits) nd_copy_to_host(ctx, out, logits + first * c->classes);
        if (features) nd_copy_to_host(ctx, f, features + first * ND_EVAL_FEATURES);
        nd_ctx_step_end(ctx);
    }
    nd_ctx_set_grad(ctx, grad);
}

bool nd_eval_classifier_train(nd_eval_classifier *c, const nd_dataset *train, const nd_eval_train_config *cfg,
                              nd_ctx *ctx, double *seconds, nd_error *err) {
    if (train->c != c->img_ch || train->h != c->img_size || train->w != c->img_size || !train->labels ||
        train->num_classes != c->classes)
        return nd_error_set(err,
                            "%s: training images %dx%dx%d with %d classes; the classifier takes %dx%dx%d, %d "
                            "classes",
                            c->data, train->c, train->h, train->w, train->num_classes, c->img_ch, c->img_size,
                            c->img_size, c->classes);
    nd_adam_config ac = nd_adam_defaults();
    ac.lr = cfg->lr;
    nd_adam opt;
    nd_adam_init(&opt, &c->params, ctx, ac);
    nd_loader_config lc = {.batch_size = cfg->batch_size,
                           .shuffle = true,
                           .drop_last = true,
                           .random_flip = c->random_flip,
                           .unit_range = c->unit_range,
                           .seed = cfg->seed};
    nd_loader *loader = nd_loader_create(train, &lc, 0, 0, err);
    int64_t per_epoch = nd_batches_per_epoch(train->n, cfg->batch_size, true);
    int64_t steps = cfg->max_steps > 0 ? cfg->max_steps : per_epoch * cfg->epochs;
    bool ok = loader != NULL;
    if (ok && per_epoch == 0)
        ok = nd_error_set(err, "%s: %lld images make no full batch of %d", c->data, (long long)train->n,
                          cfg->batch_size);
    float *labels = nd_xmalloc((size_t)cfg->batch_size *
                               sizeof(float)); // (B) class indices as cross_entropy takes them
    nd_progress progress;
    nd_progress_init(&progress, "eval classifier", steps, 0);
    double start = nd_seconds();
    for (int64_t step = 0; ok && step < steps; step++) {
        const nd_batch *batch = nd_loader_next(loader);
        nd_tensor *x = nd_from_host(ctx, ND_SHAPE(batch->size, c->img_ch, c->img_size, c->img_size), batch->images);
        for (int i = 0; i < batch->size; i++) labels[i] = (float)batch->labels[i];
        nd_tensor *y = nd_from_host(ctx, ND_SHAPE(batch->size), labels);
        nd_tensor *loss = nd_cross_entropy(ctx, classifier_forward(ctx, c, x, true, NULL), y);
        nd_backward(ctx, loss);
        // cosine decay to zero: the last epochs settle into a minimum instead of hopping across it
        opt.config.lr = cfg->lr * 0.5f * (1.0f + cosf(3.14159265f * (float)step / (float)steps));
        nd_adam_step(&opt, &c->params, ctx);
        nd_params_zero_grad(&c->params, ctx);
        float value = nd_item(ctx, loss);
        nd_ctx_step_end(ctx);
        if (!isfinite(value))
            ok = nd_error_set(err, "the evaluation classifier's loss became %g at step %lld", value, (long long)step);
        if (cfg->progress) nd_progress_update(&progress, step, step / per_epoch, cfg->epochs, value, batch->size);
    }
    if (seconds) *seconds = nd_seconds() - start;
    free(labels);
    if (loader) nd_loader_free(loader);
    nd_adam_free(&opt);
    return ok;
}
