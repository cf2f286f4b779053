// Sample-quality metrics without a data set: the Jacobi eigensolver on known matrices, the Fréchet distance
// against closed forms (identical sets, shifted means, diagonal covariances, non-commuting 2x2 covariances),
// accuracy and confidence bookkeeping on hand-made logits, the classifier's cache file (round trip,
// damaged and mismatched files refused with a message, never a crash), and the high-frequency energy of images
// with known spectra and against numpy's FFT.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "eval.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

// xorshift64* in [0, 1)
static double uniform(void) {
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

static double normal(void) { return sqrt(-2.0 * log(1.0 - uniform())) * cos(6.283185307179586 * uniform()); }

static void test_eigen_known(void) {
    // tridiag(1, 2, 1) of order 3: eigenvalues 2 - sqrt(2), 2, 2 + sqrt(2)
    double a[9] = {2, 1, 0, 1, 2, 1, 0, 1, 2}, values[3], vectors[9];
    CHECK(nd_eigen_symmetric(a, 3, values, vectors) == 0, "did not converge");
    double want[3] = {2 - sqrt(2.0), 2, 2 + sqrt(2.0)}, found[3];
    memcpy(found, values, sizeof found);
    for (int i = 0; i < 3; i++) // sort ascending
        for (int j = i + 1; j < 3; j++)
            if (found[j] < found[i]) {
                double t = found[i];
                found[i] = found[j], found[j] = t;
            }
    for (int i = 0; i < 3; i++)
        CHECK(fabs(found[i] - want[i]) < 1e-14, "eigenvalue %d: %.17g, want %.17g", i, found[i], want[i]);

    double diagonal[4] = {3, 0, 0, -1}, v2[2], e2[4];
    CHECK(nd_eigen_symmetric(diagonal, 2, v2, e2) == 0, "a diagonal matrix must be solved");
    // ascending: -1 with the axis (0, 1), then 3 with (1, 0) (up to sign)
    CHECK(v2[0] == -1 && v2[1] == 3 && fabs(e2[0]) == 0 && fabs(e2[2]) == 1, "diagonal: values %g %g", v2[0], v2[1]);

    double nan_matrix[4] = {1, NAN, NAN, 1};
    CHECK(nd_eigen_symmetric(nan_matrix, 2, v2, e2) == -1, "a NaN matrix must report no convergence");
}

// A random symmetric 64x64 matrix: A V = V diag(values) and V^T V = I to near double precision.
static void test_eigen_random(void) {
    enum { N = 64 };
    static double a[N * N], work[N * N], vectors[N * N], values[N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) a[i * N + j] = a[j * N + i] = normal();
    memcpy(work, a, sizeof a);
    CHECK(nd_eigen_symmetric(work, N, values, vectors) == 0, "did not converge");
    double residual = 0.0, orthogonality = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double av = 0.0, vv = 0.0;
            for (int k = 0; k < N; k++) {
                av += a[i * N + k] * vectors[k * N + j];
                vv += vectors[k * N + i] * vectors[k * N + j];
            }
            residual = fmax(residual, fabs(av - values[j] * vectors[i * N + j]));
            orthogonality = fmax(orthogonality, fabs(vv - (i == j)));
        }
    // entries of order 1 and a norm near 16: rounding over 64-term sums stays near 1e-13
    CHECK(residual < 1e-11, "|A v - l v| up to %g", residual);
    CHECK(orthogonality < 1e-12, "|V^T V - I| up to %g", orthogonality);
}

// Mean and unbiased covariance of 2-d float features, in double.
static void moments2(const float *x, int n, double mean[2], double cov[4]) {
    mean[0] = mean[1] = 0;
    for (int i = 0; i < n; i++) mean[0] += x[2 * i], mean[1] += x[2 * i + 1];
    mean[0] /= n, mean[1] /= n;
    memset(cov, 0, 4 * sizeof *cov);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++) cov[j * 2 + k] += (x[2 * i + j] - mean[j]) * (x[2 * i + k] - mean[k]) / (n - 1);
}

