// The nanodiff train command stopped from outside and pointed at the wrong places: SIGTERM and a double
// Ctrl-C finish the step, save and exit 143 / 130; loss.csv grows line by line while the run goes on; stale
// temporary checkpoints of killed runs are removed; a folder holding a run needs --resume or --force; a
// resume refuses flags that contradict its checkpoint; an --out longer than the path buffers is refused;
// --preset's defaults and refusals.
//   test_signals NANODIFF
#include <hdf5.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

static char dir[] = "/tmp/nd_test_signals_XXXXXX";
static const char *nanodiff;
static char data[128], run[128], ckpt[160], csv[160];

static void write_data(void) {
    float images[64 * 64];
    int32_t labels[64];
    for (int i = 0; i < 64; i++) {
        labels[i] = i % 2;
        for (int p = 0; p < 64; p++) images[i * 64 + p] = (p < 32) == (i % 2) ? 0.9f : 0.1f;
    }
    nd_error err;
    CHECK(nd_samples_write_hdf5(data, images, 64, 1, 8, 8, labels, &err), "data: %s", err.msg);
}

// Starts `nanodiff train` on the small set into run, with extra flags; returns its pid.
static pid_t start_train(const char *extra) {
    pid_t pid = fork();
    if (pid == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "exec %s train --data %s --img-size 8 --batch 4 --T 20 --epochs 100000 --out %s "
                 "--quiet --device cpu %s >/dev/null 2>&1",
                 nanodiff, data, run, extra);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int csv_rows(void) {
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    int rows = -1; // the header
    for (int c; (c = fgetc(f)) != EOF;) rows += c == '\n';
    fclose(f);
    return rows;
}

// Waits (up to a minute) until loss.csv holds more than `rows` rows: it is written line by line.
static bool wait_rows(int rows) {
    for (int i = 0; i < 6000; i++) {
        if (csv_rows() > rows) return true;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    return false;
}

// Attribute `name` of `group` ("/" for the root) in the HDF5 file at path, read as mem_type into out; false
// (out untouched) when the file, group or attribute is missing.
static bool h5_attr(const char *path, const char *group, const char *name, hid_t mem_type, void *out) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = f >= 0 ? H5Gopen2(f, group, H5P_DEFAULT) : -1;
    hid_t a = g >= 0 ? H5Aopen(g, name, H5P_DEFAULT) : -1;
    bool ok = a >= 0 && H5Aread(a, mem_type, out) >= 0;
    if (a >= 0) H5Aclose(a);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    return ok;
}

static int64_t ckpt_step(void) {
    int64_t step = -1;
    h5_attr(ckpt, "/", "step", H5T_NATIVE_INT64, &step);
    return step;
}

// Sends sig (twice when twice) once the run has logged a few steps; returns the exit status.
static int stop_with(pid_t pid, int sig, bool twice, int after_rows) {
    bool logging = wait_rows(after_rows);
    CHECK(logging, "loss.csv did not grow while the run went on (rows: %d)", csv_rows());
    kill(pid, sig);
    if (twice) {
        nanosleep(&(struct timespec){0, 20000000}, NULL);
        kill(pid, sig);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static void test_stop_signals(void) {
    char stale[200];
    snprintf(stale, sizeof stale, "%s/model.h5.tmp.99999999", run); // above any pid_max: its writer is gone
    mkdir(run, 0755);
    FILE *f = fopen(stale, "w");
    fclose(f);
    int status = stop_with(start_train(""), SIGTERM, false, 3);
    CHECK(status == 143, "SIGTERM: exit status %d, want 143 (1000 + n: killed by signal n)", status);
    int64_t step = ckpt_step();
    CHECK(step > 0 && step == csv_rows(), "SIGTERM: checkpoint at step %lld, loss.csv holds %d rows", (long long)step,
          csv_rows());
    CHECK(access(stale, F_OK) != 0, "the stale temporary checkpoint %s was left", stale);

    status = stop_with(start_train("--resume"), SIGINT, true, (int)step + 3);
    CHECK(status == 130, "two Ctrl-C: exit status %d, want 130", status);
    int64_t resumed = ckpt_step();
    CHECK(resumed > step && resumed == csv_rows(), "two Ctrl-C: checkpoint at step %lld, loss.csv holds %d rows",
          (long long)resumed, csv_rows());
}

// Signals that arrive while the matrix products run: a process that installs the stop handlers keeps a sound
// heap. oneDNN 2.6's AVX-512 sgemm points its stack register into a heap buffer for inner dimensions above
// 84, so a handler run on that thread writes the signal's frame into the heap (train/stop.c). A child process
// computes 256 x 256 x 256 products for 1.5 s while this one sends it a SIGTERM every 50 us; the child then
// allocates and frees blocks of many sizes (where a damaged heap aborts) and exits 0 if the stop was seen.
static void test_signals_during_products(void) {
    pid_t child = fork();
    if (child == 0) {
        int quiet = open("/dev/null", O_WRONLY); // the repeated signals each print "finishing the step"
        if (quiet >= 0) dup2(quiet, STDERR_FILENO);
        nd_ctx ctx;
        nd_ctx_init(&ctx, ND_CPU, 16 << 20, 1);
        nd_tensor *a = nd_empty_persistent(&ctx, ND_SHAPE(256, 256)),
                  *b = nd_empty_persistent(&ctx, ND_SHAPE(256, 256));
        nd_rand_normal(&ctx, a, 0.0f, 1.0f);
        nd_rand_normal(&ctx, b, 0.0f, 1.0f);
        signal(SIGTERM, SIG_IGN); // the handler restored at the end: signals still on their way are dropped
        nd_stop_signals_install();
        kill(getppid(), SIGUSR1); // ready
        double start = nd_seconds();
        while (nd_seconds() - start < 1.5) {
            nd_matmul(&ctx, a, b, false, false);
            nd_ctx_step_end(&ctx);
        }
        nd_stop_signals_restore();
        int stopped = nd_stop_requested();
        nd_ctx_free(&ctx);
        for (int round = 0; round < 4; round++) {
            void *blocks[256];
            for (int i = 0; i < 256; i++) blocks[i] = malloc((size_t)(16 + 24 * i));
            for (int i = 0; i < 256; i++) free(blocks[i]);
        }
        _exit(stopped == SIGTERM ? 0 : 3);
    }
    sigset_t ready;
    sigemptyset(&ready);
    sigaddset(&ready, SIGUSR1);
    struct timespec wait = {10, 0};
    CHECK(sigtimedwait(&ready, NULL, &wait) == SIGUSR1, "the child did not start computing");
    int status = 0, sent = 0;
    while (waitpid(child, &status, WNOHANG) == 0) {
        kill(child, SIGTERM);
        sent++;
        nanosleep(&(struct timespec){0, 50000}, NULL);
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "products under %d SIGTERMs: the child %s %d (a damaged heap aborts: 6, or faults: 11; 3: no stop seen)",
          sent, WIFSIGNALED(status) ? "died of signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

// Runs nanodiff train on the small set with extra flags to completion; its status and stderr.
static int run_train(const char *extra, const char *out_dir, char *out, size_t size) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --img-size 8 --batch 4 --T 20 --max-steps 1 --out %s --quiet "
             "--device cpu %s 2>&1 >/dev/null",
             nanodiff, data, out_dir, extra);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_out_dir(void) {
    char out[4096];
    int64_t step = ckpt_step();
    int status = run_train("", run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "holds a run") && strstr(out, "--resume") && strstr(out, "--force"),
          "training into a run without --resume: status %d:\n%s", status, out);
    CHECK(ckpt_step() == step, "the refused run changed the checkpoint");
    status = run_train("--resume --lr 0.5 --T 20 --no-flip", run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "contradict") && strstr(out, "--lr") && strstr(out, "--no-flip") &&
              !strstr(out, "--T"),
          "--resume with contradicting flags: status %d:\n%s", status, out);
    // --widths is the model's shape: the same widths pass, others contradict the checkpoint
    status = run_train("--resume --lr 0.5 --widths 64,64,128", run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--lr") && !strstr(out, "--widths"),
          "--resume with the run's own --widths: status %d:\n%s", status, out);
    status = run_train("--resume --widths 32,64,128", run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "contradict") && strstr(out, "--widths"),
          "--resume with other --widths: status %d:\n%s", status, out);
    CHECK(ckpt_step() == step, "a refused resume changed the checkpoint");
    char long_out[1200];
    snprintf(long_out, sizeof long_out, "%s/", dir);
    while (strlen(long_out) < 1150) strcat(long_out, "a");
    status = run_train("", long_out, out, sizeof out);
    CHECK(status == 1 && strstr(out, "shorter --out"), "an --out of 1150 bytes: status %d:\n%s", status, out);
    status = run_train("--force", run, out, sizeof out);
    CHECK(status == 0 && ckpt_step() == 1, "--force: status %d, step %lld:\n%s", status, (long long)ckpt_step(), out);
}

// `nanodiff info` of the checkpoint in run_dir into info.
static void read_info(const char *run_dir, char *info, size_t size) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s info --ckpt %s/model.h5 2>&1", nanodiff, run_dir);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(info, 1, size - 1, p) : 0;
    info[n] = '\0';
    if (p) pclose(p);
}

