// Data-parallel training without a launcher: how a batch is shared out (rows, weights), the loader's shards
// putting the whole batch back together, and a program not started by mpirun being rank 0 of 1 untouched.
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train.h"

// Shares of batch B over N ranks: contiguous, in rank order, covering every row once, sizes differing by one
// at most (larger first), weights summing to 1.
static void test_shards(void) {
    static const int cases[][2] = {{8, 2}, {7, 2}, {128, 3}, {5, 5}, {1, 1}, {130, 8}};
    for (int c = 0; c < ND_COUNT(cases); c++) {
        int batch = cases[c][0], size = cases[c][1], next = 0;
        double weights = 0;
        for (int rank = 0; rank < size; rank++) {
            nd_dist d = {.rank = rank, .size = size};
            nd_dist_shard s = nd_dist_shard_of(&d, batch);
            CHECK(s.begin == next, "B %d, N %d: rank %d starts at %d, expected %d", batch, size, rank, s.begin, next);
            CHECK(s.size == batch / size + (rank < batch % size), "B %d, N %d: rank %d takes %d rows", batch, size,
                  rank, s.size);
            CHECK(s.weight == (float)s.size / (float)batch, "B %d, N %d: rank %d weight %g", batch, size, rank,
                  s.weight);
            next += s.size, weights += s.weight;
        }
        CHECK(next == batch, "B %d, N %d: shares cover %d rows", batch, size, next);
        CHECK(weights > 1 - 1e-6 && weights < 1 + 1e-6, "B %d, N %d: weights sum to %g", batch, size, weights);
    }
    nd_dist one = {.rank = 0, .size = 1};
    nd_dist_shard all = nd_dist_shard_of(&one, 128);
    CHECK(all.begin == 0 && all.size == 128 && all.weight == 1.0f, "one process takes the batch: %d+%d, %g",
          all.begin, all.size, all.weight);
}

// 4 x 4 images whose label is their index: a shard's rows name the images they hold.
static nd_dataset make_set(int64_t n) {
    nd_dataset ds = {.n = n, .c = 1, .h = 4, .w = 4, .num_classes = (int)n};
    ds.images = malloc((size_t)n * 16);
    ds.labels = malloc((size_t)n * sizeof *ds.labels);
    for (int64_t i = 0; i < n; i++) {
        ds.labels[i] = (int32_t)i;
        for (int p = 0; p < 16; p++) ds.images[i * 16 + p] = (uint8_t)(i * 7 + p * 11);
    }
    return ds;
}

// Three ranks' loaders of batch 7 (shares 3, 2, 2) hand out, side by side, the one loader's batches: same
// images (flips included), same labels, across an epoch boundary and from a resumed position.
static void test_loader_shards(void) {
    nd_dataset ds = make_set(30); // 4 batches of 7 an epoch
    nd_loader_config whole = {.batch_size = 7, .shuffle = true, .drop_last = true, .random_flip = true, .seed = 9};
    enum { RANKS = 3, IMAGE = 16 };
    for (int start = 0; start <= 3; start += 3) {
        nd_error err = {{0}};
        nd_loader *one = nd_loader_create(&ds, &whole, 0, start, &err);
        nd_loader *part[RANKS];
        for (int r = 0; r < RANKS; r++) {
            nd_dist d = {.rank = r, .size = RANKS};
            nd_dist_shard s = nd_dist_shard_of(&d, whole.batch_size);
            nd_loader_config c = whole;
            c.shard_begin = s.begin, c.shard_size = s.size;
            part[r] = nd_loader_create(&ds, &c, 0, start, &err);
            CHECK(part[r] != NULL, "rank %d's loader: %s", r, err.msg);
        }
        if (!one || !part[0] || !part[1] || !part[2]) break;
        for (int step = 0; step < 6; step++) { // from batch `start` into the next epoch
            const nd_batch *b = nd_loader_next(one);
            int row = 0;
            for (int r = 0; r < RANKS; r++) {
                const nd_batch *p = nd_loader_next(part[r]);
                CHECK(p->epoch == b->epoch && p->index == b->index, "rank %d at (%lld, %lld), whole at (%lld, %lld)",
                      r, (long long)p->epoch, (long long)p->index, (long long)b->epoch, (long long)b->index);
                CHECK(memcmp(p->images, b->images + row * IMAGE, (size_t)p->size * IMAGE * sizeof(float)) == 0 &&
                          memcmp(p->labels, b->labels + row, (size_t)p->size * sizeof(int32_t)) == 0,
                      "start %d, step %d: rank %d's rows differ from rows %d.. of the whole batch", start, step, r,
                      row);
                row += p->size;
            }
            CHECK(row == b->size, "the shards hold %d rows of a batch of %d", row, b->size);
        }
        nd_loader_free(one);
        for (int r = 0; r < RANKS; r++) nd_loader_free(part[r]);
    }
    nd_loader_config bad = whole;
    bad.shard_begin = 5, bad.shard_size = 3;
    nd_error err = {{0}};
    CHECK(nd_loader_create(&ds, &bad, 0, 0, &err) == NULL && strstr(err.msg, "rows 5 to 8") &&
              strstr(err.msg, "batch of 7"),
          "a shard past the batch: \"%s\"", err.msg);
    nd_dataset_free(&ds);
}

// Without a launcher nothing joins MPI and every call leaves the numbers alone.
static void test_single_process(void) {
    nd_error err = {{0}};
    CHECK(nd_dist_init(false, &err), "nd_dist_init without a launcher: %s", err.msg);
    const nd_dist *d = nd_dist_world();
    CHECK(d->rank == 0 && d->size == 1 && !d->mpi, "rank %d of %d, mpi %d", d->rank, d->size, d->mpi);
    CHECK(nd_dist_use_device(ND_CPU, &err), "nd_dist_use_device: %s", err.msg);
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 16, 1);
    nd_params p;
    nd_params_init(&p);
    nd_params_add(&p, "w", ND_SHAPE(5), ND_INIT_UNIFORM, 1.0f);
    nd_params_alloc(&p, &ctx);
    for (int i = 0; i < 5; i++) p.grad[i] = 0.25f * (float)i;
    nd_dist_average_grads(&p, 0.5f, &ctx);
    bool kept = true;
    for (int i = 0; i < 5; i++) kept = kept && p.grad[i] == 0.25f * (float)i;
    CHECK(kept, "gradients changed in a single process");
    bool stop = false;
    CHECK(nd_dist_mean_loss(1.5, 0.5f, &stop) == 1.5 && !stop, "the loss of a single process changed");
    CHECK(nd_dist_check_start(&p, 3, 10, &err), "a single process disagrees with itself: %s", err.msg);
    nd_params_free(&p);
    nd_ctx_free(&ctx);
    nd_dist_finalize();
}

int main(void) {
    test_shards();
    test_loader_shards();
    test_single_process();
    return test_finish("dist_unit");
}
