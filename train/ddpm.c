// DDPM training with classifier-free-guidance label dropout (the course's notebooks 04 and 06):
// x_t = q(x_0, t) at a uniform t, loss = MSE(noise, model(x_t, t, one_hot(c) * bernoulli(1 - p))).
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_random.h"
#include "sample.h"
#include "train.h"

#define ND_TIMESTEP_STREAM 0x7469u // Philox key offset of the timestep draws, apart from the data's and model's

nd_ddpm_config nd_ddpm_defaults(void) {
    nd_ddpm_config c = {0};
    c.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, -1);
    snprintf(c.data, sizeof c.data, "fashion-mnist");
    c.random_flip = true;
    c.beta_start = 1e-4, c.beta_end = 0.02;
    c.epochs = 3, c.batch_size = 128;
    c.lr = 1e-3f;
    c.weight_decay = 0.0f;
    c.cfg_drop = 0.1f;
    c.schedule = ND_SCHEDULE_LINEAR, c.prediction = ND_PREDICT_EPS;
    return c;
}

void nd_ddpm_schedule(const nd_ddpm_config *cfg, nd_schedule *s) {
    nd_schedule_make(s, cfg->schedule, cfg->model.T, cfg->beta_start, cfg->beta_end, cfg->zero_snr);
}

nd_sample_config nd_ddpm_sample_defaults(const nd_ddpm_config *cfg) {
    nd_sample_config sc = nd_sample_defaults();
    sc.prediction = cfg->prediction;
    sc.x0_min = cfg->unit_range ? 0.0f : -1.0f, sc.x0_max = 1.0f;
    return sc;
}

bool nd_ddpm_check_options(const nd_ddpm_config *cfg, nd_error *err) {
    if (cfg->zero_snr && cfg->prediction == ND_PREDICT_EPS)
        return nd_error_set(err, "a zero-terminal-SNR schedule needs x0 or v prediction: at t = T - 1 x_t is the "
                                 "noise itself, so an eps model learns nothing there and its x0 cannot be recovered");
    if (cfg->min_snr_gamma < 0)
        return nd_error_set(err, "min-SNR gamma must be 0 (off) or positive, got %g", cfg->min_snr_gamma);
    return true;
}

// The output directory, before the first step: created, its path short enough for every file written in it
// (a longer one was truncated), writable (a temporary file is made and removed), and cleared of temporary
// checkpoint files that killed runs left behind.
static bool out_dir_ready(const char *out_dir, const char *ckpt_path, size_t path_size, nd_error *err) {
    size_t longest = strlen(out_dir) + sizeof "/preview_000000000000.png.tmp.4294967295.XXXXXX";
    if (longest > path_size)
        return nd_error_set(err, "output directory %.60s...: %zu bytes long, at most %zu: choose a shorter --out",
                            out_dir, strlen(out_dir), path_size - (longest - strlen(out_dir)));
    if (!nd_run_dir_make(out_dir, err)) return false;
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/.write-check", out_dir);
    nd_atomic_file af;
    if (!nd_atomic_open(&af, probe, err))
        return nd_error_set(err, "%s: the output directory is not writable: %s", out_dir, strerror(errno));
    nd_atomic_abort(&af);
    int removed = nd_atomic_clean_stale(ckpt_path);
    if (removed)
        fprintf(stderr, "removed %d temporary checkpoint file(s) left by killed runs in %s\n", removed, out_dir);
    return true;
}

