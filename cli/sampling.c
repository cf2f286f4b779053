// The sampling flags sample and eval share, and the session they open from them: device, checkpoint,
// schedule, sampler and x_T's start.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

nd_cli_sampling nd_cli_sampling_defaults(void) {
    return (nd_cli_sampling){.sampler = "ddpm",
                             .spacing = "auto",
                             .start = "auto",
                             .device = "auto",
                             .precision = "f32",
                             .steps = 20,
                             .w = 2.0,
                             .scale = NAN,
                             .eta = NAN};
}

int nd_cli_sampling_flags(nd_cli_sampling *s, nd_flag *flags) {
    const nd_flag shared[ND_CLI_SAMPLING_FLAGS] = {
        {"--ckpt", ND_FLAG_STRING, &s->ckpt, "checkpoint written by nanodiff train (required)"},
        {"--sampler", ND_FLAG_STRING, &s->sampler,
         "ddpm (the course's), ddpm-posterior, ddpm-clamped (the lesson's "
         "clamped step), ddim, euler, heun (Karras et al.), dpm-solver++ (2M) or dpm-solver++-sde (its SDE form)"},
        {"--steps", ND_FLAG_INT, &s->steps,
         "steps of ddim, euler, heun (2 model calls a step) and the dpm-solver++ pair; "
         "the DDPM samplers take all T; 10 or 20 gave a lower FD than 50 on every model measured"},
        {"--spacing", ND_FLAG_STRING, &s->spacing,
         "the few-step samplers' timesteps: linspace (T - 1 to 0), leading, "
         "trailing, or auto (trailing for the dpm-solver++ pair, else linspace)"},
        {"--eta", ND_FLAG_FLOAT, &s->eta, "ddim only: eta, 0 deterministic (the default), 1 DDPM-like noise"},
        {"--clamp-x0", ND_FLAG_BOOL, &s->clip_x0,
         "clamp every step's x0 estimate to the data's range (the lesson's "
         "clamp), any sampler"},
        {"--clip-x0", ND_FLAG_BOOL, &s->clip_x0, "the same as --clamp-x0"},
        {"--start", ND_FLAG_STRING, &s->start,
         "x_T: noise (the course's N(0, I)), matched (q(x_T)'s moments) or "
         "auto (matched for all but the ddpm samplers)"},
        {"--w", ND_FLAG_FLOAT, &s->w, "guidance weight, the course's (1 + w) e_c - w e_u"},
        {"--guidance-scale", ND_FLAG_FLOAT, &s->scale, "guidance as e_u + s (e_c - e_u), s = 1 + w (overrides --w)"},
        {"--guidance-rescale", ND_FLAG_FLOAT, &s->guidance_rescale,
         "0 to 1: scale the guided output per image toward the conditional one's std (Lin et al.; for strong "
         "guidance, above all with --zero-snr v models; 0.7 their choice, 0 off)"},
        {"--guidance-interval", ND_FLAG_STRING, &s->guidance_interval,
         "LO,HI: guide only the steps whose noise level sigma_t = sqrt((1 - abar_t) / abar_t) is in (LO, HI] "
         "(Kynkaanniemi et al.; HI may be inf), the others one unguided pass; sample prints the steps it guides"},
        {"--seed", ND_FLAG_INT, &s->seed, "seed of the initial noise and every step's noise"},
        {"--ema", ND_FLAG_BOOL, &s->ema, "sample from the EMA weights (the default when the checkpoint has them)"},
        {"--no-ema", ND_FLAG_BOOL, &s->no_ema, "sample from the trained weights even when the checkpoint has EMA ones"},
        {"--device", ND_FLAG_STRING, &s->device, "auto, cpu or cuda"},
        {"--no-tf32", ND_FLAG_BOOL, &s->no_tf32, "full float32 matrix products on the GPU (TF32 is on by default)"},
        {"--precision", ND_FLAG_STRING, &s->precision, ND_CLI_PRECISION_HELP},
        {"--quiet", ND_FLAG_BOOL, &s->quiet, "no progress line"},
    };
    memcpy(flags, shared, sizeof shared);
    return ND_CLI_SAMPLING_FLAGS;
}

