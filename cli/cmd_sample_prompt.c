// nanodiff sample on a text-to-image checkpoint: prompts (from --prompt or a file, a row each) through the
// CLIP text encoder the model was trained with, guided by the guidance scale in one doubled batch whose
// unconditional half reads the negative prompt (the empty prompt by default).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "sample.h"
#include "train.h"

#define MAX_PROMPTS 256
#define MAX_PROMPT_BYTES 4096

// The value of flag in argv (--flag value or --flag=value), or NULL.
static const char *flag_value(int argc, char **argv, const char *flag) {
    size_t len = strlen(flag);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], flag) == 0) return i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(argv[i], flag, len) == 0 && argv[i][len] == '=') return argv[i] + len + 1;
    }
    return NULL;
}

static bool has_flag(int argc, char **argv, const char *flag) {
    size_t len = strlen(flag);
    for (int i = 2; i < argc; i++)
        if (strncmp(argv[i], flag, len) == 0 && (argv[i][len] == 0 || argv[i][len] == '=')) return true;
    return false;
}

bool nd_cli_is_prompt_sampling(int argc, char **argv) {
    static const char *prompt_flags[] = {"--prompt", "--prompts-file", "--negative-prompt", "--clip"};
    for (int k = 0; k < 4; k++)
        if (has_flag(argc, argv, prompt_flags[k])) return true;
    const char *ckpt = flag_value(argc, argv, "--ckpt");
    nd_ddpm_config cfg;
    return ckpt && nd_checkpoint_read_config(ckpt, &cfg, NULL) && cfg.model.kind == ND_MODEL_T2I_UNET;
}

// Reads one prompt a line (blank lines skipped) into prompts; returns how many, or -1 after saying why.
static int read_prompts(const char *path, char **prompts, int max) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "nanodiff sample: --prompts-file %s: cannot open the file\n", path);
        return -1;
    }
    char line[MAX_PROMPT_BYTES + 2];
    int n = 0, line_no = 0;
    while (fgets(line, sizeof line, f)) {
        line_no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "nanodiff sample: --prompts-file %s: line %d is longer than %d bytes\n", path, line_no,
                    MAX_PROMPT_BYTES);
            n = -1;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        if (n == max) {
            fprintf(stderr, "nanodiff sample: --prompts-file %s: more than %d prompts\n", path, max);
            n = -1;
            break;
        }
        prompts[n++] = strdup(line);
    }
    fclose(f);
    if (n < 0)
        for (int i = 0; i < max && prompts[i]; i++) free(prompts[i]);
    if (n == 0) fprintf(stderr, "nanodiff sample: --prompts-file %s: no prompt in the file\n", path);
    return n <= 0 ? -1 : n;
}

