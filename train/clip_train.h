// nanodiff CLIP training and checkpoints: contrastive training on Fashion-MNIST images paired with captions
// measured on them, the checkpoint that holds the model, its tokenizer and the run, and zero-shot evaluation.
// Included by train.h.
#ifndef ND_CLIP_TRAIN_H
#define ND_CLIP_TRAIN_H

#include "autograd.h"
#include "data.h"
#include "nn.h"

struct nd_adam;
struct nd_train_state;

typedef struct nd_clip_train_config {
    nd_clip_config model; // vocab_size is the tokenizer's, set when it is learnt
    char data[512];       // "fashion-mnist" or an IDX directory with 10 labelled classes
    int vocab_size;       // BPE target (bytes + merges + 2)
    bool random_flip;
    int epochs, batch_size;
    float lr, weight_decay; // AdamW, linear warm-up then cosine decay to 0 over the run
    int64_t warmup_steps;
    uint64_t seed;
    int64_t checkpoint_every; // steps; 0: only at the end of each epoch
    int64_t max_steps;        // 0: epochs * batches per epoch; else stop early (quick runs, tests)
    nd_precision precision;   // of the products (bf16: a CPU mode); not stored in checkpoints
} nd_clip_train_config;

// The quick default: nd_clip_config_default on 16x16 Fashion-MNIST train split, vocab 512, random flips.
nd_clip_train_config nd_clip_train_defaults(void);

typedef struct nd_clip_train_result {
    int64_t steps;
    double last_loss; // mean loss over the last epoch's steps (or the steps run, if fewer)
    double seconds, images_per_second;
    bool interrupted; // stopped by SIGINT or SIGTERM after writing a checkpoint
    int signal;       // which one: the program exits with 128 + signal
} nd_clip_train_result;

// Trains a CLIP, or resumes the one in out_dir/clip.h5 (its config and tokenizer win over cfg, but for epochs
// and max_steps). Writes out_dir/clip.h5 atomically (each epoch end, every checkpoint_every steps, on SIGINT)
// and out_dir/loss.csv (step, epoch, loss, logit_scale).
bool nd_clip_train(const nd_clip_train_config *cfg, const char *out_dir, bool resume, nd_device device, bool progress,
                   nd_clip_train_result *result, nd_error *err);

// HDF5 checkpoint: attribute kind = "clip", the model and training config as attributes; params/<name>;
// tokenizer/merges (n_merges, 2) int32 with attribute context; adam/m/<name>, adam/v/<name>; step and RNG.
// cfg, state and opt may be NULL. Built in memory and written atomically (nd_atomic_write).
bool nd_clip_checkpoint_save(const char *path, const nd_clip *clip, const nd_tokenizer *tok,
                             const nd_clip_train_config *cfg, const struct nd_train_state *state,
                             const struct nd_adam *opt, nd_ctx *ctx, nd_error *err);
// True when path is an HDF5 file whose kind attribute is "clip".
bool nd_clip_checkpoint_is_clip(const char *path);
// Reads the configuration alone.
bool nd_clip_checkpoint_read_config(const char *path, nd_clip_train_config *cfg, nd_error *err);
// Loads into a CLIP created from the stored config, and (each when not NULL) the tokenizer (built from the
// stored merges; free it after), the config, the state and the optimizer (initialised for this model). Every
// name and shape is checked first; on a mismatch the message says what differs and nothing is changed.
bool nd_clip_checkpoint_load(const char *path, nd_clip *clip, nd_tokenizer *tok, nd_clip_train_config *cfg,
                             struct nd_train_state *state, struct nd_adam *opt, nd_ctx *ctx, nd_error *err);
// What a user of a trained CLIP needs: creates the model on the context's device, loads its weights and
// tokenizer. Free with nd_clip_free and nd_tokenizer_free.
bool nd_clip_load(const char *path, nd_clip *clip, nd_tokenizer *tok, nd_ctx *ctx, nd_error *err);

// Zero-shot classification: the cosine similarity of each image with the prompt "a photo of a {class}" of each
// class; images (n, C, S, S) host, in [-1, 1]; correct[k] and count[k] per class (10 entries) are filled.
// Returns the overall accuracy.
double nd_clip_zero_shot(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const float *images, int64_t n,
                         const int32_t *labels, int64_t *correct, int64_t *count);
// Cosine similarities (n_images, n_prompts) of host images (n_images, C, S, S) in [-1, 1] with prompts.
void nd_clip_similarity(nd_ctx *ctx, const nd_clip *clip, const nd_tokenizer *tok, const float *images,
                        int64_t n_images, const char *const *prompts, int n_prompts, float *sim);

#endif
