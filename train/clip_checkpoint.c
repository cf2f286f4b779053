// CLIP checkpoints (HDF5): root attributes format "nanodiff-checkpoint", kind "clip", the model and training
// configuration, step, RNG and Adam state; params/<name>, adam/m/<name>, adam/v/<name> float32 datasets shaped as
// the tensors; tokenizer/merges (n_merges, 2) int32 with attribute context. Built in memory (HDF5's core driver),
// written to a temporary file, fsynced and renamed over the target; loading reads and checks everything before
// it changes anything.
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_quiet.h"
#include "train.h"

#define CLIP_FORMAT "nanodiff-checkpoint"
#define CLIP_KIND "clip"

// One root attribute per configuration field; the model's fields first (a checkpoint loads only into a model
// whose fields all match them).
typedef enum { F_INT, F_INT64, F_UINT64, F_FLOAT, F_BOOL } field_kind;
typedef struct field {
    const char *name;
    field_kind kind;
    size_t offset; // in nd_clip_train_config
} field;

#define MODEL_FIELD(f) {#f, F_INT, offsetof(nd_clip_train_config, model.f)}
#define N_MODEL_FIELDS 12
static const field fields[] = {
    MODEL_FIELD(vocab_size),    MODEL_FIELD(context_length), MODEL_FIELD(text_width),    MODEL_FIELD(text_layers),
    MODEL_FIELD(text_heads),    MODEL_FIELD(img_ch),         MODEL_FIELD(img_size),      MODEL_FIELD(patch_size),
    MODEL_FIELD(vision_width),  MODEL_FIELD(vision_layers),  MODEL_FIELD(vision_heads),  MODEL_FIELD(embed_dim),
    {"vocab_target", F_INT, offsetof(nd_clip_train_config, vocab_size)},
    {"random_flip", F_BOOL, offsetof(nd_clip_train_config, random_flip)},
    {"epochs", F_INT, offsetof(nd_clip_train_config, epochs)},
    {"batch_size", F_INT, offsetof(nd_clip_train_config, batch_size)},
    {"lr", F_FLOAT, offsetof(nd_clip_train_config, lr)},
    {"weight_decay", F_FLOAT, offsetof(nd_clip_train_config, weight_decay)},
    {"warmup_steps", F_INT64, offsetof(nd_clip_train_config, warmup_steps)},
    {"seed", F_UINT64, offsetof(nd_clip_train_config, seed)},
    {"checkpoint_every", F_INT64, offsetof(nd_clip_train_config, checkpoint_every)},
    {"max_steps", F_INT64, offsetof(nd_clip_train_config, max_steps)},
};
#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

static hid_t mem_type(field_kind k) {
    switch (k) {
    case F_INT: return H5T_NATIVE_INT;
    case F_INT64: return H5T_NATIVE_INT64;
    case F_UINT64: return H5T_NATIVE_UINT64;
    case F_FLOAT: return H5T_NATIVE_FLOAT;
    default: return H5T_NATIVE_HBOOL;
    }
}

static bool attr_write(hid_t obj, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type == H5T_NATIVE_HBOOL ? H5T_STD_U8LE : type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0;
    if (type == H5T_NATIVE_HBOOL) {
        uint8_t b = *(const bool *)value;
        ok = ok && H5Awrite(a, H5T_NATIVE_UINT8, &b) >= 0;
    } else {
        ok = ok && H5Awrite(a, type, value) >= 0;
    }
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return ok;
}

static bool attr_write_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, type, value) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space), H5Tclose(type);
    return ok;
}

static bool attr_read(hid_t obj, const char *path, const char *name, hid_t type, void *value, nd_error *err) {
    if (H5Aexists(obj, name) <= 0) return nd_error_set(err, "%s: attribute '%s' is missing", path, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    bool ok;
    if (type == H5T_NATIVE_HBOOL) {
        uint8_t b = 0;
        ok = a >= 0 && H5Aread(a, H5T_NATIVE_UINT8, &b) >= 0;
        *(bool *)value = b != 0;
    } else {
        ok = a >= 0 && H5Aread(a, type, value) >= 0;
    }
    if (a >= 0) H5Aclose(a);
    return ok || nd_error_set(err, "%s: attribute '%s' cannot be read as a number", path, name);
}

static bool attr_read_str(hid_t obj, const char *name, char *buf, size_t size) {
    if (H5Aexists(obj, name) <= 0) return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, size);
    bool ok = a >= 0 && H5Aread(a, type, buf) >= 0;
    buf[size - 1] = 0;
    if (a >= 0) H5Aclose(a);
    H5Tclose(type);
    return ok;
}

