// nanodiff data: IDX (gzipped or plain) and HDF5 data sets, transforms, batches, PNG output.
//
// The pipeline is the course's (torchvision): a data set is loaded once into host memory as uint8 (or float)
// images, resized once with PIL's bilinear filter and kept; the loader then draws shuffled batches, applying
// ToTensor, RandomHorizontalFlip and x*2-1 per sample, on a background thread one batch ahead of training.
// Every random choice is a Philox draw keyed by (seed, epoch, index), so batches are the same on any machine.
#ifndef ND_DATA_H
#define ND_DATA_H

#include <stdio.h>

#include "autograd.h"

// ---------------------------------------------------------------------------------------------------
// IDX files (the MNIST format): big-endian header, magic 0x00000800 | rank, then the dimensions and the bytes.

#define ND_IDX_MAX_DIMS 8

typedef struct nd_idx {
    int ndim;
    int64_t dims[ND_IDX_MAX_DIMS];
    int64_t numel;
    uint8_t *data; // (dims[0], ..., dims[ndim-1])
} nd_idx;

// Reads an unsigned-byte IDX file, gzipped or plain. On failure out is left empty and err names the file,
// the field, and what was expected and found (bad magic, truncated, corrupt gzip data, trailing bytes, ...).
bool nd_idx_read(nd_idx *out, const char *path, nd_error *err);
void nd_idx_free(nd_idx *idx);

// ---------------------------------------------------------------------------------------------------
// labelled image data sets

#define ND_MAX_CLASSES 65536 // labels of a data set are below this (a class embedding has a row per class)
#define ND_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist" // Debian's dataset-fashion-mnist

// Fashion-MNIST's class names by label, as the course lists them (label 0 is "T-shirt/top").
extern const char *const nd_fashion_mnist_classes[10];

typedef enum { ND_SPLIT_TRAIN, ND_SPLIT_TEST, ND_SPLIT_ALL } nd_split; // ALL: train then test, as the course

typedef struct nd_dataset {
    int64_t n;         // number of images
    int c, h, w;       // channels, height, width of every image
    uint8_t *images;   // (N, C, H, W) grey levels 0..255, or NULL when the set holds float images
    float *images_f32; // (N, C, H, W) values in [0, 1], or NULL when the set holds uint8 images
    int32_t *labels;   // (N) class indices, or NULL for an unlabelled set
    int num_classes;   // 0 for an unlabelled set
} nd_dataset;

// Images (rank-3 IDX: N x H x W) and labels (rank-1 IDX: N) as one set; labels must be < num_classes, or
// num_classes = 0 takes the largest label + 1.
bool nd_dataset_load_idx_pair(nd_dataset *ds, const char *images_path, const char *labels_path, int num_classes,
                              nd_error *err);
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in dir, as torchvision's (Fashion)MNIST reads them.
bool nd_dataset_load_idx_dir(nd_dataset *ds, const char *dir, nd_split split, int num_classes, nd_error *err);
// An HDF5 file with `images` (N x C x H x W, uint8, or float in [0, 1]) and optional `labels` (N integers).
bool nd_dataset_load_hdf5(nd_dataset *ds, const char *path, nd_error *err);
// "fashion-mnist" (Debian's copy, 10 classes), a directory of IDX files, or an HDF5 file (which has one
// split: split is ignored for it).
bool nd_dataset_load(nd_dataset *ds, const char *spec, nd_split split, nd_error *err);
void nd_dataset_free(nd_dataset *ds);
// Writes float images (N x C x H x W, values in [0, 1]) and optional labels (N) to an HDF5 file that
// nd_dataset_load_hdf5 reads back; through a temporary file renamed into place.
bool nd_samples_write_hdf5(const char *path, const float *images, int64_t n, int c, int h, int w, const int32_t *labels,
                           nd_error *err);

// ---------------------------------------------------------------------------------------------------
// transforms (torchvision's, as the course composes them)

// torchvision.transforms.Resize((out_h, out_w)) applied once to every image of the set, in place.
bool nd_dataset_resize(nd_dataset *ds, int out_h, int out_w, nd_error *err);

// ToTensor, then RandomHorizontalFlip's flip when flip is set, then x*2-1 unless unit_range: image i -> dst.
void nd_dataset_sample(float *dst, const nd_dataset *ds, int64_t i, bool flip, bool unit_range); // (C, H, W)

// Per-pixel mean and (biased) variance of the training images as the loader hands them out (transforms as
// nd_dataset_sample; with random_flip every image counts half as itself, half mirrored, which is what the
// flips give on average). mean and var hold C*H*W values.
void nd_dataset_moments(const nd_dataset *ds, bool random_flip, bool unit_range, double *mean, double *var);

// RandomHorizontalFlip(p=0.5)'s coin for image `index` in `epoch`: one Philox draw of (seed, epoch, index).
bool nd_flip_coin(uint64_t seed, int64_t epoch, int64_t index);
// DataLoader(shuffle=True)'s order for an epoch: Fisher-Yates over 0..n-1 driven by Philox draws of
// (seed, epoch, position). Needs n < 2^32 and epoch < 2^30.
void nd_shuffle_order(int64_t *order, int64_t n, uint64_t seed, int64_t epoch); // (N)

