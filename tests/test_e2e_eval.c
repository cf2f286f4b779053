// End to end: the evaluation classifier trained by nanodiff on 16x16 Fashion-MNIST in [-1, 1] with random flips
// (as the course's models learn) reaches 90% test accuracy and is cached; reloaded from the cache it scores the
// same. Real train-split images standing in for samples (half of them mirrored, as a model trained with flips
// draws them) score >= 90% with a Fréchet distance near the real-vs-real floor, and >= 88% when all are
// mirrored (Fashion-MNIST's shoes all point left: a classifier that never saw one pointing right calls most of
// them something else); uniform noise scores near chance with a distance far above it. The stand-ins' high-
// frequency energy matches the reference images', noise's that of white noise. The eval and sample commands run
// on a small random checkpoint and write their files (eval with its progress line and the high-frequency
// energies in its JSON); their errors name the file or flag. scripts/guidance_sweep.sh collects an eval per w
// into sweep.csv. A damaged cache file is retrained with a note.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "eval.h"

#define SIZE 16
#define PER_CLASS 100

static char tmp_dir[] = "/tmp/nd_test_e2e_eval_XXXXXX";

static nd_eval_setup setup_16(FILE *log) {
    nd_eval_setup s = {.data = "fashion-mnist",
                       .img_ch = 1,
                       .img_size = SIZE,
                       .unit_range = false,
                       .random_flip = true,
                       .classes = 10,
                       .cache_dir = tmp_dir,
                       .train = nd_eval_train_defaults(),
                       .log = log};
    s.train.progress = false;
    return s;
}

// The last PER_CLASS train-split images of each class (in [-1, 1]), class by class: real images from outside the
// test split that the floor and the reference are cut from, as a model's samples are.
static void real_images(float *images, int32_t *labels, bool all_mirrored) {
    nd_dataset train;
    nd_error err;
    if (!nd_dataset_load(&train, "fashion-mnist", ND_SPLIT_TRAIN, &err) ||
        !nd_dataset_resize(&train, SIZE, SIZE, &err)) {
        CHECK(false, "loading the train split: %s", err.msg);
        return;
    }
    int filled[10] = {0};
    for (int64_t i = train.n - 1; i >= 0; i--) {
        int k = train.labels[i];
        if (filled[k] == PER_CLASS) continue;
        int at = k * PER_CLASS + filled[k]++;
        nd_dataset_sample(images + (int64_t)at * SIZE * SIZE, &train, i, all_mirrored || at % 2 == 1, false);
        labels[at] = k;
    }
    nd_dataset_free(&train);
}

// Runs the command with stderr into tmp_dir/stderr.txt; returns its exit status.
static int run(const char *command, char *err_text, size_t size) {
    char line[4096], path[600];
    snprintf(path, sizeof path, "%s/stderr.txt", tmp_dir);
    snprintf(line, sizeof line, "%s > /dev/null 2> %s", command, path);
    int status = system(line);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(err_text, 1, size - 1, f) : 0;
    err_text[n] = '\0';
    if (f) fclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A dli-unet of the course's shape with narrow channels and random weights, saved as a checkpoint.
static void write_checkpoint(const char *path, int classes, const char *data) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 1);
    nd_ddpm_config cfg = nd_ddpm_defaults();
    if (data) snprintf(cfg.data, sizeof cfg.data, "%s", data);
    cfg.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, SIZE, classes);
    cfg.model.down_chs[0] = 16, cfg.model.down_chs[1] = 16, cfg.model.down_chs[2] = 32;
    cfg.model.small_groups = 4, cfg.model.big_groups = 8;
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_error err;
    CHECK(nd_checkpoint_save(path, &model, &cfg, NULL, NULL, NULL, &ctx, &err), "saving %s: %s", path, err.msg);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
}

