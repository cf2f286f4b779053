// nanodiff train: the training loops built on autograd's optimizers, checkpoints and the MLP classifier.
#ifndef ND_TRAIN_H
#define ND_TRAIN_H

#include "autograd.h"
#include "data.h"
#include "nn.h"
#include "nd_limits.h"
#include "sample.h"

// ---------------------------------------------------------------------------------------------------
// DDPM training (the course's notebooks 02-06): MSE between the noise and the model's prediction at a
// uniform timestep, with classifier-free-guidance label dropout.

typedef struct nd_ddpm_config {
    nd_model_config model;
    char data[512];  // "fashion-mnist", an IDX directory, or an HDF5 file
    bool unit_range; // keep images in [0, 1] (the assessment) instead of [-1, 1]
    bool random_flip;
    double beta_start, beta_end; // linear schedule over model.T steps
    nd_schedule_kind schedule;   // linear (beta_start..beta_end, the course's) or cosine
    bool zero_snr;               // the schedule rescaled to zero terminal SNR (needs x0 or v prediction)
    nd_prediction prediction;    // what the model learns to predict: eps (the course's), x0 or v
    float min_snr_gamma;         // 0: the course's plain MSE; else min-SNR-gamma loss weights (Hang et al. 2023)
    int epochs, batch_size;
    float lr;
    bool lr_cosine;       // decay lr along a half cosine over the run (nd_lr_at); false: constant (the course's)
    int64_t warmup_steps; // linear warm-up of lr over these first steps (0: none)
    bool adamw;
    float weight_decay;
    float cfg_drop;  // probability of dropping each context element (course: 0.1)
    float clip_grad; // 0: no clipping
    float ema_decay; // 0: no EMA
    uint64_t seed;
    int64_t checkpoint_every; // steps; 0: only at the end of each epoch
    int64_t preview_every;    // steps; 0: none
    int64_t max_steps;        // 0: epochs * batches per epoch; else stop early (quick runs, tests)
    // t2i-unet only: the frozen CLIP whose text encoder reads the captions (train/t2i.c)
    char clip[512];      // the CLIP checkpoint's path as given to training
    char clip_hash[32];  // its content hash (nd_file_hash), checked wherever the CLIP is loaded again
    bool text_pooled;    // attend to the projected end-token vector alone instead of the token sequence
    bool profile;        // print where the time went, op by op, at the end (steps after the second)
    bool check_numerics; // check every op's output for NaN/inf (slow; not stored in checkpoints)
    // The products' precision (bf16: a CPU mode); not stored in checkpoints: a bf16 run's is a float32 one.
    nd_precision precision;
} nd_ddpm_config;

// The course's notebook 04 settings: dli-unet on 16x16 Fashion-MNIST, 10 classes, T = 150, 3 epochs of
// batch 128, Adam lr 1e-3, label dropout 0.1, random flips, images in [-1, 1].
nd_ddpm_config nd_ddpm_defaults(void);

// The run's noise schedule (kind, betas, zero-SNR rescaling), as training and sampling must share it.
void nd_ddpm_schedule(const nd_ddpm_config *cfg, nd_schedule *s);
// nd_sample_defaults() for a model trained with cfg: its prediction, and x0 clipping to its data's range.
nd_sample_config nd_ddpm_sample_defaults(const nd_ddpm_config *cfg);
// The training loss of predictions pred (b, C, H, W) for x0 and noise (b, C, H, W) at timesteps t_host (b):
// F.mse_loss(pred, target) with target noise, x0 or v = sqrt(abar) noise - sqrt(1 - abar) x0 as cfg predicts;
// with cfg->min_snr_gamma > 0 (Hang et al. 2023) each image's squared error is weighted by min(SNR_t, gamma)
// over what its prediction's error costs in x0 terms (SNR_t for eps, SNR_t + 1 for v, 1 for x0),
// SNR_t = abar_t / (1 - abar_t), so the nearly clean steps stop dominating.
nd_tensor *nd_ddpm_loss(nd_ctx *ctx, const nd_ddpm_config *cfg, const nd_schedule *s, nd_tensor *x0, nd_tensor *noise,
                        nd_tensor *pred, const int *t_host);
