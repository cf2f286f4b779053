// The HDF5 layer shared by nanodiff's file formats; see h5_io.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
