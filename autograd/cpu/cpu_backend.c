// The CPU backend table, and its bfloat16 variant.
#include <pthread.h>

#include "cpu_bf16.h"

// Every entry of backend_list.h bound, in its order, to nd_cpu_<entry> (the missing-entry check in backend.h).
static const nd_backend cpu_backend = {
    "cpu",
#define ND_BACKEND_ENTRY(ret, entry, params) nd_cpu_##entry,
#include "../backend_list.h"
};

const nd_backend *nd_backend_cpu(void) { return &cpu_backend; }

// The table above with its products in bf16: everything else (norms, softmax, losses, reductions, the
// optimizer) reads and writes float32 as before.
static nd_backend cpu_bf16_backend;
static pthread_once_t cpu_bf16_made = PTHREAD_ONCE_INIT;

static void cpu_bf16_make(void) {
    cpu_bf16_backend = cpu_backend;
    cpu_bf16_backend.name = "cpu-bf16";
    cpu_bf16_backend.gemm = nd_cpu_gemm_bf16;
    cpu_bf16_backend.conv_forward = nd_cpu_conv_forward_bf16;
    cpu_bf16_backend.conv_backward = nd_cpu_conv_backward_bf16;
}

const nd_backend *nd_backend_cpu_bf16(char *why, size_t size) {
    if (!nd_cpu_bf16_available(why, size)) return NULL;
    pthread_once(&cpu_bf16_made, cpu_bf16_make);
    return &cpu_bf16_backend;
}