static bool dataset_write(hid_t file, const char *name, hid_t type, const hsize_t *dims, int ndim, const void *data) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(file, name, type == H5T_NATIVE_FLOAT ? H5T_IEEE_F32LE : H5T_STD_I32LE, space, lcpl,
                         H5P_DEFAULT, H5P_DEFAULT);
    bool ok = d >= 0 && H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(space), H5Pclose(lcpl);
    return ok;
}

// A host copy of a flat device buffer of n floats, through a tensor handle over it.
static float *flat_to_host(nd_ctx *ctx, float *device_data, int64_t n, nd_device device) {
    float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof *host);
    if (!host) abort();
    nd_tensor t = {.data = device_data, .shape = ND_SHAPE(n), .numel = n, .device = device};
    nd_copy_to_host(ctx, &t, host);
    return host;
}

static void host_to_flat(nd_ctx *ctx, float *device_data, int64_t n, nd_device device, const float *host) {
    nd_tensor t = {.data = device_data, .shape = ND_SHAPE(n), .numel = n, .device = device};
    nd_copy_from_host(ctx, &t, host);
}

static bool write_group(hid_t file, const char *group, const nd_params *p, const float *host) {
    char name[ND_NAME_MAX + 32];
    for (int i = 0; i < p->n; i++) {
        const nd_tensor *t = p->items[i].tensor;
        hsize_t dims[ND_MAX_DIMS];
        for (int d = 0; d < t->shape.ndim; d++) dims[d] = (hsize_t)t->shape.d[d];
        snprintf(name, sizeof name, "%s/%s", group, p->items[i].name);
        if (!dataset_write(file, name, H5T_NATIVE_FLOAT, dims, t->shape.ndim, host + p->items[i].offset)) return false;
    }
    return true;
}

static bool write_contents(hid_t f, const nd_clip *clip, const nd_tokenizer *tok, const nd_clip_train_config *cfg,
                           const nd_train_state *state, const nd_adam *opt, nd_ctx *ctx) {
    bool ok = attr_write_str(f, "format", CLIP_FORMAT) && attr_write_str(f, "kind", CLIP_KIND) &&
              attr_write_str(f, "data", cfg->data);
    for (int i = 0; i < N_FIELDS && ok; i++)
        ok = attr_write(f, fields[i].name, mem_type(fields[i].kind), (const char *)cfg + fields[i].offset);
    ok = ok && attr_write(f, "step", H5T_NATIVE_INT64, &state->step) &&
         attr_write(f, "rng_seed", H5T_NATIVE_UINT64, &state->rng.seed) &&
         attr_write(f, "rng_offset", H5T_NATIVE_UINT64, &state->rng.offset);
    const nd_params *p = &clip->params;
    float *host = flat_to_host(ctx, p->data, p->total, p->device);
    ok = ok && write_group(f, "params", p, host);
    free(host);
    if (ok && opt) {
        ok = attr_write(f, "adam_step", H5T_NATIVE_INT64, &opt->step);
        float *m = flat_to_host(ctx, opt->m, opt->n, opt->device), *v = flat_to_host(ctx, opt->v, opt->n, opt->device);
        ok = ok && write_group(f, "adam/m", p, m) && write_group(f, "adam/v", p, v);
        free(m), free(v);
    }
    hsize_t dims[2] = {(hsize_t)tok->n_merges, 2};
    int32_t none[2] = {0, 0};
    ok = ok && dataset_write(f, "tokenizer/merges", H5T_NATIVE_INT32, dims, 2, tok->n_merges ? tok->merges : none);
    if (ok) {
        hid_t d = H5Dopen2(f, "tokenizer/merges", H5P_DEFAULT);
        ok = d >= 0 && attr_write(d, "context", H5T_NATIVE_INT, &tok->context);
        if (d >= 0) H5Dclose(d);
    }
    return ok;
}

