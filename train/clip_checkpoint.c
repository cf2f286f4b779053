// CLIP checkpoints (HDF5), laid out as DDPM checkpoints are (checkpoint.c): root attributes format
// "nanodiff-checkpoint", kind "clip", data, the model and training configuration, step, RNG and adam_step;
// groups params/, adam/m/ and adam/v/ hold one float32 dataset per tensor, named by its PyTorch state_dict key
// and shaped as the tensor (chunked with a Fletcher-32 checksum); tokenizer/merges is (n_merges, 2) int32 with
// the attribute context. Saving builds the file in memory and writes it atomically (data/h5_io.h); loading
// checks every name and shape and reads every value before it changes anything.
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_io.h"
#include "train.h"

#define CLIP_FORMAT "nanodiff-checkpoint"
#define CLIP_KIND "clip"
#define CLIP_DIM_MAX (1 << 20)    // the largest model dimension a file may ask for
#define CLIP_MERGES_MAX (1 << 24) // the most BPE merges a file may hold

#define MODEL_FIELD(f)                                                                                                 \
    { #f, ND_H5_INT, offsetof(nd_clip_train_config, model.f), 1 }
#define RUN_FIELD(name, f, kind)                                                                                       \
    { name, kind, offsetof(nd_clip_train_config, f), 0 }
#define N_MODEL_FIELDS 12

// One root attribute per configuration field; the model's come first: a checkpoint loads only into a model
// whose fields all match.
static const nd_h5_field config_fields[] = {
    MODEL_FIELD(vocab_size),
    MODEL_FIELD(context_length),
    MODEL_FIELD(text_width),
    MODEL_FIELD(text_layers),
    MODEL_FIELD(text_heads),
    MODEL_FIELD(img_ch),
    MODEL_FIELD(img_size),
    MODEL_FIELD(patch_size),
    MODEL_FIELD(vision_width),
    MODEL_FIELD(vision_layers),
    MODEL_FIELD(vision_heads),
    MODEL_FIELD(embed_dim),
    RUN_FIELD("vocab_target", vocab_size, ND_H5_INT),
    RUN_FIELD("random_flip", random_flip, ND_H5_BOOL),
    RUN_FIELD("epochs", epochs, ND_H5_INT),
    RUN_FIELD("batch_size", batch_size, ND_H5_INT),
    RUN_FIELD("lr", lr, ND_H5_FLOAT),
    RUN_FIELD("weight_decay", weight_decay, ND_H5_FLOAT),
    RUN_FIELD("warmup_steps", warmup_steps, ND_H5_INT64),
    RUN_FIELD("seed", seed, ND_H5_UINT64),
    RUN_FIELD("checkpoint_every", checkpoint_every, ND_H5_INT64),
    RUN_FIELD("max_steps", max_steps, ND_H5_INT64),
};

static const nd_h5_field state_fields[] = {
    {"step", ND_H5_INT64, offsetof(nd_train_state, step), 0},
    {"rng_seed", ND_H5_UINT64, offsetof(nd_train_state, rng.seed), 0},
    {"rng_offset", ND_H5_UINT64, offsetof(nd_train_state, rng.offset), 0},
};

static const nd_h5_field adam_step_field = {"adam_step", ND_H5_INT64, 0, 0};
static const nd_h5_field context_field = {"context", ND_H5_INT, 0, 0};

// ---------------------------------------------------------------------------------------------------
// save

// What one save writes.
typedef struct clip_contents {
    const nd_clip *clip;
    const nd_tokenizer *tok;
    const nd_clip_train_config *cfg;
    const nd_train_state *state;
    const nd_adam *opt;
} clip_contents;

// tokenizer/merges (n_merges, 2) int32 and its context attribute.
static bool write_merges(nd_h5_writer *w, const nd_tokenizer *tok) {
    hsize_t dims[2] = {(hsize_t)tok->n_merges, 2};
    hid_t g = H5Gcreate2(w->file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t d = g < 0 || space < 0 ? -1
                                 : H5Dcreate2(g, "merges", H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = d >= 0 &&
              (tok->n_merges == 0 || H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tok->merges) >= 0);
    ok = ok && nd_h5_field_write(d, &context_field, &tok->context);
    if (d >= 0) ok = H5Dclose(d) >= 0 && ok;
    if (space >= 0) H5Sclose(space);
    if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
    return ok || nd_h5_writer_fail(w, "writing dataset", "tokenizer/merges");
}

static bool write_contents(nd_h5_writer *w, const void *arg) {
    const clip_contents *c = arg;
    const nd_clip_train_config *cfg = c->cfg;
    const nd_adam *opt = c->opt;
    const char *strings[3][2] = {{"format", CLIP_FORMAT}, {"kind", CLIP_KIND}, {"data", cfg->data}};
    for (int i = 0; i < ND_COUNT(strings); i++)
        if (!nd_h5_attr_write_str(w->file, strings[i][0], strings[i][1]))
            return nd_h5_writer_fail(w, "writing attribute", strings[i][0]);
    for (int i = 0; i < ND_COUNT(config_fields); i++)
        if (!nd_h5_field_write(w->file, &config_fields[i], cfg))
            return nd_h5_writer_fail(w, "writing attribute", config_fields[i].name);
    for (int i = 0; i < ND_COUNT(state_fields); i++)
        if (!nd_h5_field_write(w->file, &state_fields[i], c->state))
            return nd_h5_writer_fail(w, "writing attribute", state_fields[i].name);
    const nd_params *p = &c->clip->params;
    if (!nd_h5_write_device_params(w->file, "params", p, p->data, p->device, w->failed, sizeof w->failed)) return false;
    if (opt) {
        if (!nd_h5_field_write(w->file, &adam_step_field, &opt->step))
            return nd_h5_writer_fail(w, "writing attribute", adam_step_field.name);
        hid_t g = H5Gcreate2(w->file, "adam", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0 || H5Gclose(g) < 0) return nd_h5_writer_fail(w, "creating group", "adam");
        if (!nd_h5_write_device_params(w->file, "adam/m", p, opt->m, opt->device, w->failed, sizeof w->failed) ||
            !nd_h5_write_device_params(w->file, "adam/v", p, opt->v, opt->device, w->failed, sizeof w->failed))
            return false;
    }
    return write_merges(w, c->tok);
}

// The counterpart of torch.save({'model': clip.state_dict(), 'optimizer': opt.state_dict(), ...}), in HDF5.
bool nd_clip_checkpoint_save(const char *path, const nd_clip *clip, const nd_tokenizer *tok,
                             const nd_clip_train_config *cfg, const nd_train_state *state, const nd_adam *opt,
                             nd_ctx *ctx, nd_error *err) {
    if (opt && opt->n != clip->params.total)
        nd_abort_at(ND_HERE, "nd_clip_checkpoint_save", "optimizer of %lld floats for a model of %lld",
                    (long long)opt->n, (long long)clip->params.total);
    nd_clip_train_config stored = cfg ? *cfg : (nd_clip_train_config){0};
    stored.model = clip->config;
    nd_train_state fresh = {.step = 0, .rng = ctx->rng};

    clip_contents contents = {clip, tok, &stored, state ? state : &fresh, opt};
    return nd_h5_save(path, "CLIP checkpoint", 4 << 20, write_contents, &contents, err);
}

// ---------------------------------------------------------------------------------------------------
// load

// Opens path read-only, after checking that it is a nanodiff checkpoint of kind "clip".
static hid_t clip_open(const char *path, nd_error *err) {
    hid_t file = nd_h5_open(path, "CLIP checkpoint", err);
    if (file < 0) return -1;
    char format[64] = "", kind[64] = "none";
    bool ok = false;
    if (H5Aexists(file, "format") <= 0)
        nd_error_set(err, "%s: not a CLIP checkpoint (an HDF5 file without a 'format' attribute)", path);
    else if (!nd_h5_attr_read_str(file, path, "format", format, sizeof format, err) || strcmp(format, CLIP_FORMAT) != 0)
        nd_error_set(err, "%s: not a CLIP checkpoint (its 'format' attribute is not '%s')", path, CLIP_FORMAT);
    else if (H5Aexists(file, "kind") > 0 && !nd_h5_attr_read_str(file, path, "kind", kind, sizeof kind, err))
        nd_error_set(err, "%s: not a CLIP checkpoint (its 'kind' attribute is not a short string)", path);
    else if (strcmp(kind, CLIP_KIND) != 0)
        nd_error_set(err, "%s: not a CLIP checkpoint (kind '%s', expected '%s'; train one with nanodiff train-clip)",
                     path, kind, CLIP_KIND);
    else
        ok = true;
    if (!ok) {
        H5Fclose(file);
        return -1;
    }
    return file;
}

bool nd_clip_checkpoint_is_clip(const char *path) {
    nd_error err;
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t file = clip_open(path, &err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    return file >= 0;
}

// The configuration attributes, checked to describe a CLIP that can be created.
static bool read_config(hid_t file, const char *path, nd_clip_train_config *cfg, nd_error *err) {
    *cfg = (nd_clip_train_config){0};
    if (!nd_h5_attr_read_str(file, path, "data", cfg->data, sizeof cfg->data, err)) return false;
    for (int i = 0; i < ND_COUNT(config_fields); i++) {
        const nd_h5_field *f = &config_fields[i];
        if (!nd_h5_field_read(file, path, "", f, cfg, err)) return false;
        int v = *(const int *)((const char *)cfg + f->offset);
        if (i < N_MODEL_FIELDS && (v < f->min || v > CLIP_DIM_MAX))
            return nd_error_set(err, "%s: the checkpoint has %s %d: expected %d..%d", path, f->name, v, f->min,
                                CLIP_DIM_MAX);
    }
    const nd_clip_config *m = &cfg->model;
    if (m->img_size % m->patch_size)
        return nd_error_set(err, "%s: the checkpoint has img_size %d, not a multiple of its patch_size %d", path,
                            m->img_size, m->patch_size);
    if (m->text_width % m->text_heads || m->vision_width % m->vision_heads)
        return nd_error_set(err,
                            "%s: the checkpoint has text_width %d and text_heads %d, vision_width %d and "
                            "vision_heads %d: each width must be a multiple of its heads",
                            path, m->text_width, m->text_heads, m->vision_width, m->vision_heads);
    return true;
}

// Names the first field where the checkpoint's model differs from the model's.
static bool check_model_config(const char *path, const nd_clip_train_config *stored, const nd_clip_config *model,
                               nd_error *err) {
    nd_clip_train_config mine = {.model = *model};
    for (int i = 0; i < N_MODEL_FIELDS; i++) {
        char a[64], b[64];
        const nd_h5_field *f = &config_fields[i];
        if (strcmp(nd_h5_field_str(f, stored, a, sizeof a), nd_h5_field_str(f, &mine, b, sizeof b)) != 0)
            return nd_error_set(err, "%s: checkpoint has %s %s, the model %s", path, f->name, a, b);
    }
    return true;
}

bool nd_clip_checkpoint_read_config(const char *path, nd_clip_train_config *cfg, nd_error *err) {
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t file = clip_open(path, err);
    bool ok = file >= 0 && read_config(file, path, cfg, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    return ok;
}

// The tokenizer from tokenizer/merges, checked to be (n, 2) integers with a context attribute.
static bool read_merges(hid_t file, const char *path, nd_tokenizer *tok, nd_error *err) {
    if (!nd_h5_link_exists(file, "tokenizer/merges"))
        return nd_error_set(err, "%s: the checkpoint lacks 'tokenizer/merges' (the BPE tokenizer)", path);
    hid_t d = H5Dopen2(file, "tokenizer/merges", H5P_DEFAULT);
    hid_t type = d < 0 ? -1 : H5Dget_type(d);
    hid_t space = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[H5S_MAX_RANK] = {0};
    int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (ndim >= 0) H5Sget_simple_extent_dims(space, dims, NULL);
    bool is_int = type >= 0 && H5Tget_class(type) == H5T_INTEGER;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    char shape[96];
    bool ok = false;
    int context = 0;
    if (ndim < 0 || !is_int)
        nd_error_set(err, "%s: 'tokenizer/merges' is not an integer dataset", path);
    else if (ndim != 2 || dims[1] != 2 || dims[0] >= CLIP_MERGES_MAX)
        nd_error_set(err, "%s: 'tokenizer/merges' has shape %s, expected (n,2) with n below %d", path,
                     nd_h5_dims_str(dims, ndim, shape, sizeof shape), CLIP_MERGES_MAX);
    else
        ok = nd_h5_field_read(d, path, "tokenizer/merges/", &context_field, &context, err);
    int32_t *merges = ok ? nd_xmalloc((size_t)(dims[0] + 1) * 2 * sizeof *merges) : NULL; // (n_merges, 2)
    if (ok && dims[0] && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, merges) < 0)
        ok = nd_error_set(err, "%s: 'tokenizer/merges' cannot be read: the file is damaged", path);
    if (d >= 0) H5Dclose(d);
    if (ok && !nd_tokenizer_from_merges(tok, merges, (int)dims[0], context, err)) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        ok = nd_error_set(err, "%s: %s", path, why);
    }
    free(merges);
    return ok;
}

// Everything the file holds for this load, read and checked before any of it reaches the caller.
typedef struct clip_staged {
    nd_clip_train_config cfg;
    nd_train_state state;
    int64_t adam_step;
    nd_tokenizer tok;
    nd_h5_group groups[3];
    int n_groups;
} clip_staged;

static bool stage(hid_t file, const char *path, const nd_clip *clip, bool want_tok, nd_adam *opt, clip_staged *s,
                  nd_error *err) {
    if (!read_config(file, path, &s->cfg, err) || !check_model_config(path, &s->cfg, &clip->config, err)) return false;
    for (int i = 0; i < ND_COUNT(state_fields); i++)
        if (!nd_h5_field_read(file, path, "", &state_fields[i], &s->state, err)) return false;
    if (opt && !nd_h5_link_exists(file, "adam"))
        return nd_error_set(err, "%s: the checkpoint holds no optimizer state (no 'adam' group)", path);
    const nd_params *p = &clip->params;
    s->groups[s->n_groups++] = (nd_h5_group){"params", "the model's parameters", p, p->data, p->device, NULL};
    if (opt) {
        s->groups[s->n_groups++] = (nd_h5_group){"adam/m", "Adam's first moments", p, opt->m, opt->device, NULL};
        s->groups[s->n_groups++] = (nd_h5_group){"adam/v", "Adam's second moments", p, opt->v, opt->device, NULL};
    }
    if (!nd_h5_groups_check(file, path, s->groups, s->n_groups, err)) return false;
    if (opt && !nd_h5_field_read(file, path, "", &adam_step_field, &s->adam_step, err)) return false;
    if (!nd_h5_groups_read(file, path, s->groups, s->n_groups, err)) return false;
    if (!want_tok) return true;
    if (!read_merges(file, path, &s->tok, err)) return false;
    if (s->tok.vocab_size != clip->config.vocab_size)
        return nd_error_set(err, "%s: the tokenizer has %d tokens, the model's embedding %d", path, s->tok.vocab_size,
                            clip->config.vocab_size);
    // every caller sizes token rows by the model's context: a longer tokenizer context would write past them
    if (s->tok.context != clip->config.context_length)
        return nd_error_set(err, "%s: the tokenizer pads to %d tokens, the model's positions number %d", path,
                            s->tok.context, clip->config.context_length);
    return true;
}

// The counterpart of clip.load_state_dict(strict=True) and opt.load_state_dict, all or nothing.
bool nd_clip_checkpoint_load(const char *path, nd_clip *clip, nd_tokenizer *tok, nd_clip_train_config *cfg,
                             nd_train_state *state, nd_adam *opt, nd_ctx *ctx, nd_error *err) {
    (void)ctx; // the destinations carry their devices
    if (!clip->params.data || (opt && opt->n != clip->params.total))
        nd_abort_at(ND_HERE, "nd_clip_checkpoint_load", "CLIP not allocated, or an optimizer of another size");
    nd_h5_quiet quiet = nd_h5_silence();
    clip_staged s = {0};
    hid_t file = clip_open(path, err);
    bool ok = file >= 0 && stage(file, path, clip, tok != NULL, opt, &s, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    if (ok) nd_h5_groups_upload(s.groups, s.n_groups);
    if (ok && opt) opt->step = s.adam_step;
    if (ok && cfg) *cfg = s.cfg;
    if (ok && state) *state = s.state;
    if (ok && tok)
        *tok = s.tok;
    else
        nd_tokenizer_free(&s.tok);
    nd_h5_groups_free(s.groups, s.n_groups);
    return ok;
}

bool nd_clip_load(const char *path, nd_clip *clip, nd_tokenizer *tok, nd_ctx *ctx, nd_error *err) {
    nd_clip_train_config cfg;
    if (!nd_clip_checkpoint_read_config(path, &cfg, err)) return false;
    nd_clip_create(clip, cfg.model, ctx);
    if (nd_clip_checkpoint_load(path, clip, tok, NULL, NULL, NULL, ctx, err)) return true;
    nd_clip_free(clip);
    return false;
}
