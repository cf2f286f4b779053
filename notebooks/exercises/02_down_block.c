// Notebook 02: DownBlock's layers, the channel plumbing of the down path (12 blanks).
//
// DownBlock(in_chs, out_chs) = Conv2d(in_chs, out_chs, kernel_size, stride, padding) -> BatchNorm2d ->
// ReLU -> Conv2d(out_chs, out_chs, ...) -> BatchNorm2d -> ReLU -> MaxPool2d(2): the convolutions keep H and
// W (kernel 3, stride 1, padding 1) and the pooling halves them. A layer's input channels are what the
// previous layer put out; a BatchNorm2d has one weight and bias per channel it normalizes.
// The names "model.0", "model.1", ... are the PyTorch Sequential's indices (2 and 5 are the ReLUs).
// Fill in each FIXME, then: nanodiff exercise check 02_down_block YOUR_FILE.c
#include "exercise.h"

void ex_v1_down_block_init(ex_v1_down_block *b, nd_params *params, nd_params *buffers, int in_chs, int out_chs) {
    const int kernel_size = 3, stride = 1, padding = 1;
    nd_conv2d_layer_init(&b->conv1, params, "model.0", FIXME, FIXME, FIXME, FIXME, FIXME, true);
    nd_batch_norm2d_layer_init(&b->bn1, params, buffers, "model.1", FIXME);
    nd_conv2d_layer_init(&b->conv2, params, "model.3", FIXME, FIXME, FIXME, FIXME, FIXME, true);
    nd_batch_norm2d_layer_init(&b->bn2, params, buffers, "model.4", FIXME);
}

// x (B, in, H, W) -> (B, out, H/2, W/2)
nd_tensor *ex_v1_down_block_forward(nd_ctx *ctx, const ex_v1_down_block *b, nd_tensor *x) {
    nd_tensor *h = nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, &b->bn1, nd_conv2d_layer_forward(ctx, &b->conv1, x), true));
    h = nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, &b->bn2, nd_conv2d_layer_forward(ctx, &b->conv2, h), true));
    return nd_max_pool2d(ctx, h, 2, 2);
}
