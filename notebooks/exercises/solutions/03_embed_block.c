// Notebook 03: EmbedBlock, a small MLP that turns an embedding (of the time, later of the class) into one
// value per channel of the layer it feeds.
//
// view(-1, in) -> Linear(in, emb) -> GELU -> Linear(emb, emb) -> Unflatten to (emb, 1, 1), so the result
// (B, emb, 1, 1) broadcasts over a (B, emb, H, W) feature map. The blanks are the emb_dim's: where does
// the width of the feature map it is added to go? Register the layers as "<name>.model.0" and
// "<name>.model.2" (the PyTorch Sequential's indices) with nd_linear_layer_init.
// The reference solution.
#include "exercise.h"

void ex_embed_block_init(nd_embed_block *b, nd_params *params, const char *name, int in_dim, int emb_dim) {
    char key[ND_NAME_MAX];
    nd_linear_layer_init(&b->fc1, params, nd_module_name(key, "%s.model.0", name), in_dim, emb_dim, true);
    nd_linear_layer_init(&b->fc2, params, nd_module_name(key, "%s.model.2", name), emb_dim, emb_dim, true);
}

// x (B, in) -> (B, emb, 1, 1)
nd_tensor *ex_embed_block_forward(nd_ctx *ctx, const nd_embed_block *b, nd_tensor *x) {
    nd_tensor *flat = nd_reshape(ctx, x, ND_SHAPE(-1, b->fc1.in_features));                             // (B, in)
    nd_tensor *h = nd_linear_layer_forward(ctx, &b->fc2, nd_gelu(ctx, nd_linear_layer_forward(ctx, &b->fc1, flat)));
    return nd_reshape(ctx, h, ND_SHAPE(h->shape.d[0], b->fc2.out_features, 1, 1));
}