// "LO,HI" (HI may be inf) into sc's guidance interval; prints why and returns false for anything else.
static bool cli_guidance_interval(const char *command, const char *text, nd_sample_config *sc) {
    char *end = NULL;
    errno = 0;
    double lo = strtod(text, &end), hi = NAN;
    if (end != text && *end == ',') {
        const char *second = end + 1;
        hi = strtod(second, &end);
        if (end == second || *end != '\0') hi = NAN;
    }
    if (errno != 0 || isnan(hi) || !isfinite(lo) || lo < 0.0 || !(hi > lo)) {
        fprintf(stderr,
                "nanodiff %s: --guidance-interval expects LO,HI, noise levels sigma with 0 <= LO < HI (HI may be "
                "inf), e.g. 0.3,5; got \"%s\"\n",
                command, text);
        return false;
    }
    sc->guidance_sigma_min = (float)lo, sc->guidance_sigma_max = (float)hi;
    return true;
}

// sc from nd_sample_defaults() with the sampler, steps, spacing, eta, clipping, seed and guidance of the flags;
// a bad sampler or spacing name or a step count below 1 is printed and returns false.
static bool cli_sampler(const char *command, const nd_cli_sampling *f, nd_sample_config *sc) {
    const char *sampler = f->sampler;
    int64_t steps = f->steps;
    *sc = nd_sample_defaults();
    if (!nd_sampler_parse(sampler, &sc->sampler)) {
        fprintf(stderr,
                "nanodiff %s: --sampler expects ddpm, ddpm-posterior, ddpm-clamped, ddim, euler, heun, "
                "dpm-solver++ or dpm-solver++-sde, got \"%s\"\n",
                command, sampler);
        return false;
    }
    // auto: DPM-Solver++ on trailing steps, close to diffusers' default for it: its second-order steps
    // extrapolate badly across linspace's last gap to t = 0 (the sampler twin's Gaussian data, 10 steps:
    // error 0.18 on linspace, 0.05 on trailing); DDIM's timesteps as they always were
    if (strcmp(f->spacing, "auto") == 0)
        sc->spacing = sc->sampler == ND_SAMPLER_DPM_SOLVER_PP || sc->sampler == ND_SAMPLER_DPM_SOLVER_PP_SDE
                          ? ND_SPACING_TRAILING
                          : ND_SPACING_LINSPACE;
    else if (!nd_spacing_parse(f->spacing, &sc->spacing)) {
        fprintf(stderr, "nanodiff %s: --spacing expects auto, linspace, leading or trailing, got \"%s\"\n", command,
                f->spacing);
        return false;
    }
    if (steps < 1) {
        fprintf(stderr, "nanodiff %s: --steps must be positive, got %lld\n", command, (long long)steps);
        return false;
    }
    // only DDIM's step reads eta (solvers.c): elsewhere it would be ignored without a word
    if (!isnan(f->eta) && sc->sampler != ND_SAMPLER_DDIM) {
        fprintf(stderr, "nanodiff %s: --eta is for --sampler ddim; --sampler %s takes no eta\n", command, sampler);
        return false;
    }
    sc->steps = (int)steps, sc->seed = (uint64_t)f->seed, sc->clamp_x0 = f->clip_x0;
    sc->eta = isnan(f->eta) ? 0.0f : (float)f->eta; // DDIM deterministic unless asked
    sc->w = isnan(f->scale) ? (float)f->w : (float)(f->scale - 1.0);
    sc->guidance_rescale = (float)f->guidance_rescale;
    return !f->guidance_interval || cli_guidance_interval(command, f->guidance_interval, sc);
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
    if (s->alpha_bar[s->T - 1] == 0.0f) return true; // zero terminal SNR: q(x_T) is N(0, I) itself
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
        fprintf(stderr,
                "nanodiff %s: note: starting from N(0, I), as the training data is not readable for "
                "q(x_T)'s moments (%s)\n",
                command, err.msg);
        return true;
    }
    sc->start_mean = *mean;
    sc->start_std = *std;
    return true;
}

