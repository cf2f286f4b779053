// The CPU backend table.
#include "cpu.h"

static const nd_backend cpu_backend = {
    .name = "cpu",
    .alloc = nd_cpu_alloc,
    .free = nd_cpu_free,
    .upload = nd_cpu_upload,
    .download = nd_cpu_download,
    .fill = nd_cpu_fill,
    .copy = nd_cpu_copy,
    .accumulate = nd_cpu_accumulate,
    .rand_uniform = nd_cpu_rand_uniform,
    .rand_normal = nd_cpu_rand_normal,
    .rand_bernoulli = nd_cpu_rand_bernoulli,
    .unary_forward = nd_cpu_unary_forward,
    .unary_backward = nd_cpu_unary_backward,
    .binary_forward = nd_cpu_binary_forward,
    .binary_backward = nd_cpu_binary_backward,
    .reduce_sum = nd_cpu_reduce_sum,
    .broadcast_accumulate = nd_cpu_broadcast_accumulate,
    .gemm = nd_cpu_gemm,
    .add_bias = nd_cpu_add_bias,
    .copy_rows = nd_cpu_copy_rows,
    .permute = nd_cpu_permute,
    .softmax_forward = nd_cpu_softmax_forward,
    .softmax_backward = nd_cpu_softmax_backward,
    .nll_forward = nd_cpu_nll_forward,
    .cross_entropy_backward = nd_cpu_cross_entropy_backward,
    .embedding_forward = nd_cpu_embedding_forward,
    .embedding_backward = nd_cpu_embedding_backward,
    .adam_update = nd_cpu_adam_update,
    .ema_update = nd_cpu_ema_update,
};

const nd_backend *nd_backend_cpu(void) { return &cpu_backend; }