int nd_cmd_sample_prompt(int argc, char **argv) {
    nd_cli_sampling f = nd_cli_sampling_defaults();
    const char *prompt = NULL, *prompts_file = NULL, *negative = "", *clip = NULL;
    const char *out = "samples.png", *h5 = NULL, *class_spec = NULL;
    int64_t n = 8, scale = 1;
    bool help = false;
    nd_flag flags[ND_CLI_SAMPLING_FLAGS + 10];
    int n_flags = nd_cli_sampling_flags(&f, flags);
    const nd_flag own[] = {
        {"--prompt", ND_FLAG_STRING, &prompt, "what to draw, e.g. \"a photo of a sneaker\""},
        {"--prompts-file", ND_FLAG_STRING, &prompts_file, "one prompt a line: a row of the grid each"},
        {"--negative-prompt", ND_FLAG_STRING, &negative, "what the unconditional half of guidance reads (\"\": none)"},
        {"--n", ND_FLAG_INT, &n, "samples per prompt (a row each)"},
        {"--clip", ND_FLAG_STRING, &clip,
         "the CLIP checkpoint (default: clip.h5 beside --ckpt, else the one "
         "training named; its hash must match)"},
        {"--class", ND_FLAG_STRING, &class_spec, "(class models only: a text-to-image model takes --prompt)"},
        {"--h5", ND_FLAG_STRING, &h5,
         "also write the raw samples (in [0, 1]) to this HDF5 file, labelled by prompt "
         "number"},
        {"-o", ND_FLAG_STRING, &out, "output PNG"},
        {"--scale", ND_FLAG_INT, &scale, "PNG pixels per sample pixel, each way (nearest neighbour), 1 to 16"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    for (int i = 0; i < ND_COUNT(own); i++) flags[n_flags++] = own[i];
    const char *summary = "draw guided samples of prompts from a text-to-image checkpoint";
    if (!nd_flags_parse("sample", argc, argv, 2, flags, n_flags) || help || !f.ckpt) {
        if (!help && !f.ckpt) fprintf(stderr, "nanodiff sample: --ckpt is required\n");
        nd_flags_usage("sample", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    const char *ckpt = f.ckpt;
    nd_ddpm_config cfg;
    nd_error err;
    if (!nd_checkpoint_read_config(ckpt, &cfg, &err)) {
        fprintf(stderr, "nanodiff sample: %s\n", err.msg);
        return 1;
    }
    if (cfg.model.kind != ND_MODEL_T2I_UNET) {
        fprintf(stderr,
                "nanodiff sample: --prompt, --prompts-file, --negative-prompt and --clip need a text-to-image "
                "checkpoint; %s holds a %s model: ask for a class with --class\n",
                ckpt, nd_model_kind_name(cfg.model.kind));
        return 1;
    }
    if (class_spec) {
        fprintf(stderr,
                "nanodiff sample: --class %s: %s is a text-to-image model; ask for a class with --prompt, e.g. "
                "--prompt \"a photo of a sneaker\"\n",
                class_spec, ckpt);
        return 1;
    }
    if (!prompt == !prompts_file) {
        fprintf(stderr,
                "nanodiff sample: %s is a text-to-image model: give --prompt TEXT or --prompts-file FILE "
                "(one of them)\n",
                ckpt);
        return 1;
    }
    if (n < 1 || n > 1024) {
        fprintf(stderr, "nanodiff sample: --n must be in [1, 1024], got %lld\n", (long long)n);
        return 1;
    }
    char *prompts[MAX_PROMPTS] = {0};
    int n_prompts = prompt ? 1 : read_prompts(prompts_file, prompts, MAX_PROMPTS);
    if (n_prompts < 0) return 1;
    if (prompt) prompts[0] = strdup(prompt);
    nd_cli_session s;
    if (!nd_cli_session_open("sample", &f, &s)) {
        for (int i = 0; i < n_prompts; i++) free(prompts[i]);
        return 1;
    }
    nd_text_encoder *text = NULL;
    if (!nd_t2i_open_text(ckpt, &s.cfg, clip, s.ctx.device, &text, &err)) {
        fprintf(stderr, "nanodiff sample: %s\n", err.msg);
        for (int i = 0; i < n_prompts; i++) free(prompts[i]);
        nd_cli_session_close(&s);
        return 1;
    }
    const nd_model_config *mc = &s.model.config;
    int total = n_prompts * (int)n, status = 0;
    int64_t image = (int64_t)mc->img_ch * mc->img_size * mc->img_size;
    const char **rows = nd_xmalloc((size_t)total * sizeof(char *));
    const char **negatives = nd_xmalloc((size_t)total * sizeof(char *));
    int32_t *labels = nd_xmalloc((size_t)total * sizeof(int32_t));
    for (int i = 0; i < total; i++) rows[i] = prompts[i / n], negatives[i] = negative, labels[i] = (int32_t)(i / n);
    nd_tensor *context = nd_text_encoder_context(text, &s.ctx, rows, total, true);           // (total, S, D)
    nd_tensor *null_context = nd_text_encoder_context(text, &s.ctx, negatives, total, true); // (total, S, D)
    float *images = nd_xmalloc((size_t)total * (size_t)image * sizeof(float));               // (total, C, S, S)
    double start = nd_seconds();
    nd_cli_progress progress;
    nd_cli_progress_begin(&progress, "sample", !f.quiet, &s.sc, &s.sched, 1);
    nd_cli_progress_batch(&progress, 0, total, NULL, NULL);
    nd_sample_images(&s.ctx, &s.model, &s.sched, &s.sc, total, context, null_context, images, nd_cli_progress_step,
                     &progress);
    fprintf(stderr, "sampled %d images of %d prompt%s with %s, guidance scale %g, from %s in %.1f s\n", total,
            n_prompts, n_prompts > 1 ? "s" : "", nd_sampler_name(s.sc.sampler), 1.0 + s.sc.w,
            s.sc.start_mean ? "q(x_T)'s moments" : "N(0, I)", nd_seconds() - start);
    // a row per prompt
    bool ok = nd_cli_samples_finite("sample", images, total, image) &&
              nd_cli_write_grid("sample", out, images, total, mc, (int)n, s.cfg.unit_range, (int)scale) &&
              (!h5 || nd_cli_write_samples_h5("sample", h5, images, total, mc, labels, s.cfg.unit_range));
    status = ok ? 0 : 1;
    free(images);
    free(rows);
    free(negatives);
    free(labels);
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    nd_text_encoder_close(text);
    nd_cli_session_close(&s);
    return status;
}