// Loads the training images (train + test, as the course) at the model's size and checks they fit it.
static bool load_data(nd_dataset *ds, nd_ddpm_config *cfg, nd_error *err) {
    if (!nd_ddpm_check_options(cfg, err)) return false;
    if (!nd_dataset_load(ds, cfg->data, ND_SPLIT_ALL, err)) return false;
    nd_model_config *m = &cfg->model;
    if (ds->c != m->img_ch) {
        nd_dataset_free(ds);
        return nd_error_set(err, "%s: images have %d channels, the model takes %d", cfg->data, ds->c, m->img_ch);
    }
    if ((ds->h != m->img_size || ds->w != m->img_size) && !nd_dataset_resize(ds, m->img_size, m->img_size, err)) {
        nd_dataset_free(ds);
        return false;
    }
    if ((m->kind == ND_MODEL_DLI_UNET || m->kind == ND_MODEL_RES_UNET) && m->c_embed_dim < 0)
        m->c_embed_dim = ds->num_classes;
    if (m->kind != ND_MODEL_T2I_UNET && m->c_embed_dim > 0 && ds->num_classes != m->c_embed_dim) {
        nd_dataset_free(ds);
        return nd_error_set(err, "%s: the data set has %d classes, the model's context expects %d", cfg->data,
                            ds->num_classes, m->c_embed_dim);
    }
    return true;
}

// Four samples a class (or four unconditional ones) drawn with the current weights, one row per class; a
// text-to-image model draws them for the prompts "a photo of a {class}".
static void write_preview(nd_ctx *ctx, const nd_model *model, nd_text_encoder *text, const nd_schedule *sched,
                          const char *out_dir, int64_t step, const nd_ddpm_config *cfg) {
    const nd_model_config *mc = &model->config;
    int rows = text ? 10 : mc->c_embed_dim > 0 ? mc->c_embed_dim : 1, n = rows * 4;
    int32_t *labels = nd_xmalloc((size_t)n * sizeof(int32_t)); // (n) row i / 4
    for (int i = 0; i < n; i++) labels[i] = i / 4;
    nd_arena_mark mark = nd_arena_get_mark(&ctx->pool);
    nd_tensor *context, *null_context = NULL; // null: zeros, the class model's; "" for text
    if (text) {
        context = nd_t2i_class_context(text, ctx, labels, n);
        null_context = nd_t2i_empty_context(text, ctx, n);
    } else {
        context = nd_class_context(ctx, labels, n, mc->c_embed_dim, true);
    }
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    float *images = nd_xmalloc((size_t)(n * image) * sizeof(float));
    nd_sample_config sc = nd_ddpm_sample_defaults(cfg);
    sc.seed = (uint64_t)step;
    nd_sample_images(ctx, model, sched, &sc, n, context, null_context, images, NULL, NULL);
    nd_arena_release(&ctx->pool, mark);
    char path[1100];
    snprintf(path, sizeof path, "%s/preview_%06lld.png", out_dir, (long long)step);
    nd_image8 grid;
    nd_error err;
    if (!nd_image_grid(&grid, images, n, mc->img_ch, mc->img_size, mc->img_size, 4, 2, cfg->unit_range, &err) ||
        !nd_png_write(path, &grid, &err))
        fprintf(stderr, "\npreview: %s\n", err.msg);
    else
        nd_image8_free(&grid);
    free(images);
    free(labels);
}

bool nd_ddpm_start_moments(const nd_ddpm_config *cfg, const nd_schedule *s, float *mean, float *std, nd_error *err) {
    nd_ddpm_config c = *cfg;
    nd_dataset ds = {0};
    if (!load_data(&ds, &c, err)) return false;
    int64_t image = (int64_t)ds.c * ds.h * ds.w;
    double *data_mean = nd_xmalloc((size_t)image * sizeof(double)),
           *data_var = nd_xmalloc((size_t)image * sizeof(double));
    nd_dataset_moments(&ds, c.random_flip, c.unit_range, data_mean, data_var);
    nd_start_moments(s, data_mean, data_var, image, mean, std);
    free(data_mean);
    free(data_var);
    nd_dataset_free(&ds);
    return true;
}

typedef struct run {
    nd_ddpm_config cfg;
    nd_ctx ctx;
    nd_model model;
    nd_adam opt;
    nd_ema ema;
    nd_schedule sched;
    nd_train_state state;
    nd_dist_shard shard; // this process's rows of each batch (all of them in a single process)
    int64_t saved_step;  // the step of the checkpoint on disk; -1: none yet
    int64_t total;       // the run's last step + 1: the loop's end and the learning-rate schedule's span
    nd_t2i_cond *text;   // the captions' text features of a t2i-unet, else NULL
    char ckpt_path[1100];
} run;

