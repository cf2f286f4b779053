// CPU kernels of the convolution family: im2col / col2im (the GEMM convolutions' column matrices),
// max pooling, pixel unshuffle and nearest upsampling. Contracts in backend.h.
#include <math.h>
#include <string.h>

#include "../elementwise_math.h"
#include "cpu.h"

// Output positions [lo, hi) of a window row whose tap at offset `tap` lands inside a line of `size` pixels:
// tap position = o * stride - padding + tap must lie in [0, size).
static void inside_span(int64_t tap, int64_t size, int64_t stride, int64_t padding, int64_t out_size, int64_t *lo,
                        int64_t *hi) {
    int64_t first = padding - tap, last = size - 1 + padding - tap;
    *lo = first > 0 ? (first + stride - 1) / stride : 0;
    *hi = last < 0 ? 0 : last / stride + 1;
    if (*hi > out_size) *hi = out_size;
    if (*lo > *hi) *lo = *hi;
}

// Tap (i, j) of every window over one image: one row of the column matrix, laid out (out_h, out_w).
static void im2col_tap(float *restrict dst, const float *restrict image, const nd_conv_geom *g, int64_t i, int64_t j) {
    int64_t s = g->stride, p = g->padding, out_w = g->out_w;
    int64_t lo, hi, row_lo, row_hi;
    inside_span(j, g->width, s, p, out_w, &lo, &hi);
    inside_span(i, g->height, s, p, g->out_h, &row_lo, &row_hi);
    for (int64_t k = 0; k < row_lo * out_w; k++) dst[k] = 0.0f; // the padding rows: a row or two, if any
    for (int64_t k = row_hi * out_w; k < g->out_h * out_w; k++) dst[k] = 0.0f;
    if (s == 1 && out_w == g->width && lo < hi) {
        // Stride 1, same width: output element k reads image element k + shift, so the rows in range are
        // one contiguous block (one copy instead of a short copy per row); the columns the shift wrapped
        // around from the neighbouring row are the padding, zeroed after.
        int64_t shift = (i - p) * g->width + (j - p);
        int64_t first = row_lo * out_w + lo, last = (row_hi - 1) * out_w + hi;
        if (last > first) memcpy(dst + first, image + first + shift, (size_t)(last - first) * sizeof(float));
        for (int64_t oy = row_lo; oy < row_hi; oy++) {
            for (int64_t ox = 0; ox < lo; ox++) dst[oy * out_w + ox] = 0.0f;
            for (int64_t ox = hi; ox < out_w; ox++) dst[oy * out_w + ox] = 0.0f;
        }
        return;
    }
    for (int64_t oy = row_lo; oy < row_hi; oy++) {
        float *restrict row = dst + oy * out_w;
        int64_t tap0 = (oy * s - p + i) * g->width - p + j; // image[tap0 + ox * s] is the tap of position ox
        for (int64_t ox = 0; ox < lo; ox++) row[ox] = 0.0f;
        if (s == 2) // a constant stride lets the compiler vectorize the gather (downsampling convolutions)
            for (int64_t ox = lo; ox < hi; ox++) row[ox] = image[tap0 + 2 * ox];
        else
            for (int64_t ox = lo; ox < hi; ox++) row[ox] = image[tap0 + ox * s];
        for (int64_t ox = hi; ox < out_w; ox++) row[ox] = 0.0f;
    }
}

void nd_cpu_im2col(float *col, const float *x, const nd_conv_geom *g, int64_t batch) {
    int64_t kernel_size = g->kernel_h * g->kernel_w, rows = g->channels * kernel_size;
    int64_t plane = g->height * g->width, out_size = g->out_h * g->out_w, ld = batch * out_size;
#pragma omp parallel for collapse(2) if (rows * ld > ND_CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < batch; b++) {
            int64_t c = r / kernel_size, i = r % kernel_size / g->kernel_w, j = r % g->kernel_w;
            im2col_tap(col + r * ld + b * out_size, x + (b * g->channels + c) * plane, g, i, j);
        }
}

// Each thread owns whole (image, channel) planes of dx, so the scatter-add needs no atomics.
void nd_cpu_col2im(float *dx, const float *col, const nd_conv_geom *g, int64_t batch) {
    int64_t plane = g->height * g->width, out_size = g->out_h * g->out_w, ld = batch * out_size;
    int64_t s = g->stride, p = g->padding, out_w = g->out_w;
    int64_t work = g->channels * g->kernel_h * g->kernel_w * ld;
#pragma omp parallel for collapse(2) if (work > ND_CPU_PARALLEL_MIN)
    for (int64_t b = 0; b < batch; b++)
        for (int64_t c = 0; c < g->channels; c++) {
            float *restrict image = dx + (b * g->channels + c) * plane; // (height, width)
            for (int64_t i = 0; i < g->kernel_h; i++)
                for (int64_t j = 0; j < g->kernel_w; j++) {
                    int64_t r = (c * g->kernel_h + i) * g->kernel_w + j;
                    const float *restrict tap = col + r * ld + b * out_size; // (out_h, out_w)
                    int64_t lo, hi, row_lo, row_hi;
                    inside_span(j, g->width, s, p, out_w, &lo, &hi);
                    inside_span(i, g->height, s, p, g->out_h, &row_lo, &row_hi);
                    for (int64_t oy = row_lo; oy < row_hi; oy++) {
                        const float *row = tap + oy * out_w;
                        int64_t tap0 = (oy * s - p + i) * g->width - p + j; // pixel of position ox: tap0 + ox * s
                        if (s == 1)
                            for (int64_t ox = lo; ox < hi; ox++) image[tap0 + ox] += row[ox];
                        else
                            for (int64_t ox = lo; ox < hi; ox++) image[tap0 + ox * s] += row[ox];
                    }
                }
        }
}

