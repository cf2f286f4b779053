// The nanodiff program: subcommands and their shared flag parser.
#ifndef ND_CLI_H
#define ND_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "train.h"

typedef enum { ND_FLAG_INT, ND_FLAG_FLOAT, ND_FLAG_STRING, ND_FLAG_BOOL } nd_flag_type;

typedef struct nd_flag {
    const char *name; // "--epochs"
    nd_flag_type type;
    void *value; // int64_t *, double *, const char **, bool *
    const char *help;
} nd_flag;

// Parses argv[first..] into flags; on a bad flag prints what was wrong and the usage, returns false. Numbers
// are checked against their flag's limit (flags.c maps flag names to nd_limits.h): a non-finite number, or one
// past 2^31 where an int is meant, is refused, never wrapped.
bool nd_flags_parse(const char *command, int argc, char **argv, int first, const nd_flag *flags, int n_flags);
void nd_flags_usage(const char *command, const char *summary, const nd_flag *flags, int n_flags);

// Picks cpu or cuda from "--device auto|cpu|cuda"; prints why and returns false for a bad choice.
bool nd_cli_device(const char *command, const char *name, int *device);
// Reads "--precision f32|bf16" for `device`; prints why and returns false for a bad name or a precision the
// device cannot run (bf16: the CPU with AVX512_BF16).
bool nd_cli_precision(const char *command, const char *name, int device, nd_precision *precision);

// The flags train and train-clip share (data, length, batch, optimizer, seed, checkpoints, output, device).
typedef struct nd_cli_training {
    const char *data, *out, *device, *precision;
    int64_t epochs, max_steps, batch, seed, checkpoint_every;
    double lr, weight_decay;
    bool no_flip, resume, no_tf32, quiet, help;
} nd_cli_training;

#define ND_CLI_TRAINING_FLAGS 16
// --precision's help, as train, train-clip, sample and eval show it.
#define ND_CLI_PRECISION_HELP                                                                                          \
    "f32, or bf16: matrix products and convolutions read bfloat16 copies of their inputs and accumulate in "           \
    "float32 (CPUs with AVX512_BF16; weights, gradients and the loss stay float32)"

// Writes the ND_CLI_TRAINING_FLAGS shared flags, bound to t, to flags; returns how many. data_help and
// out_help say what the command reads and writes.
int nd_cli_training_flags(nd_cli_training *t, const char *data_help, const char *out_help, nd_flag *flags);
// Checks the shared flags (naming the one that is wrong), picks the device and turns TF32 off for --no-tf32;
// false with why printed.
bool nd_cli_training_check(const char *command, const nd_cli_training *t, int64_t min_batch, int *device);
// Prints the run's figures and the checkpoint written; returns the exit status (130 when interrupted).
int nd_cli_training_done(int64_t steps, double seconds, double images_per_second, double last_loss,
                         const char *checkpoint, bool interrupted);

// The sampling flags sample and eval share (the checkpoint, sampler, guidance, start, seed, weights, device).
typedef struct nd_cli_sampling {
    const char *ckpt, *sampler, *spacing, *start, *device, *precision;
    const char *guidance_interval; // "LO,HI" in sigma, NULL when not given
    int64_t steps, seed;
    double w, scale, eta; // scale: --guidance-scale, NAN when not given (then w applies); eta: NAN when not given
    double guidance_rescale;
    bool clip_x0, ema, no_ema, no_tf32, quiet;
} nd_cli_sampling;

#define ND_CLI_SAMPLING_FLAGS 19

nd_cli_sampling nd_cli_sampling_defaults(void);
// Writes the ND_CLI_SAMPLING_FLAGS shared flags, bound to s, to flags; returns how many.
int nd_cli_sampling_flags(nd_cli_sampling *s, nd_flag *flags);

// What a sampling command works with once its flags are read.
typedef struct nd_cli_session {
    nd_ctx ctx;
    nd_model model;
    nd_ddpm_config cfg;            // the checkpoint's run
    nd_schedule sched;             // the checkpoint's
    bool ema;                      // sampling from the EMA weights (--ema, or by default where the checkpoint has them)
    nd_sample_config sc;           // sampler, steps, spacing, eta, clipping, seed, guidance w and x_T's start from the
                                   // flags; prediction and clipping range from the checkpoint
    float *start_mean, *start_std; // owned by the session (NULL: x_T from N(0, I))
} nd_cli_session;

