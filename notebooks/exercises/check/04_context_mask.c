// Checks ex_context_mask: the one-hot rows, nothing kept with drop 1, everything with drop 0, and the kept
// fraction near 1 - drop_prob over many labels.
#include "check.h"

static bool check(nd_ctx *ctx) {
    enum { N = 4000, K = 10 };
    static int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % K;
    bool ok = true;
    const float drops[3] = {0.0f, 0.25f, 1.0f};
    for (int d = 0; d < 3 && ok; d++) {
        nd_tensor *m = ex_context_mask(ctx, labels, N, K, drops[d]);
        if (!ck_shape("the context", m, ND_SHAPE(N, K))) return false;
        float *h = ck_host(ctx, m);
        int kept = 0;
        for (int i = 0; i < N && ok; i++)
            for (int k = 0; k < K && ok; k++) {
                float v = h[i * K + k];
                if (v != 0.0f && v != 1.0f)
                    ok = ck_fail("drop_prob %.2f: context[%d][%d] = %g; a masked one-hot holds only 0 and 1", drops[d], i, k, v);
                else if (v == 1.0f && k != labels[i])
                    ok = ck_fail("drop_prob %.2f: row %d (label %d) has a 1 in column %d: the 1 goes in the label's column",
                                 drops[d], i, labels[i], k);
                kept += v == 1.0f;
            }
        double fraction = (double)kept / N, want = 1.0 - drops[d];
        if (ok && fabs(fraction - want) > 0.03) // 4000 labels: the kept fraction's std is at most 0.008
            ok = ck_fail("drop_prob %.2f: %.1f%% of the labels were kept, expected about %.0f%% (each element is kept "
                         "with probability 1 - drop_prob)", drops[d], 100 * fraction, 100 * want);
        free(h);
        nd_ctx_step_end(ctx);
    }
    return ok;
}
