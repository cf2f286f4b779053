// nanodiff eval: sample quality. The judge (a CNN classifier trained on the data set and cached), the
// accuracy and confidence it gives guided samples, and the Fréchet distance of its features.
#ifndef ND_EVAL_H
#define ND_EVAL_H

#include <stdio.h>

#include "train.h"

// sample quality: an independent CNN classifier trained on the data set's train split at the evaluated
// image size and value range; its accuracy and confidence on guided samples, and the Fréchet distance
// between its penultimate features of samples and of real test images (a classifier-feature FID)

#define ND_EVAL_FEATURES 128 // penultimate width: the features the Fréchet distance compares
#define ND_EVAL_MAX_CLASSES 64

// Conv(C,32,3,p1)-BN-ReLU-MaxPool2 - Conv(32,64,3,p1)-BN-ReLU-MaxPool2 - Conv(64,128,3,p1)-BN-ReLU -
// Linear(128 (S/4)^2, 128)-ReLU - Linear(128, classes); parameters named conv1, bn1, ..., fc1, fc2 as a PyTorch
// twin would name them.
typedef struct nd_eval_classifier {
    char data[512];       // the data set it was trained on
    int img_ch, img_size; // square images
    bool unit_range;      // trained on [0, 1] images instead of [-1, 1]
    bool random_flip;     // trained on images mirrored at random, as the evaluated model's data (false after
                          // nd_eval_classifier_create; set it before training)
    int classes;
    nd_params params;
    nd_params buffers; // BatchNorm running statistics
    nd_conv2d_layer conv1, conv2, conv3;
    nd_batch_norm2d_layer bn1, bn2, bn3;
    nd_linear_layer fc1, fc2;
} nd_eval_classifier;

typedef struct nd_eval_train_config {
    int epochs, batch_size;
    float lr;          // Adam's, decayed to zero along a cosine
    uint64_t seed;     // shuffling (the weights come from the context's RNG)
    int64_t max_steps; // 0: epochs * batches per epoch; else stop early (tests)
    bool progress;     // print the progress line
} nd_eval_train_config;

nd_eval_train_config nd_eval_train_defaults(void); // 3 epochs of batch 64, Adam lr 3e-3

// Creates the layers for the given images and classes on the context's device, initialized as PyTorch does.
void nd_eval_classifier_create(nd_eval_classifier *c, const char *data, int img_ch, int img_size, bool unit_range,
                               int classes, nd_ctx *ctx);
void nd_eval_classifier_free(nd_eval_classifier *c);
// Trains on a labelled set already resized to the classifier's size; seconds (may be NULL) gets the time taken.
bool nd_eval_classifier_train(nd_eval_classifier *c, const nd_dataset *train, const nd_eval_train_config *cfg,
                              nd_ctx *ctx, double *seconds, nd_error *err);
// Scores host images (n, C, S, S) in the classifier's range: logits (n, classes) and features (n, 128) into host
// buffers, either of which may be NULL. No gradient; batches keep the step arena small.
void nd_eval_classifier_run(nd_ctx *ctx, const nd_eval_classifier *c, const float *images, int64_t n, float *logits,
                            float *features);
// HDF5 file: attributes format, version, data, img_ch, img_size, unit_range, classes; params/<name> and
// buffers/<name> datasets with checksums; written to a temporary file renamed into place.
bool nd_eval_classifier_save(const char *path, const nd_eval_classifier *c, nd_ctx *ctx, nd_error *err);
// Loads into a classifier created for the same data, size, range and classes; false, with what differs or what is
// damaged, leaves it unchanged.
bool nd_eval_classifier_load(const char *path, nd_eval_classifier *c, nd_ctx *ctx, nd_error *err);
// $XDG_CACHE_HOME/nanodiff, else $HOME/.cache/nanodiff; false when neither variable is set.
bool nd_eval_default_cache_dir(char *buf, size_t size);
// <cache_dir>/eval-classifier-<data>-<size>px-<01|pm1>[-flip].h5, the data set's name made safe for a file
// name.
void nd_eval_cache_path(char *buf, size_t size, const char *cache_dir, const char *data, int img_size, bool unit_range,
                        bool random_flip);

// Per-class and overall scores of images requested as given classes.
typedef struct nd_eval_report {
    int classes;
    int64_t n;                                  // images scored
    int64_t count[ND_EVAL_MAX_CLASSES];         // images requested of each class
    int64_t correct[ND_EVAL_MAX_CLASSES];       // of those, classified as requested (argmax)
    double confidence_sum[ND_EVAL_MAX_CLASSES]; // softmax probability of the requested class, summed
    double accuracy, confidence;                // over all images
    double fd;                                  // Fréchet distance to the real reference features (NAN: none)
    double hf_energy;                           // nd_hf_energy of the images as scored (NAN: none)
} nd_eval_report;

