// A diverging run is caught and never saved: training with an absurd learning rate stops at the step whose
// gradient or update is not finite, naming it and the tensor, and the checkpoint left on disk is the last good
// one (finite, from an earlier step); checkpoints holding NaN are neither written nor loaded.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

#define SIZE 8

static char dir[] = "/tmp/nd_test_diverge_XXXXXX";

// 32 8x8 images in two classes (a bright top or bottom half).
static void write_data(const char *path) {
    float images[32 * SIZE * SIZE];
    int32_t labels[32];
    for (int i = 0; i < 32; i++) {
        labels[i] = i % 2;
        for (int p = 0; p < SIZE * SIZE; p++) images[i * SIZE * SIZE + p] = (p < SIZE * SIZE / 2) == (i % 2) ? 0.9f : 0.1f;
    }
    nd_error err;
    CHECK(nd_samples_write_hdf5(path, images, 32, 1, SIZE, SIZE, labels, &err), "data: %s", err.msg);
}

static nd_ddpm_config tiny(const char *data) {
    nd_ddpm_config c = nd_ddpm_defaults();
    c.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, SIZE, -1);
    c.model.down_chs[0] = c.model.down_chs[1] = c.model.down_chs[2] = 8;
    c.model.small_groups = 2, c.model.big_groups = 4, c.model.T = 20;
    snprintf(c.data, sizeof c.data, "%s", data);
    c.batch_size = 8, c.epochs = 1000, c.max_steps = 40, c.checkpoint_every = 1;
    c.random_flip = false;
    return c;
}

static void test_diverged_run(const char *data) {
    nd_ddpm_config c = tiny(data);
    c.lr = 1e6f; // the largest --lr accepts: every weight moves by ~1e6 a step
    char out[128], ckpt[160];
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", out);
    nd_ddpm_result r;
    nd_error err = {{0}};
    bool ok = nd_ddpm_train(&c, out, false, ND_CPU, false, &r, &err);
    CHECK(!ok, "a run at lr 1e6 trained to the end (%lld steps) without diverging", (long long)r.steps);
    long long bad = -1;
    CHECK(sscanf(err.msg, "diverged at step %lld", &bad) == 1 && bad > 0, "the message names no step: %s",
          err.msg);
    CHECK(strstr(err.msg, "the loss is") || strstr(err.msg, "holds") || strstr(err.msg, "is in '"),
          "the message names no loss or tensor: %s", err.msg);
    printf("diverged: %s\n", err.msg);
    // the checkpoint on disk is the last good one: it loads (a non-finite one would not) and is older
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model m;
    nd_ddpm_config stored;
    if (access(ckpt, F_OK) == 0) {
        CHECK(nd_checkpoint_load_model(ckpt, false, &m, &stored, &ctx, &err), "the last checkpoint: %s", err.msg);
        nd_model_free(&m);
        nd_train_state state = {0};
        hid_t f = H5Fopen(ckpt, H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t a = H5Aopen(f, "step", H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_INT64, &state.step);
        H5Aclose(a);
        H5Fclose(f);
        CHECK(state.step < bad, "the checkpoint is from step %lld, not before the bad step %lld",
              (long long)state.step, bad);
        unlink(ckpt);
    }
    nd_ctx_free(&ctx);
    char csv[160];
    snprintf(csv, sizeof csv, "%s/loss.csv", out);
    unlink(csv);
    rmdir(out);
}

// nd_checkpoint_save refuses weights holding a NaN (and writes nothing); a file edited to hold one does not load.
static void test_nonfinite_checkpoints(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_ddpm_config c = tiny("unused");
    c.model.c_embed_dim = 2;
    nd_model m;
    nd_model_create(&m, c.model, &ctx);
    char path[128];
    snprintf(path, sizeof path, "%s/nan.h5", dir);
    const nd_param *bias = nd_params_find(&m.params, "out.3.bias");
    float nan_value = NAN, saved;
    nd_copy_to_host(&ctx, bias->tensor, &saved);
    nd_copy_from_host(&ctx, bias->tensor, &nan_value);
    nd_error err = {{0}};
    CHECK(!nd_checkpoint_save(path, &m, &c, NULL, NULL, NULL, &ctx, &err), "a NaN checkpoint was saved");
    CHECK(strstr(err.msg, "NaN/inf") && strstr(err.msg, "out.3.bias") && strstr(err.msg, "nan"),
          "the message names no tensor: %s", err.msg);
    CHECK(access(path, F_OK) != 0, "a refused save left %s behind", path);

    nd_copy_from_host(&ctx, bias->tensor, &saved);
    CHECK(nd_checkpoint_save(path, &m, &c, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "params/out.3.bias", H5P_DEFAULT);
    CHECK(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &nan_value) >= 0, "edit failed");
    H5Dclose(d);
    H5Fclose(f);
    nd_model loaded;
    nd_ddpm_config stored;
    CHECK(!nd_checkpoint_load_model(path, false, &loaded, &stored, &ctx, &err), "a NaN checkpoint loaded");
    CHECK(strstr(err.msg, "not finite") && strstr(err.msg, "out.3.bias"), "the message names no tensor: %s",
          err.msg);
    unlink(path);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char data[128];
    snprintf(data, sizeof data, "%s/data.h5", dir);
    write_data(data);
    test_nonfinite_checkpoints();
    test_diverged_run(data);
    unlink(data);
    CHECK(rmdir(dir) == 0, "%s is not empty", dir);
    return test_finish("divergence");
}