// Whether cfg's training choices fit together (zero SNR needs x0 or v prediction); else err says why.
bool nd_ddpm_check_options(const nd_ddpm_config *cfg, nd_error *err);
// Checks every number of cfg against its limit (nd_limits.h) and the relations between them (beta_start below
// beta_end, group counts that divide the channels, a model under ND_MAX_PARAMS, a batch that fits); source
// leads the message (a file, or "--flags").
bool nd_ddpm_config_check(const nd_ddpm_config *cfg, const char *source, nd_error *err);

typedef struct nd_ddpm_result {
    int64_t steps;    // optimizer steps taken in total (resumed runs included)
    double last_loss; // mean loss over the last epoch's steps (or the steps run, if fewer)
    double seconds;   // this run's training time
    double images_per_second;
    bool interrupted; // stopped by SIGINT or SIGTERM after writing a checkpoint
    int signal;       // which one (0: none); a program exits with 128 + signal, as a shell reports it
} nd_ddpm_result;

// Trains a DDPM, or resumes one from out_dir/model.h5 (its config wins over cfg, but for epochs and
// max_steps). Writes out_dir/model.h5 (atomically, at every epoch end, every checkpoint_every steps and on
// SIGINT), out_dir/loss.csv and preview grids. model.c_embed_dim < 0 takes the data set's class count.
bool nd_ddpm_train(const nd_ddpm_config *cfg, const char *out_dir, bool resume, nd_device device, bool progress,
                   nd_ddpm_result *result, nd_error *err);

// SIGINT and SIGTERM handlers (sigaction, kept installed) for a run: nd_stop_requested then returns the first
// signal received (0: none) so the run finishes its step, saves and stops; a repeated signal only says so.
void nd_stop_signals_install(void);
void nd_stop_signals_restore(void);
int nd_stop_requested(void);

// The Gaussian start of sampling with q(x_T)'s per-pixel moments (sample.h: nd_start_moments) for a model
// trained with cfg: the moments of cfg's data set as its loader hands images out (resized, flipped, scaled).
// mean and std hold C*H*W values. Fails, saying why, when the data set cannot be read.
bool nd_ddpm_start_moments(const nd_ddpm_config *cfg, const nd_schedule *s, float *mean, float *std, nd_error *err);

// Where a run stands: enough to resume it exactly.
typedef struct nd_train_state {
    int64_t step; // optimizer steps taken
    nd_rng rng;   // the context's generator after the last step
} nd_train_state;

// ---------------------------------------------------------------------------------------------------
// checkpoints (HDF5): the model config and training config as attributes; datasets params/<name>,
// buffers/<name>, adam/m/<name>, adam/v/<name>, ema/<name>; the step and RNG state. Written to a
// temporary file that is flushed and renamed over the target, so a crash never leaves a broken file.

// The model config written is the model's own. cfg and state may be NULL (a model alone: the default training
// fields, step 0, the context's RNG); opt and ema are saved when not NULL. The parent directory must exist.
bool nd_checkpoint_save(const char *path, const nd_model *model, const nd_ddpm_config *cfg, const nd_train_state *state,
                        const nd_adam *opt, const nd_ema *ema, nd_ctx *ctx, nd_error *err);
// Reads the model and training configuration only (to create the model before loading it).
bool nd_checkpoint_read_config(const char *path, nd_ddpm_config *cfg, nd_error *err);
// Loads into an existing model (created from nd_checkpoint_read_config's config) and, when not NULL, the
// optimizer (moments, step and its config), EMA (shadow and decay), configuration and state; opt and ema
// must be initialized for this model, and the caller restores ctx->rng from state->rng. Every name and shape
// is checked and every value read before anything is written: on any mismatch the message says exactly what
// differs and the model is left unchanged.
bool nd_checkpoint_load(const char *path, nd_model *model, nd_ddpm_config *cfg, nd_train_state *state, nd_adam *opt,
                        nd_ema *ema, nd_ctx *ctx, nd_error *err);

// Creates the checkpoint's model on the context's device and loads its weights (the EMA weights when use_ema,
// which needs a checkpoint trained with --ema). cfg receives the run's configuration.
bool nd_checkpoint_load_model(const char *path, bool use_ema, nd_model *model, nd_ddpm_config *cfg, nd_ctx *ctx,
                              nd_error *err);

