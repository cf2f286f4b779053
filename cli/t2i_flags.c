// The text-to-image flags of train, sample and eval, checked against the model they are used with.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool nd_cli_t2i_train_flags(nd_model_kind kind, const char *clip, const char *cond, bool resume,
                            nd_ddpm_config *cfg) {
    if (kind != ND_MODEL_T2I_UNET) {
        if (clip || cond) {
            fprintf(stderr, "nanodiff train: %s is for --model t2i-unet (text to image); --model %s is "
                            "class-conditional\n", clip ? "--clip" : "--cond", nd_model_kind_name(kind));
            return false;
        }
        return true;
    }
    if (cond && strcmp(cond, "sequence") != 0 && strcmp(cond, "pooled") != 0) {
        fprintf(stderr, "nanodiff train: --cond expects sequence or pooled, got \"%s\"\n", cond);
        return false;
    }
    if (resume) { // the checkpoint names its CLIP and conditioning
        if (clip || cond)
            fprintf(stderr, "nanodiff train: note: --resume keeps the run's own CLIP and --cond; %s ignored\n",
                    clip && cond ? "--clip and --cond" : clip ? "--clip" : "--cond");
        return true;
    }
    if (!clip) {
        fprintf(stderr, "nanodiff train: --model t2i-unet needs --clip FILE, a CLIP checkpoint (nanodiff train-clip "
                        "--out DIR writes DIR/clip.h5) whose text encoder reads the captions\n");
        return false;
    }
    if (access(clip, R_OK) != 0) {
        fprintf(stderr, "nanodiff train: --clip %s: no such file (train one with nanodiff train-clip)\n", clip);
        return false;
    }
    if (!nd_clip_checkpoint_is_clip(clip)) {
        fprintf(stderr, "nanodiff train: --clip %s: not a CLIP checkpoint (nanodiff train-clip writes one)\n", clip);
        return false;
    }
    if (strlen(clip) >= sizeof cfg->clip) {
        fprintf(stderr, "nanodiff train: --clip: the path is longer than %zu bytes\n", sizeof cfg->clip - 1);
        return false;
    }
    snprintf(cfg->clip, sizeof cfg->clip, "%s", clip);
    cfg->text_pooled = cond && strcmp(cond, "pooled") == 0;
    return true;
}