// Checks the shared flags, picks the device (TF32 off with --no-tf32) and the precision, loads the checkpoint
// and sets up the sampler and x_T's start. False, with why printed, leaves nothing to close.
bool nd_cli_session_open(const char *command, const nd_cli_sampling *flags, nd_cli_session *session);
void nd_cli_session_close(nd_cli_session *session);

// The progress line of a sampling command on stderr, as training's (train.h's nd_progress):
// "sample batch 2/4  step 37/50  12 img/s  ETA 1:05" (no batch when there is one), and for a sampler whose
// steps cost more than one model evaluation (heun) the evaluations too: "step 3/10  model calls 6/19". The
// clock counts model evaluations, so the ETA holds where steps differ in cost (Heun's last is half the
// others). Its step callback nd_cli_progress_step goes to nd_sample_images and hands every step on to
// another callback (a strip's) first.
typedef struct nd_cli_progress {
    nd_progress bar;
    bool on;                   // false: --quiet
    int steps, calls, batches; // sampler steps and model evaluations a batch, batches in all
    int batch, batch_images;   // the batch being drawn (0-based) and its images
    nd_sample_config cfg;      // the sampler, for the evaluations a step makes
    const nd_schedule *sched;  // its schedule
    nd_sample_step_fn then;    // NULL or the other callback
    void *then_user;
} nd_cli_progress;

// Starts the clock for batches batches of the sampler's steps (with cfg on schedule s).
void nd_cli_progress_begin(nd_cli_progress *p, const char *command, bool on, const nd_sample_config *cfg,
                           const nd_schedule *s, int batches);
// Before drawing batch (0-based) of images images; then/then_user: the other step callback, or NULL.
void nd_cli_progress_batch(nd_cli_progress *p, int batch, int images, nd_sample_step_fn then, void *then_user);
// nd_sample_step_fn with user an nd_cli_progress.
void nd_cli_progress_step(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x);

// What sampling commands write. Each says why it failed (prefixed by command) and returns false.
// Samples holding NaN/inf are refused: an all-NaN grid would read as black images, so nothing is written.
bool nd_cli_samples_finite(const char *command, const float *images, int64_t n_images, int64_t image);
// images (n, C, S, S) as a PNG grid of nrow images a row, each pixel a scale x scale block (--scale).
bool nd_cli_write_grid(const char *command, const char *path, const float *images, int n, const nd_model_config *mc,
                       int nrow, bool unit_range, int scale);
// Model outputs mapped to grey levels in [0, 1] (from [-1, 1] unless unit_range), clamped, in place.
void nd_cli_images_to_unit(float *images, int64_t values, bool unit_range);
// images (n, C, S, S) mapped to [0, 1] in place, then written as HDF5 with their labels (NULL: none).
bool nd_cli_write_samples_h5(const char *command, const char *path, float *images, int64_t n, const nd_model_config *mc,
                             const int32_t *labels, bool unit_range);

// train's --clip and --cond: refused for a class model; for t2i-unet --clip must name a CLIP checkpoint (unless
// resuming, when the run's own wins) and --cond be sequence or pooled. Sets cfg->clip and cfg->text_pooled.
bool nd_cli_t2i_train_flags(nd_model_kind kind, const char *clip, const char *cond, bool resume, nd_ddpm_config *cfg);

// Whether `nanodiff sample` is asked for prompts: a prompt flag is given or --ckpt names a text-to-image
// checkpoint; nd_cmd_sample_prompt then runs it (cmd_sample_prompt.c).
bool nd_cli_is_prompt_sampling(int argc, char **argv);
int nd_cmd_sample_prompt(int argc, char **argv);

// Whether `nanodiff eval` is asked for --attributes; nd_cmd_eval_attributes runs it (cmd_eval_attrs.c).
bool nd_cli_is_attribute_eval(int argc, char **argv);
int nd_cmd_eval_attributes(int argc, char **argv);

int nd_cmd_train_classifier(int argc, char **argv);
int nd_cmd_train(int argc, char **argv);
int nd_cmd_sample(int argc, char **argv);
int nd_cmd_info(int argc, char **argv);
int nd_cmd_eval(int argc, char **argv);
int nd_cmd_exercise(int argc, char **argv);
int nd_cmd_captions(int argc, char **argv);
int nd_cmd_train_clip(int argc, char **argv);
int nd_cmd_clip_eval(int argc, char **argv);
// info --ckpt of a CLIP checkpoint: its configuration, tokenizer, training state and parameter count.
int nd_clip_info(const char *path);

#endif
