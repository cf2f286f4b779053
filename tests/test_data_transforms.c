// Transforms and the batch loader: resizes against PIL (fixtures/resize.ndfx), ToTensor / flip / x*2-1,
// the Philox shuffle and flips, and the background loader's determinism, coverage and shutdown.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fixture.h"
#include "resize.h"
#include "test.h"

// Every resize case of the fixture, one image at a time. 8-bit resizes must match PIL exactly: both run the
// same fixed-point arithmetic. Float resizes ("F" mode) accumulate in double as PIL does; 1e-6 allows for
// a compiler that fuses a multiply-add.
static void test_resize_against_pil(const fx_file *fx) {
    const char *cases[] = {"u8_28x28_16x16", "u8_28x28_32x32", "u8_28x28_28x16",
                           "u8_28x28_11x28", "u8_20x28_30x9",  "f32_28x28_16x16"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char name[64];
        snprintf(name, sizeof name, "%s/in", cases[c]);
        const fx_tensor *in = fx_get(fx, name);
        snprintf(name, sizeof name, "%s/out", cases[c]);
        const fx_tensor *out = fx_get(fx, name);
        CHECK(in && out && in->shape.ndim == 3 && out->shape.ndim == 3, "%s missing from the fixture", cases[c]);
        if (!in || !out) continue;
        int k = (int)in->shape.d[0], in_h = (int)in->shape.d[1], in_w = (int)in->shape.d[2];
        int out_h = (int)out->shape.d[1], out_w = (int)out->shape.d[2];
        bool is_u8 = cases[c][0] == 'u';
        int64_t differing = 0;
        double worst = 0.0;
        for (int i = 0; i < k; i++) {
            const float *src = in->data + (int64_t)i * in_h * in_w, *want = out->data + (int64_t)i * out_h * out_w;
            uint8_t src8[32 * 32], got8[32 * 32];
            float got[32 * 32];
            for (int p = 0; p < in_h * in_w; p++) src8[p] = (uint8_t)src[p];
            bool ok = is_u8 ? nd_resize_u8(got8, out_h, out_w, src8, in_h, in_w)
                            : nd_resize_f32(got, out_h, out_w, src, in_h, in_w);
            CHECK(ok, "%s: resize failed", cases[c]);
            for (int p = 0; p < out_h * out_w; p++) {
                double diff = fabs((is_u8 ? (double)got8[p] : (double)got[p]) - want[p]);
                differing += diff > 0;
                if (diff > worst) worst = diff;
            }
        }
        if (is_u8)
            CHECK(differing == 0, "%s: %lld pixels differ from PIL (worst by %g levels)", cases[c],
                  (long long)differing, worst);
        else
            CHECK(worst <= 1e-6, "%s: differs from PIL by %g", cases[c], worst);
    }
}

// nd_dataset_resize (every image, in place) gives the per-image results: the course's 28 -> 16.
static void test_dataset_resize(const fx_file *fx) {
    const fx_tensor *in = fx_get(fx, "u8_28x28_16x16/in"), *out = fx_get(fx, "u8_28x28_16x16/out");
    if (!in || !out) return;
    nd_dataset ds = {.n = in->shape.d[0], .c = 1, .h = 28, .w = 28};
    ds.images = malloc((size_t)in->numel);
    for (int64_t p = 0; p < in->numel; p++) ds.images[p] = (uint8_t)in->data[p];
    nd_error err = {{0}};
    CHECK(nd_dataset_resize(&ds, 16, 16, &err), "%s", err.msg);
    CHECK(ds.h == 16 && ds.w == 16, "resized set is %dx%d", ds.h, ds.w);
    int64_t differing = 0;
    for (int64_t p = 0; p < out->numel; p++) differing += ds.images[p] != (uint8_t)out->data[p];
    CHECK(differing == 0, "dataset resize: %lld pixels differ from PIL", (long long)differing);
    CHECK(!nd_dataset_resize(&ds, 0, 16, &err) && strstr(err.msg, "0x16"), "size 0 accepted: %s", err.msg);
    nd_dataset_free(&ds);
}

