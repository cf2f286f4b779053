// The models' parameter counts equal the course's (reference/dli-course.md), parameter names follow the
// PyTorch modules, each model runs forward at its image sizes, and inference runs large batches in chunks.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "test.h"

static int64_t count(nd_model_kind kind, int img_ch, int img_size, int classes, int t_embed_dim, int base) {
    nd_model_config c = nd_model_config_default(kind, img_ch, img_size, classes);
    if (t_embed_dim >= 0) c.t_embed_dim = t_embed_dim;
    if (base) c.down_chs[0] = base, c.down_chs[1] = base, c.down_chs[2] = 2 * base;
    nd_model m;
    nd_model_init(&m, c); // registration only: the flowers models would take 350 MB to allocate
    int64_t n = m.params.total;
    nd_model_free(&m);
    return n;
}

static void test_counts(void) {
    struct {
        const char *what;
        int64_t got, want;
    } cases[] = {
        {"01 UNet (BatchNorm, untimed)", count(ND_MODEL_DLI_UNET_V1, 1, 16, 0, 0, 0), 234977},
        {"02 UNet (BatchNorm, t embedding)", count(ND_MODEL_DLI_UNET_V1, 1, 16, 0, 1, 0), 240385},
        {"03 UNet (unconditional 16x16)", count(ND_MODEL_DLI_UNET, 1, 16, 0, -1, 0), 1979777},
        {"04 Fashion-MNIST CFG (16x16, 10 classes)", count(ND_MODEL_DLI_UNET, 1, 16, 10, -1, 0), 2002561},
        {"04 flowers (32x32x3, 3 classes)", count(ND_MODEL_DLI_UNET, 3, 32, 3, -1, 256), 44509443},
        {"05 CLIP flowers (512-d context)", count(ND_MODEL_DLI_UNET, 3, 32, 512, -1, 256), 44900355},
        {"06 MNIST (28x28, 10 classes)", count(ND_MODEL_DLI_UNET, 1, 28, 10, -1, 0), 2547457},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("%-44s %10lld parameters (course: %lld)\n", cases[i].what, (long long)cases[i].got,
               (long long)cases[i].want);
        CHECK(cases[i].got == cases[i].want, "%s: %lld parameters, the course's model has %lld", cases[i].what,
              (long long)cases[i].got, (long long)cases[i].want);
    }
}

static void test_names(void) {
    nd_model m;
    nd_model_init(&m, nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10));
    const char *expected[] = {"down0.conv1.model.0.weight", "down1.model.2.conv.model.1.bias", "dense_emb.4.weight",
                              "temb_1.model.2.bias",        "c_embed2.model.0.weight",         "up0.1.model.0.weight",
                              "up1.model.0.weight",         "up2.model.4.model.1.weight",      "out.3.bias"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        CHECK(nd_params_find(&m.params, expected[i]), "dli-unet lacks the PyTorch parameter %s", expected[i]);
    nd_model_free(&m);
    nd_model_init(&m, nd_model_config_default(ND_MODEL_DLI_UNET_V1, 1, 16, 0));
    CHECK(nd_params_find(&m.buffers, "down1.model.4.running_var"), "dli-unet-v1 lacks a BatchNorm buffer");
    CHECK(nd_params_find(&m.params, "up1.model.0.weight"), "dli-unet-v1 lacks its transposed conv");
    nd_model_free(&m);
}

static void test_forward_shapes(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 64 << 20, 3);
    nd_model_kind kinds[] = {ND_MODEL_DLI_UNET, ND_MODEL_DLI_UNET_V1, ND_MODEL_T2I_UNET, ND_MODEL_RES_UNET};
    int sizes[] = {16, 28};
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 2; s++) {
            if (kinds[k] == ND_MODEL_DLI_UNET_V1 && sizes[s] == 28) continue; // max pooling 7 -> 3 would not invert
            nd_model_config c = nd_model_config_default(kinds[k], 1, sizes[s], kinds[k] == ND_MODEL_T2I_UNET ? 16 : 10);
            nd_model m;
            nd_model_create(&m, c, &ctx);
            nd_tensor *x = nd_zeros(&ctx, ND_SHAPE(2, 1, sizes[s], sizes[s]));
            nd_rand_normal(&ctx, x, 0.0f, 1.0f);
            nd_tensor *t = nd_full(&ctx, ND_SHAPE(2), 75.0f);
            nd_tensor *context = kinds[k] == ND_MODEL_T2I_UNET      ? nd_zeros(&ctx, ND_SHAPE(2, 5, 16))
                                 : kinds[k] == ND_MODEL_DLI_UNET_V1 ? NULL
                                                                    : nd_zeros(&ctx, ND_SHAPE(2, 10));
            nd_tensor *out = nd_model_forward(&ctx, &m, x, t, context, true);
            CHECK(nd_shape_equal(out->shape, x->shape), "%s at %d: output shape differs from input",
                  nd_model_kind_name(kinds[k]), sizes[s]);
            nd_ctx_step_end(&ctx);
            nd_model_free(&m);
        }
    nd_ctx_free(&ctx);
}

