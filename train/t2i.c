// Text-to-image training's conditioning: each image's caption (measured on the image as flipped), the empty
// prompt in its place with probability cfg_drop (classifier-free guidance), the frozen CLIP text encoder's
// features of the caption. Also where a t2i checkpoint finds its CLIP again.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "train.h"

struct nd_t2i_cond {
    nd_text_encoder *text;
    nd_captioner captioner;
    const nd_dataset *ds;
    uint64_t seed;
    bool random_flip;
    float drop;
    int64_t per_epoch; // batches in an epoch (drop_last, as the loader)
    int batch_size;
    int64_t *order; // (N) the loader's order of order_epoch
    int64_t order_epoch;
    char (*captions)[ND_CAPTION_MAX]; // (batch_size)
};

// Copies src to dst through a temporary file renamed into place.
static bool copy_file(const char *src, const char *dst, nd_error *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return nd_error_set(err, "%s: cannot read the CLIP checkpoint to copy it: %s", src, strerror(errno));
    nd_atomic_file af;
    if (!nd_atomic_open(&af, dst, err)) {
        fclose(in);
        return false;
    }
    char buf[1 << 16];
    size_t got;
    bool ok = true;
    while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, af.f) == got;
    ok = ok && !ferror(in);
    fclose(in);
    if (!ok) {
        nd_atomic_abort(&af);
        return nd_error_set(err, "%s: cannot copy the CLIP checkpoint here: %s", dst, strerror(errno));
    }
    return nd_atomic_commit(&af, err);
}

bool nd_t2i_cond_open(nd_t2i_cond **out, nd_ddpm_config *cfg, const nd_dataset *ds, const char *out_dir,
                      nd_device device, nd_error *err) {
    *out = NULL;
    if (!cfg->clip[0])
        return nd_error_set(err, "model t2i-unet: --clip is required (a CLIP checkpoint from nanodiff train-clip, "
                                 "whose text encoder reads the captions)");
    if (ds->c != 1 || ds->num_classes != 10 || !ds->labels)
        return nd_error_set(err,
                            "%s: text-to-image training captions Fashion-MNIST's ten labelled classes of grey "
                            "images; this set has %d classes and %d channels",
                            cfg->data, ds->num_classes, ds->c);
    nd_t2i_cond *c = nd_xcalloc(1, sizeof *c);
    // a resumed run finds its CLIP by the hash recorded at its start, in the copy beside the checkpoint first
    char copy[1100];
    snprintf(copy, sizeof copy, "%s/clip.h5", out_dir);
    const char *source = cfg->clip_hash[0] && access(copy, R_OK) == 0 ? copy : cfg->clip;
    if (!nd_text_encoder_open(&c->text, source, cfg->clip_hash, cfg->text_pooled, device, err) ||
        !nd_captioner_init(&c->captioner, ds, cfg->seed, err)) {
        nd_t2i_cond_close(c);
        return false;
    }
    char have[32];
    bool same = nd_file_hash(copy, have, sizeof have, NULL) && strcmp(have, nd_text_encoder_hash(c->text)) == 0;
    if (!same && !copy_file(source, copy, err)) {
        nd_t2i_cond_close(c);
        return false;
    }
    snprintf(cfg->clip_hash, sizeof cfg->clip_hash, "%s", nd_text_encoder_hash(c->text));
    cfg->model.c_embed_dim = nd_text_encoder_width(c->text);
    c->ds = ds;
    c->seed = cfg->seed;
    c->random_flip = cfg->random_flip;
    c->drop = cfg->cfg_drop;
    c->batch_size = cfg->batch_size;
    c->per_epoch = nd_batches_per_epoch(ds->n, cfg->batch_size, true);
    c->order = nd_xmalloc((size_t)ds->n * sizeof(int64_t));
    c->order_epoch = -1;
    c->captions = nd_xmalloc((size_t)cfg->batch_size * sizeof *c->captions);
    *out = c;
    return true;
}

void nd_t2i_cond_close(nd_t2i_cond *c) {
    if (!c) return;
    nd_text_encoder_close(c->text);
    free(c->order);
    free(c->captions);
    free(c);
}

nd_text_encoder *nd_t2i_cond_text(nd_t2i_cond *c) { return c->text; }

