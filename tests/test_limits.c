// Range checks of every number a user sets: checkpoint attributes edited to impossible values are refused
// by the loaders that info, sample and resume use, and bad flags are refused by the nanodiff program, each
// with a message naming the field (or flag), the value and the range; a checkpoint holding NaN is not sampled.
//   test_limits NANODIFF
#define _GNU_SOURCE // memmem
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

static char dir[] = "/tmp/nd_test_limits_XXXXXX";
static const char *nanodiff;

// A dli-unet of 8x8 images with 8-channel levels, saved with the default training fields.
static void write_checkpoint(const char *path) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 8, 2);
    mc.down_chs[0] = mc.down_chs[1] = mc.down_chs[2] = 8;
    mc.small_groups = 2, mc.big_groups = 4;
    nd_model m;
    nd_model_create(&m, mc, &ctx);
    nd_error err;
    CHECK(nd_checkpoint_save(path, &m, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

static void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
}

// Overwrites one scalar attribute of the file's root (value in memory type mem_type).
static void edit_attribute(const char *path, const char *name, hid_t mem_type, const void *value) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    CHECK(attr >= 0 && H5Awrite(attr, mem_type, value) >= 0, "cannot edit attribute %s", name);
    H5Aclose(attr);
    H5Fclose(file);
}

// A copy of good with one attribute edited must be refused by read_config and by load_model, naming words.
static void check_edit_refused(const char *good, const char *name, hid_t mem_type, const void *value,
                               const char *value_text, const char *range_text) {
    char path[128];
    snprintf(path, sizeof path, "%s/edited-%s.h5", dir, name);
    copy_file(good, path);
    edit_attribute(path, name, mem_type, value);
    nd_ddpm_config cfg;
    nd_error err = {{0}};
    CHECK(!nd_checkpoint_read_config(path, &cfg, &err), "%s = %s: the configuration was accepted", name, value_text);
    CHECK(strstr(err.msg, path) && strstr(err.msg, name) && strstr(err.msg, value_text) && strstr(err.msg, range_text),
          "%s = %s: the message must name the file, the field, the value and \"%s\": %s", name, value_text, range_text,
          err.msg);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model m;
    CHECK(!nd_checkpoint_load_model(path, false, &m, &cfg, &ctx, &err), "%s: load_model accepted it", name);
    nd_ctx_free(&ctx);
    unlink(path);
}

static void test_checkpoint_attributes(void) {
    char good[128];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    write_checkpoint(good);
    nd_ddpm_config cfg;
    nd_error err;
    CHECK(nd_checkpoint_read_config(good, &cfg, &err), "the good checkpoint was refused: %s", err.msg);
    int zero = 0, huge = 2147483647, big_size = 1 << 20, wide = 1 << 24, three = 3;
    float nan_value = NAN;
    check_edit_refused(good, "batch_size", H5T_NATIVE_INT, &zero, "= 0", "from 1 to 65536");
    check_edit_refused(good, "T", H5T_NATIVE_INT, &huge, "= 2147483647", "from 2 to 100000");
    check_edit_refused(good, "img_size", H5T_NATIVE_INT, &big_size, "= 1048576", "from 4 to 1024");
    check_edit_refused(good, "c_embed_dim", H5T_NATIVE_INT, &wide, "= 16777216", "from 0 to 65536");
    check_edit_refused(good, "small_groups", H5T_NATIVE_INT, &three, "small_groups 3 does not divide",
                       "down_chs[0] = 8");
    check_edit_refused(good, "lr", H5T_NATIVE_FLOAT, &nan_value, "= nan", "finite");
    unlink(good);
}

// A CLIP checkpoint edited to batch_size 0 is refused when a run resumes from it (it divided by zero).
static void test_clip_resume_fields(void) {
    char out[128], path[160];
    snprintf(out, sizeof out, "%s/clip-run", dir);
    snprintf(path, sizeof path, "%s/clip.h5", out);
    CHECK(mkdir(out, 0777) == 0, "cannot create %s", out);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 4 << 20, 0);
    nd_error err = {{0}};
    const char *texts[] = {"a photo of a bag", "a dark sneaker"};
    nd_tokenizer tok;
    CHECK(nd_tokenizer_train(&tok, texts, ND_COUNT(texts), 266, 77, &err), "%s", err.msg);
    nd_clip_train_config cfg = nd_clip_train_defaults();
    cfg.model = nd_clip_config_default(tok.vocab_size);
    nd_clip clip;
    nd_clip_create(&clip, cfg.model, &ctx);
    nd_train_state state = {0};
    CHECK(nd_clip_checkpoint_save(path, &clip, &tok, &cfg, &state, NULL, &ctx, &err), "%s", err.msg);
    int zero = 0;
    edit_attribute(path, "batch_size", H5T_NATIVE_INT, &zero);
    nd_clip_train_result result;
    CHECK(!nd_clip_train(&cfg, out, true, ND_CPU, false, &result, &err), "a resume from batch_size 0 was accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "batch_size") && strstr(err.msg, "from 1 to 65536"),
          "the message must name the file, batch_size and its range: %s", err.msg);
    nd_clip_free(&clip);
    nd_tokenizer_free(&tok);
    nd_ctx_free(&ctx);
    unlink(path);
    rmdir(out);
}

