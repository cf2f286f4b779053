// Backend lookup, and device queries for builds without CUDA (the CUDA build defines those in autograd/cuda/).
#include <stdio.h>

#include "backend.h"

const nd_backend *nd_backend_for(nd_device device) { return device == ND_CUDA ? nd_backend_cuda() : nd_backend_cpu(); }

#ifndef ND_WITH_CUDA
const nd_backend *nd_backend_cuda(void) { return NULL; }

bool nd_cuda_available(char *why, size_t size) {
    if (why && size) snprintf(why, size, "built without CUDA");
    return false;
}

void nd_cuda_describe(char *buf, size_t size) {
    if (buf && size) snprintf(buf, size, "no usable GPU: built without CUDA");
}

void nd_cuda_set_tf32(bool on) { (void)on; }
#endif