nd_tensor *nd_t2i_cond_batch(nd_t2i_cond *c, nd_ctx *ctx, int64_t step, int b, const int32_t *labels) {
    int64_t epoch = step / c->per_epoch, index = step % c->per_epoch;
    if (epoch != c->order_epoch) { // the loader's shuffle (nd_batch_fill), drawn again here
        nd_shuffle_order(c->order, c->ds->n, c->seed, epoch);
        c->order_epoch = epoch;
    }
    // the empty-prompt coins come from the step's RNG, as the class model's label-dropout mask does
    nd_tensor *coins = nd_empty(ctx, ND_SHAPE(b));
    nd_rand_uniform(ctx, coins, 0.0f, 1.0f);
    float *u = nd_xmalloc((size_t)b * sizeof(float));
    nd_copy_to_host(ctx, coins, u);
    const char **prompts = nd_xmalloc((size_t)b * sizeof(char *));
    for (int k = 0; k < b; k++) {
        int64_t i = c->order[index * c->batch_size + k];
        if (c->ds->labels[i] != labels[k])
            nd_abort_at(ND_HERE, "nd_t2i_cond_batch",
                        "image %lld of batch %lld (epoch %lld) has label %d, the "
                        "loader's %d: captions would describe other images",
                        (long long)k, (long long)index, (long long)epoch, c->ds->labels[i], labels[k]);
        bool flip = c->random_flip && nd_flip_coin(c->seed, epoch, i);
        if (u[k] < c->drop) {
            prompts[k] = "";
        } else { // a new template for the image every epoch
            nd_caption_make(&c->captioner, c->ds, i, flip, (uint64_t)epoch, c->captions[k], NULL);
            prompts[k] = c->captions[k];
        }
    }
    nd_tensor *context = nd_text_encoder_context(c->text, ctx, prompts, b, false); // (b, S, D)
    free(prompts);
    free(u);
    return context;
}

nd_tensor *nd_t2i_class_context(nd_text_encoder *te, nd_ctx *ctx, const int32_t *labels, int n) {
    char(*text)[ND_CAPTION_MAX] = nd_xmalloc((size_t)n * sizeof *text);
    const char **prompts = nd_xmalloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) {
        nd_caption_class_prompt(labels[i], text[i], sizeof text[i]);
        prompts[i] = text[i];
    }
    nd_tensor *context = nd_text_encoder_context(te, ctx, prompts, n, true);
    free(prompts);
    free(text);
    return context;
}

nd_tensor *nd_t2i_empty_context(nd_text_encoder *te, nd_ctx *ctx, int n) {
    const char **prompts = nd_xmalloc((size_t)n * sizeof(char *));
    for (int i = 0; i < n; i++) prompts[i] = "";
    nd_tensor *context = nd_text_encoder_context(te, ctx, prompts, n, true);
    free(prompts);
    return context;
}

bool nd_t2i_open_text(const char *ckpt_path, const nd_ddpm_config *cfg, const char *clip_override, nd_device device,
                      nd_text_encoder **te, nd_error *err) {
    *te = NULL;
    char beside[1100];
    const char *slash = strrchr(ckpt_path, '/');
    snprintf(beside, sizeof beside, "%.*sclip.h5", slash ? (int)(slash - ckpt_path + 1) : 0, ckpt_path);
    const char *tries[3] = {clip_override, clip_override ? NULL : beside, clip_override ? NULL : cfg->clip};
    nd_error first = {{0}};
    for (int k = 0; k < 3; k++) {
        if (!tries[k] || !tries[k][0] || (k == 2 && strcmp(tries[2], beside) == 0)) continue;
        nd_error why;
        bool exists = access(tries[k], R_OK) == 0;
        if (!exists && k < 2 && clip_override) return nd_error_set(err, "--clip %s: no such file", clip_override);
        if (!exists) continue;
        if (nd_text_encoder_open(te, tries[k], cfg->clip_hash, cfg->text_pooled, device, &why)) {
            if (nd_text_encoder_width(*te) == cfg->model.c_embed_dim) return true;
            nd_error_set(&why, "%s: the CLIP's text features are %d wide, the model's context %d", tries[k],
                         nd_text_encoder_width(*te), cfg->model.c_embed_dim);
            nd_text_encoder_close(*te);
            *te = NULL;
        }
        if (!first.msg[0]) first = why;
    }
    if (first.msg[0]) return nd_error_set(err, "%s", first.msg);
    return nd_error_set(err,
                        "%s: the CLIP checkpoint this text-to-image model was trained with is missing (looked "
                        "for %s and %s); pass it with --clip",
                        ckpt_path, beside, cfg->clip);
}