// Which steps a guidance interval guides, on stderr: "guided at 12 of 20 steps, t = 98..31 (sigma 0.3..5)".
static void cli_guided_steps(const char *command, const nd_sample_config *sc, const nd_schedule *s,
                             const nd_model_config *mc) {
    if (mc->c_embed_dim == 0) { // no context, so no unconditional half to guide against
        fprintf(stderr, "nanodiff %s: note: the model is unconditional: --guidance-interval guides nothing\n", command);
        return;
    }
    int steps = nd_sample_steps(sc, s->T), guided = 0, first = -1, last = -1;
    int *ts = nd_xmalloc((size_t)s->T * sizeof(int));
    nd_sample_timesteps(sc, s->T, ts);
    for (int i = 0; i < steps; i++)
        if (nd_guided_at(sc, s, ts[i])) {
            guided++;
            if (first < 0) first = ts[i];
            last = ts[i];
        }
    free(ts);
    if (guided == 0)
        fprintf(stderr, "nanodiff %s: note: no step's sigma_t (%.3g..%.3g) is in --guidance-interval: none is guided\n",
                command, nd_schedule_sigma(s, 0), nd_schedule_sigma(s, s->T - 1));
    else
        fprintf(stderr, "nanodiff %s: guided at %d of %d steps, t = %d..%d (sigma_t %.3g..%.3g)\n", command, guided,
                steps, first, last, nd_schedule_sigma(s, first), nd_schedule_sigma(s, last));
}

bool nd_cli_session_open(const char *command, const nd_cli_sampling *f, nd_cli_session *s) {
    memset(s, 0, sizeof *s);
    int device;
    nd_precision precision;
    if (!cli_sampler(command, f, &s->sc) || !nd_cli_device(command, f->device, &device) ||
        !nd_cli_precision(command, f->precision, device, &precision))
        return false;
    if (f->no_tf32) nd_cuda_set_tf32(false);
    nd_ctx_init(&s->ctx, (nd_device)device, 64 << 20, 0);
    nd_error err;
    if (!nd_ctx_set_precision(&s->ctx, precision, &err)) { // nd_cli_precision asked the same question
        fprintf(stderr, "nanodiff %s: --precision %s: %s\n", command, f->precision, err.msg);
        nd_ctx_free(&s->ctx);
        return false;
    }
    if (f->ema && f->no_ema) {
        fprintf(stderr, "nanodiff %s: --ema and --no-ema contradict each other\n", command);
        nd_ctx_free(&s->ctx);
        return false;
    }
    // EMA weights by default where training kept them (a checkpoint that cannot be read fails just below)
    nd_ddpm_config stored;
    s->ema = f->ema || (!f->no_ema && nd_checkpoint_read_config(f->ckpt, &stored, &err) && stored.ema_decay > 0);
    if (!nd_checkpoint_load_model(f->ckpt, s->ema, &s->model, &s->cfg, &s->ctx, &err)) {
        fprintf(stderr, "nanodiff %s: %s\n", command, err.msg);
        nd_ctx_free(&s->ctx);
        return false;
    }
    nd_ddpm_schedule(&s->cfg, &s->sched);
    // the checkpoint's prediction, and x0 clipping to its data's range
    nd_sample_config trained = nd_ddpm_sample_defaults(&s->cfg);
    s->sc.prediction = trained.prediction, s->sc.x0_min = trained.x0_min, s->sc.x0_max = trained.x0_max;
    if (!cli_start(command, f->start, &s->cfg, &s->sched, &s->sc, &s->start_mean, &s->start_std)) {
        nd_schedule_free(&s->sched);
        nd_model_free(&s->model);
        nd_ctx_free(&s->ctx);
        return false;
    }
    if (f->guidance_interval && !f->quiet) cli_guided_steps(command, &s->sc, &s->sched, &s->model.config);
    return true;
}