static void test_command(const char *nanodiff) {
    char ckpt[600], uncond[600], json[600], command[3000], err_text[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", tmp_dir);
    snprintf(uncond, sizeof uncond, "%s/uncond.h5", tmp_dir);
    snprintf(json, sizeof json, "%s/eval.json", tmp_dir);
    write_checkpoint(ckpt, 10, NULL);
    write_checkpoint(uncond, 0, NULL);
    snprintf(command, sizeof command,
             "%s eval --ckpt %s --n 3 --sampler ddim --steps 2 --cache %s --json %s "
             "--device cpu",
             nanodiff, ckpt, tmp_dir, json);
    int rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 0, "eval exited with %d: %s", rc, err_text);
    CHECK(!strstr(err_text, "training"), "the cached classifier was not used: %s", err_text);
    CHECK(strstr(err_text, "eval step 2/2") && strstr(err_text, "img/s"), "no progress line: %s", err_text);
    FILE *f = fopen(json, "r");
    char text[8192] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    CHECK(strstr(text, "\"fd_floor\"") && strstr(text, "\"ankle boot\"") && strstr(text, "\"per_class\": 3"),
          "JSON: %s", text);
    // the high-frequency energies: shares in [0, 1] (a null, for a non-finite value, fails to parse)
    const char *hf_keys[] = {"\"hf_energy\": ", "\"hf_energy_real\": ", "\"hf_energy_ratio\": "};
    for (int k = 0; k < 3; k++) {
        const char *at = strstr(text, hf_keys[k]);
        char *end = NULL;
        double v = at ? strtod(at + strlen(hf_keys[k]), &end) : NAN;
        CHECK(at && end != at + strlen(hf_keys[k]) && isfinite(v) && v >= 0.0 && (k == 2 || v <= 1.0), "JSON %s%g: %s",
              hf_keys[k], v, text);
    }
    // Heun's steps cost two model calls but the last; the JSON and the table say so
    snprintf(command, sizeof command,
             "%s eval --ckpt %s --n 2 --sampler heun --steps 2 --spacing leading --clip-x0 "
             "--cache %s --json %s --device cpu",
             nanodiff, ckpt, tmp_dir, json);
    rc = run(command, err_text, sizeof err_text);
    f = fopen(json, "r");
    n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    CHECK(rc == 0 && strstr(text, "\"sampler\": \"heun\"") && strstr(text, "\"model_calls\": 3") &&
              strstr(text, "\"spacing\": \"leading\"") && strstr(text, "\"clip_x0\": true"),
          "heun JSON (%d): %s", rc, text);
    // --spacing auto (the default) gives DPM-Solver++ trailing steps
    snprintf(command, sizeof command,
             "%s eval --ckpt %s --n 2 --sampler dpm-solver++ --steps 3 --cache %s --json %s "
             "--device cpu",
             nanodiff, ckpt, tmp_dir, json);
    rc = run(command, err_text, sizeof err_text);
    f = fopen(json, "r");
    n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = '\0';
    if (f) fclose(f);
    CHECK(rc == 0 && strstr(text, "\"spacing\": \"trailing\"") && strstr(text, "\"model_calls\": 3"),
          "dpm-solver++ JSON (%d): %s", rc, text);

    snprintf(command, sizeof command, "%s eval --ckpt %s --cache %s --device cpu", nanodiff, uncond, tmp_dir);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, uncond) && strstr(err_text, "unconditional"), "unconditional: %d %s", rc,
          err_text);
    snprintf(command, sizeof command, "%s eval --ckpt %s/missing.h5 --device cpu", nanodiff, tmp_dir);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "missing.h5"), "missing checkpoint: %d %s", rc, err_text);
    snprintf(command, sizeof command, "%s eval --device cpu", nanodiff);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "--ckpt"), "no --ckpt: %d %s", rc, err_text);

    // --start: a bad choice, and a matched start whose training data is gone (auto falls back, with a note)
    snprintf(command, sizeof command, "%s eval --ckpt %s --start sideways --device cpu", nanodiff, ckpt);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "--start") && strstr(err_text, "sideways"), "bad --start: %d %s", rc, err_text);
    char moved[600], gone[700];
    snprintf(moved, sizeof moved, "%s/moved.h5", tmp_dir);
    snprintf(gone, sizeof gone, "%s/no-such-data", tmp_dir);
    write_checkpoint(moved, 10, gone);
    snprintf(command, sizeof command,
             "%s eval --ckpt %s --data fashion-mnist --n 2 --sampler ddim --steps 2 "
             "--start matched --cache %s --device cpu",
             nanodiff, moved, tmp_dir);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "--start matched") && strstr(err_text, gone), "matched without data: %d %s", rc,
          err_text);
    snprintf(command, sizeof command,
             "%s eval --ckpt %s --data fashion-mnist --n 2 --sampler ddim --steps 2 "
             "--cache %s --device cpu",
             nanodiff, moved, tmp_dir);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 0 && strstr(err_text, "note") && strstr(err_text, "N(0, I)") && strstr(err_text, gone),
          "auto without data: %d %s", rc, err_text);
}

