// nanodiff sample's user-facing output on a tiny random checkpoint: the progress line on stderr (step k/N,
// images/s, ETA; the batch when a w sweep draws several; Heun's model calls; none with --quiet), --scale K making every grid K
// times larger each way (read from the PNG's IHDR) and refusing 0 and 17 with the flag and its range, and --eta
// refused for every sampler but DDIM, naming the flag and the sampler; --guidance-rescale and
// --guidance-interval.
//   test_cli_sample NANODIFF
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "train.h"

static char dir[] = "/tmp/nd_test_cli_sample_XXXXXX";
static const char *nanodiff;
static char ckpt[128];

// A dli-unet of 8x8 images, `classes` classes (0: unconditional) and 8-channel levels with random weights, saved
// as a checkpoint.
static void write_checkpoint(const char *path, int classes) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 8, classes);
    mc.down_chs[0] = mc.down_chs[1] = mc.down_chs[2] = 8;
    mc.small_groups = 2, mc.big_groups = 4;
    nd_model m;
    nd_model_create(&m, mc, &ctx);
    nd_error err;
    CHECK(nd_checkpoint_save(path, &m, NULL, NULL, NULL, NULL, &ctx, &err), "save: %s", err.msg);
    nd_model_free(&m);
    nd_ctx_free(&ctx);
}

// Runs `nanodiff sample --ckpt CKPT --device cpu --start noise ARGS` (N(0, I): no data set to read; a grid to
// DIR/out.png unless ARGS give -o); returns its exit status and its stderr in out.
static int run_sample(const char *args, char *out, size_t size) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s sample --ckpt %s --device cpu --start noise -o %s/out.png %s 2>&1 >/dev/null",
             nanodiff, ckpt, dir, args);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    int status = p ? pclose(p) : -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The width and height a PNG's IHDR chunk gives (bytes 16 to 23, big-endian); false when it is no PNG.
static bool png_size(const char *path, uint32_t *width, uint32_t *height) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t head[24];
    FILE *f = fopen(path, "rb");
    bool ok = f && fread(head, 1, sizeof head, f) == sizeof head && memcmp(head, signature, 8) == 0 &&
              memcmp(head + 12, "IHDR", 4) == 0;
    if (f) fclose(f);
    if (!ok) return false;
    *width = (uint32_t)head[16] << 24 | (uint32_t)head[17] << 16 | (uint32_t)head[18] << 8 | head[19];
    *height = (uint32_t)head[20] << 24 | (uint32_t)head[21] << 16 | (uint32_t)head[22] << 8 | head[23];
    return true;
}

static void test_progress(void) {
    char out[8192];
    int status = run_sample("--n 1 --sampler ddim --steps 4", out, sizeof out);
    // stderr is a pipe here, not a terminal: plain lines, always the last step's
    CHECK(status == 0 && strstr(out, "sample step 4/4") && strstr(out, "img/s") && strstr(out, "ETA") &&
              !strstr(out, "model calls"),
          "the progress line (no model calls where a step makes one): status %d, stderr:\n%s", status, out);
    CHECK(!strchr(out, '\r'), "a carriage return in a log:\n%s", out);
    status = run_sample("--sampler ddim --steps 3 --w-sweep 0,1", out, sizeof out);
    CHECK(status == 0 && strstr(out, "sample batch 2/2  step 3/3"), "a sweep's batches: status %d, stderr:\n%s", status,
          out);
    // Heun's steps make two model calls but the last one: the line counts (and times) the calls as well; in a
    // log the first step's line always shows (nothing printed yet), and the last
    status = run_sample("--n 1 --sampler heun --steps 4", out, sizeof out);
    CHECK(status == 0 && strstr(out, "sample step 1/4  model calls 2/7") &&
              strstr(out, "sample step 4/4  model calls 7/7"),
          "heun's progress line: status %d, stderr:\n%s", status, out);
    status = run_sample("--sampler heun --steps 3 --w-sweep 0,1", out, sizeof out);
    CHECK(status == 0 && strstr(out, "sample batch 2/2  step 3/3  model calls 5/5"),
          "heun's sweep: status %d, stderr:\n%s", status, out);
    status = run_sample("--n 1 --sampler ddim --steps 4 --quiet", out, sizeof out);
    CHECK(status == 0 && !strstr(out, "img/s") && !strstr(out, "step 4/4"), "--quiet: status %d, stderr:\n%s", status,
          out);
}

