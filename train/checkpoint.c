// HDF5 checkpoints. The root holds the format, the model and training configuration and the run's state as
// attributes; groups params/, buffers/, adam/m/, adam/v/ and ema/ hold one float32 dataset per tensor, named
// by its PyTorch state_dict key and shaped as the tensor (chunked with a Fletcher-32 checksum, so damaged
// data is refused instead of loaded). Saving builds the file in memory and writes it atomically (data/h5_io.h,
// nd_atomic_write); loading checks the whole file against the model and reads every value before it writes a
// single one, so a failed load changes nothing.
#include <errno.h>
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_guard.h"
#include "h5_io.h"
#include "train.h"

#define CKPT_FORMAT "nanodiff-checkpoint"
#define CKPT_VERSION 1

// ---------------------------------------------------------------------------------------------------
// configuration attributes: one root attribute per field of nd_ddpm_config (strings apart)

#define MODEL_FIELD(field, kind) {#field, kind, offsetof(nd_ddpm_config, model.field), 0}
#define DDPM_FIELD(field, kind) {#field, kind, offsetof(nd_ddpm_config, field), 0}
#define N_MODEL_FIELDS 9

// The model's fields come first: a checkpoint loads only into a model whose fields all match.
static const nd_h5_field config_fields[] = {
    MODEL_FIELD(img_ch, ND_H5_INT),         MODEL_FIELD(img_size, ND_H5_INT),
    MODEL_FIELD(T, ND_H5_INT),              MODEL_FIELD(down_chs, ND_H5_INT3),
    MODEL_FIELD(t_embed_dim, ND_H5_INT),    MODEL_FIELD(c_embed_dim, ND_H5_INT),
    MODEL_FIELD(small_groups, ND_H5_INT),   MODEL_FIELD(big_groups, ND_H5_INT),
    MODEL_FIELD(heads, ND_H5_INT),          DDPM_FIELD(unit_range, ND_H5_BOOL),
    DDPM_FIELD(random_flip, ND_H5_BOOL),       DDPM_FIELD(beta_start, ND_H5_DOUBLE),
    DDPM_FIELD(beta_end, ND_H5_DOUBLE),        DDPM_FIELD(epochs, ND_H5_INT),
    DDPM_FIELD(batch_size, ND_H5_INT),         DDPM_FIELD(lr, ND_H5_FLOAT),
    DDPM_FIELD(adamw, ND_H5_BOOL),             DDPM_FIELD(weight_decay, ND_H5_FLOAT),
    DDPM_FIELD(cfg_drop, ND_H5_FLOAT),         DDPM_FIELD(clip_grad, ND_H5_FLOAT),
    DDPM_FIELD(ema_decay, ND_H5_FLOAT),        DDPM_FIELD(seed, ND_H5_UINT64),
    DDPM_FIELD(checkpoint_every, ND_H5_INT64), DDPM_FIELD(preview_every, ND_H5_INT64),
    DDPM_FIELD(max_steps, ND_H5_INT64),
};
#define N_CONFIG_FIELDS ((int)(sizeof config_fields / sizeof config_fields[0]))

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

typedef struct ckpt_writer {
    hid_t file;
    char failed[400]; // the step that failed, for the message
} ckpt_writer;

// Records the failing step: what, and the attribute, group or dataset it concerned (NULL: none).
static bool writer_fail(ckpt_writer *w, const char *what, const char *name) {
    snprintf(w->failed, sizeof w->failed, name ? "%s '%s'" : "%s", what, name);
    return false;
}

// Downloads a flat device buffer of n floats (laid out as p) and writes it as group's datasets.
static bool write_flat(ckpt_writer *w, const char *group, const nd_params *p, const float *flat, int64_t n,
                       nd_device device) {
    float *host = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!host) return writer_fail(w, "staging (out of memory)", group);
    nd_buffer_download(device, host, flat, n);
    // a diverged run is never saved: the previous checkpoint stays the last good one
    char where[256];
    if (nd_params_find_nonfinite(p, host, where, sizeof where)) {
        snprintf(w->failed, sizeof w->failed, "the check for NaN/inf ('%s': %s)", group, where);
        free(host);
        return false;
    }
    bool ok = nd_h5_write_params(w->file, group, p, host, w->failed, sizeof w->failed);
    free(host);
    return ok;
}