// ---------------------------------------------------------------------------------------------------
// data-parallel training (train/dist.c): `mpirun -np N nanodiff train ...` runs N processes (on cores,
// GPUs or machines) that each train on their rows of every global batch and sum their gradients, weighted by
// their share of the batch, before each step: the steps of one process with the whole batch, within float
// rounding. Rank 0 alone prints, logs and writes checkpoints. A program not started by an MPI launcher is rank
// 0 of 1 and never calls MPI.

typedef struct nd_dist {
    int rank, size;             // this process among all of them
    int local_rank, local_size; // among those on this machine: local_rank picks the GPU
    bool mpi;                   // started by an MPI launcher (the reductions run, even for one process)
    // Wall time in the CPU's gradient all-reduce, waiting for the slowest process included, and how many ran
    // (NCCL's reductions run on their own stream and are not timed here).
    double reduce_seconds;
    int64_t reductions;
} nd_dist;

// The rows [begin, begin + size) of each global batch this process trains on: B / N each, and one more for
// the first B % N ranks. weight = size / B scales its gradient and loss in the sum over processes.
typedef struct nd_dist_shard {
    int begin, size;
    float weight;
} nd_dist_shard;

// Joins the MPI world when started by an MPI launcher (once per process); want_gpu: this process will train on
// a GPU, which it then picks by local rank before the CUDA context is made. False, saying why, for a launch
// this build cannot serve (an MPI launcher but no MPI).
bool nd_dist_init(bool want_gpu, nd_error *err);
const nd_dist *nd_dist_world(void);
// Readies the gradient reduction for the training device (NCCL's communicator on a GPU).
bool nd_dist_use_device(nd_device device, nd_error *err);
// Waits for every process, then leaves MPI; call after the last output is written and flushed.
void nd_dist_finalize(void);
// Ends this process and, in an MPI world, every other one (which may be waiting for it in a reduction).
ND_NORETURN void nd_dist_abort(int code);
nd_dist_shard nd_dist_shard_of(const nd_dist *d, int batch);
// params->grad = the sum over processes of weight * grad (DistributedDataParallel's gradient all-reduce).
void nd_dist_average_grads(nd_params *params, float weight, nd_ctx *ctx);
// The sum over processes of weight * loss (the loss of the whole batch); *stop becomes true for every process
// when it is true for any.
double nd_dist_mean_loss(double loss, float weight, bool *stop);
// False, naming the first rank that differs from rank 0, unless every process starts from the same step,
// data set size and weights.
bool nd_dist_check_start(const nd_params *params, int64_t step, int64_t images, nd_error *err);

// ---------------------------------------------------------------------------------------------------
// a run's files (every training loop's)

// mkdir -p dir; false with err naming the directory that could not be created.
bool nd_run_dir_make(const char *dir, nd_error *err);
// out_dir/loss.csv: appended to when resuming, else created with the header line (column names); NULL with err.
FILE *nd_loss_log_open(const char *out_dir, bool resume, const char *header, nd_error *err);
// One line "step,epoch,values[0],...", flushed so a killed run keeps its log up to its last step.
void nd_loss_log_row(FILE *log, int64_t step, int64_t epoch, const float *values, int n);

// text to image (t2i_text.c, t2i.c): the t2i-unet conditioned by cross-attention on a frozen CLIP's text
// encoder, trained by nd_ddpm_train on captions measured on each image as shown (flipped or not)

// FNV-1a 64 of a file's bytes as "fnv1a64:" and 16 hex digits (25 bytes with the terminator): which CLIP a
// text-to-image checkpoint was trained with.
bool nd_file_hash(const char *path, char *hash, size_t size, nd_error *err);

typedef struct nd_text_encoder nd_text_encoder;

// Loads the CLIP checkpoint clip_path (its tokenizer and text encoder) on device; when want_hash is neither
// NULL nor "", the file's hash must equal it. A prompt's context is its token sequence after the final
// LayerNorm (context_length, text_width), or with pooled the projected end-token feature (1, embed_dim).
bool nd_text_encoder_open(nd_text_encoder **te, const char *clip_path, const char *want_hash, bool pooled,
                          nd_device device, nd_error *err);
