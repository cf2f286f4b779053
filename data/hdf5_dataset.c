// HDF5 image data sets for the user's own images: `images` (N x C x H x W, uint8 or float in [0, 1]) and an
// optional `labels` (N integers). HDF5's own error stack printing is switched off while loading; every
// failure becomes one message naming the file and the dataset.
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data.h"
#include "h5_guard.h"
#include "h5_io.h"

#define H5_DEFLATE_MAX_RATIO 1032 // deflate's largest compression ratio
#define H5_EXPECTED_IMAGES "expected N x C x H x W images, uint8 or float in [0, 1]"

// "uint8", "int16", "float32", ... for messages.
static void h5_type_str(char *buf, size_t size, hid_t type) {
    H5T_class_t cls = H5Tget_class(type);
    unsigned long long bits = (unsigned long long)H5Tget_size(type) * 8; // a damaged file may give any size
    if (cls == H5T_INTEGER)
        snprintf(buf, size, "%sint%llu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    else if (cls == H5T_FLOAT)
        snprintf(buf, size, "float%llu", bits);
    else if (cls == H5T_STRING)
        snprintf(buf, size, "string");
    else
        snprintf(buf, size, "HDF5 class %d", (int)cls);
}

// Opens a dataset and reads its shape; false with a message when it is absent or has another rank.
static bool h5_open(hid_t file, const char *path, const char *name, int rank, hid_t *dset, hsize_t *dims,
                    const char *expected, nd_error *err) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return nd_error_set(err, "%s: no dataset '%s': %s", path, name, expected);
    *dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (*dset < 0) return nd_error_set(err, "%s: dataset '%s' cannot be opened: %s", path, name, expected);
    hid_t space = H5Dget_space(*dset);
    int found = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    hsize_t all[H5S_MAX_RANK];
    if (found > 0) H5Sget_simple_extent_dims(space, all, NULL);
    if (space >= 0) H5Sclose(space);
    if (found != rank) {
        char shape[128] = "";
        for (int i = 0, used = 0; i < found && used < (int)sizeof shape; i++)
            used += snprintf(shape + used, sizeof shape - (size_t)used, i ? "x%llu" : "%llu",
                             (unsigned long long)all[i]);
        return nd_error_set(err, "%s: dataset '%s' has rank %d (%s): expected rank %d; %s", path, name, found,
                            shape, rank, expected);
    }
    for (int i = 0; i < rank; i++) {
        if (all[i] == 0 || all[i] > (1u << 31))
            return nd_error_set(err, "%s: dataset '%s' dimension %d is %llu: expected 1 to 2^31", path, name, i,
                                (unsigned long long)all[i]);
        dims[i] = all[i];
    }
    return true;
}

// HDF5 1.10 trusts a file's layout message: a contiguous or compact dataset whose storage is smaller than its
// shape says, or lies past the end of the file, makes H5Dread copy from memory it never allocated. So the
// storage is checked against the declared shape and element size before anything is read (or allocated): it
// must be all there (contiguous: inside the file; compact: exactly the bytes), or chunked with filters this
// build has, holding enough stored bytes to inflate to the declared shape.
static bool h5_check_storage(hid_t file, hid_t dset, const char *path, const char *name, hsize_t numel,
                             nd_error *err) {
    hid_t dcpl = H5Dget_create_plist(dset), type = H5Dget_type(dset);
    H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
    hsize_t need = numel * (hsize_t)(type < 0 ? 0 : H5Tget_size(type)), stored = H5Dget_storage_size(dset);
    hsize_t file_size = 0;
    H5Fget_filesize(file, &file_size);
    bool ok = need > 0;
    const char *why = "its element type has no size";
    if (ok && layout == H5D_CONTIGUOUS) {
        haddr_t at = H5Dget_offset(dset);
        ok = stored == need && at != HADDR_UNDEF && at <= file_size && need <= file_size - at;
        why = "its contiguous storage does not hold the declared shape inside the file";
    } else if (ok && layout == H5D_COMPACT) {
        ok = stored == need;
        why = "its compact storage does not hold the declared shape";
    } else if (ok && layout == H5D_CHUNKED) {
        // unwritten chunks read as fill values, so a tiny file could declare any size: deflate packs at most
        // 1032:1, so a chunked dataset holds at most that many times its stored bytes
        int filters = H5Pget_nfilters(dcpl);
        ok = filters >= 0 && stored <= file_size && need / H5_DEFLATE_MAX_RATIO <= stored;
        for (int i = 0; ok && i < filters; i++) {
            unsigned flags, config;
            size_t n_values = 0;
            H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL, 0, NULL, &config);
            ok = id >= 0 && H5Zfilter_avail(id) > 0;
        }
        why = "its chunks hold less than the declared shape could pack into, or use a filter this build lacks";
    } else if (ok) {
        ok = false;
        why = "its storage layout is not contiguous, compact or chunked";
    }
    if (type >= 0) H5Tclose(type);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (!ok)
        return nd_error_set(err, "%s: dataset '%s' cannot be read: %s (%llu values of %llu bytes declared, %llu "
                            "stored; the file is damaged)", path, name, why, (unsigned long long)numel,
                            (unsigned long long)(numel ? need / numel : 0), (unsigned long long)stored);
    return true;
}

