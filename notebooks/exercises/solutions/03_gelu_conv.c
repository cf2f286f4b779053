// Notebook 03: GELUConvBlock, the building brick of the final U-Net.
//
// Notebook 02's blocks were Conv -> BatchNorm -> ReLU. Notebook 03 swaps in GroupNorm (statistics of each
// image's channel groups, so a batch of one behaves as a batch of 128) and GELU (smooth, no dead units):
// Conv2d(in, out, 3, 1, 1) -> GroupNorm(groups, out) -> GELU. The block's layers are b->conv and b->norm
// (nn.h); nd_conv2d_layer_forward, nd_group_norm_layer_forward and nd_gelu do one step each.
// The reference solution.
#include "exercise.h"

// x (B, in, H, W) -> (B, out, H, W)
nd_tensor *ex_gelu_conv_forward(nd_ctx *ctx, const nd_gelu_conv_block *b, nd_tensor *x) {
    nd_tensor *h = nd_conv2d_layer_forward(ctx, &b->conv, x); // (B, out, H, W)
    h = nd_group_norm_layer_forward(ctx, &b->norm, h);
    return nd_gelu(ctx, h);
}
