// End to end, text to image from the command line on a small synthetic set of Fashion-MNIST's ten classes: a
// tiny CLIP, then a t2i-unet trained on its captions for a few steps (sequence and pooled conditioning); a run
// stopped and resumed ends bit-identical to one run straight through; prompts and a prompts file are sampled
// (every sampler, a negative prompt), two prompts give different samples from the same noise; eval's prompt
// and attribute modes run; the text encoder's cache returns what encoding alone gives; bad flags are refused
// with messages that name the flag or file.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

#define SIZE 16
#define N_IMAGES 80

static char dir[] = "/tmp/nd_test_e2e_t2i_XXXXXX";
static const char *nanodiff;

// Runs nanodiff with args, stdout and stderr into dir/out.txt and dir/err.txt; returns the exit status.
static int run(char *err_text, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *err_text, size_t size, const char *fmt, ...) {
    char args[3000], line[4000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s %s > %s/out.txt 2> %s/err.txt", nanodiff, args, dir, dir);
    int status = system(line);
    snprintf(line, sizeof line, "%s/err.txt", dir);
    FILE *f = fopen(line, "r");
    size_t n = f ? fread(err_text, 1, size - 1, f) : 0;
    err_text[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void message_names(const char *msg, const char *path, int n_words, ...) {
    va_list words;
    va_start(words, n_words);
    test_message_names(msg, path, n_words, words);
    va_end(words);
}

// Ten classes of 16x16 grey images: class k a block whose height, width and brightness depend on k, leaning
// left or right by image, so captions state sizes, tones and facings.
static void write_data(const char *path) {
    float *images = calloc((size_t)N_IMAGES * SIZE * SIZE, sizeof(float));
    int32_t labels[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) {
        int k = i % 10, h = 4 + k, w = 6 + (i / 10) % 5;
        labels[i] = k;
        for (int y = SIZE - h; y < SIZE; y++)
            for (int x = 0; x < w + (y == SIZE - 1 ? 4 : 0) && x < SIZE; x++) {
                int col = (i / 10) % 2 ? SIZE - 1 - x : x;
                images[(i * SIZE + y) * SIZE + col] = 0.3f + 0.06f * (float)k + 0.02f * (float)(i % 3);
            }
    }
    nd_error err;
    if (!nd_samples_write_hdf5(path, images, N_IMAGES, 1, SIZE, SIZE, labels, &err)) fprintf(stderr, "%s\n", err.msg);
    free(images);
}

static bool same_params(const char *a, const char *b) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model ma, mb;
    nd_ddpm_config ca, cb;
    nd_error err;
    bool ok = nd_checkpoint_load_model(a, false, &ma, &ca, &ctx, &err);
    CHECK(ok, "%s", err.msg);
    bool ok_b = ok && nd_checkpoint_load_model(b, false, &mb, &cb, &ctx, &err);
    CHECK(!ok || ok_b, "%s", err.msg);
    bool same = ok_b && ma.params.total == mb.params.total &&
                memcmp(ma.params.data, mb.params.data, (size_t)ma.params.total * sizeof(float)) == 0;
    if (ok) nd_model_free(&ma);
    if (ok_b) nd_model_free(&mb);
    nd_ctx_free(&ctx);
    return same;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    char *buf = calloc(1 << 16, 1);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

// dir/name (samples written by --h5) as a data set.
static bool load_samples(const char *name, nd_dataset *ds) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    nd_error err;
    bool ok = nd_dataset_load_hdf5(ds, path, &err);
    CHECK(ok, "%s", ok ? "" : err.msg);
    return ok;
}

static void test_train_resume(const char *data, const char *clip) {
    char err[4096];
    const char *common = "--model t2i-unet --batch 8 --quiet --seed 3";
    int rc = run(err, sizeof err, "train %s --data %s --clip %s --max-steps 6 --out %s/straight", common, data, clip, dir);
    CHECK(rc == 0, "t2i training failed (%d): %s", rc, err);
    rc = run(err, sizeof err, "train %s --data %s --clip %s --max-steps 3 --out %s/resumed", common, data, clip, dir);
    CHECK(rc == 0, "t2i training (first half) failed (%d): %s", rc, err);
    rc = run(err, sizeof err, "train %s --data %s --max-steps 6 --resume --out %s/resumed", common, data, dir);
    CHECK(rc == 0, "t2i training (resumed) failed (%d): %s", rc, err);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/straight/model.h5", dir);
    snprintf(b, sizeof b, "%s/resumed/model.h5", dir);
    CHECK(same_params(a, b), "a resumed t2i run differs from one run straight through");
    snprintf(a, sizeof a, "%s/straight/loss.csv", dir);
    snprintf(b, sizeof b, "%s/resumed/loss.csv", dir);
    char *la = read_text(a), *lb = read_text(b);
    CHECK(strcmp(la, lb) == 0 && strlen(la) > 20, "the loss logs differ:\n%s\nvs\n%s", la, lb);
    free(la);
    free(lb);
    snprintf(a, sizeof a, "%s/straight/clip.h5", dir);
    CHECK(access(a, R_OK) == 0, "training left no copy of its CLIP beside the checkpoint");
    // the checkpoint names its CLIP by path and content hash
    nd_ddpm_config cfg;
    nd_error e;
    snprintf(a, sizeof a, "%s/straight/model.h5", dir);
    CHECK(nd_checkpoint_read_config(a, &cfg, &e), "%s", e.msg);
    char hash[32];
    CHECK(nd_file_hash(clip, hash, sizeof hash, &e) && strcmp(cfg.clip_hash, hash) == 0 && strcmp(cfg.clip, clip) == 0,
          "the checkpoint records CLIP %s (%s), not %s (%s)", cfg.clip, cfg.clip_hash, clip, hash);
    CHECK(!cfg.text_pooled && cfg.model.c_embed_dim == 16, "sequence conditioning: context width %d, pooled %d",
          cfg.model.c_embed_dim, cfg.text_pooled);
}

static void test_sample(void) {
    char err[4096];
    const char *ckpt_dir = dir;
    int rc = run(err, sizeof err, "sample --ckpt %s/straight/model.h5 --prompt \"a photo of a sneaker\" --n 3 "
                                  "--sampler ddim --steps 5 -o %s/one.png --h5 %s/one.h5", ckpt_dir, dir, dir);
    CHECK(rc == 0, "sampling a prompt failed (%d): %s", rc, err);
    char path[256];
    snprintf(path, sizeof path, "%s/one.png", dir);
    CHECK(access(path, R_OK) == 0, "no grid written");
    snprintf(path, sizeof path, "%s/prompts.txt", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "a photo of a sneaker\n\na dark bag facing left\r\n");
    fclose(f);
    const char *samplers[] = {"ddpm",           "ddpm-posterior", "ddpm-clamped",           "ddim --clamp-x0",
                              "euler --steps 4", "heun --steps 3",  "dpm-solver++ --steps 4", "ddim --clip-x0"};
    for (int s = 0; s < ND_COUNT(samplers); s++) {
        rc = run(err, sizeof err, "sample --ckpt %s/straight/model.h5 --prompts-file %s --n 2 --sampler %s "
                                  "--negative-prompt \"a trouser\" --guidance-scale 4 -o %s/file.png --h5 %s/file.h5",
                 dir, path, samplers[s], dir, dir);
        CHECK(rc == 0, "sampling a prompts file with %s failed (%d): %s", samplers[s], rc, err);
    }
    nd_dataset ds;
    if (load_samples("file.h5", &ds)) {
        CHECK(ds.n == 4 && ds.labels && ds.labels[0] == 0 && ds.labels[1] == 0 && ds.labels[2] == 1 && ds.labels[3] == 1,
              "a prompts file of two prompts gave %lld samples labelled %d %d %d %d", (long long)ds.n,
              ds.labels ? ds.labels[0] : -1, ds.labels ? ds.labels[1] : -1, ds.labels ? ds.labels[2] : -1,
              ds.labels ? ds.labels[3] : -1);
        nd_dataset_free(&ds);
    }
    // the prompt matters: the same seed and noise, two prompts, different images
    rc = run(err, sizeof err, "sample --ckpt %s/straight/model.h5 --prompt \"a photo of a bag\" --n 3 --sampler ddim "
                              "--steps 5 -o %s/two.png --h5 %s/two.h5", dir, dir, dir);
    CHECK(rc == 0, "sampling failed (%d): %s", rc, err);
    nd_dataset a, b;
    if (load_samples("one.h5", &a)) {
        if (load_samples("two.h5", &b)) {
            float d = 0.0f;
            for (int64_t i = 0; i < a.n * SIZE * SIZE; i++) d = fmaxf(d, fabsf(a.images_f32[i] - b.images_f32[i]));
            CHECK(d > 1e-3f, "\"a photo of a sneaker\" and \"a photo of a bag\" gave the same samples (%g)", d);
            nd_dataset_free(&b);
        }
        nd_dataset_free(&a);
    }
}

static void test_pooled(const char *data, const char *clip) {
    char err[4096];
    // the pooled model also predicts v on the cosine schedule: prompts reach every prediction type
    int rc = run(err, sizeof err, "train --model t2i-unet --cond pooled --prediction v --schedule cosine --batch 8 "
                                  "--max-steps 2 --quiet --data %s --clip %s --out %s/pooled", data, clip, dir);
    CHECK(rc == 0, "pooled t2i training failed (%d): %s", rc, err);
    char path[256];
    snprintf(path, sizeof path, "%s/pooled/model.h5", dir);
    nd_ddpm_config cfg;
    nd_error e;
    CHECK(nd_checkpoint_read_config(path, &cfg, &e) && cfg.text_pooled && cfg.model.c_embed_dim == 16 &&
              cfg.prediction == ND_PREDICT_V,
          "pooled: text_pooled %d, context width %d, prediction %s", cfg.text_pooled, cfg.model.c_embed_dim,
          nd_prediction_name(cfg.prediction));
    rc = run(err, sizeof err, "sample --ckpt %s --prompt \"a bag\" --n 2 --sampler dpm-solver++ --steps 3 "
                              "-o %s/pooled.png", path, dir);
    CHECK(rc == 0, "sampling the pooled model failed (%d): %s", rc, err);
}

static void test_eval_modes(void) {
    char err[4096], path[256];
    int rc = run(err, sizeof err, "eval --ckpt %s/straight/model.h5 --attributes --n 2 --sampler ddim --steps 3", dir);
    CHECK(rc == 0, "eval --attributes failed (%d): %s", rc, err);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *out = read_text(path);
    CHECK(strstr(out, "brightness_ok=") && strstr(out, "facing_acc="), "eval --attributes printed:\n%s", out);
    free(out);
}

// Features through the cache equal features encoded alone, in any order and with repeats.
static void test_cache(const char *clip) {
    nd_text_encoder *te;
    nd_error err;
    if (!nd_text_encoder_open(&te, clip, NULL, false, ND_CPU, &err)) {
        CHECK(false, "%s", err.msg);
        return;
    }
    int64_t row = (int64_t)nd_text_encoder_tokens(te) * nd_text_encoder_width(te);
    const char *mixed[4] = {"a dark bag", "", "a dark bag", "a sandal facing right"};
    float *together = malloc((size_t)(4 * row) * sizeof(float)), *alone = malloc((size_t)row * sizeof(float));
    nd_text_encoder_features(te, mixed, 4, together);
    CHECK(nd_text_encoder_cached(te) == 3, "%lld prompts cached for 3 distinct", (long long)nd_text_encoder_cached(te));
    for (int i = 0; i < 4; i++) {
        nd_text_encoder *fresh;
        if (!nd_text_encoder_open(&fresh, clip, nd_text_encoder_hash(te), false, ND_CPU, &err)) break;
        nd_text_encoder_features(fresh, &mixed[i], 1, alone);
        CHECK(memcmp(alone, together + i * row, (size_t)row * sizeof(float)) == 0,
              "prompt %d through the cache differs from its features encoded alone", i);
        nd_text_encoder_close(fresh);
    }
    CHECK(memcmp(together, together + 2 * row, (size_t)row * sizeof(float)) != 0 ||
              memcmp(together, together + row, (size_t)row * sizeof(float)) != 0,
          "different prompts gave the same features");
    free(together);
    free(alone);
    nd_text_encoder_close(te);
    CHECK(!nd_text_encoder_open(&te, clip, "fnv1a64:0000000000000000", false, ND_CPU, &err),
          "a CLIP of another hash was accepted");
    message_names(err.msg, clip, 2, "not the one", "hash");
}

static void test_bad_flags(const char *data, const char *clip) {
    char err[4096], class_ckpt[256], t2i[256];
    snprintf(class_ckpt, sizeof class_ckpt, "%s/class.h5", dir);
    snprintf(t2i, sizeof t2i, "%s/straight/model.h5", dir);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model model;
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, SIZE, 10);
    mc.down_chs[0] = 8, mc.down_chs[1] = 8, mc.down_chs[2] = 16, mc.small_groups = 4, mc.big_groups = 8;
    nd_model_create(&model, mc, &ctx);
    nd_error e;
    CHECK(nd_checkpoint_save(class_ckpt, &model, NULL, NULL, NULL, NULL, &ctx, &e), "%s", e.msg);
    nd_model_free(&model);
    nd_ctx_free(&ctx);

    CHECK(run(err, sizeof err, "sample --ckpt %s --prompt \"a bag\"", class_ckpt) == 1, "a prompt on a class model ran");
    message_names(err, class_ckpt, 3, "--prompt", "text-to-image", "--class");
    CHECK(run(err, sizeof err, "sample --ckpt %s --class 3", t2i) == 1, "a class on a t2i model ran");
    message_names(err, t2i, 2, "--class", "--prompt");
    CHECK(run(err, sizeof err, "sample --ckpt %s --n 2", t2i) == 1, "a t2i model sampled without a prompt");
    message_names(err, t2i, 2, "--prompt", "--prompts-file");
    CHECK(run(err, sizeof err, "sample --ckpt %s --prompts-file %s/none.txt", t2i, dir) == 1, "a missing file ran");
    message_names(err, "none.txt", 1, "--prompts-file");
    CHECK(run(err, sizeof err, "train --model t2i-unet --data %s --out %s/x", data, dir) == 1, "t2i without --clip ran");
    message_names(err, "--clip", 1, "train-clip");
    CHECK(run(err, sizeof err, "train --model t2i-unet --data %s --clip %s/nope.h5 --out %s/x", data, dir, dir) == 1,
          "a missing CLIP file was accepted");
    message_names(err, "nope.h5", 2, "--clip", "no such file");
    CHECK(run(err, sizeof err, "train --model t2i-unet --data %s --clip %s --out %s/x", data, class_ckpt, dir) == 1,
          "a class checkpoint was taken for a CLIP");
    message_names(err, class_ckpt, 1, "not a CLIP checkpoint");
    CHECK(run(err, sizeof err, "train --model dli-unet --data %s --clip %s --out %s/x", data, clip, dir) == 1,
          "--clip on a class model ran");
    message_names(err, "--clip", 1, "t2i-unet");
    CHECK(run(err, sizeof err, "train --model t2i-unet --cond middle --data %s --clip %s --out %s/x", data, clip, dir) == 1,
          "a bad --cond ran");
    message_names(err, "--cond", 1, "middle");
    CHECK(run(err, sizeof err, "eval --ckpt %s --attributes", class_ckpt) == 1, "--attributes on a class model ran");
    message_names(err, class_ckpt, 1, "text-to-image");
    // the CLIP gone from both places: sampling says where it looked
    char moved[300], beside[300];
    snprintf(beside, sizeof beside, "%s/straight/clip.h5", dir);
    snprintf(moved, sizeof moved, "%s.away", clip);
    rename(clip, moved);
    char beside_away[320];
    snprintf(beside_away, sizeof beside_away, "%s.away", beside);
    rename(beside, beside_away);
    CHECK(run(err, sizeof err, "sample --ckpt %s --prompt \"a bag\"", t2i) == 1, "sampling without its CLIP ran");
    message_names(err, t2i, 3, "CLIP", "missing", "--clip");
    CHECK(run(err, sizeof err, "sample --ckpt %s --prompt \"a bag\" --clip %s", t2i, class_ckpt) == 1,
          "another file taken as the CLIP");
    message_names(err, class_ckpt, 1, "hash");
    rename(moved, clip);
    rename(beside_away, beside);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_e2e_t2i PATH/TO/nanodiff\n");
        return 2;
    }
    nanodiff = argv[1];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char data[128], clip[160], err[4096];
    snprintf(data, sizeof data, "%s/ten.h5", dir);
    snprintf(clip, sizeof clip, "%s/clip/clip.h5", dir);
    write_data(data);
    int rc = run(err, sizeof err, "train-clip --data %s --max-steps 3 --batch 16 --width 16 --vision-layers 1 "
                                  "--context 16 --vocab 300 --quiet --out %s/clip", data, dir);
    CHECK(rc == 0, "training the tiny CLIP failed (%d): %s", rc, err);
    if (rc == 0) {
        test_train_resume(data, clip);
        test_sample();
        test_pooled(data, clip);
        test_eval_modes();
        test_cache(clip);
        test_bad_flags(data, clip);
    }
    char cleanup[200];
    snprintf(cleanup, sizeof cleanup, "rm -rf %s", dir);
    if (nd_test_failed == 0 && system(cleanup) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("e2e_t2i");
}