static bool write_contents(ckpt_writer *w, const nd_model *model, const nd_ddpm_config *cfg,
                           const nd_train_state *state, const nd_adam *opt, const nd_ema *ema) {
    const char *strings[3][2] = {
        {"format", CKPT_FORMAT}, {"model_kind", nd_model_kind_name(cfg->model.kind)}, {"data", cfg->data}};
    for (int i = 0; i < ND_COUNT(strings); i++)
        if (!nd_h5_attr_write_str(w->file, strings[i][0], strings[i][1]))
            return writer_fail(w, "writing attribute", strings[i][0]);
    int version = CKPT_VERSION;
    if (!nd_h5_attr_write(w->file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &version))
        return writer_fail(w, "writing attribute", "format_version");
    for (int i = 0; i < N_CONFIG_FIELDS; i++)
        if (!nd_h5_field_write(w->file, &config_fields[i], cfg))
            return writer_fail(w, "writing attribute", config_fields[i].name);
    if (!nd_h5_attr_write(w->file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &state->step) ||
        !nd_h5_attr_write(w->file, "rng_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.seed) ||
        !nd_h5_attr_write(w->file, "rng_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.offset))
        return writer_fail(w, "writing attribute", "step");

    const nd_params *params = &model->params, *buffers = &model->buffers;
    if (!write_flat(w, "params", params, params->data, params->total, params->device) ||
        !write_flat(w, "buffers", buffers, buffers->data, buffers->total, buffers->device))
        return false;
    if (opt) {
        hid_t g = H5Gcreate2(w->file, "adam", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bool ok = g >= 0 && nd_h5_attr_write(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &opt->step);
        for (int i = 0; ok && i < N_ADAM_FIELDS; i++) ok = nd_h5_field_write(g, &adam_fields[i], &opt->config);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return writer_fail(w, "writing group", "adam");
        if (!write_flat(w, "adam/m", params, opt->m, opt->n, opt->device) ||
            !write_flat(w, "adam/v", params, opt->v, opt->n, opt->device))
            return false;
    }
    if (ema) {
        if (!write_flat(w, "ema", params, ema->shadow, ema->n, ema->device)) return false;
        hid_t g = H5Gopen2(w->file, "ema", H5P_DEFAULT);
        bool ok = g >= 0 && nd_h5_attr_write(g, "decay", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &ema->decay);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return writer_fail(w, "writing attribute", "ema/decay");
    }
    return true;
}

bool nd_checkpoint_save(const char *path, const nd_model *model, const nd_ddpm_config *cfg,
                        const nd_train_state *state, const nd_adam *opt, const nd_ema *ema, nd_ctx *ctx,
                        nd_error *err) {
    const nd_params *params = &model->params;
    if ((opt && opt->n != params->total) || (ema && ema->n != params->total))
        nd_abort_at(ND_HERE, "nd_checkpoint_save", "optimizer or EMA of %lld floats for a model of %lld",
                    (long long)(opt ? opt->n : ema->n), (long long)params->total);
    nd_ddpm_config stored = cfg ? *cfg : nd_ddpm_defaults(); // a model alone: the default training fields
    stored.model = model->config;
    nd_train_state fresh = {.step = 0, .rng = state ? state->rng : ctx->rng};

    // built whole in memory, then written atomically (nd_h5_memory_save): HDF5 never writes to the disk itself
    nd_h5_quiet quiet = nd_h5_silence();
    ckpt_writer w = {.file = nd_h5_memory_create(16 << 20)};
    bool ok = w.file >= 0 ? write_contents(&w, model, &stored, state ? state : &fresh, opt, ema)
                          : writer_fail(&w, "creating the file in memory", NULL);
    if (!ok) {
        if (w.file >= 0) H5Fclose(w.file);
        nd_h5_restore(quiet);
        return nd_error_set(err, "%s: cannot save the checkpoint: %s failed", path, w.failed);
    }
    ok = nd_h5_memory_save(w.file, path, err);
    nd_h5_restore(quiet);
    return ok;
}

// ---------------------------------------------------------------------------------------------------
// load

// Opens path read-only, after checking that it is a nanodiff checkpoint this build can read.
static hid_t ckpt_open(const char *path, nd_error *err) {
    if (access(path, R_OK) != 0) {
        nd_error_set(err, "%s: cannot open the checkpoint: %s", path, strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        nd_error_set(err, "%s: not a nanodiff checkpoint (not an HDF5 file)", path);
        return -1;
    }
    if (!nd_h5_check_layout(path, err)) return -1;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        nd_error_set(err, "%s: cannot read the checkpoint: the HDF5 file is truncated or damaged", path);
        return -1;
    }
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

// The configuration attributes, checked to describe a model that can be created.
static bool read_config(hid_t file, const char *path, nd_ddpm_config *cfg, nd_error *err) {
    *cfg = (nd_ddpm_config){0};
    char kind[64];
    if (!nd_h5_attr_read_str(file, path, "model_kind", kind, sizeof kind, err) ||
        !nd_h5_attr_read_str(file, path, "data", cfg->data, sizeof cfg->data, err))
        return false;
    if (!nd_model_kind_parse(kind, &cfg->model.kind))
        return nd_error_set(err, "%s: the checkpoint holds an unknown model kind '%s'", path, kind);
    for (int i = 0; i < N_CONFIG_FIELDS; i++)
        if (!nd_h5_field_read(file, path, "", &config_fields[i], cfg, err)) return false;
    return nd_ddpm_config_check(cfg, path, err);
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

// Checks that group holds exactly p's tensors, each float with p's shape; what says what the group is for.
static bool check_tensors(hid_t file, const char *path, const char *group, const char *what, const nd_params *p,
                          nd_error *err) {
    if (!nd_h5_link_exists(file, group))
        return nd_error_set(err, "%s: the checkpoint has no '%s' group (%s)", path, group, what);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return nd_error_set(err, "%s: the group '%s' cannot be opened (the file is damaged)", path, group);
    bool ok = true;
    for (int i = 0; ok && i < p->n; i++) {
        const nd_param *item = &p->items[i];
        nd_shape s = item->tensor->shape;
        hsize_t want[ND_MAX_DIMS], found[H5S_MAX_RANK];
        for (int d = 0; d < s.ndim; d++) want[d] = (hsize_t)s.d[d];
        char want_str[96], found_str[96];
        nd_h5_dims_str(want, s.ndim, want_str, sizeof want_str);
        if (H5Lexists(g, item->name, H5P_DEFAULT) <= 0) {
            ok = nd_error_set(err, "%s: the checkpoint lacks '%s/%s' (shape %s in the model)", path, group,
                              item->name, want_str);
            break;
        }
        hid_t dset = H5Dopen2(g, item->name, H5P_DEFAULT);
        hid_t type = dset < 0 ? -1 : H5Dget_type(dset);
        hid_t space = dset < 0 ? -1 : H5Dget_space(dset);
        int ndim = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
        if (ndim >= 0) H5Sget_simple_extent_dims(space, found, NULL);
        bool is_float = type >= 0 && H5Tget_class(type) == H5T_FLOAT;
        if (space >= 0) H5Sclose(space);
        if (type >= 0) H5Tclose(type);
        if (dset >= 0) H5Dclose(dset);
        if (ndim < 0 || !is_float) {
            ok = nd_error_set(err, "%s: '%s/%s' is not a float dataset", path, group, item->name);
        } else if (ndim != s.ndim || memcmp(found, want, (size_t)ndim * sizeof *found) != 0) {
            ok = nd_error_set(err, "%s: '%s/%s' has shape %s in the checkpoint, %s in the model", path, group,
                              item->name, nd_h5_dims_str(found, ndim, found_str, sizeof found_str), want_str);
        }
    }
    H5G_info_t info = {0};
    if (ok && H5Gget_info(g, &info) < 0) ok = nd_error_set(err, "%s: group '%s' is damaged", path, group);
    // every tensor of p was found, so more links than tensors means extra ones: name the first
    for (hsize_t i = 0; ok && info.nlinks > (hsize_t)p->n && i < info.nlinks; i++) {
        char name[512];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
        if (!nd_params_find(p, name))
            ok = nd_error_set(err, "%s: the checkpoint has '%s/%s', which the model lacks", path, group, name);
    }
    H5Gclose(g);
    return ok;
}

// Reads group's datasets (already checked) into host, laid out as p's flat buffer.
static bool read_tensors(hid_t file, const char *path, const char *group, const nd_params *p, float *host,
                         nd_error *err) {
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    bool ok = g >= 0;
    for (int i = 0; ok && i < p->n; i++) {
        const nd_param *item = &p->items[i];
        hid_t dset = H5Dopen2(g, item->name, H5P_DEFAULT);
        ok = dset >= 0 && H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host + item->offset) >= 0;
        if (dset >= 0) H5Dclose(dset);
        if (!ok)
            nd_error_set(err, "%s: '%s/%s' cannot be read: the file is damaged (checksum or I/O error)", path, group,
                         item->name);
    }
    if (g >= 0) H5Gclose(g);
    else nd_error_set(err, "%s: the group '%s' cannot be opened (the file is damaged)", path, group);
    return ok;
}

// A group of tensors a load reads: the tensors it must match, where they go, and the values read.
typedef struct tensor_group {
    const char *name, *what; // what: the group's purpose, for messages
    const nd_params *like;   // names and shapes; the values are laid out as its flat buffer
    float *dst;              // (like->total,) device buffer
    nd_device device;
    float *staged;           // (like->total,) host copy from the file
} tensor_group;

// Everything the file holds for this load, read and checked before any of it reaches the caller.
typedef struct ckpt_staged {
    nd_ddpm_config cfg;
    nd_train_state state;
    nd_adam_config adam;
    int64_t adam_step;
    float ema_decay;
    tensor_group groups[5];
    int n_groups;
} ckpt_staged;

static void add_group(ckpt_staged *s, const char *name, const char *what, const nd_params *like, float *dst,
                      nd_device device) {
    s->groups[s->n_groups++] = (tensor_group){.name = name, .what = what, .like = like, .dst = dst, .device = device};
}

static bool stage(hid_t file, const char *path, nd_model *model, nd_adam *opt, nd_ema *ema, ckpt_staged *s,
                  nd_error *err) {
    static const nd_h5_field state_fields[] = {
        {"step", ND_H5_INT64, offsetof(nd_train_state, step), 0},
        {"rng_seed", ND_H5_UINT64, offsetof(nd_train_state, rng.seed), 0},
        {"rng_offset", ND_H5_UINT64, offsetof(nd_train_state, rng.offset), 0},
    };
    static const nd_h5_field adam_step = {"step", ND_H5_INT64, 0, 0}, decay = {"decay", ND_H5_FLOAT, 0, 0};
    if (!read_config(file, path, &s->cfg, err) || !check_model_config(path, &s->cfg, &model->config, err))
        return false;
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
    tensor_group *g = s->groups;
    for (int i = 0; i < s->n_groups; i++)
        if (!check_tensors(file, path, g[i].name, g[i].what, g[i].like, err)) return false;

    hid_t adam = opt ? H5Gopen2(file, "adam", H5P_DEFAULT) : -1;
    bool ok = !opt || nd_h5_field_read(adam, path, "adam/", &adam_step, &s->adam_step, err);
    for (int i = 0; ok && opt && i < N_ADAM_FIELDS; i++)
        ok = nd_h5_field_read(adam, path, "adam/", &adam_fields[i], &s->adam, err);
    if (adam >= 0) H5Gclose(adam);
    hid_t shadow = ema ? H5Gopen2(file, "ema", H5P_DEFAULT) : -1;
    ok = ok && (!ema || nd_h5_field_read(shadow, path, "ema/", &decay, &s->ema_decay, err));
    if (shadow >= 0) H5Gclose(shadow);

    for (int i = 0; ok && i < s->n_groups; i++) {
        int64_t n = g[i].like->total;
        g[i].staged = nd_xmalloc((size_t)(n ? n : 1) * sizeof(float));
        ok = g[i].staged ? read_tensors(file, path, g[i].name, g[i].like, g[i].staged, err)
                         : nd_error_set(err, "%s: out of memory for %lld floats", path, (long long)n);
        char where[256];
        if (ok && nd_params_find_nonfinite(g[i].like, g[i].staged, where, sizeof where))
            ok = nd_error_set(err, "%s: %s are not finite: '%s' %s (the run that wrote it had diverged)", path,
                              g[i].what, g[i].name, where);
    }
    return ok;
}

bool nd_checkpoint_read_config(const char *path, nd_ddpm_config *cfg, nd_error *err) {
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t file = ckpt_open(path, err);
    bool ok = file >= 0 && read_config(file, path, cfg, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    return ok;
}

bool nd_checkpoint_load(const char *path, nd_model *model, nd_ddpm_config *cfg, nd_train_state *state,
                        nd_adam *opt, nd_ema *ema, nd_ctx *ctx, nd_error *err) {
    const nd_params *params = &model->params;
    if (!params->data || (opt && opt->n != params->total) || (ema && ema->n != params->total))
        nd_abort_at(ND_HERE, "nd_checkpoint_load", "model not allocated, or optimizer/EMA of another size");
    nd_h5_quiet quiet = nd_h5_silence();
    ckpt_staged s = {0};
    hid_t file = ckpt_open(path, err);
    bool ok = file >= 0 && stage(file, path, model, opt, ema, &s, err);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    for (int i = 0; ok && i < s.n_groups; i++) {
        const tensor_group *g = &s.groups[i];
        nd_buffer_upload(g->device, g->dst, g->staged, g->like->total);
    }
    if (ok && opt) opt->step = s.adam_step, opt->config = s.adam;
    if (ok && ema) ema->decay = s.ema_decay;
    if (ok && cfg) *cfg = s.cfg;
    if (ok && state) *state = s.state;
    for (int i = 0; i < s.n_groups; i++) free(s.groups[i].staged);
    return ok;
}