// ToTensor (v / 255), the horizontal flip of every channel, and x*2-1, on uint8 and float sets.
static void test_sample_transform(void) {
    uint8_t pixels[2 * 2 * 3] = {0, 51, 255, 10, 20, 30, 1, 2, 3, 4, 5, 6}; // (1, C=2, H=2, W=3)
    nd_dataset ds = {.n = 1, .c = 2, .h = 2, .w = 3, .images = pixels};
    float got[12];
    nd_dataset_sample(got, &ds, 0, false, true);
    CHECK(got[0] == 0.0f && got[1] == 51.0f / 255.0f && got[2] == 1.0f && got[11] == 6.0f / 255.0f,
          "ToTensor: %g %g %g %g", got[0], got[1], got[2], got[11]);
    nd_dataset_sample(got, &ds, 0, false, false);
    CHECK(got[0] == -1.0f && got[2] == 1.0f && got[1] == (51.0f / 255.0f) * 2.0f - 1.0f, "x*2-1: %g %g %g", got[0],
          got[1], got[2]);
    nd_dataset_sample(got, &ds, 0, true, true);
    bool flipped = true;
    for (int row = 0; row < 4; row++)
        for (int x = 0; x < 3; x++) flipped = flipped && got[row * 3 + x] == pixels[row * 3 + 2 - x] / 255.0f;
    CHECK(flipped, "flip does not mirror every row of every channel");

    float values[4] = {0.0f, 0.25f, 0.5f, 1.0f}; // (1, 1, 2, 2)
    nd_dataset fs = {.n = 1, .c = 1, .h = 2, .w = 2, .images_f32 = values};
    nd_dataset_sample(got, &fs, 0, true, false);
    CHECK(got[0] == -0.5f && got[1] == -1.0f && got[2] == 1.0f && got[3] == 0.0f, "float set: %g %g %g %g", got[0],
          got[1], got[2], got[3]);
}