void nd_text_encoder_close(nd_text_encoder *te);
int nd_text_encoder_tokens(const nd_text_encoder *te);       // S of a prompt's context (S, D)
int nd_text_encoder_width(const nd_text_encoder *te);        // D
const char *nd_text_encoder_hash(const nd_text_encoder *te); // the CLIP file's nd_file_hash
int64_t nd_text_encoder_cached(const nd_text_encoder *te);   // distinct prompts encoded so far
// The contexts of n prompts into out (n, S, D) on the host; each distinct prompt is encoded once and cached.
void nd_text_encoder_features(nd_text_encoder *te, const char *const *prompts, int n, float *out);
// The same as a tensor (n, S, D) on ctx: in its step arena, or in its pool when persistent.
nd_tensor *nd_text_encoder_context(nd_text_encoder *te, nd_ctx *ctx, const char *const *prompts, int n,
                                   bool persistent);

// Opens the CLIP that encodes a t2i checkpoint's prompts: clip_override when not NULL, else clip.h5 beside the
// checkpoint (training leaves a copy there), else the path recorded at training; each must carry the recorded
// hash. The message says where it looked when none does.
bool nd_t2i_open_text(const char *ckpt_path, const nd_ddpm_config *cfg, const char *clip_override, nd_device device,
                      nd_text_encoder **te, nd_error *err);

// The conditioning of a t2i training run: the captioner, the text encoder and the loader's order.
typedef struct nd_t2i_cond nd_t2i_cond;

// For nd_ddpm_train: opens cfg->clip (checked against cfg->clip_hash when set, which it is set to otherwise),
// copies it to out_dir/clip.h5, sets cfg->model.c_embed_dim to the context width and measures the caption
// attributes' thresholds on ds (Fashion-MNIST's ten labelled classes, one channel).
bool nd_t2i_cond_open(nd_t2i_cond **cond, nd_ddpm_config *cfg, const nd_dataset *ds, const char *out_dir,
                      nd_device device, nd_error *err);
void nd_t2i_cond_close(nd_t2i_cond *cond);
// The context (b, S, D) in ctx's step arena of the training batch at step (the loader's batch step % P of epoch
// step / P): each image's caption as flipped, replaced by the empty prompt "" with probability cfg_drop.
// labels are the loader's, checked against the captioned images.
nd_tensor *nd_t2i_cond_batch(nd_t2i_cond *cond, nd_ctx *ctx, int64_t step, int b, const int32_t *labels);
// Contexts (n, S, D) in ctx's pool of the prompts "a photo of a {class}" for the classes labels (n).
nd_tensor *nd_t2i_class_context(nd_text_encoder *te, nd_ctx *ctx, const int32_t *labels, int n);
// Contexts (n, S, D) in ctx's pool of the empty prompt "": the unconditional half of guidance.
nd_tensor *nd_t2i_empty_context(nd_text_encoder *te, nd_ctx *ctx, int n);
nd_text_encoder *nd_t2i_cond_text(nd_t2i_cond *cond);

// ---------------------------------------------------------------------------------------------------
// progress

double nd_seconds(void); // monotonic clock

typedef struct nd_progress {
    const char *what;
    int64_t total_steps, first_step;
    int64_t printed_step; // steps done at the last line
    double images;        // done by this run (a sampling step does a fraction of its batch's)
    double start, last_print;
    bool tty;
} nd_progress;

// first_step: where a resumed run starts, so images/s and the ETA count only this run's work.
void nd_progress_init(nd_progress *p, const char *what, int64_t total_steps, int64_t first_step);
// Call after every step (0-based, of total_steps) with the images it did; prints "WHAT FIELDS  R img/s  ETA m:ss"
// (fields formatted as printf's) when due: on a terminal redrawn in place a few times a second, into a log at
// most a line a tenth of the run (or a minute), and always after the last step.
void nd_progress_show(nd_progress *p, int64_t step, double images, const char *fields, ...)
    __attribute__((format(printf, 4, 5)));
// Training's line: nd_progress_show with step, epoch and loss.
void nd_progress_update(nd_progress *p, int64_t step, int64_t epoch, int64_t epochs, double loss, int64_t images);

// ---------------------------------------------------------------------------------------------------
// an image classifier (an MLP on flattened images): the quickest end-to-end proof of the autograd, and the
// judge of generated samples

typedef struct nd_classifier_config {
    const char *data; // "fashion-mnist", an IDX directory or an HDF5 file
    int epochs, batch_size, hidden;
    float lr;
    uint64_t seed;
    nd_device device;
    bool progress; // print the progress line
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

#include "clip_train.h" // CLIP training, checkpoints, zero-shot

#endif
