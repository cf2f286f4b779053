// Writes the seed inputs of the fuzz corpora: small valid files of each kind, from which libFuzzer's
// mutations start. Run once to (re)make tests/fuzz/corpus/<name>/seed-*; crash inputs sit beside them.
//   make_seeds CORPUS_DIR
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "train.h"

static void write_file(const char *dir, const char *name, const void *bytes, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

// An IDX file of rank ndim with the pattern i*7+3; gzipped when gz.
static void write_idx(const char *dir, const char *name, int ndim, const uint32_t *dims, bool gz) {
    uint8_t buf[4096];
    size_t at = 0, numel = 1;
    buf[at++] = 0, buf[at++] = 0, buf[at++] = 0x08, buf[at++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        for (int b = 3; b >= 0; b--) buf[at++] = (uint8_t)(dims[i] >> (8 * b));
        numel *= dims[i];
    }
    for (size_t i = 0; i < numel; i++) buf[at++] = (uint8_t)(i * 7 + 3);
    if (!gz) {
        write_file(dir, name, buf, at);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "wb9");
    gzwrite(f, buf, (unsigned)at);
    gzclose(f);
}

// `images` as uint8 (N x 1 x 4 x 4) with int64 `labels`, the layout h5py writes from NumPy defaults.
static void write_u8_set(const char *path) {
    uint8_t images[3 * 16];
    int64_t labels[3] = {0, 2, 1};
    for (int i = 0; i < 48; i++) images[i] = (uint8_t)(i * 5);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {3, 1, 4, 4};
    hid_t space = H5Screate_simple(4, dims, NULL);
    hid_t dset = H5Dcreate2(file, "images", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, images);
    H5Dclose(dset);
    H5Sclose(space);
    space = H5Screate_simple(1, dims, NULL);
    dset = H5Dcreate2(file, "labels", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
    H5Dclose(dset);
    H5Sclose(space);
    H5Fclose(file);
}

// The smallest model a checkpoint can hold: a dli-unet on 4x4 images with 2-channel levels, weights only
// (HDF5's per-dataset overhead makes each saved group of tensors ~300 KB even this small).
static void write_checkpoint(const char *path) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_ddpm_config cfg = nd_ddpm_defaults();
    cfg.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 4, 2);
    cfg.model.down_chs[0] = cfg.model.down_chs[1] = cfg.model.down_chs[2] = 2;
    cfg.model.t_embed_dim = 4, cfg.model.small_groups = 1, cfg.model.big_groups = 2, cfg.model.T = 10;
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_train_state state = {.step = 3, .rng = ctx.rng};
    nd_error err;
    if (!nd_checkpoint_save(path, &model, &cfg, &state, NULL, NULL, &ctx, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    nd_model_free(&model);
    nd_ctx_free(&ctx);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
        return 1;
    }
    char dir[900], path[1024];
    snprintf(dir, sizeof dir, "%s/idx", argv[1]);
    write_idx(dir, "seed-images3.gz", 3, (const uint32_t[]){3, 4, 4}, true);
    write_idx(dir, "seed-images3", 3, (const uint32_t[]){2, 3, 3}, false);
    write_idx(dir, "seed-labels1.gz", 1, (const uint32_t[]){5}, true);

    snprintf(dir, sizeof dir, "%s/hdf5", argv[1]);
    snprintf(path, sizeof path, "%s/seed-u8-labels.h5", dir);
    write_u8_set(path);
    float images[2 * 16];
    for (int i = 0; i < 32; i++) images[i] = (float)i / 31.0f;
    snprintf(path, sizeof path, "%s/seed-float.h5", dir);
    nd_error err;
    if (!nd_samples_write_hdf5(path, images, 2, 1, 4, 4, (const int32_t[]){1, 0}, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    snprintf(dir, sizeof dir, "%s/checkpoint", argv[1]);
    snprintf(path, sizeof path, "%s/seed-tiny.h5", dir);
    write_checkpoint(path);

    snprintf(dir, sizeof dir, "%s/tokenizer", argv[1]);
    // two merges ("a"+"n" -> 256, 256+"d" -> 257), then a prompt of two lines
    static const char tokens[] = "\x02" "a\0n\0" "\x00\x01" "d\0" "a sandal and an ankle boot\nsneaker";
    write_file(dir, "seed-merges", tokens, sizeof tokens - 1);

    snprintf(dir, sizeof dir, "%s/flags", argv[1]);
    static const char args1[] = "--steps\0" "12\0" "--lr=0.5\0" "--resume\0" "--out\0" "runs/y";
    static const char args2[] = "--steps=99999999999\0" "--lr\0" "nan";
    write_file(dir, "seed-good", args1, sizeof args1 - 1);
    write_file(dir, "seed-bad", args2, sizeof args2 - 1);
    return 0;
}
