// IDX reading and IDX data sets: good and bad files (plain and gzipped) built in a temporary directory.
// With --fashion-mnist DIR it checks the real Fashion-MNIST instead, and exits 77 (skip) where DIR is absent.
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "test.h"

static char tmp_dir[] = "/tmp/nd_test_idx_XXXXXX";
static char created[64][512];
static int n_created;

// A path inside the temporary directory, remembered for removal.
static const char *tmp_path(const char *name) {
    snprintf(created[n_created], sizeof created[0], "%s/%s", tmp_dir, name);
    return created[n_created++];
}

static void write_plain(const char *path, const uint8_t *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, len, f);
    fclose(f);
}

static void write_gz(const char *path, const uint8_t *bytes, size_t len) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, bytes, (unsigned)len);
    gzclose(f);
}

static size_t file_size(const char *path) {
    struct stat st;
    stat(path, &st);
    return (size_t)st.st_size;
}

// An IDX file's bytes: magic (0, 0, type, rank), big-endian dimensions, then data (pattern i*7+3).
static size_t idx_bytes(uint8_t *out, int type, int ndim, const uint32_t *dims, const uint8_t *data) {
    size_t at = 0, numel = 1;
    out[at++] = 0, out[at++] = 0, out[at++] = (uint8_t)type, out[at++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        for (int b = 3; b >= 0; b--) out[at++] = (uint8_t)(dims[i] >> (8 * b));
        numel *= dims[i];
    }
    for (size_t i = 0; i < numel && ndim > 0; i++) out[at++] = data ? data[i] : (uint8_t)(i * 7 + 3);
    return at;
}

// Reading `path` fails, leaves nothing allocated, and the message names the file and holds every word.
static void check_idx_fails(const char *path, int n_words, ...) {
    nd_idx idx;
    nd_error err = {{0}};
    bool ok = nd_idx_read(&idx, path, &err);
    CHECK(!ok, "%s: a bad file was accepted", path);
    CHECK(idx.data == NULL && idx.ndim == 0, "%s: a failed read left data behind", path);
    va_list words;
    va_start(words, n_words);
    test_message_names(err.msg, path, n_words, words);
    va_end(words);
}

static void test_roundtrip(void) {
    uint8_t buf[4096], pixels[6 * 4 * 5], labels[6] = {0, 3, 9, 1, 1, 7};
    for (int i = 0; i < (int)sizeof pixels; i++) pixels[i] = (uint8_t)(i * 37 + 11);
    uint32_t image_dims[3] = {6, 4, 5}, label_dims[1] = {6};
    const char *images_gz = tmp_path("rt-images.gz"), *labels_plain = tmp_path("rt-labels");
    write_gz(images_gz, buf, idx_bytes(buf, 0x08, 3, image_dims, pixels));
    write_plain(labels_plain, buf, idx_bytes(buf, 0x08, 1, label_dims, labels));
    nd_dataset ds;
    nd_error err = {{0}};
    bool ok = nd_dataset_load_idx_pair(&ds, images_gz, labels_plain, 10, &err);
    CHECK(ok, "good pair rejected: %s", err.msg);
    if (!ok) return;
    CHECK(ds.n == 6 && ds.c == 1 && ds.h == 4 && ds.w == 5 && ds.num_classes == 10, "shape %lld x %d x %d x %d",
          (long long)ds.n, ds.c, ds.h, ds.w);
    CHECK(ds.images && memcmp(ds.images, pixels, sizeof pixels) == 0, "pixels differ after the roundtrip");
    CHECK(ds.images_f32 == NULL, "uint8 set also has float images");
    bool same = true;
    for (int i = 0; i < 6; i++) same = same && ds.labels[i] == labels[i];
    CHECK(same, "labels differ after the roundtrip");
    nd_dataset_free(&ds);

    ok = nd_dataset_load_idx_pair(&ds, images_gz, labels_plain, 0, &err);
    CHECK(ok && ds.num_classes == 10, "num_classes 0 should take max label + 1 = 10, got %d", ds.num_classes);
    nd_dataset_free(&ds);

    // Any rank reads: a rank-4 file, plain.
    uint32_t dims4[4] = {2, 3, 1, 2};
    const char *rank4 = tmp_path("rank4");
    write_plain(rank4, buf, idx_bytes(buf, 0x08, 4, dims4, NULL));
    nd_idx idx;
    ok = nd_idx_read(&idx, rank4, &err);
    CHECK(ok && idx.ndim == 4 && idx.numel == 12 && idx.dims[1] == 3 && idx.data[5] == 5 * 7 + 3,
          "rank-4 IDX read wrong: %s", err.msg);
    nd_idx_free(&idx);
}

