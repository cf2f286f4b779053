// Checks ex_t2i_sample against the library's guided sampler from the same seed (nd_sample_images with the
// posterior DDPM step and x0 clamped to [-1, 1]: the lesson's reverse step) on a tiny random CLIP and t2i-unet;
// names the guidance and sigma slips by sampling each of them.
#include "check.h"
#include "t2i_check.h"

enum { N = 2, NUMEL = N * CK_T2I_SIZE * CK_T2I_SIZE };

static bool check(nd_ctx *ctx) {
    ck_t2i p;
    if (!ck_t2i_create(ctx, &p)) return false;
    const char *prompt = "a dark bag";
    const float s = 3.0f;
    float got[NUMEL], want[NUMEL], alt[NUMEL];
    ex_t2i_sample(ctx, &p.unet, &p.sched, &p.tok, &p.clip, prompt, N, s, 7, got);

    nd_tensor *cond, *null;
    ck_t2i_features(ctx, &p, prompt, "", N, &cond, &null);
    nd_sample_config sc = nd_sample_defaults();
    sc.sampler = ND_SAMPLER_DDPM_POSTERIOR, sc.clamp_x0 = true, sc.guided = true, sc.w = s - 1.0f, sc.seed = 7;
    nd_sample_images(ctx, &p.unet, &p.sched, &sc, N, cond, null, want, NULL, NULL);
    double diff = ck_host_diff(got, want, NUMEL);
    bool ok = diff <= 1e-3;
    if (!ok) {
        struct { float w; bool guided; nd_sampler_kind sampler; bool null_as_cond; const char *advice; } slips[] = {
            {s, true, ND_SAMPLER_DDPM_POSTERIOR, false, "your samples are those of (1 + s) e_c - s e_u: the course's "
             "form with w = s. The lesson's scale s is 1 + w: e = e_u + s (e_c - e_u)"},
            {0, false, ND_SAMPLER_DDPM_POSTERIOR, false, "your guided noise is e_c (s = 1: no guidance); it is e_u + s "
             "(e_c - e_u)"},
            {0, false, ND_SAMPLER_DDPM_POSTERIOR, true, "your guided noise is e_u (s = 0: the prompt is ignored); it "
             "is e_u + s (e_c - e_u)"},
            {s - 1.0f, true, ND_SAMPLER_DDPM, false, "your sigma is the course's sqrt(beta_{t-1}); the lesson's step "
             "takes the posterior's, sqrt(beta_t (1 - abar_{t-1}) / (1 - abar_t))"},
        };
        bool found = false;
        for (int k = 0; k < 4 && !found; k++) {
            nd_sample_config v = sc;
            v.w = slips[k].w, v.guided = slips[k].guided, v.sampler = slips[k].sampler;
            nd_sample_images(ctx, &p.unet, &p.sched, &v, N, slips[k].null_as_cond ? null : cond, null, alt, NULL, NULL);
            if (ck_host_diff(got, alt, NUMEL) <= 1e-3) {
                ck_fail("%s", slips[k].advice);
                found = true;
            }
        }
        if (!found)
            ck_fail("your x_0 differs from the lesson's sampler's by up to %.3g (tolerance 1e-3; seed 7, s = %g, "
                    "T = %d). Check the loop over every t from T - 1 down to 0, the guided noise e_u + s (e_c - e_u), "
                    "and the step's coef_x0 = beta_t sqrt(abar_{t-1}) / (1 - abar_t), coef_xt = (1 - abar_{t-1}) "
                    "sqrt(alpha_t) / (1 - abar_t) and sigma", diff, s, CK_T2I_T);
    }
    if (ok) { // and the prompt reaches the image
        ex_t2i_sample(ctx, &p.unet, &p.sched, &p.tok, &p.clip, "a photo of a sneaker", N, s, 7, alt);
        if (ck_host_diff(got, alt, NUMEL) < 1e-6) ok = ck_fail("two prompts gave the same samples from the same noise");
    }
    ck_t2i_free(&p);
    return ok;
}
