// GPU optimizer updates over the flat parameter buffers (per-element math in elementwise_math.h).
#include "../elementwise_math.h"
#include "cuda_common.h"

// one Adam/AdamW step of every parameter, with the shared per-element update
static __global__ void adam_update_kernel(float *param, float *m, float *v, const float *grad, int64_t n, float lr,
                                          float beta1, float beta2, float eps, float weight_decay, bool decoupled,
                                          float bias_correction1, float bias_correction2) {
    ND_CUDA_FOR_EACH(i, n)
    nd_adam_update(&param[i], &m[i], &v[i], grad[i], lr, beta1, beta2, eps, weight_decay, decoupled, bias_correction1,
                   bias_correction2);
}

// ema = decay * ema + (1 - decay) * param
static __global__ void ema_update_kernel(float *ema, const float *param, float decay, int64_t n) {
    ND_CUDA_FOR_EACH(i, n) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}

extern "C" {

// Elementwise map over the flat buffers.
void nd_cuda_adam_update(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                         float beta2, float eps, float weight_decay, bool decoupled, float bias_correction1,
                         float bias_correction2) {
    ND_CUDA_MAP(n, adam_update_kernel, param, m, v, grad, n, lr, beta1, beta2, eps, weight_decay, decoupled,
                bias_correction1, bias_correction2);
}

// Elementwise map over the flat buffers.
void nd_cuda_ema_update(float *ema, const float *param, float decay, int64_t n) {
    ND_CUDA_MAP(n, ema_update_kernel, ema, param, decay, n);
}

} // extern "C"
