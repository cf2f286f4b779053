// CLIP training on Fashion-MNIST: each image (flipped at random) is paired with a caption measured on it, the
// tokenizer is learnt from the captions of the unflipped training set, and the symmetric contrastive loss over
// each batch's pairs is minimised by AdamW with a warm-up and cosine decay. Zero-shot evaluation at the end.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "train.h"

#define CLIP_EVAL_BATCH 500 // images per no-grad forward in evaluation

nd_clip_train_config nd_clip_train_defaults(void) {
    nd_clip_train_config c = {0};
    c.model = nd_clip_config_default(0);
    snprintf(c.data, sizeof c.data, "fashion-mnist");
    c.vocab_size = 512;
    c.random_flip = true;
    c.epochs = 3, c.batch_size = 256;
    c.lr = 2e-3f, c.weight_decay = 0.0f;
    c.warmup_steps = 50;
    return c;
}

// The data set at the model's image size; it must be labelled with Fashion-MNIST's 10 classes.
static bool load_split(nd_dataset *ds, const char *data, nd_split split, int img_size, nd_error *err) {
    if (!nd_dataset_load(ds, data, split, err)) return false;
    if (ds->num_classes != 10 || ds->c != 1) {
        nd_error_set(err,
                     "%s: CLIP's captions need 10 labelled classes of grey images (Fashion-MNIST), found %d "
                     "classes of %d channels",
                     data, ds->num_classes, ds->c);
        nd_dataset_free(ds);
        return false;
    }
    if ((ds->h != img_size || ds->w != img_size) && !nd_dataset_resize(ds, img_size, img_size, err)) {
        nd_dataset_free(ds);
        return false;
    }
    return true;
}

// The BPE learnt from the caption of every unflipped training image (variant 0) and its mirror's.
static bool learn_tokenizer(nd_tokenizer *tok, const nd_captioner *cap, const nd_dataset *ds, int vocab_size,
                            int context, nd_error *err) {
    int64_t n = 2 * ds->n;
    char *store = nd_xmalloc((size_t)n * ND_CAPTION_MAX);       // (n, ND_CAPTION_MAX) the captions
    const char **texts = nd_xmalloc((size_t)n * sizeof *texts); // (n,) into store
    for (int64_t i = 0; i < n; i++) {
        texts[i] = store + i * ND_CAPTION_MAX;
        nd_caption_make(cap, ds, i / 2, i % 2, 0, store + i * ND_CAPTION_MAX, NULL);
    }
    bool ok = nd_tokenizer_train(tok, texts, n, vocab_size, context, err);
    free(store), free(texts);
    return ok;
}

typedef struct run {
    nd_clip_train_config cfg;
    nd_ctx ctx;
    nd_clip clip;
    nd_tokenizer tok;
    nd_adam opt;
    nd_train_state state;
    char ckpt_path[1100];
} run;

static bool save(run *r, nd_error *err) {
    r->state.rng = r->ctx.rng;
    return nd_clip_checkpoint_save(r->ckpt_path, &r->clip, &r->tok, &r->cfg, &r->state, &r->opt, &r->ctx, err);
}

// The training numbers of a resumed run's checkpoint, against the range table (a batch of 0 divides by zero).
static bool training_fields_check(const nd_clip_train_config *cfg, const char *path, nd_error *err) {
    const struct {
        nd_limit_id id;
        const char *name;
        double value;
    } fields[] = {{ND_LIMIT_BATCH_SIZE, "batch_size", cfg->batch_size},
                  {ND_LIMIT_LR, "lr", cfg->lr},
                  {ND_LIMIT_WEIGHT_DECAY, "weight_decay", cfg->weight_decay},
                  {ND_LIMIT_STEP_COUNT, "warmup_steps", (double)cfg->warmup_steps},
                  {ND_LIMIT_STEP_COUNT, "checkpoint_every", (double)cfg->checkpoint_every}};
    for (int i = 0; i < ND_COUNT(fields); i++) {
        char what[1200];
        snprintf(what, sizeof what, "%s: %s", path, fields[i].name);
        if (!nd_limit_check(fields[i].id, fields[i].value, what, err)) return false;
    }
    return true;
}