static bool save(run *r, nd_error *err) {
    r->state.rng = r->ctx.rng;
    bool ok = nd_checkpoint_save(r->ckpt_path, &r->model, &r->cfg, &r->state, &r->opt,
                                 r->cfg.ema_decay > 0 ? &r->ema : NULL, &r->ctx, err);
    if (ok) r->saved_step = r->state.step;
    // rank 0 alone saves: the other processes would wait for it in the next all-reduce, so a failure ends all
    if (!ok && nd_dist_world()->size > 1) {
        fprintf(stderr, "nanodiff train (rank 0): %s\n", err->msg);
        nd_dist_abort(1);
    }
    return ok;
}

// This process's rows of a draw made for the whole batch: every process draws what one process would, so each
// image meets the same noise, timestep and label mask whatever the number of processes.
static nd_tensor *shard_rows(nd_ctx *ctx, nd_tensor *whole, const nd_dist_shard *shard) {
    if (shard->size == whole->shape.d[0]) return whole;
    return nd_slice(ctx, whole, 0, shard->begin, shard->begin + shard->size);
}

// What the model is trained to output at x_t = sqrt(abar) x0 + sqrt(1 - abar) noise: noise (eps), x0, or
// v = sqrt(abar) noise - sqrt(1 - abar) x0 (Salimans & Ho 2022). x0, noise (b, C, H, W).
static nd_tensor *ddpm_target(nd_ctx *ctx, const nd_ddpm_config *cfg, const nd_schedule *s, nd_tensor *x0,
                              nd_tensor *noise, const int *t_host) {
    if (cfg->prediction == ND_PREDICT_EPS) return noise;
    if (cfg->prediction == ND_PREDICT_X0) return x0;
    int64_t b = x0->shape.d[0];
    float *coef = nd_xmalloc((size_t)(2 * b) * sizeof(float));
    for (int64_t i = 0; i < b; i++) {
        coef[i] = -s->sqrt_one_minus_alpha_bar[t_host[i]];
        coef[b + i] = s->sqrt_alpha_bar[t_host[i]];
    }
    nd_tensor *a = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef);     // -sqrt(1 - abar[t, None, None, None])
    nd_tensor *c = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), coef + b); // sqrt(abar[t, None, None, None])
    free(coef);
    return nd_add(ctx, nd_mul(ctx, a, x0), nd_mul(ctx, c, noise));
}

nd_tensor *nd_ddpm_loss(nd_ctx *ctx, const nd_ddpm_config *cfg, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise,
                        nd_tensor *pred, const int *t_host) {
    nd_tensor *target = ddpm_target(ctx, cfg, s, x0, noise, t_host); // (b, C, H, W)
    if (cfg->min_snr_gamma <= 0) return nd_mse_loss(ctx, target, pred);
    int64_t b = x0->shape.d[0];
    float *weight = nd_xmalloc((size_t)b * sizeof(float));
    for (int64_t i = 0; i < b; i++) {
        double abar = s->alpha_bar[t_host[i]], snr = abar / (1.0 - abar), clipped = fmin(snr, cfg->min_snr_gamma);
        weight[i] = (float)(cfg->prediction == ND_PREDICT_EPS ? clipped / snr
                            : cfg->prediction == ND_PREDICT_V ? clipped / (snr + 1.0)
                                                              : clipped);
    }
    nd_tensor *w = nd_from_host(ctx, ND_SHAPE(b, 1, 1, 1), weight); // (b, 1, 1, 1)
    free(weight);
    nd_tensor *err = nd_square(ctx, nd_sub(ctx, pred, target)); // (b, C, H, W)
    return nd_mean_all(ctx, nd_mul(ctx, err, w));
}