// Runs nanodiff with args; returns its exit status and its stderr in out.
static int run_nanodiff(const char *args, char *out, size_t size) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", nanodiff, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Each bad flag is refused before anything is read (the data path does not exist, so a flag that slipped
// through would fail on the data instead), naming the flag and the value.
static void test_flags(void) {
    static const char *const cases[][3] = {
        {"train --data /nonexistent --lr inf", "--lr = inf", "finite"},
        {"train --data /nonexistent --clip-grad nan", "--clip-grad = nan", "finite"},
        {"train --data /nonexistent --weight-decay nan", "--weight-decay = nan", "finite"},
        {"train --data /nonexistent --batch 4294967297", "--batch = 4294967297", "from 1 to 65536"},
        {"train --data /nonexistent --img-size 2147483652", "--img-size = 2147483652", "from 4 to 1024"},
        {"train --data /nonexistent --T 0", "--T = 0", "from 2 to 100000"},
        {"sample --ckpt /nonexistent.h5 --w nan", "--w = nan", "finite"},
        {"sample --ckpt /nonexistent.h5 --w inf", "--w = inf", "finite"},
        {"sample --ckpt /nonexistent.h5 --eta nan", "--eta = nan", "finite"},
        {"sample --ckpt /nonexistent.h5 --n 0", "--n = 0", "from 1 to 65536"},
        {"eval --ckpt /nonexistent.h5 --w -inf", "--w = -inf", "finite"},
    };
    char out[8192];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = run_nanodiff(cases[i][0], out, sizeof out);
        CHECK(status == 1, "nanodiff %s: exit status %d, want 1", cases[i][0], status);
        CHECK(strstr(out, cases[i][1]) && strstr(out, cases[i][2]),
              "nanodiff %s: the message lacks \"%s\" or "
              "\"%s\":\n%s",
              cases[i][0], cases[i][1], cases[i][2], out);
    }
}

// Sampling a checkpoint whose weights hold a NaN fails with a message and writes nothing (it wrote an all-NaN
// grid and exited 0); so does a NaN in a --w-sweep list.
static void test_sample_nan_checkpoint(void) {
    char good[128], bad[128], png[128], args[512], out[8192];
    snprintf(good, sizeof good, "%s/sample-good.h5", dir);
    snprintf(bad, sizeof bad, "%s/sample-nan.h5", dir);
    snprintf(png, sizeof png, "%s/samples.png", dir);
    write_checkpoint(good);
    copy_file(good, bad);
    float nan_value = NAN;
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "params/out.3.bias", H5P_DEFAULT);
    CHECK(d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, &nan_value) >= 0, "edit failed");
    H5Dclose(d);
    H5Fclose(f);
    snprintf(args, sizeof args, "sample --ckpt %s -o %s --device cpu --n 1 --start noise", bad, png);
    int status = run_nanodiff(args, out, sizeof out);
    CHECK(status == 1 && strstr(out, "not finite") && strstr(out, "out.3.bias"),
          "sampling a NaN checkpoint: status %d, message:\n%s", status, out);
    CHECK(access(png, F_OK) != 0, "sampling a NaN checkpoint wrote %s", png);
    snprintf(args, sizeof args, "sample --ckpt %s -o %s --device cpu --n 1 --start noise --w-sweep 0,nan", good, png);
    status = run_nanodiff(args, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--w-sweep = nan"), "--w-sweep 0,nan: status %d, message:\n%s", status, out);
    CHECK(access(png, F_OK) != 0, "--w-sweep 0,nan wrote %s", png);
    unlink(good);
    unlink(bad);
}

// A global-heap object (where variable-length strings such as model_kind live) given a size past its
// collection: libhdf5 would copy 1 TB from it; the file is refused before it is opened.
static void test_global_heap_size(void) {
    char good[128], bad[128];
    snprintf(good, sizeof good, "%s/heap-good.h5", dir);
    snprintf(bad, sizeof bad, "%s/heap-bad.h5", dir);
    write_checkpoint(good);
    FILE *f = fopen(good, "rb");
    static uint8_t bytes[1 << 20];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    uint8_t *gcol = memmem(bytes, n, "GCOL", 4);
    CHECK(gcol != NULL, "the checkpoint has no global heap");
    if (!gcol) return;
    uint8_t *first = gcol + 16, *second = first + 16 + 24; // "nanodiff-checkpoint": 19 bytes padded to 24
    CHECK(first[0] == 1 && second[0] == 2, "unexpected heap layout");
    second[8 + 5] = 0x01; // its size (8 bytes, little endian) gains 2^40
    f = fopen(bad, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    nd_ddpm_config cfg;
    nd_error err = {{0}};
    CHECK(!nd_checkpoint_read_config(bad, &cfg, &err) && strstr(err.msg, "global heap") && strstr(err.msg, "damaged"),
          "a heap object past its collection: %s", err.msg);
    unlink(good);
    unlink(bad);
}

static void test_limit_check(void) {
    nd_error err;
    CHECK(nd_limit_check(ND_LIMIT_BATCH_SIZE, 128, "batch", &err), "128 is a batch size");
    CHECK(!nd_limit_check(ND_LIMIT_BATCH_SIZE, 1.5, "batch", &err), "1.5 is not an integer batch size");
    CHECK(!nd_limit_check(ND_LIMIT_ANY_INT, 2147483648.0, "x", &err), "2^31 does not fit an int");
    CHECK(!nd_limit_check(ND_LIMIT_ANY_FLOAT, INFINITY, "x", &err), "inf is not finite");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_limits NANODIFF\n");
        return 1;
    }
    nanodiff = argv[1];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_limit_check();
    test_checkpoint_attributes();
    test_clip_resume_fields();
    test_global_heap_size();
    test_flags();
    test_sample_nan_checkpoint();
    rmdir(dir);
    return test_finish("limits");
}