// nanodiff sample on the small random checkpoint: the PNG grid, the strip and the HDF5 of raw samples with
// their labels (every class n times, or the one class asked for by name), a w sweep, and bad flags.
static void test_sample_command(const char *nanodiff) {
    char ckpt[600], png[600], strip[600], h5[600], command[3000], err_text[4096];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", tmp_dir);
    snprintf(png, sizeof png, "%s/grid.png", tmp_dir);
    snprintf(strip, sizeof strip, "%s/strip.png", tmp_dir);
    snprintf(h5, sizeof h5, "%s/samples.h5", tmp_dir);
    snprintf(command, sizeof command,
             "%s sample --ckpt %s --n 2 --sampler ddim --steps 3 --start noise -o %s "
             "--strip %s --h5 %s --device cpu",
             nanodiff, ckpt, png, strip, h5);
    int rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 0 && access(png, R_OK) == 0 && access(strip, R_OK) == 0, "sample: %d %s", rc, err_text);
    nd_dataset ds;
    nd_error err;
    bool ok = nd_dataset_load_hdf5(&ds, h5, &err);
    CHECK(ok, "reading the samples back: %s", ok ? "" : err.msg);
    if (ok) {
        int per_class[10] = {0}, in_range = 0;
        for (int64_t i = 0; i < ds.n; i++) per_class[ds.labels[i] % 10]++;
        for (int64_t i = 0; i < ds.n * SIZE * SIZE; i++)
            in_range += ds.images_f32[i] >= 0.0f && ds.images_f32[i] <= 1.0f;
        CHECK(ds.n == 20 && ds.h == SIZE && per_class[0] == 2 && per_class[9] == 2 && in_range == 20 * SIZE * SIZE,
              "samples file: %lld images of %dx%d, class 0 x%d, class 9 x%d", (long long)ds.n, ds.h, ds.w, per_class[0],
              per_class[9]);
        nd_dataset_free(&ds);
    }
    snprintf(command, sizeof command,
             "%s sample --ckpt %s --class \"ankle boot\" --n 3 --sampler ddim --steps 2 "
             "--start noise -o %s --h5 %s --device cpu",
             nanodiff, ckpt, png, h5);
    rc = run(command, err_text, sizeof err_text);
    ok = rc == 0 && nd_dataset_load_hdf5(&ds, h5, &err);
    CHECK(ok && ds.n == 3 && ds.labels[0] == 9 && ds.labels[2] == 9, "--class \"ankle boot\": %d %s", rc, err_text);
    if (ok) nd_dataset_free(&ds);
    snprintf(command, sizeof command,
             "%s sample --ckpt %s --w-sweep=-1,0,2 --sampler ddim --steps 2 --start noise "
             "-o %s --device cpu",
             nanodiff, ckpt, png);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 0 && strstr(err_text, "sampled 30 images"), "w sweep: %d %s", rc, err_text);

    // every few-step sampler, guided, with another spacing and x0 clipping
    const char *samplers[] = {"euler", "heun", "dpm-solver++"};
    for (int k = 0; k < 3; k++) {
        snprintf(command, sizeof command,
                 "%s sample --ckpt %s --n 1 --sampler %s --steps 3 --spacing trailing "
                 "--clip-x0 -o %s --device cpu",
                 nanodiff, ckpt, samplers[k], png);
        rc = run(command, err_text, sizeof err_text);
        char said[64];
        snprintf(said, sizeof said, "sampled 10 images with %s", samplers[k]);
        CHECK(rc == 0 && strstr(err_text, said), "--sampler %s: %d %s", samplers[k], rc, err_text);
    }

    const char *bad[][2] = {{"--start upward", "upward"},
                            {"--class hat", "hat"},
                            {"--sampler euler-a", "euler-a"},
                            {"--steps 0", "--steps"},
                            {"--spacing even", "--spacing"}};
    for (int k = 0; k < 5; k++) {
        snprintf(command, sizeof command, "%s sample --ckpt %s %s -o %s --device cpu", nanodiff, ckpt, bad[k][0], png);
        rc = run(command, err_text, sizeof err_text);
        CHECK(rc == 1 && strstr(err_text, bad[k][1]), "%s: %d %s", bad[k][0], rc, err_text);
    }
}

