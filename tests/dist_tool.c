// Helper of the data-parallel tests (test_mpi.sh): writes their tiny data set, compares the weights of two
// checkpoints, and says whether a GPU is there.
//   dist_tool data PATH N          N labelled 8x8 images (4 classes) in an HDF5 file
//   dist_tool compare A B TOL      exit 0 when max |a - b| / max |a| over the weights is <= TOL (TOL 0: same bits)
//   dist_tool gpu                  exit 0 with a usable GPU, 77 without
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

enum { CLASSES = 4, SIZE = 8 };

// Class k is a bright horizontal bar at rows 2k..2k+1 on a dark ground, with a little texture per image.
static int write_data(const char *path, int n) {
    float *images = nd_xmalloc((size_t)n * SIZE * SIZE * sizeof(float)); // (n, 1, 8, 8)
    int32_t *labels = nd_xmalloc((size_t)n * sizeof(int32_t));          // (n)
    for (int i = 0; i < n; i++) {
        int k = i % CLASSES;
        labels[i] = k;
        for (int y = 0; y < SIZE; y++)
            for (int x = 0; x < SIZE; x++)
                images[(i * SIZE + y) * SIZE + x] =
                    (y / 2 == k ? 0.9f : 0.1f) + 0.05f * (float)((i * 7 + x * 3 + y) % 3);
    }
    nd_error err;
    bool ok = nd_samples_write_hdf5(path, images, n, 1, SIZE, SIZE, labels, &err);
    if (!ok) fprintf(stderr, "dist_tool data: %s\n", err.msg);
    free(images);
    free(labels);
    return ok ? 0 : 1;
}

// A checkpoint's model on the CPU.
typedef struct loaded {
    nd_ctx ctx;
    nd_model model;
    bool ok;
} loaded;

static void load(loaded *l, const char *path) {
    nd_ctx_init(&l->ctx, ND_CPU, 1 << 20, 0);
    nd_ddpm_config cfg;
    nd_error err;
    l->ok = nd_checkpoint_load_model(path, false, &l->model, &cfg, &l->ctx, &err);
    if (!l->ok) fprintf(stderr, "dist_tool compare: %s\n", err.msg);
}

static void unload(loaded *l) {
    if (l->ok) nd_model_free(&l->model);
    nd_ctx_free(&l->ctx);
}

// The name of the parameter that holds flat index i.
static const char *param_at(const nd_params *p, int64_t i) {
    for (int k = 0; k < p->n; k++)
        if (i >= p->items[k].offset && i < p->items[k].offset + p->items[k].tensor->numel) return p->items[k].name;
    return "?";
}

static int compare(const char *a_path, const char *b_path, double tolerance) {
    loaded la, lb;
    load(&la, a_path);
    load(&lb, b_path);
    int rc = 1;
    const nd_params *pa = &la.model.params, *pb = &lb.model.params;
    if (la.ok && lb.ok && pa->total != pb->total) {
        fprintf(stderr, "dist_tool compare: %s holds %lld weights, %s %lld\n", a_path, (long long)pa->total,
                b_path, (long long)pb->total);
    } else if (la.ok && lb.ok) {
        const float *a = pa->data, *b = pb->data; // (total,)
        double max_diff = 0, max_abs = 0, diff2 = 0, norm2 = 0;
        int64_t differ = 0, worst = 0;
        for (int64_t i = 0; i < pa->total; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            if (d > max_diff) max_diff = d, worst = i;
            differ += a[i] != b[i];
            max_abs = fmax(max_abs, fabs((double)a[i]));
            diff2 += d * d, norm2 += (double)a[i] * a[i];
        }
        double relative = max_abs > 0 ? max_diff / max_abs : max_diff;
        printf("%lld weights, %lld differ; max |a - b| %.3g (%s: %.9g vs %.9g), / max |a| = %.3g (tolerance %.3g); "
               "|a - b| / |a| = %.3g\n",
               (long long)pa->total, (long long)differ, max_diff, param_at(pa, worst), a[worst], b[worst], relative,
               tolerance, norm2 > 0 ? sqrt(diff2 / norm2) : 0.0);
        rc = (tolerance == 0 ? differ == 0 : relative <= tolerance) ? 0 : 1;
    }
    unload(&la);
    unload(&lb);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "data") == 0) return write_data(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "compare") == 0) return compare(argv[2], argv[3], atof(argv[4]));
    if (argc == 2 && strcmp(argv[1], "gpu") == 0) return nd_cuda_available(NULL, 0) ? 0 : 77;
    fprintf(stderr, "usage: dist_tool data PATH N | compare A.h5 B.h5 TOL | gpu\n");
    return 2;
}
