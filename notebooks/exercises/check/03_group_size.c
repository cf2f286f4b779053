// Checks ex_group_size_base: every GroupNorm of notebook 03's U-Net must divide its channels.
#include "check.h"

static bool check(nd_ctx *ctx) {
    int base = ex_group_size_base(), small = 2 * base, big = 8 * base;
    if (base < 3 || base > 7) return ck_fail("group_size_base = %d: the notebook asks for a value from 3 to 7", base);
    const struct { const char *where; int groups, channels; } norms[] = {
        {"down0 (ResidualConvBlock, small groups)", small, 64}, {"the output head (small groups)", small, 64},
        {"down1 / up2 (big groups)", big, 64}, {"down2 / up0 / up1 (big groups)", big, 128}};
    bool ok = true;
    for (int i = 0; i < 4; i++)
        if (norms[i].channels % norms[i].groups != 0)
            ok = ck_fail("base %d: GroupNorm(%d groups) in %s has %d channels, not divisible by %d", base,
                         norms[i].groups, norms[i].where, norms[i].channels, norms[i].groups);
    if (!ok) return false;
    nd_model_config mc = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 16, 0);
    mc.small_groups = small, mc.big_groups = big;
    nd_model m;
    nd_model_init(&m, mc);
    printf("base %d: GroupNorm(%d) and GroupNorm(%d); the U-Net has %lld parameters (the notebook: 1979777)\n", base,
           small, big, (long long)m.params.total);
    nd_model_free(&m);
    return true;
}