// scripts/guidance_sweep.sh on the small checkpoint, the classifier cached: an eval run per w, their accuracy
// and FD collected into sweep.csv (a row per w, in order), and the plot where gnuplot is installed.
static void test_guidance_sweep(const char *nanodiff, const char *source_dir) {
    char command[3000], err_text[4096], csv[600], png[600];
    snprintf(command, sizeof command,
             "NANODIFF=%s bash %s/scripts/guidance_sweep.sh %s/model.h5 --n 2 --sampler ddim --steps 2 --w 0,1.5 "
             "--out %s -- --cache %s --device cpu",
             nanodiff, source_dir, tmp_dir, tmp_dir, tmp_dir);
    int rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 0, "guidance_sweep.sh exited with %d: %s", rc, err_text);
    snprintf(csv, sizeof csv, "%s/sweep.csv", tmp_dir);
    FILE *f = fopen(csv, "r");
    char line[3][256] = {"", "", ""};
    int rows = 0;
    while (f && rows < 3 && fgets(line[rows], sizeof line[rows], f)) rows++;
    bool more = f && fgetc(f) != EOF;
    if (f) fclose(f);
    double w[2] = {NAN, NAN}, accuracy[2] = {NAN, NAN}, fd[2] = {NAN, NAN};
    for (int r = 0; r < 2; r++) sscanf(line[r + 1], "%lf,%lf,%*[^,],%lf", &w[r], &accuracy[r], &fd[r]);
    CHECK(rows == 3 && !more && strncmp(line[0], "w,accuracy,confidence,fd,fd_floor,", 34) == 0 && w[0] == 0.0 &&
              w[1] == 1.5 && accuracy[0] >= 0.0 && accuracy[1] <= 1.0 && fd[0] > 0.0 && fd[1] > 0.0 &&
              strstr(line[1], ",ddim,2,2,"),
          "sweep.csv (%d rows):\n%s%s%s", rows, line[0], line[1], line[2]);
    snprintf(png, sizeof png, "%s/sweep.png", tmp_dir);
    if (system("command -v gnuplot > /dev/null") == 0)
        CHECK(access(png, R_OK) == 0, "gnuplot is installed but no %s", png);
    // a bad weight is refused before eval runs
    snprintf(command, sizeof command, "NANODIFF=%s bash %s/scripts/guidance_sweep.sh %s/model.h5 --w 0,x --out %s",
             nanodiff, source_dir, tmp_dir, tmp_dir);
    rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "--w") && strstr(err_text, "\"x\""), "--w 0,x: %d %s", rc, err_text);
}

