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

// Parses argv[first..] into flags; on a bad flag prints what was wrong and the usage, returns false. Numbers
// are checked against their flag's limit (flags.c maps flag names to limits.h): a non-finite number, or one
// past 2^31 where an int is meant, is refused, never wrapped.
bool nd_flags_parse(const char *command, int argc, char **argv, int first, const nd_flag *flags, int n_flags);
void nd_flags_usage(const char *command, const char *summary, const nd_flag *flags, int n_flags);

// Picks cpu or cuda from "--device auto|cpu|cuda"; prints why and returns false for a bad choice.
bool nd_cli_device(const char *command, const char *name, int *device);

// sample's and eval's sampler flags: sc gets nd_sample_defaults() with --sampler, --steps, --eta and --seed;
// a bad sampler name or a step count below 1 is printed and returns false.
bool nd_cli_sampler(const char *command, const char *sampler, int64_t steps, double eta, int64_t seed,
                    nd_sample_config *sc);

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
