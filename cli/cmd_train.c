// nanodiff train: trains the course's DDPM (class-conditional with label dropout) and checkpoints it.
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train.h"

// Whether argv[first..] gives flag (as "--flag value" or "--flag=value").
static bool flag_given(int argc, char **argv, int first, const char *flag) {
    size_t len = strlen(flag);
    for (int i = first; i < argc; i++)
        if (strncmp(argv[i], flag, len) == 0 && (argv[i][len] == '\0' || argv[i][len] == '=')) return true;
    return false;
}

typedef enum { FIELD_INT, FIELD_FLOAT, FIELD_BOOL, FIELD_U64, FIELD_I64, FIELD_STR } field_kind;

// The flags a resumed run takes from its checkpoint instead, with the configuration field each sets.
static const struct {
    const char *flag;
    size_t offset;
    field_kind kind;
} resumed_flags[] = {
    {"--model", offsetof(nd_ddpm_config, model.kind), FIELD_INT},
    {"--data", offsetof(nd_ddpm_config, data), FIELD_STR},
    {"--img-size", offsetof(nd_ddpm_config, model.img_size), FIELD_INT},
    {"--classes", offsetof(nd_ddpm_config, model.c_embed_dim), FIELD_INT},
    {"--T", offsetof(nd_ddpm_config, model.T), FIELD_INT},
    {"--batch", offsetof(nd_ddpm_config, batch_size), FIELD_INT},
    {"--lr", offsetof(nd_ddpm_config, lr), FIELD_FLOAT},
    {"--adamw", offsetof(nd_ddpm_config, adamw), FIELD_BOOL},
    {"--weight-decay", offsetof(nd_ddpm_config, weight_decay), FIELD_FLOAT},
    {"--cfg-drop", offsetof(nd_ddpm_config, cfg_drop), FIELD_FLOAT},
    {"--clip-grad", offsetof(nd_ddpm_config, clip_grad), FIELD_FLOAT},
    {"--ema", offsetof(nd_ddpm_config, ema_decay), FIELD_FLOAT},
    {"--unit-range", offsetof(nd_ddpm_config, unit_range), FIELD_BOOL},
    {"--no-flip", offsetof(nd_ddpm_config, random_flip), FIELD_BOOL},
    {"--seed", offsetof(nd_ddpm_config, seed), FIELD_U64},
    {"--checkpoint-every", offsetof(nd_ddpm_config, checkpoint_every), FIELD_I64},
    {"--preview-every", offsetof(nd_ddpm_config, preview_every), FIELD_I64},
};

static bool field_equal(field_kind kind, const void *a, const void *b) {
    switch (kind) {
    case FIELD_INT: return *(const int *)a == *(const int *)b;
    case FIELD_FLOAT: return *(const float *)a == *(const float *)b;
    case FIELD_BOOL: return *(const bool *)a == *(const bool *)b;
    case FIELD_U64: return *(const uint64_t *)a == *(const uint64_t *)b;
    case FIELD_I64: return *(const int64_t *)a == *(const int64_t *)b;
    case FIELD_STR: return strcmp(a, b) == 0;
    }
    return false;
}

// Before training into out: a folder that holds a run needs --resume (or --force to start over), and a
// resumed run refuses flags that contradict its checkpoint (they were silently ignored), naming them.
static bool check_out_dir(const char *out, bool resume, bool force, const nd_ddpm_config *cfg, int argc,
                          char **argv) {
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", out);
    if (!resume) {
        if (force || access(ckpt, F_OK) != 0) return true;
        fprintf(stderr, "nanodiff train: %s holds a run: pass --resume to continue it, or --force to start over "
                        "and overwrite it\n", ckpt);
        return false;
    }
    nd_ddpm_config stored;
    nd_error err;
    if (!nd_checkpoint_read_config(ckpt, &stored, &err)) return true; // training reports it
    char conflicts[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof resumed_flags / sizeof resumed_flags[0]; i++) {
        const char *mine = (const char *)cfg + resumed_flags[i].offset, *theirs = (const char *)&stored + resumed_flags[i].offset;
        if (flag_given(argc, argv, 2, resumed_flags[i].flag) && !field_equal(resumed_flags[i].kind, mine, theirs) &&
            used < sizeof conflicts)
            used += (size_t)snprintf(conflicts + used, sizeof conflicts - used, " %s", resumed_flags[i].flag);
    }
    if (!conflicts[0]) return true;
    fprintf(stderr, "nanodiff train: --resume continues %s with its own settings, and these flags contradict "
                    "them:%s (drop them, or train into a new --out)\n", ckpt, conflicts);
    return false;
}