// Whether two files hold the same bytes.
static bool same_bytes(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    for (int ca = 0, cb = 0; same && ca != EOF; same = ca == cb) ca = fgetc(fa), cb = fgetc(fb);
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

// Sampling takes a checkpoint's EMA weights by default (--no-ema the trained ones); the training options'
// flags are checked before any data is read.
static void test_ema_and_train_flags(const char *nanodiff) {
    char ckpt[600], png[3][600], command[3000], err_text[4096];
    snprintf(ckpt, sizeof ckpt, "%s/ema.h5", tmp_dir);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 1);
    nd_ddpm_config cfg = nd_ddpm_defaults();
    cfg.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, SIZE, 10);
    cfg.model.down_chs[0] = 16, cfg.model.down_chs[1] = 16, cfg.model.down_chs[2] = 32;
    cfg.model.small_groups = 4, cfg.model.big_groups = 8;
    cfg.ema_decay = 0.99f;
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_ema ema;
    nd_ema_init(&ema, &model.params, &ctx, cfg.ema_decay);
    nd_fill(&ctx, model.params.items[0].tensor, 0.5f); // the trained weights move away from their average
    nd_error err;
    CHECK(nd_checkpoint_save(ckpt, &model, &cfg, NULL, NULL, &ema, &ctx, &err), "saving %s: %s", ckpt, err.msg);
    nd_ema_free(&ema);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    const char *choice[3] = {"", "--ema", "--no-ema"};
    for (int k = 0; k < 3; k++) {
        snprintf(png[k], sizeof png[k], "%s/ema%d.png", tmp_dir, k);
        snprintf(command, sizeof command, "%s sample --ckpt %s --n 1 --sampler ddim --steps 2 %s -o %s --device cpu",
                 nanodiff, ckpt, choice[k], png[k]);
        int rc = run(command, err_text, sizeof err_text);
        CHECK(rc == 0, "sample %s: %d %s", choice[k], rc, err_text);
    }
    CHECK(same_bytes(png[0], png[1]) && !same_bytes(png[0], png[2]), "the default must sample the EMA weights");
    snprintf(command, sizeof command, "%s sample --ckpt %s --ema --no-ema -o %s", nanodiff, ckpt, png[0]);
    int rc = run(command, err_text, sizeof err_text);
    CHECK(rc == 1 && strstr(err_text, "--no-ema"), "--ema --no-ema: %d %s", rc, err_text);

    const char *bad[][2] = {{"--zero-snr", "zero-terminal-SNR"},
                            {"--prediction epsilon", "epsilon"},
                            {"--schedule quadratic", "quadratic"},
                            {"--min-snr-gamma -1", "gamma"}};
    for (int k = 0; k < 4; k++) {
        snprintf(command, sizeof command, "%s train %s --out %s/never --device cpu", nanodiff, bad[k][0], tmp_dir);
        rc = run(command, err_text, sizeof err_text);
        CHECK(rc == 1 && strstr(err_text, bad[k][1]), "train %s: %d %s", bad[k][0], rc, err_text);
    }
}

// Removes every file of tmp_dir, then the directory.
static void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", tmp_dir, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
    rmdir(tmp_dir);
}