void nd_cpu_max_pool_forward(float *y, int32_t *argmax, const float *x, int64_t planes, int64_t height, int64_t width,
                             int64_t kernel, int64_t stride, int64_t out_h, int64_t out_w) {
#pragma omp parallel for collapse(2) if (planes * out_h * out_w * kernel * kernel > ND_CPU_PARALLEL_MIN)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oy = 0; oy < out_h; oy++) {
            const float *image = x + pl * height * width;
            for (int64_t ox = 0; ox < out_w; ox++) {
                int64_t o = (pl * out_h + oy) * out_w + ox;
                int64_t start = oy * stride * width + ox * stride;
                argmax[o] = (int32_t)nd_max_pool_window(image, width, start, kernel, &y[o]);
            }
        }
}

// Serial within a plane: overlapping windows may route two gradients to one pixel.
void nd_cpu_max_pool_backward(float *dx, const float *dy, const int32_t *argmax, int64_t planes, int64_t plane_size,
                              int64_t out_size) {
#pragma omp parallel for if (planes * out_size > ND_CPU_PARALLEL_MIN)
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t o = 0; o < out_size; o++) dx[pl * plane_size + argmax[pl * out_size + o]] += dy[pl * out_size + o];
}

// One input row at a time: its `factor` column phases go to `factor` output channels.
void nd_cpu_pixel_unshuffle_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width,
                                    int64_t factor) {
    int64_t f = factor, out_h = height / f, out_w = width / f, out_plane = out_h * out_w;
#pragma omp parallel for if (planes * height * width > ND_CPU_PARALLEL_MIN)
    for (int64_t row = 0; row < planes * height; row++) {
        int64_t plane = row / height, iy = row % height, p1 = iy % f;
        const float *src = x + row * width;
        for (int64_t p2 = 0; p2 < f; p2++) {
            float *dst = y + ((plane * f + p1) * f + p2) * out_plane + iy / f * out_w;
            for (int64_t w = 0; w < out_w; w++) dst[w] = src[w * f + p2];
        }
    }
}

void nd_cpu_pixel_unshuffle_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                                     int64_t factor) {
    int64_t f = factor, out_h = height / f, out_w = width / f, out_plane = out_h * out_w;
#pragma omp parallel for if (planes * height * width > ND_CPU_PARALLEL_MIN)
    for (int64_t row = 0; row < planes * height; row++) {
        int64_t plane = row / height, iy = row % height, p1 = iy % f;
        float *dst = dx + row * width;
        for (int64_t p2 = 0; p2 < f; p2++) {
            const float *src = dy + ((plane * f + p1) * f + p2) * out_plane + iy / f * out_w;
            for (int64_t w = 0; w < out_w; w++) dst[w * f + p2] += src[w];
        }
    }
}

// One output row per input row, then copied to the factor - 1 rows below it.
void nd_cpu_upsample_forward(float *y, const float *x, int64_t planes, int64_t height, int64_t width, int64_t factor) {
    int64_t out_w = width * factor;
#pragma omp parallel for if (planes * height * out_w * factor > ND_CPU_PARALLEL_MIN)
    for (int64_t row = 0; row < planes * height; row++) {
        const float *src = x + row * width;
        float *dst = y + row * factor * out_w;
        for (int64_t w = 0; w < width; w++)
            for (int64_t f = 0; f < factor; f++) dst[w * factor + f] = src[w];
        for (int64_t f = 1; f < factor; f++) memcpy(dst + f * out_w, dst, (size_t)out_w * sizeof(float));
    }
}

void nd_cpu_upsample_backward(float *dx, const float *dy, int64_t planes, int64_t height, int64_t width,
                              int64_t factor) {
    int64_t out_w = width * factor;
#pragma omp parallel for if (planes * height * out_w * factor > ND_CPU_PARALLEL_MIN)
    for (int64_t row = 0; row < planes * height; row++) {
        const float *src = dy + row * factor * out_w; // (factor, out_w)
        float *dst = dx + row * width;
        for (int64_t w = 0; w < width; w++) {
            float sum = 0.0f;
            for (int64_t fy = 0; fy < factor; fy++)
                for (int64_t fx = 0; fx < factor; fx++) sum += src[fy * out_w + w * factor + fx];
            dst[w] += sum;
        }
    }
}

#ifndef ND_WITH_DNNL
// Built without oneDNN: convolutions run as im2col + OpenBLAS GEMMs (ops_conv.c), inference 3x3 ones with
// enough channels by our Winograd (cpu_winograd.c).
bool nd_cpu_conv_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                         int64_t batch, int64_t filters, bool transposed, bool inference) {
    if (nd_cpu_winograd_choice(g, filters, transposed, inference) == ND_WINOGRAD_NEVER) return false;
    nd_cpu_winograd_conv_forward(y, x, w, bias, batch, g->channels, filters, g->height, g->width);
    return true;
}

bool nd_cpu_conv_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x, const float *w,
                          const nd_conv_geom *g, int64_t batch, int64_t filters, bool transposed, bool bias) {
    return false;
}

bool nd_cpu_conv_norm_act_forward(float *y, const float *x, const float *w, const float *bias, const nd_conv_geom *g,
                                  int64_t batch, int64_t filters, int64_t groups, const float *norm_weight,
                                  const float *norm_bias, float eps, nd_unary_kind act) {
    return false;
}

size_t nd_cpu_workspace_bytes(void) { return nd_cpu_winograd_bytes(); }
#endif