// Why a step is refused: its loss or gradient (checked before the update, so the weights stay those of the
// last good step) or the updated weights are not finite. Names the step, the tensor, the last checkpoint, and
// with --check-numerics the first op whose output was not finite.
static bool step_diverged(run *r, const char *what, float value, const float *buffer, nd_error *err) {
    char where[256] = "";
    if (buffer) nd_params_locate_nonfinite(&r->model.params, buffer, where, sizeof where);
    char saved[1300] = "nothing was saved yet";
    if (r->saved_step >= 0)
        snprintf(saved, sizeof saved, "%s is from step %lld, before it", r->ckpt_path, (long long)r->saved_step);
    char first_op[256] = "";
    if (r->ctx.check_numerics && r->ctx.numerics_first[0])
        snprintf(first_op, sizeof first_op, "; first non-finite output: %s", r->ctx.numerics_first);
    return nd_error_set(err, "diverged at step %lld: %s is %g%s%s; %s; %s. Lower --lr or set --clip-grad%s",
                        (long long)r->state.step + 1, what, value, where[0] ? ": " : "", where,
                        buffer == r->model.params.data ? "this update was not saved" : "the update was not applied",
                        saved, r->ctx.check_numerics ? first_op : " (--check-numerics names the first bad op)");
}

// One optimizer step on this process's b images x0 (already on the device) with their labels, the rows
// shard.begin.. of the batch of cfg.batch_size; this process's loss in *loss.
// False, with nothing saved, when the loss, the gradient (before the update) or the new weights are not finite:
// the global gradient and weight norms are one reduction each.
static bool train_step(run *r, nd_tensor *x0, const int32_t *labels, int *t_host, float *t_values, float *loss,
                       nd_error *err) {
    nd_ctx *ctx = &r->ctx;
    const nd_model_config *mc = &r->model.config;
    int b = (int)x0->shape.d[0], classes = mc->c_embed_dim, batch = r->cfg.batch_size;
    for (int i = 0; i < b; i++) { // t = torch.randint(0, T, (B,))
        float u = nd_philox_uniform(r->cfg.seed ^ ND_TIMESTEP_STREAM, (uint64_t)r->state.step * (uint64_t)batch,
                                    r->shard.begin + i);
        t_host[i] = (int)fminf(floorf(u * (float)mc->T), (float)(mc->T - 1));
    }
    nd_shape whole = x0->shape; // (batch, C, H, W)
    whole.d[0] = batch;
    nd_tensor *noise = nd_empty(ctx, whole);
    nd_rand_normal(ctx, noise, 0.0f, 1.0f);
    noise = shard_rows(ctx, noise, &r->shard); // (b, C, H, W)
    nd_tensor *x_t = nd_schedule_q(ctx, &r->sched, x0, noise, t_host);
    for (int i = 0; i < b; i++) t_values[i] = (float)t_host[i];
    nd_tensor *t = nd_from_host(ctx, ND_SHAPE(b), t_values);
    nd_tensor *context = NULL;
    if (r->text) {
        context = nd_t2i_cond_batch(r->text, ctx, r->state.step, b, labels);
    } else if (classes > 0) { // get_context_mask: one_hot(c) * bernoulli(ones - drop_prob), element by element
        nd_tensor *c = nd_class_context(ctx, labels, b, classes, false);
        nd_tensor *mask = nd_empty(ctx, ND_SHAPE(batch, classes));
        nd_rand_bernoulli(ctx, mask, 1.0f - r->cfg.cfg_drop);
        context = nd_mul(ctx, c, shard_rows(ctx, mask, &r->shard));
    }
    ctx->numerics_first[0] = '\0', ctx->numerics_ops = 0;
    nd_tensor *pred = nd_model_forward(ctx, &r->model, x_t, t, context, true);
    nd_tensor *loss_t = nd_ddpm_loss(ctx, &r->cfg, &r->sched, x0, noise, pred, t_host);
    nd_backward(ctx, loss_t);
    *loss = nd_item(ctx, loss_t);
    nd_params *params = &r->model.params;
    nd_dist_average_grads(params, r->shard.weight, ctx); // a non-finite gradient on any process reaches all
    float grad_norm = r->cfg.clip_grad > 0 ? nd_clip_grad_norm(params, ctx, r->cfg.clip_grad)
                                           : nd_grad_norm(params, ctx);
    bool ok = true;
    if (!isfinite(*loss))
        ok = step_diverged(r, "the loss", *loss, NULL, err);
    else if (!isfinite(grad_norm))
        ok = step_diverged(r, "the gradient's global norm", grad_norm, params->grad, err);
    if (ok) {
        r->opt.config.lr = nd_lr_at(r->cfg.lr, r->cfg.lr_cosine, r->cfg.warmup_steps, r->state.step, r->total);
        nd_adam_step(&r->opt, params, ctx);
        float weight_norm = nd_weight_norm(params, ctx);
        if (!isfinite(weight_norm)) ok = step_diverged(r, "the updated weights' norm", weight_norm, params->data, err);
    }
    nd_params_zero_grad(params, ctx);
    if (ok && r->cfg.ema_decay > 0) nd_ema_update(&r->ema, params, ctx, r->state.step);
    nd_ctx_step_end(ctx);
    if (ok) r->state.step++;
    return ok;
}