void nd_eval_report_init(nd_eval_report *r, int classes);
// Adds logits (n, classes) of images requested as labels (n).
void nd_eval_report_add(nd_eval_report *r, const float *logits, const int32_t *labels, int64_t n);
double nd_eval_class_accuracy(const nd_eval_report *r, int k);   // NAN when no image asked for class k
double nd_eval_class_confidence(const nd_eval_report *r, int k); // NAN likewise

// Eigenvalues (n) and eigenvectors (n, n), column j for values[j], of the symmetric a (n, n), which is
// destroyed; LAPACK's dsyevd in double precision, eigenvalues ascending (scipy.linalg.eigh). Returns 0, or -1
// when a is not finite or LAPACK fails.
int nd_eigen_symmetric(double *a, int n, double *values, double *vectors);
// |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of feature sets a (na, dim) and b (nb, dim), with
// unbiased covariances (numpy.cov) and Tr (S_a S_b)^(1/2) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2))).
bool nd_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim, double *fd, nd_error *err);

// High-frequency energy of images (n, C, S, S): the mean over images of the share of each image's spectral
// energy above half the Nyquist radius. With each channel's mean removed, X[u][v] = sum_{y,x} (img[y][x] - mean)
// exp(-2 pi i (u y + v x) / S) (the 2-D DFT, numpy.fft.fft2) and ku = min(u, S - u), kv = min(v, S - v) (the
// frequency in cycles per pixel is (ku, kv) / S, Nyquist's 1/2), an image's share is
//     h = sum over ku^2 + kv^2 > (S / 4)^2 of |X[u][v]|^2  /  sum over all (u, v) of |X[u][v]|^2,
// its channels' energies pooled; an image without variation has h = 0. h lies in [0, 1] and ignores the value
// range's offset and scale: 0 for a constant image, near 0 for a smooth one, 1 for a one-pixel checkerboard (all
// its energy at (S/2, S/2)), about 0.81 for white noise (the share of the frequencies outside radius S/4).
// A frequency exactly at radius S/4 counts as low. NAN when n, C or S is below 1.
double nd_hf_energy(const float *images, int64_t n, int channels, int size);

// Everything an evaluation compares with: the classifier (from the cache, else trained and cached) and its
// features of the data set's test split, cut class by class into two halves by the parity of each image's
// rank within its class: the odd ranks are the reference that samples are compared with, the even ranks the
// held-out real images of the floor.
typedef struct nd_eval_setup {
    const char *data; // "fashion-mnist" or an IDX directory: a set with train and test splits
    int img_ch, img_size;
    bool unit_range;
    int classes;           // the model's; must equal the data set's
    bool random_flip;      // the model learned from images mirrored at random: so does the classifier, and
                           // the real images it compares samples with are mirrored half the time (by a fixed
                           // coin). Without it a mirrored shoe is not a shoe: Fashion-MNIST's footwear all
                           // points one way.
    const char *cache_dir; // NULL: nd_eval_default_cache_dir (no cache when that is unknown); "": no cache
    nd_eval_train_config train;
    FILE *log; // notes (training, a cache that cannot be used), or NULL
} nd_eval_setup;

typedef struct nd_evaluator {
    nd_eval_classifier classifier;
    char cache_path[1100]; // "" when uncached
    bool trained;          // trained in this run, not loaded
    double train_seconds;
    double test_accuracy; // of the classifier on the whole test split
    float *reference;     // (n_reference, 128) features of the odd-rank half
    int64_t n_reference;
    float *held;          // (n_held, 128) features of the even-rank half
    int32_t *held_labels; // (n_held)
    int64_t n_held;
    double hf_energy_real; // nd_hf_energy of the reference half's images, as the classifier sees them
} nd_evaluator;

bool nd_evaluator_init(nd_evaluator *ev, const nd_eval_setup *setup, nd_ctx *ctx, nd_error *err);
void nd_evaluator_free(nd_evaluator *ev);
// Scores images (n, C, S, S) requested as labels (n): accuracy, confidence, the Fréchet distance to the
// reference half and their high-frequency energy. Images are clamped to the classifier's range first, as a PNG
// shows them.
bool nd_eval_images(const nd_evaluator *ev, nd_ctx *ctx, const float *images, const int32_t *labels, int64_t n,
                    nd_eval_report *report, nd_error *err);
// The real-vs-real floor: Fréchet distances between per_class held-out images of each class and the reference
// half, over every disjoint draw the held-out half allows (one, with fewer images, where a class runs short).
// The spread of the draws shows how far a distance moves by sampling alone.
typedef struct nd_eval_floor_stats {
    double mean, min, max; // over the draws
    int draws;
    int64_t images; // in each draw
} nd_eval_floor_stats;

bool nd_eval_floor(const nd_evaluator *ev, int per_class, nd_eval_floor_stats *floor, nd_error *err);

#endif