static void test_frechet(void) {
    enum { N = 256, D = 16 };
    static float a[N * D], b[N * D];
    nd_error err;
    double fd;
    for (int i = 0; i < N * D; i++) a[i] = (float)normal();
    CHECK(nd_frechet_distance(a, N, a, N, D, &fd, &err) && fabs(fd) < 1e-9, "identical sets: %g", fd);

    // a shift leaves the covariance: FD = |delta|^2
    double shift = 0.0;
    for (int j = 0; j < D; j++) shift += (0.25 * j) * (0.25 * j);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) b[i * D + j] = a[i * D + j] + 0.25f * (float)j;
    // the float sums a + delta round at 1e-7 of |a|, which moves the covariance by about that much
    CHECK(nd_frechet_distance(a, N, b, N, D, &fd, &err) && fabs(fd - shift) < 1e-4 * shift, "shifted: %g, want %g", fd,
          shift);

    // Columns 1..D of the Sylvester-Hadamard matrix of order N are orthogonal +-1 vectors of mean zero, so scaled
    // columns have exactly the means and the diagonal covariances chosen: FD = |dm|^2 + sum (sqrt(va) - sqrt(vb))^2
    double want = 0.0;
    for (int j = 0; j < D; j++) {
        double sa = 0.5 + 0.1 * j, sb = 1.5 - 0.05 * j, ma = 0.1 * j, mb = -0.2 * j;
        for (int i = 0; i < N; i++) {
            int h = __builtin_popcount((unsigned)(i & (j + 1))) % 2 ? -1 : 1;
            a[i * D + j] = (float)(ma + sa * h);
            b[i * D + j] = (float)(mb + sb * h);
        }
        double va = sa * sa * N / (N - 1), vb = sb * sb * N / (N - 1);
        want += (ma - mb) * (ma - mb) + (sqrt(va) - sqrt(vb)) * (sqrt(va) - sqrt(vb));
    }
    CHECK(nd_frechet_distance(a, N, b, N, D, &fd, &err) && fabs(fd - want) < 1e-6 * want, "diagonal: %.10g, want %.10g",
          fd, want);

    // 2-d sets with correlated, non-commuting covariances: Tr (S1 S2)^(1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))
    static float p[2 * 500], q[2 * 300];
    for (int i = 0; i < 500; i++) {
        double u = normal(), v = normal();
        p[2 * i] = (float)(1.0 + 2.0 * u), p[2 * i + 1] = (float)(0.8 * u + 0.5 * v);
    }
    for (int i = 0; i < 300; i++) {
        double u = normal(), v = normal();
        q[2 * i] = (float)(0.3 * u - 0.2 * v), q[2 * i + 1] = (float)(-1.0 + 0.6 * u + 1.5 * v);
    }
    double m1[2], m2[2], s1[4], s2[4];
    moments2(p, 500, m1, s1);
    moments2(q, 300, m2, s2);
    double tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
    double det1 = s1[0] * s1[3] - s1[1] * s1[2], det2 = s2[0] * s2[3] - s2[1] * s2[2];
    want = (m1[0] - m2[0]) * (m1[0] - m2[0]) + (m1[1] - m2[1]) * (m1[1] - m2[1]) + s1[0] + s1[3] + s2[0] + s2[3] -
           2.0 * sqrt(tr12 + 2.0 * sqrt(det1 * det2));
    CHECK(nd_frechet_distance(p, 500, q, 300, 2, &fd, &err) && fabs(fd - want) < 1e-10 * want, "2x2: %.12g, want %.12g",
          fd, want);
    CHECK(nd_frechet_distance(p, 500, q, 300, 2, &fd, &err) && fabs(fd - want) < 1e-10 * want, "FD is not repeatable");

    // fewer vectors than dimensions: singular covariances, still a finite distance >= 0
    CHECK(nd_frechet_distance(a, 8, a + 8 * D, 8, D, &fd, &err) && isfinite(fd) && fd > -1e-9, "singular: %g", fd);
    CHECK(!nd_frechet_distance(a, 1, b, N, D, &fd, &err) && strstr(err.msg, "at least 2"), "one vector: %s", err.msg);
}