static void test_scale(void) {
    char args[512], out[8192], png[160], strip[160];
    snprintf(png, sizeof png, "%s/grid.png", dir);
    snprintf(strip, sizeof strip, "%s/strip.png", dir);
    uint32_t w1 = 0, h1 = 0, w1s = 0, h1s = 0, w = 0, h = 0;
    snprintf(args, sizeof args, "--n 3 --sampler ddim --steps 2 --quiet -o %s --strip %s", png, strip);
    int status = run_sample(args, out, sizeof out);
    CHECK(status == 0 && png_size(png, &w1, &h1) && png_size(strip, &w1s, &h1s), "--scale 1: status %d\n%s", status,
          out);
    // 3 samples a row of 8x8 with 2 pixels of padding: 3 * 10 + 2 wide, 2 classes: 2 * 10 + 2 high
    CHECK(w1 == 32 && h1 == 22, "the unscaled grid is %ux%u", w1, h1);
    snprintf(args, sizeof args, "--n 3 --sampler ddim --steps 2 --quiet -o %s --strip %s --scale 3", png, strip);
    status = run_sample(args, out, sizeof out);
    CHECK(status == 0 && png_size(png, &w, &h) && w == 3 * w1 && h == 3 * h1, "--scale 3: status %d, %ux%u\n%s", status,
          w, h, out);
    CHECK(png_size(strip, &w, &h) && w == 3 * w1s && h == 3 * h1s, "--scale 3 strip: %ux%u against %ux%u", w, h, w1s,
          h1s);
    const char *bad[] = {"0", "17"};
    for (int k = 0; k < 2; k++) {
        unlink(png);
        snprintf(args, sizeof args, "--n 1 --scale %s -o %s", bad[k], png);
        status = run_sample(args, out, sizeof out);
        char said[32];
        snprintf(said, sizeof said, "--scale = %s", bad[k]);
        CHECK(status == 1 && strstr(out, said) && strstr(out, "from 1 to 16"), "--scale %s: status %d\n%s", bad[k],
              status, out);
        CHECK(access(png, F_OK) != 0, "--scale %s wrote %s", bad[k], png);
    }
}

static void test_eta(void) {
    char out[8192];
    const char *samplers[] = {"ddpm", "euler", "dpm-solver++"};
    for (int k = 0; k < 3; k++) {
        char args[256];
        snprintf(args, sizeof args, "--n 1 --steps 2 --sampler %s --eta 0.5", samplers[k]);
        int status = run_sample(args, out, sizeof out);
        CHECK(status == 1 && strstr(out, "--eta") && strstr(out, samplers[k]) && strstr(out, "ddim"),
              "--eta with %s: status %d\n%s", samplers[k], status, out);
    }
    int status = run_sample("--n 1 --steps 2 --sampler ddim --eta 0.5 --quiet", out, sizeof out);
    CHECK(status == 0, "--eta with ddim: status %d\n%s", status, out);
}

// A file's bytes (up to 64 KiB) in one of three rotating static buffers; NULL when it cannot be opened.
static char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[3][1 << 16];
    static int next;
    char *b = buf[next++ % 3];
    *size = fread(b, 1, sizeof buf[0], f);
    fclose(f);
    return b;
}

