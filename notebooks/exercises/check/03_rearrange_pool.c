// Checks ex_rearrange against F.pixel_unshuffle(x, 2), the same ordering as the course's einops pattern.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_tensor *x = ck_randn(ctx, ND_SHAPE(2, 3, 4, 6));
    nd_tensor *got = ex_rearrange(ctx, x);
    nd_tensor *want = nd_pixel_unshuffle(ctx, x, 2);
    if (!ck_shape("the rearranged tensor", got, want->shape)) return false;
    if (ck_close_to(ctx, got, want, 0)) return true;
    // Where did the student's output channel k at (h, w) come from? Report the first misplaced one.
    float *g = ck_host(ctx, got), *in = ck_host(ctx, x);
    bool found = false;
    for (int k = 0; k < 12 && !found; k++)
        for (int i = 0; i < 2 * 3 && !found; i++) {
            int h = i / 3, w = i % 3, c = k / 4, p1 = (k / 2) % 2, p2 = k % 2;
            float v = g[(k * 2 + h) * 3 + w], expect = in[(c * 4 + 2 * h + p1) * 6 + 2 * w + p2];
            if (v == expect) continue;
            found = true;
            for (int cc = 0; cc < 3; cc++)
                for (int y = 0; y < 4; y++)
                    for (int z = 0; z < 6; z++)
                        if (in[(cc * 4 + y) * 6 + z] == v) {
                            ck_fail("output channel %d at (h %d, w %d) holds input channel %d at (%d, %d); expected "
                                    "input channel %d at (%d, %d): channel c*4 + p1*2 + p2 must take pixel "
                                    "(2h + p1, 2w + p2) of channel c",
                                    k, h, w, cc, y, z, c, 2 * h + p1, 2 * w + p2);
                            cc = 3, y = 4, z = 6;
                        }
        }
    free(g), free(in);
    return ck_close(ctx, "the rearranged tensor", got, want, 0);
}