// One loss.csv row; processes other than rank 0 keep no log (log NULL).
static void append_loss(FILE *log, int64_t step, int64_t epoch, float loss) {
    if (log) nd_loss_log_row(log, step, epoch, &loss, 1);
}

// Creates the run's context, model, optimizer, EMA and schedule on `device`, and loads the checkpoint's
// weights, optimizer and state when resuming; false with err when the checkpoint cannot be loaded.
static bool run_open(run *r, const nd_ddpm_config *config, bool resume, nd_device device, nd_error *err) {
    nd_ctx_init(&r->ctx, device, 64 << 20, r->cfg.seed);
    bool ok = nd_ctx_set_precision(&r->ctx, config->precision, err); // the flags', not the checkpoint's
    nd_model_create(&r->model, r->cfg.model, &r->ctx);
    nd_adam_config ac = r->cfg.adamw ? nd_adamw_defaults() : nd_adam_defaults();
    ac.lr = r->cfg.lr;
    ac.weight_decay = r->cfg.weight_decay;
    nd_adam_init(&r->opt, &r->model.params, &r->ctx, ac);
    if (r->cfg.ema_decay > 0) nd_ema_init(&r->ema, &r->model.params, &r->ctx, r->cfg.ema_decay);
    nd_ddpm_schedule(&r->cfg, &r->sched);
    r->state.rng = r->ctx.rng;
    r->ctx.check_numerics = config->check_numerics;
    r->saved_step = -1;
    if (ok && resume) {
        ok = nd_checkpoint_load(r->ckpt_path, &r->model, &r->cfg, &r->state, &r->opt,
                                r->cfg.ema_decay > 0 ? &r->ema : NULL, &r->ctx, err);
        r->ctx.rng = r->state.rng;
        r->cfg.epochs = config->epochs;
        r->cfg.max_steps = config->max_steps;
        r->saved_step = r->state.step;
    }
    return ok;
}

// Frees everything run_open created.
static void run_close(run *r) {
    nd_schedule_free(&r->sched);
    if (r->cfg.ema_decay > 0) nd_ema_free(&r->ema);
    nd_adam_free(&r->opt);
    nd_model_free(&r->model);
    nd_ctx_free(&r->ctx);
    nd_t2i_cond_close(r->text);
}

