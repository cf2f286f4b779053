// HDF5 checkpoints. The root holds the format, the model and training configuration and the run's state as
// attributes; groups params/, buffers/, adam/m/, adam/v/ and ema/ hold one float32 dataset per tensor, named
// by its PyTorch state_dict key and shaped as the tensor (chunked with a Fletcher-32 checksum, so damaged
// data is refused instead of loaded). Saving builds the file in memory, writes it to a temporary file,
// fsyncs it, then renames it over the target; loading checks the whole file against the model and reads
// every value before it writes a single one, so a failed load changes nothing.
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

#define CKPT_FORMAT "nanodiff-checkpoint"
#define CKPT_VERSION 1

// ---------------------------------------------------------------------------------------------------
// configuration attributes: one root attribute per field of nd_ddpm_config (strings apart)

typedef enum { FIELD_INT, FIELD_INT3, FIELD_INT64, FIELD_UINT64, FIELD_FLOAT, FIELD_DOUBLE, FIELD_BOOL } field_kind;

typedef struct config_field {
    const char *name;
    field_kind kind;
    size_t offset; // in nd_ddpm_config
    int min;       // smallest valid value of a model field (a model is created from these)
} config_field;

#define MODEL_FIELD(field, kind, min) {#field, kind, offsetof(nd_ddpm_config, model.field), min}
#define DDPM_FIELD(field, kind) {#field, kind, offsetof(nd_ddpm_config, field), 0}
#define N_MODEL_FIELDS 9

// The model's fields come first: a checkpoint loads only into a model whose fields all match.
static const config_field config_fields[] = {
    MODEL_FIELD(img_ch, FIELD_INT, 1),         MODEL_FIELD(img_size, FIELD_INT, 1),
    MODEL_FIELD(T, FIELD_INT, 1),              MODEL_FIELD(down_chs, FIELD_INT3, 1),
    MODEL_FIELD(t_embed_dim, FIELD_INT, 0),    MODEL_FIELD(c_embed_dim, FIELD_INT, 0),
    MODEL_FIELD(small_groups, FIELD_INT, 1),   MODEL_FIELD(big_groups, FIELD_INT, 1),
    MODEL_FIELD(heads, FIELD_INT, 0),          DDPM_FIELD(unit_range, FIELD_BOOL),
    DDPM_FIELD(random_flip, FIELD_BOOL),       DDPM_FIELD(beta_start, FIELD_DOUBLE),
    DDPM_FIELD(beta_end, FIELD_DOUBLE),        DDPM_FIELD(epochs, FIELD_INT),
    DDPM_FIELD(batch_size, FIELD_INT),         DDPM_FIELD(lr, FIELD_FLOAT),
    DDPM_FIELD(adamw, FIELD_BOOL),             DDPM_FIELD(weight_decay, FIELD_FLOAT),
    DDPM_FIELD(cfg_drop, FIELD_FLOAT),         DDPM_FIELD(clip_grad, FIELD_FLOAT),
    DDPM_FIELD(ema_decay, FIELD_FLOAT),        DDPM_FIELD(seed, FIELD_UINT64),
    DDPM_FIELD(checkpoint_every, FIELD_INT64), DDPM_FIELD(preview_every, FIELD_INT64),
    DDPM_FIELD(max_steps, FIELD_INT64),
};
#define N_CONFIG_FIELDS ((int)(sizeof config_fields / sizeof config_fields[0]))

// The Adam group's attributes, in nd_adam_config.
static const config_field adam_fields[] = {
    {"lr", FIELD_FLOAT, offsetof(nd_adam_config, lr), 0},
    {"beta1", FIELD_FLOAT, offsetof(nd_adam_config, beta1), 0},
    {"beta2", FIELD_FLOAT, offsetof(nd_adam_config, beta2), 0},
    {"eps", FIELD_FLOAT, offsetof(nd_adam_config, eps), 0},
    {"weight_decay", FIELD_FLOAT, offsetof(nd_adam_config, weight_decay), 0},
    {"decoupled", FIELD_BOOL, offsetof(nd_adam_config, decoupled), 0},
};
#define N_ADAM_FIELDS ((int)(sizeof adam_fields / sizeof adam_fields[0]))

