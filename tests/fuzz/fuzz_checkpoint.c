// libFuzzer harness: the checkpoint loader as sample/eval/info use it (configuration, model creation, weights)
// and as a resumed run uses it (optimizer moments, EMA, step and RNG state as well).
#include "fuzz.h"
#include "train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nd_fuzz_file(data, size, ".h5");
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 1 << 20, 0);
    nd_model model;
    nd_ddpm_config cfg;
    nd_error err;
    if (nd_checkpoint_load_model(path, false, &model, &cfg, &ctx, &err)) {
        nd_adam opt;
        nd_ema ema;
        nd_adam_init(&opt, &model.params, &ctx, nd_adam_defaults());
        nd_ema_init(&ema, &model.params, &ctx, 0.999f);
        nd_train_state state;
        nd_checkpoint_load(path, &model, &cfg, &state, &opt, &ema, &ctx, &err);
        nd_ema_free(&ema);
        nd_adam_free(&opt);
        nd_model_free(&model);
    }
    nd_ctx_free(&ctx);
    return 0;
}
