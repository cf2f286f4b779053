// The flags train and train-clip share, their checks, and the line a finished run prints.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int nd_cli_training_flags(nd_cli_training *t, const char *data_help, const char *out_help, nd_flag *flags) {
    const nd_flag shared[ND_CLI_TRAINING_FLAGS] = {
        {"--data", ND_FLAG_STRING, &t->data, data_help},
        {"--epochs", ND_FLAG_INT, &t->epochs, "passes over the data"},
        {"--max-steps", ND_FLAG_INT, &t->max_steps, "stop after this many steps in all (0: epochs decide)"},
        {"--batch", ND_FLAG_INT, &t->batch, "batch size"},
        {"--lr", ND_FLAG_FLOAT, &t->lr, "learning rate"},
        {"--weight-decay", ND_FLAG_FLOAT, &t->weight_decay, "weight decay"},
        {"--no-flip", ND_FLAG_BOOL, &t->no_flip, "no random horizontal flips"},
        {"--seed", ND_FLAG_INT, &t->seed, "seed of everything random"},
        {"--checkpoint-every", ND_FLAG_INT, &t->checkpoint_every, "steps between checkpoints (and at each epoch end)"},
        {"--out", ND_FLAG_STRING, &t->out, out_help},
        {"--resume", ND_FLAG_BOOL, &t->resume, "continue the run in --out from its checkpoint"},
        {"--device", ND_FLAG_STRING, &t->device, "auto, cpu or cuda"},
        {"--no-tf32", ND_FLAG_BOOL, &t->no_tf32, "full float32 matrix products on the GPU (TF32 is on by default)"},
        {"--precision", ND_FLAG_STRING, &t->precision, ND_CLI_PRECISION_HELP},
        {"--quiet", ND_FLAG_BOOL, &t->quiet, "no progress line"},
        {"--help", ND_FLAG_BOOL, &t->help, "show this help"},
    };
    memcpy(flags, shared, sizeof shared);
    return ND_CLI_TRAINING_FLAGS;
}

bool nd_cli_training_check(const char *command, const nd_cli_training *t, int64_t min_batch, int *device) {
    const char *bad = t->epochs < 1             ? "--epochs must be positive"
                      : t->batch < min_batch    ? "--batch is below its minimum"
                      : t->max_steps < 0        ? "--max-steps must be 0 or more"
                      : !(t->lr > 0)            ? "--lr must be positive"
                      : !(t->weight_decay >= 0) ? "--weight-decay must be 0 or more"
                      : t->checkpoint_every < 0 ? "--checkpoint-every must be 0 or more"
                                                : NULL;
    if (bad) {
        fprintf(stderr,
                "nanodiff %s: %s (--epochs %lld, --batch %lld (at least %lld), --max-steps %lld, --lr %g, "
                "--weight-decay %g, --checkpoint-every %lld)\n",
                command, bad, (long long)t->epochs, (long long)t->batch, (long long)min_batch, (long long)t->max_steps,
                t->lr, t->weight_decay, (long long)t->checkpoint_every);
        return false;
    }
    if (!nd_cli_device(command, t->device, device)) return false;
    if (t->no_tf32) nd_cuda_set_tf32(false);
    return true;
}

int nd_cli_training_done(int64_t steps, double seconds, double images_per_second, double last_loss,
                         const char *checkpoint, bool interrupted) {
    if (isnan(last_loss)) // no step ran: a resumed run that had already reached its --epochs / --max-steps
        printf("nothing left to train: the checkpoint already holds %lld steps (raise --epochs or --max-steps to "
               "go on); checkpoint %s\n",
               (long long)steps, checkpoint);
    else
        printf("trained %lld steps in %.1f s (%.0f images/s), last-epoch loss %.4f; checkpoint %s\n", (long long)steps,
               seconds, images_per_second, last_loss, checkpoint);
    return interrupted ? 130 : 0;
}
