// Checks ex_generate_image against the same pipeline run by the checker (the CLIP's per-token features of the
// prompt and the negative prompt, nd_sample_images with s = 1 + w, (x + 1) / 2) on a tiny random CLIP and
// t2i-unet; names the wiring slips by running each of them.
#include "check.h"
#include "t2i_check.h"

enum { PIXELS = CK_T2I_SIZE * CK_T2I_SIZE };

// The pipeline with a slip or none: features of (prompt, negative) as given, w, mapped to [0, 1] or not.
static void pipeline(nd_ctx *ctx, const ck_t2i *p, const char *prompt, const char *negative, float w, int steps,
                     bool map, float *out) {
    const char *texts[2] = {prompt, negative};
    int32_t ids[2 * CK_T2I_CONTEXT];
    nd_tokenizer_encode_batch(&p->tok, texts, 2, ids);
    nd_tensor *tokens = NULL;
    nd_clip_encode_text(ctx, &p->clip, ids, 2, &tokens);
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = steps >= CK_T2I_T ? ND_SAMPLER_DDPM_POSTERIOR : ND_SAMPLER_DDIM;
    sc.steps = steps, sc.clamp_x0 = true, sc.guided = true, sc.seed = 5, sc.w = w;
    nd_sample_images(ctx, &p->unet, &p->sched, &sc, 1, nd_slice(ctx, tokens, 0, 0, 1), nd_slice(ctx, tokens, 0, 1, 2),
                     out, NULL, NULL);
    for (int i = 0; map && i < PIXELS; i++) out[i] = (out[i] + 1.0f) * 0.5f;
    nd_ctx_step_end(ctx);
}

static bool check_one(nd_ctx *ctx, const ck_t2i *p, const ex_pipeline *pipe, const char *negative, int steps) {
    const char *prompt = "a dark bag";
    const float s = 3.0f;
    float got[PIXELS], want[PIXELS], alt[PIXELS];
    for (int i = 0; i < PIXELS; i++) got[i] = NAN;
    if (!ex_generate_image(pipe, prompt, negative, s, steps, CK_T2I_SIZE, 1, got))
        return ck_fail("generate_image returned false for the U-Net's own image_size %d and channels 1", CK_T2I_SIZE);
    const char *neg = negative ? negative : "";
    pipeline(ctx, p, prompt, neg, s - 1.0f, steps, true, want);
    double diff = ck_host_diff(got, want, PIXELS);
    if (diff <= 1e-4) return true;
    struct { const char *prompt, *negative; float w; bool map; const char *advice; } slips[] = {
        {prompt, neg, s - 1.0f, false, "your image is in [-1, 1]: map it to [0, 1] as (x + 1) / 2"},
        {prompt, neg, s, true, "your image is guided with w = s: nd_sample_images takes the course's w, and the "
                               "lesson's scale s is 1 + w, so w = s - 1"},
        {prompt, "", s - 1.0f, true, "the negative prompt has no effect: its features replace the empty prompt's in "
                                     "the unconditional branch"},
        {neg, prompt, s - 1.0f, true, "the prompt and the negative prompt are swapped: the prompt conditions, the "
                                      "negative prompt is the unconditional branch"},
    };
    for (int k = 0; k < 4; k++) {
        pipeline(ctx, p, slips[k].prompt, slips[k].negative, slips[k].w, steps, slips[k].map, alt);
        if (ck_host_diff(got, alt, PIXELS) <= 1e-4) return ck_fail("%s", slips[k].advice);
    }
    return ck_fail("generate_image(\"%s\", \"%s\", s = %g, steps = %d) differs from the pipeline's image by up to %.3g "
                   "(tolerance 1e-4)", prompt, neg, s, steps, diff);
}

static bool check(nd_ctx *ctx) {
    ck_t2i p;
    if (!ck_t2i_create(ctx, &p)) return false;
    ex_pipeline pipe = {.ctx = ctx, .tok = &p.tok, .clip = &p.clip, .unet = &p.unet, .schedule = &p.sched, .seed = 5};
    float img[4 * PIXELS];
    bool ok = true;
    printf("generate_image must refuse an image_size or channel count the U-Net does not make:\n");
    if (ex_generate_image(&pipe, "a dark bag", "", 3.0f, CK_T2I_T, 2 * CK_T2I_SIZE, 1, img) ||
        ex_generate_image(&pipe, "a dark bag", "", 3.0f, CK_T2I_T, CK_T2I_SIZE, 3, img))
        ok = ck_fail("generate_image accepted an image_size or channel count the U-Net does not make");
    ok = ok && check_one(ctx, &p, &pipe, "a small bag", CK_T2I_T); // the lesson's clamped DDPM, every t
    ok = ok && check_one(ctx, &p, &pipe, NULL, 4);                 // DDIM in 4 steps, no negative prompt
    ck_t2i_free(&p);
    return ok;
}
