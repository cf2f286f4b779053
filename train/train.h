// nanodiff train: optimizers over flat parameter buffers, and the training loops built on them.
#ifndef ND_TRAIN_H
#define ND_TRAIN_H

#include "autograd.h"
#include "data.h"
#include "nn.h"
#include "sample.h"

// torch.optim.Adam (decoupled = false: weight decay added to the gradient) and torch.optim.AdamW
// (decoupled = true). Defaults as PyTorch's: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0 (Adam)
// or 1e-2 (AdamW).
typedef struct nd_adam_config {
    float lr, beta1, beta2, eps, weight_decay;
    bool decoupled;
} nd_adam_config;

nd_adam_config nd_adam_defaults(void);
nd_adam_config nd_adamw_defaults(void);

typedef struct nd_adam {
    nd_adam_config config;
    int64_t step;  // updates taken so far
    int64_t n;     // floats in each buffer
    nd_device device;
    float *m, *v;  // (n,) first and second moments, one flat buffer each
} nd_adam;

void nd_adam_init(nd_adam *opt, const nd_params *params, nd_ctx *ctx, nd_adam_config config);
void nd_adam_free(nd_adam *opt);
// One update of every parameter from the flat gradient buffer.
void nd_adam_step(nd_adam *opt, nd_params *params, nd_ctx *ctx);

// Scales the flat gradient so its global L2 norm is at most max_norm (torch.nn.utils.clip_grad_norm_);
// returns the norm before clipping.
float nd_clip_grad_norm(nd_params *params, nd_ctx *ctx, float max_norm);

// An exponential moving average of the weights (the shadow copy samples are drawn from when enabled).
typedef struct nd_ema {
    float decay;
    int64_t n;
    nd_device device;
    float *shadow; // (n,) one flat buffer laid out as the parameters
} nd_ema;

void nd_ema_init(nd_ema *ema, const nd_params *params, nd_ctx *ctx, float decay); // shadow = params
void nd_ema_update(nd_ema *ema, const nd_params *params, nd_ctx *ctx);
void nd_ema_free(nd_ema *ema);

// ---------------------------------------------------------------------------------------------------
// DDPM training (the course's notebooks 02-06): MSE between the noise and the model's prediction at a
// uniform timestep, with classifier-free-guidance label dropout.

typedef struct nd_ddpm_config {
    nd_model_config model;
    char data[512];         // "fashion-mnist", an IDX directory, or an HDF5 file
    bool unit_range;        // keep images in [0, 1] (the assessment) instead of [-1, 1]
    bool random_flip;
    double beta_start, beta_end; // linear schedule over model.T steps
    int epochs, batch_size;
    float lr;
    bool adamw;
    float weight_decay;
    float cfg_drop;         // probability of dropping each context element (course: 0.1)
    float clip_grad;        // 0: no clipping
    float ema_decay;        // 0: no EMA
    uint64_t seed;
    int64_t checkpoint_every; // steps; 0: only at the end of each epoch
    int64_t preview_every;    // steps; 0: none
    int64_t max_steps;        // 0: epochs * batches per epoch; else stop early (quick runs, tests)
    bool profile;             // print where the time went, op by op, at the end (steps after the second)
} nd_ddpm_config;

// The course's notebook 04 settings: dli-unet on 16x16 Fashion-MNIST, 10 classes, T = 150, 3 epochs of
// batch 128, Adam lr 1e-3, label dropout 0.1, random flips, images in [-1, 1].
nd_ddpm_config nd_ddpm_defaults(void);

typedef struct nd_ddpm_result {
    int64_t steps;       // optimizer steps taken in total (resumed runs included)
    double last_loss;    // mean loss over the last epoch's steps (or the steps run, if fewer)
    double seconds;      // this run's training time
    double images_per_second;
    bool interrupted;    // stopped by SIGINT after writing a checkpoint
} nd_ddpm_result;

// Trains a DDPM, or resumes one from out_dir/model.h5 (its config wins over cfg, but for epochs and
// max_steps). Writes out_dir/model.h5 (atomically, at every epoch end, every checkpoint_every steps and on
// SIGINT), out_dir/loss.csv and preview grids. model.c_embed_dim < 0 takes the data set's class count.
bool nd_ddpm_train(const nd_ddpm_config *cfg, const char *out_dir, bool resume, nd_device device, bool progress,
                   nd_ddpm_result *result, nd_error *err);

// The Gaussian start of sampling with q(x_T)'s per-pixel moments (sample.h: nd_start_moments) for a model
// trained with cfg: the moments of cfg's data set as its loader hands images out (resized, flipped, scaled).
// mean and std hold C*H*W values. Fails, saying why, when the data set cannot be read.
bool nd_ddpm_start_moments(const nd_ddpm_config *cfg, const nd_schedule *s, float *mean, float *std, nd_error *err);

