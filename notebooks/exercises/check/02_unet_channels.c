// Checks the student's U-Net parameters, name by name, against the library's notebook-02 model.
#include "check.h"

static bool check(nd_ctx *ctx) {
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET_V1, 1, 16, 0); // down_chs (16, 32, 64), t_dim 1
    nd_model model;
    nd_model_init(&model, mc);
    nd_params p, b;
    nd_params_init(&p), nd_params_init(&b);
    ex_v1_unet_init(&p, &b, mc.img_ch, mc.img_size, mc.down_chs);
    bool ok = true;
    int wrong = 0;
    for (int i = 0; i < model.params.n; i++) {
        const nd_param *want = &model.params.items[i];
        if (!ck_param(&p, want->name, want->tensor->shape)) ok = false, wrong++;
        if (wrong == 6) {
            printf("... (the first ones above; fix them and check again)\n");
            break;
        }
    }
    if (ok && p.total != model.params.total)
        ok = ck_fail("%lld parameters registered, expected %lld", (long long)p.total, (long long)model.params.total);
    if (ok) printf("Num params: %lld (the notebook: 240385)\n", (long long)p.total);
    nd_params_free(&p), nd_params_free(&b);
    nd_model_free(&model);
    return ok;
}