bool nd_clip_train(const nd_clip_train_config *config, const char *out_dir, bool resume, nd_device device,
                   bool progress, nd_clip_train_result *result, nd_error *err) {
    run *r = nd_xcalloc(1, sizeof *r);
    r->cfg = *config;
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/clip.h5", out_dir);
    if (resume && (!nd_clip_checkpoint_read_config(r->ckpt_path, &r->cfg, err) ||
                   !training_fields_check(&r->cfg, r->ckpt_path, err))) {
        free(r);
        return false;
    }
    r->cfg.epochs = config->epochs, r->cfg.max_steps = config->max_steps;
    nd_dataset ds = {0};
    nd_captioner cap;
    if (!nd_run_dir_make(out_dir, err) || !load_split(&ds, r->cfg.data, ND_SPLIT_TRAIN, r->cfg.model.img_size, err)) {
        free(r);
        return false;
    }
    bool ok = nd_captioner_init(&cap, &ds, r->cfg.seed, err);
    if (ok && !resume) ok = learn_tokenizer(&r->tok, &cap, &ds, r->cfg.vocab_size, r->cfg.model.context_length, err);
    if (ok && !resume) r->cfg.model.vocab_size = r->tok.vocab_size;
    nd_ctx_init(&r->ctx, device, 64 << 20, r->cfg.seed);
    ok = ok && nd_ctx_set_precision(&r->ctx, config->precision, err); // the flags', not the checkpoint's
    if (ok) {
        nd_clip_create(&r->clip, r->cfg.model, &r->ctx);
        nd_adam_config ac = nd_adamw_defaults();
        ac.lr = r->cfg.lr, ac.weight_decay = r->cfg.weight_decay;
        nd_adam_init(&r->opt, &r->clip.params, &r->ctx, ac);
        r->state.rng = r->ctx.rng;
    }
    if (ok && resume) {
        ok = nd_clip_checkpoint_load(r->ckpt_path, &r->clip, &r->tok, NULL, &r->state, &r->opt, &r->ctx, err);
        r->ctx.rng = r->state.rng;
    }
    const int b = r->cfg.batch_size, s = r->cfg.model.context_length, size = r->cfg.model.img_size;
    nd_loader_config lc = {
        .batch_size = b, .shuffle = true, .drop_last = true, .random_flip = r->cfg.random_flip, .seed = r->cfg.seed};
    int64_t per_epoch = nd_batches_per_epoch(ds.n, b, true);
    int64_t total = r->cfg.max_steps > 0 ? r->cfg.max_steps : per_epoch * r->cfg.epochs;
    if (ok && per_epoch == 0)
        ok = nd_error_set(err, "%s: %lld images make no full batch of %d", r->cfg.data, (long long)ds.n, b);

    FILE *log = ok ? nd_loss_log_open(out_dir, resume, "step,epoch,loss,logit_scale", err) : NULL;
    ok = ok && log;
    int64_t *order = nd_xmalloc((size_t)ds.n * sizeof *order);                       // (N,) the epoch's order
    nd_batch batch = {.images = nd_xmalloc((size_t)b * size * size * sizeof(float)), // (B, 1, S, S)
                      .labels = nd_xmalloc((size_t)b * sizeof(int32_t))};            // (B,)
    int32_t *ids = nd_xmalloc((size_t)b * s * sizeof *ids);                          // (B, context) token ids
    char caption[ND_CAPTION_MAX];
    nd_progress bar;
    nd_progress_init(&bar, "clip", total, r->state.step);
    nd_stop_signals_install();
    double start = nd_seconds(), loss_sum = 0.0;
    int64_t loss_count = 0, first_step = r->state.step, order_epoch = -1;
    *result = (nd_clip_train_result){0};
    while (ok && r->state.step < total) {
        int64_t epoch = r->state.step / per_epoch, index = r->state.step % per_epoch;
        if (index == 0) loss_sum = 0.0, loss_count = 0;
        if (epoch != order_epoch) nd_shuffle_order(order, ds.n, r->cfg.seed, epoch), order_epoch = epoch;
        nd_batch_fill(&batch, &ds, &lc, order, epoch, index);
        for (int k = 0; k < b; k++) { // the caption of each image as the batch shows it (flipped or not)
            int64_t i = order[index * b + k];
            bool flip = r->cfg.random_flip && nd_flip_coin(r->cfg.seed, epoch, i);
            nd_caption_make(&cap, &ds, i, flip, (uint64_t)epoch, caption, NULL);
            nd_tokenizer_encode(&r->tok, caption, ids + (int64_t)k * s);
        }
        nd_ctx *ctx = &r->ctx;
        nd_tensor *images = nd_from_host(ctx, ND_SHAPE(b, 1, size, size), batch.images);
        nd_tensor *loss = nd_clip_loss(ctx, &r->clip, images, ids);
        nd_backward(ctx, loss);
        r->opt.config.lr = nd_lr_at(r->cfg.lr, true, r->cfg.warmup_steps, r->state.step, total);
        nd_adam_step(&r->opt, &r->clip.params, ctx);
        nd_params_zero_grad(&r->clip.params, ctx);
        nd_clip_clamp_logit_scale(ctx, &r->clip);
        float row[2]; // loss, logit scale
        float value = row[0] = nd_item(ctx, loss);
        nd_copy_to_host(ctx, r->clip.logit_scale, &row[1]);
        nd_ctx_step_end(ctx);
        r->state.step++;
        if (!isfinite(value)) {
            ok = nd_error_set(err, "the loss became %g at step %lld; lower --lr", value, (long long)r->state.step);
            break;
        }
        loss_sum += value, loss_count++;
        nd_loss_log_row(log, r->state.step, epoch, row, 2);
        if (progress) nd_progress_update(&bar, r->state.step - 1, epoch, r->cfg.epochs, value, b);
        bool epoch_end = r->state.step % per_epoch == 0;
        bool periodic = r->cfg.checkpoint_every > 0 && r->state.step % r->cfg.checkpoint_every == 0;
        int stop = nd_stop_requested(); // read once: a signal between two reads would stop without a save
        if (epoch_end || periodic || stop || r->state.step == total) ok = save(r, err);
        if (stop) {
            result->interrupted = true;
            result->signal = stop;
            if (progress) fprintf(stderr, "\nstopped at step %lld; continue with --resume\n", (long long)r->state.step);
            break;
        }
    }
    nd_stop_signals_restore();
    if (ok) {
        result->steps = r->state.step;
        result->last_loss = loss_count ? loss_sum / (double)loss_count : NAN;
        result->seconds = nd_seconds() - start;
        result->images_per_second = (double)(r->state.step - first_step) * b / result->seconds;
    }
    if (log) fclose(log);
    free(order), free(batch.images), free(batch.labels), free(ids);
    if (r->clip.params.items) {
        nd_adam_free(&r->opt);
        nd_clip_free(&r->clip);
    }
    nd_tokenizer_free(&r->tok);
    nd_ctx_free(&r->ctx);
    nd_dataset_free(&ds);
    free(r);
    return ok;
}