int nd_cmd_train(int argc, char **argv) {
    nd_ddpm_config cfg = nd_ddpm_defaults();
    const char *model = "dli-unet", *data = "fashion-mnist", *out = "runs/fm", *device = "auto";
    int64_t img_size = 16, classes = -1, epochs = cfg.epochs, batch = cfg.batch_size, T = cfg.model.T, seed = 0;
    int64_t max_steps = 0, checkpoint_every = 0, preview_every = 0;
    double lr = cfg.lr, cfg_drop = cfg.cfg_drop, clip = 0, ema = 0, weight_decay = 0;
    bool unit_range = false, no_flip = false, adamw = false, resume = false, quiet = false, help = false;
    bool no_tf32 = false, check_numerics = false, force = false;
    const nd_flag flags[] = {
        {"--model", ND_FLAG_STRING, &model, "dli-unet or dli-unet-v1"},
        {"--data", ND_FLAG_STRING, &data, "fashion-mnist, an IDX directory (MNIST...) or an HDF5 file"},
        {"--img-size", ND_FLAG_INT, &img_size, "images are resized to this (the course: 16; the assessment: 28)"},
        {"--classes", ND_FLAG_INT, &classes, "context classes; -1 takes the data set's, 0 trains unconditionally"},
        {"--T", ND_FLAG_INT, &T, "diffusion steps"},
        {"--epochs", ND_FLAG_INT, &epochs, "passes over the data (train + test, as the course)"},
        {"--max-steps", ND_FLAG_INT, &max_steps, "stop after this many steps in all (0: epochs decide)"},
        {"--batch", ND_FLAG_INT, &batch, "batch size"},
        {"--lr", ND_FLAG_FLOAT, &lr, "learning rate"},
        {"--adamw", ND_FLAG_BOOL, &adamw, "AdamW instead of Adam"},
        {"--weight-decay", ND_FLAG_FLOAT, &weight_decay, "weight decay"},
        {"--cfg-drop", ND_FLAG_FLOAT, &cfg_drop, "probability of dropping each context element"},
        {"--clip-grad", ND_FLAG_FLOAT, &clip, "clip the gradient's global norm to this (0: off)"},
        {"--ema", ND_FLAG_FLOAT, &ema, "keep an EMA of the weights with this decay (0: off)"},
        {"--unit-range", ND_FLAG_BOOL, &unit_range, "keep images in [0, 1] (the assessment) instead of [-1, 1]"},
        {"--no-flip", ND_FLAG_BOOL, &no_flip, "no random horizontal flips"},
        {"--seed", ND_FLAG_INT, &seed, "seed of everything random"},
        {"--checkpoint-every", ND_FLAG_INT, &checkpoint_every, "steps between checkpoints (and at each epoch end)"},
        {"--preview-every", ND_FLAG_INT, &preview_every, "steps between preview grids (0: none)"},
        {"--out", ND_FLAG_STRING, &out, "output directory: model.h5, loss.csv, previews"},
        {"--resume", ND_FLAG_BOOL, &resume, "continue the run in --out from its checkpoint"},
        {"--force", ND_FLAG_BOOL, &force, "start over in an --out that holds a run (its checkpoint is replaced)"},
        {"--device", ND_FLAG_STRING, &device, "auto, cpu or cuda"},
        {"--no-tf32", ND_FLAG_BOOL, &no_tf32, "full float32 matrix products on the GPU (TF32 is on by default)"},
        {"--check-numerics", ND_FLAG_BOOL, &check_numerics, "check every op's output for NaN/inf; a diverged run "
                                                             "names the first op (slow)"},
        {"--quiet", ND_FLAG_BOOL, &quiet, "no progress line"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "train a DDPM with classifier-free-guidance label dropout";
    if (!nd_flags_parse("train", argc, argv, 2, flags, n_flags) || help) {
        nd_flags_usage("train", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    nd_model_kind kind;
    if (!nd_model_kind_parse(model, &kind) || kind == ND_MODEL_T2I_UNET) {
        fprintf(stderr, "nanodiff train: --model expects dli-unet or dli-unet-v1, got \"%s\"\n", model);
        return 1;
    }
    if (img_size < 4 || img_size % 4 || epochs < 1 || batch < 1 || T < 2 || max_steps < 0 || !(lr > 0) ||
        !(cfg_drop >= 0 && cfg_drop < 1) || clip < 0 || !(ema >= 0 && ema < 1)) {
        fprintf(stderr, "nanodiff train: need --img-size a positive multiple of 4, positive --epochs, --batch, --lr, "
                        "--T >= 2, --cfg-drop in [0, 1), --ema in [0, 1)\n");
        return 1;
    }
    int dev;
    if (!nd_cli_device("train", device, &dev)) return 1;
    if (no_tf32) nd_cuda_set_tf32(false);
    cfg.model = nd_model_config_default(kind, 1, (int)img_size, (int)classes);
    cfg.model.T = (int)T;
    snprintf(cfg.data, sizeof cfg.data, "%s", data);
    cfg.unit_range = unit_range, cfg.random_flip = !no_flip;
    cfg.epochs = (int)epochs, cfg.batch_size = (int)batch, cfg.max_steps = max_steps;
    cfg.lr = (float)lr, cfg.adamw = adamw, cfg.weight_decay = (float)weight_decay;
    cfg.cfg_drop = (float)cfg_drop, cfg.clip_grad = (float)clip, cfg.ema_decay = (float)ema;
    cfg.seed = (uint64_t)seed, cfg.checkpoint_every = checkpoint_every, cfg.preview_every = preview_every;
    cfg.check_numerics = check_numerics;
    if (!check_out_dir(out, resume, force, &cfg, argc, argv)) return 1;
    nd_ddpm_result result;
    nd_error err;
    if (!nd_ddpm_train(&cfg, out, resume, (nd_device)dev, !quiet, &result, &err)) {
        fprintf(stderr, "nanodiff train: %s\n", err.msg);
        return 1;
    }
    printf("trained %lld steps in %.1f s (%.0f images/s), last-epoch loss %.4f; checkpoint %s/model.h5\n",
           (long long)result.steps, result.seconds, result.images_per_second, result.last_loss, out);
    return result.interrupted ? 128 + result.signal : 0; // 130 for Ctrl-C, 143 for SIGTERM
}
