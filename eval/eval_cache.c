// The evaluation classifier's cache file (HDF5): what it was trained for as root attributes, one float32
// dataset per parameter under params/ (chunked with a Fletcher-32 checksum, so damage is refused, not
// loaded). Built in memory and written atomically, as checkpoints are (data/h5_io.h); a load checks everything
// and reads every value before it writes one.
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_io.h"
#include "eval.h"

#define CACHE_FORMAT "nanodiff-eval-classifier"
#define CACHE_VERSION 2 // 2: the random_flip attribute

bool nd_eval_default_cache_dir(char *buf, size_t size) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg) return snprintf(buf, size, "%s/nanodiff", xdg) < (int)size;
    if (home && *home) return snprintf(buf, size, "%s/.cache/nanodiff", home) < (int)size;
    return false;
}

void nd_eval_cache_path(char *buf, size_t size, const char *cache_dir, const char *data, int img_size, bool unit_range,
                        bool random_flip) {
    // the data set's last path component, with anything unsafe in a file name replaced; a hash of the whole
    // spec keeps two directories of the same name apart
    const char *base = data;
    for (const char *p = data; *p; p++)
        if (*p == '/' && p[1]) base = p + 1;
    char name[64];
    size_t n = 0;
    for (const char *p = base; *p && *p != '/' && n + 1 < sizeof name; p++)
        name[n++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                                   *p == '-' || *p == '_'
                               ? *p
                               : '_');
    name[n] = '\0';
    uint32_t hash = nd_fnv1a32(ND_FNV1A32_OFFSET, data, strlen(data));
    const char *range = unit_range ? "01" : "pm1", *flip = random_flip ? "-flip" : "";
    if (strcmp(data, "fashion-mnist") == 0)
        snprintf(buf, size, "%s/eval-classifier-%s-%dpx-%s%s.h5", cache_dir, name, img_size, range, flip);
    else
        snprintf(buf, size, "%s/eval-classifier-%s-%08x-%dpx-%s%s.h5", cache_dir, name, hash, img_size, range, flip);
}

// ---------------------------------------------------------------------------------------------------
// save

// A scalar 32-bit integer attribute.
static bool attr_int(hid_t obj, const char *name, int value) {
    return nd_h5_attr_write(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT, 1, &value);
}

// One float32 dataset per tensor of p in a new group (nd_h5_write_params), from host values laid out as p's
// flat buffer.
static bool write_group(hid_t file, const char *group, const nd_params *p, const float *host) {
    char failed[300];
    return nd_h5_write_params(file, group, p, host, failed, sizeof failed);
}

// The attributes and the params/ and buffers/ groups of c, from host copies of its flat buffers.
static bool write_contents(hid_t file, const nd_eval_classifier *c, const float *params, const float *buffers) {
    return nd_h5_attr_write_str(file, "format", CACHE_FORMAT) && attr_int(file, "format_version", CACHE_VERSION) &&
           nd_h5_attr_write_str(file, "data", c->data) && attr_int(file, "img_ch", c->img_ch) &&
           attr_int(file, "img_size", c->img_size) && attr_int(file, "unit_range", c->unit_range) &&
           attr_int(file, "random_flip", c->random_flip) && attr_int(file, "classes", c->classes) &&
           write_group(file, "params", &c->params, params) && write_group(file, "buffers", &c->buffers, buffers);
}

// A host copy (p->total floats) of p's flat buffer, gathered tensor by tensor.
static float *download(const nd_params *p, nd_ctx *ctx) {
    float *host = nd_xmalloc((size_t)(p->total ? p->total : 1) * sizeof(float)); // (total)
    for (int i = 0; i < p->n; i++) nd_copy_to_host(ctx, p->items[i].tensor, host + p->items[i].offset);
    return host;
}

bool nd_eval_classifier_save(const char *path, const nd_eval_classifier *c, nd_ctx *ctx, nd_error *err) {
    float *params = download(&c->params, ctx), *buffers = download(&c->buffers, ctx);
    nd_h5_quiet quiet = nd_h5_silence();
    hid_t file = nd_h5_memory_create(1 << 20);
    bool ok = file >= 0 && write_contents(file, c, params, buffers);
    if (ok) {
        ok = nd_h5_memory_save(file, path, err);
    } else {
        if (file >= 0) H5Fclose(file);
        nd_error_set(err, "%s: cannot build the classifier's HDF5 file", path);
    }
    nd_h5_restore(quiet);
    free(params);
    free(buffers);
    return ok;
}

// ---------------------------------------------------------------------------------------------------
// load

// An integer attribute; false (with err naming it) when missing or not an integer.
static bool read_int(hid_t file, const char *path, const char *name, int *value, nd_error *err) {
    nd_h5_field field = {name, ND_H5_INT, 0, 0};
    return nd_h5_field_read(file, path, "", &field, value, err);
}

