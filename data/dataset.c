// Labelled image data sets from IDX pairs ((Fashion-)MNIST layout), split selection, and the loader's entry.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

const char *const nd_fashion_mnist_classes[10] = {"top",    "trouser", "pullover", "dress", "coat",
                                                  "sandal", "shirt",   "sneaker",  "bag",   "ankle boot"};

#define DATA_HINT "run scripts/install-deps.sh (it installs Debian's dataset-fashion-mnist) or pass --data DIR"

// torchvision.datasets.MNIST's pairing of an images file and a labels file, with the counts cross-checked.
bool nd_dataset_load_idx_pair(nd_dataset *ds, const char *images_path, const char *labels_path, int num_classes,
                              nd_error *err) {
    memset(ds, 0, sizeof *ds);
    nd_idx images, labels;
    if (!nd_idx_read(&images, images_path, err)) return false;
    bool ok = false;
    if (images.ndim != 3) {
        nd_error_set(err, "%s: images have rank %d: expected rank 3 (N x H x W, an idx3 file)", images_path,
                     images.ndim);
        nd_idx_free(&images);
        return false;
    }
    if (images.dims[1] * images.dims[2] > (1 << 24)) {
        nd_error_set(err, "%s: images of %lldx%lld: expected at most 2^24 pixels each", images_path,
                     (long long)images.dims[1], (long long)images.dims[2]);
        nd_idx_free(&images);
        return false;
    }
    if (!nd_idx_read(&labels, labels_path, err)) {
        nd_idx_free(&images);
        return false;
    }
    int32_t *label_values = NULL;
    int max_label = 0;
    if (labels.ndim != 1) {
        nd_error_set(err, "%s: labels have rank %d: expected rank 1 (N labels, an idx1 file)", labels_path,
                     labels.ndim);
        goto done;
    }
    if (labels.dims[0] != images.dims[0]) {
        nd_error_set(err, "%s holds %lld labels but %s holds %lld images: expected one label per image", labels_path,
                     (long long)labels.dims[0], images_path, (long long)images.dims[0]);
        goto done;
    }
    label_values = malloc((size_t)labels.numel * sizeof *label_values);
    if (!label_values) {
        nd_error_set(err, "%s: out of memory for %lld labels", labels_path, (long long)labels.numel);
        goto done;
    }
    for (int64_t i = 0; i < labels.numel; i++) {
        int label = labels.data[i];
        if (num_classes > 0 && label >= num_classes) {
            nd_error_set(err, "%s: label %d at index %lld is out of range: expected 0..%d (%d classes)", labels_path,
                         label, (long long)i, num_classes - 1, num_classes);
            goto done;
        }
        label_values[i] = label;
        if (label > max_label) max_label = label;
    }
    ds->n = images.dims[0];
    ds->c = 1;
    ds->h = (int)images.dims[1];
    ds->w = (int)images.dims[2];
    ds->images = images.data;
    images.data = NULL;
    ds->labels = label_values;
    label_values = NULL;
    ds->num_classes = num_classes > 0 ? num_classes : max_label + 1;
    ok = true;
done:
    free(label_values);
    nd_idx_free(&images);
    nd_idx_free(&labels);
    return ok;
}

// dir/stem.gz, else dir/stem (torchvision keeps the unzipped names); false names both when neither exists.
static bool idx_find(char *out, size_t size, const char *dir, const char *stem, nd_error *err) {
    snprintf(out, size, "%s/%s.gz", dir, stem);
    if (access(out, F_OK) == 0) return true;
    snprintf(out, size, "%s/%s", dir, stem);
    if (access(out, F_OK) == 0) return true;
    return nd_error_set(err,
                        "%s: found neither %s.gz nor %s: expected the IDX files of an MNIST-style data set "
                        "({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]); %s",
                        dir, stem, stem, DATA_HINT);
}

// One split's pair: <prefix>-images-idx3-ubyte and <prefix>-labels-idx1-ubyte, gzipped or not.
static bool load_split(nd_dataset *ds, const char *dir, const char *prefix, int num_classes, nd_error *err) {
    char stem[64], images_path[4096], labels_path[4096];
    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", prefix);
    if (!idx_find(images_path, sizeof images_path, dir, stem, err)) return false;
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", prefix);
    if (!idx_find(labels_path, sizeof labels_path, dir, stem, err)) return false;
    return nd_dataset_load_idx_pair(ds, images_path, labels_path, num_classes, err);
}

// Appends b to a (ConcatDataset([train, test]) as the course builds it); b is freed either way.
static bool concat_into(nd_dataset *a, nd_dataset *b, const char *dir, nd_error *err) {
    bool ok = false;
    if (a->c != b->c || a->h != b->h || a->w != b->w) {
        nd_error_set(err, "%s: train images are %dx%dx%d but test images are %dx%dx%d: expected one size", dir, a->c,
                     a->h, a->w, b->c, b->h, b->w);
        goto done;
    }
    size_t image_bytes = (size_t)a->c * a->h * a->w;
    uint8_t *images = realloc(a->images, (size_t)(a->n + b->n) * image_bytes);
    if (!images) {
        nd_error_set(err, "%s: out of memory for %lld images", dir, (long long)(a->n + b->n));
        goto done;
    }
    a->images = images;
    int32_t *labels = realloc(a->labels, (size_t)(a->n + b->n) * sizeof *labels);
    if (!labels) {
        nd_error_set(err, "%s: out of memory for %lld labels", dir, (long long)(a->n + b->n));
        goto done;
    }
    a->labels = labels;
    memcpy(a->images + (size_t)a->n * image_bytes, b->images, (size_t)b->n * image_bytes);
    memcpy(a->labels + a->n, b->labels, (size_t)b->n * sizeof *labels);
    a->n += b->n;
    if (b->num_classes > a->num_classes) a->num_classes = b->num_classes;
    ok = true;
done:
    nd_dataset_free(b);
    return ok;
}

// torchvision.datasets.FashionMNIST(root, train=...) for one split, or train + test for ND_SPLIT_ALL.
bool nd_dataset_load_idx_dir(nd_dataset *ds, const char *dir, nd_split split, int num_classes, nd_error *err) {
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(dir, &st) != 0) return nd_error_set(err, "data directory %s: %s: %s", dir, strerror(errno), DATA_HINT);
    if (!S_ISDIR(st.st_mode)) return nd_error_set(err, "data directory %s: not a directory: %s", dir, DATA_HINT);
    if (!load_split(ds, dir, split == ND_SPLIT_TEST ? "t10k" : "train", num_classes, err)) return false;
    if (split != ND_SPLIT_ALL) return true;
    nd_dataset test;
    if (!load_split(&test, dir, "t10k", num_classes, err) || !concat_into(ds, &test, dir, err)) {
        nd_dataset_free(ds);
        return false;
    }
    return true;
}

// The --data flag: a named set, a directory of IDX files, or an HDF5 file.
bool nd_dataset_load(nd_dataset *ds, const char *spec, nd_split split, nd_error *err) {
    if (strcmp(spec, "fashion-mnist") == 0) return nd_dataset_load_idx_dir(ds, ND_FASHION_MNIST_DIR, split, 10, err);
    struct stat st;
    if (stat(spec, &st) == 0 && S_ISREG(st.st_mode)) return nd_dataset_load_hdf5(ds, spec, err);
    return nd_dataset_load_idx_dir(ds, spec, split, 0, err);
}

void nd_dataset_free(nd_dataset *ds) {
    free(ds->images);
    free(ds->images_f32);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}