// ---------------------------------------------------------------------------------------------------
// evaluation

// Normalised embeddings of host images (n, C, S, S) into out (n, E), batch by batch without gradient.
static void embed_images(nd_ctx *ctx, const nd_clip *clip, const float *images, int64_t n, float *out) {
    const nd_clip_config *c = &clip->config;
    int64_t image = (int64_t)c->img_ch * c->img_size * c->img_size;
    bool was = nd_ctx_set_grad(ctx, false);
    for (int64_t i = 0; i < n; i += CLIP_EVAL_BATCH) {
        int64_t m = n - i < CLIP_EVAL_BATCH ? n - i : CLIP_EVAL_BATCH;
        nd_tensor *x = nd_from_host(ctx, ND_SHAPE(m, c->img_ch, c->img_size, c->img_size), images + i * image);
        nd_copy_to_host(ctx, nd_l2_normalize(ctx, nd_clip_encode_image(ctx, clip, x)), out + i * c->embed_dim);
        nd_ctx_step_end(ctx);
    }
    nd_ctx_set_grad(ctx, was);
}

static void embed_texts(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const char *const *texts, int n,
                        float *out) {
    int32_t *ids = nd_xmalloc((size_t)n * tok->context * sizeof *ids); // (n, context)
    nd_tokenizer_encode_batch(tok, texts, n, ids);
    bool was = nd_ctx_set_grad(ctx, false);
    nd_copy_to_host(ctx, nd_l2_normalize(ctx, nd_clip_encode_text(ctx, clip, ids, n, NULL)), out);
    nd_ctx_step_end(ctx);
    nd_ctx_set_grad(ctx, was);
    free(ids);
}

void nd_clip_similarity(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const float *images,
                        int64_t n_images, const char *const *prompts, int n_prompts, float *sim) {
    int e = clip->config.embed_dim;
    float *ie = nd_xmalloc((size_t)n_images * e * sizeof *ie);  // (n_images, E) unit image embeddings
    float *te = nd_xmalloc((size_t)n_prompts * e * sizeof *te); // (n_prompts, E) unit text embeddings
    embed_images(ctx, clip, images, n_images, ie);
    embed_texts(ctx, clip, tok, prompts, n_prompts, te);
    for (int64_t i = 0; i < n_images; i++)
        for (int j = 0; j < n_prompts; j++) {
            double dot = 0;
            for (int k = 0; k < e; k++) dot += (double)ie[i * e + k] * te[(int64_t)j * e + k];
            sim[i * n_prompts + j] = (float)dot;
        }
    free(ie), free(te);
}

double nd_clip_zero_shot(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const float *images, int64_t n,
                         const int32_t *labels, int64_t *correct, int64_t *count) {
    char prompts[10][ND_CAPTION_MAX];
    const char *texts[10];
    for (int k = 0; k < 10; k++) {
        nd_caption_class_prompt(k, prompts[k], sizeof prompts[k]);
        texts[k] = prompts[k];
        correct[k] = count[k] = 0;
    }
    float *sim = nd_xmalloc((size_t)n * 10 * sizeof *sim);
    nd_clip_similarity(ctx, clip, tok, images, n, texts, 10, sim);
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (sim[i * 10 + k] > sim[i * 10 + best]) best = k;
        count[labels[i]]++;
        if (best == labels[i]) correct[labels[i]]++, right++;
    }
    free(sim);
    return n ? (double)right / (double)n : 0.0;
}