// Steps from the run's state to r->total (per_epoch steps an epoch), a loss line each to log, checkpoints at
// epoch ends, every checkpoint_every steps, on Ctrl-C and at the end; result gets the run's figures.
static bool train_loop(run *r, nd_loader *loader, int64_t per_epoch, FILE *log, const char *out_dir, bool progress,
                       nd_ddpm_result *result, nd_error *err) {
    bool ok = true, root = nd_dist_world()->rank == 0; // rank 0 alone prints and writes
    int64_t total = r->total;
    int *t_host = nd_xmalloc((size_t)r->cfg.batch_size * sizeof(int));
    float *t_values = nd_xmalloc((size_t)r->cfg.batch_size * sizeof(float));
    nd_progress bar;
    nd_progress_init(&bar, "ddpm", total, r->state.step);
    nd_stop_signals_install();
    double start = nd_seconds(), loss_sum = 0.0;
    int64_t loss_count = 0, first_step = r->state.step;
    // The next batch is uploaded while the current step computes: batch k + 1 is put right after batch k is
    // taken. Labels stay on the host (they become the one-hot context there), copied because the loader
    // reuses a batch's memory once the next is asked for.
    const nd_model_config *mc = &r->model.config;
    nd_shape image_shape = ND_SHAPE(r->shard.size, mc->img_ch, mc->img_size, mc->img_size);
    size_t batch_bytes = (size_t)nd_shape_numel(image_shape) * sizeof(float);
    nd_prefetch prefetch = {0};
    int32_t *labels[2] = {nd_xcalloc((size_t)r->cfg.batch_size, sizeof(int32_t)),
                          nd_xcalloc((size_t)r->cfg.batch_size, sizeof(int32_t))};
    if (r->state.step < total) {
        nd_prefetch_init(&prefetch, &r->ctx, batch_bytes);
        const nd_batch *batch = nd_loader_next(loader);
        nd_prefetch_put(&prefetch, batch->images, batch_bytes);
        if (batch->labels) memcpy(labels[0], batch->labels, (size_t)batch->size * sizeof(int32_t));
    }
    while (ok && r->state.step < total) {
        int64_t epoch = r->state.step / per_epoch, k = r->state.step - first_step;
        if (r->state.step % per_epoch == 0) loss_sum = 0.0, loss_count = 0;
        nd_tensor *x0 = nd_prefetch_take(&prefetch, image_shape);
        if (r->state.step + 1 < total) {
            const nd_batch *next = nd_loader_next(loader);
            nd_prefetch_put(&prefetch, next->images, batch_bytes);
            if (next->labels) memcpy(labels[(k + 1) % 2], next->labels, (size_t)next->size * sizeof(int32_t));
        }
        float loss;
        if (!(ok = train_step(r, x0, labels[k % 2], t_host, t_values, &loss, err))) break;
        bool stop = nd_stop_requested() != 0;
        loss = (float)nd_dist_mean_loss(loss, r->shard.weight, &stop); // the whole batch's; a stop on any process
        // the first two steps create and first touch what later steps reuse (the arena grown to its peak,
        // convolution primitives): left out, as benchmarks leave out their warm-up
        if (r->cfg.profile && k == 1) nd_profile_begin(&r->ctx);
        loss_sum += loss, loss_count++;
        append_loss(log, r->state.step, epoch, loss);
        if (progress && root)
            nd_progress_update(&bar, r->state.step - 1, epoch, r->cfg.epochs, loss, r->cfg.batch_size);
        bool epoch_end = r->state.step % per_epoch == 0;
        bool periodic = r->cfg.checkpoint_every > 0 && r->state.step % r->cfg.checkpoint_every == 0;
        if (root && (epoch_end || periodic || stop || r->state.step == total)) ok = save(r, err);
        if (ok && root && r->cfg.preview_every > 0 && r->state.step % r->cfg.preview_every == 0)
            write_preview(&r->ctx, &r->model, r->text ? nd_t2i_cond_text(r->text) : NULL, &r->sched, out_dir,
                          r->state.step, &r->cfg);
        if (stop) {
            result->interrupted = true;
            result->signal = nd_stop_requested() ? nd_stop_requested() : SIGINT; // another process's stop
            if (progress && root)
                fprintf(stderr, "\nstopped at step %lld; continue with --resume\n", (long long)r->state.step);
            break;
        }
    }
    nd_stop_signals_restore();
    if (ok) {
        result->steps = r->state.step;
        result->last_loss = loss_count ? loss_sum / (double)loss_count : NAN;
        result->seconds = nd_seconds() - start;
        result->images_per_second = (double)(r->state.step - first_step) * r->cfg.batch_size / result->seconds;
    }
    if (r->cfg.profile && !r->ctx.profile)
        fprintf(stderr, "nanodiff train: --profile times the steps after the second; this run had none\n");
    if (r->cfg.profile) nd_profile_report(&r->ctx, stderr);
    nd_prefetch_free(&prefetch);
    free(labels[0]);
    free(labels[1]);
    free(t_host);
    free(t_values);
    return ok;
}