int main(int argc, char **argv) {
    struct stat st;
    if (stat(ND_FASHION_MNIST_DIR, &st) != 0) {
        printf("e2e.eval: skipped: %s is missing (scripts/install-deps.sh installs it)\n", ND_FASHION_MNIST_DIR);
        return ND_TEST_SKIP;
    }
    if (argc < 3 || !mkdtemp(tmp_dir)) {
        fprintf(stderr, "usage: test_e2e_eval NANODIFF SOURCE_DIR (and a writable /tmp)\n");
        return 1;
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 0);
    nd_eval_setup setup = setup_16(NULL);
    nd_evaluator ev;
    nd_error err;
    double start = nd_seconds();
    bool ok = nd_evaluator_init(&ev, &setup, &ctx, &err);
    CHECK(ok && ev.trained, "training the classifier: %s", ok ? "it was not trained" : err.msg);
    if (!ok) return test_finish("e2e.eval");
    printf("e2e.eval: classifier trained in %.1f s (set up in %.1f s), test accuracy %.2f%%\n", ev.train_seconds,
           nd_seconds() - start, 100.0 * ev.test_accuracy);
    CHECK(ev.test_accuracy >= 0.90, "test accuracy %.4f is below 0.90", ev.test_accuracy);
    CHECK(access(ev.cache_path, R_OK) == 0, "no cache file %s", ev.cache_path);
    CHECK(ev.n_reference == 5000 && ev.n_held == 5000, "halves of %lld and %lld", (long long)ev.n_reference,
          (long long)ev.n_held);

    nd_evaluator cached;
    ok = nd_evaluator_init(&cached, &setup, &ctx, &err);
    CHECK(ok && !cached.trained && cached.test_accuracy == ev.test_accuracy, "from the cache: %s, accuracy %.4f",
          ok ? (cached.trained ? "retrained" : "loaded") : err.msg, ok ? cached.test_accuracy : NAN);
    if (ok) nd_evaluator_free(&cached);

    enum { N = 10 * PER_CLASS };
    static float images[N * SIZE * SIZE];
    static int32_t labels[N];
    nd_eval_floor_stats floor;
    nd_eval_report real, mirrored, noise;
    CHECK(nd_eval_floor(&ev, PER_CLASS, &floor, &err) && floor.images == N && floor.draws == 5, "floor: %s", err.msg);
    real_images(images, labels, true);
    CHECK(nd_eval_images(&ev, &ctx, images, labels, N, &mirrored, &err), "mirrored images: %s", err.msg);
    real_images(images, labels, false);
    CHECK(nd_eval_images(&ev, &ctx, images, labels, N, &real, &err), "real images: %s", err.msg);
    // uniform noise in [-1, 1], asked to be each class in turn
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < N * SIZE * SIZE; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        images[i] = (float)((double)(state >> 11) / 4503599627370496.0 - 1.0);
    }
    CHECK(nd_eval_images(&ev, &ctx, images, labels, N, &noise, &err), "noise: %s", err.msg);
    printf("e2e.eval: floor %.3f (%.3f to %.3f); real stand-ins: accuracy %.2f%%, confidence %.3f, FD %.3f; noise: "
           "accuracy %.2f%%, FD %.1f; all mirrored: accuracy %.2f%%\n",
           floor.mean, floor.min, floor.max, 100.0 * real.accuracy, real.confidence, real.fd, 100.0 * noise.accuracy,
           noise.fd, 100.0 * mirrored.accuracy);
    printf("e2e.eval: high-frequency energy: reference %.4f, real stand-ins %.4f, all mirrored %.4f, noise %.4f\n",
           ev.hf_energy_real, real.hf_energy, mirrored.hf_energy, noise.hf_energy);
    // other real images share the reference's spectrum: means over 1000 and 5000 images of a per-image share
    // that varies by about its own size land within a few percent of one another
    CHECK(ev.hf_energy_real > 0.0 && ev.hf_energy_real < 0.5 && fabs(real.hf_energy / ev.hf_energy_real - 1.0) < 0.15,
          "high-frequency energy: real stand-ins %.4f, reference %.4f", real.hf_energy, ev.hf_energy_real);
    // a mirror image has the same power at mirrored frequencies, which lie at the same radius
    CHECK(fabs(mirrored.hf_energy - real.hf_energy) < 1e-9, "mirroring changed the high-frequency energy: %.12f %.12f",
          mirrored.hf_energy, real.hf_energy);
    // white noise spreads its energy evenly: 207 of the 255 non-constant frequencies of 16x16 lie beyond a
    // quarter of a cycle a pixel (0.812); the mean over 1000 images moves by about 0.001
    CHECK(fabs(noise.hf_energy - 207.0 / 255.0) < 0.01, "noise: high-frequency energy %.4f, want 0.812",
          noise.hf_energy);
    CHECK(real.accuracy >= 0.90, "real images: accuracy %.4f", real.accuracy);
    CHECK(mirrored.accuracy >= 0.88, "mirrored real images: accuracy %.4f (ankle boots %.2f)", mirrored.accuracy,
          nd_eval_class_accuracy(&mirrored, 9));
    // draws of 1000 real images land within about 1.6x of one another (2.6 to 4.1 here), by sampling alone
    CHECK(real.fd < 2.0 * floor.mean, "real images: FD %.3f against a floor of %.3f", real.fd, floor.mean);
    CHECK(noise.accuracy < 0.3, "noise: accuracy %.4f", noise.accuracy);
    CHECK(noise.fd > 20.0 * floor.mean, "noise: FD %.3f against a floor of %.3f", noise.fd, floor.mean);

    test_command(argv[1]);
    test_guidance_sweep(argv[1], argv[2]);
    test_sample_command(argv[1]);
    test_ema_and_train_flags(argv[1]);

    // a damaged cache file: a note, then a new classifier (a few steps suffice to show it is trained and saved)
    FILE *f = fopen(ev.cache_path, "r+b");
    if (f) {
        fputs("damaged", f);
        fclose(f);
    }
    char *notes = NULL;
    size_t notes_size = 0;
    FILE *log = open_memstream(&notes, &notes_size);
    setup = setup_16(log);
    setup.train.max_steps = 3;
    ok = nd_evaluator_init(&cached, &setup, &ctx, &err);
    fclose(log);
    CHECK(ok && cached.trained && strstr(notes, "cannot be used") && strstr(notes, ev.cache_path),
          "damaged cache: %s; notes: %s", ok ? "" : err.msg, notes);
    if (ok) nd_evaluator_free(&cached);
    free(notes);
    nd_evaluator_free(&ev);
    nd_ctx_free(&ctx);
    remove_tmp_dir();
    printf("e2e.eval: %.1f s in all\n", nd_seconds() - start);
    return test_finish("e2e.eval");
}
