// nanodiff info: a model's per-block summary, or what a checkpoint holds.
#include <stdio.h>

#include "cli.h"
#include "train.h"

int nd_cmd_info(int argc, char **argv) {
    const char *model_name = NULL, *ckpt = NULL;
    int64_t img_size = 16, img_ch = 1, classes = 10;
    bool help = false;
    const nd_flag flags[] = {
        {"--model", ND_FLAG_STRING, &model_name, "dli-unet, dli-unet-v1, t2i-unet or res-unet: print its summary"},
        {"--img-size", ND_FLAG_INT, &img_size, "image size for --model"},
        {"--channels", ND_FLAG_INT, &img_ch, "image channels for --model"},
        {"--classes", ND_FLAG_INT, &classes, "context width for --model (classes; text width for t2i-unet)"},
        {"--ckpt", ND_FLAG_STRING, &ckpt, "checkpoint: print its configuration and training state"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "describe a model (--model) or a checkpoint (--ckpt)";
    if (!nd_flags_parse("info", argc, argv, 2, flags, n_flags) || help || (!model_name && !ckpt)) {
        if (!help && !model_name && !ckpt) fprintf(stderr, "nanodiff info: give --model or --ckpt\n");
        nd_flags_usage("info", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    nd_model_config mc;
    nd_ddpm_config cfg;
    nd_error err;
    if (ckpt && nd_clip_checkpoint_is_clip(ckpt)) return nd_clip_info(ckpt);
    if (ckpt) {
        if (!nd_checkpoint_read_config(ckpt, &cfg, &err)) {
            fprintf(stderr, "nanodiff info: %s\n", err.msg);
            return 1;
        }
        mc = cfg.model;
        char schedule[64], loss[32] = "", lr[80];
        if (cfg.schedule == ND_SCHEDULE_LINEAR)
            snprintf(schedule, sizeof schedule, "beta %g..%g", cfg.beta_start, cfg.beta_end);
        else
            snprintf(schedule, sizeof schedule, "%s", nd_schedule_kind_name(cfg.schedule));
        if (cfg.min_snr_gamma > 0) snprintf(loss, sizeof loss, ", min-SNR gamma %g", cfg.min_snr_gamma);
        int used = snprintf(lr, sizeof lr, "lr %g%s", cfg.lr, cfg.lr_cosine ? " with a cosine decay" : "");
        if (cfg.warmup_steps > 0)
            snprintf(lr + used, sizeof lr - (size_t)used, " after %lld warm-up steps", (long long)cfg.warmup_steps);
        printf("%s: trained on %s, %d epochs of batch %d, %s, label dropout %g, T %d (%s%s), %s prediction%s%s\n", ckpt,
               cfg.data, cfg.epochs, cfg.batch_size, lr, cfg.cfg_drop, mc.T, schedule,
               cfg.zero_snr ? ", zero terminal SNR" : "", nd_prediction_name(cfg.prediction), loss,
               cfg.ema_decay > 0 ? ", with EMA" : "");
        if (mc.kind == ND_MODEL_T2I_UNET)
            printf("text: CLIP %s (%s), the %s\n", cfg.clip, cfg.clip_hash,
                   cfg.text_pooled ? "pooled end-token vector" : "token sequence");
    } else {
        nd_model_kind kind;
        if (!nd_model_kind_parse(model_name, &kind)) {
            fprintf(stderr, "nanodiff info: --model expects dli-unet, dli-unet-v1, t2i-unet or res-unet, got \"%s\"\n",
                    model_name);
            return 1;
        }
        if (img_size < 4 || img_size % 4 || img_ch < 1 || classes < 0) {
            fprintf(stderr, "nanodiff info: --img-size must be a positive multiple of 4, --channels positive\n");
            return 1;
        }
        mc = nd_model_config_default(kind, (int)img_ch, (int)img_size, (int)classes);
        if (kind == ND_MODEL_T2I_UNET && classes == 0) mc.c_embed_dim = 64;
        char why[256];
        if (!nd_model_config_check(&mc, ND_MAX_PARAMS, why, sizeof why)) {
            fprintf(stderr, "nanodiff info: --model %s: %s\n", model_name, why);
            return 1;
        }
    }
    nd_ctx ctx;
    nd_ctx_init(&ctx, ND_CPU, 16 << 20, 0);
    nd_model model;
    nd_model_create(&model, mc, &ctx);
    nd_model_summary(&ctx, &model, stdout);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return 0;
}
