// Raw device buffers for the layers above autograd, which do not see the backend.
#include "backend.h"

void nd_buffer_copy(nd_ctx *ctx, float *dst, const float *src, int64_t n) { ctx->be->copy(dst, src, n); }

void nd_buffer_fill(nd_ctx *ctx, float *dst, float value, int64_t n) { ctx->be->fill(dst, value, n); }

void nd_buffer_download(nd_device device, float *host, const float *src, int64_t n) {
    if (n > 0) nd_backend_for(device)->download(host, src, (size_t)n * sizeof(float));
}

void nd_buffer_upload(nd_device device, float *dst, const float *host, int64_t n) {
    if (n > 0) nd_backend_for(device)->upload(dst, host, (size_t)n * sizeof(float));
}
