// The range table (nd_limits.h) and the one check of a whole configuration against it, used for flags as they
// are parsed, for a train command's assembled configuration and for every checkpoint that is read.
#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "train.h"

#define ND_LIMIT_ENTRY(id, name, min, max, integer) {name, min, max, integer},
const nd_limit nd_limits[ND_LIMIT_COUNT] = {ND_LIMIT_LIST(ND_LIMIT_ENTRY)};
#undef ND_LIMIT_ENTRY

// Largest batch of input values (batch x channels x size x size) a training step may take: the activations
// of a step are ~100 times this, so 2^28 already asks for tens of GB.
#define ND_MAX_BATCH_VALUES ((int64_t)1 << 28)

bool nd_limit_check(nd_limit_id id, double value, const char *what, nd_error *err) {
    const nd_limit *l = &nd_limits[id];
    if (isfinite(value) && value >= l->min && value <= l->max && (!l->integer || value == floor(value))) return true;
    if (l->integer)
        return nd_error_set(err, "%s = %.17g: expected an integer from %.17g to %.17g", what, value, l->min, l->max);
    return nd_error_set(err, "%s = %g: expected a finite number from %g to %g", what, value, l->min, l->max);
}

typedef enum { CFG_INT, CFG_INT64, CFG_UINT64, CFG_FLOAT, CFG_DOUBLE } cfg_kind;

typedef struct cfg_field {
    const char *name; // the checkpoint attribute's name
    size_t offset;
    cfg_kind kind;
    nd_limit_id limit;
} cfg_field;

#define CFG(member, name, kind, id)                                                                                    \
    { name, offsetof(nd_ddpm_config, member), kind, ND_LIMIT_##id }

// Every number of nd_ddpm_config with its limit, named as the checkpoint stores it.
static const cfg_field cfg_fields[] = {
    CFG(model.img_ch, "img_ch", CFG_INT, IMG_CH),
    CFG(model.img_size, "img_size", CFG_INT, IMG_SIZE),
    CFG(model.T, "T", CFG_INT, T),
    CFG(model.down_chs[0], "down_chs[0]", CFG_INT, CHANNELS),
    CFG(model.down_chs[1], "down_chs[1]", CFG_INT, CHANNELS),
    CFG(model.down_chs[2], "down_chs[2]", CFG_INT, CHANNELS),
    CFG(model.t_embed_dim, "t_embed_dim", CFG_INT, T_EMBED_DIM),
    CFG(model.c_embed_dim, "c_embed_dim", CFG_INT, C_EMBED_DIM),
    CFG(model.small_groups, "small_groups", CFG_INT, GROUPS),
    CFG(model.big_groups, "big_groups", CFG_INT, GROUPS),
    CFG(model.heads, "heads", CFG_INT, HEADS),
    CFG(beta_start, "beta_start", CFG_DOUBLE, BETA),
    CFG(beta_end, "beta_end", CFG_DOUBLE, BETA),
    CFG(epochs, "epochs", CFG_INT, EPOCHS),
    CFG(batch_size, "batch_size", CFG_INT, BATCH_SIZE),
    CFG(lr, "lr", CFG_FLOAT, LR),
    CFG(weight_decay, "weight_decay", CFG_FLOAT, WEIGHT_DECAY),
    CFG(cfg_drop, "cfg_drop", CFG_FLOAT, CFG_DROP),
    CFG(clip_grad, "clip_grad", CFG_FLOAT, CLIP_GRAD),
    CFG(ema_decay, "ema_decay", CFG_FLOAT, EMA_DECAY),
    CFG(seed, "seed", CFG_UINT64, SEED),
    CFG(checkpoint_every, "checkpoint_every", CFG_INT64, STEP_COUNT),
    CFG(preview_every, "preview_every", CFG_INT64, STEP_COUNT),
    CFG(max_steps, "max_steps", CFG_INT64, STEP_COUNT),
    CFG(warmup_steps, "warmup_steps", CFG_INT64, STEP_COUNT),
};

static double cfg_value(const cfg_field *f, const nd_ddpm_config *cfg) {
    const char *p = (const char *)cfg + f->offset;
    switch (f->kind) {
    case CFG_INT: return *(const int *)p;
    case CFG_INT64: return (double)*(const int64_t *)p;
    case CFG_UINT64: return (double)*(const uint64_t *)p;
    case CFG_FLOAT: return *(const float *)p;
    case CFG_DOUBLE: return *(const double *)p;
    }
    return NAN;
}

bool nd_ddpm_config_check(const nd_ddpm_config *cfg, const char *source, nd_error *err) {
    char what[640];
    for (size_t i = 0; i < sizeof cfg_fields / sizeof cfg_fields[0]; i++) {
        const cfg_field *f = &cfg_fields[i];
        snprintf(what, sizeof what, "%s: %s", source, f->name);
        if (!nd_limit_check(f->limit, cfg_value(f, cfg), what, err)) return false;
    }
    if (!(cfg->beta_start < cfg->beta_end))
        return nd_error_set(err, "%s: beta_start %g must be below beta_end %g", source, cfg->beta_start, cfg->beta_end);
    char why[256];
    if (!nd_model_config_check(&cfg->model, ND_MAX_PARAMS, why, sizeof why))
        return nd_error_set(err, "%s: %s", source, why);
    const nd_model_config *m = &cfg->model;
    int64_t batch_values = (int64_t)cfg->batch_size * m->img_ch * m->img_size * m->img_size;
    if (batch_values > ND_MAX_BATCH_VALUES)
        return nd_error_set(err,
                            "%s: batch_size %d of %dx%dx%d images is %lld values a step: expected at most "
                            "%lld (lower the batch size)",
                            source, cfg->batch_size, m->img_ch, m->img_size, m->img_size, (long long)batch_values,
                            (long long)ND_MAX_BATCH_VALUES);
    return true;
}