// The stored type (little endian, fixed width) and the native type in memory of each kind.
static hid_t field_file_type(field_kind k) {
    switch (k) {
    case FIELD_INT: case FIELD_INT3: return H5T_STD_I32LE;
    case FIELD_INT64: return H5T_STD_I64LE;
    case FIELD_UINT64: return H5T_STD_U64LE;
    case FIELD_FLOAT: return H5T_IEEE_F32LE;
    case FIELD_DOUBLE: return H5T_IEEE_F64LE;
    case FIELD_BOOL: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t field_mem_type(field_kind k) {
    switch (k) {
    case FIELD_INT: case FIELD_INT3: return H5T_NATIVE_INT;
    case FIELD_INT64: return H5T_NATIVE_INT64;
    case FIELD_UINT64: return H5T_NATIVE_UINT64;
    case FIELD_FLOAT: return H5T_NATIVE_FLOAT;
    case FIELD_DOUBLE: return H5T_NATIVE_DOUBLE;
    case FIELD_BOOL: return H5T_NATIVE_UINT8;
    }
    return -1;
}

// A field's value as text, for messages and comparisons (exact for every kind).
static char *field_str(const config_field *f, const void *base, char *buf, size_t size) {
    const char *p = (const char *)base + f->offset;
    switch (f->kind) {
    case FIELD_INT: snprintf(buf, size, "%d", *(const int *)p); break;
    case FIELD_INT3: {
        const int *v = (const int *)p;
        snprintf(buf, size, "(%d,%d,%d)", v[0], v[1], v[2]);
        break;
    }
    case FIELD_INT64: snprintf(buf, size, "%lld", (long long)*(const int64_t *)p); break;
    case FIELD_UINT64: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case FIELD_FLOAT: snprintf(buf, size, "%.9g", *(const float *)p); break;
    case FIELD_DOUBLE: snprintf(buf, size, "%.17g", *(const double *)p); break;
    case FIELD_BOOL: snprintf(buf, size, "%s", *(const bool *)p ? "true" : "false"); break;
    }
    return buf;
}

// ---------------------------------------------------------------------------------------------------
// attribute and dataset helpers

// Writes `count` values (1: a scalar attribute).
static bool attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int count, const void *value) {
    hsize_t dims = (hsize_t)count;
    hid_t space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    hid_t attr = space < 0 ? -1 : H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = attr >= 0 && H5Awrite(attr, mem_type, value) >= 0;
    if (attr >= 0) ok = H5Aclose(attr) >= 0 && ok;
    if (space >= 0) H5Sclose(space);
    return ok;
}

// A variable-length UTF-8 string attribute (what h5py reads back as str).
static bool attr_write_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    bool ok = type >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 && H5Tset_cset(type, H5T_CSET_UTF8) >= 0 &&
              attr_write(obj, name, type, type, 1, &value);
    if (type >= 0) H5Tclose(type);
    return ok;
}

static bool field_write(hid_t obj, const config_field *f, const void *base) {
    const char *p = (const char *)base + f->offset;
    uint8_t flag = f->kind == FIELD_BOOL && *(const bool *)p;
    return attr_write(obj, f->name, field_file_type(f->kind), field_mem_type(f->kind), f->kind == FIELD_INT3 ? 3 : 1,
                      f->kind == FIELD_BOOL ? (const void *)&flag : p);
}

// Reads a field stored as a number of the right class (integer or float) and count; where names the object.
static bool field_read(hid_t obj, const char *path, const char *where, const config_field *f, void *base,
                       nd_error *err) {
    if (H5Aexists(obj, f->name) <= 0)
        return nd_error_set(err, "%s: the checkpoint lacks the attribute '%s%s'", path, where, f->name);
    hid_t attr = H5Aopen(obj, f->name, H5P_DEFAULT);
    hid_t type = attr < 0 ? -1 : H5Aget_type(attr);
    hid_t space = attr < 0 ? -1 : H5Aget_space(attr);
    H5T_class_t want = f->kind == FIELD_FLOAT || f->kind == FIELD_DOUBLE ? H5T_FLOAT : H5T_INTEGER;
    int count = f->kind == FIELD_INT3 ? 3 : 1;
    char *p = (char *)base + f->offset;
    uint8_t flag = 0;
    bool ok = type >= 0 && space >= 0 && H5Tget_class(type) == want &&
              H5Sget_simple_extent_npoints(space) == count &&
              H5Aread(attr, field_mem_type(f->kind), f->kind == FIELD_BOOL ? (void *)&flag : p) >= 0;
    if (f->kind == FIELD_BOOL) *(bool *)p = flag != 0;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    if (!ok)
        return nd_error_set(err, "%s: the attribute '%s%s' is not %d %s", path, where, f->name, count,
                            want == H5T_FLOAT ? "float" : "integer");
    return true;
}

