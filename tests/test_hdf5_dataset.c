// HDF5 data sets: files made with the HDF5 C API in a temporary directory, good (uint8 or float images,
// with or without labels) and bad (each failure's message checked, and nothing printed by HDF5 itself).
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"
#include "test.h"

static char tmp_dir[] = "/tmp/nd_test_h5_XXXXXX";
static char created[32][512];
static int n_created;

static const char *tmp_path(const char *name) {
    snprintf(created[n_created], sizeof created[0], "%s/%s", tmp_dir, name);
    return created[n_created++];
}

// Adds dataset `name` (rank dims of file type `type`, written from memory of type `mem_type`) to the file,
// creating the file when `create` is set.
static void h5_put(const char *path, bool create, const char *name, hid_t type, hid_t mem_type, int rank,
                   const hsize_t *dims, const void *data) {
    hid_t file = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                        : H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dset = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(dset);
    H5Sclose(space);
    H5Fclose(file);
}

static void test_good_files(void) {
    uint8_t pixels[3 * 1 * 4 * 5];
    for (int i = 0; i < 60; i++) pixels[i] = (uint8_t)(i * 17);
    int32_t labels[3] = {2, 0, 5};
    const char *path = tmp_path("u8.h5");
    h5_put(path, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    h5_put(path, false, "labels", H5T_STD_I64LE, H5T_NATIVE_INT32, 1, (hsize_t[]){3}, labels);
    nd_dataset ds;
    nd_error err = {{0}};
    bool ok = nd_dataset_load(&ds, path, ND_SPLIT_ALL, &err);
    CHECK(ok, "uint8 file rejected: %s", err.msg);
    if (ok) {
        CHECK(ds.n == 3 && ds.c == 1 && ds.h == 4 && ds.w == 5 && ds.images && !ds.images_f32,
              "uint8 set: %lld x %d x %d x %d", (long long)ds.n, ds.c, ds.h, ds.w);
        CHECK(memcmp(ds.images, pixels, sizeof pixels) == 0, "uint8 pixels differ");
        CHECK(ds.labels && ds.labels[0] == 2 && ds.labels[2] == 5 && ds.num_classes == 6, "labels or classes");
    }
    nd_dataset_free(&ds);

    float values[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++) values[i] = (float)i / 23.0f;
    path = tmp_path("f32.h5");
    h5_put(path, true, "images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, (hsize_t[]){2, 3, 2, 2}, values);
    ok = nd_dataset_load_hdf5(&ds, path, &err);
    CHECK(ok, "float file rejected: %s", err.msg);
    if (ok) {
        CHECK(ds.n == 2 && ds.c == 3 && ds.images_f32 && !ds.images && !ds.labels && ds.num_classes == 0,
              "float set without labels");
        CHECK(memcmp(ds.images_f32, values, sizeof values) == 0, "float pixels differ");
        // Float sets resize too (PIL mode "F"): a 2x2 -> 1x1 average of each plane.
        CHECK(nd_dataset_resize(&ds, 1, 1, &err) && ds.h == 1 && ds.w == 1, "%s", err.msg);
        float mean = (values[0] + values[1] + values[2] + values[3]) / 4.0f;
        CHECK(ds.images_f32[0] > mean - 1e-6f && ds.images_f32[0] < mean + 1e-6f, "float resize %g, expected %g",
              ds.images_f32[0], mean);
    }
    nd_dataset_free(&ds);
}

// Loading fails, leaves nothing behind, and the message names the file and holds every word.
static void check_fails(const char *path, int n_words, ...) {
    nd_dataset ds;
    nd_error err = {{0}};
    bool ok = nd_dataset_load_hdf5(&ds, path, &err);
    CHECK(!ok, "%s: a bad file was accepted", path);
    CHECK(!ds.images && !ds.images_f32 && !ds.labels && ds.n == 0, "%s: a failed load left data behind", path);
    va_list words;
    va_start(words, n_words);
    test_message_names(err.msg, path, n_words, words);
    va_end(words);
}

static void test_bad_files(void) {
    uint8_t pixels[3 * 4 * 5] = {0};
    int16_t shorts[3 * 4 * 5] = {0};
    int32_t labels[3] = {1, -1, 0};
    float values[4] = {0.0f, 0.5f, 1.5f, 1.0f};

    const char *no_images = tmp_path("no-images.h5");
    h5_put(no_images, true, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t[]){3}, labels);
    check_fails(no_images, 2, "no dataset 'images'", "N x C x H x W");

    const char *rank3 = tmp_path("rank3.h5");
    h5_put(rank3, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 3, (hsize_t[]){3, 4, 5}, pixels);
    check_fails(rank3, 3, "'images' has rank 3", "(3x4x5)", "expected rank 4");

    const char *int16 = tmp_path("int16.h5");
    h5_put(int16, true, "images", H5T_STD_I16LE, H5T_NATIVE_INT16, 4, (hsize_t[]){3, 1, 4, 5}, shorts);
    check_fails(int16, 2, "type int16", "uint8 or float");

    const char *count = tmp_path("count.h5");
    h5_put(count, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    h5_put(count, false, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t[]){2}, labels);
    check_fails(count, 3, "'labels' holds 2 labels", "3 images", "one per image");

    const char *negative = tmp_path("negative.h5");
    h5_put(negative, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    h5_put(negative, false, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t[]){3}, labels);
    check_fails(negative, 2, "-1 at index 1", ">= 0");

    // 2^32 as a 64-bit label (HDF5 clamps it to INT32_MAX when converting to int32), and one class too many
    const char *huge_label = tmp_path("huge-label.h5");
    h5_put(huge_label, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    h5_put(huge_label, false, "labels", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, (hsize_t[]){3},
           (int64_t[]){0, (int64_t)1 << 32, 1});
    check_fails(huge_label, 2, "4294967296 at index 1", "below 65536");
    const char *many = tmp_path("many-classes.h5");
    h5_put(many, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    h5_put(many, false, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t[]){3}, (int32_t[]){0, 65536, 1});
    check_fails(many, 2, "65536 at index 1", "below 65536");

    // 256 MiB of images declared in a file of a few KB: chunked, no chunk written (HDF5 would return fill values)
    const char *unwritten = tmp_path("unwritten.h5");
    hid_t file = H5Fcreate(unwritten, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t big[4] = {1 << 16, 1, 64, 64}, chunk[4] = {1, 1, 64, 64};
    hid_t space = H5Screate_simple(4, big, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Dclose(H5Dcreate2(file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    check_fails(unwritten, 3, "'images' cannot be read", "268435456 values", "0 stored");

    // The superblock's driver information block given a 4 GB size: libhdf5 would allocate and zero-fill it.
    const char *driver = tmp_path("driver-info.h5");
    h5_put(driver, true, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, (hsize_t[]){3, 1, 4, 5}, pixels);
    FILE *patch = fopen(driver, "r+b");
    const uint8_t at_0x100[8] = {0x00, 0x01}, huge_size[4] = {0xF0, 0xFF, 0xFF, 0xFF};
    fseek(patch, 48, SEEK_SET); // superblock v0: the driver information address, after base, free space, EOF
    fwrite(at_0x100, 1, 8, patch);
    fseek(patch, 0x100 + 4, SEEK_SET);
    fwrite(huge_size, 1, 4, patch);
    fclose(patch);
    check_fails(driver, 2, "driver information block at byte 256", "past the end of the file");

    const char *range = tmp_path("range.h5");
    h5_put(range, true, "images", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, (hsize_t[]){1, 1, 2, 2}, values);
    check_fails(range, 2, "1.5 at flat index 2", "[0, 1]");

    const char *text = tmp_path("text.h5");
    FILE *f = fopen(text, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    check_fails(text, 1, "not an HDF5 file");
    check_fails(tmp_path("absent.h5"), 1, "No such file");
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good_files();
    // HDF5 must print nothing of its own: stderr goes to a file while the bad files load.
    char log_path[600];
    snprintf(log_path, sizeof log_path, "%s/stderr.log", tmp_dir);
    fflush(stderr);
    int saved = dup(2), log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(log, 2);
    test_bad_files();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(log);
    struct stat st;
    stat(log_path, &st);
    if (st.st_size > 0) {
        char text[4096] = "";
        FILE *f = fopen(log_path, "r");
        text[fread(text, 1, sizeof text - 1, f)] = '\0';
        fclose(f);
        fputs(text, stderr);
    }
    CHECK(st.st_size == 0, "%lld bytes (above) went to stderr while loading bad files", (long long)st.st_size);
    unlink(log_path);
    for (int i = 0; i < n_created; i++) unlink(created[i]);
    rmdir(tmp_dir);
    return test_finish("data.hdf5_dataset");
}
