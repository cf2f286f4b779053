// What the text-to-image checkers share: a tiny CLIP with random weights and a tokenizer learnt from a few
// captions, and a tiny t2i-unet that reads the CLIP's per-token features. Included by check/p2_*.c and
// check/p5_*.c after check.h.
#ifndef ND_T2I_CHECK_H
#define ND_T2I_CHECK_H

enum { CK_T2I_SIZE = 8, CK_T2I_T = 10, CK_T2I_CONTEXT = 16 };

typedef struct ck_t2i {
    nd_tokenizer tok;
    nd_clip clip;
    nd_model unet;
    nd_schedule sched;
} ck_t2i;

static bool ck_t2i_create(nd_ctx *ctx, ck_t2i *p) {
    static const char *captions[] = {"a dark bag", "a small bag", "a photo of a sneaker", "a light coat facing left",
                                     "a photo of an ankle boot", "a large dark coat"};
    nd_error err;
    if (!nd_tokenizer_train(&p->tok, captions, 6, 300, CK_T2I_CONTEXT, &err)) return ck_fail("tokenizer: %s", err.msg);
    nd_clip_config cc = nd_clip_config_default(p->tok.vocab_size);
    cc.context_length = CK_T2I_CONTEXT, cc.text_width = 16, cc.text_layers = 1, cc.text_heads = 2;
    cc.img_size = CK_T2I_SIZE, cc.patch_size = 4, cc.vision_width = 16, cc.vision_layers = 1, cc.vision_heads = 2;
    cc.embed_dim = 16;
    nd_clip_create(&p->clip, cc, ctx);
    nd_model_config mc = nd_model_config_default(ND_MODEL_T2I_UNET, 1, CK_T2I_SIZE, cc.text_width);
    mc.down_chs[0] = 8, mc.down_chs[1] = 8, mc.down_chs[2] = 8, mc.heads = 2, mc.small_groups = 4, mc.T = CK_T2I_T;
    nd_model_create(&p->unet, mc, ctx);
    nd_schedule_linear(&p->sched, CK_T2I_T, 1e-4, 0.2);
    return true;
}

static void ck_t2i_free(ck_t2i *p) {
    nd_schedule_free(&p->sched);
    nd_model_free(&p->unet);
    nd_clip_free(&p->clip);
    nd_tokenizer_free(&p->tok);
}

// The CLIP's per-token features of prompt and negative, repeated for n images: (n, S, D) each in the persistent
// pool, the context and null context of a guided nd_sample_images.
static void ck_t2i_features(nd_ctx *ctx, const ck_t2i *p, const char *prompt, const char *negative, int n,
                            nd_tensor **cond, nd_tensor **uncond) {
    enum { ROW = CK_T2I_CONTEXT * 16 };
    const char *texts[2] = {prompt, negative};
    int32_t ids[2 * CK_T2I_CONTEXT];
    nd_tokenizer_encode_batch(&p->tok, texts, 2, ids);
    nd_tensor *tokens = NULL;
    nd_clip_encode_text(ctx, &p->clip, ids, 2, &tokens); // (2, S, D)
    float both[2 * ROW], *rep = malloc((size_t)n * ROW * sizeof(float));
    nd_copy_to_host(ctx, tokens, both);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < n; i++) memcpy(rep + i * ROW, both + k * ROW, ROW * sizeof(float));
        nd_tensor *t = nd_empty_persistent(ctx, ND_SHAPE(n, CK_T2I_CONTEXT, 16));
        nd_copy_from_host(ctx, t, rep);
        *(k ? uncond : cond) = t;
    }
    free(rep);
    nd_ctx_step_end(ctx);
}

// Largest |a - b| over n host values.
static double ck_host_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d)) d = e;
    }
    return d;
}

#endif
