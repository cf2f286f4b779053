// The models' parameter counts equal the course's (reference/dli-course.md), parameter names follow the
// PyTorch modules, and each model runs forward at its image sizes.
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
    nd_model_kind kinds[] = {ND_MODEL_DLI_UNET, ND_MODEL_DLI_UNET_V1, ND_MODEL_T2I_UNET};
    int sizes[] = {16, 28};
    for (int k = 0; k < 3; k++)
        for (int s = 0; s < 2; s++) {
            if (kinds[k] == ND_MODEL_DLI_UNET_V1 && sizes[s] == 28) continue; // max pooling 7 -> 3 would not invert
            nd_model_config c = nd_model_config_default(kinds[k], 1, sizes[s], kinds[k] == ND_MODEL_T2I_UNET ? 16 : 10);
            nd_model m;
            nd_model_create(&m, c, &ctx);
            nd_tensor *x = nd_zeros(&ctx, ND_SHAPE(2, 1, sizes[s], sizes[s]));
            nd_rand_normal(&ctx, x, 0.0f, 1.0f);
            nd_tensor *t = nd_full(&ctx, ND_SHAPE(2), 75.0f);
            nd_tensor *context = kinds[k] == ND_MODEL_T2I_UNET   ? nd_zeros(&ctx, ND_SHAPE(2, 5, 16))
                                 : kinds[k] == ND_MODEL_DLI_UNET ? nd_zeros(&ctx, ND_SHAPE(2, 10))
                                                                 : NULL;
            nd_tensor *out = nd_model_forward(&ctx, &m, x, t, context, true);
            CHECK(nd_shape_equal(out->shape, x->shape), "%s at %d: output shape differs from input",
                  nd_model_kind_name(kinds[k]), sizes[s]);
            nd_ctx_step_end(&ctx);
            nd_model_free(&m);
        }
    nd_ctx_free(&ctx);
}

int main(void) {
    test_counts();
    test_names();
    test_forward_shapes();
    return test_finish("nn_models");
}
