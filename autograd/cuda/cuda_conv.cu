// GPU kernels of the convolution family: im2col / col2im (the GEMM convolutions' column matrices), max
// pooling, pixel unshuffle and nearest upsampling. Contracts in backend.h; one thread per element written.
#include "../elementwise_math.h"
#include "cuda_common.h"

// col (channels*kernel_h*kernel_w, batch*out_h*out_w): each entry the pixel its window tap lands on, or 0
// in the padding.
static __global__ void im2col_kernel(float *col, const float *x, nd_conv_geom g, int64_t batch) {
    int64_t out_size = g.out_h * g.out_w, ld = batch * out_size;
    int64_t kernel_size = g.kernel_h * g.kernel_w, n = g.channels * kernel_size * ld;
    ND_CUDA_FOR_EACH(i, n) {
        int64_t r = i / ld, q = i % ld;
        int64_t c = r / kernel_size, ki = r % kernel_size / g.kernel_w, kj = r % g.kernel_w;
        int64_t b = q / out_size, oy = q % out_size / g.out_w, ox = q % g.out_w;
        int64_t iy = oy * g.stride - g.padding + ki, ix = ox * g.stride - g.padding + kj;
        bool inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width;
        col[i] = inside ? x[((b * g.channels + c) * g.height + iy) * g.width + ix] : 0.0f;
    }
}

// dx (batch, channels, height, width) += every col entry naming this pixel. A gather per pixel instead of
// the CPU's scatter: no atomics, and the taps are added in the CPU's order (row, then column of the window).
static __global__ void col2im_kernel(float *dx, const float *col, nd_conv_geom g, int64_t batch) {
    int64_t out_size = g.out_h * g.out_w, ld = batch * out_size, plane = g.height * g.width;
    ND_CUDA_FOR_EACH(i, batch * g.channels * plane) {
        int64_t b = i / (g.channels * plane), c = i / plane % g.channels;
        int64_t y = i % plane / g.width, x = i % g.width;
        float acc = dx[i];
        for (int64_t ki = 0; ki < g.kernel_h; ki++) {
            int64_t ty = y + g.padding - ki; // = oy * stride for the window row that puts tap ki here
            if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= g.out_h) continue;
            for (int64_t kj = 0; kj < g.kernel_w; kj++) {
                int64_t tx = x + g.padding - kj;
                if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= g.out_w) continue;
                int64_t row = (c * g.kernel_h + ki) * g.kernel_w + kj;
                acc += col[row * ld + b * out_size + ty / g.stride * g.out_w + tx / g.stride];
            }
        }
        dx[i] = acc;
    }
}

// y and argmax (planes, out_h, out_w): each window's first maximum, a NaN counting as the maximum (PyTorch)
static __global__ void max_pool_forward_kernel(float *y, int32_t *argmax, const float *x, int64_t planes,
                                               int64_t height, int64_t width, int64_t kernel, int64_t stride,
                                               int64_t out_h, int64_t out_w) {
    ND_CUDA_FOR_EACH(o, planes * out_h * out_w) {
        int64_t pl = o / (out_h * out_w), oy = o / out_w % out_h, ox = o % out_w;
        const float *image = x + pl * height * width; // (height, width)
        float best;
        argmax[o] = (int32_t)nd_max_pool_window(image, width, oy * stride * width + ox * stride, kernel, &best);
        y[o] = best;
    }
}

// Overlapping windows (stride < kernel) may route two gradients to one pixel: atomics keep the sum whole.
static __global__ void max_pool_backward_kernel(float *dx, const float *dy, const int32_t *argmax, int64_t planes,
                                                int64_t plane_size, int64_t out_size) {
    ND_CUDA_FOR_EACH(o, planes * out_size) atomicAdd(&dx[o / out_size * plane_size + argmax[o]], dy[o]);
}

// y (planes, factor*factor, height/factor, width/factor): y[pl, p1*factor + p2, h, w] = x[pl, h*factor + p1,
// w*factor + p2]
static __global__ void pixel_unshuffle_forward_kernel(float *y, const float *x, int64_t planes, int64_t height,
                                                      int64_t width, int64_t factor) {
    int64_t out_h = height / factor, out_w = width / factor, out_plane = out_h * out_w;
    ND_CUDA_FOR_EACH(i, planes * factor * factor * out_plane) {
        int64_t pl = i / (factor * factor * out_plane), sub = i / out_plane % (factor * factor);
        int64_t h = i % out_plane / out_w, w = i % out_w;
        y[i] = x[(pl * height + h * factor + sub / factor) * width + w * factor + sub % factor];
    }
}