// `images` into ds: uint8 kept as bytes, any float type converted to float32 and range-checked.
static bool h5_read_images(nd_dataset *ds, hid_t file, const char *path, nd_error *err) {
    hid_t dset = -1, type = -1;
    hsize_t dims[4];
    bool ok = false;
    if (!h5_open(file, path, "images", 4, &dset, dims, H5_EXPECTED_IMAGES, err)) goto done;
    if (dims[1] * dims[2] * dims[3] > (1u << 24)) {
        nd_error_set(err, "%s: dataset 'images' holds images of %llux%llux%llu: expected at most 2^24 values each",
                     path, (unsigned long long)dims[1], (unsigned long long)dims[2], (unsigned long long)dims[3]);
        goto done;
    }
    size_t numel = (size_t)(dims[0] * dims[1] * dims[2] * dims[3]);
    type = H5Dget_type(dset);
    H5T_class_t cls = H5Tget_class(type);
    bool is_u8 = cls == H5T_INTEGER && H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE;
    if (!is_u8 && cls != H5T_FLOAT) {
        char name[32];
        h5_type_str(name, sizeof name, type);
        nd_error_set(err, "%s: dataset 'images' has type %s: %s", path, name, H5_EXPECTED_IMAGES);
        goto done;
    }
    if (!h5_check_storage(file, dset, path, "images", numel, err)) goto done;
    void *buf = malloc(numel * (is_u8 ? 1 : sizeof(float)));
    if (!buf) {
        nd_error_set(err, "%s: out of memory for %zu image values", path, numel);
        goto done;
    }
    if (is_u8)
        ds->images = buf;
    else
        ds->images_f32 = buf;
    if (H5Dread(dset, is_u8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        nd_error_set(err, "%s: dataset 'images' cannot be read (the file is damaged)", path);
        goto done;
    }
    for (size_t i = 0; !is_u8 && i < numel; i++) {
        float v = ds->images_f32[i];
        if (!(v >= 0.0f && v <= 1.0f)) {
            nd_error_set(err, "%s: dataset 'images' holds %g at flat index %zu: expected float values in [0, 1]",
                         path, v, i);
            goto done;
        }
    }
    ds->n = (int64_t)dims[0];
    ds->c = (int)dims[1];
    ds->h = (int)dims[2];
    ds->w = (int)dims[3];
    ok = true;
done:
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    return ok;
}

// `labels` into ds, one non-negative integer per image; num_classes is the largest + 1.
static bool h5_read_labels(nd_dataset *ds, hid_t file, const char *path, nd_error *err) {
    const char *expected = "expected N integer class labels, one per image";
    hid_t dset = -1, type = -1;
    hsize_t n = 0;
    bool ok = false;
    if (!h5_open(file, path, "labels", 1, &dset, &n, expected, err)) goto done;
    type = H5Dget_type(dset);
    if (H5Tget_class(type) != H5T_INTEGER) {
        char name[32];
        h5_type_str(name, sizeof name, type);
        nd_error_set(err, "%s: dataset 'labels' has type %s: %s", path, name, expected);
        goto done;
    }
    if ((int64_t)n != ds->n) {
        nd_error_set(err, "%s: dataset 'labels' holds %llu labels but 'images' holds %lld images: %s", path,
                     (unsigned long long)n, (long long)ds->n, expected);
        goto done;
    }
    if (!h5_check_storage(file, dset, path, "labels", n, err)) goto done;
    // read as 64-bit so a label past 2^31 is seen (HDF5 would clamp it to INT32_MAX when converting)
    int64_t *wide = malloc((size_t)n * sizeof *wide);
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    if (!wide || !ds->labels) {
        free(wide);
        nd_error_set(err, "%s: out of memory for %llu labels", path, (unsigned long long)n);
        goto done;
    }
    if (H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) < 0) {
        free(wide);
        nd_error_set(err, "%s: dataset 'labels' cannot be read as integers: %s", path, expected);
        goto done;
    }
    int32_t max_label = 0;
    for (hsize_t i = 0; i < n; i++) {
        if (wide[i] < 0 || wide[i] >= ND_MAX_CLASSES) {
            nd_error_set(err, "%s: dataset 'labels' holds %lld at index %llu: expected class indices >= 0 and "
                         "below %d", path, (long long)wide[i], (unsigned long long)i, ND_MAX_CLASSES);
            free(wide);
            goto done;
        }
        ds->labels[i] = (int32_t)wide[i];
        if (ds->labels[i] > max_label) max_label = ds->labels[i];
    }
    free(wide);
    ds->num_classes = max_label + 1;
    ok = true;
done:
    if (type >= 0) H5Tclose(type);
    if (dset >= 0) H5Dclose(dset);
    return ok;
}