bool nd_ddpm_train(const nd_ddpm_config *config, const char *out_dir, bool resume, nd_device device, bool progress,
                   nd_ddpm_result *result, nd_error *err) {
    *result = (nd_ddpm_result){0};
    const nd_dist *dist = nd_dist_world();
    bool root = dist->rank == 0; // prints, logs and writes
    run *r = nd_xcalloc(1, sizeof *r);
    r->cfg = *config;
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/model.h5", out_dir);
    if ((root && !out_dir_ready(out_dir, r->ckpt_path, sizeof r->ckpt_path, err)) ||
        (resume && !nd_checkpoint_read_config(r->ckpt_path, &r->cfg, err))) {
        free(r);
        return false;
    }
    if (resume) { // the checkpoint's configuration wins, but for how long to train
        r->cfg.epochs = config->epochs;
        r->cfg.max_steps = config->max_steps;
    }
    if (r->cfg.batch_size < dist->size) {
        nd_error_set(err, "a batch of %d images cannot be shared by %d processes: expected --batch of at least %d",
                     r->cfg.batch_size, dist->size, dist->size);
        free(r);
        return false;
    }
    r->shard = nd_dist_shard_of(dist, r->cfg.batch_size);
    nd_dataset ds = {0};
    if (!load_data(&ds, &r->cfg, err)) {
        free(r);
        return false;
    }
    // the captions follow the loader's whole batches: a process holding a shard of each would caption
    // another process's images
    if (r->cfg.model.kind == ND_MODEL_T2I_UNET && dist->size > 1) {
        nd_error_set(err,
                     "t2i-unet training runs in a single process (its captions follow whole batches): "
                     "found %d processes, expected 1",
                     dist->size);
        nd_dataset_free(&ds);
        free(r);
        return false;
    }
    // (a t2i-unet learns its context width from the CLIP here)
    if (r->cfg.model.kind == ND_MODEL_T2I_UNET && !nd_t2i_cond_open(&r->text, &r->cfg, &ds, out_dir, device, err)) {
        nd_dataset_free(&ds);
        free(r);
        return false;
    }
    if (!nd_ddpm_config_check(&r->cfg, "the run's configuration", err)) {
        nd_t2i_cond_close(r->text);
        nd_dataset_free(&ds);
        free(r);
        return false;
    }
    bool ok = run_open(r, config, resume, device, err);
    nd_loader_config lc = {.batch_size = r->cfg.batch_size,
                           .shuffle = true,
                           .drop_last = true,
                           .random_flip = r->cfg.random_flip,
                           .unit_range = r->cfg.unit_range,
                           .seed = r->cfg.seed,
                           .shard_begin = r->shard.begin,
                           .shard_size = r->shard.size};
    int64_t per_epoch = nd_batches_per_epoch(ds.n, r->cfg.batch_size, true);
    r->total = r->cfg.max_steps > 0 ? r->cfg.max_steps : per_epoch * r->cfg.epochs;
    if (ok && per_epoch == 0)
        ok = nd_error_set(err, "%s: %lld images make no full batch of %d", r->cfg.data, (long long)ds.n,
                          r->cfg.batch_size);
    ok = ok && nd_dist_check_start(&r->model.params, r->state.step, ds.n, err);
    nd_loader *loader = NULL;
    if (ok) loader = nd_loader_create(&ds, &lc, r->state.step / per_epoch, r->state.step % per_epoch, err);
    ok = ok && loader;

    FILE *log = ok && root ? nd_loss_log_open(out_dir, resume, "step,epoch,loss", err) : NULL;
    ok = ok && (log || !root) && train_loop(r, loader, per_epoch, log, out_dir, progress, result, err);
    if (log) fclose(log);
    if (loader) nd_loader_free(loader);
    run_close(r);
    nd_dataset_free(&ds);
    free(r);
    return ok;
}