static void test_bad_files(void) {
    uint8_t buf[8192];
    uint32_t dims[3] = {10, 8, 8}; // 640 bytes of data after a 16-byte header
    size_t good = idx_bytes(buf, 0x08, 3, dims, NULL);

    check_idx_fails(tmp_path("does-not-exist.gz"), 2, "cannot open", "No such file");

    uint8_t bad[8192];
    memcpy(bad, buf, good);
    bad[0] = 0x50, bad[1] = 0x4B;
    const char *magic_plain = tmp_path("magic"), *magic_gz = tmp_path("magic.gz");
    write_plain(magic_plain, bad, good);
    write_gz(magic_gz, bad, good);
    check_idx_fails(magic_plain, 2, "magic", "0x504B0803");
    check_idx_fails(magic_gz, 1, "magic");

    memcpy(bad, buf, good);
    bad[2] = 0x0D;
    const char *type = tmp_path("type.gz");
    write_gz(type, bad, good);
    check_idx_fails(type, 3, "type 0x0D", "float32", "expected 0x08");

    memcpy(bad, buf, good);
    bad[3] = 0;
    const char *rank0 = tmp_path("rank0");
    write_plain(rank0, bad, good);
    check_idx_fails(rank0, 2, "rank 0", "expected 1 to");
    bad[3] = 9;
    const char *rank9 = tmp_path("rank9.gz");
    write_gz(rank9, bad, good);
    check_idx_fails(rank9, 1, "rank 9");

    const char *short_header = tmp_path("short-header");
    write_plain(short_header, buf, 10);
    check_idx_fails(short_header, 2, "truncated header", "12 bytes of dimensions");
    const char *tiny = tmp_path("tiny.gz");
    write_gz(tiny, buf, 2);
    check_idx_fails(tiny, 2, "truncated header", "holds 2 bytes");

    const char *trunc_plain = tmp_path("truncated"), *trunc_gz = tmp_path("truncated.gz");
    write_plain(trunc_plain, buf, good - 100);
    write_gz(trunc_gz, buf, good - 100);
    check_idx_fails(trunc_plain, 4, "truncated", "promises 10x8x8", "(640 bytes)", "holds 540");
    check_idx_fails(trunc_gz, 3, "truncated", "promises 10x8x8", "holds 540");

    // A gzip file cut short: the deflate stream and its trailer are missing.
    const char *whole = tmp_path("whole.gz"), *cut = tmp_path("cut.gz");
    write_gz(whole, buf, good);
    FILE *f = fopen(whole, "rb");
    size_t packed = fread(bad, 1, sizeof bad, f);
    fclose(f);
    write_plain(cut, bad, packed / 2);
    check_idx_fails(cut, 1, "truncated");
    write_plain(cut, bad, packed - 4); // only the length field of the trailer is missing
    check_idx_fails(cut, 1, "truncated");

    // Corrupt deflate data (a byte flipped mid-stream) and a corrupt CRC in the trailer.
    const char *corrupt = tmp_path("corrupt.gz");
    bad[packed / 2] ^= 0x55;
    write_plain(corrupt, bad, packed);
    check_idx_fails(corrupt, 1, "corrupt gzip data");
    bad[packed / 2] ^= 0x55;
    bad[packed - 8] ^= 0x01;
    write_plain(corrupt, bad, packed);
    check_idx_fails(corrupt, 2, "corrupt gzip data", "incorrect data check");

    const char *trail_plain = tmp_path("trailing"), *trail_gz = tmp_path("trailing.gz");
    write_plain(trail_plain, buf, good + 3);
    write_gz(trail_gz, buf, good + 5000);
    check_idx_fails(trail_plain, 3, "3 trailing bytes", "promises 10x8x8", "(640 bytes)");
    check_idx_fails(trail_gz, 1, "5000 trailing bytes");

    memcpy(bad, buf, good);
    bad[4] = bad[5] = bad[6] = bad[7] = 0xFF, bad[8] = bad[9] = bad[10] = bad[11] = 0xFF;
    const char *huge = tmp_path("huge");
    write_plain(huge, bad, good);
    check_idx_fails(huge, 1, "more than");
    CHECK(file_size(huge) == good, "test file has the wrong size");
}

// Bytes appended after a complete gzip stream: zlib skips them, the trailer check does not.
static void test_gzip_trailer(void) {
    uint8_t buf[4096];
    uint32_t dims[3] = {10, 8, 8};
    size_t good = idx_bytes(buf, 0x08, 3, dims, NULL);
    const char *whole = tmp_path("trailer.gz"), *garbage = tmp_path("trailer-garbage.gz");
    write_gz(whole, buf, good);
    uint8_t packed[8192];
    FILE *f = fopen(whole, "rb");
    size_t n = fread(packed, 1, sizeof packed - 3, f);
    fclose(f);
    memcpy(packed + n, "\x00\x01\x02", 3);
    write_plain(garbage, packed, n + 3);
    check_idx_fails(garbage, 2, "gzip trailer", "trailing garbage");
    // The length field alone altered (the CRC still matches): zlib's own check names it.
    packed[n - 1] ^= 0x10;
    write_plain(garbage, packed, n);
    check_idx_fails(garbage, 1, "corrupt gzip data");
}

