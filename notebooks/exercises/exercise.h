// The exercises' shared declarations: every function a student fills in, as its checker calls it.
// A blank is written FIXME; it compiles (as 0) so the checker can say what is missing.
#ifndef ND_EXERCISE_H
#define ND_EXERCISE_H

#include "autograd.h"
#include "data.h"
#include "nn.h"
#include "sample.h"

#define FIXME 0

// 02: notebook 02's DownBlock: Conv2d(in, out, 3, 1, 1) -> BatchNorm2d -> ReLU -> Conv2d(out, out, 3, 1, 1)
// -> BatchNorm2d -> ReLU -> MaxPool2d(2).
typedef struct ex_v1_down_block {
    nd_conv2d_layer conv1, conv2;
    nd_batch_norm2d_layer bn1, bn2;
} ex_v1_down_block;
void ex_v1_down_block_init(ex_v1_down_block *b, nd_params *params, nd_params *buffers, int in_chs, int out_chs);
nd_tensor *ex_v1_down_block_forward(nd_ctx *ctx, const ex_v1_down_block *b, nd_tensor *x);

// 02: notebook 02's UpBlock: cat(x, skip) -> ConvTranspose2d(2 in, out, 3, 2, 1, 1) -> BatchNorm2d -> ReLU ->
// Conv2d(out, out, 3, 1, 1) -> BatchNorm2d -> ReLU.
typedef struct ex_v1_up_block {
    nd_conv_transpose2d_layer up;
    nd_conv2d_layer conv;
    nd_batch_norm2d_layer bn1, bn2;
} ex_v1_up_block;
void ex_v1_up_block_init(ex_v1_up_block *b, nd_params *params, nd_params *buffers, int in_chs, int out_chs);
nd_tensor *ex_v1_up_block_forward(nd_ctx *ctx, const ex_v1_up_block *b, nd_tensor *x, nd_tensor *skip);

// 02: registers every layer of notebook 02's U-Net (names and shapes as the library's dli-unet-v1, t_dim 1).
void ex_v1_unet_init(nd_params *params, nd_params *buffers, int img_chs, int img_size, const int down_chs[3]);

// 02: q(x_t | x_0) for a batch, one timestep per image.
nd_tensor *ex_q(nd_ctx *ctx, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise, const int *t);

// 03: the blocks of the final U-Net (their structs are the library's, nn.h).
nd_tensor *ex_gelu_conv_forward(nd_ctx *ctx, const nd_gelu_conv_block *b, nd_tensor *x);
nd_tensor *ex_rearrange(nd_ctx *ctx, nd_tensor *x); // b c (h 2) (w 2) -> b (c 2 2) h w
nd_tensor *ex_residual_forward(nd_ctx *ctx, const nd_residual_conv_block *b, nd_tensor *x);
nd_tensor *ex_sinusoidal_embed(nd_ctx *ctx, nd_tensor *t, int dim);
void ex_embed_block_init(nd_embed_block *b, nd_params *params, const char *name, int in_dim, int emb_dim);
nd_tensor *ex_embed_block_forward(nd_ctx *ctx, const nd_embed_block *b, nd_tensor *x);
nd_tensor *ex_up_block_forward(nd_ctx *ctx, const nd_up_block *b, nd_tensor *x, nd_tensor *skip);
int ex_group_size_base(void);

// 04: label dropout and the guided noise prediction.
nd_tensor *ex_context_mask(nd_ctx *ctx, const int32_t *labels, int n, int classes, float drop_prob);
nd_tensor *ex_guided_eps(nd_ctx *ctx, const nd_model *model, nd_tensor *x_t, nd_tensor *t, nd_tensor *c, float w);

// 05: get_img_encodings (preprocess each image, stack, encode with the image encoder) and the cosine
// similarity of every row of a (n, E) with every row of b (m, E) -> (n, m).
nd_tensor *ex_get_img_encodings(nd_ctx *ctx, const nd_clip *clip, const nd_dataset *ds, const int64_t *indices, int n);
nd_tensor *ex_cosine_similarity(nd_ctx *ctx, nd_tensor *a, nd_tensor *b);

