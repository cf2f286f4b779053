// Checks ex_embed_block_init's parameter shapes and ex_embed_block_forward against the library's EmbedBlock.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_params p;
    nd_params_init(&p);
    nd_embed_block b;
    ex_embed_block_init(&b, &p, "temb_1", 8, 128);
    bool ok = ck_param(&p, "temb_1.model.0.weight", ND_SHAPE(128, 8)) & ck_param(&p, "temb_1.model.0.bias", ND_SHAPE(128)) &
              ck_param(&p, "temb_1.model.2.weight", ND_SHAPE(128, 128)) & ck_param(&p, "temb_1.model.2.bias", ND_SHAPE(128));
    if (ok) {
        nd_params_alloc(&p, ctx);
        nd_tensor *x = ck_randn(ctx, ND_SHAPE(3, 8));
        nd_tensor *got = ex_embed_block_forward(ctx, &b, x);
        ok = ck_close(ctx, "EmbedBlock(8, 128)'s output", got, nd_embed_block_forward(ctx, &b, x), 1e-5);
    } else {
        printf("hint: EmbedBlock(in, emb) maps in -> emb -> emb; the time embedding of width 8 feeds up0's 128 "
               "channels\n");
    }
    nd_params_free(&p);
    return ok;
}
