// Checks the seven block names of the assessment's 6.3.
#include "check.h"

static bool check(nd_ctx *ctx) {
    static const char *const names[7] = {"DownBlock", "EmbedBlock", "GELUConvBlock", "RearrangePoolBlock",
                                         "ResidualConvBlock", "SinusoidalPositionEmbedBlock", "UpBlock"};
    static const char *const hints[7] = {
        "it halves H and W: the down path's block",
        "an MLP whose output is unflattened to (emb, 1, 1): it embeds a vector for the up path",
        "the smallest block: one convolution, a norm, an activation",
        "space-to-depth then a conv: the block that replaces max pooling",
        "it returns x1 + x2: a skip around the second conv",
        "sines and cosines of t: the time's embedding",
        "it concatenates a skip and doubles H and W: the up path's block"};
    bool ok = true;
    for (int i = 0; i < 7; i++) {
        const char *got = ex_block_names[i];
        if (!got)
            ok = ck_fail("block %d is still FIXME: %s", i + 1, hints[i]);
        else if (strcmp(got, names[i]) != 0)
            ok = ck_fail("block %d is not %s: %s", i + 1, got, hints[i]);
    }
    return ok;
}
