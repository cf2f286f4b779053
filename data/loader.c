// Shuffled batches prepared on a background thread, one batch ahead of the consumer (a double buffer).
//
// The stream is numbered from the start position s: stream batch g is batch (s + g) mod P of epoch
// (s + g) div P, with P batches per epoch. The consumer holds batch g while the thread fills batch g + 1 in the other
// buffer; asking for the next batch releases g. What goes into a batch depends only on (seed, epoch, index),
// never on timing.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

struct nd_loader {
    const nd_dataset *ds;
    nd_loader_config cfg;
    int64_t per_epoch, start; // batches per epoch; stream number of the first batch
    int64_t *order;           // (N) the order of order_epoch, touched only by the thread
    int64_t order_epoch;
    nd_batch slots[2];        // batch g lives in slots[g % 2]
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t changed;   // signalled on every change of produced, taken or stop
    int64_t produced, taken;  // batches of the stream filled by the thread, handed to the consumer
    bool stop;
};

// DataLoader's len(): ceil(N / B), or floor with drop_last.
int64_t nd_batches_per_epoch(int64_t n, int batch_size, bool drop_last) {
    return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

// One iteration of DataLoader: the dataset's __getitem__ for each index of the batch, collated.
void nd_batch_fill(nd_batch *batch, const nd_dataset *ds, const nd_loader_config *cfg, const int64_t *order,
                   int64_t epoch, int64_t index) {
    int64_t batch_end = (index + 1) * cfg->batch_size, begin = index * cfg->batch_size + cfg->shard_begin;
    int64_t end = cfg->shard_size > 0 ? begin + cfg->shard_size : batch_end;
    if (end > batch_end) end = batch_end;
    if (end > ds->n) end = ds->n;
    if (begin > end) begin = end;
    int64_t image = (int64_t)ds->c * ds->h * ds->w;
    for (int64_t k = 0; k < end - begin; k++) {
        int64_t i = order[begin + k];
        bool flip = cfg->random_flip && nd_flip_coin(cfg->seed, epoch, i);
        nd_dataset_sample(batch->images + k * image, ds, i, flip, cfg->unit_range);
        if (batch->labels && ds->labels) batch->labels[k] = ds->labels[i];
    }
    batch->size = (int)(end - begin);
    batch->epoch = epoch;
    batch->index = index;
}

// Fills stream batch g, shuffling anew when it opens an epoch.
static void loader_fill(nd_loader *l, int64_t g) {
    int64_t epoch = (l->start + g) / l->per_epoch, index = (l->start + g) % l->per_epoch;
    if (epoch != l->order_epoch) {
        if (l->cfg.shuffle)
            nd_shuffle_order(l->order, l->ds->n, l->cfg.seed, epoch);
        else
            for (int64_t i = 0; i < l->ds->n; i++) l->order[i] = i;
        l->order_epoch = epoch;
    }
    nd_batch_fill(&l->slots[g % 2], l->ds, &l->cfg, l->order, epoch, index);
}

// The producer: fills the next batch whenever its slot is free, until told to stop.
static void *loader_thread(void *arg) {
    nd_loader *l = arg;
    pthread_mutex_lock(&l->mutex);
    for (;;) {
        // Batch p reuses the slot of batch p - 2, which is free once the consumer has asked for batch p - 1
        // (taken >= p): from then on it holds p - 1 at most.
        while (!l->stop && l->produced >= l->taken + 1) pthread_cond_wait(&l->changed, &l->mutex);
        if (l->stop) break;
        int64_t g = l->produced;
        pthread_mutex_unlock(&l->mutex);
        loader_fill(l, g);
        pthread_mutex_lock(&l->mutex);
        l->produced = g + 1;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->mutex);
    return NULL;
}

// Frees the loader and its buffers (the thread is not running).
static void loader_free_memory(nd_loader *l) {
    for (int s = 0; s < 2; s++) {
        free(l->slots[s].images);
        free(l->slots[s].labels);
    }
    free(l->order);
    free(l);
}

// torch.utils.data.DataLoader(ds, batch_size, shuffle, drop_last) with one worker prefetching one batch.
nd_loader *nd_loader_create(const nd_dataset *ds, const nd_loader_config *cfg, int64_t start_epoch,
                            int64_t start_index, nd_error *err) {
    if (cfg->batch_size < 1) {
        nd_error_set(err, "batch size %d: expected at least 1", cfg->batch_size);
        return NULL;
    }
    if (cfg->shard_begin < 0 || cfg->shard_size < 0 || cfg->shard_begin + cfg->shard_size > cfg->batch_size) {
        nd_error_set(err, "batch rows %d to %d: expected a range inside the batch of %d", cfg->shard_begin,
                     cfg->shard_begin + cfg->shard_size, cfg->batch_size);
        return NULL;
    }
    int64_t per_epoch = nd_batches_per_epoch(ds->n, cfg->batch_size, cfg->drop_last);
    if (per_epoch < 1) {
        nd_error_set(err, "the data set holds %lld images, fewer than one batch of %d with drop_last: "
                     "expected a smaller batch size", (long long)ds->n, cfg->batch_size);
        return NULL;
    }
    if (start_epoch < 0 || start_epoch >= (1 << 30) || start_index < 0 || start_index >= per_epoch) {
        nd_error_set(err, "start at epoch %lld, batch %lld: expected epoch 0 to 2^30 and batch 0 to %lld",
                     (long long)start_epoch, (long long)start_index, (long long)per_epoch - 1);
        return NULL;
    }
    nd_loader *l = calloc(1, sizeof *l);
    if (!l) {
        nd_error_set(err, "out of memory for the batch loader");
        return NULL;
    }
    l->ds = ds;
    l->cfg = *cfg;
    l->per_epoch = per_epoch;
    l->start = start_epoch * per_epoch + start_index;
    l->order_epoch = -1;
    l->order = nd_xmalloc((size_t)ds->n * sizeof *l->order);
    size_t image_floats = (size_t)cfg->batch_size * ds->c * ds->h * ds->w;
    bool ok = l->order != NULL;
    for (int s = 0; s < 2 && ok; s++) {
        l->slots[s].images = nd_xmalloc(image_floats * sizeof(float));
        ok = l->slots[s].images != NULL;
        if (ok && ds->labels) {
            l->slots[s].labels = nd_xmalloc((size_t)cfg->batch_size * sizeof(int32_t));
            ok = l->slots[s].labels != NULL;
        }
    }
    if (!ok) {
        nd_error_set(err, "out of memory for two batches of %d images", cfg->batch_size);
        loader_free_memory(l);
        return NULL;
    }
    pthread_mutex_init(&l->mutex, NULL);
    pthread_cond_init(&l->changed, NULL);
    if (pthread_create(&l->thread, NULL, loader_thread, l) != 0) {
        nd_error_set(err, "cannot start the batch loader thread");
        pthread_cond_destroy(&l->changed);
        pthread_mutex_destroy(&l->mutex);
        loader_free_memory(l);
        return NULL;
    }
    return l;
}

// next(iter(loader)), across epoch boundaries.
const nd_batch *nd_loader_next(nd_loader *l) {
    pthread_mutex_lock(&l->mutex);
    int64_t g = l->taken;
    l->taken = g + 1;
    pthread_cond_broadcast(&l->changed);
    while (l->produced <= g) pthread_cond_wait(&l->changed, &l->mutex);
    pthread_mutex_unlock(&l->mutex);
    return &l->slots[g % 2];
}

int64_t nd_loader_batches_per_epoch(const nd_loader *l) { return l->per_epoch; }

void nd_loader_free(nd_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mutex);
    l->stop = true;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->mutex);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->changed);
    pthread_mutex_destroy(&l->mutex);
    loader_free_memory(l);
}
