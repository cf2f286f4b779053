// Notebook 02: UpBlock, the up path's layers and its forward (16 blanks).
//
// UpBlock(in_chs, out_chs).forward(x, skip): torch.cat((x, skip), 1) doubles the channels to 2 in_chs;
// ConvTranspose2d(2 in_chs, out_chs, kernel_size, strideT, padding, out_paddingT) doubles H and W
// (new size = (size - 1) stride - 2 padding + kernel + output_padding, with kernel 3, stride 2, padding 1,
// output_padding 1) -> BatchNorm2d -> ReLU -> Conv2d(out_chs, out_chs, 3, 1, 1) -> BatchNorm2d -> ReLU.
// The reference solution.
#include "exercise.h"

void ex_v1_up_block_init(ex_v1_up_block *b, nd_params *params, nd_params *buffers, int in_chs, int out_chs) {
    const int kernel_size = 3, stride = 1, padding = 1, strideT = 2, out_paddingT = 1;
    nd_conv_transpose2d_layer_init(&b->up, params, "model.0", 2 * in_chs, out_chs, kernel_size, strideT, padding,
                                   out_paddingT);
    nd_batch_norm2d_layer_init(&b->bn1, params, buffers, "model.1", out_chs);
    nd_conv2d_layer_init(&b->conv, params, "model.3", out_chs, out_chs, kernel_size, stride, padding, true);
    nd_batch_norm2d_layer_init(&b->bn2, params, buffers, "model.4", out_chs);
}

// x, skip (B, in, H, W) -> (B, out, 2H, 2W)
nd_tensor *ex_v1_up_block_forward(nd_ctx *ctx, const ex_v1_up_block *b, nd_tensor *x, nd_tensor *skip) {
    nd_tensor *pair[2] = {x, skip};
    nd_tensor *h = nd_concat(ctx, pair, 2, 1); // (B, 2 in, H, W)
    h = nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, &b->bn1, nd_conv_transpose2d_layer_forward(ctx, &b->up, h), true));
    return nd_relu(ctx, nd_batch_norm2d_layer_forward(ctx, &b->bn2, nd_conv2d_layer_forward(ctx, &b->conv, h), true));
}