bool nd_clip_checkpoint_save(const char *path, const nd_clip *clip, const nd_tokenizer *tok,
                             const nd_clip_train_config *cfg, const nd_train_state *state, const nd_adam *opt,
                             nd_ctx *ctx, nd_error *err) {
    nd_clip_train_config stored = cfg ? *cfg : (nd_clip_train_config){0};
    stored.model = clip->config;
    nd_train_state fresh = {.step = 0, .rng = ctx->rng};
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nd_error_set(err, "%s: path too long for a checkpoint", path);
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 4 << 20, false);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    bool ok = f >= 0 && write_contents(f, clip, tok, &stored, state ? state : &fresh, opt, ctx);
    ssize_t size = ok && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    char *image = size > 0 ? malloc((size_t)size) : NULL;
    ok = ok && image && H5Fget_file_image(f, image, (size_t)size) == size;
    if (f >= 0) H5Fclose(f);
    nd_h5_restore(quiet);
    const char *failed = ok ? NULL : "building the file in memory";
    int fd = ok ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    if (ok && fd < 0) failed = "creating the temporary file";
    for (size_t done = 0; !failed && done < (size_t)size;) {
        ssize_t n = write(fd, image + done, (size_t)size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) failed = "writing the temporary file";
        else done += (size_t)n;
    }
    if (!failed && fsync(fd) != 0) failed = "syncing the temporary file";
    if (fd >= 0 && close(fd) != 0 && !failed) failed = "closing the temporary file";
    if (!failed && rename(tmp, path) != 0) failed = "renaming the temporary file over it";
    int saved_errno = errno;
    free(image);
    if (failed) {
        unlink(tmp);
        return nd_error_set(err, "%s: cannot save the CLIP checkpoint: %s failed: %s", path, failed,
                            strerror(saved_errno));
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------
// load

static hid_t clip_open(const char *path, nd_error *err) {
    if (access(path, R_OK) != 0) {
        nd_error_set(err, "%s: cannot open the CLIP checkpoint: %s", path, strerror(errno));
        return -1;
    }
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t f = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    char kind[32] = "";
    if (f < 0)
        nd_error_set(err, "%s: not a CLIP checkpoint (not a readable HDF5 file)", path);
    else if (!attr_read_str(f, "kind", kind, sizeof kind) || strcmp(kind, CLIP_KIND) != 0) {
        nd_error_set(err, "%s: not a CLIP checkpoint (kind '%s', expected '%s'; train one with nanodiff train-clip)",
                     path, kind[0] ? kind : "none", CLIP_KIND);
        H5Fclose(f);
        f = -1;
    }
    nd_h5_restore(quiet);
    return f;
}

bool nd_clip_checkpoint_is_clip(const char *path) {
    nd_error err;
    hid_t f = clip_open(path, &err);
    if (f >= 0) H5Fclose(f);
    return f >= 0;
}

static bool read_config(hid_t f, const char *path, nd_clip_train_config *cfg, nd_error *err) {
    *cfg = (nd_clip_train_config){0};
    for (int i = 0; i < N_FIELDS; i++)
        if (!attr_read(f, path, fields[i].name, mem_type(fields[i].kind), (char *)cfg + fields[i].offset, err))
            return false;
    for (int i = 0; i < N_MODEL_FIELDS; i++) {
        int v = *(const int *)((const char *)cfg + fields[i].offset);
        if (v < 1 || v > (1 << 20)) return nd_error_set(err, "%s: attribute '%s' is %d, expected 1..2^20", path,
                                                         fields[i].name, v);
    }
    const nd_clip_config *m = &cfg->model;
    if (m->img_size % m->patch_size || m->text_width % m->text_heads || m->vision_width % m->vision_heads)
        return nd_error_set(err, "%s: img_size %d is not a multiple of patch_size %d, or a width is not a multiple of "
                                 "its heads", path, m->img_size, m->patch_size);
    if (!attr_read_str(f, "data", cfg->data, sizeof cfg->data)) cfg->data[0] = 0;
    return true;
}

bool nd_clip_checkpoint_read_config(const char *path, nd_clip_train_config *cfg, nd_error *err) {
    hid_t f = clip_open(path, err);
    if (f < 0) return false;
    nd_h5_quiet quiet = nd_h5_silence();
    bool ok = read_config(f, path, cfg, err);
    nd_h5_restore(quiet);
    H5Fclose(f);
    return ok;
}

// Reads group/<name> for every parameter into host (laid out as the flat buffer), checking names and shapes.
static bool read_group(hid_t f, const char *path, const char *group, const nd_params *p, float *host, nd_error *err) {
    char name[ND_NAME_MAX + 32], want[64], got[64];
    for (int i = 0; i < p->n; i++) {
        const nd_tensor *t = p->items[i].tensor;
        snprintf(name, sizeof name, "%s/%s", group, p->items[i].name);
        if (H5Lexists(f, group, H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
            return nd_error_set(err, "%s: dataset '%s' is missing", path, name);
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t space = H5Dget_space(d);
        hsize_t dims[8] = {0};
        int ndim = H5Sget_simple_extent_ndims(space);
        bool same = ndim == t->shape.ndim && ndim <= 8;
        if (same) H5Sget_simple_extent_dims(space, dims, NULL);
        for (int k = 0; same && k < ndim; k++) same = dims[k] == (hsize_t)t->shape.d[k];
        H5Sclose(space);
        if (!same) {
            H5Dclose(d);
            nd_shape s = {.ndim = ndim > 0 && ndim <= ND_MAX_DIMS ? ndim : 0};
            for (int k = 0; k < s.ndim; k++) s.d[k] = (int64_t)dims[k];
            return nd_error_set(err, "%s: dataset '%s' has shape %s, the model's tensor is %s", path, name,
                                nd_shape_str(s, got, sizeof got), nd_shape_str(t->shape, want, sizeof want));
        }
        bool ok = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host + p->items[i].offset) >= 0;
        H5Dclose(d);
        if (!ok) return nd_error_set(err, "%s: dataset '%s' cannot be read (damaged file?)", path, name);
    }
    return true;
}

static bool read_merges(hid_t f, const char *path, nd_tokenizer *tok, nd_error *err) {
    if (H5Lexists(f, "tokenizer", H5P_DEFAULT) <= 0 || H5Lexists(f, "tokenizer/merges", H5P_DEFAULT) <= 0)
        return nd_error_set(err, "%s: dataset 'tokenizer/merges' is missing", path);
    hid_t d = H5Dopen2(f, "tokenizer/merges", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    bool ok = H5Sget_simple_extent_ndims(space) == 2;
    if (ok) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    int context = 0;
    ok = ok && dims[1] == 2 && dims[0] < (1u << 24) && attr_read(d, path, "context", H5T_NATIVE_INT, &context, err);
    int32_t *merges = ok ? malloc((size_t)(dims[0] + 1) * 2 * sizeof *merges) : NULL;
    ok = ok && merges && (dims[0] == 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, merges) >= 0);
    H5Dclose(d);
    if (!ok) {
        free(merges);
        return nd_error_set(err, "%s: 'tokenizer/merges' is not an (n, 2) integer dataset with a 'context' attribute",
                            path);
    }
    ok = nd_tokenizer_from_merges(tok, merges, (int)dims[0], context, err);
    free(merges);
    if (!ok) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        nd_error_set(err, "%s: %s", path, why);
    }
    return ok;
}

bool nd_clip_checkpoint_load(const char *path, nd_clip *clip, nd_tokenizer *tok, nd_clip_train_config *cfg,
                             nd_train_state *state, nd_adam *opt, nd_ctx *ctx, nd_error *err) {
    hid_t f = clip_open(path, err);
    if (f < 0) return false;
    nd_h5_quiet quiet = nd_h5_silence();
    nd_clip_train_config stored;
    const nd_params *p = &clip->params;
    float *params = malloc((size_t)p->total * sizeof *params);
    float *m = opt ? malloc((size_t)p->total * sizeof *m) : NULL, *v = opt ? malloc((size_t)p->total * sizeof *v) : NULL;
    nd_train_state st = {0};
    int64_t adam_step = 0;
    nd_tokenizer loaded = {0};
    bool ok = read_config(f, path, &stored, err);
    for (int i = 0; ok && i < N_MODEL_FIELDS; i++) {
        int a = *(const int *)((const char *)&stored + fields[i].offset);
        int b = *(const int *)((const char *)&(nd_clip_train_config){.model = clip->config} + fields[i].offset);
        if (a != b) ok = nd_error_set(err, "%s: %s is %d in the checkpoint, %d in the model", path, fields[i].name, a, b);
    }
    ok = ok && read_group(f, path, "params", p, params, err);
    ok = ok && attr_read(f, path, "step", H5T_NATIVE_INT64, &st.step, err) &&
         attr_read(f, path, "rng_seed", H5T_NATIVE_UINT64, &st.rng.seed, err) &&
         attr_read(f, path, "rng_offset", H5T_NATIVE_UINT64, &st.rng.offset, err);
    if (ok && opt)
        ok = attr_read(f, path, "adam_step", H5T_NATIVE_INT64, &adam_step, err) &&
             read_group(f, path, "adam/m", p, m, err) && read_group(f, path, "adam/v", p, v, err);
    if (ok && tok) ok = read_merges(f, path, &loaded, err);
    if (ok && tok && loaded.vocab_size != clip->config.vocab_size)
        ok = nd_error_set(err, "%s: the tokenizer has %d tokens, the model's embedding %d", path, loaded.vocab_size,
                          clip->config.vocab_size);
    nd_h5_restore(quiet);
    H5Fclose(f);
    if (ok) {
        host_to_flat(ctx, p->data, p->total, p->device, params);
        if (opt) {
            host_to_flat(ctx, opt->m, opt->n, opt->device, m);
            host_to_flat(ctx, opt->v, opt->n, opt->device, v);
            opt->step = adam_step;
        }
        if (cfg) *cfg = stored;
        if (state) *state = st;
        if (tok) *tok = loaded;
    } else {
        nd_tokenizer_free(&loaded);
    }
    free(params), free(m), free(v);
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
