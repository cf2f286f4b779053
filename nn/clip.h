// nanodiff CLIP: a small contrastive image/text model (Radford et al. 2021) with OpenAI's layout and init.
// Text: token + position embeddings, causal pre-LayerNorm Transformer, final LayerNorm, the feature at the end
// token, projection. Image: a ViT (patch embedding by a strided conv, class token, pre-LN blocks, LayerNorm,
// projection). Parameters are named as open_clip's state_dict (token_embedding.weight, transformer.resblocks.0.
// ln_1.weight, visual.conv1.weight, logit_scale, ...), except that each attention holds to_q/to_k/to_v/to_out
// (nd_attention_layer) where PyTorch packs in_proj_weight. Included by nn.h.
#ifndef ND_CLIP_H
#define ND_CLIP_H

#include "autograd.h"

struct nd_params;

#define ND_CLIP_LOGIT_SCALE_MAX 4.6051702f // ln(100): CLIP clamps the learnt logit scale at 100

typedef struct nd_clip_config {
    int vocab_size;     // the tokenizer's (bytes + merges + start + end)
    int context_length; // tokens per prompt (77)
    int text_width, text_layers, text_heads;
    int img_ch, img_size; // square images
    int patch_size;       // ViT patch (img_size must be a multiple)
    int vision_width, vision_layers, vision_heads;
    int embed_dim; // the shared space both projections map into
} nd_clip_config;

// A small CLIP for 16x16 Fashion-MNIST: text 64 wide, 2 layers, 4 heads, context 77; ViT patch 4, 64 wide,
// 3 layers, 4 heads; 64-d shared space.
nd_clip_config nd_clip_config_default(int vocab_size);

// open_clip's ResidualAttentionBlock: x + attn(ln_1(x)); x + mlp(ln_2(x)), mlp = c_fc -> GELU -> c_proj (4 width).
typedef struct nd_clip_resblock {
    nd_norm_layer ln_1, ln_2;
    nd_attention_layer attn;
    nd_linear_layer c_fc, c_proj;
} nd_clip_resblock;

typedef struct nd_clip {
    nd_clip_config config;
    nd_params params;
    // text tower
    nd_embedding_layer token_embedding; // (vocab, W)
    nd_tensor *positional_embedding;    // (S, W)
    nd_clip_resblock *text_blocks;      // (text_layers)
    nd_norm_layer ln_final;
    nd_tensor *text_projection; // (W, E): features @ text_projection, as open_clip
    // image tower (ViT)
    nd_conv2d_layer conv1;               // patch embedding: (Wv, C, p, p), stride p, no bias
    nd_tensor *class_embedding;          // (Wv)
    nd_tensor *vis_positional_embedding; // (1 + patches, Wv), "visual.positional_embedding"
    nd_norm_layer ln_pre, ln_post;
    nd_clip_resblock *vision_blocks; // (vision_layers)
    nd_tensor *vis_proj;             // (Wv, E), "visual.proj"
    nd_tensor *logit_scale;          // (1): ln of the similarity scale, initialised to ln(1/0.07)
} nd_clip;

// Registers every parameter (not yet allocated).
void nd_clip_init(nd_clip *clip, nd_clip_config config);
// init + allocation + OpenAI CLIP's initialisation from the context's RNG: token embedding N(0, 0.02^2),
// positions N(0, 0.01^2), attention in-projections N(0, W^-1), attention out and MLP out
// N(0, (W^-0.5 (2 layers)^-0.5)^2), MLP in N(0, (2W)^-1), text projection N(0, W^-1); ViT class and position
// embeddings N(0, W^-1), projection N(0, W^-1); the ViT's blocks as the text's; LayerNorms weight 1 bias 0,
// attention out bias 0, MLP biases PyTorch's default.
void nd_clip_create(nd_clip *clip, nd_clip_config config, nd_ctx *ctx);
void nd_clip_free(nd_clip *clip);

// open_clip encode_text: ids (batch, context_length) token ids on the host (nd_tokenizer_encode_batch) ->
// the projected end-token feature (batch, E), not normalised. When tokens is not NULL it receives the
// per-token features after ln_final (batch, context_length, W): the sequence a text-to-image U-Net attends to.
nd_tensor *nd_clip_encode_text(nd_ctx *ctx, const nd_clip *clip, const int32_t *ids, int batch, nd_tensor **tokens);
// open_clip encode_image: images (B, C, S, S) in [-1, 1] -> (B, E), not normalised.
nd_tensor *nd_clip_encode_image(nd_ctx *ctx, const nd_clip *clip, nd_tensor *images);

// F.normalize(x, dim=-1) over the last dim, as x / sqrt(||x||^2 + 1e-24): equal to float precision unless
// ||x|| < ~1e-12; composed of differentiable ops.
nd_tensor *nd_l2_normalize(nd_ctx *ctx, nd_tensor *x);
// CLIP's symmetric loss on L2-normalised embeddings image (N, E) and text (N, E): logits = exp(logit_scale)
// image @ text^T (N, N); (CE(logits, arange N) + CE(logits^T, arange N)) / 2 -> a one-element tensor.
nd_tensor *nd_clip_contrastive_loss(nd_ctx *ctx, nd_tensor *image_emb, nd_tensor *text_emb, nd_tensor *logit_scale);
// The whole training forward: both encoders, normalisation, contrastive loss over the batch's pairs.
// images (B, C, S, S), ids (B, context_length) host token ids.
nd_tensor *nd_clip_loss(nd_ctx *ctx, const nd_clip *clip, nd_tensor *images, const int32_t *ids);
// Clamps logit_scale to [0, ln(100)] in place (after every optimizer step, as CLIP does).
void nd_clip_clamp_logit_scale(nd_ctx *ctx, nd_clip *clip);

#endif
