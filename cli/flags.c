// Flag parsing for the subcommands: --name value or --name=value, errors that name the flag.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "cli.h"

static const char *type_hint(nd_flag_type type) {
    switch (type) {
    case ND_FLAG_INT: return "an integer";
    case ND_FLAG_FLOAT: return "a number";
    case ND_FLAG_STRING: return "a value";
    default: return "nothing";
    }
}

void nd_flags_usage(const char *command, const char *summary, const nd_flag *flags, int n_flags) {
    fprintf(stderr, "usage: nanodiff %s [flags]\n  %s\n", command, summary);
    for (int i = 0; i < n_flags; i++) {
        const nd_flag *f = &flags[i];
        char def[64] = "";
        if (f->type == ND_FLAG_INT) snprintf(def, sizeof def, " (default %lld)", (long long)*(int64_t *)f->value);
        if (f->type == ND_FLAG_FLOAT && !isnan(*(double *)f->value)) // NAN: not given, a default of its own
            snprintf(def, sizeof def, " (default %g)", *(double *)f->value);
        if (f->type == ND_FLAG_STRING && *(const char **)f->value)
            snprintf(def, sizeof def, " (default %s)", *(const char **)f->value);
        fprintf(stderr, "  %-18s %s%s\n", f->name, f->help, def);
    }
}

// Each numeric flag's limit (nd_limits.h), the same for every command that takes the flag; a flag missing here
// gets ND_LIMIT_ANY_INT or ND_LIMIT_ANY_FLOAT (an int's range; a finite number).
static const struct {
    const char *flag;
    nd_limit_id limit;
} flag_limits[] = {
    {"--img-size", ND_LIMIT_IMG_SIZE},
    {"--channels", ND_LIMIT_IMG_CH},
    {"--classes", ND_LIMIT_CLASSES_FLAG},
    {"--T", ND_LIMIT_T},
    {"--epochs", ND_LIMIT_EPOCHS},
    {"--max-steps", ND_LIMIT_STEP_COUNT},
    {"--batch", ND_LIMIT_BATCH_SIZE},
    {"--lr", ND_LIMIT_LR},
    {"--weight-decay", ND_LIMIT_WEIGHT_DECAY},
    {"--cfg-drop", ND_LIMIT_CFG_DROP},
    {"--clip-grad", ND_LIMIT_CLIP_GRAD},
    {"--ema", ND_LIMIT_EMA_DECAY},
    {"--seed", ND_LIMIT_SEED},
    {"--checkpoint-every", ND_LIMIT_STEP_COUNT},
    {"--preview-every", ND_LIMIT_STEP_COUNT},
    {"--steps", ND_LIMIT_SAMPLE_STEPS},
    {"--eta", ND_LIMIT_ETA},
    {"--w", ND_LIMIT_GUIDANCE},
    {"--guidance-scale", ND_LIMIT_GUIDANCE},
    {"--guidance-rescale", ND_LIMIT_GUIDANCE_RESCALE},
    {"--n", ND_LIMIT_N_SAMPLES},
    {"--hidden", ND_LIMIT_HIDDEN},
    {"--scale", ND_LIMIT_PNG_SCALE},
};

// A number against its flag's limit; prints "nanodiff CMD: --flag = VALUE: expected ..." when it is out.
static bool check_limit(const char *command, const nd_flag *f, double value, nd_limit_id limit) {
    for (size_t i = 0; i < sizeof flag_limits / sizeof flag_limits[0]; i++)
        if (strcmp(flag_limits[i].flag, f->name) == 0) limit = flag_limits[i].limit;
    nd_error err;
    if (nd_limit_check(limit, value, f->name, &err)) return true;
    fprintf(stderr, "nanodiff %s: %s\n", command, err.msg);
    return false;
}

static bool set_value(const char *command, const nd_flag *f, const char *text) {
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case ND_FLAG_INT: {
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end) break;
        if (!check_limit(command, f, (double)v, ND_LIMIT_ANY_INT)) return false;
        *(int64_t *)f->value = v;
        return true;
    }
    case ND_FLAG_FLOAT: {
        double v = strtod(text, &end);
        if ((errno && errno != ERANGE) || end == text || *end) break;
        if (!check_limit(command, f, v, ND_LIMIT_ANY_FLOAT)) return false;
        *(double *)f->value = v;
        return true;
    }
    case ND_FLAG_STRING: *(const char **)f->value = text; return true;
    case ND_FLAG_BOOL: break;
    }
    fprintf(stderr, "nanodiff %s: %s expects %s, got \"%s\"\n", command, f->name, type_hint(f->type), text);
    return false;
}

bool nd_flags_parse(const char *command, int argc, char **argv, int first, const nd_flag *flags, int n_flags) {
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const nd_flag *f = NULL;
        for (int k = 0; k < n_flags; k++)
            if (strlen(flags[k].name) == len && strncmp(flags[k].name, arg, len) == 0) f = &flags[k];
        if (!f) {
            fprintf(stderr, "nanodiff %s: unknown flag \"%s\"\n", command, arg);
            return false;
        }
        if (f->type == ND_FLAG_BOOL) {
            if (eq) {
                fprintf(stderr, "nanodiff %s: %s takes no value\n", command, f->name);
                return false;
            }
            *(bool *)f->value = true;
            continue;
        }
        const char *text = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!text) {
            fprintf(stderr, "nanodiff %s: %s expects %s\n", command, f->name, type_hint(f->type));
            return false;
        }
        if (!set_value(command, f, text)) return false;
    }
    return true;
}

bool nd_cli_precision(const char *command, const char *name, int device, nd_precision *precision) {
    if (!nd_precision_parse(name, precision)) {
        fprintf(stderr, "nanodiff %s: --precision expects f32 or bf16, got \"%s\"\n", command, name);
        return false;
    }
    nd_error err;
    if (!nd_precision_supported((nd_device)device, *precision, &err)) {
        fprintf(stderr, "nanodiff %s: --precision %s: %s\n", command, name, err.msg);
        return false;
    }
    return true;
}

bool nd_cli_device(const char *command, const char *name, int *device) {
    char why[256] = "";
    bool cuda_ok = nd_cuda_available(why, sizeof why);
    if (strcmp(name, "cpu") == 0) {
        *device = ND_CPU;
    } else if (strcmp(name, "cuda") == 0) {
        if (!cuda_ok) {
            fprintf(stderr, "nanodiff %s: --device cuda: %s\n", command, why);
            return false;
        }
        *device = ND_CUDA;
    } else if (strcmp(name, "auto") == 0) {
        *device = cuda_ok ? ND_CUDA : ND_CPU;
    } else {
        fprintf(stderr, "nanodiff %s: --device expects auto, cpu or cuda, got \"%s\"\n", command, name);
        return false;
    }
    return true;
}