// A forward pass with grad mode off runs a large batch in chunks, releasing each chunk's intermediates: the
// output equals the whole batch's (computed with grad mode on, in one piece), each image's equals its own
// forward alone, and the step arena's peak is a chunk's, not the batch's.
static void test_inference_chunks(void) {
    enum { BATCH = 120, CHUNK = 40 }; // three chunks of 40 (at most 50 images each)
    nd_model_kind kinds[] = {ND_MODEL_DLI_UNET, ND_MODEL_DLI_UNET_V1, ND_MODEL_T2I_UNET, ND_MODEL_RES_UNET};
    for (int k = 0; k < 4; k++) {
        nd_ctx ctx;
        nd_ctx_init(&ctx, ND_CPU, 1 << 20, 5);
        nd_model_config c = nd_model_config_default(kinds[k], 1, 16, kinds[k] == ND_MODEL_T2I_UNET ? 16 : 10);
        nd_model m;
        nd_model_create(&m, c, &ctx);
        // every image its own noise, timestep and context, so a chunk given another chunk's rows would show
        nd_tensor *x = nd_empty_persistent(&ctx, ND_SHAPE(BATCH, 1, 16, 16));
        nd_rand_normal(&ctx, x, 0.0f, 1.0f);
        nd_tensor *t = nd_empty_persistent(&ctx, ND_SHAPE(BATCH));
        nd_rand_uniform(&ctx, t, 0.0f, 149.0f);
        nd_shape context_shape = kinds[k] == ND_MODEL_T2I_UNET ? ND_SHAPE(BATCH, 5, 16) : ND_SHAPE(BATCH, 10);
        nd_tensor *context = kinds[k] == ND_MODEL_DLI_UNET_V1 ? NULL : nd_empty_persistent(&ctx, context_shape);
        if (context) nd_rand_normal(&ctx, context, 0.0f, 1.0f);
        int64_t n = x->numel, per_image = n / BATCH;
        float *whole = malloc((size_t)n * sizeof(float)), *chunked = malloc((size_t)n * sizeof(float));
        nd_copy_to_host(&ctx, nd_model_forward(&ctx, &m, x, t, context, false), whole); // grad mode on
        nd_ctx_step_end(&ctx);
        ctx.step.data_peak = 0;
        nd_ctx_set_grad(&ctx, false);
        nd_copy_to_host(&ctx, nd_model_forward(&ctx, &m, x, t, context, false), chunked);
        size_t batch_peak = ctx.step.data_peak;
        nd_ctx_step_end(&ctx);
        // the whole batch's path differs (direct convolutions where inference runs Winograd's, group norms
        // apart from them): rounding of O(1) outputs
        long long worst;
        double v = test_max_violation(chunked, whole, n, 1e-4, 1e-4, &worst);
        CHECK(v <= 1.0, "%s: chunked inference differs from the whole batch (violation %.2f at image %lld)",
              nd_model_kind_name(kinds[k]), v, worst / per_image);
        for (int64_t i = 0; i < BATCH; i += CHUNK - 1) { // first and last images of chunks
            nd_tensor xs = *x, ts = *t, cs = context ? *context : (nd_tensor){0};
            xs.data += i * per_image, xs.shape.d[0] = 1, xs.numel = per_image;
            ts.data += i, ts.shape.d[0] = 1, ts.numel = 1;
            if (context) cs.data += i * (context->numel / BATCH), cs.shape.d[0] = 1, cs.numel = context->numel / BATCH;
            float alone[256];
            nd_copy_to_host(&ctx, nd_model_forward(&ctx, &m, &xs, &ts, context ? &cs : NULL, false), alone);
            nd_ctx_step_end(&ctx);
            v = test_max_violation(chunked + i * per_image, alone, per_image, 1e-5, 1e-5, &worst);
            CHECK(v <= 1.0, "%s: image %lld of the chunked batch differs from its forward alone (violation %.2f)",
                  nd_model_kind_name(kinds[k]), (long long)i, v);
        }
        ctx.step.data_peak = 0;
        nd_tensor x40 = *x;
        x40.shape.d[0] = CHUNK, x40.numel = CHUNK * per_image;
        nd_tensor t40 = *t, c40 = context ? *context : (nd_tensor){0};
        t40.shape.d[0] = CHUNK, t40.numel = CHUNK;
        if (context) c40.shape.d[0] = CHUNK, c40.numel = context->numel / BATCH * CHUNK;
        nd_model_forward(&ctx, &m, &x40, &t40, context ? &c40 : NULL, false);
        size_t chunk_peak = ctx.step.data_peak;
        nd_ctx_step_end(&ctx);
        printf("%s: inference peak %zu KiB for %d images, %zu KiB for one chunk of %d\n", nd_model_kind_name(kinds[k]),
               batch_peak >> 10, BATCH, chunk_peak >> 10, CHUNK);
        CHECK(batch_peak < chunk_peak + chunk_peak / 2, "%s: the batch of %d took %zu bytes, a chunk %zu",
              nd_model_kind_name(kinds[k]), BATCH, batch_peak, chunk_peak);
        free(whole);
        free(chunked);
        nd_model_free(&m);
        nd_ctx_free(&ctx);
    }
}

