// Notebook 03: UpBlock.forward(x, skip).
//
// The up path doubles the resolution and brings back the detail the down path saw: concatenate x with the
// skip connection of the same size along the channels (x first, as torch.cat((x, skip), 1)), then
// ConvTranspose2d(2 in -> out, kernel 2, stride 2) doubles H and W, then four GELUConvBlocks (b->convs[0..3]).
// b->up is the transposed convolution (nd_conv_transpose2d_layer_forward).
// The reference solution.
#include "exercise.h"

// x, skip (B, in, H, W) -> (B, out, 2H, 2W)
nd_tensor *ex_up_block_forward(nd_ctx *ctx, const nd_up_block *b, nd_tensor *x, nd_tensor *skip) {
    nd_tensor *pair[2] = {x, skip};
    nd_tensor *h = nd_concat(ctx, pair, 2, 1);           // (B, 2 in, H, W)
    h = nd_conv_transpose2d_layer_forward(ctx, &b->up, h); // (B, out, 2H, 2W)
    for (int i = 0; i < 4; i++) h = nd_gelu_conv_block_forward(ctx, &b->convs[i], h);
    return h;
}