static bool is_permutation(const int64_t *order, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++) {
        ok = order[i] >= 0 && order[i] < n && !seen[order[i]];
        if (ok) seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

// Per-pixel moments of the images as handed out: two 1x2 images (0, 1) and (0.2, 0.4) in [0, 1].
static void test_moments(void) {
    uint8_t pixels[4] = {0, 255, 51, 102};
    nd_dataset ds = {.n = 2, .c = 1, .h = 1, .w = 2, .images = pixels};
    double mean[2], var[2];
    nd_dataset_moments(&ds, false, true, mean, var);
    CHECK(fabs(mean[0] - 0.1) < 1e-6 && fabs(mean[1] - 0.7) < 1e-6 && fabs(var[0] - 0.01) < 1e-6 &&
              fabs(var[1] - 0.09) < 1e-6,
          "no flips: mean %g %g var %g %g", mean[0], mean[1], var[0], var[1]);
    // flipped half the time: each pixel sees 0, 1, 0.2, 0.4 -> mean 0.4, variance 0.3 - 0.16 = 0.14
    nd_dataset_moments(&ds, true, true, mean, var);
    CHECK(fabs(mean[0] - 0.4) < 1e-6 && fabs(mean[1] - 0.4) < 1e-6 && fabs(var[0] - 0.14) < 1e-6 &&
              fabs(var[1] - 0.14) < 1e-6,
          "flips: mean %g %g var %g %g", mean[0], mean[1], var[0], var[1]);
    // in [-1, 1]: x * 2 - 1 doubles the deviations
    nd_dataset_moments(&ds, true, false, mean, var);
    CHECK(fabs(mean[0] + 0.2) < 1e-6 && fabs(var[1] - 0.56) < 1e-6, "[-1, 1]: mean %g var %g", mean[0], var[1]);
}

static void test_random_draws(void) {
    enum { N = 1000 };
    static int64_t a[N], b[N], c[N], d[N];
    nd_shuffle_order(a, N, 7, 0);
    nd_shuffle_order(b, N, 7, 0);
    nd_shuffle_order(c, N, 7, 1);
    nd_shuffle_order(d, N, 8, 0);
    CHECK(is_permutation(a, N) && is_permutation(c, N), "shuffle is not a permutation");
    CHECK(memcmp(a, b, sizeof a) == 0, "same (seed, epoch) gave two orders");
    CHECK(memcmp(a, c, sizeof a) != 0 && memcmp(a, d, sizeof a) != 0, "epoch or seed does not change the order");
    int fixed_points = 0;
    for (int i = 0; i < N; i++) fixed_points += a[i] == i;
    CHECK(fixed_points < 10, "%d of %d items kept their place", fixed_points, N);

    // p = 0.5 over 20000 draws: the count is within 5 standard deviations (5 * 71) of 10000.
    int flips = 0, changed = 0, unstable = 0;
    for (int i = 0; i < 20000; i++) {
        bool coin = nd_flip_coin(3, 2, i);
        flips += coin;
        changed += coin != nd_flip_coin(3, 3, i);
        unstable += coin != nd_flip_coin(3, 2, i);
    }
    CHECK(unstable == 0, "%d coins are not reproducible", unstable);
    CHECK(abs(flips - 10000) < 355, "%d flips in 20000", flips);
    CHECK(abs(changed - 10000) < 355, "%d of 20000 coins change between epochs", changed);
}

// A set whose label is the image index and whose pixels tell rows apart, so flips show.
static nd_dataset make_indexed_set(int64_t n) {
    nd_dataset ds = {.n = n, .c = 1, .h = 2, .w = 3, .num_classes = (int)n};
    ds.images = malloc((size_t)n * 6);
    ds.labels = malloc((size_t)n * sizeof *ds.labels);
    for (int64_t i = 0; i < n; i++) {
        ds.labels[i] = (int32_t)i;
        for (int p = 0; p < 6; p++) ds.images[i * 6 + p] = (uint8_t)(i * 13 + p * 40);
    }
    return ds;
}

// Every batch the loader hands out equals nd_batch_fill's for the same (seed, epoch, index), every image
// appears once per epoch, and the last short batch is kept or dropped.
static void run_epochs(const nd_dataset *ds, const nd_loader_config *cfg, int epochs, int64_t *labels_out) {
    nd_error err = {{0}};
    nd_loader *loader = nd_loader_create(ds, cfg, 0, 0, &err);
    CHECK(loader != NULL, "%s", err.msg);
    if (!loader) return;
    int64_t per_epoch = nd_loader_batches_per_epoch(loader), image = 6;
    int64_t *order = malloc((size_t)ds->n * sizeof *order);
    float *want = malloc((size_t)cfg->batch_size * image * sizeof *want);
    int32_t *want_labels = malloc((size_t)cfg->batch_size * sizeof *want_labels);
    char *seen = malloc((size_t)ds->n);
    int64_t at = 0;
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = 0; i < ds->n; i++) order[i] = i;
        if (cfg->shuffle) nd_shuffle_order(order, ds->n, cfg->seed, e);
        memset(seen, 0, (size_t)ds->n);
        int64_t count = 0;
        for (int64_t b = 0; b < per_epoch; b++) {
            const nd_batch *got = nd_loader_next(loader);
            nd_batch ref = {.images = want, .labels = want_labels};
            nd_batch_fill(&ref, ds, cfg, order, e, b);
            CHECK(got->epoch == e && got->index == b && got->size == ref.size, "batch (%d, %lld) is (%lld, %lld)", e,
                  (long long)b, (long long)got->epoch, (long long)got->index);
            CHECK(memcmp(got->images, want, (size_t)ref.size * image * sizeof *want) == 0 &&
                      memcmp(got->labels, want_labels, (size_t)ref.size * sizeof *want_labels) == 0,
                  "batch (%d, %lld) differs from nd_batch_fill", e, (long long)b);
            for (int k = 0; k < got->size; k++) {
                CHECK(!seen[got->labels[k]], "image %d twice in epoch %d", got->labels[k], e);
                seen[got->labels[k]] = 1;
                labels_out[at++] = got->labels[k];
            }
            count += got->size;
        }
        int64_t expected = cfg->drop_last ? per_epoch * cfg->batch_size : ds->n;
        CHECK(count == expected, "epoch %d covered %lld images, expected %lld", e, (long long)count,
              (long long)expected);
    }
    nd_loader_free(loader);
    free(order);
    free(want);
    free(want_labels);
    free(seen);
}

