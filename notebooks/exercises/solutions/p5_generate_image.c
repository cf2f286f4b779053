// Lesson practice P5: generate_image(prompt, negative_prompt, guidance_scale, steps, image_size, channels), the
// whole text-to-image pipeline wired together.
//
// tokenizer -> CLIP text encoder -> U-Net -> schedule -> reverse step -> [0, 1]. The prompt and the negative
// prompt ("" by default: the null condition) are tokenized together and encoded by the frozen CLIP text encoder;
// the U-Net's cross-attention reads the whole token sequence after the final LayerNorm (context_length, width),
// not the pooled end-token vector, which is for similarity. The negative prompt's features take the place of
// the unconditional branch (how Stable Diffusion does it). nd_sample_images runs the loop: guided in one doubled
// batch, e = (1 + w) e_c - w e_u in the course's form, which is e_u + s (e_c - e_u) with s = 1 + w; the lesson's
// reverse step over all T steps (the posterior DDPM step with x0_hat clamped to [-1, 1]), or DDIM in fewer, x0_hat
// clamped too. The output in [-1, 1] is shown as (x + 1) / 2.
// The reference solution.
#include <stdio.h>
#include <stdlib.h>

#include "exercise.h"

bool ex_generate_image(const ex_pipeline *p, const char *prompt, const char *negative_prompt, float guidance_scale,
                       int steps, int image_size, int channels, float *out) {
    nd_ctx *ctx = p->ctx;
    const nd_model_config *mc = &p->unet->config;
    if (image_size != mc->img_size || channels != mc->img_ch) {
        fprintf(stderr, "generate_image: the U-Net makes %dx%d images of %d channel(s), not %dx%d of %d\n",
                mc->img_size, mc->img_size, mc->img_ch, image_size, image_size, channels);
        return false;
    }
    // tokenizer: (2, context_length) ids, the prompt's row first
    const char *texts[2] = {prompt, negative_prompt ? negative_prompt : ""};
    int32_t *ids = malloc((size_t)(2 * p->clip->config.context_length) * sizeof *ids);
    nd_tokenizer_encode_batch(p->tok, texts, 2, ids);
    // CLIP text encoder
    nd_tensor *tokens = NULL;                                                  // (2, context_length, width)
    nd_tensor *pooled = nd_clip_encode_text(ctx, p->clip, ids, 2, &tokens);    // (2, embed_dim)
    nd_tensor *features = tokens; // what the U-Net attends to
    nd_tensor *cond = nd_slice(ctx, features, 0, 0, 1), *uncond = nd_slice(ctx, features, 0, 1, 2);
    // U-Net, schedule, reverse step
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = steps >= p->schedule->T ? ND_SAMPLER_DDPM_POSTERIOR : ND_SAMPLER_DDIM;
    sc.steps = steps, sc.clamp_x0 = true, sc.guided = true, sc.seed = p->seed;
    sc.w = guidance_scale - 1.0f; // from guidance_scale
    nd_sample_images(ctx, p->unet, p->schedule, &sc, 1, cond, uncond, out, NULL, NULL);
    // [-1, 1] -> [0, 1]
    for (int64_t i = 0; i < (int64_t)channels * image_size * image_size; i++) out[i] = (out[i] + 1.0f) * 0.5f;
    nd_ctx_step_end(ctx);
    free(ids);
    return true;
}
