// The sampling flags sample and eval share, and the session they open from them: device, checkpoint,
// schedule, sampler and x_T's start.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

nd_cli_sampling nd_cli_sampling_defaults(void) {
    return (nd_cli_sampling){.sampler = "ddpm", .start = "auto", .device = "auto", .steps = 50, .w = 2.0,
                             .scale = NAN};
}

int nd_cli_sampling_flags(nd_cli_sampling *s, nd_flag *flags) {
    const nd_flag shared[ND_CLI_SAMPLING_FLAGS] = {
        {"--ckpt", ND_FLAG_STRING, &s->ckpt, "checkpoint written by nanodiff train (required)"},
        {"--sampler", ND_FLAG_STRING, &s->sampler, "ddpm (the course's), ddpm-posterior or ddim"},
        {"--steps", ND_FLAG_INT, &s->steps, "DDIM steps (the DDPM samplers take all T)"},
        {"--eta", ND_FLAG_FLOAT, &s->eta, "DDIM eta: 0 deterministic, 1 DDPM-like noise"},
        {"--start", ND_FLAG_STRING, &s->start, "x_T: noise (the course's N(0, I)), matched (q(x_T)'s moments) or "
                                               "auto (matched for ddim)"},
        {"--w", ND_FLAG_FLOAT, &s->w, "guidance weight, the course's (1 + w) e_c - w e_u"},
        {"--guidance-scale", ND_FLAG_FLOAT, &s->scale, "guidance as e_u + s (e_c - e_u), s = 1 + w (overrides --w)"},
        {"--seed", ND_FLAG_INT, &s->seed, "seed of the initial noise and every step's noise"},
        {"--ema", ND_FLAG_BOOL, &s->ema, "sample from the EMA weights"},
        {"--device", ND_FLAG_STRING, &s->device, "auto, cpu or cuda"},
        {"--no-tf32", ND_FLAG_BOOL, &s->no_tf32, "full float32 matrix products on the GPU (TF32 is on by default)"},
    };
    memcpy(flags, shared, sizeof shared);
    return ND_CLI_SAMPLING_FLAGS;
}

// sc from nd_sample_defaults() with the sampler, steps, eta, seed and guidance of the flags; a bad sampler
// name or a step count below 1 is printed and returns false.
static bool cli_sampler(const char *command, const nd_cli_sampling *f, nd_sample_config *sc) {
    const char *sampler = f->sampler;
    int64_t steps = f->steps;
    *sc = nd_sample_defaults();
    if (!nd_sampler_parse(sampler, &sc->sampler)) {
        fprintf(stderr, "nanodiff %s: --sampler expects ddpm, ddpm-posterior or ddim, got \"%s\"\n", command, sampler);
        return false;
    }
    if (steps < 1) {
        fprintf(stderr, "nanodiff %s: --steps must be positive, got %lld\n", command, (long long)steps);
        return false;
    }
    sc->steps = (int)steps, sc->eta = (float)f->eta, sc->seed = (uint64_t)f->seed;
    sc->w = isnan(f->scale) ? (float)f->w : (float)(f->scale - 1.0);
    return true;
}

// Sets sc->start_mean/start_std from "--start auto|noise|matched" (sample.h) for a model trained with cfg;
// *mean and *std receive the arrays to free (NULL for N(0, I)). An unreadable data set is an error for
// "matched" and, for "auto", a note and the course's N(0, I). Prints why and returns false on an error.
static bool cli_start(const char *command, const char *spec, const nd_ddpm_config *cfg, const nd_schedule *s,
                      nd_sample_config *sc, float **mean, float **std) {
    *mean = *std = NULL;
    nd_start_kind kind;
    if (!nd_start_parse(spec, &kind)) {
        fprintf(stderr, "nanodiff %s: --start expects auto, noise or matched, got \"%s\"\n", command, spec);
        return false;
    }
    if (nd_start_resolve(kind, sc->sampler) == ND_START_NOISE) return true;
    int64_t image = (int64_t)cfg->model.img_ch * cfg->model.img_size * cfg->model.img_size;
    *mean = nd_xmalloc((size_t)image * sizeof(float));
    *std = nd_xmalloc((size_t)image * sizeof(float));
    nd_error err;
    if (!nd_ddpm_start_moments(cfg, s, *mean, *std, &err)) {
        free(*mean);
        free(*std);
        *mean = *std = NULL;
        if (kind == ND_START_MATCHED) {
            fprintf(stderr, "nanodiff %s: --start matched needs the training data's moments: %s\n", command, err.msg);
            return false;
        }
        fprintf(stderr, "nanodiff %s: note: starting from N(0, I), as the training data is not readable for "
                        "q(x_T)'s moments (%s)\n", command, err.msg);
        return true;
    }
    sc->start_mean = *mean;
    sc->start_std = *std;
    return true;
}

bool nd_cli_session_open(const char *command, const nd_cli_sampling *f, nd_cli_session *s) {
    memset(s, 0, sizeof *s);
    int device;
    if (!cli_sampler(command, f, &s->sc) || !nd_cli_device(command, f->device, &device)) return false;
    if (f->no_tf32) nd_cuda_set_tf32(false);
    nd_ctx_init(&s->ctx, (nd_device)device, 64 << 20, 0);
    nd_error err;
    if (!nd_checkpoint_load_model(f->ckpt, f->ema, &s->model, &s->cfg, &s->ctx, &err)) {
        fprintf(stderr, "nanodiff %s: %s\n", command, err.msg);
        nd_ctx_free(&s->ctx);
        return false;
    }
    nd_schedule_linear(&s->sched, s->model.config.T, s->cfg.beta_start, s->cfg.beta_end);
    if (!cli_start(command, f->start, &s->cfg, &s->sched, &s->sc, &s->start_mean, &s->start_std)) {
        nd_schedule_free(&s->sched);
        nd_model_free(&s->model);
        nd_ctx_free(&s->ctx);
        return false;
    }
    return true;
}

void nd_cli_session_close(nd_cli_session *s) {
    free(s->start_mean);
    free(s->start_std);
    nd_schedule_free(&s->sched);
    nd_model_free(&s->model);
    nd_ctx_free(&s->ctx);
}