// Reads group, which must hold exactly p's tensors in p's shapes, into host laid out as p's flat buffer.
static bool read_group(hid_t file, const char *path, const char *group, const nd_params *p, float *host,
                       nd_error *err) {
    hid_t g = H5Lexists(file, group, H5P_DEFAULT) > 0 ? H5Gopen2(file, group, H5P_DEFAULT) : -1;
    if (g < 0) return nd_error_set(err, "%s: no '%s' group", path, group);
    H5G_info_t info = {0};
    bool ok = H5Gget_info(g, &info) >= 0 && info.nlinks == (hsize_t)p->n;
    if (!ok)
        nd_error_set(err, "%s: '%s' holds %llu tensors, the classifier %d", path, group,
                     (unsigned long long)info.nlinks, p->n);
    for (int i = 0; ok && i < p->n; i++) {
        const nd_param *item = &p->items[i];
        nd_shape s = item->tensor->shape;
        hid_t dset = H5Lexists(g, item->name, H5P_DEFAULT) > 0 ? H5Dopen2(g, item->name, H5P_DEFAULT) : -1;
        hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
        hsize_t dims[H5S_MAX_RANK];
        int ndim = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
        ok = ndim == s.ndim;
        for (int d = 0; ok && d < ndim; d++) ok = dims[d] == (hsize_t)s.d[d];
        if (!ok) {
            char shape[96];
            nd_error_set(err, "%s: '%s/%s' is missing or not of shape %s", path, group, item->name,
                         nd_shape_str(s, shape, sizeof shape));
        } else if (H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host + item->offset) < 0) {
            ok = nd_error_set(err, "%s: '%s/%s' cannot be read: the file is damaged", path, group, item->name);
        }
        if (space >= 0) H5Sclose(space);
        if (dset >= 0) H5Dclose(dset);
    }
    H5Gclose(g);
    return ok;
}

// Checks the file's attributes against c, then reads every tensor, checked in shape, into the host copies.
static bool stage(hid_t file, const char *path, const nd_eval_classifier *c, float *params, float *buffers,
                  nd_error *err) {
    char format[64], data[sizeof c->data];
    int version, img_ch, img_size, unit_range, random_flip, classes;
    if (!nd_h5_attr_read_str(file, path, "format", format, sizeof format, err) || strcmp(format, CACHE_FORMAT) != 0)
        return nd_error_set(err, "%s: not a nanodiff evaluation classifier", path);
    if (!read_int(file, path, "format_version", &version, err)) return false;
    if (version != CACHE_VERSION)
        return nd_error_set(err, "%s: format version %d, expected %d", path, version, CACHE_VERSION);
    if (!nd_h5_attr_read_str(file, path, "data", data, sizeof data, err) ||
        !read_int(file, path, "img_ch", &img_ch, err) || !read_int(file, path, "img_size", &img_size, err) ||
        !read_int(file, path, "unit_range", &unit_range, err) ||
        !read_int(file, path, "random_flip", &random_flip, err) || !read_int(file, path, "classes", &classes, err))
        return false;
    if (strcmp(data, c->data) != 0 || img_ch != c->img_ch || img_size != c->img_size ||
        (unit_range != 0) != c->unit_range || (random_flip != 0) != c->random_flip || classes != c->classes)
        return nd_error_set(err,
                            "%s: trained for %s, %dx%dx%d in %s%s, %d classes; wanted %s, %dx%dx%d in %s%s, "
                            "%d classes",
                            path, data, img_ch, img_size, img_size, unit_range ? "[0, 1]" : "[-1, 1]",
                            random_flip ? " with flips" : "", classes, c->data, c->img_ch, c->img_size, c->img_size,
                            c->unit_range ? "[0, 1]" : "[-1, 1]", c->random_flip ? " with flips" : "", c->classes);
    return read_group(file, path, "params", &c->params, params, err) &&
           read_group(file, path, "buffers", &c->buffers, buffers, err);
}

// Uploads a host copy laid out as p's flat buffer, tensor by tensor.
static void upload(const nd_params *p, nd_ctx *ctx, const float *host) {
    for (int i = 0; i < p->n; i++) nd_copy_from_host(ctx, p->items[i].tensor, host + p->items[i].offset);
}

bool nd_eval_classifier_load(const char *path, nd_eval_classifier *c, nd_ctx *ctx, nd_error *err) {
    if (access(path, R_OK) != 0) return nd_error_set(err, "%s: %s", path, strerror(errno));
    nd_h5_quiet quiet = nd_h5_silence();
    float *params = nd_xmalloc((size_t)c->params.total * sizeof(float));   // (params total)
    float *buffers = nd_xmalloc((size_t)c->buffers.total * sizeof(float)); // (buffers total)
    hid_t file = H5Fis_hdf5(path) > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    bool ok = file >= 0 ? stage(file, path, c, params, buffers, err)
                        : nd_error_set(err, "%s: not an HDF5 file, or a truncated one", path);
    if (file >= 0) H5Fclose(file);
    nd_h5_restore(quiet);
    if (ok) {
        upload(&c->params, ctx, params);
        upload(&c->buffers, ctx, buffers);
    }
    free(params);
    free(buffers);
    return ok;
}
