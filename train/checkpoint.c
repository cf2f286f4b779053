// HDF5 checkpoints. The root holds the format, the model and training configuration and the run's state as
// attributes; groups params/, buffers/, adam/m/, adam/v/ and ema/ hold one float32 dataset per tensor, named
// by its PyTorch state_dict key and shaped as the tensor (chunked with a Fletcher-32 checksum, so damaged
// data is refused instead of loaded). Saving builds the file in memory and writes it atomically (data/h5_io.h,
// nd_atomic_write); loading checks the whole file against the model and reads every value before it writes a
// single one, so a failed load changes nothing.
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_guard.h"
#include "h5_io.h"
#include "train.h"

#define CKPT_FORMAT "nanodiff-checkpoint"
#define CKPT_VERSION 1

// ---------------------------------------------------------------------------------------------------
// configuration attributes: one root attribute per field of nd_ddpm_config (strings apart)

#define MODEL_FIELD(field, kind)                                                                                       \
    { #field, kind, offsetof(nd_ddpm_config, model.field), 0 }
#define DDPM_FIELD(field, kind)                                                                                        \
    { #field, kind, offsetof(nd_ddpm_config, field), 0 }
#define N_MODEL_FIELDS 9

// The model's fields come first: a checkpoint loads only into a model whose fields all match.
static const nd_h5_field config_fields[] = {
    MODEL_FIELD(img_ch, ND_H5_INT),
    MODEL_FIELD(img_size, ND_H5_INT),
    MODEL_FIELD(T, ND_H5_INT),
    MODEL_FIELD(down_chs, ND_H5_INT3),
    MODEL_FIELD(t_embed_dim, ND_H5_INT),
    MODEL_FIELD(c_embed_dim, ND_H5_INT),
    MODEL_FIELD(small_groups, ND_H5_INT),
    MODEL_FIELD(big_groups, ND_H5_INT),
    MODEL_FIELD(heads, ND_H5_INT),
    DDPM_FIELD(unit_range, ND_H5_BOOL),
    DDPM_FIELD(random_flip, ND_H5_BOOL),
    DDPM_FIELD(beta_start, ND_H5_DOUBLE),
    DDPM_FIELD(beta_end, ND_H5_DOUBLE),
    DDPM_FIELD(epochs, ND_H5_INT),
    DDPM_FIELD(batch_size, ND_H5_INT),
    DDPM_FIELD(lr, ND_H5_FLOAT),
    DDPM_FIELD(adamw, ND_H5_BOOL),
    DDPM_FIELD(weight_decay, ND_H5_FLOAT),
    DDPM_FIELD(cfg_drop, ND_H5_FLOAT),
    DDPM_FIELD(clip_grad, ND_H5_FLOAT),
    DDPM_FIELD(ema_decay, ND_H5_FLOAT),
    DDPM_FIELD(seed, ND_H5_UINT64),
    DDPM_FIELD(checkpoint_every, ND_H5_INT64),
    DDPM_FIELD(preview_every, ND_H5_INT64),
    DDPM_FIELD(max_steps, ND_H5_INT64),
};
#define N_CONFIG_FIELDS ((int)(sizeof config_fields / sizeof config_fields[0]))

// Fields added after the first checkpoints: a checkpoint without them was trained with the course's choices
// (nd_ddpm_defaults: linear schedule, no rescaling, eps prediction, plain MSE, a constant learning rate),
// which loading then takes.
static const nd_h5_field later_fields[] = {
    DDPM_FIELD(zero_snr, ND_H5_BOOL),
    DDPM_FIELD(min_snr_gamma, ND_H5_FLOAT),
    DDPM_FIELD(lr_cosine, ND_H5_BOOL),
    DDPM_FIELD(warmup_steps, ND_H5_INT64),
};

// The Adam group's attributes, in nd_adam_config.
static const nd_h5_field adam_fields[] = {
    {"lr", ND_H5_FLOAT, offsetof(nd_adam_config, lr), 0},
    {"beta1", ND_H5_FLOAT, offsetof(nd_adam_config, beta1), 0},
    {"beta2", ND_H5_FLOAT, offsetof(nd_adam_config, beta2), 0},
    {"eps", ND_H5_FLOAT, offsetof(nd_adam_config, eps), 0},
    {"weight_decay", ND_H5_FLOAT, offsetof(nd_adam_config, weight_decay), 0},
    {"decoupled", ND_H5_BOOL, offsetof(nd_adam_config, decoupled), 0},
};
#define N_ADAM_FIELDS ((int)(sizeof adam_fields / sizeof adam_fields[0]))

// ---------------------------------------------------------------------------------------------------
// save

// What one save writes.
typedef struct ckpt_contents {
    const nd_model *model;
    const nd_ddpm_config *cfg;
    const nd_train_state *state;
    const nd_adam *opt;
    const nd_ema *ema;
} ckpt_contents;

// Writes a flat device buffer laid out as p (p->total floats) as group's datasets (never a non-finite one).
static bool write_flat(nd_h5_writer *w, const char *group, const nd_params *p, const float *flat, nd_device device) {
    return nd_h5_write_device_params(w->file, group, p, flat, device, w->failed, sizeof w->failed);
}

static bool write_contents(nd_h5_writer *w, const void *arg) {
    const ckpt_contents *c = arg;
    const nd_model *model = c->model;
    const nd_ddpm_config *cfg = c->cfg;
    const nd_train_state *state = c->state;
    const nd_adam *opt = c->opt;
    const nd_ema *ema = c->ema;
    const char *strings[3][2] = {
        {"format", CKPT_FORMAT}, {"model_kind", nd_model_kind_name(cfg->model.kind)}, {"data", cfg->data}};
    for (int i = 0; i < ND_COUNT(strings); i++)
        if (!nd_h5_attr_write_str(w->file, strings[i][0], strings[i][1]))
            return nd_h5_writer_fail(w, "writing attribute", strings[i][0]);
    if (cfg->model.kind == ND_MODEL_T2I_UNET) { // which CLIP encodes the prompts
        uint8_t pooled = cfg->text_pooled;
        if (!nd_h5_attr_write_str(w->file, "clip", cfg->clip) ||
            !nd_h5_attr_write_str(w->file, "clip_hash", cfg->clip_hash) ||
            !nd_h5_attr_write(w->file, "text_pooled", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &pooled))
            return nd_h5_writer_fail(w, "writing attribute", "clip");
    }
    int version = CKPT_VERSION;
    if (!nd_h5_attr_write(w->file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &version))
        return nd_h5_writer_fail(w, "writing attribute", "format_version");
    for (int i = 0; i < N_CONFIG_FIELDS; i++)
        if (!nd_h5_field_write(w->file, &config_fields[i], cfg))
            return nd_h5_writer_fail(w, "writing attribute", config_fields[i].name);
    for (int i = 0; i < ND_COUNT(later_fields); i++)
        if (!nd_h5_field_write(w->file, &later_fields[i], cfg))
            return nd_h5_writer_fail(w, "writing attribute", later_fields[i].name);
    const char *choices[2][2] = {{"schedule", nd_schedule_kind_name(cfg->schedule)},
                                 {"prediction", nd_prediction_name(cfg->prediction)}};
    for (int i = 0; i < ND_COUNT(choices); i++)
        if (!nd_h5_attr_write_str(w->file, choices[i][0], choices[i][1]))
            return nd_h5_writer_fail(w, "writing attribute", choices[i][0]);
    if (!nd_h5_attr_write(w->file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &state->step) ||
        !nd_h5_attr_write(w->file, "rng_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.seed) ||
        !nd_h5_attr_write(w->file, "rng_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.offset))
        return nd_h5_writer_fail(w, "writing attribute", "step");

    const nd_params *params = &model->params, *buffers = &model->buffers;
    if (!write_flat(w, "params", params, params->data, params->device) ||
        !write_flat(w, "buffers", buffers, buffers->data, buffers->device))
        return false;
    if (opt) {
        hid_t g = H5Gcreate2(w->file, "adam", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bool ok = g >= 0 && nd_h5_attr_write(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &opt->step);
        for (int i = 0; ok && i < N_ADAM_FIELDS; i++) ok = nd_h5_field_write(g, &adam_fields[i], &opt->config);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return nd_h5_writer_fail(w, "writing group", "adam");
        if (!write_flat(w, "adam/m", params, opt->m, opt->device) ||
            !write_flat(w, "adam/v", params, opt->v, opt->device))
            return false;
    }
    if (ema) {
        if (!write_flat(w, "ema", params, ema->shadow, ema->device)) return false;
        hid_t g = H5Gopen2(w->file, "ema", H5P_DEFAULT);
        bool ok = g >= 0 && nd_h5_attr_write(g, "decay", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &ema->decay);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return nd_h5_writer_fail(w, "writing attribute", "ema/decay");
    }
    return true;
}

bool nd_checkpoint_save(const char *path, const nd_model *model, const nd_ddpm_config *cfg, const nd_train_state *state,
                        const nd_adam *opt, const nd_ema *ema, nd_ctx *ctx, nd_error *err) {
    const nd_params *params = &model->params;
    if ((opt && opt->n != params->total) || (ema && ema->n != params->total))
        nd_abort_at(ND_HERE, "nd_checkpoint_save", "optimizer or EMA of %lld floats for a model of %lld",
                    (long long)(opt ? opt->n : ema->n), (long long)params->total);
    nd_ddpm_config stored = cfg ? *cfg : nd_ddpm_defaults(); // a model alone: the default training fields
    stored.model = model->config;
    nd_train_state fresh = {.step = 0, .rng = state ? state->rng : ctx->rng};

    ckpt_contents contents = {model, &stored, state ? state : &fresh, opt, ema};
    return nd_h5_save(path, "checkpoint", 16 << 20, write_contents, &contents, err);
}

// ---------------------------------------------------------------------------------------------------
// load

// Opens path read-only, after checking that it is a nanodiff checkpoint this build can read.
static hid_t ckpt_open(const char *path, nd_error *err) {
    hid_t file = nd_h5_open(path, "checkpoint", err);
    if (file < 0) return -1;
    char format[64];
    int version = 0;
    static const nd_h5_field version_field = {"format_version", ND_H5_INT, 0, 0};
    bool ok = false;
    if (H5Aexists(file, "format") <= 0)
        nd_error_set(err, "%s: not a nanodiff checkpoint (an HDF5 file without a 'format' attribute)", path);
    else if (!nd_h5_attr_read_str(file, path, "format", format, sizeof format, err) || strcmp(format, CKPT_FORMAT) != 0)
        nd_error_set(err, "%s: not a nanodiff checkpoint (its 'format' attribute is not '%s')", path, CKPT_FORMAT);
    else if (nd_h5_field_read(file, path, "", &version_field, &version, err) && version != CKPT_VERSION)
        nd_error_set(err, "%s: checkpoint format version %d; this nanodiff reads version %d", path, version,
                     CKPT_VERSION);
    else
        ok = version == CKPT_VERSION;
    if (!ok) {
        H5Fclose(file);
        return -1;
    }
    return file;
}

// The schedule, prediction, loss weighting and learning-rate schedule, or the course's where an older checkpoint lacks them.
static bool read_later_fields(hid_t file, const char *path, nd_ddpm_config *cfg, nd_error *err) {
    nd_ddpm_config course = nd_ddpm_defaults();
    cfg->schedule = course.schedule, cfg->prediction = course.prediction;
    cfg->zero_snr = course.zero_snr, cfg->min_snr_gamma = course.min_snr_gamma;
    cfg->lr_cosine = course.lr_cosine, cfg->warmup_steps = course.warmup_steps;
    for (int i = 0; i < ND_COUNT(later_fields); i++)
        if (H5Aexists(file, later_fields[i].name) > 0 && !nd_h5_field_read(file, path, "", &later_fields[i], cfg, err))
            return false;
    char name[32];
    if (H5Aexists(file, "schedule") > 0) {
        if (!nd_h5_attr_read_str(file, path, "schedule", name, sizeof name, err)) return false;
        if (!nd_schedule_kind_parse(name, &cfg->schedule))
            return nd_error_set(err, "%s: the checkpoint has schedule '%s': expected linear or cosine", path, name);
    }
    if (H5Aexists(file, "prediction") > 0) {
        if (!nd_h5_attr_read_str(file, path, "prediction", name, sizeof name, err)) return false;
        if (!nd_prediction_parse(name, &cfg->prediction))
            return nd_error_set(err, "%s: the checkpoint has prediction '%s': expected eps, x0 or v", path, name);
    }
    nd_error why;
    if (!nd_ddpm_check_options(cfg, &why)) return nd_error_set(err, "%s: %s", path, why.msg);
    return true;
}

// The configuration attributes, checked to describe a model that can be created.
static bool read_config(hid_t file, const char *path, nd_ddpm_config *cfg, nd_error *err) {
    *cfg = (nd_ddpm_config){0};
    char kind[64];
    if (!nd_h5_attr_read_str(file, path, "model_kind", kind, sizeof kind, err) ||
        !nd_h5_attr_read_str(file, path, "data", cfg->data, sizeof cfg->data, err))
        return false;
    if (!nd_model_kind_parse(kind, &cfg->model.kind))
        return nd_error_set(err, "%s: the checkpoint holds an unknown model kind '%s'", path, kind);
    static const nd_h5_field pooled = {"text_pooled", ND_H5_BOOL, offsetof(nd_ddpm_config, text_pooled), 0};
    if (cfg->model.kind == ND_MODEL_T2I_UNET &&
        (!nd_h5_attr_read_str(file, path, "clip", cfg->clip, sizeof cfg->clip, err) ||
         !nd_h5_attr_read_str(file, path, "clip_hash", cfg->clip_hash, sizeof cfg->clip_hash, err) ||
         !nd_h5_field_read(file, path, "", &pooled, cfg, err)))
        return false;
    for (int i = 0; i < N_CONFIG_FIELDS; i++)
        if (!nd_h5_field_read(file, path, "", &config_fields[i], cfg, err)) return false;
    return read_later_fields(file, path, cfg, err) && nd_ddpm_config_check(cfg, path, err);
}

// Names the first field where the checkpoint's model differs from the model's.
static bool check_model_config(const char *path, const nd_ddpm_config *stored, const nd_model_config *model,
                               nd_error *err) {
    if (stored->model.kind != model->kind)
        return nd_error_set(err, "%s: the checkpoint holds a %s model, the model is a %s", path,
                            nd_model_kind_name(stored->model.kind), nd_model_kind_name(model->kind));
    nd_ddpm_config mine = {.model = *model};
    for (int i = 0; i < N_MODEL_FIELDS; i++) {
        char a[64], b[64];
        const nd_h5_field *f = &config_fields[i];
        if (strcmp(nd_h5_field_str(f, stored, a, sizeof a), nd_h5_field_str(f, &mine, b, sizeof b)) != 0)
            return nd_error_set(err, "%s: checkpoint has %s %s, the model %s", path, f->name, a, b);
    }
    return true;
}

// Everything the file holds for this load, read and checked before any of it reaches the caller.
typedef struct ckpt_staged {
    nd_ddpm_config cfg;
    nd_train_state state;
    nd_adam_config adam;
    int64_t adam_step;
    float ema_decay;
    nd_h5_group groups[5];
    int n_groups;
} ckpt_staged;

static void add_group(ckpt_staged *s, const char *name, const char *what, const nd_params *like, float *dst,
                      nd_device device) {
    s->groups[s->n_groups++] = (nd_h5_group){.name = name, .what = what, .like = like, .dst = dst, .device = device};
}

static bool stage(hid_t file, const char *path, nd_model *model, nd_adam *opt, nd_ema *ema, ckpt_staged *s,
                  nd_error *err) {
    static const nd_h5_field state_fields[] = {
        {"step", ND_H5_INT64, offsetof(nd_train_state, step), 0},
        {"rng_seed", ND_H5_UINT64, offsetof(nd_train_state, rng.seed), 0},
        {"rng_offset", ND_H5_UINT64, offsetof(nd_train_state, rng.offset), 0},
    };
    static const nd_h5_field adam_step = {"step", ND_H5_INT64, 0, 0}, decay = {"decay", ND_H5_FLOAT, 0, 0};
    if (!read_config(file, path, &s->cfg, err) || !check_model_config(path, &s->cfg, &model->config, err)) return false;
    for (int i = 0; i < ND_COUNT(state_fields); i++)
        if (!nd_h5_field_read(file, path, "", &state_fields[i], &s->state, err)) return false;
    if (opt && !nd_h5_link_exists(file, "adam"))
        return nd_error_set(err, "%s: the checkpoint holds no optimizer state (no 'adam' group)", path);
    if (ema && !nd_h5_link_exists(file, "ema"))
        return nd_error_set(err, "%s: the checkpoint holds no EMA weights (no 'ema' group)", path);

    nd_params *params = &model->params, *buffers = &model->buffers;
    add_group(s, "params", "the model's parameters", params, params->data, params->device);
    // a model without buffers still refuses a file that has some
    if (buffers->n || nd_h5_link_exists(file, "buffers"))
        add_group(s, "buffers", "BatchNorm running statistics", buffers, buffers->data, buffers->device);
    if (opt) add_group(s, "adam/m", "Adam's first moments", params, opt->m, opt->device);
    if (opt) add_group(s, "adam/v", "Adam's second moments", params, opt->v, opt->device);
    if (ema) add_group(s, "ema", "EMA weights", params, ema->shadow, ema->device);
    if (!nd_h5_groups_check(file, path, s->groups, s->n_groups, err)) return false;

    hid_t adam = opt ? H5Gopen2(file, "adam", H5P_DEFAULT) : -1;
    bool ok = !opt || nd_h5_field_read(adam, path, "adam/", &adam_step, &s->adam_step, err);
    for (int i = 0; ok && opt && i < N_ADAM_FIELDS; i++)
        ok = nd_h5_field_read(adam, path, "adam/", &adam_fields[i], &s->adam, err);
    if (adam >= 0) H5Gclose(adam);
    hid_t shadow = ema ? H5Gopen2(file, "ema", H5P_DEFAULT) : -1;
    ok = ok && (!ema || nd_h5_field_read(shadow, path, "ema/", &decay, &s->ema_decay, err));
    if (shadow >= 0) H5Gclose(shadow);

    return ok && nd_h5_groups_read(file, path, s->groups, s->n_groups, err);
}

bool nd_checkpoint_read_config(const char *path, nd_ddpm_config *cfg, nd_error *err) {
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t file = ckpt_open(path, err);
    bool ok = file >= 0 && read_config(file, path, cfg, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    return ok;
}

bool nd_checkpoint_load(const char *path, nd_model *model, nd_ddpm_config *cfg, nd_train_state *state, nd_adam *opt,
                        nd_ema *ema, nd_ctx *ctx, nd_error *err) {
    const nd_params *params = &model->params;
    if (!params->data || (opt && opt->n != params->total) || (ema && ema->n != params->total))
        nd_abort_at(ND_HERE, "nd_checkpoint_load", "model not allocated, or optimizer/EMA of another size");
    nd_h5_quiet quiet = nd_h5_silence();
    ckpt_staged s = {0};
    hid_t file = ckpt_open(path, err);
    bool ok = file >= 0 && stage(file, path, model, opt, ema, &s, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    if (ok) nd_h5_groups_upload(s.groups, s.n_groups);
    if (ok && opt) opt->step = s.adam_step, opt->config = s.adam;
    if (ok && ema) ema->decay = s.ema_decay;
    if (ok && cfg) *cfg = s.cfg;
    if (ok && state) *state = s.state;
    nd_h5_groups_free(s.groups, s.n_groups);
    return ok;
}