// Reads a string attribute, fixed or variable length (h5py writes either), into buf.
static bool attr_read_str(hid_t obj, const char *path, const char *name, char *buf, size_t size, nd_error *err) {
    if (H5Aexists(obj, name) <= 0) return nd_error_set(err, "%s: the checkpoint lacks the attribute '%s'", path, name);
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t type = attr < 0 ? -1 : H5Aget_type(attr);
    hid_t mem = H5Tcopy(H5T_C_S1);
    bool ok = type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tset_cset(mem, H5Tget_cset(type)) >= 0;
    bool too_long = false;
    if (ok && H5Tis_variable_str(type) > 0) {
        char *value = NULL;
        ok = H5Tset_size(mem, H5T_VARIABLE) >= 0 && H5Aread(attr, mem, &value) >= 0 && value;
        too_long = ok && strlen(value) >= size;
        if (ok && !too_long) strcpy(buf, value);
        if (value) H5free_memory(value);
    } else if (ok) {
        size_t len = H5Tget_size(type);
        char *value = calloc(len + 1, 1);
        ok = value && H5Tset_size(mem, len + 1) >= 0 && H5Aread(attr, mem, value) >= 0;
        too_long = ok && strlen(value) >= size;
        if (ok && !too_long) strcpy(buf, value);
        free(value);
    }
    H5Tclose(mem);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    if (too_long) return nd_error_set(err, "%s: the attribute '%s' is longer than %zu bytes", path, name, size - 1);
    if (!ok) return nd_error_set(err, "%s: the attribute '%s' is not a string", path, name);
    return true;
}

// Whether "a/b/c" exists (H5Lexists fails, negative, when an intermediate group is missing).
static bool link_exists(hid_t file, const char *name) { return H5Lexists(file, name, H5P_DEFAULT) > 0; }

// "(2,3,4)", as nd_shape_str writes shapes.
static char *dims_str(const hsize_t *dims, int ndim, char *buf, size_t size) {
    int used = snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < (int)size; i++)
        used += snprintf(buf + used, size - (size_t)used, i ? ",%llu" : "%llu", (unsigned long long)dims[i]);
    if (used < (int)size) snprintf(buf + used, size - (size_t)used, ")");
    return buf;
}

// ---------------------------------------------------------------------------------------------------
// save

typedef struct ckpt_writer {
    hid_t file;
    char failed[400]; // the step that failed, for the message
    int sys_errno;    // errno of the failure (0: none reported)
} ckpt_writer;

// Records the failing step: what, the attribute, group or dataset it concerned (NULL: none), and the system
// call's errno (0: the step was no system call).
static bool writer_fail(ckpt_writer *w, int sys_errno, const char *what, const char *name) {
    w->sys_errno = sys_errno;
    snprintf(w->failed, sizeof w->failed, name ? "%s '%s'" : "%s", what, name);
    return false;
}

