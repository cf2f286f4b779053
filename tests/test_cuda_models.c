// Whole-model parity between the CPU and CUDA backends: one training step of dli-unet, t2i-unet and res-unet gives
// the same loss and parameter gradients, and 20 Adam steps give the same loss curve. Skips without a GPU.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train.h"

// TF32 off: float32 on both sides, but cuBLAS and our reductions sum in another order than the CPU, and
// the difference compounds through ~40 layers: 1e-6 normalized MSE for gradients, 1e-5 relative for losses.
#define GRAD_NMSE 1e-6
#define LOSS_REL 1e-5
#define CURVE_REL 1e-4 // after 20 Adam steps the parameters themselves have drifted by rounding

typedef struct side {
    nd_ctx ctx;
    nd_model model;
    nd_adam opt;
} side;

static void side_init(side *s, nd_device device, nd_model_config config, const float *params) {
    nd_ctx_init(&s->ctx, device, 16 << 20, 1);
    nd_model_create(&s->model, config, &s->ctx);
    nd_buffer_upload(s->ctx.device, s->model.params.data, params, s->model.params.total);
    nd_adam_init(&s->opt, &s->model.params, &s->ctx, nd_adam_defaults());
}

static void side_free(side *s) {
    nd_adam_free(&s->opt);
    nd_model_free(&s->model);
    nd_ctx_free(&s->ctx);
}

// loss = mse(model(x, t, context), noise) with everything given from the host; gradients left in params.grad
static float step(side *s, const float *x, const float *t, const float *c, nd_shape c_shape, const float *noise,
                  int batch, bool update) {
    const nd_model_config *mc = &s->model.config;
    nd_ctx *ctx = &s->ctx;
    nd_shape xs = ND_SHAPE(batch, mc->img_ch, mc->img_size, mc->img_size);
    nd_tensor *out = nd_model_forward(ctx, &s->model, nd_from_host(ctx, xs, x), nd_from_host(ctx, ND_SHAPE(batch), t),
                                      c ? nd_from_host(ctx, c_shape, c) : NULL, true);
    nd_tensor *loss = nd_mse_loss(ctx, out, nd_from_host(ctx, xs, noise));
    nd_backward(ctx, loss);
    float value = nd_item(ctx, loss);
    if (update) {
        nd_adam_step(&s->opt, &s->model.params, ctx);
        nd_params_zero_grad(&s->model.params, ctx);
    }
    nd_ctx_step_end(ctx);
    return value;
}

static void check_model(const char *name, nd_model_config config, nd_shape c_shape) {
    enum { BATCH = 4 };
    nd_ctx host;
    nd_ctx_init(&host, ND_CPU, 1 << 20, 7);
    nd_model init;
    nd_model_create(&init, config, &host); // PyTorch-default initialization, shared by both sides
    int64_t image = (int64_t)config.img_ch * config.img_size * config.img_size;
    float *x = malloc((size_t)(BATCH * image) * sizeof(float)),
          *noise = malloc((size_t)(BATCH * image) * sizeof(float));
    float t[BATCH] = {3, 40, 90, 149};
    float *c = c_shape.ndim ? calloc((size_t)nd_shape_numel(c_shape), sizeof(float)) : NULL;
    for (int64_t i = 0; i < BATCH * image; i++) x[i] = sinf(0.3f * (float)i), noise[i] = cosf(0.7f * (float)i);
    for (int64_t i = 0; c && i < nd_shape_numel(c_shape); i++)
        c[i] = config.kind == ND_MODEL_DLI_UNET ? (i % 11 == 0) : sinf((float)i);
    side cpu, gpu;
    side_init(&cpu, ND_CPU, config, init.params.data);
    side_init(&gpu, ND_CUDA, config, init.params.data);
    float l_cpu = step(&cpu, x, t, c, c_shape, noise, BATCH, false),
          l_gpu = step(&gpu, x, t, c, c_shape, noise, BATCH, false);
    CHECK(fabsf(l_cpu - l_gpu) <= LOSS_REL * fabsf(l_cpu), "%s: loss %.8g on the CPU, %.8g on the GPU", name, l_cpu,
          l_gpu);
    int64_t n = cpu.model.params.total;
    float *g = malloc((size_t)n * sizeof(float));
    nd_buffer_download(gpu.ctx.device, g, gpu.model.params.grad, n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; i++)
        err += pow(g[i] - cpu.model.params.grad[i], 2), ref += pow(cpu.model.params.grad[i], 2);
    printf("%s: loss cpu %.8f gpu %.8f; gradient normalized MSE %.2e\n", name, l_cpu, l_gpu, err / ref);
    CHECK(err / ref <= GRAD_NMSE, "%s: gradients differ, normalized MSE %.3g", name, err / ref);
    nd_params_zero_grad(&cpu.model.params, &cpu.ctx);
    nd_params_zero_grad(&gpu.model.params, &gpu.ctx);
    double worst = 0;
    for (int s = 0; s < 20; s++) {
        for (int64_t i = 0; i < BATCH * image; i++) noise[i] = cosf(0.7f * (float)i + (float)s);
        l_cpu = step(&cpu, x, t, c, c_shape, noise, BATCH, true);
        l_gpu = step(&gpu, x, t, c, c_shape, noise, BATCH, true);
        worst = fmax(worst, fabs(l_cpu - l_gpu) / fabs(l_cpu));
    }
    printf("%s: 20 Adam steps, worst relative loss difference %.2e (last loss %.6f)\n", name, worst, l_cpu);
    CHECK(worst <= CURVE_REL, "%s: loss curves part by %.3g", name, worst);
    free(g), free(x), free(noise), free(c);
    side_free(&cpu);
    side_free(&gpu);
    nd_model_free(&init);
    nd_ctx_free(&host);
}

int main(void) {
    char why[256];
    if (!nd_cuda_available(why, sizeof why)) {
        printf("cuda.models: skipped: %s\n", why);
        return ND_TEST_SKIP;
    }
    nd_cuda_set_tf32(false);
    nd_model_config dli = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 10);
    check_model("dli-unet", dli, ND_SHAPE(4, 10));
    nd_model_config t2i = nd_model_config_default(ND_MODEL_T2I_UNET, 1, 16, 32);
    check_model("t2i-unet", t2i, ND_SHAPE(4, 6, 32));
    nd_model_config res = nd_model_config_default(ND_MODEL_RES_UNET, 1, 16, 10);
    check_model("res-unet", res, ND_SHAPE(4, 10));
    return test_finish("cuda.models");
}