static void test_report(void) {
    // 3 classes; image 0 asks for 0 and gets it, 1 asks for 0 and gets 2, 2 asks for 1 and gets it (a tie goes to
    // the first maximum, as torch.argmax), 3 asks for 1 and gets 2
    const float logits[4 * 3] = {2, 0, 0, 0, 0, 1, 0, 3, 3, -1, -1, 4};
    const int32_t labels[4] = {0, 0, 1, 1};
    nd_eval_report r;
    nd_eval_report_init(&r, 3);
    nd_eval_report_add(&r, logits, labels, 2);
    nd_eval_report_add(&r, logits + 6, labels + 2, 2); // in two calls: the totals must add up
    double e = exp(1.0), e2 = exp(2.0), e3 = exp(3.0), e5 = exp(5.0);
    double p0 = e2 / (e2 + 2), p1 = 1 / (2 + e), p2 = e3 / (2 * e3 + 1), p3 = 1 / (2 + e5);
    CHECK(r.n == 4 && r.count[0] == 2 && r.count[1] == 2 && r.count[2] == 0, "counts %lld %lld %lld",
          (long long)r.count[0], (long long)r.count[1], (long long)r.count[2]);
    CHECK(r.correct[0] == 1 && r.correct[1] == 1, "correct %lld %lld", (long long)r.correct[0],
          (long long)r.correct[1]);
    CHECK(fabs(r.accuracy - 0.5) < 1e-15, "accuracy %g", r.accuracy);
    CHECK(fabs(nd_eval_class_accuracy(&r, 0) - 0.5) < 1e-15 && fabs(nd_eval_class_accuracy(&r, 1) - 0.5) < 1e-15,
          "per-class accuracy");
    CHECK(isnan(nd_eval_class_accuracy(&r, 2)) && isnan(nd_eval_class_confidence(&r, 2)), "class 2 was never asked");
    CHECK(fabs(nd_eval_class_confidence(&r, 0) - (p0 + p1) / 2) < 1e-12, "confidence 0: %.15g, want %.15g",
          nd_eval_class_confidence(&r, 0), (p0 + p1) / 2);
    CHECK(fabs(nd_eval_class_confidence(&r, 1) - (p2 + p3) / 2) < 1e-12, "confidence 1: %.15g",
          nd_eval_class_confidence(&r, 1));
    CHECK(fabs(r.confidence - (p0 + p1 + p2 + p3) / 4) < 1e-12, "mean confidence %.15g", r.confidence);
    CHECK(isnan(r.fd), "no FD before one is computed");
}

static char tmp_dir[] = "/tmp/nd_test_eval_XXXXXX";

// Writes size bytes of text to path.
static void write_bytes(const char *path, const char *text, size_t size) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, size, f);
        fclose(f);
    }
}

static void test_cache_file(void) {
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 7);
    nd_eval_classifier a, b, other;
    nd_eval_classifier_create(&a, "fashion-mnist", 1, 8, false, 10, &ctx);
    nd_eval_classifier_create(&b, "fashion-mnist", 1, 8, false, 10, &ctx); // other random weights
    nd_eval_classifier_create(&other, "fashion-mnist", 1, 12, false, 10, &ctx);
    for (int64_t i = 0; i < a.buffers.total; i++) a.buffers.data[i] = 0.5f + (float)i; // running statistics
    char path[600], bad[600];
    nd_error err;
    nd_eval_cache_path(path, sizeof path, tmp_dir, "fashion-mnist", 8, false, false);
    CHECK(strcmp(strrchr(path, '/'), "/eval-classifier-fashion-mnist-8px-pm1.h5") == 0, "cache name %s", path);
    CHECK(nd_eval_classifier_save(path, &a, &ctx, &err), "save: %s", err.msg);
    CHECK(nd_eval_classifier_load(path, &b, &ctx, &err), "load: %s", err.msg);
    CHECK(memcmp(a.params.data, b.params.data, (size_t)a.params.total * sizeof(float)) == 0, "params differ");
    CHECK(memcmp(a.buffers.data, b.buffers.data, (size_t)a.buffers.total * sizeof(float)) == 0, "buffers differ");

    float before = other.params.data[0];
    CHECK(!nd_eval_classifier_load(path, &other, &ctx, &err) && strstr(err.msg, "1x8x8") && strstr(err.msg, path),
          "a classifier of another size: %s", err.msg);
    CHECK(other.params.data[0] == before, "a refused load changed the classifier");
    b.random_flip = true; // one trained on mirrored images is another classifier
    CHECK(!nd_eval_classifier_load(path, &b, &ctx, &err) && strstr(err.msg, "with flips") && strstr(err.msg, path),
          "a classifier trained with flips: %s", err.msg);
    b.random_flip = false;

    // damaged files: garbage, a truncated copy, flipped bytes in the middle (the checksums refuse them)
    FILE *f = fopen(path, "rb");
    static char image[1 << 20];
    size_t size = f ? fread(image, 1, sizeof image, f) : 0;
    if (f) fclose(f);
    snprintf(bad, sizeof bad, "%s/bad.h5", tmp_dir);
    const char *cases[] = {"garbage", "truncated", "flipped"};
    for (int k = 0; k < 3; k++) {
        if (k == 0) write_bytes(bad, "not an HDF5 file at all", 23);
        if (k == 1) write_bytes(bad, image, size / 2);
        if (k == 2) {
            static char flipped[1 << 20];
            memcpy(flipped, image, size);
            for (size_t i = size / 2; i < size / 2 + 64; i++) flipped[i] ^= 0x5a;
            write_bytes(bad, flipped, size);
        }
        bool loaded = nd_eval_classifier_load(bad, &b, &ctx, &err);
        CHECK(!loaded && strstr(err.msg, bad), "%s file: loaded %d, message %s", cases[k], loaded,
              loaded ? "" : err.msg);
    }
    CHECK(!nd_eval_classifier_load("/nonexistent/x.h5", &b, &ctx, &err) && strstr(err.msg, "/nonexistent/x.h5"),
          "missing file: %s", err.msg);
    unlink(bad);
    unlink(path);

    nd_eval_cache_path(path, sizeof path, "/c", "/data/my set/", 16, true, true);
    // the hash (FNV-1a 32 of the whole spec, from an independent implementation) names caches already on disk
    CHECK(strcmp(path, "/c/eval-classifier-my_set-641e4fc2-16px-01-flip.h5") == 0, "cache name %s", path);
    setenv("XDG_CACHE_HOME", "/x", 1);
    CHECK(nd_eval_default_cache_dir(path, sizeof path) && strcmp(path, "/x/nanodiff") == 0, "XDG: %s", path);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    CHECK(nd_eval_default_cache_dir(path, sizeof path) && strcmp(path, "/home/u/.cache/nanodiff") == 0, "HOME: %s",
          path);
    nd_eval_classifier_free(&a);
    nd_eval_classifier_free(&b);
    nd_eval_classifier_free(&other);
    nd_ctx_free(&ctx);
}

