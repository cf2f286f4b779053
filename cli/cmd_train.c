// nanodiff train: trains the course's DDPM (class-conditional with label dropout) and checkpoints it.
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train.h"

// Prints why training failed (naming the process when there are several) and ends every process.
static _Noreturn void train_failed(const nd_dist *dist, const nd_error *err) {
    if (dist->size > 1)
        fprintf(stderr, "nanodiff train (rank %d of %d): %s\n", dist->rank, dist->size, err->msg);
    else
        fprintf(stderr, "nanodiff train: %s\n", err->msg);
    nd_dist_abort(1);
}

// Whether argv[first..] gives flag (as "--flag value" or "--flag=value").
static bool flag_given(int argc, char **argv, int first, const char *flag) {
    size_t len = strlen(flag);
    for (int i = first; i < argc; i++)
        if (strncmp(argv[i], flag, len) == 0 && (argv[i][len] == '\0' || argv[i][len] == '=')) return true;
    return false;
}

// Named bundles of training defaults; flags given beside --preset override its values. With no --preset,
// a dli-unet trains with the course's settings, a t2i-unet with its quick setting and a res-unet with best.
typedef struct train_preset {
    const char *name, *model;
    int64_t epochs, batch;
    double lr, ema, min_snr_gamma;
    const char *schedule, *prediction;
    bool zero_snr;
    bool lr_cosine; // --lr-schedule cosine
    int64_t warmup;
    const char *about;
} train_preset;

static const train_preset presets[] = {
    {"course", "dli-unet", 3, 128, 1e-3, 0, 0, "linear", "eps", false, false, 0,
     "notebook 04's settings: 3 epochs of 128, Adam 1e-3, plain MSE, no EMA (dli-unet's default)"},
    {"quick", "dli-unet", 1, 128, 1e-3, 0.999, 5, "linear", "eps", false, false, 0,
     "scripts/main.sh's: 1 epoch of 128, EMA 0.999, min-SNR 5"},
    {"t2i-quick", "t2i-unet", 2, 64, 1e-3, 0.995, 5, "linear", "eps", false, false, 0,
     "the text-to-image quick setting: 2 epochs of 64, EMA 0.995, min-SNR 5 (t2i-unet's default)"},
    {"best", "res-unet", 4, 64, 1e-3, 0.999, 5, "linear", "eps", false, false, 0,
     "the best class model in about an hour on 2 cores: res-unet, 4 epochs of 64, EMA 0.999, min-SNR 5 "
     "(res-unet's default); sample at the course's w = 2"},
    {"best-v", "res-unet", 6, 64, 1e-3, 0.999, 5, "linear", "v", true, true, 200,
     "best's network in v prediction on a zero-terminal-SNR schedule, 6 epochs (1.5x best's time) with a "
     "cosine decay of lr after 200 warm-up steps: sample with --w 2 --guidance-interval 0.5,2.5 "
     "--guidance-rescale 1 (README: guidance in a limited interval)"},
};

static const train_preset *find_preset(const char *name) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) return &presets[i];
    return NULL;
}

typedef enum { FIELD_INT, FIELD_INT3, FIELD_FLOAT, FIELD_BOOL, FIELD_U64, FIELD_I64, FIELD_STR } field_kind;

// The flags a resumed run takes from its checkpoint instead, with the configuration field each sets.
static const struct {
    const char *flag;
    size_t offset;
    field_kind kind;
} resumed_flags[] = {
    {"--model", offsetof(nd_ddpm_config, model.kind), FIELD_INT},
    {"--data", offsetof(nd_ddpm_config, data), FIELD_STR},
    {"--img-size", offsetof(nd_ddpm_config, model.img_size), FIELD_INT},
    {"--widths", offsetof(nd_ddpm_config, model.down_chs), FIELD_INT3},
    {"--classes", offsetof(nd_ddpm_config, model.c_embed_dim), FIELD_INT},
    {"--T", offsetof(nd_ddpm_config, model.T), FIELD_INT},
    {"--batch", offsetof(nd_ddpm_config, batch_size), FIELD_INT},
    {"--lr", offsetof(nd_ddpm_config, lr), FIELD_FLOAT},
    {"--lr-schedule", offsetof(nd_ddpm_config, lr_cosine), FIELD_BOOL},
    {"--warmup", offsetof(nd_ddpm_config, warmup_steps), FIELD_I64},
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
    {"--schedule", offsetof(nd_ddpm_config, schedule), FIELD_INT},
    {"--zero-snr", offsetof(nd_ddpm_config, zero_snr), FIELD_BOOL},
    {"--prediction", offsetof(nd_ddpm_config, prediction), FIELD_INT},
    {"--min-snr-gamma", offsetof(nd_ddpm_config, min_snr_gamma), FIELD_FLOAT},
};

