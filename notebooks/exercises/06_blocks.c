// Notebook 06 (assessment), 6.3 U-Net: seven class definitions whose names were blanked (7 blanks).
//
// The bodies are intact; name each block from what it does. The names: DownBlock, EmbedBlock, GELUConvBlock,
// RearrangePoolBlock, ResidualConvBlock, SinusoidalPositionEmbedBlock, UpBlock (nanodiff's nd_down_block,
// nd_embed_block, ... in nn.h).
// Fill in each FIXME (a string), then: nanodiff exercise check 06_blocks YOUR_FILE.c
#include "exercise.h"

const char *const ex_block_names[7] = {
    FIXME,                          // GELUConvBlock(in, out), GELUConvBlock(out, out), RearrangePoolBlock(out)
    FIXME,                          // Linear(in, emb) -> GELU -> Linear(emb, emb) -> Unflatten(1, (emb, 1, 1))
    FIXME,                          // Conv2d(in, out, 3, 1, 1) -> GroupNorm(group_size, out) -> GELU
    FIXME,                          // Rearrange("b c (h p1) (w p2) -> b (c p1 p2) h w") -> GELUConvBlock(4 in, in)
    FIXME,                          // x1 = GELUConvBlock(in, out)(x); x2 = GELUConvBlock(out, out)(x1); x1 + x2
    FIXME,                          // cat(sin(t f), cos(t f)), f_k = exp(-k ln(10000) / (half - 1))
    FIXME,                          // cat(x, skip) -> ConvTranspose2d(2 in, out, 2, 2) -> 4 x GELUConvBlock(out, out)
};
