// Gradient-check cases for the convolution family: conv2d, conv_transpose2d, max_pool2d, pixel_unshuffle,
// upsample_nearest. The convolutions are linear in each input, so central differences are exact up to
// rounding and the default tolerances hold.
#include "gradcheck.h"

#define IN(...) {.shape = GC_SHAPE(__VA_ARGS__)}
#define IN_DISTINCT(...) {.shape = GC_SHAPE(__VA_ARGS__), .fill = GC_FILL_DISTINCT}

// Chunk budgets of two column matrices (rows x positions floats per image) for the chunked cases: a batch
// of 5 then runs as chunks of 2, 2 and 1 images, so the scratch reuse across chunks and the ragged last
// chunk are both covered. They ask for the im2col + GEMM path, which a build with a convolution library
// (oneDNN) would otherwise not run.
#define TWO_IMAGES(rows, positions) (2 * (rows) * (positions) * sizeof(float))

static nd_tensor *conv2d_s1p1(nd_ctx *c, nd_tensor **x) { return nd_conv2d(c, x[0], x[1], x[2], 1, 1); }
static nd_tensor *conv2d_s2p1(nd_ctx *c, nd_tensor **x) { return nd_conv2d(c, x[0], x[1], x[2], 2, 1); }
static nd_tensor *conv2d_nobias(nd_ctx *c, nd_tensor **x) { return nd_conv2d(c, x[0], x[1], NULL, 1, 0); }
static nd_tensor *conv2d_1x1(nd_ctx *c, nd_tensor **x) { return nd_conv2d(c, x[0], x[1], x[2], 1, 0); }
static nd_tensor *conv2d_chunked(nd_ctx *c, nd_tensor **x) {
    c->conv_chunk_bytes = TWO_IMAGES(3 * 3 * 3, 5 * 5);
    c->conv_gemm = true;
    return nd_conv2d(c, x[0], x[1], x[2], 1, 1);
}

static nd_tensor *convt_k2s2(nd_ctx *c, nd_tensor **x) { return nd_conv_transpose2d(c, x[0], x[1], x[2], 2, 0, 0); }
static nd_tensor *convt_k3s2(nd_ctx *c, nd_tensor **x) { return nd_conv_transpose2d(c, x[0], x[1], x[2], 2, 1, 1); }
static nd_tensor *convt_nobias(nd_ctx *c, nd_tensor **x) { return nd_conv_transpose2d(c, x[0], x[1], NULL, 1, 1, 0); }
static nd_tensor *convt_chunked(nd_ctx *c, nd_tensor **x) {
    c->conv_chunk_bytes = TWO_IMAGES(4 * 3 * 3, 3 * 3);
    c->conv_gemm = true;
    return nd_conv_transpose2d(c, x[0], x[1], x[2], 2, 1, 1);
}

static nd_tensor *max_pool_k2s2(nd_ctx *c, nd_tensor **x) { return nd_max_pool2d(c, x[0], 2, 2); }
static nd_tensor *max_pool_k3s2(nd_ctx *c, nd_tensor **x) { return nd_max_pool2d(c, x[0], 3, 2); }
static nd_tensor *unshuffle2(nd_ctx *c, nd_tensor **x) { return nd_pixel_unshuffle(c, x[0], 2); }
static nd_tensor *unshuffle3(nd_ctx *c, nd_tensor **x) { return nd_pixel_unshuffle(c, x[0], 3); }
static nd_tensor *upsample2(nd_ctx *c, nd_tensor **x) { return nd_upsample_nearest(c, x[0], 2); }
static nd_tensor *upsample3(nd_ctx *c, nd_tensor **x) { return nd_upsample_nearest(c, x[0], 3); }

const gc_case gc_cases_conv[] = {
    {.name = "conv2d", .n_inputs = 3, .inputs = {IN(2, 3, 6, 6), IN(4, 3, 3, 3), IN(4)}, .build = conv2d_s1p1},
    {.name = "conv2d_stride2", .n_inputs = 3, .inputs = {IN(2, 3, 5, 5), IN(4, 3, 3, 3), IN(4)},
     .build = conv2d_s2p1},
    {.name = "conv2d_nobias", .n_inputs = 2, .inputs = {IN(2, 3, 5, 6), IN(4, 3, 2, 3)}, .build = conv2d_nobias},
    {.name = "conv2d_1x1", .n_inputs = 3, .inputs = {IN(2, 3, 4, 5), IN(4, 3, 1, 1), IN(4)}, .build = conv2d_1x1},
    {.name = "conv2d_chunked", .n_inputs = 3, .inputs = {IN(5, 3, 5, 5), IN(4, 3, 3, 3), IN(4)},
     .build = conv2d_chunked},
    {.name = "conv_transpose2d_k2s2", .n_inputs = 3, .inputs = {IN(2, 3, 4, 4), IN(3, 4, 2, 2), IN(4)},
     .build = convt_k2s2},
    {.name = "conv_transpose2d_k3s2_outpad", .n_inputs = 3, .inputs = {IN(2, 3, 4, 4), IN(3, 4, 3, 3), IN(4)},
     .build = convt_k3s2},
    {.name = "conv_transpose2d_nobias", .n_inputs = 2, .inputs = {IN(2, 3, 4, 5), IN(3, 4, 3, 3)},
     .build = convt_nobias},
    {.name = "conv_transpose2d_chunked", .n_inputs = 3, .inputs = {IN(5, 3, 3, 3), IN(3, 4, 3, 3), IN(4)},
     .build = convt_chunked},
    {.name = "max_pool2d", .n_inputs = 1, .inputs = {IN_DISTINCT(2, 3, 6, 6)}, .build = max_pool_k2s2},
    {.name = "max_pool2d_overlap", .n_inputs = 1, .inputs = {IN_DISTINCT(2, 3, 7, 7)}, .build = max_pool_k3s2},
    {.name = "pixel_unshuffle", .n_inputs = 1, .inputs = {IN(2, 3, 4, 6)}, .build = unshuffle2},
    {.name = "pixel_unshuffle_factor3", .n_inputs = 1, .inputs = {IN(1, 2, 6, 3)}, .build = unshuffle3},
    {.name = "upsample_nearest", .n_inputs = 1, .inputs = {IN(2, 3, 3, 4)}, .build = upsample2},
    {.name = "upsample_nearest_factor3", .n_inputs = 1, .inputs = {IN(1, 2, 2, 3)}, .build = upsample3},
};
const int gc_cases_conv_count = (int)(sizeof gc_cases_conv / sizeof gc_cases_conv[0]);
