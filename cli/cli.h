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
    void *value;      // int64_t *, double *, const char **, bool *
    const char *help;
} nd_flag;

// Parses argv[first..] into flags; on a bad flag prints what was wrong and the usage, returns false.
bool nd_flags_parse(const char *command, int argc, char **argv, int first, const nd_flag *flags, int n_flags);
void nd_flags_usage(const char *command, const char *summary, const nd_flag *flags, int n_flags);

// Picks cpu or cuda from "--device auto|cpu|cuda"; prints why and returns false for a bad choice.
bool nd_cli_device(const char *command, const char *name, int *device);

// sample's and eval's sampler flags, as given on the command line.
typedef struct nd_cli_sampler_flags {
    const char *sampler, *spacing;
    int64_t steps, seed;
    double eta;
    bool clip_x0;
} nd_cli_sampler_flags;

// The help lines of the sampler flags, the same in sample and eval.
#define ND_CLI_SAMPLER_HELP "ddpm (the course's), ddpm-posterior, ddim, euler, heun (Karras et al.) or dpm-solver++ (2M)"
#define ND_CLI_STEPS_HELP "steps of ddim, euler, heun (2 model calls a step) and dpm-solver++; ddpm takes all T"
#define ND_CLI_SPACING_HELP "the few-step samplers' timesteps: linspace (from T - 1 to 0), leading or trailing"
#define ND_CLI_CLIP_HELP "clip every step's x0 estimate to the data's range (the lesson's clamp), any sampler"

// sc gets nd_sample_defaults() with the flags' sampler, spacing, steps, eta, seed and clipping; a bad name
// or a step count below 1 is printed and returns false.
bool nd_cli_sampler(const char *command, const nd_cli_sampler_flags *flags, nd_sample_config *sc);
// The x0 clipping range of a model trained with cfg: its data's, [0, 1] or [-1, 1].
void nd_cli_sampler_fit(nd_sample_config *sc, const nd_ddpm_config *cfg);

// Sets sc->start_mean/start_std from "--start auto|noise|matched" (sample.h) for a model trained with cfg;
// *mean and *std receive the arrays to free (NULL for N(0, I)). An unreadable data set is an error for
// "matched" and, for "auto", a note and the course's N(0, I). Prints why and returns false on an error.
bool nd_cli_start(const char *command, const char *spec, const nd_ddpm_config *cfg, const nd_schedule *s,
                  nd_sample_config *sc, float **mean, float **std);

int nd_cmd_train_classifier(int argc, char **argv);
int nd_cmd_train(int argc, char **argv);
int nd_cmd_sample(int argc, char **argv);
int nd_cmd_info(int argc, char **argv);
int nd_cmd_eval(int argc, char **argv);

#endif