// The whole file, with its checks; the caller frees ds on failure.
static bool h5_load(nd_dataset *ds, const char *path, nd_error *err) {
    if (access(path, R_OK) != 0) return nd_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0) return nd_error_set(err, "%s: not an HDF5 file: %s", path, H5_EXPECTED_IMAGES);
    if (!nd_h5_check_layout(path, err)) return false;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) return nd_error_set(err, "%s: cannot open as HDF5 (the file is damaged)", path);
    bool ok = h5_read_images(ds, file, path, err);
    if (ok && H5Lexists(file, "labels", H5P_DEFAULT) > 0) ok = h5_read_labels(ds, file, path, err);
    H5Fclose(file);
    return ok;
}

// h5py-style files as a torchvision-style data set.
bool nd_dataset_load_hdf5(nd_dataset *ds, const char *path, nd_error *err) {
    memset(ds, 0, sizeof *ds);
    nd_h5_quiet quiet = nd_h5_silence();
    bool ok = h5_load(ds, path, err);
    nd_h5_restore(quiet);
    if (!ok) nd_dataset_free(ds);
    return ok;
}

// Writes one dataset of float32 or int32 values; false on failure.
static bool h5_write(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = space < 0 ? -1 : H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = dset >= 0 && H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (dset >= 0) H5Dclose(dset);
    if (space >= 0) H5Sclose(space);
    return ok;
}

bool nd_samples_write_hdf5(const char *path, const float *images, int64_t n, int c, int h, int w,
                           const int32_t *labels, nd_error *err) {
    // built whole in memory, then written atomically: HDF5 never writes to the disk itself (data/h5_io.h)
    nd_h5_quiet quiet = nd_h5_silence();
    size_t bytes = (size_t)n * (size_t)c * (size_t)h * (size_t)w * sizeof(float);
    hid_t file = nd_h5_memory_create(bytes + (1 << 20));
    bool ok = file >= 0;
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)c, (hsize_t)h, (hsize_t)w};
    ok = ok && h5_write(file, "images", H5T_NATIVE_FLOAT, 4, dims, images);
    ok = ok && (!labels || h5_write(file, "labels", H5T_NATIVE_INT32, 1, dims, labels));
    if (ok) {
        ok = nd_h5_memory_save(file, path, err);
    } else {
        if (file >= 0) H5Fclose(file);
        nd_error_set(err, "%s: cannot write the samples: building the HDF5 file in memory failed", path);
    }
    nd_h5_restore(quiet);
    return ok;
}