// Images of S x S built by formula at pixel (y, x), in float32 as the numpy twin builds them.
enum { HF_SHAPE_CONSTANT, HF_SHAPE_CHECKERBOARD, HF_SHAPE_MIXTURE, HF_SHAPE_AT_HALF_NYQUIST, HF_SHAPE_DIAGONAL_WAVE };
static float hf_shape(int shape, int y, int x, int size) {
    const double two_pi = 6.283185307179586;
    switch (shape) {
    case HF_SHAPE_CONSTANT: return 0.3f;
    case HF_SHAPE_CHECKERBOARD: return (float)((x + y) % 2); // all energy at (S/2, S/2), radius S/sqrt(2)
    case HF_SHAPE_MIXTURE: // radius 2 with energy 1^2/2 and radius 6 with 0.5^2/2: 0.125 / 0.625 = 0.2 above
        return (float)(cos(two_pi * 2 * x / size) + 0.5 * cos(two_pi * 6 * y / size));
    case HF_SHAPE_AT_HALF_NYQUIST: return (float)cos(two_pi * (size / 4) * x / size); // radius S/4: counts as low
    default: return (float)cos(two_pi * 3 * (x + y) / size); // radius 3 sqrt(2) > 4 at S = 16: all high
    }
}

static void fill_shape(float *image, int shape, int size) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) image[y * size + x] = hf_shape(shape, y, x, size);
}

// The high-frequency share on images whose spectrum is known by hand: a constant image 0, a checkerboard 1,
// sinusoids on either side of half the Nyquist radius, their energy-weighted mixture, two channels pooled,
// the mean over images, and indifference to the value range's offset and scale.
static void test_hf_energy_hand(void) {
    enum { S = 16 };
    static float images[3 * S * S];
    const struct {
        int shape;
        double want;
    } cases[] = {{HF_SHAPE_CONSTANT, 0.0},
                 {HF_SHAPE_CHECKERBOARD, 1.0},
                 {HF_SHAPE_MIXTURE, 0.2},
                 {HF_SHAPE_AT_HALF_NYQUIST, 0.0},
                 {HF_SHAPE_DIAGONAL_WAVE, 1.0}};
    // the sinusoids' pixels are rounded to float32, which moves their energies by up to ~1e-8 relative (the
    // DFT's own rounding in double is near 1e-15); a wrong radius or share is off by 0.1 or more
    const double tol = 1e-7;
    for (int k = 0; k < ND_COUNT(cases); k++) {
        fill_shape(images, cases[k].shape, S);
        double h = nd_hf_energy(images, 1, 1, S);
        CHECK(fabs(h - cases[k].want) < tol, "shape %d: %.17g, want %g", cases[k].shape, h, cases[k].want);
    }
    // the mean over images: (0 + 1 + 0.2) / 3
    fill_shape(images, HF_SHAPE_CONSTANT, S);
    fill_shape(images + S * S, HF_SHAPE_CHECKERBOARD, S);
    fill_shape(images + 2 * S * S, HF_SHAPE_MIXTURE, S);
    double h = nd_hf_energy(images, 3, 1, S);
    CHECK(fabs(h - 0.4) < tol, "three images: %.17g, want 0.4", h);
    // offset and scale: the mixture mapped to 3 v - 5 keeps its share
    for (int i = 0; i < S * S; i++) images[i] = 3.0f * images[2 * S * S + i] - 5.0f;
    h = nd_hf_energy(images, 1, 1, S);
    CHECK(fabs(h - 0.2) < 10 * tol, "scaled and shifted mixture: %.17g, want 0.2", h); // pixels of ~5 rounded
    // two channels of 8x8 pooled: a 0/1 checkerboard (energy 64 * 0.25 = 16, all high) and cos(2 pi x / 8)
    // (energy 64 * 0.5 = 32, radius 1, low): 16 / 48
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            images[y * 8 + x] = (float)((x + y) % 2);
            images[64 + y * 8 + x] = (float)cos(6.283185307179586 * x / 8);
        }
    h = nd_hf_energy(images, 1, 2, 8);
    CHECK(fabs(h - 1.0 / 3.0) < tol, "two channels: %.17g, want 1/3", h);
    CHECK(isnan(nd_hf_energy(images, 0, 1, S)), "no images must give NaN");
}