// Peak resident memory (KiB) of a child that reads `path`, beyond what it held before the read.
static long idx_read_peak_kib(const char *path) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        struct rusage before, after;
        getrusage(RUSAGE_SELF, &before);
        nd_idx idx;
        nd_error err;
        if (nd_idx_read(&idx, path, &err)) nd_idx_free(&idx);
        getrusage(RUSAGE_SELF, &after);
        long grown = after.ru_maxrss - before.ru_maxrss;
        ssize_t w = write(pipefd[1], &grown, sizeof grown);
        _exit(w == sizeof grown ? 0 : 1);
    }
    long grown = -1;
    close(pipefd[1]);
    if (read(pipefd[0], &grown, sizeof grown) != sizeof grown) grown = -1;
    close(pipefd[0]);
    waitpid(pid, NULL, 0);
    return grown;
}

// A 70 KB gzip file of 64 MiB of zeros under a header that promises 2 GB: refused as truncated before any
// buffer of the promised (or the inflated) size exists.
static void test_gzip_bomb(void) {
    const int64_t inflated = (int64_t)64 << 20;
    uint8_t header[16] = {0, 0, 0x08, 3, 0, 0, 0x07, 0xD0, 0, 0, 0x03, 0xE8, 0, 0, 0x03, 0xE8}; // 2000x1000x1000
    uint8_t *zeros = calloc(1, 1 << 20);
    const char *bomb = tmp_path("bomb.gz");
    gzFile f = gzopen(bomb, "wb9");
    gzwrite(f, header, sizeof header);
    for (int64_t at = 0; at < inflated; at += 1 << 20) gzwrite(f, zeros, 1 << 20);
    gzclose(f);
    free(zeros);
    CHECK(file_size(bomb) < 200000, "the bomb is %zu bytes, meant to be small", file_size(bomb));
    check_idx_fails(bomb, 3, "truncated", "promises 2000x1000x1000", "holds 67108864");
    long grown = idx_read_peak_kib(bomb);
    CHECK(grown >= 0 && grown < 16 * 1024, "reading the bomb grew resident memory by %ld KiB (want < 16 MiB: "
          "nothing is allocated before the file's real size is known)", grown);
}

static void check_pair_fails(const char *images, const char *labels, int num_classes, const char *name,
                             const char *word) {
    nd_dataset ds;
    nd_error err = {{0}};
    bool ok = nd_dataset_load_idx_pair(&ds, images, labels, num_classes, &err);
    CHECK(!ok, "%s: a bad pair was accepted", word);
    CHECK(ds.images == NULL && ds.labels == NULL && ds.n == 0, "%s: a failed load left data behind", word);
    CHECK(strstr(err.msg, name) && strstr(err.msg, word), "message lacks \"%s\" or \"%s\": %s", name, word,
          err.msg);
}

static void test_bad_pairs(void) {
    uint8_t buf[4096];
    uint32_t image_dims[3] = {5, 3, 3}, label_dims[1] = {4}, label5[1] = {5}, rank2[2] = {5, 1};
    const char *images = tmp_path("p-images"), *labels4 = tmp_path("p-labels4.gz");
    const char *labels_range = tmp_path("p-labels-range"), *labels_rank = tmp_path("p-labels-rank");
    write_plain(images, buf, idx_bytes(buf, 0x08, 3, image_dims, NULL));
    write_gz(labels4, buf, idx_bytes(buf, 0x08, 1, label_dims, (const uint8_t[]){1, 2, 3, 4}));
    check_pair_fails(images, labels4, 10, labels4, "4 labels");
    check_pair_fails(images, labels4, 10, images, "5 images");
    write_plain(labels_range, buf, idx_bytes(buf, 0x08, 1, label5, (const uint8_t[]){1, 2, 10, 4, 0}));
    check_pair_fails(images, labels_range, 10, labels_range, "label 10 at index 2 is out of range");
    write_plain(labels_rank, buf, idx_bytes(buf, 0x08, 2, rank2, NULL));
    check_pair_fails(images, labels_rank, 10, labels_rank, "rank 2");
    check_pair_fails(labels_rank, labels_range, 10, labels_rank, "expected rank 3");
}