// res-unet reads its class: two classes give different predictions, a dropped class (an all-zero row, as
// label dropout and the guided batch's null half make) gives the prediction of no context at all, and without
// classes (unconditional) the model has no class embedding and runs on NULL.
static void test_res_unet_classes(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 7);
    nd_model m;
    nd_model_create(&m, nd_model_config_default(ND_MODEL_RES_UNET, 1, 16, 10), &ctx);
    CHECK(nd_params_find(&m.params, "class_embed.time.weight") && nd_params_find(&m.params, "class_embed.token.weight"),
          "res-unet lacks its class embeddings");
    nd_ctx_set_grad(&ctx, false);
    nd_tensor *x = nd_empty_persistent(&ctx, ND_SHAPE(3, 1, 16, 16));
    nd_rand_normal(&ctx, x, 0.0f, 1.0f);
    float x_host[3 * 256], t_host[3] = {40.0f, 40.0f, 40.0f}, c_host[3 * 10] = {0};
    nd_copy_to_host(&ctx, x, x_host);
    for (int i = 1; i < 3; i++) memcpy(x_host + 256 * i, x_host, sizeof(float) * 256); // one image three times
    nd_copy_from_host(&ctx, x, x_host);
    c_host[0 * 10 + 3] = 1.0f, c_host[1 * 10 + 7] = 1.0f; // classes 3 and 7, and a dropped class
    nd_tensor *t = nd_from_host(&ctx, ND_SHAPE(3), t_host), *c = nd_from_host(&ctx, ND_SHAPE(3, 10), c_host);
    float with[3 * 256], without[3 * 256];
    nd_copy_to_host(&ctx, nd_model_forward(&ctx, &m, x, t, c, false), with);
    nd_copy_to_host(&ctx, nd_model_forward(&ctx, &m, x, t, NULL, false), without);
    double class_gap = 0, null_gap = 0;
    for (int i = 0; i < 256; i++) {
        class_gap = fmax(class_gap, fabs(with[i] - with[256 + i]));
        null_gap = fmax(null_gap, fabs(with[512 + i] - without[512 + i]));
    }
    CHECK(class_gap > 1e-3, "res-unet: classes 3 and 7 give the same prediction (max difference %g)", class_gap);
    CHECK(null_gap <= 1e-6, "res-unet: a dropped class differs from no context by %g", null_gap);
    nd_ctx_step_end(&ctx);
    nd_model_free(&m);
    nd_model_create(&m, nd_model_config_default(ND_MODEL_RES_UNET, 1, 16, 0), &ctx);
    CHECK(!nd_params_find(&m.params, "class_embed.time.weight"), "an unconditional res-unet has a class embedding");
    nd_tensor *out = nd_model_forward(&ctx, &m, x, t, NULL, false);
    CHECK(nd_shape_equal(out->shape, x->shape), "unconditional res-unet: output shape differs from input");
    nd_ctx_step_end(&ctx);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

int main(void) {
    test_counts();
    test_res_unet_classes();
    test_names();
    test_forward_shapes();
    test_inference_chunks();
    return test_finish("nn_models");
}