// --preset sets defaults that flags given beside it override; it names the model it trains and is refused
// with a contradicting --model, an unknown name, or --resume (which keeps the checkpoint's settings).
static void test_presets(void) {
    char out[4096], info[4096], preset_run[160];
    snprintf(preset_run, sizeof preset_run, "%s/preset", dir);
    int status = run_train("--preset quick", preset_run, out, sizeof out); // run_train gives --batch 4
    CHECK(status == 0, "--preset quick: status %d:\n%s", status, out);
    read_info(preset_run, info, sizeof info);
    CHECK(strstr(info, " 1 epoch") && strstr(info, "of batch 4") && strstr(info, "min-SNR gamma 5") &&
              strstr(info, "with EMA"),
          "--preset quick --batch 4 trained with other settings:\n%s", info);
    // best: a res-unet, and a res-unet without --preset trains best's settings
    for (int k = 0; k < 2; k++) {
        snprintf(preset_run, sizeof preset_run, "%s/preset_best%d", dir, k);
        status = run_train(k == 0 ? "--preset best" : "--model res-unet", preset_run, out, sizeof out);
        CHECK(status == 0, "%s: status %d:\n%s", k == 0 ? "--preset best" : "--model res-unet", status, out);
        read_info(preset_run, info, sizeof info);
        CHECK(strstr(info, "res-unet:") && strstr(info, " 4 epochs") && strstr(info, "min-SNR gamma 5") &&
                  strstr(info, "with EMA") && strstr(info, "widths 32,64,64"),
              "%s trained other settings:\n%s", k == 0 ? "--preset best" : "--model res-unet", info);
    }
    // best-v: v prediction on a zero-terminal-SNR schedule, 6 epochs; --epochs given beside it wins
    snprintf(preset_run, sizeof preset_run, "%s/preset_best_v", dir);
    status = run_train("--preset best-v --epochs 2", preset_run, out, sizeof out);
    CHECK(status == 0, "--preset best-v: status %d:\n%s", status, out);
    read_info(preset_run, info, sizeof info);
    CHECK(strstr(info, "res-unet:") && strstr(info, " 2 epochs") && strstr(info, "zero terminal SNR") &&
              strstr(info, "v prediction") && strstr(info, "min-SNR gamma 5") && strstr(info, "with EMA") &&
              strstr(info, "lr 0.001 with a cosine decay after 200 warm-up steps"),
          "--preset best-v --epochs 2 trained other settings:\n%s", info);
    // --widths: a wider (or narrower) network of the same design, recorded in the checkpoint
    snprintf(preset_run, sizeof preset_run, "%s/preset_widths", dir);
    status = run_train("--preset best-v --widths 16,32,48", preset_run, out, sizeof out);
    CHECK(status == 0, "--preset best-v --widths 16,32,48: status %d:\n%s", status, out);
    read_info(preset_run, info, sizeof info);
    CHECK(strstr(info, "widths 16,32,48") && strstr(info, "(1,48,2,2)"),
          "--widths 16,32,48 trained another network:\n%s", info);
    // best-v as it was before its learning-rate decay: the flags given win over the preset's
    snprintf(preset_run, sizeof preset_run, "%s/preset_best_v_constant", dir);
    status = run_train("--preset best-v --lr-schedule constant --warmup 0", preset_run, out, sizeof out);
    read_info(preset_run, info, sizeof info);
    CHECK(status == 0 && strstr(info, "lr 0.001, label dropout") && strstr(info, "v prediction"),
          "--preset best-v --lr-schedule constant --warmup 0: status %d:\n%s\n%s", status, out, info);
    const char *bad_widths[][2] = {
        {"--model res-unet --widths 30,64,64", "small_groups 8 does not divide down_chs[0] = 30"},
        {"--model res-unet --widths 32,64,66", "does not divide down_chs[2] = 66"},
        {"--widths 32,64", "three widths"},
        {"--widths 32,64,64,64", "three widths"},
        {"--widths 0,64,64", "--widths = 0: expected an integer from 1 to 4096"}};
    for (size_t i = 0; i < sizeof bad_widths / sizeof bad_widths[0]; i++) {
        status = run_train(bad_widths[i][0], dir, out, sizeof out);
        CHECK(status == 1 && strstr(out, "--widths") && strstr(out, bad_widths[i][1]), "%s: status %d:\n%s",
              bad_widths[i][0], status, out);
    }
    status = run_train("--preset best-v --prediction eps", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--zero-snr"), "--preset best-v --prediction eps: status %d:\n%s", status, out);
    status = run_train("--preset best --model dli-unet", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "trains a res-unet"), "--preset best --model dli-unet: status %d:\n%s", status,
          out);
    status = run_train("--preset t2i-quick --model dli-unet", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "trains a t2i-unet"), "--preset t2i-quick --model dli-unet: status %d:\n%s",
          status, out);
    status = run_train("--preset fast", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--preset expects course, quick, t2i-quick, best, best-v"),
          "--preset fast: status %d:\n%s", status, out);
    status = run_train("--preset quick --resume", preset_run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "drop --preset"), "--preset with --resume: status %d:\n%s", status, out);
}