// dx (planes, height, width) += dy at the positions above; pixels past the last whole block have none
static __global__ void pixel_unshuffle_backward_kernel(float *dx, const float *dy, int64_t planes, int64_t height,
                                                       int64_t width, int64_t factor) {
    int64_t out_h = height / factor, out_w = width / factor, out_plane = out_h * out_w;
    ND_CUDA_FOR_EACH(i, planes * height * width) {
        int64_t pl = i / (height * width), iy = i / width % height, ix = i % width;
        if (iy / factor >= out_h || ix / factor >= out_w) continue;
        int64_t sub = iy % factor * factor + ix % factor;
        dx[i] += dy[(pl * factor * factor + sub) * out_plane + iy / factor * out_w + ix / factor];
    }
}

// y (planes, height*factor, width*factor) from x (planes, height, width)
static __global__ void upsample_forward_kernel(float *y, const float *x, int64_t planes, int64_t height, int64_t width,
                                               int64_t factor) {
    int64_t out_h = height * factor, out_w = width * factor;
    ND_CUDA_FOR_EACH(i, planes * out_h * out_w) {
        int64_t pl = i / (out_h * out_w), oy = i / out_w % out_h, ox = i % out_w;
        y[i] = x[(pl * height + oy / factor) * width + ox / factor];
    }
}

// dx (planes, height, width) += the sum of its factor x factor block of dy, summed in the CPU's order
static __global__ void upsample_backward_kernel(float *dx, const float *dy, int64_t planes, int64_t height,
                                                int64_t width, int64_t factor) {
    int64_t out_w = width * factor;
    ND_CUDA_FOR_EACH(i, planes * height * width) {
        int64_t row = i / width, w = i % width;                      // row: (plane, y) of x
        const float *block = dy + row * factor * out_w + w * factor; // (factor, factor) at row stride out_w
        float sum = 0.0f;
        for (int64_t fy = 0; fy < factor; fy++)
            for (int64_t fx = 0; fx < factor; fx++) sum += block[fy * out_w + fx];
        dx[i] += sum;
    }
}

extern "C" {

// One thread per column-matrix entry.
void nd_cuda_im2col(float *col, const float *x, const nd_conv_geom *g, int64_t batch) {
    int64_t n = g->channels * g->kernel_h * g->kernel_w * batch * g->out_h * g->out_w;
    ND_CUDA_MAP(n, im2col_kernel, col, x, *g, batch);
}

// One thread per pixel of dx.
void nd_cuda_col2im(float *dx, const float *col, const nd_conv_geom *g, int64_t batch) {
    int64_t n = batch * g->channels * g->height * g->width;
    ND_CUDA_MAP(n, col2im_kernel, dx, col, *g, batch);
}

// No convolution library is linked for the GPU: convolutions run as im2col + cuBLAS GEMMs (ops_conv.c).
bool nd_cuda_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                          int64_t batch, int64_t filters, bool transposed, bool inference) {
    return false;
}

bool nd_cuda_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                           const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    return false;
}

bool nd_cuda_conv_norm_act_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                                   int64_t batch, int64_t filters, int64_t groups, const float *norm_weight,
                                   const float *norm_bias, float eps, nd_unary_kind act) {
    return false;
}

size_t nd_cuda_workspace_bytes(void) { return 0; }

// One thread per window.
void nd_cuda_max_pool_forward(float *y, int32_t *argmax, const float *x, int64_t planes, int64_t height, int64_t width,
                              int64_t kernel, int64_t stride, int64_t out_h, int64_t out_w) {
    ND_CUDA_MAP(planes * out_h * out_w, max_pool_forward_kernel, y, argmax, x, planes, height, width, kernel, stride,
                out_h, out_w);
}

// One thread per window, adding into the pixel its maximum came from.
void nd_cuda_max_pool_backward(float *dx, const float *dy, const int32_t *argmax, int64_t planes, int64_t plane_size,
                               int64_t out_size) {
    ND_CUDA_MAP(planes * out_size, max_pool_backward_kernel, dx, dy, argmax, planes, plane_size, out_size);
}

// One thread per output element; rows and columns past the last whole block are dropped.
void nd_cuda_pixel_unshuffle_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width,
                                     int64_t factor) {
    int64_t n = planes * factor * factor * (height / factor) * (width / factor);
    ND_CUDA_MAP(n, pixel_unshuffle_forward_kernel, y, x, planes, height, width, factor);
}

// One thread per input pixel.
void nd_cuda_pixel_unshuffle_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                                      int64_t factor) {
    ND_CUDA_MAP(planes * height * width, pixel_unshuffle_backward_kernel, dx, dy, planes, height, width, factor);
}

// One thread per output pixel.
void nd_cuda_upsample_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width, int64_t factor) {
    ND_CUDA_MAP(planes * height * width * factor * factor, upsample_forward_kernel, y, x, planes, height, width,
                factor);
}

// One thread per input pixel, summing its block.
void nd_cuda_upsample_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                               int64_t factor) {
    ND_CUDA_MAP(planes * height * width, upsample_backward_kernel, dx, dy, planes, height, width, factor);
}

} // extern "C"