// P1: the lesson's CrossAttention: x (B, N, d_model) attends over context (B, S, context_dim).
typedef struct ex_cross_attention {
    nd_norm_layer norm;                         // LayerNorm(d_model) on the image features
    nd_linear_layer to_q, to_k, to_v, out_proj; // q from the image, k and v from the context
    int heads;
    int64_t d_model, context_dim;
} ex_cross_attention;
void ex_cross_attention_init(ex_cross_attention *m, nd_params *params, const char *name, int64_t d_model,
                             int64_t context_dim, int heads);
nd_tensor *ex_cross_attention_forward(nd_ctx *ctx, const ex_cross_attention *m, nd_tensor *x, nd_tensor *context);

// P4: a U-Net level's cross-attention block on feature maps x (B, C, H, W) and a prompt's tokens
// (B, S, context_dim): x + to_out(attention(to_q(norm(x)), to_k(context), to_v(context))).
typedef struct ex_prompt_block {
    nd_norm_layer norm;
    nd_linear_layer to_q, to_k, to_v, to_out;
    int heads;
} ex_prompt_block;
void ex_prompt_block_init(ex_prompt_block *b, nd_params *params, int64_t d_model, int64_t context_dim, int heads);
nd_tensor *ex_prompt_block_forward(nd_ctx *ctx, const ex_prompt_block *b, nd_tensor *x, nd_tensor *context);

// P2: n images (n, C, S, S) into out for prompt, sampled by hand: the CLIP text encoder's features of the prompt
// and of "", guidance scale s, the lesson's clamped reverse step over all T steps, x_T drawn from ctx's generator
// reset to (seed, 0).
void ex_t2i_sample(nd_ctx *ctx, const nd_model *unet, const nd_schedule *s, const nd_tokenizer *tok,
                   const nd_clip *clip, const char *prompt, int n, float guidance_scale, uint64_t seed, float *out);

// P5: the pipeline generate_image wires together, loaded once: the tokenizer, the frozen CLIP (its text encoder),
// the text-to-image U-Net and its schedule, on ctx; seed: the starting noise's.
typedef struct ex_pipeline {
    nd_ctx *ctx;
    const nd_tokenizer *tok;
    const nd_clip *clip;
    const nd_model *unet;
    const nd_schedule *schedule;
    uint64_t seed;
} ex_pipeline;
// One image (channels, image_size, image_size) into out, in [0, 1]; false, saying why on stderr, when image_size
// or channels are not the U-Net's. steps: all T for the lesson's DDPM step, fewer for DDIM.
bool ex_generate_image(const ex_pipeline *p, const char *prompt, const char *negative_prompt, float guidance_scale,
                       int steps, int image_size, int channels, float *out);

// 06: the assessment's blanks.
typedef struct ex_ddpm {
    int T;
    float *beta, *a, *a_bar, *sqrt_a_bar, *sqrt_one_minus_a_bar, *sqrt_a_inv, *pred_noise_coeff; // (T,) each
} ex_ddpm;
void ex_ddpm_init(ex_ddpm *d, int T, const float *beta); // fills every array from beta
nd_tensor *ex_ddpm_q(nd_ctx *ctx, const ex_ddpm *d, nd_tensor *x_0, nd_tensor *noise, int t);
nd_tensor *ex_ddpm_reverse_q(nd_ctx *ctx, const ex_ddpm *d, nd_tensor *x_t, int t, nd_tensor *e_t, nd_tensor *z);
extern const char *const ex_block_names[7];
extern const float ex_c_drop_prob;
nd_tensor *ex_get_context_mask(nd_ctx *ctx, nd_tensor *c_one_hot, float drop_prob);
const int32_t *ex_batch_labels(const nd_batch *batch);
nd_tensor *ex_get_loss(nd_ctx *ctx, const nd_model *model, const nd_schedule *s, nd_tensor *x_0, const int *t_host,
                       nd_tensor *t, nd_tensor *noise, nd_tensor *context);
nd_tensor *ex_cfg_eps(nd_ctx *ctx, nd_tensor *e_t_keep_c, nd_tensor *e_t_drop_c, float w);
extern const float ex_w;

// P3: the timesteps each sampler visits, in order; returns how many.
int ex_ddpm_timesteps(int T, int *ts);
int ex_ddim_timesteps(int T, int steps, int *ts);

#endif