static void test_loader(void) {
    nd_dataset ds = make_indexed_set(103);
    nd_loader_config cfg = {.batch_size = 10, .shuffle = true, .drop_last = true, .random_flip = true, .seed = 42};
    int64_t first[206], second[206], other_seed[206];
    CHECK(nd_batches_per_epoch(103, 10, true) == 10 && nd_batches_per_epoch(103, 10, false) == 11 &&
              nd_batches_per_epoch(70000, 128, true) == 546,
          "batches per epoch");
    run_epochs(&ds, &cfg, 2, first);
    run_epochs(&ds, &cfg, 2, second);
    CHECK(memcmp(first, second, 200 * sizeof *first) == 0, "same seed gave different batches");
    CHECK(memcmp(first, first + 100, 100 * sizeof *first) != 0, "epoch 1 repeats epoch 0's order");
    cfg.seed = 43;
    run_epochs(&ds, &cfg, 1, other_seed);
    CHECK(memcmp(first, other_seed, 100 * sizeof *first) != 0, "another seed gave the same order");
    cfg.drop_last = false;
    run_epochs(&ds, &cfg, 2, first);
    cfg.shuffle = false;
    run_epochs(&ds, &cfg, 1, first);
    bool in_order = true;
    for (int i = 0; i < 103; i++) in_order = in_order && first[i] == i;
    CHECK(in_order, "shuffle = false does not keep the set's order");

    // A resumed loader continues the stream: start at (1, 4) gives batch 14 of a run from (0, 0).
    cfg = (nd_loader_config){.batch_size = 10, .shuffle = true, .drop_last = true, .random_flip = true, .seed = 5};
    nd_error err = {{0}};
    nd_loader *from_start = nd_loader_create(&ds, &cfg, 0, 0, &err);
    nd_loader *resumed = nd_loader_create(&ds, &cfg, 1, 4, &err);
    const nd_batch *a = NULL, *b = nd_loader_next(resumed);
    for (int i = 0; i <= 14; i++) a = nd_loader_next(from_start);
    CHECK(a->epoch == 1 && a->index == 4 && b->epoch == 1 && b->index == 4 &&
              memcmp(a->images, b->images, 10 * 6 * sizeof(float)) == 0,
          "resumed loader differs");
    nd_loader_free(from_start);
    nd_loader_free(resumed);

    // Clean shutdown wherever the consumer stops: before any batch, mid-epoch, across an epoch boundary.
    for (int stop_after = 0; stop_after < 40; stop_after++) {
        nd_loader *loader = nd_loader_create(&ds, &cfg, 0, 0, &err);
        for (int i = 0; i < stop_after % 13; i++) nd_loader_next(loader);
        nd_loader_free(loader);
    }
    nd_loader_free(NULL);

    // An unlabelled float set (an HDF5 file without labels): batches carry no labels.
    float values[4 * 2] = {0.0f, 1.0f, 0.5f, 0.25f, 1.0f, 1.0f, 0.0f, 0.0f}; // (4, 1, 1, 2)
    nd_dataset fs = {.n = 4, .c = 1, .h = 1, .w = 2, .images_f32 = values};
    nd_loader_config plain = {.batch_size = 4, .unit_range = true};
    nd_loader *loader = nd_loader_create(&fs, &plain, 0, 0, &err);
    const nd_batch *batch = loader ? nd_loader_next(loader) : NULL;
    CHECK(batch && batch->labels == NULL && batch->size == 4 && memcmp(batch->images, values, sizeof values) == 0,
          "unlabelled float batch: %s", err.msg);
    nd_loader_free(loader);

    cfg.batch_size = 200;
    CHECK(nd_loader_create(&ds, &cfg, 0, 0, &err) == NULL && strstr(err.msg, "103 images") &&
              strstr(err.msg, "batch of 200"),
          "drop_last with fewer images than a batch: %s", err.msg);
    cfg.batch_size = 0;
    CHECK(nd_loader_create(&ds, &cfg, 0, 0, &err) == NULL && strstr(err.msg, "batch size 0"), "%s", err.msg);
    cfg.batch_size = 10;
    CHECK(nd_loader_create(&ds, &cfg, 0, 10, &err) == NULL && strstr(err.msg, "batch 0 to 9"), "%s", err.msg);
    nd_dataset_free(&ds);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s fixtures/resize.ndfx\n", argv[0]);
        return 1;
    }
    fx_file fx;
    if (fx_load(&fx, argv[1])) {
        test_resize_against_pil(&fx);
        test_dataset_resize(&fx);
        fx_free(&fx);
    } else {
        CHECK(false, "cannot load %s", argv[1]);
    }
    test_sample_transform();
    test_moments();
    test_random_draws();
    test_loader();
    return test_finish("data.transforms");
}
