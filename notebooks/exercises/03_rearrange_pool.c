// Notebook 03: the rearrange of RearrangePoolBlock, einops' "b c (h p1) (w p2) -> b (c p1 p2) h w".
//
// Max pooling keeps one pixel of four and throws three away. RearrangePoolBlock keeps them all: each 2x2
// patch becomes 4 channels at half the resolution (space-to-depth), and a GELUConvBlock(4C -> C) then mixes
// them. Written with a reshape and a permute: (B, C, H, W) -> (B, C, H/2, 2, W/2, 2) names the axes
// b c h p1 w p2; permute them into the order b c p1 p2 h w; reshape to (B, 4C, H/2, W/2).
// Output channel c*4 + p1*2 + p2 at (h, w) holds input channel c at (2h + p1, 2w + p2).
// Fill in each FIXME, then: nanodiff exercise check 03_rearrange_pool YOUR_FILE.c
#include "exercise.h"

// x (B, C, H, W), H and W even -> (B, 4C, H/2, W/2)
nd_tensor *ex_rearrange(nd_ctx *ctx, nd_tensor *x) {
    int64_t b = x->shape.d[0], c = x->shape.d[1], h = x->shape.d[2] / 2, w = x->shape.d[3] / 2;
    nd_tensor *split = nd_reshape(ctx, x, ND_SHAPE(b, c, h, 2, w, 2)); // b c h p1 w p2
    const int perm[6] = {FIXME, FIXME, FIXME, FIXME, FIXME, FIXME}; // -> b c p1 p2 h w
    nd_tensor *moved = nd_permute(ctx, split, perm);
    return nd_reshape(ctx, moved, ND_SHAPE(b, 4 * c, h, w));
}
