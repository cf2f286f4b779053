// Notebook 04: get_context_mask, the label dropout of classifier-free guidance.
//
// c_hot = one_hot(c, classes); c_mask = bernoulli(ones_like(c_hot) - drop_prob); return c_hot * c_mask.
// Every element is kept with probability 1 - drop_prob, independently, so a label is dropped with
// probability drop_prob and its row becomes all zeros: the "no class" context the model also learns, which
// guidance later pushes away from. nd_rand_bernoulli(ctx, t, p) sets each element to 1 with probability p.
// The reference solution.
#include <stdlib.h>

#include "exercise.h"

// labels (n) -> the masked one-hot context (n, classes)
nd_tensor *ex_context_mask(nd_ctx *ctx, const int32_t *labels, int n, int classes, float drop_prob) {
    float *one_hot = calloc((size_t)n * (size_t)classes, sizeof(float));
    for (int i = 0; i < n; i++) one_hot[i * classes + labels[i]] = 1.0f;
    nd_tensor *c_hot = nd_from_host(ctx, ND_SHAPE(n, classes), one_hot); // (n, classes)
    free(one_hot);
    nd_tensor *c_mask = nd_empty(ctx, c_hot->shape);
    nd_rand_bernoulli(ctx, c_mask, 1.0f - drop_prob);
    return nd_mul(ctx, c_hot, c_mask);
}