// ---------------------------------------------------------------------------------------------------
// batches: a given (seed, epoch, batch index) always yields the same batch, whatever the thread timing, the
// machine, or where a run was resumed.

typedef struct nd_loader_config {
    int batch_size;   // B
    bool shuffle;     // a new order every epoch, else the set's order
    bool drop_last;   // skip the last, incomplete batch of an epoch (the course: 70000/128 -> 546 batches)
    bool random_flip; // RandomHorizontalFlip(p=0.5)
    bool unit_range;  // keep ToTensor's [0, 1] (the assessment) instead of x*2-1 -> [-1, 1]
    uint64_t seed;
    // The rows [shard_begin, shard_begin + shard_size) of every batch, for one process of a data-parallel
    // run; shard_size 0: the whole batch. Epochs still count batches of batch_size.
    int shard_begin, shard_size;
} nd_loader_config;

typedef struct nd_batch {
    float *images;   // (B, C, H, W), host memory: upload with nd_copy_from_host
    int32_t *labels; // (B), or NULL for an unlabelled set
    int size;        // B (or the shard's rows), fewer for the last batch of an epoch without drop_last
    int64_t epoch, index;
} nd_batch;

// Batches in one epoch: ceil(N / B), or floor(N / B) with drop_last.
int64_t nd_batches_per_epoch(int64_t n, int batch_size, bool drop_last);
// Fills batch `index` of `epoch` from that epoch's order (nd_shuffle_order): the pure function the loader
// thread runs. batch->images and batch->labels must hold B images and labels.
void nd_batch_fill(nd_batch *batch, const nd_dataset *ds, const nd_loader_config *cfg, const int64_t *order,
                   int64_t epoch, int64_t index);

typedef struct nd_loader nd_loader;

// Starts a thread that prepares batches from (start_epoch, start_index) on, one ahead of the consumer, running
// on into the next epochs. ds must outlive the loader.
nd_loader *nd_loader_create(const nd_dataset *ds, const nd_loader_config *cfg, int64_t start_epoch, int64_t start_index,
                            nd_error *err);
// The next batch, valid until the following call or nd_loader_free.
const nd_batch *nd_loader_next(nd_loader *loader);
int64_t nd_loader_batches_per_epoch(const nd_loader *loader);
// Stops and joins the thread (at any point of an epoch) and frees every buffer.
void nd_loader_free(nd_loader *loader);

// ---------------------------------------------------------------------------------------------------
// PNG output

typedef struct nd_image8 {
    uint8_t *pixels; // (H, W, C), rows top to bottom, channels interleaved as PNG stores them
    int height, width;
    int channels; // 1 (grey) or 3 (RGB)
} nd_image8;

// torchvision.utils.make_grid(images, nrow, padding, pad_value=0) then save_image's rounding to bytes:
// images in [-1, 1] (or [0, 1] with unit_range) are clamped and laid out nrow to a row.
bool nd_image_grid(nd_image8 *out, const float *images, int n, int c, int h, int w, int nrow, int padding,
                   bool unit_range, nd_error *err); // images: (N, C, H, W)
void nd_image8_free(nd_image8 *img);
// out = img with each pixel repeated factor x factor times (nearest-neighbour upscaling, factor >= 1), so a grid
// of small images can be judged by eye; false, out empty, when the result would pass the PNG size limit.
bool nd_image8_scale(nd_image8 *out, const nd_image8 *img, int factor, nd_error *err);
// Writes an 8-bit grey or RGB PNG through a temporary file renamed into place, so an existing file is never
// left half-written.
bool nd_png_write(const char *path, const nd_image8 *img, nd_error *err);

// ---------------------------------------------------------------------------------------------------
// atomic file writes (data/atomic_file.c): every writer of nanodiff goes through these, so a file appears
// whole or not at all: a temporary file beside the target, flushed and fsynced, renamed over it, the
// directory fsynced. A failure leaves the target as it was and names the step and the system's reason.

typedef struct nd_atomic_file {
    FILE *f;         // write the content here
    char path[4096]; // the target
    char tmp[4120];  // the temporary file beside it
} nd_atomic_file;

// Creates the temporary file; false with err naming path.
bool nd_atomic_open(nd_atomic_file *af, const char *path, nd_error *err);
// Flushes, fsyncs and renames the temporary file over the target (a write error seen by the stream fails it);
// false with err, the temporary file removed.
bool nd_atomic_commit(nd_atomic_file *af, nd_error *err);
// Drops the temporary file; the target is untouched.
void nd_atomic_abort(nd_atomic_file *af);
// The whole file from memory (an HDF5 file image, say).
bool nd_atomic_write(const char *path, const void *data, size_t size, nd_error *err);
// Removes path's temporary files left by writers that were killed ("<path>.tmp.<pid>..." whose process is
// gone); returns how many.
int nd_atomic_clean_stale(const char *path);
#include "text.h" // captions and the BPE tokenizer

#endif