// Where a run stands: enough to resume it exactly.
typedef struct nd_train_state {
    int64_t step;  // optimizer steps taken
    nd_rng rng;    // the context's generator after the last step
} nd_train_state;

// ---------------------------------------------------------------------------------------------------
// checkpoints (HDF5): the model config and training config as attributes; datasets params/<name>,
// buffers/<name>, adam/m/<name>, adam/v/<name>, ema/<name>; the step and RNG state. Written to a
// temporary file that is flushed and renamed over the target, so a crash never leaves a broken file.

// The model config written is the model's own. cfg and state may be NULL (a model alone: zeroed training
// fields, step 0, the context's RNG); opt and ema are saved when not NULL. The parent directory must exist.
bool nd_checkpoint_save(const char *path, const nd_model *model, const nd_ddpm_config *cfg,
                        const nd_train_state *state, const nd_adam *opt, const nd_ema *ema, nd_ctx *ctx,
                        nd_error *err);
// Reads the model and training configuration only (to create the model before loading it).
bool nd_checkpoint_read_config(const char *path, nd_ddpm_config *cfg, nd_error *err);
// Loads into an existing model (created from nd_checkpoint_read_config's config) and, when not NULL, the
// optimizer (moments, step and its config), EMA (shadow and decay), configuration and state; opt and ema
// must be initialized for this model, and the caller restores ctx->rng from state->rng. Every name and shape
// is checked and every value read before anything is written: on any mismatch the message says exactly what
// differs and the model is left unchanged.
bool nd_checkpoint_load(const char *path, nd_model *model, nd_ddpm_config *cfg, nd_train_state *state,
                        nd_adam *opt, nd_ema *ema, nd_ctx *ctx, nd_error *err);

// Creates the checkpoint's model on the context's device and loads its weights (the EMA weights when use_ema,
// which needs a checkpoint trained with --ema). cfg receives the run's configuration.
bool nd_checkpoint_load_model(const char *path, bool use_ema, nd_model *model, nd_ddpm_config *cfg, nd_ctx *ctx,
                              nd_error *err);

// ---------------------------------------------------------------------------------------------------
// progress

double nd_seconds(void); // monotonic clock

typedef struct nd_progress {
    const char *what;
    int64_t total_steps, first_step, images;
    double start, last_print;
    bool tty;
} nd_progress;

// first_step: where a resumed run starts, so images/s and the ETA count only this run's work.
void nd_progress_init(nd_progress *p, const char *what, int64_t total_steps, int64_t first_step);
// Call after every step; prints when enough time has passed, and always after the last step.
void nd_progress_update(nd_progress *p, int64_t step, int64_t epoch, int64_t epochs, double loss, int64_t images);

// ---------------------------------------------------------------------------------------------------
// an image classifier (an MLP on flattened images): the quickest end-to-end proof of the autograd, and the
// judge of generated samples

typedef struct nd_classifier_config {
    const char *data;  // "fashion-mnist", an IDX directory or an HDF5 file
    int epochs, batch_size, hidden;
    float lr;
    uint64_t seed;
    nd_device device;
    bool progress;     // print the progress line
} nd_classifier_config;

nd_classifier_config nd_classifier_defaults(void);

typedef struct nd_classifier_result {
    double test_accuracy; // on the test split
    double last_loss;     // mean of the last epoch's batch losses
    double seconds;       // training time
    int64_t parameters;
} nd_classifier_result;

// Trains on the train split and measures accuracy on the test split; false with err set for bad data.
bool nd_classifier_train(const nd_classifier_config *cfg, nd_classifier_result *result, nd_error *err);

// ---------------------------------------------------------------------------------------------------
// sample quality: an independent CNN classifier trained on the data set's train split at the evaluated
// image size and value range; its accuracy and confidence on guided samples, and the Fréchet distance
// between its penultimate features of samples and of real test images (a classifier-feature FID)

#define ND_EVAL_FEATURES 128   // penultimate width: the features the Fréchet distance compares
#define ND_EVAL_MAX_CLASSES 64

// Conv(C,32,3,p1)-BN-ReLU-MaxPool2 - Conv(32,64,3,p1)-BN-ReLU-MaxPool2 - Conv(64,128,3,p1)-BN-ReLU -
// Linear(128 (S/4)^2, 128)-ReLU - Linear(128, classes); parameters named conv1, bn1, ..., fc1, fc2 as a PyTorch
// twin would name them.
typedef struct nd_eval_classifier {
    char data[512];        // the data set it was trained on
    int img_ch, img_size;  // square images
    bool unit_range;       // trained on [0, 1] images instead of [-1, 1]
    bool random_flip;      // trained on images mirrored at random, as the evaluated model's data (false after
                           // nd_eval_classifier_create; set it before training)
    int classes;
    nd_params params;
    nd_params buffers;     // BatchNorm running statistics
    nd_conv2d_layer conv1, conv2, conv3;
    nd_batch_norm2d_layer bn1, bn2, bn3;
    nd_linear_layer fc1, fc2;
} nd_eval_classifier;

