// Every number a user sets, by a flag or through a checkpoint's attributes, with the range it must lie in:
// one table, checked in one place, so every refusal names the field (or flag), the value and the range.
// Integer limits stay below 2^31, so a value that would wrap an int is refused, never truncated.
#ifndef ND_LIMITS_H
#define ND_LIMITS_H

#include <stdbool.h>

#include "autograd.h"

// X(id, field name, min, max, integer). Sizes are bounded so that what they multiply into (a model's
// parameters, a batch's activations) is checked next by nd_ddpm_config_check, not by malloc.
#define ND_LIMIT_LIST(X)                                                                                               \
    X(ANY_INT, "value", -2147483647.0, 2147483647.0, true) /* a flag with no limit of its own */                       \
    X(ANY_FLOAT, "value", -1e30, 1e30, false)                                                                          \
    X(IMG_CH, "img_ch", 1, 4, true)                                                                                    \
    X(IMG_SIZE, "img_size", 4, 1024, true)                                                                             \
    X(T, "T", 2, 100000, true)                                                                                         \
    X(CHANNELS, "down_chs", 1, 4096, true)                                                                             \
    X(T_EMBED_DIM, "t_embed_dim", 0, 4096, true)                                                                       \
    X(C_EMBED_DIM, "c_embed_dim", 0, 65536, true)                                                                      \
    X(CLASSES_FLAG, "classes", -1, 65536, true) /* -1: the data set's count */                                         \
    X(GROUPS, "groups", 1, 4096, true)                                                                                 \
    X(HEADS, "heads", 0, 256, true)                                                                                    \
    X(BETA, "beta", 1e-8, 0.999, false)                                                                                \
    X(EPOCHS, "epochs", 1, 1000000, true)                                                                              \
    X(BATCH_SIZE, "batch_size", 1, 65536, true)                                                                        \
    X(LR, "lr", 1e-12, 1e6, false)                                                                                     \
    X(WEIGHT_DECAY, "weight_decay", 0, 1e3, false)                                                                     \
    X(CFG_DROP, "cfg_drop", 0, 0.999999, false)                                                                        \
    X(CLIP_GRAD, "clip_grad", 0, 1e9, false)                                                                           \
    X(EMA_DECAY, "ema_decay", 0, 0.999999, false)                                                                      \
    X(SEED, "seed", 0, 18446744073709551615.0, true)    /* any uint64 */                                               \
    X(STEP_COUNT, "steps", 0, 9007199254740992.0, true) /* checkpoint_every, preview_every, max_steps */               \
    X(SAMPLE_STEPS, "steps", 1, 100000, true)                                                                          \
    X(ETA, "eta", 0, 10, false)                                                                                        \
    X(GUIDANCE, "w", -100, 100, false)                                                                                 \
    X(GUIDANCE_RESCALE, "guidance_rescale", 0, 1, false)                                                               \
    X(N_SAMPLES, "n", 1, 65536, true)                                                                                  \
    X(HIDDEN, "hidden", 1, 65536, true)                                                                                \
    X(PNG_SCALE, "scale", 1, 16, true) /* sample --scale: pixels a grid pixel becomes, each way */                     \
    X(ADAM_BETA, "beta", 0, 0.999999, false)                                                                           \
    X(ADAM_EPS, "eps", 1e-30, 1, false)

#define ND_LIMIT_ENUM(id, name, min, max, integer) ND_LIMIT_##id,
typedef enum nd_limit_id { ND_LIMIT_LIST(ND_LIMIT_ENUM) ND_LIMIT_COUNT } nd_limit_id;
#undef ND_LIMIT_ENUM

typedef struct nd_limit {
    const char *name;
    double min, max;
    bool integer;
} nd_limit;

extern const nd_limit nd_limits[ND_LIMIT_COUNT];

// Checks value against limit id: finite, within [min, max], whole when the limit is an integer one. On
// failure err reads "<what> = <value>: expected <min> to <max>", what naming the flag or the file and field.
bool nd_limit_check(nd_limit_id id, double value, const char *what, nd_error *err);

// Largest parameter count a model may have (4 GiB of float32): a config past it is refused before anything
// is allocated.
#define ND_MAX_PARAMS ((int64_t)1 << 30)

#endif
