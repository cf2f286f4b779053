// The HDF5 layer shared by nanodiff's file formats; see h5_io.h.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5_guard.h"
#include "h5_io.h"

// The stored type (little endian, fixed width) and the native type in memory of each kind.
static hid_t h5_file_type(nd_h5_kind k) {
    switch (k) {
    case ND_H5_INT: case ND_H5_INT3: return H5T_STD_I32LE;
    case ND_H5_INT64: return H5T_STD_I64LE;
    case ND_H5_UINT64: return H5T_STD_U64LE;
    case ND_H5_FLOAT: return H5T_IEEE_F32LE;
    case ND_H5_DOUBLE: return H5T_IEEE_F64LE;
    case ND_H5_BOOL: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t h5_mem_type(nd_h5_kind k) {
    switch (k) {
    case ND_H5_INT: case ND_H5_INT3: return H5T_NATIVE_INT;
    case ND_H5_INT64: return H5T_NATIVE_INT64;
    case ND_H5_UINT64: return H5T_NATIVE_UINT64;
    case ND_H5_FLOAT: return H5T_NATIVE_FLOAT;
    case ND_H5_DOUBLE: return H5T_NATIVE_DOUBLE;
    case ND_H5_BOOL: return H5T_NATIVE_UINT8;
    }
    return -1;
}

// A field's value as text, for messages and comparisons (exact for every kind).
char *nd_h5_field_str(const nd_h5_field *f, const void *base, char *buf, size_t size) {
    const char *p = (const char *)base + f->offset;
    switch (f->kind) {
    case ND_H5_INT: snprintf(buf, size, "%d", *(const int *)p); break;
    case ND_H5_INT3: {
        const int *v = (const int *)p;
        snprintf(buf, size, "(%d,%d,%d)", v[0], v[1], v[2]);
        break;
    }
    case ND_H5_INT64: snprintf(buf, size, "%lld", (long long)*(const int64_t *)p); break;
    case ND_H5_UINT64: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case ND_H5_FLOAT: snprintf(buf, size, "%.9g", *(const float *)p); break;
    case ND_H5_DOUBLE: snprintf(buf, size, "%.17g", *(const double *)p); break;
    case ND_H5_BOOL: snprintf(buf, size, "%s", *(const bool *)p ? "true" : "false"); break;
    }
    return buf;
}

// Writes `count` values (1: a scalar attribute).
bool nd_h5_attr_write(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, int count, const void *value) {
    hsize_t dims = (hsize_t)count;
    hid_t space = count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    hid_t attr = space < 0 ? -1 : H5Acreate2(obj, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = attr >= 0 && H5Awrite(attr, mem_type, value) >= 0;
    if (attr >= 0) ok = H5Aclose(attr) >= 0 && ok;
    if (space >= 0) H5Sclose(space);
    return ok;
}

// A variable-length UTF-8 string attribute (what h5py reads back as str).
bool nd_h5_attr_write_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    bool ok = type >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 && H5Tset_cset(type, H5T_CSET_UTF8) >= 0 &&
              nd_h5_attr_write(obj, name, type, type, 1, &value);
    if (type >= 0) H5Tclose(type);
    return ok;
}

bool nd_h5_field_write(hid_t obj, const nd_h5_field *f, const void *base) {
    const char *p = (const char *)base + f->offset;
    uint8_t flag = f->kind == ND_H5_BOOL && *(const bool *)p;
    return nd_h5_attr_write(obj, f->name, h5_file_type(f->kind), h5_mem_type(f->kind), f->kind == ND_H5_INT3 ? 3 : 1,
                      f->kind == ND_H5_BOOL ? (const void *)&flag : p);
}

// Reads a field stored as a number of the right class (integer or float) and count; where names the object.
bool nd_h5_field_read(hid_t obj, const char *path, const char *where, const nd_h5_field *f, void *base,
                       nd_error *err) {
    if (H5Aexists(obj, f->name) <= 0)
        return nd_error_set(err, "%s: the file lacks the attribute '%s%s'", path, where, f->name);
    hid_t attr = H5Aopen(obj, f->name, H5P_DEFAULT);
    hid_t type = attr < 0 ? -1 : H5Aget_type(attr);
    hid_t space = attr < 0 ? -1 : H5Aget_space(attr);
    H5T_class_t want = f->kind == ND_H5_FLOAT || f->kind == ND_H5_DOUBLE ? H5T_FLOAT : H5T_INTEGER;
    int count = f->kind == ND_H5_INT3 ? 3 : 1;
    char *p = (char *)base + f->offset;
    uint8_t flag = 0;
    bool ok = type >= 0 && space >= 0 && H5Tget_class(type) == want &&
              H5Sget_simple_extent_npoints(space) == count &&
              H5Aread(attr, h5_mem_type(f->kind), f->kind == ND_H5_BOOL ? (void *)&flag : p) >= 0;
    if (f->kind == ND_H5_BOOL) *(bool *)p = flag != 0;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    if (!ok)
        return nd_error_set(err, "%s: the attribute '%s%s' is not %d %s", path, where, f->name, count,
                            want == H5T_FLOAT ? "float" : "integer");
    return true;
}

// Reads a string attribute, fixed or variable length (h5py writes either), into buf.
bool nd_h5_attr_read_str(hid_t obj, const char *path, const char *name, char *buf, size_t size, nd_error *err) {
    if (H5Aexists(obj, name) <= 0) return nd_error_set(err, "%s: the file lacks the attribute '%s'", path, name);
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
        char *value = nd_xcalloc(len + 1, 1);
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

hid_t nd_h5_open(const char *path, const char *what, nd_error *err) {
    if (access(path, R_OK) != 0) {
        nd_error_set(err, "%s: cannot open the %s: %s", path, what, strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        nd_error_set(err, "%s: not a nanodiff %s (not an HDF5 file)", path, what);
        return -1;
    }
    if (!nd_h5_check_layout(path, err)) return -1; // what libhdf5 itself would crash on
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) nd_error_set(err, "%s: cannot read the %s: the HDF5 file is truncated or damaged", path, what);
    return file;
}

// Whether "a/b/c" exists (H5Lexists fails, negative, when an intermediate group is missing).
bool nd_h5_link_exists(hid_t file, const char *name) { return H5Lexists(file, name, H5P_DEFAULT) > 0; }

// "(2,3,4)", as nd_shape_str writes shapes.
char *nd_h5_dims_str(const hsize_t *dims, int ndim, char *buf, size_t size) {
    int used = snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < (int)size; i++)
        used += snprintf(buf + used, size - (size_t)used, i ? ",%llu" : "%llu", (unsigned long long)dims[i]);
    if (used < (int)size) snprintf(buf + used, size - (size_t)used, ")");
    return buf;
}

bool nd_h5_write_params(hid_t file, const char *group, const nd_params *p, const float *host, char *failed,
                        size_t size) {
    hid_t g = H5Gcreate2(file, group, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        snprintf(failed, size, "creating group '%s'", group);
        return false;
    }
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
        if (!ok) snprintf(failed, size, "writing dataset '%s/%s'", group, item->name);
    }
    if (H5Gclose(g) < 0 && ok) {
        snprintf(failed, size, "closing group '%s'", group);
        return false;
    }
    return ok;
}

bool nd_h5_write_device_params(hid_t file, const char *group, const nd_params *p, const float *flat,
                               nd_device device, char *failed, size_t size) {
    float *host = nd_xmalloc((size_t)(p->total ? p->total : 1) * sizeof(float)); // (p->total,)
    nd_buffer_download(device, host, flat, p->total);
    // a diverged run is never saved: the previous file stays the last good one
    char where[256];
    bool ok = !nd_params_find_nonfinite(p, host, where, sizeof where);
    if (!ok) snprintf(failed, size, "the check for NaN/inf ('%s': %s)", group, where);
    ok = ok && nd_h5_write_params(file, group, p, host, failed, size);
    free(host);
    return ok;
}

// Checks that group holds exactly p's tensors, each float with p's shape; what says what the group is for.
static bool check_group(hid_t file, const char *path, const char *group, const char *what, const nd_params *p,
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
static bool read_group(hid_t file, const char *path, const char *group, const nd_params *p, float *host,
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

bool nd_h5_groups_check(hid_t file, const char *path, nd_h5_group *groups, int n, nd_error *err) {
    for (int i = 0; i < n; i++)
        if (!check_group(file, path, groups[i].name, groups[i].what, groups[i].like, err)) return false;
    return true;
}

bool nd_h5_groups_read(hid_t file, const char *path, nd_h5_group *groups, int n, nd_error *err) {
    for (int i = 0; i < n; i++) {
        int64_t total = groups[i].like->total;
        groups[i].staged = nd_xmalloc((size_t)(total ? total : 1) * sizeof(float));
        if (!read_group(file, path, groups[i].name, groups[i].like, groups[i].staged, err)) return false;
        char where[256];
        if (nd_params_find_nonfinite(groups[i].like, groups[i].staged, where, sizeof where))
            return nd_error_set(err, "%s: %s are not finite: '%s' %s (the run that wrote it had diverged)", path,
                                groups[i].what, groups[i].name, where);
    }
    return true;
}

void nd_h5_groups_upload(const nd_h5_group *groups, int n) {
    for (int i = 0; i < n; i++) nd_buffer_upload(groups[i].device, groups[i].dst, groups[i].staged, groups[i].like->total);
}

void nd_h5_groups_free(nd_h5_group *groups, int n) {
    for (int i = 0; i < n; i++) {
        free(groups[i].staged);
        groups[i].staged = NULL;
    }
}

hid_t nd_h5_memory_create(size_t increment) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    // the name only labels the in-memory file: with no backing store nothing is created under it
    hid_t file = H5Pset_fapl_core(fapl, increment, false) >= 0
                     ? H5Fcreate("nanodiff-memory.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                     : -1;
    H5Pclose(fapl);
    return file;
}

bool nd_h5_memory_save(hid_t file, const char *path, nd_error *err) {
    // without the flush the image lacks the cached metadata (HDF5 1.10)
    ssize_t size = H5Fflush(file, H5F_SCOPE_GLOBAL) >= 0 ? H5Fget_file_image(file, NULL, 0) : -1;
    char *image = size > 0 ? nd_xmalloc((size_t)size) : NULL;
    bool ok = image && H5Fget_file_image(file, image, (size_t)size) == size;
    H5Fclose(file);
    if (!ok) {
        free(image);
        return nd_error_set(err, "%s: cannot write: building the HDF5 file in memory failed (out of memory?)",
                            path);
    }
    ok = nd_atomic_write(path, image, (size_t)size, err);
    free(image);
    return ok;
}

bool nd_h5_writer_fail(nd_h5_writer *w, const char *what, const char *name) {
    snprintf(w->failed, sizeof w->failed, name ? "%s '%s'" : "%s", what, name);
    return false;
}

bool nd_h5_save(const char *path, const char *what, size_t increment, bool (*write)(nd_h5_writer *w, const void *arg),
                const void *arg, nd_error *err) {
    nd_h5_quiet quiet = nd_h5_silence();
    nd_h5_writer w = {.file = nd_h5_memory_create(increment)};
    bool ok = w.file >= 0 ? write(&w, arg) : nd_h5_writer_fail(&w, "creating the file in memory", NULL);
    if (!ok) {
        if (w.file >= 0) H5Fclose(w.file);
        nd_h5_restore(quiet);
        return nd_error_set(err, "%s: cannot save the %s: %s failed", path, what, w.failed);
    }
    ok = nd_h5_memory_save(w.file, path, err);
    nd_h5_restore(quiet);
    return ok;
}
