// CPU optimizer updates over the flat parameter buffers.
#include "../elementwise_math.h"
#include "cpu.h"

void nd_cpu_adam_update(float *param, float *m, float *v, const float *grad, int64_t n, float lr, float beta1,
                        float beta2, float eps, float weight_decay, bool decoupled, float bias_correction1,
                        float bias_correction2) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++)
        nd_adam_update(&param[i], &m[i], &v[i], grad[i], lr, beta1, beta2, eps, weight_decay, decoupled,
                       bias_correction1, bias_correction2);
}

void nd_cpu_ema_update(float *ema, const float *param, float decay, int64_t n) {
#pragma omp parallel for if (n > ND_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) ema[i] = decay * ema[i] + (1.0f - decay) * param[i];
}
