// The nanodiff program: subcommands and their shared flag parser.
#ifndef ND_CLI_H
#define ND_CLI_H

#include <stdbool.h>
#include <stdint.h>

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

int nd_cmd_train_classifier(int argc, char **argv);
int nd_cmd_train(int argc, char **argv);
int nd_cmd_sample(int argc, char **argv);
int nd_cmd_info(int argc, char **argv);
int nd_cmd_eval(int argc, char **argv);

#endif
