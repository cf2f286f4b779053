// What every notebook program shares: its flags, PNG output, and the frames of a denoising progression.
#ifndef ND_NOTEBOOK_H
#define ND_NOTEBOOK_H

#include <stdbool.h>

#include "data.h"
#include "sample.h"

typedef struct nb_args {
    bool quick;       // a few steps of everything: a smoke run (ctest), not the course's numbers
    const char *out;  // directory for the figures and checkpoints
    const char *data; // "fashion-mnist", an IDX directory (MNIST) or an HDF5 file
    bool gpu;         // run on the GPU
    float w;          // guidance weight of the guided samples (--w; course form (1 + w) e_c - w e_u)
} nb_args;

// --quick, --out DIR (default notebooks-out/NAME), --data SPEC, --device cpu|cuda, --w W (default 2); prints usage and returns
// false on a bad flag. Creates the output directory.
bool nb_parse(int argc, char **argv, const char *name, const char *summary, nb_args *args);

// Joins out and file into path (1100 bytes).
const char *nb_path(char *path, const nb_args *args, const char *file);

// torchvision's make_grid + save_image of images (n, C, S, S) laid out nrow to a row; prints the path.
bool nb_write_grid(const nb_args *args, const char *file, const float *images, int n, int c, int s, int nrow,
                   bool unit_range);

// Keeps x after chosen sampling steps (the course's plot every T / ncols steps), for a progression strip:
// pass nb_strip_step as nd_sample_images' on_step.
typedef struct nb_strip {
    int every, max, stored, n; // frames every `every` steps, at most max, of n images each
    long image;                // floats per image
    float *frames;             // (max, n, C, S, S)
} nb_strip;

void nb_strip_init(nb_strip *s, int steps, int frames, int n, long image);
void nb_strip_step(void *user, int step_index, int t, nd_ctx *ctx, const nd_tensor *x);
// One row per image: its frames left to right (noise to sample).
bool nb_strip_write(const nb_args *args, const char *file, const nb_strip *s, int c, int size, bool unit_range);
void nb_strip_free(nb_strip *s);

#include "eval.h"
#include "train.h"

// The course's training loop (nd_ddpm_train: MSE on the noise at a uniform t, Adam, label dropout) run into
// args->out (model.h5, loss.csv), then the trained model loaded into model on ctx's device; --quick stops after
// two steps of batch 16. Prints the last epoch's mean loss and the time taken.
bool nb_train_ddpm(const nb_args *args, nd_ddpm_config *cfg, nd_ctx *ctx, nd_model *model);

// The course's sampler (DDPM over all T steps, guided at --w when guided) seeded with seed; --quick takes 3 DDIM
// steps instead, so a smoke run samples in seconds.
nd_sample_config nb_sample_config(const nb_args *args, bool guided, uint64_t seed);
#endif