static bool field_equal(field_kind kind, const void *a, const void *b) {
    switch (kind) {
    case FIELD_INT: return *(const int *)a == *(const int *)b;
    case FIELD_INT3: return memcmp(a, b, 3 * sizeof(int)) == 0;
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
static bool check_out_dir(const char *out, bool resume, bool force, const nd_ddpm_config *cfg, int argc, char **argv) {
    char ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/model.h5", out);
    if (!resume) {
        if (force || access(ckpt, F_OK) != 0) return true;
        fprintf(stderr,
                "nanodiff train: %s holds a run: pass --resume to continue it, or --force to start over "
                "and overwrite it\n",
                ckpt);
        return false;
    }
    nd_ddpm_config stored;
    nd_error err;
    if (!nd_checkpoint_read_config(ckpt, &stored, &err)) return true; // training reports it
    char conflicts[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof resumed_flags / sizeof resumed_flags[0]; i++) {
        const char *mine = (const char *)cfg + resumed_flags[i].offset,
                   *theirs = (const char *)&stored + resumed_flags[i].offset;
        if (flag_given(argc, argv, 2, resumed_flags[i].flag) && !field_equal(resumed_flags[i].kind, mine, theirs) &&
            used < sizeof conflicts)
            used += (size_t)snprintf(conflicts + used, sizeof conflicts - used, " %s", resumed_flags[i].flag);
    }
    if (!conflicts[0]) return true;
    fprintf(stderr,
            "nanodiff train: --resume continues %s with its own settings, and these flags contradict "
            "them:%s (drop them, or train into a new --out)\n",
            ckpt, conflicts);
    return false;
}

// "--widths A,B,C": three widths, each in the checkpoint's range for down_chs.
static bool parse_widths(const char *text, int chs[3]) {
    int used = 0;
    if (sscanf(text, "%d,%d,%d%n", &chs[0], &chs[1], &chs[2], &used) != 3 || text[used] != '\0') {
        fprintf(stderr, "nanodiff train: --widths expects three widths as A,B,C, got \"%s\"\n", text);
        return false;
    }
    nd_error err;
    for (int i = 0; i < 3; i++)
        if (!nd_limit_check(ND_LIMIT_CHANNELS, chs[i], "--widths", &err)) {
            fprintf(stderr, "nanodiff train: %s\n", err.msg);
            return false;
        }
    return true;
}

int nd_cmd_train(int argc, char **argv) {
    nd_ddpm_config cfg = nd_ddpm_defaults();
    nd_cli_training t = {.data = "fashion-mnist",
                         .out = "runs/fm",
                         .device = "auto",
                         .precision = "f32",
                         .epochs = cfg.epochs,
                         .batch = cfg.batch_size,
                         .lr = cfg.lr};
    const char *model = "dli-unet", *schedule = "linear", *prediction = "eps", *lr_schedule = "constant";
    int64_t img_size = 16, classes = -1, T = cfg.model.T, preview_every = 0, warmup = 0;
    double cfg_drop = cfg.cfg_drop, clip = 0, ema = 0, min_snr_gamma = 0;
    const char *clip_path = NULL, *cond = NULL, *preset_name = NULL, *widths = NULL;
    bool unit_range = false, adamw = false, profile = false, zero_snr = false;
    bool check_numerics = false, force = false;
    nd_flag flags[ND_CLI_TRAINING_FLAGS + 23] = {
        {"--preset", ND_FLAG_STRING, &preset_name,
         "course, quick, t2i-quick, best or best-v: a bundle of the defaults below (listed at the end); flags given win"},
        {"--model", ND_FLAG_STRING, &model,
         "dli-unet (the course's), dli-unet-v1, t2i-unet (text to image, needs --clip) or res-unet (t2i-unet's ResBlocks and attention, class-conditioned)"},
        {"--clip", ND_FLAG_STRING, &clip_path,
         "t2i-unet: the CLIP checkpoint (nanodiff train-clip) whose frozen "
         "text encoder reads the captions"},
        {"--cond", ND_FLAG_STRING, &cond,
         "t2i-unet: sequence (attend to the caption's tokens; the default) or pooled "
         "(the projected end-token vector alone)"},
        {"--widths", ND_FLAG_STRING, &widths,
         "the U-Net's widths at its three resolutions, A,B,C (default: the model's; dli-unet 64,64,128, "
         "res-unet and t2i-unet 32,64,64)"},
        {"--img-size", ND_FLAG_INT, &img_size, "images are resized to this (the course: 16; the assessment: 28)"},
        {"--classes", ND_FLAG_INT, &classes, "context classes; -1 takes the data set's, 0 trains unconditionally"},
        {"--T", ND_FLAG_INT, &T, "diffusion steps"},
        {"--schedule", ND_FLAG_STRING, &schedule,
         "noise schedule: linear (betas 1e-4..0.02, the course's) or cosine "
         "(Nichol & Dhariwal)"},
        {"--zero-snr", ND_FLAG_BOOL, &zero_snr,
         "rescale the schedule to zero terminal SNR (Lin et al.; x_T pure "
         "noise; needs --prediction v or x0)"},
        {"--prediction", ND_FLAG_STRING, &prediction, "what the model predicts: eps (the course's), x0 or v"},
        {"--min-snr-gamma", ND_FLAG_FLOAT, &min_snr_gamma,
         "min-SNR loss weights min(SNR, gamma) (Hang et al.; 5 is "
         "theirs; 0: plain MSE)"},
        {"--lr-schedule", ND_FLAG_STRING, &lr_schedule,
         "constant (the course's) or cosine (--lr decays along a half cosine towards 0 at the run's last step)"},
        {"--warmup", ND_FLAG_INT, &warmup, "raise the learning rate linearly to --lr over these first steps (0: none)"},
        {"--adamw", ND_FLAG_BOOL, &adamw, "AdamW instead of Adam"},
        {"--cfg-drop", ND_FLAG_FLOAT, &cfg_drop, "probability of dropping each context element"},
        {"--clip-grad", ND_FLAG_FLOAT, &clip, "clip the gradient's global norm to this (0: off)"},
        {"--ema", ND_FLAG_FLOAT, &ema, "keep an EMA of the weights with this decay (0: off)"},
        {"--unit-range", ND_FLAG_BOOL, &unit_range, "keep images in [0, 1] (the assessment) instead of [-1, 1]"},
        {"--preview-every", ND_FLAG_INT, &preview_every, "steps between preview grids (0: none)"},
        {"--profile", ND_FLAG_BOOL, &profile, "print where the time went, op by op (calls, ms, GFLOP/s), at the end"},
        {"--force", ND_FLAG_BOOL, &force, "start over in an --out that holds a run (its checkpoint is replaced)"},
        {"--check-numerics", ND_FLAG_BOOL, &check_numerics,
         "check every op's output for NaN/inf; a diverged run "
         "names the first op (slow)"},
    };
    int n_flags = 23 + nd_cli_training_flags(&t,
                                             "fashion-mnist, an IDX directory (MNIST...) or an HDF5 file "
                                             "(train + test, as the course)",
                                             "output directory: model.h5, loss.csv, previews", flags + 23);
    const char *summary = "train a DDPM with classifier-free-guidance label dropout";
    if (!nd_flags_parse("train", argc, argv, 2, flags, n_flags)) {
        nd_flags_usage("train", summary, flags, n_flags);
        return 1;
    }
    // The preset's values become the defaults, then the flags are read again so that those given win.
    const train_preset *preset = find_preset(preset_name                      ? preset_name
                                             : strcmp(model, "t2i-unet") == 0 ? "t2i-quick"
                                             : strcmp(model, "res-unet") == 0 ? "best"
                                                                              : "course");
    if (!preset) {
        fprintf(stderr, "nanodiff train: --preset expects");
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
            fprintf(stderr, "%s %s", i ? "," : "", presets[i].name);
        fprintf(stderr, ", got \"%s\"\n", preset_name);
        return 1;
    }
    if (preset_name && flag_given(argc, argv, 2, "--model") && strcmp(model, preset->model) != 0) {
        fprintf(stderr, "nanodiff train: --preset %s trains a %s, not the --model %s given\n", preset->name,
                preset->model, model);
        return 1;
    }
    if (preset_name && t.resume) {
        fprintf(stderr, "nanodiff train: --resume continues a run with its checkpoint's settings; drop --preset %s\n",
                preset->name);
        return 1;
    }
    model = preset->model, t.epochs = preset->epochs, t.batch = preset->batch, t.lr = preset->lr;
    ema = preset->ema, min_snr_gamma = preset->min_snr_gamma;
    schedule = preset->schedule, prediction = preset->prediction, zero_snr = preset->zero_snr;
    lr_schedule = preset->lr_cosine ? "cosine" : "constant", warmup = preset->warmup;
    if (!nd_flags_parse("train", argc, argv, 2, flags, n_flags)) return 1; // cannot fail: it passed above
    if (t.help) {
        nd_flags_usage("train", summary, flags, n_flags);
        fprintf(stderr, "presets (--preset NAME):\n");
        for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
            fprintf(stderr, "  %-18s %s\n", presets[i].name, presets[i].about);
        return 0;
    }
    nd_model_kind kind;
    if (!nd_model_kind_parse(model, &kind)) {
        fprintf(stderr, "nanodiff train: --model expects dli-unet, dli-unet-v1, t2i-unet or res-unet, got \"%s\"\n",
                model);
        return 1;
    }
    if (!nd_cli_t2i_train_flags(kind, clip_path, cond, t.resume, &cfg)) return 1;
    if (img_size < 4 || img_size % 4 || T < 2 || !(cfg_drop >= 0 && cfg_drop < 1) || clip < 0 ||
        !(ema >= 0 && ema < 1)) {
        fprintf(stderr, "nanodiff train: need --img-size a positive multiple of 4, --T >= 2, --cfg-drop in [0, 1), "
                        "--clip-grad >= 0, --ema in [0, 1)\n");
        return 1;
    }
    if (!nd_schedule_kind_parse(schedule, &cfg.schedule)) {
        fprintf(stderr, "nanodiff train: --schedule expects linear or cosine, got \"%s\"\n", schedule);
        return 1;
    }
    if (!nd_prediction_parse(prediction, &cfg.prediction)) {
        fprintf(stderr, "nanodiff train: --prediction expects eps, x0 or v, got \"%s\"\n", prediction);
        return 1;
    }
    cfg.zero_snr = zero_snr, cfg.min_snr_gamma = (float)min_snr_gamma;
    if (strcmp(lr_schedule, "constant") != 0 && strcmp(lr_schedule, "cosine") != 0) {
        fprintf(stderr, "nanodiff train: --lr-schedule expects constant or cosine, got \"%s\"\n", lr_schedule);
        return 1;
    }
    cfg.lr_cosine = strcmp(lr_schedule, "cosine") == 0, cfg.warmup_steps = warmup;
    nd_error err;
    if (!nd_limit_check(ND_LIMIT_STEP_COUNT, (double)warmup, "--warmup", &err)) {
        fprintf(stderr, "nanodiff train: %s\n", err.msg);
        return 1;
    }
    if (!nd_ddpm_check_options(&cfg, &err)) {
        fprintf(stderr, "nanodiff train: --zero-snr, --prediction, --min-snr-gamma: %s\n", err.msg);
        return 1;
    }
    int dev;
    if (!nd_cli_training_check("train", &t, 1, &dev) || !nd_cli_precision("train", t.precision, dev, &cfg.precision))
        return 1;
    // Under mpirun every process runs this; rank 0 prints the result, and any failure ends all of them.
    if (!nd_dist_init(dev != ND_CPU, &err)) {
        fprintf(stderr, "nanodiff train: %s\n", err.msg);
        return 1;
    }
    const nd_dist *dist = nd_dist_world();
    if (!nd_dist_use_device((nd_device)dev, &err)) train_failed(dist, &err);
    cfg.model = nd_model_config_default(kind, 1, (int)img_size, (int)classes);
    cfg.model.T = (int)T;
    if (widths) {
        char why[256];
        if (!parse_widths(widths, cfg.model.down_chs)) nd_dist_abort(1);
        if (!nd_model_config_check(&cfg.model, ND_MAX_PARAMS, why, sizeof why)) {
            fprintf(stderr, "nanodiff train: --widths %s does not fit a %s: %s\n", widths, model, why);
            nd_dist_abort(1);
        }
    }
    snprintf(cfg.data, sizeof cfg.data, "%s", t.data);
    cfg.unit_range = unit_range, cfg.random_flip = !t.no_flip;
    cfg.epochs = (int)t.epochs, cfg.batch_size = (int)t.batch, cfg.max_steps = t.max_steps;
    cfg.lr = (float)t.lr, cfg.adamw = adamw, cfg.weight_decay = (float)t.weight_decay;
    cfg.cfg_drop = (float)cfg_drop, cfg.clip_grad = (float)clip, cfg.ema_decay = (float)ema;
    cfg.seed = (uint64_t)t.seed, cfg.checkpoint_every = t.checkpoint_every, cfg.preview_every = preview_every;
    cfg.profile = profile;
    cfg.check_numerics = check_numerics;
    if (!check_out_dir(t.out, t.resume, force, &cfg, argc, argv)) nd_dist_abort(1);
    nd_ddpm_result result;
    if (!nd_ddpm_train(&cfg, t.out, t.resume, (nd_device)dev, !t.quiet, &result, &err)) train_failed(dist, &err);
    int rc = result.interrupted ? 128 + result.signal : 0; // 130 for Ctrl-C, 143 for SIGTERM
    if (dist->rank == 0) {
        char ckpt[1100];
        snprintf(ckpt, sizeof ckpt, "%s/model.h5", t.out);
        nd_cli_training_done(result.steps, result.seconds, result.images_per_second, result.last_loss, ckpt,
                             result.interrupted);
        if (dist->size > 1 && dist->reductions > 0)
            printf("%d processes: the gradient all-reduce took %.1f ms a step, %.1f%% of the training time\n",
                   dist->size, 1e3 * dist->reduce_seconds / (double)dist->reductions,
                   100.0 * dist->reduce_seconds / result.seconds);
    }
    fflush(stdout);
    nd_dist_finalize();
    return rc;
}