// One float32 dataset per tensor of p in a new group, from host values laid out as p's flat buffer.
static bool write_tensors(ckpt_writer *w, const char *group, const nd_params *p, const float *host) {
    hid_t g = H5Gcreate2(w->file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return writer_fail(w, 0, "creating group", group);
    bool ok = true;
    for (int i = 0; ok && i < p->n; i++) {
        const nd_param *item = &p->items[i];
        nd_shape s = item->tensor->shape;
        hsize_t dims[ND_MAX_DIMS];
        for (int d = 0; d < s.ndim; d++) dims[d] = (hsize_t)s.d[d];
        hid_t space = s.ndim ? H5Screate_simple(s.ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        // one chunk per tensor: the checksum needs a chunked layout, and tensors are read whole
        if (s.ndim && item->tensor->numel) ok = H5Pset_chunk(dcpl, s.ndim, dims) >= 0 && H5Pset_fletcher32(dcpl) >= 0;
        hid_t dset = ok ? H5Dcreate2(g, item->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
        ok = dset >= 0 && H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host + item->offset) >= 0;
        if (dset >= 0) ok = H5Dclose(dset) >= 0 && ok;
        H5Pclose(dcpl);
        H5Sclose(space);
        if (!ok) {
            char full[300];
            snprintf(full, sizeof full, "%s/%s", group, item->name);
            writer_fail(w, 0, "writing dataset", full);
        }
    }
    if (H5Gclose(g) < 0 && ok) return writer_fail(w, 0, "closing group", group);
    return ok;
}

// Downloads a flat device buffer of n floats (laid out as p) and writes it as group's datasets.
static bool write_flat(ckpt_writer *w, const char *group, const nd_params *p, const float *flat, int64_t n,
                       nd_device device) {
    float *host = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!host) return writer_fail(w, ENOMEM, "staging", group);
    nd_buffer_download(device, host, flat, n);
    bool ok = write_tensors(w, group, p, host);
    free(host);
    return ok;
}

static bool write_contents(ckpt_writer *w, const nd_model *model, const nd_ddpm_config *cfg,
                           const nd_train_state *state, const nd_adam *opt, const nd_ema *ema) {
    const char *strings[3][2] = {
        {"format", CKPT_FORMAT}, {"model_kind", nd_model_kind_name(cfg->model.kind)}, {"data", cfg->data}};
    for (int i = 0; i < 3; i++)
        if (!attr_write_str(w->file, strings[i][0], strings[i][1]))
            return writer_fail(w, 0, "writing attribute", strings[i][0]);
    int version = CKPT_VERSION;
    if (!attr_write(w->file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &version))
        return writer_fail(w, 0, "writing attribute", "format_version");
    for (int i = 0; i < N_CONFIG_FIELDS; i++)
        if (!field_write(w->file, &config_fields[i], cfg))
            return writer_fail(w, 0, "writing attribute", config_fields[i].name);
    if (!attr_write(w->file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &state->step) ||
        !attr_write(w->file, "rng_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.seed) ||
        !attr_write(w->file, "rng_offset", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &state->rng.offset))
        return writer_fail(w, 0, "writing attribute", "step");

    const nd_params *params = &model->params, *buffers = &model->buffers;
    if (!write_flat(w, "params", params, params->data, params->total, params->device) ||
        !write_flat(w, "buffers", buffers, buffers->data, buffers->total, buffers->device))
        return false;
    if (opt) {
        hid_t g = H5Gcreate2(w->file, "adam", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bool ok = g >= 0 && attr_write(g, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &opt->step);
        for (int i = 0; ok && i < N_ADAM_FIELDS; i++) ok = field_write(g, &adam_fields[i], &opt->config);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return writer_fail(w, 0, "writing group", "adam");
        if (!write_flat(w, "adam/m", params, opt->m, opt->n, opt->device) ||
            !write_flat(w, "adam/v", params, opt->v, opt->n, opt->device))
            return false;
    }
    if (ema) {
        if (!write_flat(w, "ema", params, ema->shadow, ema->n, ema->device)) return false;
        hid_t g = H5Gopen2(w->file, "ema", H5P_DEFAULT);
        bool ok = g >= 0 && attr_write(g, "decay", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &ema->decay);
        if (g >= 0) ok = H5Gclose(g) >= 0 && ok;
        if (!ok) return writer_fail(w, 0, "writing attribute", "ema/decay");
    }
    return true;
}

// Writes all of image to fd, then fsyncs it.
static bool write_image(ckpt_writer *w, int fd, const char *image, size_t size) {
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, image + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return writer_fail(w, errno, "writing the temporary file", NULL);
        done += (size_t)n;
    }
    return fsync(fd) == 0 || writer_fail(w, errno, "syncing the temporary file", NULL);
}

// Builds the whole file in memory (HDF5's core driver), then writes its image to tmp with plain write()
// calls and fsyncs it. HDF5 never touches the disk itself: HDF5 1.10 cannot close a file whose flush failed
// (a full disk), and the half-closed handle crashes the process when the library shuts down. The price is
// host memory for two copies of the file while it is written.
static bool write_file(ckpt_writer *w, const char *tmp, const nd_model *model, const nd_ddpm_config *cfg,
                       const nd_train_state *state, const nd_adam *opt, const nd_ema *ema) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return writer_fail(w, errno, "creating the temporary file", NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 16 << 20, false);
    w->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    bool ok = w->file >= 0 ? write_contents(w, model, cfg, state, opt, ema)
                           : writer_fail(w, 0, "creating the file in memory", NULL);
    // without the flush the image lacks the cached metadata (HDF5 1.10)
    ssize_t size = ok && H5Fflush(w->file, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(w->file, NULL, 0) : -1;
    char *image = size > 0 ? malloc((size_t)size) : NULL;
    if (ok && (!image || H5Fget_file_image(w->file, image, (size_t)size) != size))
        ok = writer_fail(w, 0, "building the file image", NULL);
    if (w->file >= 0) H5Fclose(w->file);
    ok = ok && write_image(w, fd, image, (size_t)size);
    free(image);
    if (close(fd) != 0 && ok) ok = writer_fail(w, errno, "closing the temporary file", NULL);
    return ok;
}

// fsync of the directory holding path, so that the rename itself survives a crash. A directory that cannot
// be opened for syncing (some file systems) leaves the checkpoint complete, only its durability unproven.
static void sync_parent_dir(const char *path) {
    char dir[4096] = ".";
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        if (len >= sizeof dir) return;
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

bool nd_checkpoint_save(const char *path, const nd_model *model, const nd_ddpm_config *cfg,
                        const nd_train_state *state, const nd_adam *opt, const nd_ema *ema, nd_ctx *ctx,
                        nd_error *err) {
    const nd_params *params = &model->params;
    if ((opt && opt->n != params->total) || (ema && ema->n != params->total))
        nd_abort_at(ND_HERE, "nd_checkpoint_save", "optimizer or EMA of %lld floats for a model of %lld",
                    (long long)(opt ? opt->n : ema->n), (long long)params->total);
    nd_ddpm_config model_only = {.model = model->config};
    nd_ddpm_config stored = cfg ? *cfg : model_only;
    stored.model = model->config;
    nd_train_state fresh = {.step = 0, .rng = state ? state->rng : ctx->rng};

    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return nd_error_set(err, "%s: path too long for a checkpoint", path);
    nd_h5_quiet quiet = nd_h5_silence();
    ckpt_writer w = {.file = -1};
    bool ok = write_file(&w, tmp, model, &stored, state ? state : &fresh, opt, ema);
    if (ok && rename(tmp, path) != 0) ok = writer_fail(&w, errno, "renaming the temporary file over it", NULL);
    nd_h5_restore(quiet);
    if (!ok) {
        unlink(tmp);
        if (w.sys_errno)
            return nd_error_set(err, "%s: cannot save the checkpoint: %s failed: %s", path, w.failed,
                                strerror(w.sys_errno));
        return nd_error_set(err, "%s: cannot save the checkpoint: %s failed", path, w.failed);
    }
    sync_parent_dir(path);
    return true;
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
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        nd_error_set(err, "%s: cannot read the checkpoint: the HDF5 file is truncated or damaged", path);
        return -1;
    }
    char format[64];
    int version = 0;
    static const config_field version_field = {"format_version", FIELD_INT, 0, 0};
    bool ok = false;
    if (H5Aexists(file, "format") <= 0)
        nd_error_set(err, "%s: not a nanodiff checkpoint (an HDF5 file without a 'format' attribute)", path);
    else if (!attr_read_str(file, path, "format", format, sizeof format, err) || strcmp(format, CKPT_FORMAT) != 0)
        nd_error_set(err, "%s: not a nanodiff checkpoint (its 'format' attribute is not '%s')", path, CKPT_FORMAT);
    else if (field_read(file, path, "", &version_field, &version, err) && version != CKPT_VERSION)
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
    if (!attr_read_str(file, path, "model_kind", kind, sizeof kind, err) ||
        !attr_read_str(file, path, "data", cfg->data, sizeof cfg->data, err))
        return false;
    if (!nd_model_kind_parse(kind, &cfg->model.kind))
        return nd_error_set(err, "%s: the checkpoint holds an unknown model kind '%s'", path, kind);
    for (int i = 0; i < N_CONFIG_FIELDS; i++) {
        const config_field *f = &config_fields[i];
        if (!field_read(file, path, "", f, cfg, err)) return false;
        if (i >= N_MODEL_FIELDS) continue;
        const int *v = (const int *)((const char *)cfg + f->offset); // model fields are ints
        for (int k = 0; k < (f->kind == FIELD_INT3 ? 3 : 1); k++)
            if (v[k] < f->min) {
                char value[64];
                return nd_error_set(err, "%s: the checkpoint has %s %s: expected at least %d", path, f->name,
                                    field_str(f, cfg, value, sizeof value), f->min);
            }
    }
    return true;
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
        const config_field *f = &config_fields[i];
        if (strcmp(field_str(f, stored, a, sizeof a), field_str(f, &mine, b, sizeof b)) != 0)
            return nd_error_set(err, "%s: checkpoint has %s %s, the model %s", path, f->name, a, b);
    }
    return true;
}

// Checks that group holds exactly p's tensors, each float with p's shape; what says what the group is for.
static bool check_tensors(hid_t file, const char *path, const char *group, const char *what, const nd_params *p,
                          nd_error *err) {
    if (!link_exists(file, group))
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
        dims_str(want, s.ndim, want_str, sizeof want_str);
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
                              item->name, dims_str(found, ndim, found_str, sizeof found_str), want_str);
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
    static const config_field state_fields[] = {
        {"step", FIELD_INT64, offsetof(nd_train_state, step), 0},
        {"rng_seed", FIELD_UINT64, offsetof(nd_train_state, rng.seed), 0},
        {"rng_offset", FIELD_UINT64, offsetof(nd_train_state, rng.offset), 0},
    };
    static const config_field adam_step = {"step", FIELD_INT64, 0, 0}, decay = {"decay", FIELD_FLOAT, 0, 0};
    if (!read_config(file, path, &s->cfg, err) || !check_model_config(path, &s->cfg, &model->config, err))
        return false;
    for (int i = 0; i < 3; i++)
        if (!field_read(file, path, "", &state_fields[i], &s->state, err)) return false;
    if (opt && !link_exists(file, "adam"))
        return nd_error_set(err, "%s: the checkpoint holds no optimizer state (no 'adam' group)", path);
    if (ema && !link_exists(file, "ema"))
        return nd_error_set(err, "%s: the checkpoint holds no EMA weights (no 'ema' group)", path);

    nd_params *params = &model->params, *buffers = &model->buffers;
    add_group(s, "params", "the model's parameters", params, params->data, params->device);
    // a model without buffers still refuses a file that has some
    if (buffers->n || link_exists(file, "buffers"))
        add_group(s, "buffers", "BatchNorm running statistics", buffers, buffers->data, buffers->device);
    if (opt) add_group(s, "adam/m", "Adam's first moments", params, opt->m, opt->device);
    if (opt) add_group(s, "adam/v", "Adam's second moments", params, opt->v, opt->device);
    if (ema) add_group(s, "ema", "EMA weights", params, ema->shadow, ema->device);
    tensor_group *g = s->groups;
    for (int i = 0; i < s->n_groups; i++)
        if (!check_tensors(file, path, g[i].name, g[i].what, g[i].like, err)) return false;

    hid_t adam = opt ? H5Gopen2(file, "adam", H5P_DEFAULT) : -1;
    bool ok = !opt || field_read(adam, path, "adam/", &adam_step, &s->adam_step, err);
    for (int i = 0; ok && opt && i < N_ADAM_FIELDS; i++)
        ok = field_read(adam, path, "adam/", &adam_fields[i], &s->adam, err);
    if (adam >= 0) H5Gclose(adam);
    hid_t shadow = ema ? H5Gopen2(file, "ema", H5P_DEFAULT) : -1;
    ok = ok && (!ema || field_read(shadow, path, "ema/", &decay, &s->ema_decay, err));
    if (shadow >= 0) H5Gclose(shadow);

    for (int i = 0; ok && i < s->n_groups; i++) {
        int64_t n = g[i].like->total;
        g[i].staged = malloc((size_t)(n ? n : 1) * sizeof(float));
        ok = g[i].staged ? read_tensors(file, path, g[i].name, g[i].like, g[i].staged, err)
                         : nd_error_set(err, "%s: out of memory for %lld floats", path, (long long)n);
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