// The Adam learning rate a checkpoint holds (the last update's), or NaN.
static double ckpt_adam_lr(const char *path) {
    float lr = NAN;
    h5_attr(path, "adam", "lr", H5T_NATIVE_FLOAT, &lr);
    return lr;
}

// --lr-schedule cosine and --warmup: recorded in the checkpoint, applied over the run's steps, kept on resume.
static void test_lr_schedule(void) {
    char out[4096], info[4096], lr_run[160], lr_ckpt[200];
    snprintf(lr_run, sizeof lr_run, "%s/lr_cosine", dir);
    snprintf(lr_ckpt, sizeof lr_ckpt, "%s/model.h5", lr_run);
    int status = run_train("--lr 0.01 --lr-schedule cosine --warmup 2 --max-steps 5", lr_run, out, sizeof out);
    CHECK(status == 0, "--lr-schedule cosine --warmup 2: status %d:\n%s", status, out);
    read_info(lr_run, info, sizeof info);
    CHECK(strstr(info, "lr 0.01 with a cosine decay after 2 warm-up steps"), "info after --lr-schedule cosine:\n%s",
          info);
    // the fifth and last update (step 4) is 2 of the 3 decay steps in: 0.01 (1 + cos(2 pi / 3)) / 2 = 0.0025
    double lr = ckpt_adam_lr(lr_ckpt);
    CHECK(fabs(lr - 0.0025) < 1e-7, "the last update's learning rate: %.9g, expected 0.0025", lr);
    // the constant schedule keeps --lr after the warm-up
    snprintf(lr_run, sizeof lr_run, "%s/lr_constant", dir);
    snprintf(lr_ckpt, sizeof lr_ckpt, "%s/model.h5", lr_run);
    status = run_train("--lr 0.01 --warmup 8 --max-steps 2", lr_run, out, sizeof out);
    lr = ckpt_adam_lr(lr_ckpt);
    CHECK(status == 0 && fabs(lr - 0.0025) < 1e-7, "--warmup 8, step 1: status %d, lr %.9g, expected 2/8 of 0.01:\n%s",
          status, lr, out);
    status = run_train("--resume --lr-schedule cosine", lr_run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "contradict") && strstr(out, "--lr-schedule"),
          "--resume with another --lr-schedule: status %d:\n%s", status, out);
    status = run_train("--resume --warmup 3", lr_run, out, sizeof out);
    CHECK(status == 1 && strstr(out, "contradict") && strstr(out, "--warmup"),
          "--resume with another --warmup: status %d:\n%s", status, out);
    status = run_train("--lr-schedule step", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--lr-schedule expects constant or cosine, got \"step\""),
          "--lr-schedule step: status %d:\n%s", status, out);
    status = run_train("--warmup -1", dir, out, sizeof out);
    CHECK(status == 1 && strstr(out, "--warmup"), "--warmup -1: status %d:\n%s", status, out);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_signals NANODIFF\n");
        return 1;
    }
    nanodiff = argv[1];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(data, sizeof data, "%s/data.h5", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", run);
    snprintf(csv, sizeof csv, "%s/loss.csv", run);
    // SIGUSR1 (the child's "ready") stays blocked here, where sigtimedwait takes it
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    test_signals_during_products();
    write_data();
    test_stop_signals();
    test_out_dir();
    test_presets();
    test_lr_schedule();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cannot remove %s", dir);
    return test_finish("signals");
}
