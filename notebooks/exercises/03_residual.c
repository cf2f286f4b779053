// Notebook 03: ResidualConvBlock, x1 = GELUConv(in -> out)(x); x2 = GELUConv(out -> out)(x1); return x1 + x2.
//
// The skip is taken after the first block, where the channel count already is `out`, so the sum needs no
// projection; the second block only has to learn a correction. b->conv1 and b->conv2 are the two
// GELUConvBlocks (nd_gelu_conv_block_forward runs one).
// Fill in each FIXME, then: nanodiff exercise check 03_residual YOUR_FILE.c
#include "exercise.h"

// x (B, in, H, W) -> (B, out, H, W)
nd_tensor *ex_residual_forward(nd_ctx *ctx, const nd_residual_conv_block *b, nd_tensor *x) {
    nd_tensor *x1 = nd_gelu_conv_block_forward(ctx, &b->conv1, x);  // (B, out, H, W)
    nd_tensor *x2 = nd_gelu_conv_block_forward(ctx, &b->conv2, FIXME); // (B, out, H, W)
    return FIXME; // the residual sum
}
