// The nanodiff program: dispatches to a subcommand.
#include <stdio.h>
#include <string.h>

#include "autograd.h"
#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", nd_cmd_train, "train a class-conditional DDPM (the course's U-Net) with label dropout"},
    {"sample", nd_cmd_sample, "draw guided samples from a checkpoint into a PNG grid"},
    {"eval", nd_cmd_eval, "sample quality: classifier accuracy per class, classifier-feature FID"},
    {"info", nd_cmd_info, "summarise a model or a checkpoint"},
    {"train-classifier", nd_cmd_train_classifier, "train an MLP classifier, print its test accuracy"},
    {"exercise", nd_cmd_exercise, "the course's exercises: list them, check your answer to one"},
    {"captions", nd_cmd_captions, "print the captions CLIP trains on (label and attributes measured on each image)"},
    {"train-clip", nd_cmd_train_clip, "train a CLIP (contrastive image/text model) on captioned Fashion-MNIST"},
    {"clip-eval", nd_cmd_clip_eval, "CLIP zero-shot accuracy, or an image x prompt similarity table"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: nanodiff COMMAND [flags]   (nanodiff COMMAND --help for its flags)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc, argv);
    fprintf(stderr, "nanodiff: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 1;
}