void nd_cli_session_close(nd_cli_session *s) {
    free(s->start_mean);
    free(s->start_std);
    nd_schedule_free(&s->sched);
    nd_model_free(&s->model);
    nd_ctx_free(&s->ctx);
}

void nd_cli_progress_begin(nd_cli_progress *p, const char *command, bool on, const nd_sample_config *cfg,
                           const nd_schedule *s, int batches) {
    *p = (nd_cli_progress){.on = on, .steps = nd_sample_steps(cfg, s->T), .batches = batches, .cfg = *cfg, .sched = s};
    p->calls = nd_sample_evaluations_done(cfg, s, p->steps - 1);
    nd_progress_init(&p->bar, command, (int64_t)p->calls * batches, 0); // counted in model evaluations
}

void nd_cli_progress_batch(nd_cli_progress *p, int batch, int images, nd_sample_step_fn then, void *then_user) {
    p->batch = batch, p->batch_images = images, p->then = then, p->then_user = then_user;
}

void nd_cli_progress_step(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x) {
    nd_cli_progress *p = user;
    if (p->then) p->then(p->then_user, step_index, t, ctx, x);
    if (!p->on || step_index < 0) return;
    // the clock's position: the last model evaluation made so far, over all batches
    int calls = nd_sample_evaluations_done(&p->cfg, p->sched, step_index);
    int64_t position = (int64_t)p->batch * p->calls + calls - 1;
    double images = (double)p->batch_images / p->steps; // a step takes the batch 1/steps of its way
    char batch[48] = "", evaluations[48] = "";
    if (p->batches > 1) snprintf(batch, sizeof batch, "batch %d/%d  ", p->batch + 1, p->batches);
    if (p->calls != p->steps) snprintf(evaluations, sizeof evaluations, "  model calls %d/%d", calls, p->calls);
    nd_progress_show(&p->bar, position, images, "%sstep %d/%d%s", batch, step_index + 1, p->steps, evaluations);
}

bool nd_cli_samples_finite(const char *command, const float *images, int64_t n_images, int64_t image) {
    int64_t bad = nd_first_nonfinite(images, n_images * image);
    if (bad < 0) return true;
    fprintf(stderr,
            "nanodiff %s: sample %lld holds %g: the model or the guidance weight diverged; nothing was written\n",
            command, (long long)(bad / image), images[bad]);
    return false;
}

bool nd_cli_write_grid(const char *command, const char *path, const float *images, int n, const nd_model_config *mc,
                       int nrow, bool unit_range, int scale) {
    nd_image8 grid = {0}, scaled = {0};
    nd_error err;
    bool ok = nd_image_grid(&grid, images, n, mc->img_ch, mc->img_size, mc->img_size, nrow, 2, unit_range, &err) &&
              nd_image8_scale(&scaled, &grid, scale, &err) && nd_png_write(path, &scaled, &err);
    nd_image8_free(&grid);
    nd_image8_free(&scaled);
    if (!ok)
        fprintf(stderr, "nanodiff %s: %s\n", command, err.msg);
    else
        printf("wrote %s\n", path);
    return ok;
}

void nd_cli_images_to_unit(float *images, int64_t values, bool unit_range) {
    for (int64_t i = 0; i < values; i++) {
        float v = unit_range ? images[i] : (images[i] + 1.0f) * 0.5f;
        images[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

bool nd_cli_write_samples_h5(const char *command, const char *path, float *images, int64_t n, const nd_model_config *mc,
                             const int32_t *labels, bool unit_range) {
    nd_cli_images_to_unit(images, n * mc->img_ch * mc->img_size * mc->img_size, unit_range);
    nd_error err;
    if (!nd_samples_write_hdf5(path, images, n, mc->img_ch, mc->img_size, mc->img_size, labels, &err)) {
        fprintf(stderr, "nanodiff %s: %s\n", command, err.msg);
        return false;
    }
    printf("wrote %s\n", path);
    return true;
}