static void test_directories(void) {
    nd_dataset ds;
    nd_error err = {{0}};
    const char *missing = "/tmp/nd-no-such-data-dir";
    bool ok = nd_dataset_load_idx_dir(&ds, missing, ND_SPLIT_TRAIN, 10, &err);
    CHECK(!ok && strstr(err.msg, missing) && strstr(err.msg, "scripts/install-deps.sh") &&
              strstr(err.msg, "--data"),
          "missing directory message: %s", err.msg);
    ok = nd_dataset_load(&ds, missing, ND_SPLIT_ALL, &err);
    CHECK(!ok && strstr(err.msg, "install-deps.sh"), "missing --data path message: %s", err.msg);
    ok = nd_dataset_load_idx_dir(&ds, tmp_dir, ND_SPLIT_TRAIN, 10, &err);
    CHECK(!ok && strstr(err.msg, "train-images-idx3-ubyte.gz") && strstr(err.msg, "found neither"),
          "directory without IDX files: %s", err.msg);

    // A small MNIST-style directory: train gzipped, test unzipped (torchvision's extracted names).
    uint8_t buf[4096];
    uint32_t train_dims[3] = {7, 2, 3}, test_dims[3] = {3, 2, 3}, train_n[1] = {7}, test_n[1] = {3};
    const uint8_t train_labels[7] = {0, 1, 2, 3, 4, 5, 6}, test_labels[3] = {9, 8, 7};
    write_gz(tmp_path("train-images-idx3-ubyte.gz"), buf, idx_bytes(buf, 0x08, 3, train_dims, NULL));
    write_gz(tmp_path("train-labels-idx1-ubyte.gz"), buf, idx_bytes(buf, 0x08, 1, train_n, train_labels));
    write_plain(tmp_path("t10k-images-idx3-ubyte"), buf, idx_bytes(buf, 0x08, 3, test_dims, NULL));
    write_plain(tmp_path("t10k-labels-idx1-ubyte"), buf, idx_bytes(buf, 0x08, 1, test_n, test_labels));
    ok = nd_dataset_load_idx_dir(&ds, tmp_dir, ND_SPLIT_TRAIN, 10, &err);
    CHECK(ok && ds.n == 7 && ds.labels[6] == 6, "train split: %s", err.msg);
    nd_dataset_free(&ds);
    ok = nd_dataset_load_idx_dir(&ds, tmp_dir, ND_SPLIT_TEST, 10, &err);
    CHECK(ok && ds.n == 3 && ds.labels[0] == 9, "test split: %s", err.msg);
    nd_dataset_free(&ds);
    ok = nd_dataset_load(&ds, tmp_dir, ND_SPLIT_ALL, &err);
    CHECK(ok && ds.n == 10 && ds.h == 2 && ds.w == 3 && ds.num_classes == 10, "all split: %s", err.msg);
    if (ok) {
        // Train first, then test; test image 0 holds the same pattern bytes as train image 0.
        CHECK(ds.labels[6] == 6 && ds.labels[7] == 9 && ds.labels[9] == 7, "labels not train then test");
        CHECK(memcmp(ds.images, ds.images + 7 * 6, 6) == 0 && ds.images[7 * 6 - 1] == (uint8_t)(41 * 7 + 3),
              "images not train then test");
    }
    nd_dataset_free(&ds);
}

// The real data set: counts, sizes, and the balanced classes of Fashion-MNIST.
static int check_fashion_mnist(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("skipped: %s is absent (Debian's dataset-fashion-mnist installs it)\n", dir);
        return ND_TEST_SKIP;
    }
    const nd_split splits[3] = {ND_SPLIT_TRAIN, ND_SPLIT_TEST, ND_SPLIT_ALL};
    const int64_t expected[3] = {60000, 10000, 70000};
    for (int s = 0; s < 3; s++) {
        nd_dataset ds;
        nd_error err = {{0}};
        bool ok = nd_dataset_load_idx_dir(&ds, dir, splits[s], 10, &err);
        CHECK(ok, "%s", err.msg);
        if (!ok) continue;
        CHECK(ds.n == expected[s] && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.num_classes == 10,
              "split %d: %lld images of %dx%dx%d", s, (long long)ds.n, ds.c, ds.h, ds.w);
        int64_t counts[10] = {0};
        for (int64_t i = 0; i < ds.n; i++) counts[ds.labels[i]]++;
        for (int k = 0; k < 10; k++)
            CHECK(counts[k] == expected[s] / 10, "split %d class %d: %lld images", s, k, (long long)counts[k]);
        nd_dataset_free(&ds);
    }
    return test_finish("data.fashion_mnist");
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--fashion-mnist") == 0) return check_fashion_mnist(argv[2]);
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_bad_files();
    test_gzip_trailer();
    test_gzip_bomb();
    test_bad_pairs();
    test_directories();
    for (int i = 0; i < n_created; i++) unlink(created[i]);
    CHECK(rmdir(tmp_dir) == 0, "temporary directory %s not empty", tmp_dir);
    return test_finish("data.idx");
}