// Images in [0, 1) from the LCG of tests/fixtures/hf_energy_values.py, rounded to float32 as numpy does.
static void lcg_image(float *image, int size, uint32_t seed) {
    uint64_t state = seed;
    for (int i = 0; i < size * size; i++) {
        state = (state * 1103515245u + 12345u) & 0x7fffffffu;
        image[i] = (float)((double)state / 2147483648.0);
    }
}

// Against numpy's FFT (tests/fixtures/hf_energy_values.py): gradients (whose wrap-around edge leaves a little
// high-frequency energy), a smooth blob, and noise at an even and an odd size.
static void test_hf_energy_numpy(void) {
    static float image[28 * 28];
    double want[5] = {0.097825923326555542, 0.060918941254412266, 1.4312797421505504e-05, 0.75455934446327844,
                      0.88044030624828984};
    double found[5];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) image[y * 16 + x] = (float)((x + y) / 30.0);
    found[0] = nd_hf_energy(image, 1, 1, 16);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) image[y * 28 + x] = (float)(x / 27.0);
    found[1] = nd_hf_energy(image, 1, 1, 28);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            image[y * 16 + x] = (float)exp(-((x - 7.5) * (x - 7.5) + (y - 7.5) * (y - 7.5)) / 18.0);
    found[2] = nd_hf_energy(image, 1, 1, 16);
    lcg_image(image, 16, 12345);
    found[3] = nd_hf_energy(image, 1, 1, 16);
    lcg_image(image, 7, 777);
    found[4] = nd_hf_energy(image, 1, 1, 7);
    // the same float32 pixels on both sides; a direct DFT against an FFT differ by rounding of order 1e-15
    // relative to the energy, and the blob's share is itself 1e-5 of it
    for (int k = 0; k < 5; k++)
        CHECK(fabs(found[k] - want[k]) < 1e-12 + 1e-9 * want[k], "case %d: %.17g, numpy %.17g", k, found[k], want[k]);
    CHECK(found[2] < 1e-4 && found[0] < 0.1, "smooth images must score low: blob %g, gradient %g", found[2], found[0]);
}

// Samples holding a NaN or inf are refused before the classifier sees them (they were graded as black).
static void test_nonfinite_samples(void) {
    nd_evaluator ev = {.classifier = {.img_ch = 1, .img_size = 2, .classes = 2}};
    float images[2 * 4] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, NAN, 0.0f, 0.0f};
    int32_t labels[2] = {0, 1};
    nd_eval_report report;
    nd_error err = {{0}};
    CHECK(!nd_eval_images(&ev, NULL, images, labels, 2, &report, &err), "NaN samples were graded");
    CHECK(strstr(err.msg, "sample 1") && strstr(err.msg, "nan") && strstr(err.msg, "non-finite"),
          "the message names no sample: %s", err.msg);
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_eigen_known();
    test_eigen_random();
    test_frechet();
    test_report();
    test_cache_file();
    test_nonfinite_samples();
    test_hf_energy_hand();
    test_hf_energy_numpy();
    rmdir(tmp_dir);
    return test_finish("unit.eval");
}