typedef struct nd_eval_train_config {
    int epochs, batch_size;
    float lr;              // Adam's, decayed to zero along a cosine
    uint64_t seed;         // shuffling (the weights come from the context's RNG)
    int64_t max_steps;     // 0: epochs * batches per epoch; else stop early (tests)
    bool progress;         // print the progress line
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
void nd_eval_cache_path(char *buf, size_t size, const char *cache_dir, const char *data, int img_size,
                        bool unit_range, bool random_flip);

// Per-class and overall scores of images requested as given classes.
typedef struct nd_eval_report {
    int classes;
    int64_t n;                                 // images scored
    int64_t count[ND_EVAL_MAX_CLASSES];        // images requested of each class
    int64_t correct[ND_EVAL_MAX_CLASSES];      // of those, classified as requested (argmax)
    double confidence_sum[ND_EVAL_MAX_CLASSES]; // softmax probability of the requested class, summed
    double accuracy, confidence;               // over all images
    double fd;                                 // Fréchet distance to the real reference features (NAN: none)
} nd_eval_report;

void nd_eval_report_init(nd_eval_report *r, int classes);
// Adds logits (n, classes) of images requested as labels (n).
void nd_eval_report_add(nd_eval_report *r, const float *logits, const int32_t *labels, int64_t n);
double nd_eval_class_accuracy(const nd_eval_report *r, int k);   // NAN when no image asked for class k
double nd_eval_class_confidence(const nd_eval_report *r, int k); // NAN likewise

// Eigenvalues (n) and eigenvectors (n, n), column j for values[j], of the symmetric a (n, n), which is
// destroyed; cyclic Jacobi rotations in double precision. Returns the sweeps taken, or -1 without convergence.
int nd_eigen_symmetric(double *a, int n, double *values, double *vectors);
// |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of feature sets a (na, dim) and b (nb, dim), with
// unbiased covariances (numpy.cov) and Tr (S_a S_b)^(1/2) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2))).
bool nd_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim, double *fd,
                         nd_error *err);

// Everything an evaluation compares with: the classifier (from the cache, else trained and cached) and its
// features of the data set's test split, cut class by class into two halves by the parity of each image's
// rank within its class: the odd ranks are the reference that samples are compared with, the even ranks the
// held-out real images of the floor.
typedef struct nd_eval_setup {
    const char *data;      // "fashion-mnist" or an IDX directory: a set with train and test splits
    int img_ch, img_size;
    bool unit_range;
    int classes;           // the model's; must equal the data set's
    bool random_flip;      // the model learned from images mirrored at random: so does the classifier, and
                           // the real images it compares samples with are mirrored half the time (by a fixed
                           // coin). Without it a mirrored shoe is not a shoe: Fashion-MNIST's footwear all
                           // points one way.
    const char *cache_dir; // NULL: nd_eval_default_cache_dir (no cache when that is unknown); "": no cache
    nd_eval_train_config train;
    FILE *log;             // notes (training, a cache that cannot be used), or NULL
} nd_eval_setup;

typedef struct nd_evaluator {
    nd_eval_classifier classifier;
    char cache_path[1100];    // "" when uncached
    bool trained;             // trained in this run, not loaded
    double train_seconds;
    double test_accuracy;     // of the classifier on the whole test split
    float *reference;         // (n_reference, 128) features of the odd-rank half
    int64_t n_reference;
    float *held;              // (n_held, 128) features of the even-rank half
    int32_t *held_labels;     // (n_held)
    int64_t n_held;
} nd_evaluator;

bool nd_evaluator_init(nd_evaluator *ev, const nd_eval_setup *setup, nd_ctx *ctx, nd_error *err);
void nd_evaluator_free(nd_evaluator *ev);
// Scores images (n, C, S, S) requested as labels (n): accuracy, confidence, and the Fréchet distance to the
// reference half. Images are clamped to the classifier's range first, as a PNG shows them.
bool nd_eval_images(const nd_evaluator *ev, nd_ctx *ctx, const float *images, const int32_t *labels, int64_t n,
                    nd_eval_report *report, nd_error *err);
// The real-vs-real floor: Fréchet distances between per_class held-out images of each class and the reference
// half, over every disjoint draw the held-out half allows (one, with fewer images, where a class runs short).
// The spread of the draws shows how far a distance moves by sampling alone.
typedef struct nd_eval_floor_stats {
    double mean, min, max; // over the draws
    int draws;
    int64_t images;        // in each draw
} nd_eval_floor_stats;

bool nd_eval_floor(const nd_evaluator *ev, int per_class, nd_eval_floor_stats *floor, nd_error *err);

#endif
