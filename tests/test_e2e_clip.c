// End to end: nanodiff captions, train-clip and clip-eval on a small Fashion-MNIST subset (written as IDX files):
// a run stopped at step 3 and resumed to step 6 ends bit-identical to one run straight to step 6 (weights, Adam
// moments, loss log); clip-eval prints per-class zero-shot accuracy ending in zero_shot_acc=, and the similarity
// table of HDF5 images with its heat map; the logit scale stays clamped; bad flags and files are named.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

#define N_TRAIN 256
#define N_TEST 100

static char tmp_dir[] = "/tmp/nd_test_e2e_clip_XXXXXX";
static const char *nanodiff;

// Runs nanodiff with args, stdout into out (may be NULL) and stderr into err; returns its exit status.
static int run(const char *args, char *out, size_t out_size, char *err, size_t err_size) {
    char line[4096], out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", tmp_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", tmp_dir);
    snprintf(line, sizeof line, "%s %s > %s 2> %s", nanodiff, args, out_path, err_path);
    int status = system(line);
    const char *paths[2] = {out_path, err_path};
    char *bufs[2] = {out, err};
    size_t sizes[2] = {out_size, err_size};
    for (int k = 0; k < 2; k++) {
        if (!bufs[k]) continue;
        FILE *f = fopen(paths[k], "r");
        size_t n = f ? fread(bufs[k], 1, sizes[k] - 1, f) : 0;
        bufs[k][n] = 0;
        if (f) fclose(f);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_be32(FILE *f, uint32_t v) {
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    fwrite(b, 1, 4, f);
}

// The first n images of a split as plain IDX files in tmp_dir.
static bool write_subset(nd_split split, const char *prefix, int64_t n) {
    nd_dataset ds;
    nd_error err;
    if (!nd_dataset_load_idx_dir(&ds, ND_FASHION_MNIST_DIR, split, 10, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", tmp_dir, prefix);
    FILE *f = fopen(path, "wb");
    write_be32(f, 0x803), write_be32(f, (uint32_t)n), write_be32(f, 28), write_be32(f, 28);
    fwrite(ds.images, 1, (size_t)n * 28 * 28, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", tmp_dir, prefix);
    f = fopen(path, "wb");
    write_be32(f, 0x801), write_be32(f, (uint32_t)n);
    for (int64_t i = 0; i < n; i++) fputc(ds.labels[i], f);
    fclose(f);
    nd_dataset_free(&ds);
    return true;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    s[fread(s, 1, (size_t)n, f)] = 0;
    fclose(f);
    return s;
}

// Loads both checkpoints and compares every parameter, both Adam moments and the step bit for bit.
static void check_same_checkpoint(const char *a, const char *b) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_clip_train_config cfg;
    nd_error err;
    CHECK(nd_clip_checkpoint_read_config(a, &cfg, &err), "%s", err.msg);
    nd_clip clip[2];
    nd_adam opt[2];
    nd_train_state st[2];
    const char *paths[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        nd_clip_create(&clip[k], cfg.model, &ctx);
        nd_adam_init(&opt[k], &clip[k].params, &ctx, nd_adamw_defaults());
        CHECK(nd_clip_checkpoint_load(paths[k], &clip[k], NULL, NULL, &st[k], &opt[k], &ctx, &err), "%s", err.msg);
    }
    size_t bytes = (size_t)clip[0].params.total * sizeof(float);
    CHECK(st[0].step == 6 && st[1].step == 6, "steps %lld and %lld, expected 6", (long long)st[0].step,
          (long long)st[1].step);
    CHECK(memcmp(clip[0].params.data, clip[1].params.data, bytes) == 0, "resumed weights differ");
    CHECK(memcmp(opt[0].m, opt[1].m, bytes) == 0 && memcmp(opt[0].v, opt[1].v, bytes) == 0, "resumed moments differ");
    CHECK(opt[0].step == opt[1].step, "Adam steps %lld and %lld", (long long)opt[0].step, (long long)opt[1].step);
    for (int k = 0; k < 2; k++) nd_adam_free(&opt[k]), nd_clip_free(&clip[k]);
    nd_ctx_free(&ctx);
}

// Ctrl-C: a long run interrupted after its first checkpoint exits 130 with a checkpoint at the step it reached,
// which --resume continues from.
static void check_interrupt(const char *tiny_args) {
    char out_dir[600], ckpt[700], log[700];
    snprintf(out_dir, sizeof out_dir, "%s/stopped", tmp_dir);
    snprintf(ckpt, sizeof ckpt, "%s/clip.h5", out_dir);
    snprintf(log, sizeof log, "%s/train.log", tmp_dir);
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "exec %s train-clip --data %s --out %s --max-steps 100000 %s > %s 2>&1", nanodiff,
                 tmp_dir, out_dir, tiny_args, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 600 && stat(ckpt, &st) != 0; i++) // the first epoch's checkpoint
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 130, "interrupted train-clip: status %d", status);
    nd_clip_train_config cfg;
    nd_error err;
    CHECK(nd_clip_checkpoint_read_config(ckpt, &cfg, &err), "%s", err.msg);
    char *text = read_file(log);
    CHECK(text && strstr(text, "trained"), "interrupted run's output: %s", text ? text : "");
    free(text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_e2e_clip path/to/nanodiff\n");
        return 1;
    }
    nanodiff = argv[1];
    if (access(ND_FASHION_MNIST_DIR, R_OK) != 0) {
        fprintf(stderr, "skipped: %s not installed\n", ND_FASHION_MNIST_DIR);
        return ND_TEST_SKIP;
    }
    if (!mkdtemp(tmp_dir) || !write_subset(ND_SPLIT_TRAIN, "train", N_TRAIN) ||
        !write_subset(ND_SPLIT_TEST, "t10k", N_TEST))
        return 1;
    static char out[1 << 16], err[1 << 14], args[2048];
    const char *tiny = "--batch 32 --width 16 --vision-layers 1 --warmup 2 --lr 3e-3 --seed 3 --quiet";

    snprintf(args, sizeof args, "captions --n 5 --data %s", tmp_dir);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "captions: %s", err);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    CHECK(lines == 6 && strstr(out, "caption"), "captions printed %d lines:\n%s", lines, out);

    // straight to step 6, and to step 3 then resumed to 6
    snprintf(args, sizeof args, "train-clip --data %s --out %s/full --max-steps 6 %s", tmp_dir, tmp_dir, tiny);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "train-clip: %s", err);
    CHECK(strstr(out, "trained 6 steps"), "train-clip said: %s", out);
    snprintf(args, sizeof args, "train-clip --data %s --out %s/half --max-steps 3 %s", tmp_dir, tmp_dir, tiny);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "train-clip to step 3: %s", err);
    snprintf(args, sizeof args, "train-clip --data %s --out %s/half --max-steps 6 --resume %s", tmp_dir, tmp_dir, tiny);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "train-clip --resume: %s", err);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/full/clip.h5", tmp_dir);
    snprintf(b, sizeof b, "%s/half/clip.h5", tmp_dir);
    check_same_checkpoint(a, b);
    snprintf(a, sizeof a, "%s/full/loss.csv", tmp_dir);
    snprintf(b, sizeof b, "%s/half/loss.csv", tmp_dir);
    char *la = read_file(a), *lb = read_file(b);
    CHECK(la && lb && strcmp(la, lb) == 0, "loss logs differ:\n%s\nand\n%s", la ? la : "", lb ? lb : "");
    int rows = 0;
    for (char *line = la ? strchr(la, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n')) {
        long long step, epoch;
        double loss, scale;
        rows += sscanf(line + 1, "%lld,%lld,%lf,%lf", &step, &epoch, &loss, &scale) == 4 && isfinite(loss) &&
                scale >= 0 && scale <= ND_CLIP_LOGIT_SCALE_MAX;
    }
    CHECK(rows == 6, "%d well-formed loss rows with the logit scale in [0, ln 100], expected 6", rows);
    free(la), free(lb);
    // resumed once more with nothing left to do: it says so (no "loss nan")
    snprintf(args, sizeof args, "train-clip --data %s --out %s/half --max-steps 6 --resume %s", tmp_dir, tmp_dir, tiny);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0 && strstr(out, "nothing left to train") &&
              strstr(out, "6 steps") && !strstr(out, "nan"),
          "train-clip resumed at its end said: %s%s", out, err);

    snprintf(args, sizeof args, "info --ckpt %s/full/clip.h5", tmp_dir);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0 && strstr(out, "CLIP trained on") &&
              strstr(out, "6 steps") && strstr(out, "context 77"),
          "info: %s%s", out, err);

    // zero-shot
    snprintf(args, sizeof args, "clip-eval --ckpt %s/full/clip.h5 --data %s", tmp_dir, tmp_dir);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "clip-eval: %s", err);
    char *last = out + strlen(out);
    while (last > out && last[-1] == '\n') *--last = 0;
    while (last > out && last[-1] != '\n') last--;
    double acc = -1;
    CHECK(sscanf(last, "zero_shot_acc=%lf", &acc) == 1 && acc >= 0 && acc <= 1, "last line \"%s\"", last);
    CHECK(strstr(out, "a photo of an ankle boot"), "no per-class line for the ankle boot:\n%s", out);

    // similarity table of three images against three prompts, and the heat map beside them
    nd_error e;
    float images[3 * 16 * 16];
    for (int i = 0; i < 3 * 16 * 16; i++) images[i] = (float)((i * 37) % 101) / 100.0f;
    char h5[600];
    snprintf(h5, sizeof h5, "%s/images.h5", tmp_dir);
    CHECK(nd_samples_write_hdf5(h5, images, 3, 1, 16, 16, NULL, &e), "%s", e.msg);
    snprintf(args, sizeof args,
             "clip-eval --ckpt %s/full/clip.h5 --images %s --prompts \"a bag;a dark sneaker;a coat\"", tmp_dir, h5);
    CHECK(run(args, out, sizeof out, err, sizeof err) == 0, "clip-eval --images: %s", err);
    CHECK(strstr(out, "[2] a coat") && strstr(out, "image 2") && strstr(out, "best ["), "table:\n%s", out);
    snprintf(a, sizeof a, "%s/images-similarity.png", tmp_dir);
    struct stat st;
    CHECK(stat(a, &st) == 0 && st.st_size > 0, "no heat map %s", a);

    check_interrupt(tiny);

    // errors name the flag or the file
    snprintf(args, sizeof args, "train-clip --data %s --out %s/bad --batch 1", tmp_dir, tmp_dir);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "--batch"), "--batch 1: %s", err);
    CHECK(run("train-clip --epochs x", NULL, 0, err, sizeof err) == 1 && strstr(err, "--epochs"), "--epochs x: %s",
          err);
    snprintf(args, sizeof args, "clip-eval --ckpt %s/missing.h5", tmp_dir);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "missing.h5"), "missing checkpoint: %s", err);
    snprintf(args, sizeof args, "clip-eval --ckpt %s", h5);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "images.h5") && strstr(err, "not a CLIP checkpoint"),
          "a non-CLIP file: %s", err);
    snprintf(args, sizeof args, "clip-eval --ckpt %s/full/clip.h5 --images %s", tmp_dir, h5);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "--prompts"), "--images alone: %s", err);
    snprintf(args, sizeof args, "train-clip --data %s/nowhere --out %s/bad2", tmp_dir, tmp_dir);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "nowhere"), "missing data: %s", err);
    snprintf(args, sizeof args, "train-clip --data %s --out %s/fresh --resume", tmp_dir, tmp_dir);
    CHECK(run(args, NULL, 0, err, sizeof err) == 1 && strstr(err, "clip.h5"), "resume without a checkpoint: %s", err);

    snprintf(args, sizeof args, "rm -rf %s", tmp_dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
    return test_finish("e2e_clip");
}