// Three grids of the same draw (DDIM 3 steps, w = 4) with flags[k] added: each must succeed, and its stderr
// hold says[k] when that is not NULL; their PNG bytes into bytes[k], sizes[k]. False when one is missing.
static bool three_grids(const char *const flags[3], const char *const says[3], char *bytes[3], size_t sizes[3]) {
    char out[8192], args[512], png[200];
    snprintf(png, sizeof png, "%s/grid.png", dir);
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "--n 2 --sampler ddim --steps 3 --w 4 -o %s %s", png, flags[k]);
        int status = run_sample(args, out, sizeof out);
        CHECK(status == 0, "%s: status %d\n%s", args, status, out);
        if (says[k]) CHECK(strstr(out, says[k]), "%s: no \"%s\" in\n%s", args, says[k], out);
        bytes[k] = read_all(png, &sizes[k]);
        CHECK(bytes[k] && sizes[k] > 0, "%s wrote no %s", args, png);
        if (!bytes[k]) return false;
    }
    return true;
}

static bool same_grid(char *const bytes[3], const size_t sizes[3], int i, int j) {
    return sizes[i] == sizes[j] && memcmp(bytes[i], bytes[j], sizes[i]) == 0;
}

// --guidance-rescale: 0 draws what no flag draws, 1 something else; outside [0, 1] refused with the flag and range.
static void test_guidance_rescale(void) {
    const char *const flags[] = {"", "--guidance-rescale 0", "--guidance-rescale 1"}, *const says[3] = {NULL};
    char *bytes[3];
    size_t sizes[3] = {0};
    if (!three_grids(flags, says, bytes, sizes)) return;
    CHECK(same_grid(bytes, sizes, 0, 1), "--guidance-rescale 0 changed the grid");
    CHECK(!same_grid(bytes, sizes, 0, 2), "--guidance-rescale 1 changed nothing");
    char out[8192];
    int status = run_sample("--n 1 --guidance-rescale 1.5", out, sizeof out);
    CHECK(status == 1 && strstr(out, "--guidance-rescale = 1.5") && strstr(out, "0 to 1"),
          "--guidance-rescale 1.5: status %d\n%s", status, out);
}

// --guidance-interval: 0,inf is every step (the same grid as no flag) and says so; one that holds no step is
// noted and changes the grid; a malformed or empty interval is refused with the flag and what it expects; an
// unconditional model is said to have nothing to guide.
static void test_guidance_interval(void) {
    const char *const flags[] = {"", "--guidance-interval 0,inf", "--guidance-interval 0,1e-9"};
    const char *const says[] = {NULL, "guided at 3 of 3 steps", "none is guided"};
    char *bytes[3];
    size_t sizes[3] = {0};
    if (!three_grids(flags, says, bytes, sizes)) return;
    CHECK(same_grid(bytes, sizes, 0, 1), "--guidance-interval 0,inf changed the grid");
    CHECK(!same_grid(bytes, sizes, 0, 2), "an interval with no step changed nothing");
    char out[8192], args[512];
    const char *bad[] = {"5,0.3", "1", "1,", "a,b", "-1,2", "1,1", "0,2x"};
    for (int k = 0; k < 7; k++) {
        snprintf(args, sizeof args, "--n 1 --guidance-interval %s", bad[k]);
        int status = run_sample(args, out, sizeof out);
        CHECK(status == 1 && strstr(out, "--guidance-interval expects LO,HI") && strstr(out, bad[k]),
              "%s: status %d\n%s", args, status, out);
    }
    // an unconditional model has nothing to guide: said, and drawn (the last test: the checkpoint is replaced)
    write_checkpoint(ckpt, 0);
    int status = run_sample("--n 1 --guidance-interval 0.5,2", out, sizeof out);
    CHECK(status == 0 && strstr(out, "unconditional") && !strstr(out, "guided at"),
          "--guidance-interval on an unconditional model: status %d\n%s", status, out);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_cli_sample NANODIFF\n");
        return 1;
    }
    nanodiff = argv[1];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", dir);
    write_checkpoint(ckpt, 2);
    test_progress();
    test_scale();
    test_eta();
    test_guidance_rescale();
    test_guidance_interval();
    char path[160];
    const char *names[] = {"model.h5", "out.png", "grid.png", "strip.png"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    CHECK(rmdir(dir) == 0, "%s is not empty", dir);
    return test_finish("cli.sample");
}
